// fusegrad/expr/view.hpp — views: permute, transpose, reshape, slice, broadcast_to.
//
// On a leaf (a tensor or a view of one) a view is another leaf with other strides: no copy, and
// matmul passes a transposed leaf to cuBLAS as a transpose flag. On any other expression it is a
// small node that remaps the index.
#pragma once

#include <string>

#include "fusegrad/expr/map.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// @post at(index) = inner.at(sub) with sub[perm[i]] = index[i].
template <class E>
struct Permute : ExprBase<Permute<E>> {
  using value_type = typename E::value_type;
  static constexpr int rank = E::rank;
  static constexpr bool may_be_linear = false;
  E inner;
  Shape<rank> perm;
  Shape<rank> extents;

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    // sub[perm[i]] = index[i], with every array index known at compile time (registers only).
    Shape<rank> sub;
    FG_UNROLL for (int d = 0; d < rank; ++d) {
      FG_UNROLL for (int i = 0; i < rank; ++i) { sub[d] = perm[i] == d ? index[i] : sub[d]; }
    }
    return inner.at(sub);
  }
  FG_HOST_DEVICE value_type at_linear(index_t) const { return value_type{}; }  // never linear
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto p = inner.prepare(plan);
    return Permute<decltype(p)>{{}, p, perm, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return inner.conflicts_with(b, e, false); }
};

/// @post at(index) = inner.at(unravel(ravel(index, shape()), inner.shape())).
template <class E, int R>
struct Reshape : ExprBase<Reshape<E, R>> {
  using value_type = typename E::value_type;
  static constexpr int rank = R;
  static constexpr bool may_be_linear = linear_possible<E>();
  E inner;
  Shape<R> extents;
  Shape<E::rank> inner_extents;

  Shape<R> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<R>& index) const {
    index_t linear_index = 0;
    FG_UNROLL for (int i = 0; i < R; ++i) { linear_index = linear_index * extents[i] + index[i]; }
    Shape<E::rank> sub;
    FG_UNROLL for (int i = E::rank - 1; i >= 0; --i) {
      sub[i] = linear_index % inner_extents[i];
      linear_index /= inner_extents[i];
    }
    return inner.at(sub);
  }
  FG_HOST_DEVICE value_type at_linear(index_t i) const { return inner.at_linear(i); }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes(index_t i) const {
    return detail::lanes_of<V>(inner, i);
  }
  bool linear() const { return inner.linear(); }
  bool lanes_aligned(int lanes) const { return detail::lanes_aligned(inner, lanes); }
  /// Row cursor (node.hpp). The row at `index` is positions [f, f + W) of the C order: a linear
  /// inner tree reads at_linear(f + j); else, when the row lies within one row of the inner tree
  /// (a reshape that splits the last axis), it reads through the inner row cursor; else at().
  template <class C>
  struct Row {
    C cursor;
    const Reshape* self;
    Shape<R> index;
    index_t first;  // f, or the offset in the inner row
    int mode;       // 0: inner row cursor, 1: linear, 2: at()
    value_type operator()(index_t j) const {
      if (mode == 0) {
        return cursor(first + j);
      }
      if constexpr (linear_possible<E>()) {
        if (mode == 1) {
          return self->inner.at_linear(first + j);
        }
      }
      Shape<R> i = index;
      i[R - 1] = j;
      return self->at(i);
    }
  };
  auto row(const Shape<R>& index) const
    requires(R >= 1 && E::rank >= 1)
  {
    index_t f = 0;
    for (int i = 0; i < R; ++i) {
      f = f * extents[i] + index[i];
    }
    bool linear = false;
    if constexpr (linear_possible<E>()) {
      linear = inner.linear();
    }
    const index_t inner_row = inner_extents[E::rank - 1];
    const bool within = !linear && extents[R - 1] > 0 && inner_row % extents[R - 1] == 0;
    Shape<E::rank> start;  // the inner row holding f (any row when not within)
    index_t rest = within ? f / inner_row : 0;
    start[E::rank - 1] = 0;
    for (int i = E::rank - 2; i >= 0; --i) {
      start[i] = within ? rest % inner_extents[i] : 0;
      rest = within ? rest / inner_extents[i] : 0;
    }
    using C = decltype(detail::row_cursor(inner, start));
    return Row<C>{detail::row_cursor(inner, start), this, index, within ? f % inner_row : f,
                  linear ? 1 : (within ? 0 : 2)};
  }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto p = inner.prepare(plan);
    return Reshape<decltype(p), R>{{}, p, extents, inner_extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return inner.conflicts_with(b, e, false); }
};

