// fusegrad/autodiff/grad.hpp — grad() and value_and_grad(): reverse-mode gradients of a scalar
// expression with respect to tensors it reads, directly or through recorded Vars.
//
//   auto loss = fg::mean(fg::nn::cross_entropy(fg::matmul(fg::relu(fg::matmul(x, W1) + b1), W2) + b2, y));
//   auto [gW1, gb1, gW2, gb2] = fg::grad(loss, W1, b1, W2, b2);
//   auto [value, grads] = fg::value_and_grad(loss, W1, b1, W2, b2);
//   auto [value, grads] = fg::value_and_grad(loss, fg::optim::params(model));   // a run-time list
//
// How it runs (autodiff/record.hpp, rules.hpp, tape.hpp, var.hpp):
//   1. forward: the loss tree is recorded; each matmul, reduction and GEMM-read operand is computed
//      once and saved (a subtree that occurs twice is computed once);
//   2. backward: from the root, each rule turns the output gradient into lazy gradients of its
//      operands; element-wise chains fuse into the kernel that next needs them (a GEMM's operand, a
//      reduction, or the variable's gradient), and saved nodes run their rules parents first;
//   3. the recorded statements the loss reads (Vars) run their own backward, latest first, each
//      fused the same way; then they are released (their saved values go back to the pool) unless
//      `fg::retain_graph` is passed.
// Only subtrees and statements that lead to a variable asked for get gradient work. The MLP above
// (batch B) runs 2 forward and 3 backward GEMMs and 12 kernels in all (tests/test_autodiff.cpp).
//
// Conventions: the gradient of a variable the loss does not depend on is zeros; relu'(0) = 0;
// maximum/minimum/where pass the gradient to the operand they chose; max/min reductions pass it to
// the first arg-extremum (the element argmax/argmin returns); comparisons and integer operands
// pass none; a Var computed under no_grad is a constant.
#pragma once

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fusegrad/autodiff/var.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// A loss value (rank-0 tensor, left on the device) and the gradients: a tuple in the variables'
/// order, or a Gradients list for a parameter list.
template <class V, class G>
struct ValueAndGrad {
  Tensor<V, 0> value;
  G grads;
};

/// Passed to grad()/value_and_grad() before the variables, keeps the recorded graph of the Vars
/// the loss reads, so that a second grad() can run over it. Example:
/// `auto [g1] = fg::grad(loss1, fg::retain_graph, W); auto [g2] = fg::grad(loss2, W);`
struct RetainGraph {};
inline constexpr RetainGraph retain_graph{};

/// Gradients with respect to a run-time list of parameters (optim::params(model)), in its order:
/// each flat (C order) with the parameter's extents. `opt.step(grads)` takes them as they are.
template <class T>
class Gradients {
 public:
  using element_type = T;
  std::size_t size() const { return flat_.size(); }
  /// Gradient i, flat (C order).
  const Tensor<T, 1>& flat(std::size_t i) const { return flat_[i]; }
  const T* data(std::size_t i) const { return flat_[i].data(); }
  /// Gradient i's memory, writable (clipping scales gradients in place).
  T* data(std::size_t i) { return flat_[i].data(); }
  index_t numel(std::size_t i) const { return flat_[i].size(); }
  /// The extents of parameter i.
  const std::vector<index_t>& dims(std::size_t i) const { return dims_[i]; }
  /// Gradient i as a tensor of rank R (a copy), e.g. `grads.as<2>(0)` for a weight matrix.
  template <int R>
  Tensor<T, R> as(std::size_t i) const {
    if (dims_[i].size() != static_cast<std::size_t>(R)) {
      throw shape_error("Gradients::as: gradient " + std::to_string(i) + " has rank " +
                        std::to_string(dims_[i].size()) + ", not " + std::to_string(R));
    }
    Shape<R> s;
    for (int a = 0; a < R; ++a) {
      s[a] = dims_[i][static_cast<std::size_t>(a)];
    }
    return Tensor<T, 1>(flat_[i]).reshaped(s);
  }
  void push_back(Tensor<T, 1>&& g, std::vector<index_t> dims) {
    flat_.push_back(std::move(g));
    dims_.push_back(std::move(dims));
  }

 private:
  std::vector<Tensor<T, 1>> flat_;
  std::vector<std::vector<index_t>> dims_;
};

/// A run-time list of parameter tensors of one element type (optim::ParamList is one).
template <class P>
concept parameter_list = requires(const P& p, std::size_t i) {
  typename P::element_type;
  { p.size() } -> std::convertible_to<std::size_t>;
  p.data(i);
  { p.numel(i) } -> std::convertible_to<index_t>;
  { p.dims(i) } -> std::convertible_to<std::vector<index_t>>;
};

