// fusegrad/optim/adam.hpp — Adam and AdamW with bias correction: one launch per step over all
// parameters (up to 64 per launch).
//
// The updates, as PyTorch's documentation of torch.optim.Adam and torch.optim.AdamW states them
// (learning rate γ, betas β1, β2, epsilon ε, weight decay λ; parameters θ, gradient g_t,
// first and second moments m, v starting at 0; step t = 1, 2, ...):
//
//   Adam                                      AdamW (decoupled weight decay)
//   if λ ≠ 0:  g_t ← g_t + λ θ_{t-1}          θ_t ← θ_{t-1} − γ λ θ_{t-1}
//   m_t ← β1 m_{t-1} + (1 − β1) g_t           m_t ← β1 m_{t-1} + (1 − β1) g_t
//   v_t ← β2 v_{t-1} + (1 − β2) g_t²          v_t ← β2 v_{t-1} + (1 − β2) g_t²
//   m̂_t ← m_t / (1 − β1^t)                    m̂_t ← m_t / (1 − β1^t)
//   v̂_t ← v_t / (1 − β2^t)                    v̂_t ← v_t / (1 − β2^t)
//   θ_t ← θ_{t-1} − γ m̂_t / (√v̂_t + ε)       θ_t ← θ_t − γ m̂_t / (√v̂_t + ε)
//
// Evaluated as PyTorch's implementation does (algebraically the same): per step, in double,
// s = γ / (1 − β1^t) and c = √(1 − β2^t) (and 1 − γλ for AdamW); per element, in T,
// θ ← θ − s · m / (√v / c + ε). Defaults are PyTorch's: γ = 1e-3, β = (0.9, 0.999), ε = 1e-8,
// λ = 0 for Adam and 0.01 for AdamW. State: "m.<name>", "v.<name>" (see optimizer.hpp).
// Not implemented: amsgrad, maximize.
#pragma once

#include "fusegrad/optim/optimizer.hpp"

namespace fusegrad::inline FG_BACKEND_NS::optim {

/// Hyperparameters of Adam; the defaults are PyTorch's.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

/// Hyperparameters of AdamW; the defaults are PyTorch's (note weight_decay = 0.01).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

namespace detail {

/// The per-element Adam update (see the equations above); state = {m, v}.
template <class T, bool Decoupled>
struct AdamRule {
  double decoupled_weight_decay[max_groups] = {};  // λ per group, in double for 1 − γλ (AdamW)
  T beta1{}, one_minus_beta1{}, beta2{}, one_minus_beta2{}, eps{};
  T weight_decay[max_groups] = {};  // λ per group (Adam's L2 term)
  double beta1_d{}, beta2_d{};

  struct Coefficients {
    T decay[max_groups];  // 1 − γλ per group (AdamW)
    T step_size;  // γ / (1 − β1^t)
    T bc2_sqrt;   // √(1 − β2^t)
  };
  using coefficients_type = Coefficients;

