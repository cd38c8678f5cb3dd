// fusegrad/expr/concat.hpp — joining and cutting along an axis: concat, stack, split, chunk.
//
//   concat(axis, a, b, ...)    one node that reads each index from the operand whose range holds
//                              it: fuses into whatever consumes it (no copy of the operands)
//   stack(axis, a, b, ...)     concat of the operands each given a new axis of extent 1 there
//   split(x, sizes, axis)      views: slices of x (a leaf stays a leaf, so matmul reads it in
//   chunk(x, n, axis)          place); returned as a std::vector, one view per part
//
// Gradients: each operand of a concat gets its slice of the gradient (autodiff/rules.hpp); a
// split's parts are slices, whose rule places the gradient back (lazy).
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <vector>

#include "fusegrad/expr/view.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// @pre every operand has the value type and rank of the first, and its shape but along `axis`;
///      starts[i] is where operand i begins along `axis` (starts[0] = 0, increasing).
/// @post at(index) = operand i at index with index[axis] - starts[i], for the last i with
///       starts[i] <= index[axis].
template <class... A>
struct Concat : ExprBase<Concat<A...>> {
  using first = std::tuple_element_t<0, std::tuple<A...>>;
  using value_type = typename first::value_type;
  static constexpr int rank = first::rank;
  static constexpr std::size_t count = sizeof...(A);
  static constexpr bool may_be_linear = false;
  detail::Pack<A...> args;
  int axis = 0;
  index_t starts[count] = {};
  Shape<rank> extents;

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    return at_part<0>(index, axis_value(index, axis));
  }
  FG_HOST_DEVICE value_type at_linear(index_t) const { return value_type{}; }  // never linear
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    return prepare_impl(plan, std::index_sequence_for<A...>{});
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return any([&](const auto& a) { return a.conflicts_with(b, e, false); });
  }
  /// Calls `f(operand)` for each operand; true when some call returned true.
  template <class F>
  bool any(F&& f) const {
    return any_impl(f, std::index_sequence_for<A...>{});
  }

 private:
  template <std::size_t I>
  FG_HOST_DEVICE value_type at_part(const Shape<rank>& index, index_t k) const {
    if constexpr (I + 1 < count) {
      if (k >= starts[I + 1]) {
        return at_part<I + 1>(index, k);
      }
    }
    Shape<rank> sub = index;
    set_axis_value(sub, axis, k - starts[I]);
    return detail::get<I>(args).at(sub);
  }
  template <class Plan, std::size_t... I>
  auto prepare_impl(Plan& plan, std::index_sequence<I...>) const {
    using Out = Concat<decltype(detail::get<I>(args).prepare(plan))...>;
    Out out;
    out.args = detail::Pack<decltype(detail::get<I>(args).prepare(plan))...>(detail::get<I>(args).prepare(plan)...);
    out.axis = axis;
    for (std::size_t i = 0; i < count; ++i) {
      out.starts[i] = starts[i];
    }
    out.extents = extents;
    return out;
  }
  template <class F, std::size_t... I>
  bool any_impl(F& f, std::index_sequence<I...>) const {
    return (f(detail::get<I>(args)) || ...);
  }
};

template <class E>
struct is_concat : std::false_type {};
template <class... A>
struct is_concat<Concat<A...>> : std::true_type {};

namespace detail {

template <class... N>
std::string shapes_text(const N&... n) {
  std::string out;
  ((out += (out.empty() ? "" : ", ") + to_string(n.shape())), ...);
  return out;
}

/// The Concat of nodes along an axis already normalised; `name` (concat or stack) in errors.
template <class... N>
auto concat_nodes(const char* name, int a, const N&... n) {
  using Out = Concat<N...>;
  constexpr int R = Out::rank;
  Out out;
  out.args = Pack<N...>(n...);
  out.axis = a;
  out.extents = std::get<0>(std::tie(n...)).shape();
  index_t start = 0;
  std::size_t i = 0;
  auto place = [&](const auto& part) {
    const auto s = part.shape();
    for (int d = 0; d < R; ++d) {
      if (d != a && s[d] != out.extents[d]) {
        throw shape_error(std::string(name) + ": shapes " + shapes_text(n...) + " differ outside axis " +
                          std::to_string(a) + " (operand " + std::to_string(i) + " has " + to_string(s) + ")");
      }
    }
    out.starts[i++] = start;
    start += s[a];
  };
  (place(n), ...);
  out.extents[a] = start;
  return out;
}

/// `node` with a new axis of extent 1 before axis `a` (0 <= a <= rank): a leaf view for a leaf.
template <class N>
auto unsqueeze_node(const N& node, int a) {
  constexpr int R = N::rank;
  const auto in = node.shape();
  Shape<R + 1> out;
  for (int i = 0, j = 0; i <= R; ++i) {
    out[i] = i == a ? 1 : in[j++];
  }
  if constexpr (is_leaf<N>::value) {
    Shape<R + 1> strides;
    for (int i = 0, j = 0; i <= R; ++i) {
      strides[i] = i == a ? 0 : node.strides[j++];
    }
    using T = std::remove_const_t<std::remove_pointer_t<decltype(node.data)>>;
    return Leaf<T, R + 1>(node.data, out, strides);
  } else {
    return Reshape<N, R + 1>{{}, node, out, in};
  }
}

}  // namespace detail

