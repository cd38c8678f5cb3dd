// fusegrad/nn/attention.hpp — scaled dot-product attention, composed: two batched GEMMs around the
// fused (causal) softmax, its backward derived by the rules of each piece.
//
//   scaled_dot_product_attention(q, k, v[, causal])
//     = softmax(q kᵀ / √D [masked: key j > query i]) v      q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv)
//
// The batch of heads is one axis (N = B·H) or two ([B, H, T, D]). The two-axis form takes the
// heads where a projection left them: `select(permute(reshape(qkv, {B, T, 3, H, D}), {2, 0, 3, 1,
// 4}), 0, i)` is a strided view the GEMMs read in place (batches over B and H; no transposing
// copy). (A reshape of a view that is not a tensor is an index map, not a view: reshape the
// tensor first, then permute and select.) kᵀ is a permuted
// view that reaches the GEMM as a transpose flag (no copy). Launches: forward 2 GEMMs +
// 2 kernels (the softmax's row log-sum-exp and probabilities, mask and scale fused); backward 4
// GEMMs + 2 kernels (the softmax rule) + what the operands' own rules need (tests/
// test_transformer_ops.cpp counts a whole forward + backward: 6 GEMMs + 8 kernels).
#pragma once

#include <cmath>

#include "fusegrad/expr/matmul.hpp"
#include "fusegrad/expr/view.hpp"
#include "fusegrad/nn/softmax.hpp"

namespace fusegrad::inline FG_BACKEND_NS::nn {

namespace detail {
template <class Q, class K, class V>
void check_attention(const Q& q, const K& k, const V& v) {
  static_assert((Q::rank == 3 || Q::rank == 4) && K::rank == Q::rank && V::rank == Q::rank,
                "scaled_dot_product_attention: q, k and v have the same rank, 3 (heads, tokens, features) "
                "or 4 (batch, heads, tokens, features)");
  constexpr int R = Q::rank;
  const auto qs = q.shape(), ks = k.shape(), vs = v.shape();
  bool fits = qs[R - 1] == ks[R - 1] && ks[R - 2] == vs[R - 2];
  for (int i = 0; i < R - 2; ++i) {
    fits = fits && qs[i] == ks[i] && ks[i] == vs[i];
  }
  if (!fits) {
    throw shape_error("scaled_dot_product_attention: q " + to_string(qs) + ", k " + to_string(ks) + " and v " +
                      to_string(vs) + " do not fit (q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv))");
  }
}
}  // namespace detail

namespace detail {
template <class... Mask, class Q, class K, class V>
auto attention(const Q& q, const K& k, const V& v, Mask... mask) {
  auto qn = as_node(q);
  auto kn = as_node(k);
  auto vn = as_node(v);
  check_attention(qn, kn, vn);
  using T = typename decltype(qn)::value_type;
  constexpr int R = decltype(qn)::rank;
  const T scale = T(1) / std::sqrt(static_cast<T>(qn.shape()[R - 1]));
  if constexpr (R == 3) {
    return matmul(softmax(matmul(qn, permute(kn, {0, 2, 1})) * scale, -1, mask...), vn);
  } else {
    return matmul(softmax(matmul(qn, permute(kn, {0, 1, 3, 2})) * scale, -1, mask...), vn);
  }
}
}  // namespace detail

/// softmax(q kᵀ / √D) v over a batch of heads. Example: `auto y = fg::nn::scaled_dot_product_attention(q, k, v);`
template <tensor_expression Q, tensor_expression K, tensor_expression V>
auto scaled_dot_product_attention(const Q& q, const K& k, const V& v) {
  return detail::attention(q, k, v);
}

/// Causal attention: query i attends to keys 0..i (the mask computed from the index inside the
/// softmax's kernels). Example: `auto y = fg::nn::scaled_dot_product_attention(q, k, v, fg::nn::causal);`
template <tensor_expression Q, tensor_expression K, tensor_expression V>
auto scaled_dot_product_attention(const Q& q, const K& k, const V& v, causal_t) {
  return detail::attention(q, k, v, causal);
}

}  // namespace fusegrad::inline FG_BACKEND_NS::nn
