// fusegrad/backend/host/runtime.hpp — device memory on the host backend: ordinary, 64-byte aligned
// host memory. "Copies" between host and device are memcpy.
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fusegrad::inline FG_BACKEND_NS::backend {

inline constexpr std::size_t alignment = 64;

/// Allocates `bytes` of device memory; throws memory_error saying how many bytes were asked.
inline void* allocate(std::size_t bytes) {
  if (bytes == 0) {
    return nullptr;
  }
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = rounded < bytes ? nullptr : std::aligned_alloc(alignment, rounded);
  if (p == nullptr) {
    throw memory_error("allocate: out of host memory asking for " + std::to_string(bytes) +
                       " bytes");
  }
  return p;
}

inline void deallocate(void* p, std::size_t /*bytes*/) noexcept { std::free(p); }

inline void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes) {
    std::memcpy(dst, src, bytes);
  }
}
inline void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes) {
    std::memcpy(dst, src, bytes);
  }
}
inline void copy_on_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes) {
    std::memmove(dst, src, bytes);
  }
}

/// Waits for all device work; the host backend runs synchronously.
inline void synchronize() {}

/// What "device" means here, for logs: "CPU (host backend, 2 OpenMP threads)".
inline std::string describe() {
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  return "CPU (host backend, " + std::to_string(threads) + " OpenMP thread" + (threads == 1 ? ")" : "s)");
}

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