/// @post at(index) = inner.at(index with index[axis] -> start + index[axis] * step).
template <class E>
struct Slice : ExprBase<Slice<E>> {
  using value_type = typename E::value_type;
  static constexpr int rank = E::rank;
  static constexpr bool may_be_linear = false;
  E inner;
  int axis = 0;
  index_t start = 0;
  index_t step = 1;
  Shape<rank> extents;

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    Shape<rank> sub = index;
    set_axis_value(sub, axis, start + axis_value(index, axis) * step);
    return inner.at(sub);
  }
  FG_HOST_DEVICE value_type at_linear(index_t) const { return value_type{}; }  // never linear
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto p = inner.prepare(plan);
    return Slice<decltype(p)>{{}, p, axis, start, step, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return inner.conflicts_with(b, e, false); }
};

/// Reorders the axes: result axis i is operand axis perm[i]. `permute(x, {2, 0, 1})`.
template <tensor_expression E, std::size_t N>
auto permute(const E& e, const int (&perm)[N]) {
  auto node = as_node(e);
  constexpr int R = decltype(node)::rank;
  static_assert(N == static_cast<std::size_t>(R),
                "permute: the permutation must list every axis of the operand exactly once");
  const auto in = node.shape();
  Shape<R> p;
  bool seen[R > 0 ? R : 1] = {};
  for (int i = 0; i < R; ++i) {
    const int a = perm[i];
    if (a < 0 || a >= R || seen[a]) {
      std::string text = "{";
      for (int j = 0; j < R; ++j) {
        text += (j ? ", " : "") + std::to_string(perm[j]);
      }
      throw shape_error("permute: " + text + "} is not a permutation of the axes of shape " +
                        to_string(in));
    }
    seen[a] = true;
    p[i] = a;
  }
  Shape<R> out;
  for (int i = 0; i < R; ++i) {
    out[i] = in[p[i]];
  }
  if constexpr (is_leaf<decltype(node)>::value) {
    Shape<R> strides;
    for (int i = 0; i < R; ++i) {
      strides[i] = node.strides[p[i]];
    }
    return decltype(node)(node.data, out, strides);
  } else {
    return Permute<decltype(node)>{{}, node, p, out};
  }
}

/// Swaps the two axes of a matrix expression (a view: no copy).
template <tensor_expression E>
auto transpose(const E& e) {
  static_assert(node_t<E>::rank == 2,
                "transpose: needs a rank-2 (matrix) expression; use permute for other ranks");
  return permute(e, {1, 0});
}