/// What gradients can be asked for: tensors and Vars.
template <class V>
struct is_grad_target : std::false_type {};
template <class T, int R>
struct is_grad_target<Tensor<T, R>> : std::true_type {};
template <class T, int R>
struct is_grad_target<Var<T, R>> : std::true_type {};

namespace detail {

template <class L>
constexpr void check_loss() {
  using N = node_t<L>;
  static_assert(N::rank == 0,
                "grad: the loss must be a scalar (rank-0) expression; reduce it first, e.g. "
                "fg::mean(...) or fg::sum(...)");
  static_assert(std::is_floating_point_v<typename N::value_type>, "grad: the loss must be floating point");
}

template <class T, int R>
std::size_t request(Tape& tape, const Tensor<T, R>& t) {
  return tape.request(t.data(), t.shape());
}
template <class T, int R>
std::size_t request(Tape& tape, const Var<T, R>& v) {
  if (v.node()) {
    return tape.request(v.node());
  }
  return tape.request(v.data(), v.shape());
}

/// Records the loss, runs its rules and those of every statement it reaches; returns its value.
template <class L>
auto run_loss(Tape& tape, const L& loss) {
  auto node = as_node(loss);
  using V = typename decltype(node)::value_type;
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
  tape.run_graph();
  return value;
}

template <class L, class... X>
auto value_and_grad(const L& loss, bool retain, const X&... vars) {
  check_loss<L>();
  static_assert(sizeof...(X) > 0, "grad: name the tensors to differentiate: fg::grad(loss, W, b)");
  static_assert((is_grad_target<X>::value && ...),
                "grad: gradients can be asked for tensors and Vars (fg::Tensor, fg::Var), or for "
                "one parameter list (fg::optim::params(...))");
  Tape tape;
  const std::size_t index[] = {request(tape, vars)...};
  auto value = run_loss(tape, loss);
  auto grads = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return std::tuple<Tensor<typename X::element_type, X::rank>...>{
        tape.take<typename X::element_type>(index[I], vars.shape())...};
  }(std::index_sequence_for<X...>{});
  if (!retain) {
    tape.release_graph();
  }
  return ValueAndGrad<typename decltype(value)::element_type, decltype(grads)>{std::move(value), std::move(grads)};
}

template <class L, parameter_list P>
auto value_and_grad_list(const L& loss, bool retain, const P& params) {
  check_loss<L>();
  using T = typename P::element_type;
  Tape tape;
  for (std::size_t i = 0; i < params.size(); ++i) {
    tape.request(static_cast<const T*>(params.data(i)), Shape<1>({params.numel(i)}));
  }
  auto value = run_loss(tape, loss);
  Gradients<T> grads;
  for (std::size_t i = 0; i < params.size(); ++i) {
    grads.push_back(tape.take<T>(i, Shape<1>({params.numel(i)})), params.dims(i));
  }
  if (!retain) {
    tape.release_graph();
  }
  return ValueAndGrad<typename decltype(value)::element_type, Gradients<T>>{std::move(value), std::move(grads)};
}

}  // namespace detail

/// The loss `loss` (a rank-0 expression) and its gradients with respect to `vars` (tensors or Vars
/// it reads, directly, through views, or through recorded statements), from one forward and one
/// backward pass. Example: `auto [value, grads] = fg::value_and_grad(fg::sum(fg::square(x - t)), x);`
template <tensor_expression L, class... X>
  requires((!parameter_list<X> && !std::is_same_v<X, RetainGraph>) && ...)
auto value_and_grad(const L& loss, const X&... vars) {
  return detail::value_and_grad(loss, false, vars...);
}
/// The same, keeping the recorded graph of the Vars the loss reads for another grad().
template <tensor_expression L, class... X>
auto value_and_grad(const L& loss, RetainGraph, const X&... vars) {
  return detail::value_and_grad(loss, true, vars...);
}
/// The loss and its gradients with respect to a run-time parameter list, as Gradients.
/// Example: `auto ps = fg::optim::params(model); auto [loss, grads] = fg::value_and_grad(l, ps); opt.step(grads);`
template <tensor_expression L, parameter_list P>
auto value_and_grad(const L& loss, const P& params) {
  return detail::value_and_grad_list(loss, false, params);
}
template <tensor_expression L, parameter_list P>
auto value_and_grad(const L& loss, RetainGraph, const P& params) {
  return detail::value_and_grad_list(loss, true, params);
}

/// The gradients of the rank-0 expression `loss` with respect to `vars`, as a tuple of tensors of
/// the variables' shapes (or Gradients for a parameter list).
/// Example: `auto [gW, gb] = fg::grad(fg::mean(fg::square(x * W + b)), W, b);`
template <tensor_expression L, class... X>
auto grad(const L& loss, const X&... vars) {
  return value_and_grad(loss, vars...).grads;
}

}  // namespace fusegrad::inline FG_BACKEND_NS
