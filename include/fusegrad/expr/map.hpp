// fusegrad/expr/map.hpp — Map<Op, A...>: an n-ary element-wise op over broadcast operands, and
// the helpers that turn user operands (tensors, nodes, numbers) into nodes.
#pragma once

#include <algorithm>
#include <string>

#include "fusegrad/expr/broadcast.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// @pre every operand has rank `rank` and the output's shape, or is a Scalar (make_map sees to it).
/// @post at(index) = op(a.at(index)...).
template <class Op, class... A>
struct Map : ExprBase<Map<Op, A...>> {
  using value_type = decltype(std::declval<const Op&>()(std::declval<typename A::value_type>()...));
  static constexpr int rank = std::max({0, A::rank...});
  static constexpr bool may_be_linear = (linear_possible<A>() && ...);

  Op op;
  detail::Pack<A...> args;
  Shape<rank> extents;

  Map() = default;
  Map(const Op& o, const Shape<rank>& shape, const A&... a) : op(o), args(a...), extents(shape) {}

  Shape<rank> shape() const { return extents; }

  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    return at_impl(index, std::index_sequence_for<A...>{});
  }
  FG_HOST_DEVICE value_type at_linear(index_t i) const {
    return at_linear_impl(i, std::index_sequence_for<A...>{});
  }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes(index_t i) const {
    return lanes_impl<V>(i, std::index_sequence_for<A...>{});
  }
  bool linear() const { return all([](const auto& a) { return a.linear(); }); }
  bool lanes_aligned(int lanes) const {
    return all([lanes](const auto& a) { return detail::lanes_aligned(a, lanes); });
  }

  /// Row cursor (node.hpp): op over the operands' cursors.
  template <class... C>
  struct Row {
    Op op;
    detail::Pack<C...> args;
    value_type operator()(index_t j) const { return call(j, std::index_sequence_for<C...>{}); }
    template <std::size_t... I>
    value_type call(index_t j, std::index_sequence<I...>) const {
      return op(detail::get<I>(args)(j)...);
    }
  };
  auto row(const Shape<rank>& index) const { return row_impl(index, std::index_sequence_for<A...>{}); }

  template <class Plan>
  auto prepare(Plan& plan) const {
    return prepare_impl(plan, std::index_sequence_for<A...>{});
  }
  bool conflicts_with(const void* begin, const void* end, bool same_index) const {
    return !all([&](const auto& a) { return !a.conflicts_with(begin, end, same_index); });
  }

  /// Calls `f(operand)` for each operand; true when every call returned true.
  template <class F>
  bool all(F&& f) const {
    return all_impl(f, std::index_sequence_for<A...>{});
  }

 private:
  template <std::size_t... I>
  FG_HOST_DEVICE value_type at_impl(const Shape<rank>& index, std::index_sequence<I...>) const {
    return op(detail::get<I>(args).at(index)...);
  }
  template <std::size_t... I>
  FG_HOST_DEVICE value_type at_linear_impl(index_t i, std::index_sequence<I...>) const {
    return op(detail::get<I>(args).at_linear(i)...);
  }
  template <int V, std::size_t... I>
  FG_HOST_DEVICE Lanes<value_type, V> lanes_impl(index_t i, std::index_sequence<I...>) const {
    return apply_lanes<V>(detail::lanes_of<V>(detail::get<I>(args), i)...);
  }
  template <std::size_t... I>
  auto row_impl(const Shape<rank>& index, std::index_sequence<I...>) const {
    using R = Row<decltype(detail::row_cursor(detail::get<I>(args), index))...>;
    return R{op, detail::Pack<decltype(detail::row_cursor(detail::get<I>(args), index))...>(
                     detail::row_cursor(detail::get<I>(args), index)...)};
  }
  template <int V, class... L>
  FG_HOST_DEVICE Lanes<value_type, V> apply_lanes(const L&... in) const {
    Lanes<value_type, V> r;
    FG_UNROLL for (int j = 0; j < V; ++j) { r.v[j] = op(in.v[j]...); }
    return r;
  }
  template <class F, std::size_t... I>
  bool all_impl(F& f, std::index_sequence<I...>) const {
    return (f(detail::get<I>(args)) && ...);
  }
  template <class Plan, std::size_t... I>
  auto prepare_impl(Plan& plan, std::index_sequence<I...>) const {
    using Out = Map<Op, decltype(detail::get<I>(args).prepare(plan))...>;
    return Out(op, extents, detail::get<I>(args).prepare(plan)...);
  }
};

/// The node a Tensor or node stands for in an expression (a Tensor becomes a Leaf view).
template <tensor_expression E>
auto as_node(const E& e) {
  if constexpr (is_tensor<E>::value) {
    return e.view();
  } else {
    return e;
  }
}

template <class E>
using node_t = decltype(as_node(std::declval<const E&>()));

/// The type a number takes next to an expression of value type V: the expression's, unless the
/// expression is integral and the number floating (then the number's, as NumPy does).
template <class V, class S>
using scalar_type_for = std::conditional_t<std::is_integral_v<V> && std::is_floating_point_v<S>, S, V>;

namespace detail {

template <class... Nodes>
auto broadcast_all(const char* name, const Nodes&... n) {
  constexpr int R = std::max({0, Nodes::rank...});
  Shape<R> out;
  for (int i = 0; i < R; ++i) {
    out[i] = 1;
  }
  bool ok = true;
  auto step = [&](const auto& shape) {
    for (int i = 0; i < std::remove_cvref_t<decltype(shape)>::rank; ++i) {
      const index_t e = shape[i];
      index_t& o = out[i + R - std::remove_cvref_t<decltype(shape)>::rank];
      if (e != o && e != 1 && o != 1) {
        ok = false;
      }
      o = o == 1 ? e : o;
    }
  };
  (step(n.shape()), ...);
  if (!ok) {
    // Name the first two operands that clash, each with its own shape.
    auto clash = [&](const auto& a) {
      auto against = [&](const auto& b) { (void)broadcast_shapes(name, a.shape(), b.shape()); };
      (against(n), ...);
    };
    (clash(n), ...);
  }
  return out;
}

}  // namespace detail

/// Builds the lazy node `op(nodes...)`; broadcasting is checked here, so a bad shape throws
/// shape_error (naming `name` and the shapes) when the expression is built.
template <class Op, class... Nodes>
auto make_map(const char* name, const Op& op, const Nodes&... nodes) {
  if constexpr (sizeof...(Nodes) == 1) {
    // A unary op keeps its operand's shape: no broadcast wrapper needed.
    using Out = Map<Op, Nodes...>;
    return Out(op, nodes.shape()..., nodes...);
  } else {
    const auto shape = detail::broadcast_all(name, nodes...);
    using Out = Map<Op, decltype(broadcast_node(nodes, shape))...>;
    return Out(op, shape, broadcast_node(nodes, shape)...);
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS
