// fusegrad/backend/cuda/runtime.hpp — device memory and the library's stream on the CUDA backend.
//
// Memory comes from the stream-ordered pool (cudaMallocAsync), which caches freed blocks, so the
// temporaries of a training step do not reach the driver in steady state. Every call is checked.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"

namespace fusegrad::inline FG_BACKEND_NS {
/// Throws cuda_error for a failed CUDA call (FG_CUDA_CHECK); not for users.
inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    throw cuda_error(std::string(call) + " failed: " + cudaGetErrorName(status) + " (" +
                     cudaGetErrorString(status) + ") at " + file + ":" + std::to_string(line));
  }
}

/// The stream every fusegrad kernel, copy and GEMM is issued on (created on first use; it
/// synchronises with the legacy default stream, so user kernels on stream 0 see our results).
inline cudaStream_t cuda_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    FG_CUDA_CHECK(cudaStreamCreate(&s));
    return s;
  }();
  return stream;
}

namespace backend {

inline constexpr std::size_t alignment = 256;

/// Allocates `bytes` of device memory; out of memory throws memory_error with the bytes asked and
/// the bytes free.
inline void* allocate(std::size_t bytes) {
  if (bytes == 0) {
    return nullptr;
  }
  void* p = nullptr;
  const cudaError_t status = cudaMallocAsync(&p, bytes, cuda_stream());
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    throw memory_error("cudaMallocAsync: out of device memory asking for " +
                       std::to_string(bytes) + " bytes (" + std::to_string(free_bytes) +
                       " bytes free of " + std::to_string(total_bytes) + ")");
  }
  FG_CUDA_CHECK(status);
  return p;
}

inline void deallocate(void* p, std::size_t /*bytes*/) noexcept {
  if (p != nullptr) {
    (void)cudaFreeAsync(p, cuda_stream());  // a destructor must not throw
  }
}

inline void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes) {
    FG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream()));
    FG_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));  // `src` may be a temporary
  }
}
inline void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes) {
    FG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
    FG_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  }
}
inline void copy_on_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes) {
    FG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
  }
}

inline void synchronize() { FG_CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); }

/// What "device" means here, for logs: "NVIDIA H100 80GB HBM3 (CUDA backend, sm_90, 132 SMs)".
inline std::string describe() {
  int device = 0;
  FG_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp p{};
  FG_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return std::string(p.name) + " (CUDA backend, sm_" + std::to_string(p.major * 10 + p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs)";
}

}  // namespace backend
}  // namespace fusegrad::inline FG_BACKEND_NS
