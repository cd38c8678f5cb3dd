// fusegrad/nn/layers.hpp — the affine layer and the metric every classifier reports.
//
//   linear(x, W, b)        x W + b, lazy          x (N, in), W (in, out), b (out) -> (N, out)
//   Linear<T>              owns W (kaiming_uniform) and b (bias_uniform); fc(x) = linear(x, W, b);
//                          a module (nn/module.hpp) with fields "weight" (W) and "bias" (b)
//   accuracy(z, y)         mean over rows of [argmax_j z_ij == y_i], lazy (two kernels)
//
// Activations are the element-wise functions themselves (fg::relu, fg::tanh, fg::sigmoid).
#pragma once

#include <cstdint>

#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/matmul.hpp"
#include "fusegrad/expr/reduce.hpp"
#include "fusegrad/nn/init.hpp"

namespace fusegrad::inline FG_BACKEND_NS::nn {

/// x W + b: a GEMM whose bias (and any activation around it) fuses into one element-wise kernel.
template <tensor_expression X, tensor_expression W, tensor_expression B>
auto linear(const X& x, const W& w, const B& b) {
  return matmul(x, w) + b;
}

/// A fully connected layer: W (in, out), b (out), initialised as PyTorch's nn.Linear scales them
/// for ReLU networks (He-uniform weights, U(±1/√in) bias) from one seed. Its fields, for
/// optimizers and checkpoints (nn/module.hpp), are "weight" (W) and "bias" (b).
/// Example: `fg::nn::Linear<float> fc1(784, 128, /*seed*/ 1); auto h = fg::relu(fc1(x));`
template <class T = float>
struct Linear {
  Tensor<T, 2> W;  // (in, out)
  Tensor<T, 1> b;  // (out)

  Linear(index_t in, index_t out, std::uint64_t seed)
      : W(kaiming_uniform<T>(Shape<2>({in, out}), 2 * seed)), b(bias_uniform<T>(out, in, 2 * seed + 1)) {}

  /// Draws W and b again, exactly as `Linear(in, out, seed)` draws them (same shapes).
  /// Example: `fc1.reset(7);  // fc1.W == Linear<float>(784, 128, 7).W`
  void reset(std::uint64_t seed) {
    const index_t in = W.shape(0);
    const index_t out = W.shape(1);
    W = kaiming_uniform<T>(Shape<2>({in, out}), 2 * seed);
    b = bias_uniform<T>(out, in, 2 * seed + 1);
  }

  /// The module protocol (nn/module.hpp): names the parameters "weight" and "bias".
  void fields(auto& f) {
    f("weight", W);
    f("bias", b);
  }

  template <tensor_expression X>
  auto operator()(const X& x) const {
    return linear(x, W, b);
  }
};

/// The fraction of rows whose largest logit is at the label. Lazy: `accuracy(z, y).item()`.
template <tensor_expression Z, tensor_expression Y>
auto accuracy(const Z& logits, const Y& labels) {
  using V = typename node_t<Z>::value_type;
  static_assert(std::is_integral_v<typename node_t<Y>::value_type>, "accuracy: labels must be integers");
  return mean(cast<V>(argmax(logits, -1) == labels));
}

}  // namespace fusegrad::inline FG_BACKEND_NS::nn
