// fusegrad/expr/matmul.hpp — Matmul<A, B>: a matrix product (rank 2) or a batch of them (rank 3,
// or rank 4: two batch axes, e.g. [B, H, T, D] attention heads viewed in place).
// A boundary node: evaluated by one GEMM call (cuBLAS on CUDA, BLAS or a blocked kernel on the
// host); used inside an element-wise expression it is evaluated first into a temporary.
#pragma once

#include <string>

#include "fusegrad/expr/map.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// @pre a: (..., M, K); b: (..., K, N) with up to two batch axes, aligned from the right, each
/// equal or 1 (a missing axis counts as 1).
/// @post result(..., i, j) = sum_k a(..., i, k) * b(..., k, j).
template <class A, class B>
struct Matmul : ExprBase<Matmul<A, B>> {
  using value_type = typename A::value_type;
  static constexpr int rank = A::rank > B::rank ? A::rank : B::rank;
  A a;
  B b;
  Shape<rank> extents;

  Shape<rank> shape() const { return extents; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    return materialize(*this, plan);
  }
};

template <class E>
struct is_matmul : std::false_type {};
template <class A, class B>
struct is_matmul<Matmul<A, B>> : std::true_type {};

/// Matrix product of two matrices, or of batches of matrices with one or two batch axes (an
/// operand with fewer axes, or extent 1, is shared along them). Any strided view whose last two
/// axes are row-major or transposed is read in place (strided-batched GEMM; permuted head views
/// need no copy). Inner extents must agree: `matmul: inner dimensions differ ...` otherwise.
template <tensor_expression EA, tensor_expression EB>
auto matmul(const EA& ea, const EB& eb) {
  auto a = as_node(ea);
  auto b = as_node(eb);
  using A = decltype(a);
  using B = decltype(b);
  static_assert(A::rank >= 2 && A::rank <= 4 && B::rank >= 2 && B::rank <= 4,
                "matmul: operands must have rank 2 (matrices), 3 or 4 (batches of matrices over one or two "
                "batch axes)");
  static_assert(std::is_same_v<typename A::value_type, typename B::value_type>,
                "matmul: both operands must have the same dtype (convert one with fg::cast)");
  static_assert(std::is_floating_point_v<typename A::value_type>,
                "matmul: operands must be floating point (float or double; half/bfloat16 on CUDA)");
  const auto sa = a.shape();
  const auto sb = b.shape();
  const index_t m = sa[A::rank - 2], k = sa[A::rank - 1];
  const index_t k2 = sb[B::rank - 2], n = sb[B::rank - 1];
  if (k != k2) {
    throw shape_error("matmul: inner dimensions differ: " + to_string(sa) + " @ " + to_string(sb) +
                      " (lhs columns " + std::to_string(k) + " != rhs rows " + std::to_string(k2) +
                      ")");
  }
  using Node = Matmul<A, B>;
  Shape<Node::rank> out;
  for (int i = 0; i < Node::rank - 2; ++i) {  // batch axes, aligned from the right
    const int ia = i - (Node::rank - A::rank), ib = i - (Node::rank - B::rank);
    const index_t ba = ia >= 0 ? sa[ia] : 1;
    const index_t bb = ib >= 0 ? sb[ib] : 1;
    if (ba != bb && ba != 1 && bb != 1) {
      throw shape_error("matmul: batch extents differ: " + to_string(sa) + " @ " + to_string(sb));
    }
    out[i] = ba == 1 ? bb : ba;
  }
  out[Node::rank - 2] = m;
  out[Node::rank - 1] = n;
  return Node{{}, a, b, out};
}

}  // namespace fusegrad::inline FG_BACKEND_NS
