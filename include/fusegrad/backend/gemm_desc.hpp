// fusegrad/backend/gemm_desc.hpp — how a GEMM operand is laid out, shared by both backends.
#pragma once

#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

/// A row-major matrix operand op(X) of a (batched) GEMM. Batch entry b of a batch grouped as
/// (outer, inner) = (b / inner, b % inner) starts at ptr + outer * outer_stride + inner *
/// batch_stride (two batch axes with unrelated strides: the heads of a [B, T, H, D] tensor viewed
/// as [B, H, T, D]). From there,
/// not transposed: element (r, c) at [r * ld + c]; transposed: element (r, c) at [c * ld + r].
template <class T>
struct GemmOperand {
  const T* ptr = nullptr;
  bool trans = false;
  index_t ld = 0;
  index_t batch_stride = 0;  // 0: the same matrix for every inner batch entry
  index_t outer_stride = 0;  // 0: the same for every outer batch entry

  /// Where batch entry `b` starts, in elements, for groups of `inner` entries.
  index_t offset(index_t b, index_t inner) const { return b / inner * outer_stride + b % inner * batch_stride; }
  /// Whether the (outer, inner) grouping is one stride: entry b at b * batch_stride.
  bool one_stride(index_t inner, index_t batch) const {
    return inner >= batch || outer_stride == inner * batch_stride;
  }
};

/// C(b) = A(b) · B(b) (or, accumulating, C(b) += A(b) · B(b)) for b in [0, batch): A is (m, k),
/// B is (k, n), C (m, n) row-major with leading dimension ldc and batch stride m * ldc. The batch
/// is `batch / inner` groups of `inner` entries (see GemmOperand::offset); 0: one group.
template <class TA, class TC>
struct GemmProblem {
  index_t batch = 1, m = 0, n = 0, k = 0;
  GemmOperand<TA> a, b;
  TC* c = nullptr;
  index_t ldc = 0;
  bool accumulate = false;  // beta = 1: add the product to what C holds
  index_t inner = 0;

  index_t group() const { return inner > 0 ? inner : (batch > 0 ? batch : 1); }
};

/// Whether a GEMM of TA operands writes a TC result itself: TC is TA, or the type TA computes in
/// (a half or bfloat16 product, accumulated in float, stored as float). Any other result type
/// (float operands into a half tensor: cuBLAS has no such product) is not a GemmProblem; the
/// evaluator computes it in compute_t<TA> first (eval/assign.hpp, gemm_run).
template <class TA, class TC>
inline constexpr bool gemm_writes = std::is_same_v<TA, TC> || std::is_same_v<compute_t<TA>, TC>;

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
