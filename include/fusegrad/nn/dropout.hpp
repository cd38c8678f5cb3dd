// fusegrad/nn/dropout.hpp — dropout with a counter-based mask: nothing is stored, the backward
// pass regenerates the mask from the seed.
//
//   dropout(x, p, seed)[i] = x[i] / (1 - p)   where u(i) >= p,   else 0
//
// u(i) is uniform in [0, 1) from Philox4x32-10 with counter = i, the element's C-order position in
// x's shape, and key = seed (expr/generator.hpp): the same (shape, p, seed) gives the same mask on
// every backend, thread count and run. Pass a different seed for each call that must differ
// (each layer, each step). p = 0 is the identity; p = 1 gives zeros. The gradient is
// dropout(g, p, seed): the same mask, regenerated inside the backward kernel.
#pragma once

#include <cstdint>
#include <string>

#include "fusegrad/expr/generator.hpp"
#include "fusegrad/expr/map.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// x masked and rescaled by a mask regenerated from (position, seed).
template <class X>
struct Dropout : ExprBase<Dropout<X>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = linear_possible<X>();
  X x;
  float p = 0;
  value_type scale = 1;  // 1 / (1 - p); 0 when p = 1
  std::uint64_t seed = 0;
  Shape<rank> extents;

  Shape<rank> shape() const { return extents; }
  FG_HOST_DEVICE bool kept(index_t position) const {
    const auto w = fusegrad::FG_BACKEND_NS::detail::Philox::generate(static_cast<std::uint64_t>(position), seed);
    return fusegrad::FG_BACKEND_NS::detail::unit_uniform<float>(w.c[0], w.c[1]) >= p;
  }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    if (p == 0) {
      return x.at(index);  // the identity: no mask to draw (evaluation, or dropout turned off)
    }
    index_t position = 0;
    FG_UNROLL for (int d = 0; d < rank; ++d) { position = position * extents[d] + index[d]; }
    return kept(position) ? static_cast<value_type>(x.at(index)) * scale : value_type(0);
  }
  /// Row cursor (node.hpp): the mask drawn from each element's C-order position, as at() does.
  template <class C>
  struct Row {
    const Dropout* self;
    C x;
    index_t first;  // the row's first position
    value_type operator()(index_t j) const {
      if (self->p == 0) {
        return x(j);
      }
      return self->kept(first + j) ? static_cast<value_type>(x(j)) * self->scale : value_type(0);
    }
  };
  auto row(const Shape<rank>& index) const {
    index_t first = 0;
    for (int d = 0; d < rank; ++d) {
      first = first * extents[d] + index[d];
    }
    using C = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    return Row<C>{this, fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index), first};
  }
  FG_HOST_DEVICE value_type at_linear(index_t i) const {
    if (p == 0) {
      return x.at_linear(i);
    }
    return kept(i) ? static_cast<value_type>(x.at_linear(i)) * scale : value_type(0);
  }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes(index_t i) const {
    auto l = fusegrad::FG_BACKEND_NS::detail::lanes_of<V>(x, i);
    if (p != 0) {
      FG_UNROLL for (int j = 0; j < V; ++j) { l.v[j] = kept(i + j) ? l.v[j] * scale : value_type(0); }
    }
    return l;
  }
  bool linear() const { return is_linear(x); }
  bool lanes_aligned(int lanes) const { return fusegrad::FG_BACKEND_NS::detail::lanes_aligned(x, lanes); }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    return Dropout<decltype(px)>{{}, px, p, scale, seed, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool same_index_ok) const {
    return x.conflicts_with(b, e, same_index_ok);
  }
};

/// Dropout in training: each element of x is zeroed with probability p and the rest are scaled by
/// 1 / (1 - p), from a mask that is a function of (position, seed) and never stored. p in [0, 1].
/// Example: `h = fg::nn::dropout(h, 0.1f, step * 1000 + layer);`
template <tensor_expression E>
auto dropout(const E& input, double p, std::uint64_t seed) {
  auto x = as_node(input);
  using X = decltype(x);
  using V = typename X::value_type;
  static_assert(std::is_floating_point_v<V>, "dropout: needs a floating-point operand");
  if (!(p >= 0 && p <= 1)) {
    throw error("dropout: the drop probability must be in [0, 1], got " + std::to_string(p));
  }
  const V scale = p < 1 ? static_cast<V>(1 / (1 - p)) : V(0);
  return Dropout<X>{{}, x, static_cast<float>(p), scale, seed, x.shape()};
}

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, class Tp>
auto record(const Dropout<X>& d, Tp& tape) {
  auto x = record(d.x, tape);
  return Dropout<decltype(x)>{{}, x, d.p, d.scale, d.seed, d.extents};
}
template <class X, class Tp>
bool depends(const Dropout<X>& d, const Tp& tape) {
  return depends(d.x, tape);
}
template <class X>
bool same(const Dropout<X>& a, const Dropout<X>& b) {
  return a.p == b.p && a.seed == b.seed && a.extents == b.extents && same(a.x, b.x);
}
/// The gradient goes through the same mask and scale, regenerated.
template <class X, class G, class Tp>
void backprop(const Dropout<X>& d, const G& g, Tp& tape) {
  if (depends(d.x, tape)) {
    auto gn = as_node(g);
    using V = typename decltype(gn)::value_type;
    backprop(d.x, Dropout<decltype(gn)>{{}, gn, d.p, static_cast<V>(d.scale), d.seed, d.extents}, tape);
  }
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
