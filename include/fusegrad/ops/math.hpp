// fusegrad/ops/math.hpp — unary math op functors: exp log log1p sqrt rsqrt sin cos tanh sigmoid
// relu abs square pow(x, p).
//
// Device code calls CUDA's math functions, host code <cmath>; both in the argument's own precision.
// Each op's derivative `partial<I>(x)` sits beside its value (see ops/arith.hpp); an op whose
// derivative selects rather than scales also gives `vjp<I>(g, x)` = g · partial, as a select.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "fusegrad/core/config.hpp"

namespace fusegrad::ops {

namespace detail {
#if defined(__CUDA_ARCH__)
#define FG_MATH_DISPATCH(fn, x) \
  if constexpr (std::is_same_v<decltype(x), float>) { return ::fn##f(x); } else { return ::fn(x); }
#else
#define FG_MATH_DISPATCH(fn, x) return std::fn(x)
#endif
template <class T> FG_HOST_DEVICE T exp(T x) { FG_MATH_DISPATCH(exp, x); }
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
#undef FG_MATH_DISPATCH
}  // namespace detail

/// A unary op that only makes sense on floating-point values.
template <class T>
concept float_math = std::is_floating_point_v<T>;

struct exp {
  static constexpr const char* name = "exp";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::exp(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return detail::exp(x); }
};
struct log {
  static constexpr const char* name = "log";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::log(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(1) / x; }
};
struct log1p {
  static constexpr const char* name = "log1p";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::log1p(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(1) / (T(1) + x); }
};
struct sqrt {
  static constexpr const char* name = "sqrt";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::sqrt(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return T(0.5) / detail::sqrt(x); }
};
struct rsqrt {
  static constexpr const char* name = "rsqrt";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return T(1) / detail::sqrt(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    return T(-0.5) / (x * detail::sqrt(x));
  }
};
struct sin {
  static constexpr const char* name = "sin";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::sin(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return detail::cos(x); }
};
struct cos {
  static constexpr const char* name = "cos";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::cos(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const { return -detail::sin(x); }
};
struct tanh {
  static constexpr const char* name = "tanh";
  template <class T> FG_HOST_DEVICE T operator()(T x) const { return detail::tanh(x); }
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    const T t = detail::tanh(x);
    return T(1) - t * t;
  }
};
/// 1 / (1 + e^-x), evaluated so that no exponential overflows.
struct sigmoid {
  static constexpr const char* name = "sigmoid";
  template <class T> FG_HOST_DEVICE T operator()(T x) const {
    const T e = detail::exp(x < T(0) ? x : -x);  // e in (0, 1]
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
      return detail::fabs(x);
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
    return detail::pow(x, static_cast<T>(p));
  }
  /// p x^(p-1); 0 for p = 0 (x^0 is constant, also at x = 0).
  template <std::size_t I, class T> FG_HOST_DEVICE T partial(T x) const {
    if (p == P(0)) {
      return T(0);
    }
    if (p == P(2)) {
      return T(2) * x;
    }
    return static_cast<T>(p) * detail::pow(x, static_cast<T>(p) - T(1));
  }
};

}  // namespace fusegrad::ops
