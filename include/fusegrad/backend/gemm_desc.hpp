// fusegrad/backend/gemm_desc.hpp — how a GEMM operand is laid out, shared by both backends.
#pragma once

#include "fusegrad/core/config.hpp"

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

}  // namespace fusegrad::inline FG_BACKEND_NS::backend
