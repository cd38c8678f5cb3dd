// fusegrad/autodiff/grad.hpp — grad() and value_and_grad(): reverse-mode gradients of a scalar
// expression with respect to tensors it reads, derived from the expression's type.
//
//   auto loss = fg::mean(fg::nn::cross_entropy(fg::matmul(fg::relu(fg::matmul(x, W1) + b1), W2) + b2, y));
//   auto [gW1, gb1, gW2, gb2] = fg::grad(loss, W1, b1, W2, b2);
//   auto [value, grads] = fg::value_and_grad(loss, W1, b1, W2, b2);
//
// How it runs (autodiff/record.hpp, rules.hpp, tape.hpp):
//   1. forward: the loss tree is recorded; each matmul, reduction and GEMM-read operand is computed
//      once and saved (a subtree that occurs twice is computed once);
//   2. backward: from the root, each rule turns the output gradient into lazy gradients of its
//      operands; element-wise chains fuse into the kernel that next needs them (a GEMM's operand, a
//      reduction, or the variable's gradient), and saved nodes run their rules parents first.
// Only subtrees that contain a variable asked for get gradient work. The MLP above (batch B) runs 2
// forward and 3 backward GEMMs and 12 kernels in all (tests/test_autodiff.cpp counts them).
//
// Conventions: the gradient of a variable the loss does not depend on is zeros; relu'(0) = 0;
// maximum/minimum/where pass the gradient to the operand they chose; max/min reductions pass it to
// the first arg-extremum (the element argmax/argmin returns); comparisons and integer operands
// pass none.
#pragma once

#include <tuple>

#include "fusegrad/autodiff/rules.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// A loss value (rank-0 tensor, left on the device) and the gradients, in the variables' order.
template <class V, class... Grads>
struct ValueAndGrad {
  Tensor<V, 0> value;
  std::tuple<Grads...> grads;
};

/// The loss `loss` (a rank-0 expression) and its gradients with respect to `vars` (tensors it
/// reads, directly or through views), from one forward and one backward pass.
/// Example: `auto [value, grads] = fg::value_and_grad(fg::sum(fg::square(x - t)), x);`
template <tensor_expression L, class... T, int... R>
auto value_and_grad(const L& loss, const Tensor<T, R>&... vars) {
  auto node = as_node(loss);
  using N = decltype(node);
  static_assert(N::rank == 0,
                "grad: the loss must be a scalar (rank-0) expression; reduce it first, e.g. "
                "fg::mean(...) or fg::sum(...)");
  using V = typename N::value_type;
  static_assert(std::is_floating_point_v<V>, "grad: the loss must be floating point");
  static_assert(sizeof...(T) > 0, "grad: name the tensors to differentiate: fg::grad(loss, W, b)");

  Tape<Tensor<T, R>...> tape(vars...);
  const auto root = record(node, tape);
  const Scalar<V> seed(1);
  Tensor<V, 0> value;
  if constexpr (is_saved<std::remove_cvref_t<decltype(root)>>::value) {
    auto& state = *root.state;
    if (state.depends) {
      backprop_saved(state.node, state.value.view(), seed, tape);
    }
    tape.run_backward();
    value = std::move(state.value);
  } else {
    value = evaluate(root);
    if (depends(root, tape)) {
      backprop(root, seed, tape);
    }
    tape.run_backward();
  }
  return ValueAndGrad<V, Tensor<T, R>...>{std::move(value), tape.take_gradients()};
}

/// The gradients of the rank-0 expression `loss` with respect to `vars`, as a tuple of tensors of
/// the variables' shapes. Example: `auto [gW, gb] = fg::grad(fg::mean(fg::square(x * W + b)), W, b);`
template <tensor_expression L, class... T, int... R>
auto grad(const L& loss, const Tensor<T, R>&... vars) {
  return value_and_grad(loss, vars...).grads;
}

}  // namespace fusegrad::inline FG_BACKEND_NS
