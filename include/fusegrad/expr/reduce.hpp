// fusegrad/expr/reduce.hpp — Reduce<Op, E, R>: a reduction of an expression over all elements or
// one axis. A boundary node: assigned to a tensor it is one fused map-reduce (its operand is never
// stored); used inside an element-wise expression it is evaluated first into a temporary.
#pragma once

#include <string>

#include "fusegrad/expr/map.hpp"
#include "fusegrad/ops/reduce.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// Tag asking an axis reduction to keep the reduced axis with extent 1: `sum(x, 1, keepdims)`.
struct keepdims_t {};
inline constexpr keepdims_t keepdims{};

/// @post for a full reduction (axis < 0) the rank-0 result is Op over every element of `input`;
///       for an axis reduction, result[i without axis] = Op over input[i with axis = 0..n-1].
template <class Op, class E, int R>
struct Reduce : ExprBase<Reduce<Op, E, R>> {
  using reducer = typename Op::template reducer<typename E::value_type>;
  using value_type = typename reducer::result_type;
  using op_type = Op;
  using input_type = E;
  static constexpr int rank = R;

  E input;
  int axis = -1;  // -1: every element
  Shape<R> extents;

  Shape<R> shape() const { return extents; }
  /// The same reduction of another input (an already prepared one, say).
  template <class PE>
  Reduce<Op, PE, R> with_input(const PE& pe) const {
    return {{}, pe, axis, extents};
  }

  /// Evaluated into a temporary by the plan (materialize is defined in eval/).
  template <class Plan>
  auto prepare(Plan& plan) const {
    return materialize(*this, plan);
  }
};

/// @post result[k] = Op over input[i] for every index i with i[axis] = k: a reduction over every
/// axis but `axis` (rank-1 result), one kernel. Batch statistics (per channel over N, H, W) are
/// its use; not exposed as a function.
template <class Op, class E>
struct ReduceKept : ExprBase<ReduceKept<Op, E>> {
  using reducer = typename Op::template reducer<typename E::value_type>;
  using value_type = typename reducer::result_type;
  using op_type = Op;
  using input_type = E;
  static constexpr int rank = 1;

  E input;
  int axis = 0;  // the kept axis
  Shape<1> extents;

  Shape<1> shape() const { return extents; }
  /// The same reduction of another input (an already prepared one, say).
  template <class PE>
  ReduceKept<Op, PE> with_input(const PE& pe) const {
    return {{}, pe, axis, extents};
  }

  /// Evaluated into a temporary by the plan (materialize is defined in eval/).
  template <class Plan>
  auto prepare(Plan& plan) const {
    return materialize(*this, plan);
  }
};

template <class E>
struct is_reduce : std::false_type {};
template <class Op, class E, int R>
struct is_reduce<Reduce<Op, E, R>> : std::true_type {};
template <class Op, class E>
struct is_reduce<ReduceKept<Op, E>> : std::true_type {};

namespace detail {

template <class Op, class Node>
void check_nonempty(index_t n, const Shape<Node::rank>& in) {
  if (Op::needs_elements && n == 0) {
    throw shape_error(std::string(Op::name) + ": cannot reduce zero elements (shape " +
                      to_string(in) + "); the result would have no value");
  }
}

template <class Op, tensor_expression E>
auto reduce_all(const E& e) {
  auto node = as_node(e);
  using Node = decltype(node);
  check_nonempty<Op, Node>(node.shape().size(), node.shape());
  return Reduce<Op, Node, 0>{{}, node, -1, Shape<0>{}};
}

template <class Op, bool Keep, tensor_expression E>
auto reduce_axis(const E& e, int axis) {
  auto node = as_node(e);
  using Node = decltype(node);
  constexpr int RI = Node::rank;
  static_assert(RI >= 1, "axis reduction: needs an expression of rank 1 or more");
  constexpr int RO = Keep ? RI : RI - 1;
  const auto in = node.shape();
  const int a = normalize_axis(Op::name, axis, RI, to_string(in));
  check_nonempty<Op, Node>(in[a], in);
  Shape<RO> out;
  for (int i = 0, j = 0; i < RI; ++i) {
    if (i != a) {
      out[j++] = in[i];
    } else if constexpr (Keep) {
      out[j++] = 1;
    }
  }
  return Reduce<Op, Node, RO>{{}, node, a, out};
}

/// The reduction of `e` over every axis but `axis`: ReduceKept.
template <class Op, tensor_expression E>
auto reduce_kept(const E& e, int axis) {
  auto node = as_node(e);
  using Node = decltype(node);
  static_assert(Node::rank >= 1, "reduction keeping an axis: needs an expression of rank 1 or more");
  const auto in = node.shape();
  const int a = normalize_axis(Op::name, axis, Node::rank, to_string(in));
  index_t per_output = 1;
  for (int i = 0; i < Node::rank; ++i) {
    per_output *= i == a ? 1 : in[i];
  }
  check_nonempty<Op, Node>(per_output, in);
  return ReduceKept<Op, Node>{{}, node, a, Shape<1>({in[a]})};
}

/// Prepares `r`, a node's reduction of its own operand x (a node with is_reduce and with_input),
/// given x already prepared as `px`: the reduction then reads px, so a boundary node inside x (a
/// matmul) is computed once, not once for the reduction and once for the element-wise kernel.
/// Anything else (a saved value) prepares as is.
template <class S, class PX, class Plan>
auto prepare_reduction_of(const S& r, const PX& px, Plan& plan) {
  if constexpr (is_reduce<S>::value) {
    return r.with_input(px).prepare(plan);
  } else {
    return r.prepare(plan);
  }
}

}  // namespace detail

