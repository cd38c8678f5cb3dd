// fusegrad/backend/cuda/gemm.hpp — matrix products on CUDA: one cublasGemmStridedBatchedEx call.
//
// cuBLAS is column-major; a row-major C = A · B is the column-major Cᵀ = Bᵀ · Aᵀ, so the operands
// swap places and a transposed view becomes a transpose flag, never a copy. Float products may
// run on TF32 tensor cores when asked (set_tf32); they are exact float by default.
#pragma once

#include <cublas_v2.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <string>

#include "fusegrad/backend/cuda/runtime.hpp"
#include "fusegrad/backend/gemm_desc.hpp"
#include "fusegrad/core/dtype.hpp"
#include "fusegrad/core/error.hpp"
#include "fusegrad/eval/stats.hpp"

namespace fusegrad::inline FG_BACKEND_NS {
/// Throws cuda_error for a failed cuBLAS call (FG_CUBLAS_CHECK); not for users.
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw cuda_error(std::string(call) + " failed: " + cublasGetStatusName(status) + " (" +
                     cublasGetStatusString(status) + ") at " + file + ":" + std::to_string(line));
  }
}

namespace backend {
namespace detail {

/// cuBLAS's workspace: NVIDIA's recommended 32 MiB for Hopper, owned by us and set once, so a GEMM
/// captured in a CUDA graph never allocates (see cublasSetWorkspace).
inline constexpr std::size_t cublas_workspace_bytes = std::size_t(32) << 20;

/// Created on first use, outside any capture (Graph::capture creates it first: cublasCreate and the
/// workspace's cudaMalloc cannot be captured).
inline cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    FG_CUBLAS_CHECK(cublasCreate(&h));
    FG_CUBLAS_CHECK(cublasSetStream(h, cuda_stream()));
    void* workspace = nullptr;
    FG_CUDA_CHECK(cudaMalloc(&workspace, cublas_workspace_bytes));
    FG_CUBLAS_CHECK(cublasSetWorkspace(h, workspace, cublas_workspace_bytes));
    return h;
  }();
  return handle;
}

template <class T>
constexpr cudaDataType_t cuda_type() {
  if constexpr (std::is_same_v<T, float>) {
    return CUDA_R_32F;
  } else if constexpr (std::is_same_v<T, double>) {
    return CUDA_R_64F;
  } else if constexpr (std::is_same_v<T, __half>) {
    return CUDA_R_16F;
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "matmul: unsupported dtype on CUDA");
    return CUDA_R_16BF;
  }
}

/// set_tf32's switch.
inline std::atomic<bool>& tf32_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

/// Throws shape_error when a GEMM size does not fit cuBLAS's int parameters.
inline void check_int_sizes(index_t batch, index_t m, index_t n, index_t k, index_t lda,
                            index_t ldb, index_t ldc) {
  const char* names[] = {"batch", "m", "n", "k", "lda", "ldb", "ldc"};
  const index_t sizes[] = {batch, m, n, k, lda, ldb, ldc};
  for (int i = 0; i < 7; ++i) {
    if (sizes[i] > INT_MAX) {
      std::string all;
      for (int j = 0; j < 7; ++j) {
        all += std::string(j ? ", " : "") + names[j] + " = " + std::to_string(sizes[j]);
      }
      throw shape_error(std::string("matmul: ") + names[i] + " exceeds cuBLAS's int limit (" +
                        std::to_string(INT_MAX) + "): " + all);
    }
  }
}

}  // namespace detail

/// CUDA backend only (the host backend has no such switch): lets float matrix products run on TF32
/// tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to TF32's 10-bit mantissa, products
/// accumulated in float; several times the float throughput on Ampere and later, at roughly 1e-3
/// relative error instead of float's 1e-7).
/// Off by default. Process-wide, read by every float GEMM as it is issued, so it can be toggled
/// between products; it sets no cuBLAS math mode, and half, bfloat16 and double products ignore it.
/// A captured graph (compile_step) keeps the mode it was captured with.
/// Example: `fg::backend::set_tf32(true); fg::Tensor<float, 2> c = fg::matmul(a, b);  // TF32`
inline void set_tf32(bool enabled) {
  detail::tf32_flag().store(enabled, std::memory_order_relaxed);
}

