// fusegrad/optim/clip.hpp — gradient clipping by the global norm: one reduction over every
// gradient and one scaling launch, no host synchronisation.
//
//   n = √(Σ_i ‖g_i‖²) over all gradients;   every g_i ← g_i · min(1, max_norm / (n + 1e-6))
//
// as torch.nn.utils.clip_grad_norm_ computes it: the factor is applied even when it is 1; an
// infinite norm scales by 0 (an infinite element becomes NaN), a NaN norm makes every gradient NaN,
// as PyTorch's default (error_if_nonfinite = False) does. The squares are summed in
// double by one reduction over the concatenated gradients (up to 64 tensors per launch, as the
// optimizers' multi-tensor table; more tensors add one reduction per 64 and one to combine them);
// the scaling launch reads the sum from device memory, so a step with clipping can still be
// captured as a CUDA graph.
#pragma once

#include <algorithm>
#include <string>

#include "fusegrad/autodiff/grad.hpp"
#include "fusegrad/eval/assign.hpp"
#include "fusegrad/optim/multi_tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS::optim {

namespace detail {

/// g² (in double) of element i of the concatenated gradients of one table.
template <class T>
struct SquareOfTable {
  TensorTable<T, 0> table;
  FG_HOST_DEVICE double operator()(index_t i) const {
    const int k = table.find(i);
    const double g = static_cast<double>(table.grad[k][i - (k > 0 ? table.end[k - 1] : 0)]);
    return g * g;
  }
};

/// A sum in double whose result is its square root: the L2 norm from the squares.
struct NormFromSquares : ops::sum::reducer<double> {
  FG_HOST_DEVICE static double finish(double a, index_t) { return sqrt_of(a); }
};

/// Element i of a device array of doubles.
struct LoadDoubles {
  const double* p;
  FG_HOST_DEVICE double operator()(index_t i) const { return p[i]; }
};

/// p ← g · min(1, max_norm / (n + 1e-6)), the norm n read where the rule's "lr" is.
template <class T>
struct ClipRule {
  double max_norm;
  using coefficients_type = T;
  FG_HOST_DEVICE T coefficients(double norm, std::int64_t) const {
    const double factor = max_norm / (norm + 1e-6);
    return static_cast<T>(factor > 1 ? 1.0 : factor);  // NaN stays NaN, as torch.clamp(max=1)
  }
  FG_HOST_DEVICE void operator()(const T& factor, T& p, T g, T* const (&)[1]) const { p = g * factor; }
};

}  // namespace detail

/// Clips `grads` in place to a global L2 norm of at most max_norm and returns the norm they had
/// (a device scalar: `.item()` reads it and waits). One reduction + one scaling launch (for up to
/// 64 gradients). Example:
/// `auto [loss, grads] = fg::value_and_grad(l, opt.parameters()); fg::optim::clip_grad_norm(grads, 1.0); opt.step(grads);`
template <class T>
Tensor<double, 0> clip_grad_norm(Gradients<T>& grads, double max_norm) {
  if (!(max_norm >= 0)) {
    throw error("clip_grad_norm: max_norm must be >= 0, got " + std::to_string(max_norm));
  }
  const std::size_t count = grads.size();
  const std::size_t chunks = std::max<std::size_t>(1, (count + detail::table_capacity - 1) / detail::table_capacity);
  std::vector<detail::TensorTable<T, 0>> tables(chunks);
  for (std::size_t i = 0; i < count; ++i) {
    auto& t = tables[i / detail::table_capacity];
    const int k = t.count++;
    t.end[k] = (k > 0 ? t.end[k - 1] : 0) + grads.numel(i);
    t.param[k] = grads.data(i);
    t.grad[k] = grads.data(i);
  }
  auto total_of = [&](std::size_t c) { return tables[c].count > 0 ? tables[c].end[tables[c].count - 1] : 0; };
  // The norm: one reduction of the squares (more than one table: Σ g² per table, then the norm).
  Tensor<double, 0> norm;
  if (chunks == 1) {
    backend::reduce_all<detail::NormFromSquares>(total_of(0), detail::SquareOfTable<T>{tables[0]}, norm.data());
  } else {
    Tensor<double, 1> partial(Shape<1>({static_cast<index_t>(chunks)}));
    for (std::size_t c = 0; c < chunks; ++c) {
      backend::reduce_all<ops::sum::reducer<double>>(total_of(c), detail::SquareOfTable<T>{tables[c]},
                                                    partial.data() + c);
    }
    backend::reduce_all<detail::NormFromSquares>(static_cast<index_t>(chunks), detail::LoadDoubles{partial.data()},
                                                 norm.data());
  }
  for (std::size_t c = 0; c < chunks && count > 0; ++c) {
    detail::MultiTensorLaunch<T, 0, detail::ClipRule<T>> launch;
    launch.table = tables[c];
    launch.rule = detail::ClipRule<T>{max_norm};
    launch.total = total_of(c);
    launch.lr = norm.data();
    detail::run(launch);
  }
  return norm;
}

}  // namespace fusegrad::inline FG_BACKEND_NS::optim
