// fusegrad/ops/arith.hpp — arithmetic op functors: + - * / negation, maximum/minimum, where, cast.
//
// Each functor is the single source of truth for its op: its value (device and host) and the
// name error messages and printing use.
#pragma once

#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"

namespace fusegrad::ops {

struct add {
  static constexpr const char* name = "add";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    return a + b;
  }
};

struct sub {
  static constexpr const char* name = "sub";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    return a - b;
  }
};

struct mul {
  static constexpr const char* name = "mul";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    return a * b;
  }
};

/// Division. Integer division by zero gives 0 instead of trapping (device code cannot throw).
struct div {
  static constexpr const char* name = "div";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    using R = decltype(a / b);
    if constexpr (std::is_integral_v<R>) {
      return b == B(0) ? R(0) : R(a / b);
    } else {
      return a / b;
    }
  }
};

struct neg {
  static constexpr const char* name = "neg";
  template <class A>
  FG_HOST_DEVICE A operator()(A a) const {
    return -a;
  }
};

/// Element-wise maximum; NaN in either operand propagates.
struct maximum {
  static constexpr const char* name = "maximum";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    using R = promote_t<A, B>;
    return (a != a || a > b) ? R(a) : R(b);
  }
};

/// Element-wise minimum; NaN in either operand propagates.
struct minimum {
  static constexpr const char* name = "minimum";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    using R = promote_t<A, B>;
    return (a != a || a < b) ? R(a) : R(b);
  }
};

/// where(c, a, b) = c ? a : b (any nonzero condition is true).
struct where {
  static constexpr const char* name = "where";
  template <class C, class A, class B>
  FG_HOST_DEVICE auto operator()(C c, A a, B b) const {
    using R = promote_t<A, B>;
    return c ? R(a) : R(b);
  }
};

/// Converts to U's compute type (float for half/bfloat16 storage).
template <class U>
struct cast {
  static constexpr const char* name = "cast";
  template <class A>
  FG_HOST_DEVICE compute_t<U> operator()(A a) const {
    return static_cast<compute_t<U>>(a);
  }
};

}  // namespace fusegrad::ops
