// fusegrad/nn/init.hpp — seeded initialisers for weights laid out (in, out), as `x @ W` reads them:
// fan_in = rows, fan_out = columns. Each is one kernel (Philox: the same seed gives the same
// tensor on every backend).
//
//   kaiming_uniform   U(-b, b), b = gain · √(3 / fan_in), gain = √2 (ReLU)   He et al. 2015
//   xavier_uniform    U(-b, b), b = gain · √(6 / (fan_in + fan_out)), gain = 1   Glorot & Bengio 2010
//   normal            N(mean, std²)
//   bias_uniform      U(-1/√fan_in, 1/√fan_in): PyTorch's nn.Linear bias
#pragma once

#include <cmath>
#include <cstdint>

#include "fusegrad/eval/factory.hpp"

namespace fusegrad::inline FG_BACKEND_NS::nn {

/// He (Kaiming) uniform initialisation of an (in, out) weight for a ReLU network.
/// Example: `auto W1 = fg::nn::kaiming_uniform<float>({784, 128}, /*seed*/ 1);`
template <class T = float>
Tensor<T, 2> kaiming_uniform(const Shape<2>& shape, std::uint64_t seed, double gain = std::sqrt(2.0)) {
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(shape[0] > 0 ? shape[0] : 1));
  return random::uniform<T>(shape, static_cast<T>(-bound), static_cast<T>(bound), seed);
}

/// Glorot (Xavier) uniform initialisation of an (in, out) weight.
/// Example: `auto W2 = fg::nn::xavier_uniform<float>({128, 10}, /*seed*/ 2);`
template <class T = float>
Tensor<T, 2> xavier_uniform(const Shape<2>& shape, std::uint64_t seed, double gain = 1.0) {
  const double fans = static_cast<double>(shape[0] + shape[1]);
  const double bound = gain * std::sqrt(6.0 / (fans > 0 ? fans : 1));
  return random::uniform<T>(shape, static_cast<T>(-bound), static_cast<T>(bound), seed);
}

/// Normal initialisation, any shape. Example: `fg::nn::normal<float>({128}, 0.f, 0.01f, 3)`.
template <class T = float, int R>
Tensor<T, R> normal(const Shape<R>& shape, T mean, T stddev, std::uint64_t seed) {
  return random::normal<T>(shape, mean, stddev, seed);
}
template <class T = float, std::size_t N>
Tensor<T, static_cast<int>(N)> normal(const index_t (&shape)[N], T mean, T stddev, std::uint64_t seed) {
  return random::normal<T>(Shape<static_cast<int>(N)>(shape), mean, stddev, seed);
}

/// A bias for a layer with `fan_in` inputs, as PyTorch's nn.Linear draws it.
template <class T = float>
Tensor<T, 1> bias_uniform(index_t size, index_t fan_in, std::uint64_t seed) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in > 0 ? fan_in : 1));
  return random::uniform<T>(Shape<1>({size}), static_cast<T>(-bound), static_cast<T>(bound), seed);
}

}  // namespace fusegrad::inline FG_BACKEND_NS::nn
