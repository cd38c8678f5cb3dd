// fusegrad/autodiff/saved.hpp — Saved<N>: a node of the recorded forward pass whose value was
// computed once and is kept, with room for the gradient that flows back into it.
//
// Recording (autodiff/record.hpp) wraps every boundary node — matrix products, reductions, and the
// element-wise operands a GEMM reads — in a Saved. Forward consumers read its value as a leaf, so
// nothing is computed twice; the backward pass sums the gradients arriving at it into `grad`
// (each contribution one kernel, or the GEMM that produces it) and then applies N's rule once.
#pragma once

#include <memory>

#include "fusegrad/eval/assign.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// What a Saved node shares between every place the same subtree occurs.
template <class N>
struct SavedState {
  using value_type = typename N::value_type;
  static constexpr int rank = N::rank;
  N node;                              // the recorded subtree (its children recorded too)
  Tensor<value_type, rank> value;      // N's value, computed once
  Tensor<value_type, rank> grad;       // the sum of the gradients that reached it
  bool has_grad = false;
  bool depends = false;                // whether any variable asked for lies below it
};

/// A recorded boundary node: reads as its saved value.
template <class N>
struct Saved : ExprBase<Saved<N>> {
  using value_type = typename N::value_type;
  static constexpr int rank = N::rank;
  std::shared_ptr<SavedState<N>> state;

  Shape<rank> shape() const { return state->value.shape(); }
  Leaf<value_type, rank> value() const { return state->value.view(); }
  template <class Plan>
  Leaf<value_type, rank> prepare(Plan&) const {
    return value();
  }
};

template <class E>
struct is_saved : std::false_type {};
template <class N>
struct is_saved<Saved<N>> : std::true_type {};

}  // namespace fusegrad::inline FG_BACKEND_NS
