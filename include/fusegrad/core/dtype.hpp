// fusegrad/core/dtype.hpp — the element types fusegrad stores and the types it computes in.
//
// float, double, int32, int64 and bool are stored and computed as themselves. On CUDA, half and
// bfloat16 are storage types: loads widen them to float, math happens in float, stores narrow.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "fusegrad/core/config.hpp"

#if defined(FG_BACKEND_CUDA)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace fusegrad {

#if defined(FG_BACKEND_CUDA)
using half = __half;
using bfloat16 = __nv_bfloat16;
#endif

template <class T>
struct dtype_traits;

template <class Compute>
struct dtype_info {
  using compute_type = Compute;
};
template <>
struct dtype_traits<float> : dtype_info<float> {
  static constexpr const char* name = "float32";
};
template <>
struct dtype_traits<double> : dtype_info<double> {
  static constexpr const char* name = "float64";
};
template <>
struct dtype_traits<std::int32_t> : dtype_info<std::int32_t> {
  static constexpr const char* name = "int32";
};
template <>
struct dtype_traits<std::int64_t> : dtype_info<std::int64_t> {
  static constexpr const char* name = "int64";
};
template <>
struct dtype_traits<std::uint8_t> : dtype_info<std::uint8_t> {
  static constexpr const char* name = "uint8";
};
template <>
struct dtype_traits<bool> : dtype_info<bool> {
  static constexpr const char* name = "bool";
};
#if defined(FG_BACKEND_CUDA)
template <>
struct dtype_traits<__half> : dtype_info<float> {
  static constexpr const char* name = "float16";
};
template <>
struct dtype_traits<__nv_bfloat16> : dtype_info<float> {
  static constexpr const char* name = "bfloat16";
};
#endif

/// A type fusegrad can store in a tensor.
template <class T>
concept dtype = requires { dtype_traits<T>::name; };

/// The type loads of a `T` produce and element-wise math runs in (float for half/bfloat16).
template <class T>
using compute_t = typename dtype_traits<T>::compute_type;

/// Converts a computed value to the storage type (narrowing half/bfloat16 on CUDA).
template <class T, class U>
FG_HOST_DEVICE T to_storage(U v) {
  return static_cast<T>(v);
}

/// True for the types element-wise math is done in that are floating point.
template <class T>
concept floating = std::is_floating_point_v<T>;

/// The result type of an arithmetic op on two computed types (NumPy-style promotion for tensors).
template <class A, class B>
using promote_t = std::conditional_t<std::is_same_v<A, bool>, B,
                                     std::conditional_t<std::is_same_v<B, bool>, A,
                                                        std::common_type_t<A, B>>>;

}  // namespace fusegrad