/// Whether float matrix products may use TF32 (see set_tf32); CUDA backend only.
/// Example: `if (fg::backend::tf32_enabled()) { tolerance = 1e-2f; }`
inline bool tf32_enabled() {
  return detail::tf32_flag().load(std::memory_order_relaxed);
}

/// Runs the whole (batched) product in one cuBLAS call (or, when the batch's two axes have
/// unrelated strides, see GemmOperand, one per entry of the shorter axis). TA: operand storage
/// type; TC: result type (float for half/bfloat16 operands, which accumulate in float). Throws shape_error when a size
/// or leading dimension exceeds cuBLAS's int range.
template <class TA, class TC>
void gemm(const GemmProblem<TA, TC>& p) {
  static_assert(gemm_writes<TA, TC>,
                "matmul on CUDA: cuBLAS writes a product of TA operands as TA or as float only");
  if (p.batch == 0 || p.m == 0 || p.n == 0) {
    return;
  }
  const auto lda = std::max<index_t>({p.a.ld, p.a.trans ? p.m : p.k, 1});
  const auto ldb = std::max<index_t>({p.b.ld, p.b.trans ? p.k : p.n, 1});
  detail::check_int_sizes(p.batch, p.m, p.n, p.k, lda, ldb, p.ldc);
  detail::report_pending();
  constexpr bool is_double = std::is_same_v<TC, double>;
  // alpha and beta are in the compute type (64F for double, 32F for everything else, half and
  // bfloat16 results included), not the result type.
  using Scale = std::conditional_t<is_double, double, float>;
  const Scale one = 1, beta = p.accumulate ? 1 : 0;
  cublasComputeType_t compute = is_double ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
  if constexpr (std::is_same_v<TA, float>) {
    if (tf32_enabled()) {
      compute = CUBLAS_COMPUTE_32F_FAST_TF32;  // per call: no cuBLAS math mode outlives it
    }
  }
  // One strided-batched call over the whole batch when its two axes (outer, inner) compose into
  // one stride; else one call per entry of the shorter axis, batched over the longer one.
  const index_t inner = p.group();
  const index_t outer = p.batch / inner;
  struct Call {
    index_t count, a_stride, b_stride, c_stride;
  };
  Call call{p.batch, p.a.batch_stride, p.b.batch_stride, p.m * p.ldc};
  index_t calls = 1, a_step = 0, b_step = 0, c_step = 0;
  if (!(p.a.one_stride(inner, p.batch) && p.b.one_stride(inner, p.batch))) {
    if (inner >= outer) {  // loop over the outer axis
      call = {inner, p.a.batch_stride, p.b.batch_stride, p.m * p.ldc};
      calls = outer;
      a_step = p.a.outer_stride, b_step = p.b.outer_stride, c_step = inner * p.m * p.ldc;
    } else {  // loop over the inner axis
      call = {outer, p.a.outer_stride, p.b.outer_stride, inner * p.m * p.ldc};
      calls = inner;
      a_step = p.a.batch_stride, b_step = p.b.batch_stride, c_step = p.m * p.ldc;
    }
  }
  for (index_t i = 0; i < calls; ++i) {
    stats::count_gemm();
    FG_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        detail::cublas_handle(), p.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N,
        p.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(p.n), static_cast<int>(p.m),
        static_cast<int>(p.k), &one, p.b.ptr + i * b_step, detail::cuda_type<TA>(), static_cast<int>(ldb),
        call.b_stride, p.a.ptr + i * a_step, detail::cuda_type<TA>(), static_cast<int>(lda), call.a_stride,
        &beta, p.c + i * c_step, detail::cuda_type<TC>(), static_cast<int>(p.ldc), call.c_stride,
        static_cast<int>(call.count), compute, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace backend
}  // namespace fusegrad::inline FG_BACKEND_NS
