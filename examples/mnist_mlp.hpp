// examples/mnist_mlp.hpp — the classifier the MNIST example trains (784-128-ReLU-10 by default, or a
// residual MLP of any depth), shared with its test (tests/test_train.cpp) and benchmark
// (bench/mlp_train.cpp): the model, its loss, the optimizers and one training step (the data:
// mnist_data.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "mnist_data.hpp"

namespace mnist {

inline constexpr index_t hidden = 128;

enum class Loss { cross_entropy, mse };

/// A residual block of the deep variant: h + s · relu(h W + b), width -> width. The branch is
/// scaled by s = 1/√(number of blocks) so that the activations' variance stays bounded at any
/// depth (each block adds about s² of it).
struct Block {
  fg::nn::Linear<float> fc;
  float scale = 1.f;
  void fields(auto& f) { f("fc", fc); }
  template <class H>
  auto operator()(const H& h) const {  // (B, W) -> (B, W)
    return h + fg::relu(fc(h)) * scale;
  }
};

/// The network. Default (hidden_layers 1): the classic logits = relu(x W1 + b1) W2 + b2, x (B, 784),
/// W1 (784, 128), W2 (128, 10). With more hidden layers: fc1 (784 -> width), then
/// hidden_layers - 1 residual Blocks (width -> width), then fc2 (width -> 10). Written as
/// statements (fg::Var), one per layer: the depth is a run-time number and the program compiles
/// the block's statement once.
struct Model {
  fg::nn::Linear<float> fc1;
  std::vector<Block> blocks;
  fg::nn::Linear<float> fc2;

  explicit Model(std::uint64_t seed, int hidden_layers = 1, index_t width = hidden)
      : fc1(pixels, width, seed), fc2(width, classes, seed + 1000) {
    for (int i = 1; i < hidden_layers; ++i) {
      blocks.push_back(Block{fg::nn::Linear<float>(width, width, seed + 2000 + static_cast<std::uint64_t>(i)),
                             1.f / std::sqrt(static_cast<float>(hidden_layers - 1))});
    }
  }
  void fields(auto& f) { f("fc1", fc1); f("blocks", blocks); f("fc2", fc2); }

  int hidden_layers() const { return 1 + static_cast<int>(blocks.size()); }
  index_t width() const { return fc1.W.shape(1); }

  /// The classic network's logits as one lazy expression (B, 10) (hidden_layers 1 only).
  template <class X>
  auto logits(const X& x) const {
    return fc2(fg::relu(fc1(x)));
  }
  /// The last hidden layer of the deep variant, one statement per layer (B, width).
  template <class X>
  fg::Var<float, 2> features(const X& x) const {
    fg::Var<float, 2> h = fg::relu(fc1(x));
    for (const Block& block : blocks) {
      h = block(h);
    }
    return h;
  }
  /// The logits of either variant, evaluated (for evaluation: nothing is recorded).
  template <class X>
  fg::Tensor<float, 2> predict(const X& x) const {
    fg::no_grad guard;
    const fg::Var<float, 2> h = features(x);
    return fc2(h);
  }

  /// The mean loss over the batch: softmax cross-entropy, or the textbook ½ Σ (y − ŷ)² of the
  /// logits against one-hot targets.
  /// Calls f(loss) with the loss of logits z against labels y, a lazy scalar expression.
  template <class Z, class Y, class F>
  static void with_loss_of_logits(Loss kind, const Z& z, const Y& y, F&& f) {
    if (kind == Loss::mse) {
      f(fg::mean(fg::nn::mse(z, fg::nn::one_hot<float>(y, classes))));
    } else {
      f(fg::mean(fg::nn::cross_entropy(z, y)));
    }
  }
  /// Calls f(loss) with the model's loss on images x against labels y, written as statements: the
  /// hidden layers are Vars and the loss reads the last one. For the classic network that is two
  /// statements (hidden layer; loss), which run the same 12 kernels as the single expression
  /// `logits(x)` and give the same gradients (tests/test_var.cpp, bench_mlp_grad), and one code
  /// path serves every depth: the example compiles each statement type once.
  template <class X, class Y, class F>
  void with_loss(Loss kind, const X& x, const Y& y, F&& f) const {
    const fg::Var<float, 2> h = features(x);  // (B, width)
    with_loss_of_logits(kind, fc2(h), y, f);
  }
};

/// SGD (with momentum) or Adam over every parameter of a model (this one, or the CNN); one fused
/// launch per step.
class Optimizer {
 public:
  template <class M>
  Optimizer(M& m, const std::string& name, double lr) {
    auto params = fg::optim::params(m);
    if (name == "sgd") {
      opt_.emplace<fg::optim::SGD<float>>(params, fg::optim::SGDOptions{.lr = lr, .momentum = 0.9});
    } else if (name == "adam") {
      opt_.emplace<fg::optim::Adam<float>>(params, fg::optim::AdamOptions{.lr = lr});
    } else {
      throw fg::error("unknown optimizer '" + name + "' (use sgd or adam)");
    }
    name_ = name;
  }
  template <class Grads>
  void step(const Grads& grads) {
    visit([&](auto& o) { o.step(grads); });
  }
  /// f(name, tensor) for each tensor of the optimizer's state (moments, step count, lr).
  template <class F>
  void visit_state(F&& f) {
    visit([&](auto& o) { o.visit_state(f); });
  }
  const std::string& name() const { return name_; }
  /// The parameters it updates, in order (what value_and_grad differentiates against).
  const fg::optim::ParamList<float>& parameters() {
    const fg::optim::ParamList<float>* p = nullptr;
    visit([&](auto& o) { p = &o.parameters(); });
    return *p;
  }
  /// The learning rate the next step uses (kept on the device: captured steps see changes).
  void set_lr(double lr) {
    visit([&](auto& o) { o.set_lr(lr); });
  }

 private:
  template <class F>
  void visit(F&& f) {
    std::visit([&](auto& o) {
      if constexpr (!std::is_same_v<std::remove_cvref_t<decltype(o)>, std::monostate>) {
        f(o);
      }
    }, opt_);
  }
  std::variant<std::monostate, fg::optim::SGD<float>, fg::optim::Adam<float>> opt_;
  std::string name_;
};

/// One training step on a batch: forward, backward, optimizer update, and the batch's summed loss
/// added to `loss_sum` on the device (nothing is read back, so it can be captured as a graph).
inline void train_step(Model& m, Optimizer& opt, Loss kind, const fg::Tensor<float, 2>& x,
                       const fg::Tensor<std::int32_t, 1>& y, fg::Tensor<float, 0>& loss_sum) {
  m.with_loss(kind, x, y, [&](const auto& loss) {
    auto [value, grads] = fg::value_and_grad(loss, opt.parameters());
    opt.step(grads);
    loss_sum += value * static_cast<float>(x.shape(0));
  });
}

}  // namespace mnist
