// fusegrad/nn/batch_norm.hpp — batch normalisation over every axis but the channels (axis 1 of
// NCHW, or of (N, C) and (N, C, L)), its running statistics, and the BatchNorm layer.
//
//   batch_norm(x, gamma, beta, eps)          y = (x - μ) r γ + β,  r = 1 / √(σ² + ε),  batch moments
//   batch_norm(x, running_mean, running_var, gamma, beta, training, momentum, eps)   PyTorch's order:
//     training   batch moments; running_mean ← (1 - m) running_mean + m μ,
//                running_var ← (1 - m) running_var + m σ² M / (M - 1)     (M values per channel)
//     evaluation the running moments in place of μ and σ²; nothing is updated
//   BatchNorm<T>(C)   weight γ = 1, bias β = 0 (parameters), running_mean 0, running_var 1 (buffers:
//                     saved in checkpoints, never trained); train() / eval() switch the mode
//
// μ and σ² (population variance, as PyTorch) are the moments of each channel over N and the
// spatial axes. Forward: one reduction (every channel's {μ, σ²} in one pass, Welford's update),
// one small kernel over C (r = 1 / √(σ² + ε) per channel; in training it also updates the
// running moments) and one element-wise kernel that applies γ, β and whatever follows
// (`relu(bn(x))` is that one kernel). Backward,
// given g = dL/dy (evaluated first when it is a lazy tree, as it is read twice):
//   dβ = Σ g,  dγ = Σ g x̂           one reduction, both sums per channel in one pass
//   dx = γ r (g - (Σ g + x̂ Σ g x̂) / M)      one element-wise kernel   (evaluation: dx = γ r g)
// The running statistics are updated each time the batch moments are computed: once per
// evaluation of the expression, or once when a statement is recorded for autodiff (its backward
// reuses the saved moments).
#pragma once

#include <string>

#include "fusegrad/eval/assign.hpp"
#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/reduce.hpp"
#include "fusegrad/memory/tensor.hpp"
#include "fusegrad/nn/layer_norm.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// Where the running moments live (device pointers, C elements each; null: none) and how batch
/// moments update them.
template <class V>
struct RunningMoments {
  V* mean = nullptr;
  V* var = nullptr;
  V momentum = V(0.1);
  bool operator==(const RunningMoments&) const = default;
};

namespace detail {

/// The batch's {μ_c, σ²_c} become {μ_c, 1 / √(σ²_c + ε)}; with running moments (mean non-null),
/// first mean[c] ← (1 - m) mean[c] + m μ_c, var[c] ← (1 - m) var[c] + m σ²_c M / (M - 1).
template <class V>
struct FinishMoments {
  ops::Two<V>* batch;
  V* mean;
  V* var;
  V momentum, unbias, eps;
  FG_HOST_DEVICE void operator()(index_t c) const {
    const ops::Two<V> m = batch[c];
    if (mean != nullptr) {
      mean[c] = (V(1) - momentum) * mean[c] + momentum * m.first;
      var[c] = (V(1) - momentum) * var[c] + momentum * m.second * unbias;
    }
    batch[c].second = ops::rsqrt{}(m.second + eps);
  }
};

/// out[c] = {mean[c], 1 / √(var[c] + ε)}: the running moments as batch_norm's statistics.
template <class V>
struct PackMoments {
  ops::Two<V>* out;
  const V* mean;
  const V* var;
  V eps;
  FG_HOST_DEVICE void operator()(index_t c) const { out[c] = {mean[c], ops::rsqrt{}(var[c] + eps)}; }
};

}  // namespace detail

/// Every channel's {μ, r = 1 / √(σ² + ε)}: from the batch's moments over every axis but `axis`
/// (batch == true; the running moments are updated then), or from the running moments (batch ==
/// false). A boundary node: one reduction and one small kernel over the channels.
template <class X>
struct BatchMoments : ExprBase<BatchMoments<X>> {
  using V = typename X::value_type;
  using value_type = ops::Two<V>;
  using op_type = ops::moments;
  using input_type = X;
  static constexpr int rank = 1;

  X input;
  int axis = 1;
  Shape<1> extents;
  RunningMoments<V> running;
  bool batch = true;
  V eps = V(1e-5);

