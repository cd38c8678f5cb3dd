// fusegrad/expr/generator.hpp — nodes that compute elements from their index alone: Iota (arange),
// Fill, and counter-based random numbers (Philox4x32-10), so factories are one kernel each and
// random streams are reproducible from a seed, identical on CPU and GPU.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "fusegrad/expr/node.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
/// @post the same (counter, key) gives the same four words on every backend.
struct Philox {
  std::uint32_t c[4];
  FG_HOST_DEVICE static void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                     std::uint32_t& lo) {
    const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
    hi = static_cast<std::uint32_t>(p >> 32);
    lo = static_cast<std::uint32_t>(p);
  }
  FG_HOST_DEVICE static Philox generate(std::uint64_t counter, std::uint64_t seed) {
    Philox x{{static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32), 0u,
              0x66726164u}};  // the last word separates fusegrad's stream from other Philox users
    std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    FG_UNROLL for (int round = 0; round < 10; ++round) {
      std::uint32_t hi0, lo0, hi1, lo1;
      mulhilo(0xD2511F53u, x.c[0], hi0, lo0);
      mulhilo(0xCD9E8D57u, x.c[2], hi1, lo1);
      x = Philox{{hi1 ^ x.c[1] ^ k0, lo1, hi0 ^ x.c[3] ^ k1, lo0}};
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    return x;
  }
};

/// A uniform number in [0, 1) from random words: 24 bits for float, 53 for double.
template <class T>
FG_HOST_DEVICE T unit_uniform(std::uint32_t w0, std::uint32_t w1) {
  if constexpr (std::is_same_v<T, float>) {
    return static_cast<float>(w0 >> 8) * (1.0f / 16777216.0f);
  } else {
    const std::uint64_t bits = (static_cast<std::uint64_t>(w0) << 21) ^ (w1 >> 11);
    return static_cast<double>(bits & ((std::uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
}

FG_HOST_DEVICE double log_(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return std::log(x);
#endif
}
FG_HOST_DEVICE double cospi_(double x) {
#if defined(__CUDA_ARCH__)
  return ::cospi(x);
#else
  return std::cos(3.14159265358979323846 * x);
#endif
}
FG_HOST_DEVICE double sqrt_(double x) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}

/// The representable number next to `x` in the direction of `toward`.
template <class T>
FG_HOST_DEVICE T below(T x, T toward) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) {
    return ::nextafterf(x, toward);
  } else {
    return ::nextafter(x, toward);
  }
#else
  return std::nextafter(x, toward);
#endif
}

}  // namespace detail

/// Element i of a flat index space, as a function of i alone.
template <class T, class F>
struct Generator : ExprBase<Generator<T, F>> {
  using value_type = T;
  static constexpr int rank = 1;
  F f;
  index_t n = 0;

  Shape<1> shape() const { return Shape<1>({n}); }
  FG_HOST_DEVICE T at(const Shape<1>& index) const { return f(index[0]); }
  FG_HOST_DEVICE T at_linear(index_t i) const { return f(i); }
  bool linear() const { return true; }
  bool lanes_aligned(int) const { return true; }  // reads no memory: lanes_of calls f V times
  template <class Plan>
  Generator prepare(Plan&) const {
    return *this;
  }
  bool conflicts_with(const void*, const void*, bool) const { return false; }
};

/// start + i * step.
template <class T>
struct IotaFn {
  T start, step;
  FG_HOST_DEVICE T operator()(index_t i) const { return static_cast<T>(start + static_cast<T>(i) * step); }
};

/// lo + (hi - lo) * u, u uniform in [0, 1) from Philox(counter = i, key = seed).
template <class T>
struct UniformFn {
  T lo, hi;
  std::uint64_t seed;
  FG_HOST_DEVICE T operator()(index_t i) const {
    const auto w = detail::Philox::generate(static_cast<std::uint64_t>(i), seed);
    const T r = lo + (hi - lo) * detail::unit_uniform<T>(w.c[0], w.c[1]);
    return r < hi ? r : detail::below(hi, lo);  // rounding may reach hi; the range is [lo, hi)
  }
};

/// mean + stddev * z, z standard normal by Box-Muller from Philox(counter = i, key = seed),
/// computed in double (so float results agree bit for bit across backends in practice).
template <class T>
struct NormalFn {
  T mean, stddev;
  std::uint64_t seed;
  FG_HOST_DEVICE T operator()(index_t i) const {
    const auto w = detail::Philox::generate(static_cast<std::uint64_t>(i), seed);
    const double u1 = 1.0 - detail::unit_uniform<double>(w.c[0], w.c[1]);  // (0, 1]
    const double u2 = detail::unit_uniform<double>(w.c[2], w.c[3]);
    const double z = detail::sqrt_(-2.0 * detail::log_(u1)) * detail::cospi_(2.0 * u2);
    return static_cast<T>(static_cast<double>(mean) + static_cast<double>(stddev) * z);
  }
};

}  // namespace fusegrad::inline FG_BACKEND_NS
