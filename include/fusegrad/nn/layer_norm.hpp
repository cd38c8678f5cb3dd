// fusegrad/nn/layer_norm.hpp — layer normalisation over the last axis, one node with one fused
// rule, and the LayerNorm layer.
//
//   layer_norm(x, eps)                x̂ = (x - μ) r,  r = 1 / √(σ² + ε)    same shape as x
//   layer_norm(x, gamma, beta, eps)   x̂ γ + β                               γ, β: (C), x: (..., C)
//   LayerNorm<T>(C)                   γ = 1, β = 0; fields "weight" (γ), "bias" (β)
//
// μ and σ² (population variance, as PyTorch) are the moments of each row of the last axis.
// Forward: one reduction (μ and σ² of every row in one pass, Welford's update: no cancellation for
// rows far from zero; kept for the backward pass) and one element-wise kernel that also applies γ
// and β and whatever follows. Backward for x, given h = dL/dx̂ (here h = g γ, inline):
//   dx = r (h - mean(h) - x̂ mean(h x̂))
// one reduction (Σ h and Σ h x̂ of every row in one pass) and one element-wise kernel; γ and β get
// their gradients from the affine expression (one column sum each).
#pragma once

#include <string>

#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/reduce.hpp"
#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {
/// `index` without its last axis.
template <int R>
FG_HOST_DEVICE Shape<R - 1> row_of(const Shape<R>& index) {
  Shape<R - 1> row;
  FG_UNROLL for (int i = 0; i < R - 1; ++i) { row[i] = index[i]; }
  return row;
}
}  // namespace detail

namespace nn {

/// (x - μ) / √(σ² + ε) over the last axis, given S: the rows' {μ, σ²} (rank R - 1).
template <class X, class S>
struct Normalize : ExprBase<Normalize<X, S>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  X x;
  S stats;
  value_type eps;

  Shape<rank> shape() const { return x.shape(); }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    const auto m = stats.at(fusegrad::FG_BACKEND_NS::detail::row_of<rank>(index));
    return (static_cast<value_type>(x.at(index)) - m.first) * ops::rsqrt{}(m.second + eps);
  }
  /// Row cursor (node.hpp): the row's μ and 1/σ read once.
  template <class C>
  struct Row {
    C x;
    value_type mean, inv_std;
    value_type operator()(index_t j) const { return (static_cast<value_type>(x(j)) - mean) * inv_std; }
  };
  auto row(const Shape<rank>& index) const {
    const auto m = stats.at(fusegrad::FG_BACKEND_NS::detail::row_of<rank>(index));
    using C = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    return Row<C>{fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index), m.first, ops::rsqrt{}(m.second + eps)};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    auto ps = fusegrad::FG_BACKEND_NS::detail::prepare_reduction_of(stats, px, plan);
    return Normalize<decltype(px), decltype(ps)>{{}, px, ps, eps};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return x.conflicts_with(b, e, false) || stats.conflicts_with(b, e, false);
  }
};

/// The pair {a, b} of two same-shaped expressions, reduced together by ops::sum_two.
template <class A, class B>
struct Zip : ExprBase<Zip<A, B>> {
  using value_type = ops::Two<typename A::value_type>;
  static constexpr int rank = A::rank;
  static constexpr bool may_be_linear = false;
  A a;
  B b;

  Shape<rank> shape() const { return a.shape(); }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    return {a.at(index), static_cast<typename A::value_type>(b.at(index))};
  }
  template <class CA, class CB>
  struct Row {
    CA a;
    CB b;
    value_type operator()(index_t j) const { return {a(j), static_cast<typename A::value_type>(b(j))}; }
  };
  auto row(const Shape<rank>& index) const {
    using CA = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(a, index));
    using CB = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(b, index));
    return Row<CA, CB>{fusegrad::FG_BACKEND_NS::detail::row_cursor(a, index),
                       fusegrad::FG_BACKEND_NS::detail::row_cursor(b, index)};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pa = a.prepare(plan);
    auto pb = b.prepare(plan);
    return Zip<decltype(pa), decltype(pb)>{{}, pa, pb};
  }
  bool conflicts_with(const void* b0, const void* e, bool) const {
    return a.conflicts_with(b0, e, false) || b.conflicts_with(b0, e, false);
  }
};