/// The same elements (C order) in a new shape of the same element count; one extent may be -1
/// (inferred). `reshape(x, {4, -1})`. Of a Tensor it is a view (a leaf, usable by matmul without a
/// copy); of any other expression a node that remaps the index.
template <tensor_expression E, std::size_t N>
auto reshape(const E& e, const index_t (&new_shape)[N]) {
  constexpr int R = static_cast<int>(N);
  auto node = as_node(e);
  const auto in = node.shape();
  Shape<R> out(new_shape);
  int inferred = -1;
  index_t known = 1;
  for (int i = 0; i < R; ++i) {
    if (out[i] == -1 && inferred < 0) {
      inferred = i;
    } else if (out[i] < 0) {
      throw shape_error("reshape: invalid target shape " + to_string(out) + " for " + to_string(in));
    } else {
      known *= out[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || in.size() % known != 0) {
      throw shape_error("reshape: cannot infer the -1 extent of " + to_string(out) + " from " +
                        to_string(in) + " (" + std::to_string(in.size()) + " elements)");
    }
    out[inferred] = in.size() / known;
  }
  if (out.size() != in.size()) {
    throw shape_error("reshape: cannot reshape " + to_string(in) + " (" + std::to_string(in.size()) +
                      " elements) to " + to_string(out) + " (" + std::to_string(out.size()) +
                      " elements)");
  }
  using Node = decltype(node);
  if constexpr (is_tensor<E>::value) {
    return Leaf<typename E::element_type, R>(node.data, out);  // a Tensor is contiguous: a view
  } else {
    return Reshape<Node, R>{{}, node, out, in};
  }
}

/// x as (x.shape(0), the product of the other extents): what a classifier reads after
/// convolutions. Of a Tensor it is a view; of an expression, a lazy reshape.
/// Example: `auto logits = fc(fg::flatten(fg::nn::max_pool2d(h, 2)));  // (N, C·H·W) -> (N, 10)`
template <tensor_expression E>
auto flatten(const E& e) {
  const auto in = as_node(e).shape();
  static_assert(decltype(in)::rank >= 1, "flatten: needs an expression of rank 1 or more");
  index_t rest = 1;
  for (int i = 1; i < decltype(in)::rank; ++i) {
    rest *= in[i];
  }
  return reshape(e, {in[0], rest});
}

/// Elements start, start + step, ... (< stop) along `axis`; 0 <= start <= stop <= extent, step >= 1.
/// `slice(x, 1, 2, 5)` takes columns 2, 3, 4.
template <tensor_expression E>
auto slice(const E& e, int axis, index_t start, index_t stop, index_t step = 1) {
  auto node = as_node(e);
  using Node = decltype(node);
  constexpr int R = Node::rank;
  static_assert(R >= 1, "slice: needs an expression of rank 1 or more");
  const auto in = node.shape();
  const int a = normalize_axis("slice", axis, R, to_string(in));
  if (start < 0 || stop < start || stop > in[a] || step < 1) {
    throw shape_error("slice: range [" + std::to_string(start) + ", " + std::to_string(stop) +
                      ") step " + std::to_string(step) + " is out of range for axis " +
                      std::to_string(axis) + " of shape " + to_string(in));
  }
  Shape<R> out = in;
  out[a] = (stop - start + step - 1) / step;
  if constexpr (is_leaf<Node>::value) {
    Shape<R> strides = node.strides;
    strides[a] *= step;
    return Node(node.data + start * node.strides[a], out, strides);
  } else {
    return Slice<Node>{{}, node, a, start, step, out};
  }
}

/// Position `index` of `axis`, without that axis (rank R - 1; PyTorch's `select`, NumPy's
/// x[..., index, ...]). Of a tensor or a view of one it is a view (a leaf: a GEMM reads it in
/// place); of any other expression a slice read through a reshape. Splitting a fused projection
/// into attention heads without copies:
///   auto qkv5 = permute(reshape(qkv, {B, T, 3, H, D}), {2, 0, 3, 1, 4});   // [3, B, H, T, D]
///   auto q = select(qkv5, 0, 0), k = select(qkv5, 0, 1), v = select(qkv5, 0, 2);
template <tensor_expression E>
auto select(const E& e, int axis, index_t index) {
  auto node = as_node(e);
  using Node = decltype(node);
  constexpr int R = Node::rank;
  static_assert(R >= 1, "select: needs an expression of rank 1 or more");
  const auto in = node.shape();
  const int a = normalize_axis("select", axis, R, to_string(in));
  if (index < 0 || index >= in[a]) {
    throw shape_error("select: index " + std::to_string(index) + " is out of range for axis " + std::to_string(axis) +
                      " of shape " + to_string(in));
  }
  Shape<R - 1> out;
  for (int i = 0, j = 0; i < R; ++i) {
    if (i != a) {
      out[j++] = in[i];
    }
  }
  if constexpr (is_leaf<Node>::value) {
    Shape<R - 1> strides;
    for (int i = 0, j = 0; i < R; ++i) {
      if (i != a) {
        strides[j++] = node.strides[i];
      }
    }
    return Leaf<typename Node::storage_type, R - 1>(node.data + index * node.strides[a], out, strides);
  } else {
    auto one = slice(node, a, index, index + 1);
    return Reshape<decltype(one), R - 1>{{}, one, out, one.shape()};
  }
}

/// Reads `e` at every index of `shape` (NumPy broadcasting; a view, no copy).
template <tensor_expression E, std::size_t N>
auto broadcast_to(const E& e, const index_t (&shape)[N]) {
  return broadcast_node(as_node(e), Shape<static_cast<int>(N)>(shape));
}

}  // namespace fusegrad::inline FG_BACKEND_NS
