// fusegrad/nn/losses.hpp — losses, stable and with fused gradients.
//
//   cross_entropy(z, y)  per-row -log softmax(z)[y] = logsumexp(z) - z[y]   (N, C), (N) -> (N)
//   cross_entropy(z, y, ε)  with label smoothing ε (PyTorch's label_smoothing): the target is
//                        (1 - ε) onehot(y) + ε / C, so the loss is logsumexp(z) - (1 - ε) z[y] - ε mean(z)
//   mse(p, t)            per-row ½ Σ_j (p_j - t_j)²                           (N, C), (N, C) -> (N)
//   one_hot<T>(y, C)     1 where j == y_i, else 0                             (N) -> (N, C)
//
// cross_entropy is one node with one rule: d/dz = g · (softmax(z) - target), computed as
// e^(z - logsumexp(z)) from the saved row log-sum-exp, so no exponential of a large logit is ever
// taken, and the gradient is a single element-wise kernel. The log-sum-exp is formed in double
// (ops::logsumexp_wide) and z - logsumexp(z) is taken in double, so loss and gradient keep float's
// precision for logits far from zero (softmax and log_softmax: nn/softmax.hpp). The others are
// built from primitives and differentiated by their rules. Labels outside [0, C) give NaN (device code cannot throw;
// check labels when they are loaded).
#pragma once

#include <limits>
#include <string>

#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/reduce.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// Per-row cross-entropy of logits x (classes on the last axis) against integer labels; S is the
/// row log-sum-exp node (a reduction, or once planned or recorded, its value).
template <class X, class L, class S>
struct CrossEntropy : ExprBase<CrossEntropy<X, L, S>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank - 1;
  static constexpr bool may_be_linear = false;
  X x;
  L labels;
  S lse;
  Shape<rank> extents;
  index_t classes = 0;
  double smoothing = 0;  // ε: the target is (1 - ε) onehot(y) + ε / C

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    const auto y = static_cast<index_t>(labels.at(index));
    if (y < 0 || y >= classes) {
      return std::numeric_limits<value_type>::quiet_NaN();
    }
    Shape<X::rank> xi;
    FG_UNROLL for (int i = 0; i < rank; ++i) { xi[i] = index[i]; }
    xi[rank] = y;
    const double zy = static_cast<double>(x.at(xi));
    if (smoothing == 0) {
      return static_cast<value_type>(static_cast<double>(lse.at(index)) - zy);
    }
    double total = 0;  // Σ_k z_k, for the uniform part of the target
    for (index_t k = 0; k < classes; ++k) {
      xi[rank] = k;
      total += static_cast<double>(x.at(xi));
    }
    return static_cast<value_type>(static_cast<double>(lse.at(index)) - (1 - smoothing) * zy -
                                   smoothing * total / static_cast<double>(classes));
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    auto pl = labels.prepare(plan);
    auto ps = fusegrad::FG_BACKEND_NS::detail::prepare_reduction_of(lse, px, plan);
    return CrossEntropy<decltype(px), decltype(pl), decltype(ps)>{{}, px, pl, ps, extents, classes, smoothing};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return x.conflicts_with(b, e, false) || labels.conflicts_with(b, e, false) ||
           lse.conflicts_with(b, e, false);
  }
};

/// The gradient of CrossEntropy with respect to its logits: g · (e^(x - lse) - (1 - ε) [j == y] - ε / C).
template <class G, class X, class L, class S>
struct CrossEntropyGrad : ExprBase<CrossEntropyGrad<G, X, L, S>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  G g;
  X x;
  L labels;
  S lse;
  Shape<rank> extents;
  double smoothing = 0;

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    Shape<rank - 1> row;
    FG_UNROLL for (int i = 0; i < rank - 1; ++i) { row[i] = index[i]; }
    const auto y = static_cast<index_t>(labels.at(row));
    if (y < 0 || y >= extents[rank - 1]) {
      return std::numeric_limits<value_type>::quiet_NaN();
    }
    const value_type p = ops::exp{}(static_cast<value_type>(static_cast<double>(x.at(index)) -
                                                            static_cast<double>(lse.at(row))));
    if (smoothing == 0) {
      return static_cast<value_type>(g.at(row)) * (index[rank - 1] == y ? p - value_type(1) : p);
    }
    const double target = (index[rank - 1] == y ? 1 - smoothing : 0) + smoothing / static_cast<double>(extents[rank - 1]);
    return static_cast<value_type>(g.at(row)) * static_cast<value_type>(static_cast<double>(p) - target);
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pg = g.prepare(plan);
    auto px = x.prepare(plan);
    auto pl = labels.prepare(plan);
    auto ps = lse.prepare(plan);
    return CrossEntropyGrad<decltype(pg), decltype(px), decltype(pl), decltype(ps)>{
        {}, pg, px, pl, ps, extents, smoothing};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return g.conflicts_with(b, e, false) || x.conflicts_with(b, e, false) ||
           labels.conflicts_with(b, e, false) || lse.conflicts_with(b, e, false);
  }
};

/// 1 where the last index equals the label, else 0.
template <class T, class L>
struct OneHot : ExprBase<OneHot<T, L>> {
  using value_type = T;
  static constexpr int rank = L::rank + 1;
  static constexpr bool may_be_linear = false;
  L labels;
  Shape<rank> extents;

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE T at(const Shape<rank>& index) const {
    Shape<L::rank> row;
    FG_UNROLL for (int i = 0; i < L::rank; ++i) { row[i] = index[i]; }
    return static_cast<index_t>(labels.at(row)) == index[rank - 1] ? T(1) : T(0);
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pl = labels.prepare(plan);
    return OneHot<T, decltype(pl)>{{}, pl, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return labels.conflicts_with(b, e, false);
  }
};

/// Per-row softmax cross-entropy of `logits` (classes on the last axis) against integer `labels`
/// (one per row, in [0, classes)): logsumexp(z) - z[y], shape = logits' shape without its last axis.
/// With `label_smoothing` ε in [0, 1] (PyTorch's CrossEntropyLoss(label_smoothing=ε)) the target is
/// (1 - ε) onehot(y) + ε / C. Throws fusegrad::error for ε outside [0, 1].
/// Example: `auto loss = fg::mean(fg::nn::cross_entropy(logits, labels, 0.1));`
template <tensor_expression Z, tensor_expression Y>
auto cross_entropy(const Z& logits, const Y& labels, double label_smoothing = 0) {
  auto x = as_node(logits);
  auto y = as_node(labels);
  using X = decltype(x);
  using L = decltype(y);
  static_assert(X::rank >= 1, "cross_entropy: logits need a class axis (rank 1 or more)");
  static_assert(L::rank == X::rank - 1,
                "cross_entropy: labels have one rank less than logits (one label per row)");
  static_assert(std::is_floating_point_v<typename X::value_type>,
                "cross_entropy: logits must be floating point");
  static_assert(std::is_integral_v<typename L::value_type>,
                "cross_entropy: labels must be integers (class indices), e.g. Tensor<int, 1>");
  const auto xs = x.shape();
  const auto ys = y.shape();
  Shape<X::rank - 1> rows;
  bool ok = true;
  for (int i = 0; i < X::rank - 1; ++i) {
    rows[i] = xs[i];
    ok = ok && ys[i] == xs[i];
  }
  if (!ok) {
    throw shape_error("cross_entropy: logits " + to_string(xs) + " and labels " + to_string(ys) +
                      " do not match (one label per row of logits)");
  }
  if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
    throw error("cross_entropy: label_smoothing must be in [0, 1], got " + std::to_string(label_smoothing));
  }
  auto lse = fusegrad::FG_BACKEND_NS::detail::reduce_axis<ops::logsumexp_wide, false>(x, X::rank - 1);
  return CrossEntropy<X, L, decltype(lse)>{{}, x, y, lse, rows, xs[X::rank - 1], label_smoothing};
}

/// Per-row half squared error ½ Σ_j (pred_j - target_j)² over the last axis.
/// Example: `auto loss = fg::mean(fg::nn::mse(logits, fg::nn::one_hot<float>(labels, 10)));`
template <tensor_expression P, tensor_expression T>
auto mse(const P& pred, const T& target) {
  static_assert(node_t<P>::rank >= 1, "mse: needs predictions of rank 1 or more");
  using V = typename node_t<P>::value_type;
  return sum(V(0.5) * square(pred - target), -1);
}

/// One-hot rows of dtype T: result[..., j] = 1 where j == labels[...], else 0.
/// Example: `fg::nn::one_hot<float>(labels, 10)` for labels of shape (N) gives (N, 10).
template <dtype T, tensor_expression Y>
auto one_hot(const Y& labels, index_t classes) {
  auto y = as_node(labels);
  using L = decltype(y);
  static_assert(std::is_integral_v<typename L::value_type>, "one_hot: labels must be integers");
  if (classes < 0) {
    throw shape_error("one_hot: negative class count " + std::to_string(classes));
  }
  Shape<L::rank + 1> out;
  for (int i = 0; i < L::rank; ++i) {
    out[i] = y.shape()[i];
  }
  out[L::rank] = classes;
  return OneHot<compute_t<T>, L>{{}, y, out};
}

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, class L, class S, class Tp>
auto record(const CrossEntropy<X, L, S>& ce, Tp& tape) {
  auto x = record(ce.x, tape);
  auto y = record(ce.labels, tape);
  // The row log-sum-exp is a value the fused rule reads; no gradient flows into it.
  auto lse = tape.template save<false>(
      Reduce<ops::logsumexp_wide, decltype(x), X::rank - 1>{{}, x, X::rank - 1, ce.extents});
  return CrossEntropy<decltype(x), decltype(y), decltype(lse)>{{}, x, y, lse, ce.extents, ce.classes, ce.smoothing};
}
template <class X, class L, class S, class Tp>
bool depends(const CrossEntropy<X, L, S>& ce, const Tp& tape) {
  return depends(ce.x, tape);
}
template <class X, class L, class S>
bool same(const CrossEntropy<X, L, S>& a, const CrossEntropy<X, L, S>& b) {
  return a.smoothing == b.smoothing && same(a.x, b.x) && same(a.labels, b.labels) && same(a.lse, b.lse);
}
/// The fused rule: the logits get g · (softmax - target); the saved log-sum-exp gets nothing
/// (its dependence on the logits is already in the rule).
template <class X, class L, class S, class G, class Tp>
void backprop(const CrossEntropy<X, L, S>& ce, const G& g, Tp& tape) {
  if (depends(ce.x, tape)) {
    const auto lse = ce.lse.value();
    backprop(ce.x,
             CrossEntropyGrad<G, X, L, decltype(lse)>{{}, g, ce.x, ce.labels, lse, ce.x.shape(), ce.smoothing},
             tape);
  }
}

template <class T, class L, class Tp>
auto record(const OneHot<T, L>& h, Tp& tape) {
  auto y = record(h.labels, tape);
  return OneHot<T, decltype(y)>{{}, y, h.extents};
}
template <class T, class L, class Tp>
bool depends(const OneHot<T, L>&, const Tp&) {
  return false;
}
template <class T, class L>
bool same(const OneHot<T, L>& a, const OneHot<T, L>& b) {
  return a.extents == b.extents && same(a.labels, b.labels);
}
template <class T, class L, class G, class Tp>
void backprop(const OneHot<T, L>&, const G&, Tp&) {}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