  Shape<1> shape() const { return extents; }
  /// The same moments of another (already prepared) input: a reduction's protocol (expr/reduce.hpp).
  template <class PX>
  BatchMoments<PX> with_input(const PX& px) const {
    return {{}, px, axis, extents, running, batch, eps};
  }
  template <class Plan>
  auto prepare(Plan& plan) const {
    return materialize(*this, plan);
  }
};

}  // namespace nn

template <class X>
struct is_reduce<nn::BatchMoments<X>> : std::true_type {};

namespace nn {

/// Writes the statistics `r` into out (C values), its input planned as k; with batch moments,
/// updates the running ones. Found by assign_to (an evaluated BatchMoments, as tape.save does)
/// through ADL.
template <class X, class K>
void run_reduce(ops::Two<typename X::value_type>* out, const BatchMoments<X>& r, const K& k) {
  using V = typename X::value_type;
  const index_t channels = r.extents[0];
  if (!r.batch) {
    backend::for_each_linear(channels, detail::PackMoments<V>{out, r.running.mean, r.running.var, r.eps});
    return;
  }
  fusegrad::FG_BACKEND_NS::detail::run_reduce(out, ReduceKept<ops::moments, X>{{}, r.input, r.axis, r.extents}, k);
  const index_t count = channels == 0 ? 0 : r.input.shape().size() / channels;
  const V unbias = count > 1 ? V(count) / V(count - 1) : V(1);
  const bool update = r.running.mean != nullptr && count > 0;  // an empty batch leaves them alone
  backend::for_each_linear(channels, detail::FinishMoments<V>{out, update ? r.running.mean : nullptr, r.running.var,
                                                              r.running.momentum, unbias, r.eps});
}

/// Evaluates the moments into a temporary of the plan.
template <class X, class P>
auto materialize(const BatchMoments<X>& r, P& plan) {
  Tensor<ops::Two<typename X::value_type>, 1> t(r.shape());
  Plan inner;
  run_reduce(t.data(), r, r.input.prepare(inner));
  return plan.keep(std::move(t));
}

/// y = (x - μ_c) r_c γ_c + β_c, c = the channel (index[1]), given S: every channel's {μ, r}.
template <class X, class S, class G, class B>
struct BatchNormalize : ExprBase<BatchNormalize<X, S, G, B>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  X x;
  S stats;
  G gamma;
  B beta;
  bool batch = true;  // S holds the batch's moments (the training rule)

  Shape<rank> shape() const { return x.shape(); }
  /// The scale γ r and shift β of channel c, and its mean.
  FG_HOST_DEVICE void channel(index_t c, value_type& mean, value_type& scale, value_type& shift) const {
    const Shape<1> at_c({c});
    const auto m = stats.at(at_c);
    mean = m.first;
    scale = m.second * static_cast<value_type>(gamma.at(at_c));
    shift = static_cast<value_type>(beta.at(at_c));
  }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    value_type mean, scale, shift;
    channel(index[1], mean, scale, shift);
    return (static_cast<value_type>(x.at(index)) - mean) * scale + shift;
  }
  /// Row cursor (node.hpp): the row's channel constants read once (rank >= 3: a row lies in one
  /// channel).
  template <class C>
  struct Row {
    C x;
    value_type mean, scale, shift;
    value_type operator()(index_t j) const { return (static_cast<value_type>(x(j)) - mean) * scale + shift; }
  };
  auto row(const Shape<rank>& index) const
    requires(rank >= 3)
  {
    using C = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    Row<C> r{fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index), {}, {}, {}};
    channel(index[1], r.mean, r.scale, r.shift);
    return r;
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    auto ps = fusegrad::FG_BACKEND_NS::detail::prepare_reduction_of(stats, px, plan);
    auto pg = gamma.prepare(plan);
    auto pb = beta.prepare(plan);
    return BatchNormalize<decltype(px), decltype(ps), decltype(pg), decltype(pb)>{{}, px, ps, pg, pb, batch};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return x.conflicts_with(b, e, false) || stats.conflicts_with(b, e, false) ||
           gamma.conflicts_with(b, e, false) || beta.conflicts_with(b, e, false);
  }
};

