// fusegrad/core/config.hpp — the one header that owns every macro.
//
// Backend selection: a translation unit compiled by nvcc (__CUDACC__) targets the CUDA GPU; any
// other compiler targets the CPU through OpenMP. All translation units of one program that use
// fusegrad must target the same backend: the inline namespace below turns a mix into a link
// error instead of silent corruption.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FG_BACKEND_CUDA 1
#define FG_HOST_DEVICE __host__ __device__ __forceinline__
#define FG_DEVICE __device__ __forceinline__
#define FG_HD __host__ __device__
#define FG_UNROLL _Pragma("unroll")
#define FG_BACKEND_NS cuda_backend
#else
#define FG_BACKEND_HOST 1
#define FG_HOST_DEVICE inline
#define FG_DEVICE inline
#define FG_HD
#define FG_UNROLL
#define FG_BACKEND_NS host_backend
#endif


/// Keeps a function out of line (the host backend's loop bodies: compiled once, called from both
/// the serial and the parallel path).
// Whether float exp and erfc use ops/vector_math.hpp: host code built for AVX2 + FMA or better
// (-march=native on most machines of the last decade), where loops that call them vectorise with
// gathers and fused multiply-adds. With SSE2 alone (x86-64's baseline) the strided loads of an
// indexed row do not vectorise, and libm's scalar calls are faster than the polynomial one value
// at a time. Device code always uses CUDA's.
#if !defined(__CUDA_ARCH__) && defined(__AVX2__) && defined(__FMA__)
#define FG_VECTOR_MATH 1
#else
#define FG_VECTOR_MATH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FG_NOINLINE __attribute__((noinline))
#else
#define FG_NOINLINE
#endif

/// Checks a host-side precondition that is a bug in fusegrad itself when it fails.
#define FG_ASSERT(cond)                                                          \
  do {                                                                           \
    if (!(cond)) {                                                               \
      ::fusegrad::assertion_failed(#cond, __FILE__, __LINE__);           \
    }                                                                            \
  } while (0)

/// Checks a CUDA runtime call; failure throws fusegrad::cuda_error naming the call and place.
#define FG_CUDA_CHECK(call) ::fusegrad::check_cuda((call), #call, __FILE__, __LINE__)

/// Checks a cuBLAS call; failure throws fusegrad::cuda_error naming the call and place.
#define FG_CUBLAS_CHECK(call) ::fusegrad::check_cublas((call), #call, __FILE__, __LINE__)

namespace fusegrad {
using index_t = std::int64_t;
inline constexpr int max_rank = 6;
}  // namespace fusegrad
