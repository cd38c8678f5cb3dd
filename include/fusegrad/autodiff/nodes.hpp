// fusegrad/autodiff/nodes.hpp — the lazy nodes only a backward pass builds: a reduction's gradient
// spread back over its input (ReduceGrad), a slice's gradient placed back in the sliced axis
// (Unslice), and the views of a gradient that undo a forward view (permute_node, reshape_node).
//
// They are element-wise nodes like any other: they fuse into whatever consumes the gradient.
#pragma once

#include "fusegrad/expr/view.hpp"
#include "fusegrad/ops/reduce.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// The gradient of y = Op-reduce(x) with respect to x, given the upstream gradient g (y's shape).
/// @post at(index) = g(r) * partial(x(index), y(r), n) where r is `index` with the reduced axis
///       dropped (kept as 0 for keepdims; everything dropped for a full reduction); for an op with
///       an aux_op (prod) at(index) = g(r) * partial(x(index), y(r), aux(r), n); for max/min
///       (to_extremum) at(index) = g(r) where index is the first arg-extremum `aux(r)`, else 0.
/// X and Y are Scalar placeholders when the op's rule does not read them; Aux likewise.
template <class Op, class G, class X, class Y, class Aux, int RI>
struct ReduceGrad : ExprBase<ReduceGrad<Op, G, X, Y, Aux, RI>> {
  using value_type = typename Y::value_type;
  static constexpr int rank = RI;
  static constexpr int out_rank = G::rank;
  static constexpr bool may_be_linear = false;
  G g;
  X x;
  Y y;
  Aux aux;   // max/min: the arg-extremum positions; prod: the aux_op reduction; else unused
  int axis = -1;       // -1: every element was reduced
  Shape<RI> extents;   // the input's shape
  index_t n = 1;       // elements per reduced lane

  Shape<RI> shape() const { return extents; }

  FG_HOST_DEVICE value_type at(const Shape<RI>& index) const {
    Shape<out_rank> r;
    index_t pos = 0;
    if (axis < 0) {
      FG_UNROLL for (int i = 0; i < RI; ++i) { pos = pos * extents[i] + index[i]; }
    } else {
      pos = axis_value(index, axis);
      if constexpr (out_rank == RI) {  // keepdims
        r = index;
        set_axis_value(r, axis, 0);
      } else if constexpr (out_rank > 0) {
        // index without its `axis` entry; every array index a compile-time constant.
        FG_UNROLL for (int j = 0; j < out_rank; ++j) { r[j] = j < axis ? index[j] : index[j + 1]; }
      }
    }
    const value_type upstream = static_cast<value_type>(g.at(r));
    if constexpr (requires { Op::to_extremum; }) {
      return pos == aux.at(r) ? upstream : value_type(0);
    } else if constexpr (requires { typename Op::aux_op; }) {
      return upstream * Op::partial(static_cast<value_type>(x.at(index)), y.at(r),
                                    static_cast<value_type>(aux.at(r)), n);
    } else {
      return upstream * Op::partial(static_cast<value_type>(x.at(index)), y.at(r), n);
    }
  }
  bool linear() const { return false; }

  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pg = g.prepare(plan);
    auto px = x.prepare(plan);
    auto py = y.prepare(plan);
    auto pa = aux.prepare(plan);
    return ReduceGrad<Op, decltype(pg), decltype(px), decltype(py), decltype(pa), RI>{
        {}, pg, px, py, pa, axis, extents, n};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return g.conflicts_with(b, e, false) || x.conflicts_with(b, e, false) ||
           y.conflicts_with(b, e, false) || aux.conflicts_with(b, e, false);
  }
};

/// The gradient of slice(x, axis, start, stop, step) with respect to x: g where the slice took an
/// element, 0 elsewhere.
template <class G>
struct Unslice : ExprBase<Unslice<G>> {
  using value_type = typename G::value_type;
  static constexpr int rank = G::rank;
  static constexpr bool may_be_linear = false;
  G g;
  int axis = 0;
  index_t start = 0;
  index_t step = 1;
  Shape<rank> extents;  // the sliced operand's shape
  index_t count = 0;    // extent of the slice along `axis`

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    const index_t offset = axis_value(index, axis) - start;
    const index_t taken = offset / step;
    if (offset < 0 || offset % step != 0 || taken >= count) {
      return value_type(0);
    }
    Shape<rank> sub = index;
    set_axis_value(sub, axis, taken);
    return g.at(sub);
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto p = g.prepare(plan);
    return Unslice<decltype(p)>{{}, p, axis, start, step, extents, count};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return g.conflicts_with(b, e, false); }
};

