// fusegrad/nn/softmax.hpp — softmax and log-softmax along an axis, optionally causally masked,
// each one node with one fused rule.
//
//   softmax(x, a)             e^(x - lse) where lse = logsumexp(x, a)        same shape as x
//   log_softmax(x, a)         x - lse
//   softmax(x, -1, causal)    the same over causal_fill(x, -inf): position j of the last axis
//                             takes part for row i of the axis before it only when j <= i
//   causal_fill(x, v)         x where j <= i on the last two axes, else v (no mask in memory)
//
// Forward: one reduction (the row log-sum-exp, kept) and one element-wise kernel; x itself is
// never stored, so `softmax(scores * scale, -1, causal)` reads the scores once per kernel. The row
// log-sum-exp is formed in double (ops::logsumexp_wide), so x - lse loses no digits for logits far
// from zero, and softmax of equal logits is exactly uniform.
// Backward (one reduction + one element-wise kernel):
//   softmax:      dx = y (g - Σ_a g y)          log_softmax:  dx = g - y Σ_a g
// with y recomputed inline from x and the saved log-sum-exp.
#pragma once

#include <limits>
#include <string>

#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/reduce.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// Tag selecting the causal mask: `nn::softmax(scores * scale, -1, nn::causal)`.
struct causal_t {};
inline constexpr causal_t causal{};

/// x where the last index j and the one before it i satisfy j <= i, else `fill`.
template <class X>
struct CausalFill : ExprBase<CausalFill<X>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  X x;
  value_type fill;

  Shape<rank> shape() const { return x.shape(); }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    return index[rank - 1] <= index[rank - 2] ? static_cast<value_type>(x.at(index)) : fill;
  }
  /// Row cursor (node.hpp): row i of the last two axes keeps columns j <= i.
  template <class C>
  struct Row {
    C x;
    index_t last_kept;
    value_type fill;
    value_type operator()(index_t j) const { return j <= last_kept ? static_cast<value_type>(x(j)) : fill; }
  };
  auto row(const Shape<rank>& index) const {
    using C = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    return Row<C>{fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index), index[rank - 2], fill};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    return CausalFill<decltype(px)>{{}, px, fill};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return x.conflicts_with(b, e, false);
  }
};

/// softmax (Log = false) or log-softmax (Log = true) of x along `axis`, given the row log-sum-exp
/// S of x (keepdims shape: extent 1 on `axis`; double values).
template <class X, class S, bool Log>
struct Softmax : ExprBase<Softmax<X, S, Log>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  X x;
  S lse;
  int axis = 0;

  Shape<rank> shape() const { return x.shape(); }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    Shape<rank> row = index;
    row[axis] = 0;
    const auto shifted =
        static_cast<value_type>(static_cast<double>(x.at(index)) - static_cast<double>(lse.at(row)));
    if constexpr (Log) {
      return shifted;
    } else {
      return ops::exp{}(shifted);
    }
  }
  /// Row cursor (node.hpp): along the softmax's own axis (the last) the row has one log-sum-exp,
  /// read once; along another axis it is read per element through its own cursor. The choice is
  /// loop-invariant, so the compiler versions the row loop on it.
  template <class CX, class CS>
  struct Row {
    CX x;
    CS lse;
    bool along_row;
    double row_lse;
    value_type operator()(index_t j) const {
      const double l = along_row ? row_lse : static_cast<double>(lse(j));
      const auto shifted = static_cast<value_type>(static_cast<double>(x(j)) - l);
      if constexpr (Log) {
        return shifted;
      } else {
        return ops::exp{}(shifted);
      }
    }
  };
  auto row(const Shape<rank>& index) const {
    Shape<rank> row = index;
    row[axis] = 0;
    using CX = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    using CS = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(lse, row));
    const auto lse_row = fusegrad::FG_BACKEND_NS::detail::row_cursor(lse, row);
    return Row<CX, CS>{fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index), lse_row,
                       axis == rank - 1, static_cast<double>(lse_row(0))};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    auto ps = fusegrad::FG_BACKEND_NS::detail::prepare_reduction_of(lse, px, plan);
    return Softmax<decltype(px), decltype(ps), Log>{{}, px, ps, axis};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return x.conflicts_with(b, e, false) || lse.conflicts_with(b, e, false);
  }
};

namespace detail {

template <bool Log, tensor_expression E>
auto softmax_node(const E& input, int axis, const char* name) {
  auto x = as_node(input);
  using X = decltype(x);
  static_assert(X::rank >= 1, "softmax, log_softmax: need an operand of rank 1 or more");
  static_assert(std::is_floating_point_v<typename X::value_type>,
                "softmax, log_softmax: need a floating-point operand");
  const int a = normalize_axis(name, axis, X::rank, to_string(x.shape()));
  auto lse = fusegrad::FG_BACKEND_NS::detail::reduce_axis<ops::logsumexp_wide, true>(x, a);
  return Softmax<X, decltype(lse), Log>{{}, x, lse, a};
}

template <tensor_expression E>
auto causal_node(const E& input, int axis, const char* name, typename node_t<E>::value_type fill) {
  auto x = as_node(input);
  using X = decltype(x);
  static_assert(X::rank >= 2,
                "causal mask: needs an operand of rank 2 or more (queries, keys on the last two axes)");
  const int a = normalize_axis(name, axis, X::rank, to_string(x.shape()));
  if (a != X::rank - 1) {
    throw shape_error(std::string(name) + ": the causal mask runs along the last axis (the keys), not axis " +
                      std::to_string(axis) + " of shape " + to_string(x.shape()));
  }
  return CausalFill<X>{{}, x, fill};
}

/// softmax_node over causal_fill(x, -inf): masked keys get probability 0 (log: -inf).
template <bool Log, tensor_expression E>
auto causal_softmax_node(const E& x, int axis, const char* name) {
  using V = typename node_t<E>::value_type;
  return softmax_node<Log>(causal_node(x, axis, name, -std::numeric_limits<V>::infinity()), axis, name);
}

}  // namespace detail

