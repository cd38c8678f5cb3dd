// fusegrad/ops/math.hpp — unary math op functors: exp log log1p sqrt rsqrt sin cos tanh sigmoid
// relu abs square pow(x, p), and the activations of transformers: gelu (erf), gelu_tanh, silu.
//
// Device code calls CUDA's math functions, host code <cmath>; both in the argument's own precision.
// On a host built for AVX2 + FMA (FG_VECTOR_MATH, core/config.hpp), float exp and erfc use the
// branch-free forms of ops/vector_math.hpp instead, so that the loops calling them vectorise.
// They live in `ops::scalar`, a namespace that holds no types: argument-dependent lookup from an
// expression type (whose op functors live in ops and ops::detail) never finds them, so user code
// `exp(maximum(a, b))` under `using namespace fusegrad` is not ambiguous.
// Each op's derivative `partial<I>(x)` sits beside its value (see ops/arith.hpp); an op whose
// derivative selects rather than scales also gives `vjp<I>(g, x)` = g · partial, as a select.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/ops/vector_math.hpp"

namespace fusegrad::ops {

namespace scalar {
#if defined(__CUDA_ARCH__)
#define FG_MATH_DISPATCH(fn, x) \
  if constexpr (std::is_same_v<decltype(x), float>) { return ::fn##f(x); } else { return ::fn(x); }
#else
#define FG_MATH_DISPATCH(fn, x) return std::fn(x)
#endif
// exp and erfc in element-wise code: on a host compiled for AVX2 and FMA or better, float goes
// through the vectorisable forms (ops/vector_math.hpp); elsewhere the library's.
#if FG_VECTOR_MATH
#define FG_VECTOR_DISPATCH(fn, x) \
  if constexpr (std::is_same_v<decltype(x), float>) { return vector_math::fn(x); } else { FG_MATH_DISPATCH(fn, x); }
#else
#define FG_VECTOR_DISPATCH(fn, x) FG_MATH_DISPATCH(fn, x)
#endif
template <class T> FG_HOST_DEVICE T exp(T x) { FG_VECTOR_DISPATCH(exp, x); }
template <class T> FG_HOST_DEVICE T erfc(T x) { FG_VECTOR_DISPATCH(erfc, x); }
/// The platform's exp (libm, CUDA): for scalar code such as a reduction's combine step.
template <class T> FG_HOST_DEVICE T exp_library(T x) { FG_MATH_DISPATCH(exp, x); }
template <class T> FG_HOST_DEVICE T log(T x) { FG_MATH_DISPATCH(log, x); }
template <class T> FG_HOST_DEVICE T log1p(T x) { FG_MATH_DISPATCH(log1p, x); }
template <class T> FG_HOST_DEVICE T sqrt(T x) { FG_MATH_DISPATCH(sqrt, x); }
template <class T> FG_HOST_DEVICE T sin(T x) { FG_MATH_DISPATCH(sin, x); }
template <class T> FG_HOST_DEVICE T cos(T x) { FG_MATH_DISPATCH(cos, x); }
template <class T> FG_HOST_DEVICE T tanh(T x) { FG_MATH_DISPATCH(tanh, x); }
template <class T> FG_HOST_DEVICE T fabs(T x) { FG_MATH_DISPATCH(fabs, x); }
template <class T> FG_HOST_DEVICE T pow(T x, T p) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) { return ::powf(x, p); } else { return ::pow(x, p); }
#else
  return std::pow(x, p);
#endif
}
#undef FG_VECTOR_DISPATCH
#undef FG_MATH_DISPATCH
}  // namespace scalar

/// A unary op that only makes sense on floating-point values.
template <class T>
concept float_math = std::is_floating_point_v<T>;

