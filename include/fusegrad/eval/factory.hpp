// fusegrad/eval/factory.hpp — tensors made from nothing: zeros, ones, full, arange, and
// counter-based random tensors. Each is one kernel.
#pragma once

#include <cstdint>
#include <string>

#include "fusegrad/eval/assign.hpp"
#include "fusegrad/expr/generator.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {
template <class T, int R, class F>
Tensor<T, R> generate(const Shape<R>& shape, const F& f) {
  Tensor<T, R> t(shape);
  const Generator<compute_t<T>, F> g{{}, f, t.size()};
  backend::for_each_linear(t.size(), WriteLinear<T, Generator<compute_t<T>, F>>{t.data(), g});
  return t;
}
}  // namespace detail

/// A tensor of `shape` with every element `value`. `fg::full<float>({3, 4}, 0.5f)`.
template <dtype T, int R>
Tensor<T, R> full(const Shape<R>& shape, compute_t<T> value) {
  return detail::generate<T>(shape, IotaFn<compute_t<T>>{value, compute_t<T>(0)});
}
template <dtype T, std::size_t N>
Tensor<T, static_cast<int>(N)> full(const index_t (&shape)[N], compute_t<T> value) {
  return full<T>(Shape<static_cast<int>(N)>(shape), value);
}

/// A tensor of zeros. `fg::zeros<float>({3, 4})`.
template <dtype T, int R>
Tensor<T, R> zeros(const Shape<R>& shape) {
  return full<T>(shape, compute_t<T>(0));
}
template <dtype T, std::size_t N>
Tensor<T, static_cast<int>(N)> zeros(const index_t (&shape)[N]) {
  return zeros<T>(Shape<static_cast<int>(N)>(shape));
}

/// A tensor of ones. `fg::ones<float>({3, 4})`.
template <dtype T, int R>
Tensor<T, R> ones(const Shape<R>& shape) {
  return full<T>(shape, compute_t<T>(1));
}
template <dtype T, std::size_t N>
Tensor<T, static_cast<int>(N)> ones(const index_t (&shape)[N]) {
  return ones<T>(Shape<static_cast<int>(N)>(shape));
}

/// start, start + step, ... (< stop), as NumPy's arange. `fg::arange<float>(0, 1, 0.25)`.
template <dtype T>
Tensor<T, 1> arange(compute_t<T> start, compute_t<T> stop, compute_t<T> step = 1) {
  if (step == 0) {
    throw shape_error("arange: step must not be zero");
  }
  const double count = (static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step);
  const auto n = count > 0 ? static_cast<index_t>(std::ceil(count)) : index_t(0);
  return detail::generate<T>(Shape<1>({n}), IotaFn<compute_t<T>>{start, step});
}
/// 0, 1, ..., n - 1.
template <dtype T>
Tensor<T, 1> arange(index_t n) {
  return arange<T>(compute_t<T>(0), static_cast<compute_t<T>>(n), compute_t<T>(1));
}

namespace random {

/// Uniform in [lo, hi). Element i depends only on (seed, i): the same seed and shape give the same
/// tensor on every backend and thread count.
template <class T, int R>
  requires std::is_floating_point_v<compute_t<T>>
Tensor<T, R> uniform(const Shape<R>& shape, compute_t<T> lo, compute_t<T> hi, std::uint64_t seed) {
  return detail::generate<T>(shape, UniformFn<compute_t<T>>{lo, hi, seed});
}
template <class T, std::size_t N>
  requires std::is_floating_point_v<compute_t<T>>
Tensor<T, static_cast<int>(N)> uniform(const index_t (&shape)[N], compute_t<T> lo, compute_t<T> hi,
                                       std::uint64_t seed) {
  return uniform<T>(Shape<static_cast<int>(N)>(shape), lo, hi, seed);
}

/// Normal with the given mean and standard deviation (Box-Muller over Philox; reproducible as
/// uniform is).
template <class T, int R>
  requires std::is_floating_point_v<compute_t<T>>
Tensor<T, R> normal(const Shape<R>& shape, compute_t<T> mean, compute_t<T> stddev, std::uint64_t seed) {
  return detail::generate<T>(shape, NormalFn<compute_t<T>>{mean, stddev, seed});
}
template <class T, std::size_t N>
  requires std::is_floating_point_v<compute_t<T>>
Tensor<T, static_cast<int>(N)> normal(const index_t (&shape)[N], compute_t<T> mean, compute_t<T> stddev,
                                      std::uint64_t seed) {
  return normal<T>(Shape<static_cast<int>(N)>(shape), mean, stddev, seed);
}

}  // namespace random

}  // namespace fusegrad::inline FG_BACKEND_NS