/// Joins expressions along `axis` (negative counts from the end): their shapes must agree on
/// every other axis, their element types and ranks must be equal. A lazy node: it fuses into its
/// consumer. `Tensor<float, 2> ab = fg::concat(1, a, b);  // a (4, 2), b (4, 3) -> (4, 5)`.
template <tensor_expression... E>
  requires(sizeof...(E) >= 1)
auto concat(int axis, const E&... e) {
  using First = node_t<std::tuple_element_t<0, std::tuple<E...>>>;
  static_assert(((node_t<E>::rank == First::rank) && ...), "concat: every operand must have the same rank");
  static_assert((std::is_same_v<typename node_t<E>::value_type, typename First::value_type> && ...),
                "concat: every operand must have the same element type (convert one with fg::cast<T>)");
  static_assert(First::rank >= 1, "concat: needs operands of rank 1 or more");
  const auto first_shape = as_node(std::get<0>(std::tie(e...))).shape();
  const int a = normalize_axis("concat", axis, First::rank, to_string(first_shape));
  return detail::concat_nodes("concat", a, as_node(e)...);
}

/// Joins equally shaped expressions along a new axis `axis` (0..rank; negative counts from the
/// end of the result's axes). `fg::stack(0, a, b)  // a, b (3, 4) -> (2, 3, 4)`.
template <tensor_expression... E>
  requires(sizeof...(E) >= 1)
auto stack(int axis, const E&... e) {
  using First = node_t<std::tuple_element_t<0, std::tuple<E...>>>;
  constexpr int R = First::rank;
  static_assert(((node_t<E>::rank == R) && ...), "stack: every operand must have the same rank");
  static_assert((std::is_same_v<typename node_t<E>::value_type, typename First::value_type> && ...),
                "stack: every operand must have the same element type (convert one with fg::cast<T>)");
  const auto first_shape = as_node(std::get<0>(std::tie(e...))).shape();
  if (((as_node(e).shape() != first_shape) || ...)) {
    throw shape_error("stack: shapes " + detail::shapes_text(as_node(e)...) + " are not all equal");
  }
  const int a = normalize_axis("stack", axis, R + 1, to_string(first_shape));
  return detail::concat_nodes("stack", a, detail::unsqueeze_node(as_node(e), a)...);
}

/// Cuts `e` along `axis` into consecutive parts of the given extents, which must add up to the
/// axis's extent (PyTorch's `torch.split(x, [sizes], dim)`). Each part is a view (slice).
template <tensor_expression E>
auto split(const E& e, const std::vector<index_t>& sizes, int axis = 0) {
  auto node = as_node(e);
  const auto in = node.shape();
  const int a = normalize_axis("split", axis, decltype(node)::rank, to_string(in));
  index_t total = 0;
  bool negative = false;
  std::string listed;
  for (const index_t s : sizes) {
    listed += (listed.empty() ? "" : ", ") + std::to_string(s);
    negative = negative || s < 0;
    total += s;
  }
  if (negative || total != in[a]) {
    throw shape_error("split: sizes {" + listed + "} are not all non-negative adding up to extent " + std::to_string(in[a]) +
                      " of axis " + std::to_string(axis) + " of shape " + to_string(in));
  }
  std::vector<decltype(slice(node, a, 0, 0))> parts;
  parts.reserve(sizes.size());
  index_t start = 0;
  for (const index_t s : sizes) {
    parts.push_back(slice(node, a, start, start + s));
    start += s;
  }
  return parts;
}

/// Cuts `e` along `axis` into parts of `size` elements each (the last may be smaller; PyTorch's
/// `torch.split(x, size, dim)`). `size` must be positive.
template <tensor_expression E>
auto split(const E& e, index_t size, int axis = 0) {
  auto node = as_node(e);
  const auto in = node.shape();
  const int a = normalize_axis("split", axis, decltype(node)::rank, to_string(in));
  if (size < 1) {
    throw shape_error("split: part size " + std::to_string(size) + " must be positive (shape " + to_string(in) + ")");
  }
  std::vector<index_t> sizes;
  for (index_t start = 0; start < in[a]; start += size) {
    sizes.push_back(std::min(size, in[a] - start));
  }
  return split(node, sizes, a);
}

/// Cuts `e` along `axis` into `chunks` parts as PyTorch's `torch.chunk` does: each of extent
/// ceil(n / chunks), the last smaller, and fewer than `chunks` parts when n is too small.
template <tensor_expression E>
auto chunk(const E& e, index_t chunks, int axis = 0) {
  auto node = as_node(e);
  const auto in = node.shape();
  const int a = normalize_axis("chunk", axis, decltype(node)::rank, to_string(in));
  if (chunks < 1) {
    throw shape_error("chunk: " + std::to_string(chunks) + " chunks requested (must be positive) of shape " +
                      to_string(in));
  }
  if (in[a] == 0) {
    return split(node, std::vector<index_t>(static_cast<std::size_t>(chunks), 0), a);
  }
  return split(node, (in[a] + chunks - 1) / chunks, a);
}

}  // namespace fusegrad::inline FG_BACKEND_NS