/// `first ? a : b`, chosen once at run time: a gradient that is either passed on as it is or
/// replaced by a reduced copy, in one type (so the subtree below is compiled once, not twice).
/// @pre a and b have the same shape and value type.
template <class A, class B>
struct OneOf : ExprBase<OneOf<A, B>> {
  using value_type = typename A::value_type;
  static constexpr int rank = A::rank;
  static constexpr bool may_be_linear = linear_possible<A>() || linear_possible<B>();
  bool first = true;
  A a;
  B b;

  Shape<rank> shape() const { return first ? a.shape() : b.shape(); }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    return first ? a.at(index) : static_cast<value_type>(b.at(index));
  }
  /// Only called when linear(): the chosen side is linear (so it can be).
  FG_HOST_DEVICE value_type at_linear(index_t i) const {
    if constexpr (linear_possible<A>() && linear_possible<B>()) {
      return first ? a.at_linear(i) : static_cast<value_type>(b.at_linear(i));
    } else if constexpr (linear_possible<A>()) {
      return a.at_linear(i);
    } else {
      return static_cast<value_type>(b.at_linear(i));
    }
  }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes(index_t i) const {
    if constexpr (linear_possible<A>() && linear_possible<B>()) {
      return first ? detail::lanes_of<V>(a, i) : lanes_of_b<V>(i);
    } else if constexpr (linear_possible<A>()) {
      return detail::lanes_of<V>(a, i);
    } else {
      return lanes_of_b<V>(i);
    }
  }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes_of_b(index_t i) const {
    const auto lb = detail::lanes_of<V>(b, i);
    Lanes<value_type, V> r;
    FG_UNROLL for (int j = 0; j < V; ++j) { r.v[j] = static_cast<value_type>(lb.v[j]); }
    return r;
  }
  /// Row cursor (node.hpp): both sides' cursors, the choice made per element (it never changes,
  /// so the compiler hoists it).
  template <class CA, class CB>
  struct Row {
    bool first;
    CA a;
    CB b;
    value_type operator()(index_t j) const { return first ? a(j) : static_cast<value_type>(b(j)); }
  };
  auto row(const Shape<rank>& index) const {
    using CA = decltype(detail::row_cursor(a, index));
    using CB = decltype(detail::row_cursor(b, index));
    return Row<CA, CB>{first, detail::row_cursor(a, index), detail::row_cursor(b, index)};
  }
  bool linear() const { return first ? is_linear(a) : is_linear(b); }
  bool lanes_aligned(int lanes) const {
    return first ? detail::lanes_aligned(a, lanes) : detail::lanes_aligned(b, lanes);
  }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pa = a.prepare(plan);
    auto pb = b.prepare(plan);
    return OneOf<decltype(pa), decltype(pb)>{{}, first, pa, pb};
  }
  bool conflicts_with(const void* begin, const void* end, bool same_index) const {
    return first ? a.conflicts_with(begin, end, same_index) : b.conflicts_with(begin, end, same_index);
  }
};

/// `g` read through the permutation `perm` (result axis i = g's axis perm[i]): a leaf view for a
/// leaf, a Permute node otherwise.
template <class G, int R>
auto permute_node(const G& g, const Shape<R>& perm) {
  const auto in = g.shape();
  Shape<R> out;
  for (int i = 0; i < R; ++i) {
    out[i] = in[perm[i]];
  }
  if constexpr (is_leaf<G>::value) {
    Shape<R> strides;
    for (int i = 0; i < R; ++i) {
      strides[i] = g.strides[perm[i]];
    }
    return G(g.data, out, strides);
  } else {
    return Permute<G>{{}, g, perm, out};
  }
}

/// `g` (any shape) read as `shape` (same element count, C order).
template <class G, int R>
auto reshape_node(const G& g, const Shape<R>& shape) {
  return Reshape<G, R>{{}, g, shape, g.shape()};
}

}  // namespace fusegrad::inline FG_BACKEND_NS
