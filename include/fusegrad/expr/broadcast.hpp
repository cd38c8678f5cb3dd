// fusegrad/expr/broadcast.hpp — Broadcast<E, R>: an expression read at the index of a larger
// (or equal) shape, NumPy style. Leaves never need it: they broadcast with zero strides.
#pragma once

#include "fusegrad/expr/leaf.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// @pre E::rank <= R and inner.shape() broadcasts to `extents`.
/// @post at(index) = inner.at(index') with index' the right-aligned part of `index`, 0 where the
///       inner extent is 1.
template <class E, int R>
struct Broadcast : ExprBase<Broadcast<E, R>> {
  using value_type = typename E::value_type;
  static constexpr int rank = R;
  static constexpr int inner_rank = E::rank;
  static constexpr bool may_be_linear = linear_possible<E>();

  E inner;
  Shape<R> extents;
  Shape<inner_rank> inner_extents;
  bool identity = false;  // inner already has exactly this shape

  Broadcast() = default;
  Broadcast(const E& e, const Shape<R>& shape)
      : inner(e), extents(shape), inner_extents(e.shape()) {
    check_broadcastable("broadcast_to", inner_extents, extents);
    if constexpr (inner_rank == R) {
      identity = inner_extents == extents;
    }
  }

  Shape<R> shape() const { return extents; }

  FG_HOST_DEVICE value_type at(const Shape<R>& index) const {
    if constexpr (inner_rank == R) {
      if (identity) {
        return inner.at(index);
      }
    }
    Shape<inner_rank> sub;
    FG_UNROLL for (int j = 0; j < inner_rank; ++j) {
      sub[j] = inner_extents[j] == 1 ? 0 : index[j + R - inner_rank];
    }
    return inner.at(sub);
  }
  FG_HOST_DEVICE value_type at_linear(index_t i) const { return inner.at_linear(i); }
  /// Row cursor (node.hpp): the inner row at the mapped index, walked with step 0 where the
  /// inner's last axis is broadcast.
  template <class C>
  struct Row {
    C inner;
    index_t step;
    value_type operator()(index_t j) const { return inner(j * step); }
  };
  auto row(const Shape<R>& index) const {
    Shape<inner_rank> sub;
    for (int j = 0; j < inner_rank; ++j) {
      sub[j] = inner_extents[j] == 1 ? 0 : index[j + R - inner_rank];
    }
    using C = decltype(detail::row_cursor(inner, sub));
    return Row<C>{detail::row_cursor(inner, sub), inner_extents[inner_rank - 1] == 1 ? 0 : 1};
  }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes(index_t i) const {
    return detail::lanes_of<V>(inner, i);
  }
  bool linear() const { return identity && inner.linear(); }
  bool lanes_aligned(int lanes) const { return detail::lanes_aligned(inner, lanes); }

  /// A boundary node inside (a matmul, a reduction) plans to a leaf: the broadcast then becomes
  /// that leaf re-strided, so the kernel reads it like any tensor (no per-element branch).
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto p = inner.prepare(plan);
    if constexpr (is_leaf<decltype(p)>::value) {
      return broadcast_leaf(p, extents);
    } else {
      Broadcast<decltype(p), R> out;
      out.inner = p;
      out.extents = extents;
      out.inner_extents = inner_extents;
      out.identity = identity;
      return out;
    }
  }
  bool conflicts_with(const void* begin, const void* end, bool same_index) const {
    return inner.conflicts_with(begin, end, same_index && identity);
  }
};

/// Re-strides a leaf to a larger shape: zero strides where it broadcasts.
template <class T, int RI, int R>
Leaf<T, R> broadcast_leaf(const Leaf<T, RI>& leaf, const Shape<R>& shape) {
  check_broadcastable("broadcast_to", leaf.extents, shape);
  Shape<R> strides;
  for (int i = 0; i < R; ++i) {
    const int j = i - (R - RI);
    strides[i] = (j < 0 || leaf.extents[j] == 1) ? 0 : leaf.strides[j];
  }
  return Leaf<T, R>(leaf.data, shape, strides);
}

/// Reads `e` at every index of `shape` (rank >= e's rank), no copy.
template <int R, class E>
auto broadcast_node(const E& e, const Shape<R>& shape) {
  if constexpr (is_leaf<E>::value) {
    return broadcast_leaf(e, shape);
  } else if constexpr (is_scalar_node<E>::value) {
    return e;
  } else {
    return Broadcast<E, R>(e, shape);
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS
