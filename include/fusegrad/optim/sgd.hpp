// fusegrad/optim/sgd.hpp — stochastic gradient descent with momentum, dampening, Nesterov momentum
// and weight decay: one launch per step over all parameters (up to 64 per launch).
//
// The update, as PyTorch's documentation of torch.optim.SGD states it (learning rate γ, momentum
// μ, dampening τ, weight decay λ; parameters θ, gradient g_t, step t = 1, 2, ...):
//
//   if λ ≠ 0:  g_t ← g_t + λ θ_{t-1}
//   if μ ≠ 0:
//     if t > 1:  b_t ← μ b_{t-1} + (1 − τ) g_t
//     else:      b_t ← g_t
//     if nesterov:  g_t ← g_t + μ b_t
//     else:         g_t ← b_t
//   θ_t ← θ_{t-1} − γ g_t
//
// Computed in the parameters' type T (γ, μ, 1 − τ and λ are formed in double, then rounded to T,
// as PyTorch passes Python floats to its float kernels). The momentum buffer b ("momentum.<name>")
// exists only when μ ≠ 0. Nesterov needs μ > 0 and τ = 0, as in PyTorch.
#pragma once

#include "fusegrad/optim/optimizer.hpp"

namespace fusegrad::inline FG_BACKEND_NS::optim {

/// Hyperparameters of SGD; the defaults are PyTorch's.
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

namespace detail {

/// SGD's per-element update (see the equations above); state[0] is the momentum buffer.
template <class T>
struct SgdRule {
  T momentum{}, one_minus_dampening{};
  T weight_decay[max_groups] = {};  // per parameter group
  bool nesterov = false;
  bool has_momentum = false;

  struct Coefficients {
    T lr;
    bool first;  // t == 1: the momentum buffer starts as the gradient
  };
  using coefficients_type = Coefficients;

  FG_HOST_DEVICE Coefficients coefficients(double lr, std::int64_t t) const {
    return {static_cast<T>(lr), t <= 1};
  }
  FG_HOST_DEVICE void operator()(const Coefficients& c, T& p, T g, T* const (&state)[1], int group) const {
    // Everything is read before anything is written (see AdamRule).
    const T p_old = p;
    if (weight_decay[group] != T(0)) {
      g = g + weight_decay[group] * p_old;
    }
    if (has_momentum) {
      const T b = c.first ? g : momentum * *state[0] + one_minus_dampening * g;
      *state[0] = b;
      g = nesterov ? g + momentum * b : b;
    }
    p = p_old - c.lr * g;
  }
};

}  // namespace detail

/// SGD over a list of parameters, its state on the device, one launch per step.
/// Example:
///   fg::optim::SGD opt(fg::optim::params(W1, b1, W2, b2), {.lr = 0.1, .momentum = 0.9});
///   opt.step(fg::grad(loss, W1, b1, W2, b2));   // or opt.step(gW1, gb1, gW2, gb2)
template <class T = float>
class SGD : public detail::MultiTensorOptimizer<SGD<T>, T, 1> {
  using Base = detail::MultiTensorOptimizer<SGD<T>, T, 1>;

 public:
  /// Throws fusegrad::error for a negative learning rate, momentum or weight decay, or Nesterov
  /// without momentum or with dampening.
  explicit SGD(ParamList<T> params, const SGDOptions& options = {})
      : Base("SGD", {"momentum"}, std::move(params), checked(options).lr, options.weight_decay,
             options.momentum != 0),
        options_(options) {}

  const SGDOptions& options() const { return options_; }

  /// The per-element rule the step kernel runs (hyperparameters fixed at construction).
  detail::SgdRule<T> rule() const {
    detail::SgdRule<T> r{static_cast<T>(options_.momentum), static_cast<T>(1 - options_.dampening),
                         {}, options_.nesterov, options_.momentum != 0};
    const auto decays = this->group_decays();
    for (int g = 0; g < detail::max_groups; ++g) {
      r.weight_decay[g] = static_cast<T>(decays[static_cast<std::size_t>(g)]);
    }
    return r;
  }

 private:
  static const SGDOptions& checked(const SGDOptions& o) {
    detail::require(o.momentum >= 0, "SGD",
                    "invalid momentum " + detail::number_text(o.momentum) + " (must be >= 0)");
    detail::require(o.weight_decay >= 0, "SGD",
                    "invalid weight_decay " + detail::number_text(o.weight_decay) +
                        " (must be >= 0)");
    detail::require(!o.nesterov || (o.momentum > 0 && o.dampening == 0), "SGD",
                    "Nesterov momentum requires a momentum and zero dampening (momentum " +
                        detail::number_text(o.momentum) + ", dampening " +
                        detail::number_text(o.dampening) + ")");
    return o;
  }

  SGDOptions options_;
};

}  // namespace fusegrad::inline FG_BACKEND_NS::optim