struct exp {
  static constexpr const char* name = "exp";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::exp(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return scalar::exp(x); }
};
struct log {
  static constexpr const char* name = "log";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::log(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(1) / x; }
};
struct log1p {
  static constexpr const char* name = "log1p";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::log1p(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(1) / (T(1) + x); }
};
struct sqrt {
  static constexpr const char* name = "sqrt";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::sqrt(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(0.5) / scalar::sqrt(x); }
};
struct rsqrt {
  static constexpr const char* name = "rsqrt";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return T(1) / scalar::sqrt(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    return T(-0.5) / (x * scalar::sqrt(x));
  }
};
struct sin {
  static constexpr const char* name = "sin";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::sin(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return scalar::cos(x); }
};
struct cos {
  static constexpr const char* name = "cos";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::cos(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return -scalar::sin(x); }
};
struct tanh {
  static constexpr const char* name = "tanh";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return scalar::tanh(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    const T t = scalar::tanh(x);
    return T(1) - t * t;
  }
};
/// 1 / (1 + e^-x), evaluated so that no exponential overflows.
struct sigmoid {
  static constexpr const char* name = "sigmoid";
  template <class T> FG_HOST_DEVICE T operator()(T x) const {
    const T e = scalar::exp(x < T(0) ? x : -x);  // e in (0, 1]
    return x < T(0) ? e / (T(1) + e) : T(1) / (T(1) + e);
  }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    const T s = (*this)(x);
    return s * (T(1) - s);
  }
};
/// max(x, 0); NaN stays NaN. Derivative: 1 where x > 0, else 0 (relu'(0) = 0).
struct relu {
  static constexpr const char* name = "relu";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return x < T(0) ? T(0) : x; }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(x > T(0)); }
  /// g · relu'(x) as a select: compilers branch on a multiply by a 0/1 mask (25x slower on random
  /// signs, measured), and vectorise the select.
  template <std::size_t I, class T> FG_HOST_DEVICE T vjp(T g, T x) const { return x > T(0) ? g : T(0); }
};
struct abs {
  static constexpr const char* name = "abs";
  template <class T> FG_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      return scalar::fabs(x);
    } else {
      return x < T(0) ? T(-x) : x;
    }
  }
  /// sign(x), with abs'(0) = 0.
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    return T(x > T(0)) - T(x < T(0));
  }
  template <std::size_t I, class T> FG_HOST_DEVICE T vjp(T g, T x) const {
    return x > T(0) ? g : (x < T(0) ? -g : T(0));
  }
};
struct square {
  static constexpr const char* name = "square";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return x * x; }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(2) * x; }
};
/// x^p for a scalar exponent p.
template <class P>
struct pow {
  static constexpr const char* name = "pow";
  P p;
  template <class T> FG_HOST_DEVICE T operator()(T x) const {
    if (p == P(2)) {
      return x * x;
    }
    return scalar::pow(x, static_cast<T>(p));
  }
  /// p x^(p-1); 0 for p = 0 (x^0 is constant, also at x = 0).
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    if (p == P(0)) {
      return T(0);
    }
    if (p == P(2)) {
      return T(2) * x;
    }
    return static_cast<T>(p) * scalar::pow(x, static_cast<T>(p) - T(1));
  }
};

/// The Gaussian error linear unit x Φ(x) (PyTorch's default gelu), with Φ(x) = ½ erfc(-x / √2):
/// no cancellation for negative x, where ½ (1 + erf(x / √2)) loses its digits.
/// Derivative: Φ(x) + x φ(x), φ the standard normal density.
struct gelu {
  static constexpr const char* name = "gelu";
  template <class T> FG_HOST_DEVICE T operator()(T x) const {
    return T(0.5) * x * scalar::erfc(x * T(-0.70710678118654752440));
  }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    const T cdf = T(0.5) * scalar::erfc(x * T(-0.70710678118654752440));
    return cdf + x * T(0.39894228040143267794) * scalar::exp(T(-0.5) * x * x);
  }
};
/// GELU's tanh approximation (GPT-2's): ½ x (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³), computed
/// as x σ(2u) (the same function; no cancellation for negative x).
/// Derivative: σ(2u) + 2 x σ(2u) (1 - σ(2u)) √(2/π) (1 + 3 · 0.044715 x²).
struct gelu_tanh {
  static constexpr const char* name = "gelu_tanh";
  template <class T> FG_HOST_DEVICE static T two_u(T x) {
    return T(1.59576912160573071176) * (x + T(0.044715) * x * x * x);
  }
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return x * sigmoid{}(two_u(x)); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    const T s = sigmoid{}(two_u(x));
    return s + x * s * (T(1) - s) * T(1.59576912160573071176) * (T(1) + T(0.134145) * x * x);
  }
};
/// The sigmoid linear unit (swish) x σ(x). Derivative: σ(x) (1 + x (1 - σ(x))).
struct silu {
  static constexpr const char* name = "silu";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return x * sigmoid{}(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    const T s = sigmoid{}(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

}  // namespace fusegrad::ops
