// fusegrad/backend/host/runtime.hpp — device memory on the host backend: ordinary, 64-byte aligned
// host memory, with freed blocks cached for reuse. "Copies" between host and device are memcpy.
#pragma once

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"


namespace fusegrad::inline FG_BACKEND_NS::backend {

inline constexpr std::size_t alignment = 64;

namespace detail {

/// Freed blocks kept for reuse, by exact (rounded) size, as the CUDA backend's stream-ordered pool
/// does: a training step allocates the same temporaries every time, and reusing them saves the
/// allocator's work and, for large blocks, the page faults of fresh memory (the OS zero-fills every
/// page of a new mmap). Up to `cache_limit` bytes are kept; builds under AddressSanitizer keep
/// none, so it still sees every use after free.
class BlockCache {
 public:
  static constexpr std::size_t cache_limit = std::size_t(1) << 30;

  void* take(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(bytes);
    if (it == free_.end() || it->second.empty()) {
      return nullptr;
    }
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= bytes;
    return p;
  }
  /// Keeps p for reuse, or frees it when the cache is full.
  void give(void* p, std::size_t bytes) noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= cache_limit) {
        try {
          free_[bytes].push_back(p);
          cached_ += bytes;
          return;
        } catch (...) {  // no memory for the bookkeeping: just free it
        }
      }
    }
    std::free(p);
  }
  /// Frees every cached block (before an allocation that did not fit is retried).
  void release() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        std::free(p);
      }
    }
    free_.clear();
    cached_ = 0;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_ = 0;
};

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool use_block_cache = false;
#else
inline constexpr bool use_block_cache = true;
#endif

/// The CUDA backend's slot for faults that kernels meet (a bad id); host code throws at once and
/// never needs one, but nodes carry the (null) pointer on both backends.
struct DeviceFault;

/// Never destroyed: a tensor that outlives static destruction (a static of the user's) still has
/// somewhere to return its memory.
inline BlockCache& block_cache() {
  static BlockCache* const cache = new BlockCache;
  return *cache;
}

}  // namespace detail

/// Allocates `bytes` of device memory; throws memory_error saying how many bytes were asked.
inline void* allocate(std::size_t bytes) {
  if (bytes == 0) {
    return nullptr;
  }
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  if (rounded < bytes) {
    throw memory_error("allocate: cannot hold " + std::to_string(bytes) + " bytes");
  }
  if constexpr (detail::use_block_cache) {
    if (void* p = detail::block_cache().take(rounded)) {
      return p;
    }
  }
  void* p = std::aligned_alloc(alignment, rounded);
  if (p == nullptr && detail::use_block_cache) {
    detail::block_cache().release();
    p = std::aligned_alloc(alignment, rounded);
  }
  if (p == nullptr) {
    throw memory_error("allocate: out of host memory asking for " + std::to_string(bytes) +
                       " bytes");
  }
  return p;
}

inline void deallocate(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) {
    return;
  }
  if constexpr (detail::use_block_cache) {
    detail::block_cache().give(p, (bytes + alignment - 1) / alignment * alignment);
  } else {
    std::free(p);
  }
}

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

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