/// dx = r (h - (Σh + x̂ Σ h x̂) / C) for layer norm's input, given the rows' {μ, σ²} (S) and
/// {Σh, Σ h x̂} (Q).
template <class H, class X, class S, class Q>
struct NormalizeGrad : ExprBase<NormalizeGrad<H, X, S, Q>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  H h;
  X x;
  S stats;
  Q sums;
  value_type eps;
  index_t features = 0;  // C, x's last extent (device code cannot ask a node for its shape)

  Shape<rank> shape() const { return x.shape(); }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    const auto row = fusegrad::FG_BACKEND_NS::detail::row_of<rank>(index);
    const auto m = stats.at(row);
    const auto q = sums.at(row);
    const value_type r = ops::rsqrt{}(m.second + eps);
    const value_type xhat = (static_cast<value_type>(x.at(index)) - m.first) * r;
    const auto c = static_cast<value_type>(features);
    return r * (static_cast<value_type>(h.at(index)) - (q.first + xhat * q.second) / c);
  }
  /// Row cursor (node.hpp): the row's statistics and sums read once.
  template <class CH, class CX>
  struct Row {
    CH h;
    CX x;
    value_type mean, inv_std, sum_h, sum_hx, features;
    value_type operator()(index_t j) const {
      const value_type xhat = (static_cast<value_type>(x(j)) - mean) * inv_std;
      return inv_std * (static_cast<value_type>(h(j)) - (sum_h + xhat * sum_hx) / features);
    }
  };
  auto row(const Shape<rank>& index) const {
    const auto r = fusegrad::FG_BACKEND_NS::detail::row_of<rank>(index);
    const auto m = stats.at(r);
    const auto q = sums.at(r);
    using CH = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(h, index));
    using CX = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    return Row<CH, CX>{fusegrad::FG_BACKEND_NS::detail::row_cursor(h, index),
                       fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index),
                       m.first,
                       ops::rsqrt{}(m.second + eps),
                       q.first,
                       q.second,
                       static_cast<value_type>(features)};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto ph = h.prepare(plan);
    auto px = x.prepare(plan);
    auto ps = stats.prepare(plan);
    auto pq = sums.prepare(plan);
    return NormalizeGrad<decltype(ph), decltype(px), decltype(ps), decltype(pq)>{{}, ph, px, ps, pq, eps,
                                                                               features};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return h.conflicts_with(b, e, false) || x.conflicts_with(b, e, false) ||
           stats.conflicts_with(b, e, false) || sums.conflicts_with(b, e, false);
  }
};

/// Layer normalisation of x over its last axis, without an affine part: (x - μ) / √(σ² + ε).
/// Example: `fg::Tensor<float, 2> n = fg::nn::layer_norm(x);`
template <tensor_expression E>
auto layer_norm(const E& input, double eps = 1e-5) {
  auto x = as_node(input);
  using X = decltype(x);
  using V = typename X::value_type;
  static_assert(X::rank >= 1, "layer_norm: needs an operand of rank 1 or more (features on the last axis)");
  static_assert(std::is_floating_point_v<V>, "layer_norm: needs a floating-point operand");
  if (!(eps >= 0)) {
    throw error("layer_norm: eps must be >= 0, got " + std::to_string(eps));
  }
  auto stats = fusegrad::FG_BACKEND_NS::detail::reduce_axis<ops::moments, false>(x, X::rank - 1);
  return Normalize<X, decltype(stats)>{{}, x, stats, static_cast<V>(eps)};
}