/// dx = γ r (g - (Σg + x̂ Σ g x̂) / M) for batch norm's input, given every channel's {μ, r} (S)
/// and {Σg, Σ g x̂} (Q); with constant statistics (evaluation) dx = γ r g.
template <class H, class X, class S, class Q, class G>
struct BatchNormGrad : ExprBase<BatchNormGrad<H, X, S, Q, G>> {
  using value_type = typename X::value_type;
  static constexpr int rank = X::rank;
  static constexpr bool may_be_linear = false;
  H h;
  X x;
  S stats;
  Q sums;
  G gamma;
  value_type count;   // M, the values per channel
  bool batch = true;  // the moments are the batch's: the Σ terms

  Shape<rank> shape() const { return x.shape(); }
  /// Channel c's constants: μ, r, γ r, Σg / M, Σ g x̂ / M.
  struct Channel {
    value_type mean, inv_std, scale, mean_g, mean_gx;
    FG_HOST_DEVICE value_type operator()(value_type g, value_type x) const {
      return scale * (g - mean_g - (x - mean) * inv_std * mean_gx);
    }
  };
  FG_HOST_DEVICE Channel channel(index_t c) const {
    const Shape<1> at_c({c});
    const auto m = stats.at(at_c);
    Channel k{m.first, m.second, value_type(0), value_type(0), value_type(0)};
    k.scale = k.inv_std * static_cast<value_type>(gamma.at(at_c));
    if (batch) {
      const auto q = sums.at(at_c);
      k.mean_g = q.first / count;
      k.mean_gx = q.second / count;
    }
    return k;
  }
  FG_HOST_DEVICE value_type at(const Shape<rank>& index) const {
    return channel(index[1])(static_cast<value_type>(h.at(index)), static_cast<value_type>(x.at(index)));
  }
  template <class CH, class CX>
  struct Row {
    CH h;
    CX x;
    Channel k;
    value_type operator()(index_t j) const {
      return k(static_cast<value_type>(h(j)), static_cast<value_type>(x(j)));
    }
  };
  auto row(const Shape<rank>& index) const
    requires(rank >= 3)
  {
    using CH = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(h, index));
    using CX = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index));
    return Row<CH, CX>{fusegrad::FG_BACKEND_NS::detail::row_cursor(h, index),
                       fusegrad::FG_BACKEND_NS::detail::row_cursor(x, index), channel(index[1])};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto ph = h.prepare(plan);
    auto px = x.prepare(plan);
    auto ps = stats.prepare(plan);
    auto pq = sums.prepare(plan);
    auto pg = gamma.prepare(plan);
    return BatchNormGrad<decltype(ph), decltype(px), decltype(ps), decltype(pq), decltype(pg)>{
        {}, ph, px, ps, pq, pg, count, batch};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return h.conflicts_with(b, e, false) || x.conflicts_with(b, e, false) || stats.conflicts_with(b, e, false) ||
           sums.conflicts_with(b, e, false) || gamma.conflicts_with(b, e, false);
  }
};

namespace detail {

/// Checks batch_norm's operands: x (N, C, ...), the others (C); returns C.
template <class X, class... P>
index_t check_batch_norm(const X& x, double eps, const P&... per_channel) {
  static_assert(X::rank >= 2, "batch_norm: needs an operand of rank 2 or more (N, C, ...): channels on axis 1");
  static_assert(std::is_floating_point_v<typename X::value_type>, "batch_norm: needs a floating-point operand");
  static_assert(((P::rank == 1) && ...),
                "batch_norm: gamma, beta and the running moments have rank 1 (one value per channel)");
  if (!(eps >= 0)) {
    throw error("batch_norm: eps must be >= 0, got " + std::to_string(eps));
  }
  const index_t c = x.shape()[1];
  std::string shapes;
  bool fits = true;
  ((shapes += (shapes.empty() ? "" : ", ") + to_string(per_channel.shape()), fits = fits && per_channel.shape()[0] == c),
   ...);
  if (!fits) {
    throw shape_error("batch_norm: gamma, beta (and the running moments) must have shape [" + std::to_string(c) +
                      "], the channels (axis 1) of x " + to_string(x.shape()) + "; got " + shapes);
  }
  return c;
}

/// Training needs two values per channel or more (one has no variance), or none at all.
template <int R>
void check_batch_values(const Shape<R>& s) {
  const index_t per_channel = s[1] == 0 ? 0 : s.size() / s[1];
  if (per_channel == 1) {
    throw shape_error("batch_norm: training needs more than one value per channel (input " + to_string(s) +
                      "): a batch of one has no variance");
  }
}

template <class X, class G, class B>
auto make_batch_norm(const X& x, const G& g, const B& b, RunningMoments<typename X::value_type> running,
                     bool batch, double eps) {
  using V = typename X::value_type;
  const BatchMoments<X> stats{{}, x, 1, Shape<1>({x.shape()[1]}), running, batch, static_cast<V>(eps)};
  return BatchNormalize<X, BatchMoments<X>, G, B>{{}, x, stats, g, b, batch};
}

}  // namespace detail

