// fusegrad/backend/gemm_desc.hpp — how a GEMM operand is laid out, shared by both backends.
#pragma once

#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"

namespace fusegrad::inline FG_BACKEND_NS::backend {

/// A row-major matrix operand op(X) of a (batched) GEMM.
/// Not transposed: element (r, c) at ptr[batch * batch_stride + r * ld + c];
/// transposed:     element (r, c) at ptr[batch * batch_stride + c * ld + r].
template <class T>
struct GemmOperand {
  const T* ptr = nullptr;
  bool trans = false;
  index_t ld = 0;
  index_t batch_stride = 0;  // 0: the same matrix for every batch entry
};

/// C(b) = A(b) · B(b) (or, accumulating, C(b) += A(b) · B(b)) for b in [0, batch): A is (m, k),
/// B is (k, n), C (m, n) row-major with leading dimension ldc and batch stride m * ldc.
template <class TA, class TC>
struct GemmProblem {
  index_t batch = 1, m = 0, n = 0, k = 0;
  GemmOperand<TA> a, b;
  TC* c = nullptr;
  index_t ldc = 0;
  bool accumulate = false;  // beta = 1: add the product to what C holds
};

/// Whether a GEMM of TA operands writes a TC result itself: TC is TA, or the type TA computes in
/// (a half or bfloat16 product, accumulated in float, stored as float). Any other result type
/// (float operands into a half tensor: cuBLAS has no such product) is not a GemmProblem; the
/// evaluator computes it in compute_t<TA> first (eval/assign.hpp, gemm_run).
template <class TA, class TC>
inline constexpr bool gemm_writes = std::is_same_v<TA, TC> || std::is_same_v<compute_t<TA>, TC>;

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
