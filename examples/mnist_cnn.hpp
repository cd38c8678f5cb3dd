// examples/mnist_cnn.hpp — the convolutional classifier the MNIST CNN example trains, shared with
// its test (tests/test_train.cpp) and benchmark (bench/cnn_train.cpp):
//
//   x (B, 784) -> (B, 1, 28, 28)
//   block 1: conv 3x3 (1 -> C1, padding 1) -> batch norm -> ReLU -> max-pool 2   (B, C1, 14, 14)
//   block 2: conv 3x3 (C1 -> C2, padding 1) -> batch norm -> ReLU -> max-pool 2  (B, C2, 7, 7)
//   flatten -> linear (C2 · 49 -> 10)
//
// The convolutions have no bias: batch norm's β takes its place (a bias before batch norm is
// subtracted again with the mean). Each block is one statement (fg::Var): its GEMM, the batch
// moments, and one kernel for normalise + affine + ReLU + pooling.
#pragma once

#include <cstdint>
#include <string>

#include "mnist_mlp.hpp"

namespace mnist {

/// conv 3x3 (padding 1, no bias) -> batch norm -> ReLU -> max-pool 2: (B, C, H, W) -> (B, O, H/2, W/2).
struct ConvBlock {
  fg::Tensor<float, 4> weight;  // (O, C, 3, 3), He-uniform as nn::Conv2d draws it
  fg::nn::BatchNorm2d<float> bn;

  ConvBlock(index_t in, index_t out, std::uint64_t seed) : weight(fg::nn::Conv2d<float>(in, out, 3, seed).weight), bn(out) {}
  void fields(auto& f) {
    f("weight", weight);
    f("bn", bn);
  }
  template <class X>
  auto operator()(const X& x) {
    return fg::nn::max_pool2d(fg::relu(bn(fg::nn::conv2d(x, weight, {.padding = 1}))), 2);
  }
};

/// The network (about 50k parameters with the default widths 32 and 64).
struct Cnn {
  index_t c1, c2;
  ConvBlock block1, block2;
  fg::nn::Linear<float> head;

  explicit Cnn(std::uint64_t seed, index_t channels1 = 32, index_t channels2 = 64)
      : c1(channels1), c2(channels2), block1(1, channels1, seed), block2(channels1, channels2, seed + 1),
        head(channels2 * 49, classes, seed + 2) {}
  void fields(auto& f) {
    f("block1", block1);
    f("block2", block2);
    f("head", head);
  }

  /// The second block's output (B, C2, 7, 7) for images x (B, 784): two statements.
  template <class X>
  fg::Var<float, 4> features(const X& x) {
    const fg::Var<float, 4> h1 = block1(fg::reshape(x, {x.shape()[0], 1, 28, 28}));  // (B, C1, 14, 14)
    return block2(h1);
  }
  /// Calls f(loss) with the mean cross-entropy of images x against labels y, a lazy scalar.
  template <class X, class Y, class F>
  void with_loss(const X& x, const Y& y, F&& f) {
    const fg::Var<float, 4> h = features(x);
    f(fg::mean(fg::nn::cross_entropy(head(fg::flatten(h)), y)));
  }
  /// The logits in evaluation mode (the running moments, nothing recorded or updated).
  template <class X>
  fg::Tensor<float, 2> predict(const X& x) {
    fg::no_grad guard;
    fg::nn::set_training(*this, false);
    const fg::Var<float, 4> h = features(x);
    fg::Tensor<float, 2> out = head(fg::flatten(h));
    fg::nn::set_training(*this, true);
    return out;
  }
};

/// One training step: forward, backward, optimizer update; the batch's summed loss is added to
/// `loss_sum` on the device (nothing read back, so the step can be captured as a graph).
inline void train_step(Cnn& m, Optimizer& opt, const fg::Tensor<float, 2>& x, const fg::Tensor<std::int32_t, 1>& y,
                       fg::Tensor<float, 0>& loss_sum) {
  m.with_loss(x, y, [&](const auto& loss) {
    auto [value, grads] = fg::value_and_grad(loss, opt.parameters());
    opt.step(grads);
    loss_sum += value * static_cast<float>(x.shape(0));
  });
}

}  // namespace mnist