  FG_HOST_DEVICE Coefficients coefficients(double lr, std::int64_t t) const {
    const double td = static_cast<double>(t);
    const double bc1 = 1 - pow_of(beta1_d, td);
    const double bc2 = 1 - pow_of(beta2_d, td);
    Coefficients c{{}, static_cast<T>(lr / bc1), static_cast<T>(sqrt_of(bc2))};
    FG_UNROLL for (int g = 0; g < max_groups; ++g) { c.decay[g] = static_cast<T>(1 - lr * decoupled_weight_decay[g]); }
    return c;
  }
  FG_HOST_DEVICE void operator()(const Coefficients& c, T& p, T g, T* const (&state)[2], int group) const {
    // Everything is read before anything is written: p, m and v may alias as far as the compiler
    // knows, and a reload after a store keeps the host loop waiting on that store.
    T p_old = p;
    if constexpr (Decoupled) {
      p_old = p_old * c.decay[group];
    } else if (weight_decay[group] != T(0)) {
      g = g + weight_decay[group] * p_old;
    }
    const T m = beta1 * *state[0] + one_minus_beta1 * g;
    const T v = beta2 * *state[1] + one_minus_beta2 * g * g;
    const T p_new = p_old - c.step_size * (m / (sqrt_of(v) / c.bc2_sqrt + eps));
    *state[0] = m;
    *state[1] = v;
    p = p_new;
  }
};

/// The rule of `o`, with the weight decay of each parameter group.
template <class T, bool Decoupled, class Options>
AdamRule<T, Decoupled> adam_rule(const Options& o, const std::array<double, max_groups>& decays) {
  AdamRule<T, Decoupled> r{{},
                           static_cast<T>(o.beta1), static_cast<T>(1 - o.beta1),
                           static_cast<T>(o.beta2), static_cast<T>(1 - o.beta2),
                           static_cast<T>(o.eps),   {},
                           o.beta1,                 o.beta2};
  for (int g = 0; g < max_groups; ++g) {
    const double wd = decays[static_cast<std::size_t>(g)];
    r.decoupled_weight_decay[g] = Decoupled ? wd : 0.0;
    r.weight_decay[g] = static_cast<T>(Decoupled ? 0.0 : wd);
  }
  return r;
}

/// PyTorch's argument checks; throws fusegrad::error naming the optimizer.
template <class Options>
const Options& checked_adam(const char* name, const Options& o) {
  require(o.eps >= 0, name, "invalid epsilon " + number_text(o.eps) + " (must be >= 0)");
  require(o.beta1 >= 0 && o.beta1 < 1, name,
          "invalid beta1 " + number_text(o.beta1) + " (must be in [0, 1))");
  require(o.beta2 >= 0 && o.beta2 < 1, name,
          "invalid beta2 " + number_text(o.beta2) + " (must be in [0, 1))");
  require(o.weight_decay >= 0, name,
          "invalid weight_decay " + number_text(o.weight_decay) + " (must be >= 0)");
  return o;
}

}  // namespace detail

/// Adam (L2 weight decay added to the gradient) over a list of parameters, its moments on the
/// device, one launch per step.
/// Example:
///   fg::optim::Adam opt(fg::optim::params(W1, b1, W2, b2), {.lr = 1e-3});
///   for (...) { opt.step(fg::grad(loss, W1, b1, W2, b2)); }
template <class T = float>
class Adam : public detail::MultiTensorOptimizer<Adam<T>, T, 2> {
  using Base = detail::MultiTensorOptimizer<Adam<T>, T, 2>;

 public:
  /// Throws fusegrad::error for a negative lr, eps or weight decay, or a beta outside [0, 1).
  explicit Adam(ParamList<T> params, const AdamOptions& options = {})
      : Base("Adam", {"m", "v"}, std::move(params), detail::checked_adam("Adam", options).lr,
             options.weight_decay, true),
        options_(options) {}

  const AdamOptions& options() const { return options_; }
  detail::AdamRule<T, false> rule() const { return detail::adam_rule<T, false>(options_, this->group_decays()); }

 private:
  AdamOptions options_;
};

/// AdamW (decoupled weight decay: θ ← θ − γλθ before the Adam update); otherwise as Adam.
/// Example: `fg::optim::AdamW opt(fg::optim::params(W, b), {.lr = 3e-4, .weight_decay = 0.05});`
template <class T = float>
class AdamW : public detail::MultiTensorOptimizer<AdamW<T>, T, 2> {
  using Base = detail::MultiTensorOptimizer<AdamW<T>, T, 2>;

 public:
  explicit AdamW(ParamList<T> params, const AdamWOptions& options = {})
      : Base("AdamW", {"m", "v"}, std::move(params), detail::checked_adam("AdamW", options).lr,
             options.weight_decay, true),
        options_(options) {}

  const AdamWOptions& options() const { return options_; }
  detail::AdamRule<T, true> rule() const { return detail::adam_rule<T, true>(options_, this->group_decays()); }

 private:
  AdamWOptions options_;
};

}  // namespace fusegrad::inline FG_BACKEND_NS::optim