/// Batch normalisation with the batch's own moments (training statistics, nothing kept):
/// (x - μ) / √(σ² + ε) · γ + β per channel. x (N, C, ...), gamma and beta (C).
/// Example: `fg::Tensor<float, 4> y = fg::nn::batch_norm(x, gamma, beta);`
template <tensor_expression E, tensor_expression Gm, tensor_expression Bt>
auto batch_norm(const E& input, const Gm& gamma, const Bt& beta, double eps = 1e-5) {
  auto x = as_node(input);
  auto g = as_node(gamma);
  auto b = as_node(beta);
  detail::check_batch_norm(x, eps, g, b);
  detail::check_batch_values(x.shape());
  return detail::make_batch_norm(x, g, b, {}, true, eps);
}

/// Batch normalisation as PyTorch's F.batch_norm: in training the batch's moments, and the
/// running moments updated with `momentum` (running_var with the unbiased variance); in
/// evaluation the running moments. Example:
///   `fg::Tensor<float, 4> y = fg::nn::batch_norm(x, mean, var, gamma, beta, /*training=*/true);`
template <tensor_expression E, class V, tensor_expression Gm, tensor_expression Bt>
auto batch_norm(const E& input, Tensor<V, 1>& running_mean, Tensor<V, 1>& running_var, const Gm& gamma,
                const Bt& beta, bool training, double momentum = 0.1, double eps = 1e-5) {
  auto x = as_node(input);
  auto g = as_node(gamma);
  auto b = as_node(beta);
  static_assert(std::is_same_v<V, typename decltype(x)::value_type>,
                "batch_norm: the running moments have the input's dtype");
  detail::check_batch_norm(x, eps, g, b, running_mean, running_var);
  if (!(momentum >= 0 && momentum <= 1)) {
    throw error("batch_norm: momentum must be in [0, 1], got " + std::to_string(momentum));
  }
  if (training) {
    detail::check_batch_values(x.shape());
  }
  const RunningMoments<V> running{running_mean.data(), running_var.data(), static_cast<V>(momentum)};
  return detail::make_batch_norm(x, g, b, running, training, eps);
}

/// A batch-norm layer over C channels (axis 1 of (N, C, ...)): γ (ones) and β (zeros) named
/// "weight" and "bias", the buffers "running_mean" (zeros) and "running_var" (ones), as PyTorch's
/// nn.BatchNorm1d / 2d. Starts in training mode. Example:
///   `fg::nn::BatchNorm2d<float> bn(16); auto y = fg::relu(bn(conv(x))); ... bn.eval();`
template <class T = float>
struct BatchNorm {
  Tensor<T, 1> weight;        // γ (C)
  Tensor<T, 1> bias;          // β (C)
  Tensor<T, 1> running_mean;  // (C)
  Tensor<T, 1> running_var;   // (C)
  double eps = 1e-5;
  double momentum = 0.1;
  bool training = true;

  explicit BatchNorm(index_t channels, double epsilon = 1e-5, double running_momentum = 0.1)
      : weight(Shape<1>({channels})), bias(Shape<1>({channels})), running_mean(Shape<1>({channels})),
        running_var(Shape<1>({channels})), eps(epsilon), momentum(running_momentum) {
    reset(0);
  }

  /// γ = 1, β = 0, running moments 0 and 1 (the seed is not used: nothing is random).
  void reset(std::uint64_t) {
    weight.fill(T(1));
    bias.fill(T(0));
    running_mean.fill(T(0));
    running_var.fill(T(1));
  }
  void fields(auto& f) {
    f("weight", weight);
    f("bias", bias);
    f.buffer("running_mean", running_mean);
    f.buffer("running_var", running_var);
  }
  /// Training mode (batch moments, running moments updated) or, with false, evaluation mode.
  void train(bool on = true) { training = on; }
  void eval() { training = false; }

