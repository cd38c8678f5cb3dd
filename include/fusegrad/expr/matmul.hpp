// fusegrad/expr/matmul.hpp — Matmul<A, B>: a matrix product (rank 2) or a batch of them (rank 3).
// A boundary node: evaluated by one GEMM call (cuBLAS on CUDA, BLAS or a blocked kernel on the
// host); used inside an element-wise expression it is evaluated first into a temporary.
#pragma once

#include <string>

#include "fusegrad/expr/map.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// @pre a: (M, K) or (B, M, K); b: (K, N) or (B, K, N); batch extents equal or 1.
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

/// Matrix product of two matrices, or of batches of matrices (a rank-2 operand is shared by every
/// batch entry). Inner extents must agree: `matmul: inner dimensions differ ...` otherwise.
template <tensor_expression EA, tensor_expression EB>
auto matmul(const EA& ea, const EB& eb) {
  auto a = as_node(ea);
  auto b = as_node(eb);
  using A = decltype(a);
  using B = decltype(b);
  static_assert((A::rank == 2 || A::rank == 3) && (B::rank == 2 || B::rank == 3),
                "matmul: operands must have rank 2 (matrices) or 3 (batches of matrices)");
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
  if constexpr (Node::rank == 3) {
    const index_t ba = A::rank == 3 ? sa[0] : 1;
    const index_t bb = B::rank == 3 ? sb[0] : 1;
    if (ba != bb && ba != 1 && bb != 1) {
      throw shape_error("matmul: batch extents differ: " + to_string(sa) + " @ " + to_string(sb));
    }
    out = Shape<3>({ba == 1 ? bb : ba, m, n});
  } else {
    out = Shape<2>({m, n});
  }
  return Node{{}, a, b, out};
}

}  // namespace fusegrad::inline FG_BACKEND_NS