/// x where the last index j and the one before it i satisfy j <= i (a query sees itself and the
/// keys before it), else `fill`; computed from the index, no mask in memory. The gradient flows to
/// the kept positions only. Example: `fg::nn::causal_fill(scores, 0.f)`.
template <tensor_expression E>
auto causal_fill(const E& x, typename node_t<E>::value_type fill) {
  return detail::causal_node(x, -1, "causal_fill", fill);
}

/// softmax(x) along `axis` (default: the last): e^(x - logsumexp(x)), one reduction and one
/// element-wise kernel; stable for any magnitude (no exponential of a large value is taken).
/// Example: `fg::Tensor<float, 2> p = fg::nn::softmax(logits);`
template <tensor_expression E>
auto softmax(const E& x, int axis = -1) {
  return detail::softmax_node<false>(x, axis, "softmax");
}

/// Causal softmax along the last axis of x (…, queries, keys): key j is masked out for query i
/// when j > i. The mask and any scale inside x fuse into both kernels.
/// Example: `auto att = fg::nn::softmax(fg::matmul(q, fg::permute(k, {0, 2, 1})) * scale, -1, fg::nn::causal);`
template <tensor_expression E>
auto softmax(const E& x, int axis, causal_t) {
  return detail::causal_softmax_node<false>(x, axis, "softmax");
}

/// log softmax(x) along `axis` (default: the last): x - logsumexp(x), formed without cancellation.
template <tensor_expression E>
auto log_softmax(const E& x, int axis = -1) {
  return detail::softmax_node<true>(x, axis, "log_softmax");
}

/// Causal log-softmax along the last axis (masked positions are -inf).
template <tensor_expression E>
auto log_softmax(const E& x, int axis, causal_t) {
  return detail::causal_softmax_node<true>(x, axis, "log_softmax");
}

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, class Tp>
auto record(const CausalFill<X>& m, Tp& tape) {
  auto x = record(m.x, tape);
  return CausalFill<decltype(x)>{{}, x, m.fill};
}
template <class X, class Tp>
bool depends(const CausalFill<X>& m, const Tp& tape) {
  return depends(m.x, tape);
}
template <class X>
bool same(const CausalFill<X>& a, const CausalFill<X>& b) {
  return a.fill == b.fill && same(a.x, b.x);
}
/// The kept positions pass the gradient on; the filled ones get none.
template <class X, class G, class Tp>
void backprop(const CausalFill<X>& m, const G& g, Tp& tape) {
  if (depends(m.x, tape)) {
    auto gn = as_node(g);
    backprop(m.x, CausalFill<decltype(gn)>{{}, gn, typename decltype(gn)::value_type(0)}, tape);
  }
}

template <class X, class S, bool Log, class Tp>
auto record(const Softmax<X, S, Log>& s, Tp& tape) {
  auto x = record(s.x, tape);
  // The row log-sum-exp is a value the fused rule reads; no gradient flows into it.
  Shape<X::rank> rows = s.x.shape();
  rows[s.axis] = 1;
  auto lse = tape.template save<false>(
      Reduce<ops::logsumexp_wide, decltype(x), X::rank>{{}, x, s.axis, rows});
  return Softmax<decltype(x), decltype(lse), Log>{{}, x, lse, s.axis};
}
template <class X, class S, bool Log, class Tp>
bool depends(const Softmax<X, S, Log>& s, const Tp& tape) {
  return depends(s.x, tape);
}
template <class X, class S, bool Log>
bool same(const Softmax<X, S, Log>& a, const Softmax<X, S, Log>& b) {
  return a.axis == b.axis && same(a.x, b.x) && same(a.lse, b.lse);
}
/// softmax: dx = y (g - Σ g y); log-softmax: dx = g - y Σ g; y recomputed from x and the saved
/// log-sum-exp (one reduction and one element-wise kernel).
template <class X, class S, bool Log, class G, class Tp>
void backprop(const Softmax<X, S, Log>& s, const G& g, Tp& tape) {
  if (depends(s.x, tape)) {
    const auto lse = s.lse.value();
    const Softmax<X, decltype(lse), false> y{{}, s.x, lse, s.axis};
    const auto gn = as_node(g);
    if constexpr (Log) {
      backprop(s.x, gn - y * sum(gn, s.axis, keepdims), tape);
    } else {
      backprop(s.x, y * (gn - sum(gn * y, s.axis, keepdims)), tape);
    }
  }
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