  /// The normalised x, lazy; in training, evaluating it updates the running moments.
  template <tensor_expression X>
  auto operator()(const X& x) {
    return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps);
  }
};
template <class T = float>
using BatchNorm2d = BatchNorm<T>;
template <class T = float>
using BatchNorm1d = BatchNorm<T>;

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, class Tp>
bool depends(const BatchMoments<X>&, const Tp&) {
  return false;  // batch_norm's own rule differentiates through the moments
}
template <class X>
bool same(const BatchMoments<X>& a, const BatchMoments<X>& b) {
  return a.batch == b.batch && a.eps == b.eps && a.running == b.running && a.extents == b.extents &&
         same(a.input, b.input);
}

template <class X, class S, class G, class B, class Tp>
auto record(const BatchNormalize<X, S, G, B>& n, Tp& tape) {
  auto x = record(n.x, tape);
  auto g = record(n.gamma, tape);
  auto b = record(n.beta, tape);
  // The moments are values the fused rule reads (no gradient flows into them); saving computes
  // them, and updates the running moments, once: a backward replay reuses them.
  auto stats = tape.template save<false>(n.stats.with_input(x));
  return BatchNormalize<decltype(x), decltype(stats), decltype(g), decltype(b)>{{}, x, stats, g, b, n.batch};
}
template <class X, class S, class G, class B, class Tp>
bool depends(const BatchNormalize<X, S, G, B>& n, const Tp& tape) {
  return depends(n.x, tape) || depends(n.gamma, tape) || depends(n.beta, tape);
}
template <class X, class S, class G, class B>
bool same(const BatchNormalize<X, S, G, B>& a, const BatchNormalize<X, S, G, B>& b) {
  return a.batch == b.batch && same(a.x, b.x) && same(a.stats, b.stats) &&
         same(a.gamma, b.gamma) && same(a.beta, b.beta);
}
/// dβ = Σ g, dγ = Σ g x̂ (one two-valued reduction per channel), dx = γ r (g - (Σg + x̂ Σ g x̂) / M)
/// (one element-wise kernel).
template <class X, class S, class G, class B, class Gr, class Tp>
void backprop(const BatchNormalize<X, S, G, B>& n, const Gr& g, Tp& tape) {
  using V = typename X::value_type;
  const bool to_x = depends(n.x, tape), to_gamma = depends(n.gamma, tape), to_beta = depends(n.beta, tape);
  if (!to_x && !to_gamma && !to_beta) {
    return;
  }
  const auto stats = n.stats.value();  // (C) {μ, r}
  // g is read twice (the sums, dx): a lazy upstream gradient (a pooling's gather, an activation's
  // derivative) is evaluated once, in one kernel, rather than recomputed in both.
  const auto h = [&] {
    if constexpr (is_leaf<decltype(as_node(g))>::value) {
      return as_node(g);
    } else {
      return tape.keep(evaluate(g));
    }
  }();
  const index_t channels = n.x.shape()[1];
  Leaf<ops::Two<V>, 1> sums;  // (C) {Σ g, Σ g x̂}
  if (n.batch || to_gamma || to_beta) {
    const BatchNormalize<X, decltype(stats), Scalar<V>, Scalar<V>> xhat{
        {}, n.x, stats, Scalar<V>(V(1)), Scalar<V>(V(0)), n.batch};
    auto hx = h * xhat;
    sums = tape.keep(evaluate(ReduceKept<ops::sum_two, Zip<decltype(h), decltype(hx)>>{
        {}, Zip<decltype(h), decltype(hx)>{{}, h, hx}, 1, Shape<1>({channels})}));
  }
  // Σ g and Σ g x̂ as two views of the pairs (C, 2): no copy.
  const V* pairs = reinterpret_cast<const V*>(sums.data);
  if (to_beta) {
    backprop(n.beta, Leaf<V, 1>(pairs, Shape<1>({channels}), Shape<1>({2})), tape);
  }
  if (to_gamma) {
    backprop(n.gamma, Leaf<V, 1>(pairs + 1, Shape<1>({channels}), Shape<1>({2})), tape);
  }
  if (to_x) {
    const index_t count = channels == 0 ? 0 : n.x.shape().size() / channels;
    backprop(n.x,
             BatchNormGrad<decltype(h), X, decltype(stats), decltype(sums), G>{
                 {}, h, n.x, stats, sums, n.gamma, static_cast<V>(count), n.batch},
             tape);
  }
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
