// fusegrad/eval/reduce_axes.hpp — a reduction over a set of axes at once, in one kernel.
//
// Autodiff needs it wherever a gradient is summed back to a smaller shape: a broadcast operand
// (`b` in `x + b`), a leaf read with zero strides. The reduced axes are given as a bit mask; the
// result holds the kept axes in C order.
#pragma once

#include "fusegrad/eval/assign.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

/// Element i = o * len + l of the input regrouped as (kept axes, reduced axes), both in C order:
/// the load of a reduction over axes that do not form one block.
template <class K>
struct LoadRegrouped {
  static constexpr int rank = K::rank;
  K k;
  Shape<rank> extents;
  unsigned mask = 0;  // bit a set: axis a is reduced
  index_t len = 1;    // product of the reduced extents

  /// Element i of the regrouped order: i = kept position * len + reduced position, each position
  /// in C order over its own axes. The axis loop is unrolled, so the index stays in registers.
  FG_HOST_DEVICE typename K::value_type operator()(index_t i) const {
    Shape<rank> index;
    index_t o = i / len, l = i % len;
    FG_UNROLL for (int a = rank - 1; a >= 0; --a) {
      const bool reduced = (mask >> a) & 1u;
      const index_t rest = reduced ? l : o;
      index[a] = rest % extents[a];
      l = reduced ? rest / extents[a] : l;
      o = reduced ? o : rest / extents[a];
    }
    return k.at(index);
  }
};

/// The reduced axes in `mask` as (outer, len, inner) when they form one block of the C order
/// (axes of extent 1 ignored); false otherwise.
template <int R>
bool reduction_block(const Shape<R>& extents, unsigned mask, index_t& outer, index_t& len,
                     index_t& inner) {
  outer = len = inner = 1;
  int phase = 0;  // 0: kept axes before the reduced block, 1: in it, 2: after it
  for (int i = 0; i < R; ++i) {
    if (extents[i] == 1) {
      continue;
    }
    if ((mask >> i) & 1u) {
      if (phase == 2) {
        return false;
      }
      phase = 1;
      len *= extents[i];
    } else {
      phase = phase == 1 ? 2 : phase;
      (phase == 0 ? outer : inner) *= extents[i];
    }
  }
  return true;
}

/// The kept axes (those not in `mask`) as (outer, mid, inner) when they form one block of the C
/// order (axes of extent 1 ignored): the reduced axes lie before and after it. False otherwise.
template <int R>
bool kept_block(const Shape<R>& extents, unsigned mask, index_t& outer, index_t& mid, index_t& inner) {
  return reduction_block(extents, ~mask, outer, mid, inner);
}

/// out[kept index, C order] = Red over k at every index that differs only on the axes in `mask`
/// (bit i set: reduce axis i), for axes that form one block of the C order. One kernel.
template <class Red, class Out, class K, int R>
void reduce_block(Out* out, const K& k, const Shape<R>& extents, index_t outer, index_t len,
                  index_t inner) {
  if constexpr (linear_possible<K>()) {
    if (k.linear()) {  // the input's C order is already (outer, len, inner)
      backend::reduce_axis<Red>(outer, len, inner, LoadLinear<K>{k}, out);
      return;
    }
  }
  backend::reduce_axis<Red>(outer, len, inner, LoadIndexed<K>{k, extents}, out);
}

/// out[m] = Red over k at every index whose kept block (outer, mid, inner) position is m: one
/// kernel.
template <class Red, class Out, class K, int R>
void reduce_kept_block(Out* out, const K& k, const Shape<R>& extents, index_t outer, index_t mid,
                       index_t inner) {
  if constexpr (linear_possible<K>()) {
    if (k.linear()) {
      backend::reduce_kept<Red>(outer, mid, inner, LoadLinear<K>{k}, out);
      return;
    }
  }
  backend::reduce_kept<Red>(outer, mid, inner, LoadIndexed<K>{k, extents}, out);
}

/// Sums the tree `e` (of shape `extents`) over the axes in `mask` into `out`, the kept axes in C
/// order. One kernel when the reduced axes form one block of the C order (a broadcast operand's
/// leading axes, say) or the kept axes do (a per-channel bias of NCHW: sum over N, H, W);
/// otherwise e is evaluated first and its copy regrouped (two kernels).
template <class E, class T, int R>
void sum_axes_into(T* out, const E& e, const Shape<R>& extents, unsigned mask) {
  Plan plan;
  const auto k = e.prepare(plan);
  using K = decltype(k);
  using V = typename K::value_type;
  using Red = typename ops::sum::template reducer<V>;
  index_t outer, len, inner;
  if (reduction_block(extents, mask, outer, len, inner)) {
    reduce_block<Red>(out, k, extents, outer, len, inner);
    return;
  }
  if (kept_block(extents, mask, outer, len, inner)) {
    reduce_kept_block<Red>(out, k, extents, outer, len, inner);
    return;
  }
  // Only leaves get the regrouping load: it is compiled once per dtype and rank.
  Tensor<V, R> copy(extents);
  write(copy.data(), extents, k);
  LoadRegrouped<Leaf<V, R>> load{copy.view(), extents, mask, 1};
  index_t kept_size = 1;
  for (int i = 0; i < R; ++i) {
    ((mask >> i) & 1u ? load.len : kept_size) *= extents[i];
  }
  backend::reduce_axis<Red>(kept_size, load.len, 1, load, out);
}

}  // namespace detail

}  // namespace fusegrad::inline FG_BACKEND_NS