// clang-format off
/// Reductions over every element (rank-0 result), over one axis, or over one axis keeping it.
/// `sum(square(a - b))`, `max(a, 0)`, `mean(x, -1, keepdims)`. Axis may be negative (-1 = last).
template <tensor_expression E> auto sum(const E& e) { return detail::reduce_all<ops::sum>(e); }
template <tensor_expression E> auto sum(const E& e, int axis) { return detail::reduce_axis<ops::sum, false>(e, axis); }
template <tensor_expression E> auto sum(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::sum, true>(e, axis); }
template <tensor_expression E> auto mean(const E& e) { return detail::reduce_all<ops::mean>(e); }
template <tensor_expression E> auto mean(const E& e, int axis) { return detail::reduce_axis<ops::mean, false>(e, axis); }
template <tensor_expression E> auto mean(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::mean, true>(e, axis); }
template <tensor_expression E> auto prod(const E& e) { return detail::reduce_all<ops::prod>(e); }
template <tensor_expression E> auto prod(const E& e, int axis) { return detail::reduce_axis<ops::prod, false>(e, axis); }
template <tensor_expression E> auto prod(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::prod, true>(e, axis); }
template <tensor_expression E> auto max(const E& e) { return detail::reduce_all<ops::max>(e); }
template <tensor_expression E> auto max(const E& e, int axis) { return detail::reduce_axis<ops::max, false>(e, axis); }
template <tensor_expression E> auto max(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::max, true>(e, axis); }
template <tensor_expression E> auto min(const E& e) { return detail::reduce_all<ops::min>(e); }
template <tensor_expression E> auto min(const E& e, int axis) { return detail::reduce_axis<ops::min, false>(e, axis); }
template <tensor_expression E> auto min(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::min, true>(e, axis); }
/// log(sum(exp(e))) over everything or one axis, in one stable pass (no exponential overflows).
template <tensor_expression E> auto logsumexp(const E& e) { return detail::reduce_all<ops::logsumexp>(e); }
template <tensor_expression E> auto logsumexp(const E& e, int axis) { return detail::reduce_axis<ops::logsumexp, false>(e, axis); }
template <tensor_expression E> auto logsumexp(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::logsumexp, true>(e, axis); }
/// Positions (int64) of the first largest / smallest element: flat C-order index for the full
/// form, the index along `axis` otherwise.
template <tensor_expression E> auto argmax(const E& e) { return detail::reduce_all<ops::argmax>(e); }
template <tensor_expression E> auto argmax(const E& e, int axis) { return detail::reduce_axis<ops::argmax, false>(e, axis); }
template <tensor_expression E> auto argmax(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::argmax, true>(e, axis); }
template <tensor_expression E> auto argmin(const E& e) { return detail::reduce_all<ops::argmin>(e); }
template <tensor_expression E> auto argmin(const E& e, int axis) { return detail::reduce_axis<ops::argmin, false>(e, axis); }
template <tensor_expression E> auto argmin(const E& e, int axis, keepdims_t) { return detail::reduce_axis<ops::argmin, true>(e, axis); }
// clang-format on

}  // namespace fusegrad::inline FG_BACKEND_NS