/// Layer normalisation with a per-feature scale and shift: layer_norm(x, eps) · γ + β, where γ and
/// β have shape (C), C = x's last extent. Example: `h = fg::nn::layer_norm(x, ln.weight, ln.bias);`
template <tensor_expression E, tensor_expression G, tensor_expression B>
auto layer_norm(const E& x, const G& gamma, const B& beta, double eps = 1e-5) {
  auto xn = as_node(x);
  auto gn = as_node(gamma);
  auto bn = as_node(beta);
  static_assert(decltype(gn)::rank == 1 && decltype(bn)::rank == 1,
                "layer_norm: gamma and beta have rank 1 (one value per feature)");
  const index_t c = decltype(xn)::rank >= 1 ? xn.shape()[decltype(xn)::rank - 1] : 0;
  if (gn.shape()[0] != c || bn.shape()[0] != c) {
    throw shape_error("layer_norm: gamma " + to_string(gn.shape()) + " and beta " + to_string(bn.shape()) +
                      " must both have shape [" + std::to_string(c) + "], the last extent of x " +
                      to_string(xn.shape()));
  }
  return layer_norm(xn, eps) * gn + bn;
}

/// A layer-norm layer over C features: γ (ones) and β (zeros), named "weight" and "bias" (as
/// PyTorch's nn.LayerNorm). Example: `fg::nn::LayerNorm<float> ln(128); auto y = ln(x);`
template <class T = float>
struct LayerNorm {
  Tensor<T, 1> weight;  // γ (C)
  Tensor<T, 1> bias;    // β (C)
  double eps = 1e-5;

  explicit LayerNorm(index_t features, double epsilon = 1e-5)
      : weight(Shape<1>({features})), bias(Shape<1>({features})), eps(epsilon) {
    weight.fill(T(1));
    bias.fill(T(0));
  }

  void fields(auto& f) {
    f("weight", weight);
    f("bias", bias);
  }

  template <tensor_expression X>
  auto operator()(const X& x) const {
    return layer_norm(x, weight, bias, eps);
  }
};

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, class S, class Tp>
auto record(const Normalize<X, S>& n, Tp& tape) {
  auto x = record(n.x, tape);
  Shape<X::rank - 1> rows = fusegrad::FG_BACKEND_NS::detail::row_of<X::rank>(n.x.shape());
  // The rows' moments are values the fused rule reads; no gradient flows into them.
  auto stats = tape.template save<false>(Reduce<ops::moments, decltype(x), X::rank - 1>{{}, x, X::rank - 1, rows});
  return Normalize<decltype(x), decltype(stats)>{{}, x, stats, n.eps};
}
template <class X, class S, class Tp>
bool depends(const Normalize<X, S>& n, const Tp& tape) {
  return depends(n.x, tape);
}
template <class X, class S>
bool same(const Normalize<X, S>& a, const Normalize<X, S>& b) {
  return a.eps == b.eps && same(a.x, b.x) && same(a.stats, b.stats);
}
/// dx = r (h - mean(h) - x̂ mean(h x̂)): one two-valued row reduction, one element-wise kernel.
template <class X, class S, class G, class Tp>
void backprop(const Normalize<X, S>& n, const G& g, Tp& tape) {
  if (depends(n.x, tape)) {
    const auto stats = n.stats.value();
    const Normalize<X, decltype(stats)> xhat{{}, n.x, stats, n.eps};
    const auto h = as_node(g);
    auto hx = h * xhat;
    auto sums = fusegrad::FG_BACKEND_NS::detail::reduce_axis<ops::sum_two, false>(
        Zip<decltype(h), decltype(hx)>{{}, h, hx}, X::rank - 1);
    backprop(n.x,
             NormalizeGrad<decltype(h), X, decltype(stats), decltype(sums)>{{}, h, n.x, stats, sums, n.eps,
                                                                            n.x.shape()[X::rank - 1]},
             tape);
  }
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
