// fusegrad/ops/arith.hpp — arithmetic op functors: + - * / negation, maximum/minimum, where, cast.
//
// Each functor is the single source of truth for its op: its value (device and host), the name
// error messages and printing use, and its derivative: `partial<I>(x...)` is d op / d x_I at the
// same arguments (autodiff multiplies it by the upstream gradient). An op without partial<I> passes
// no gradient to operand I (comparisons; where's condition). Ops whose derivative picks rather than
// scales (relu, abs, maximum, minimum, where) also give `vjp<I>(g, x...)`, g · partial written as a
// select, which compilers keep branch-free. `constant_partials` says the partials
// never read the arguments (+, -, negation, cast): the gradient kernel then reads none of them.
#pragma once

#include <cstddef>
#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"
#include "fusegrad/ops/compare.hpp"

namespace fusegrad::ops {

struct add {
  static constexpr const char* name = "add";
  static constexpr bool constant_partials = true;  // partial<I> does not read the arguments
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    return a + b;
  }
  template <std::size_t I, class A, class B>
  FG_HOST_DEVICE auto partial(A, B) const {
    if constexpr (I == 0) {
      return A(1);
    } else {
      return B(1);
    }
  }
};

struct sub {
  static constexpr const char* name = "sub";
  static constexpr bool constant_partials = true;  // partial<I> does not read the arguments
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    return a - b;
  }
  template <std::size_t I, class A, class B>
  FG_HOST_DEVICE auto partial(A, B) const {
    if constexpr (I == 0) {
      return A(1);
    } else {
      return B(-1);
    }
  }
};

struct mul {
  static constexpr const char* name = "mul";
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    return a * b;
  }
  template <std::size_t I, class A, class B>
  FG_HOST_DEVICE auto partial(A a, B b) const {
    if constexpr (I == 0) {
      return static_cast<A>(b);
    } else {
      return static_cast<B>(a);
    }
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
  /// d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 (floating point only).
  template <std::size_t I, class A, class B>
  FG_HOST_DEVICE auto partial(A a, B b) const {
    if constexpr (I == 0) {
      return A(1) / static_cast<A>(b);
    } else {
      return -static_cast<B>(a) / (b * b);
    }
  }
};

struct neg {
  static constexpr const char* name = "neg";
  static constexpr bool constant_partials = true;  // partial<I> does not read the arguments
  template <class A>
  FG_HOST_DEVICE A operator()(A a) const {
    return -a;
  }
  template <std::size_t I, class A>
  FG_HOST_DEVICE A partial(A) const {
    return A(-1);
  }
};

namespace detail {
/// maximum and minimum: one op that keeps the operand `Wins(a, b)` prefers. NaN propagates: a NaN
/// in `a` is kept, and a NaN in `b` is kept because every comparison with it is false. The gradient
/// goes to the operand the value came from (to `b` on ties).
template <class Wins>
struct pick_one {
  template <class A, class B>
  FG_HOST_DEVICE static bool first(A a, B b) {
    return a != a || Wins{}(a, b);
  }
  template <class A, class B>
  FG_HOST_DEVICE auto operator()(A a, B b) const {
    using R = promote_t<A, B>;
    return first(a, b) ? R(a) : R(b);
  }
  template <std::size_t I, class A, class B>
  FG_HOST_DEVICE auto partial(A a, B b) const {
    if constexpr (I == 0) {
      return A(first(a, b));
    } else {
      return B(!first(a, b));
    }
  }
  template <std::size_t I, class G, class A, class B>
  FG_HOST_DEVICE G vjp(G g, A a, B b) const {
    return (I == 0) == first(a, b) ? g : G(0);
  }
};
}  // namespace detail

/// Element-wise maximum; NaN in either operand propagates; the gradient goes to `a` where a > b
/// (or a is NaN), to `b` otherwise, ties included.
struct maximum : detail::pick_one<greater> {
  static constexpr const char* name = "maximum";
};

/// Element-wise minimum; NaN in either operand propagates; the gradient goes to `a` where a < b
/// (or a is NaN), to `b` otherwise, ties included.
struct minimum : detail::pick_one<less> {
  static constexpr const char* name = "minimum";
};

/// where(c, a, b) = c ? a : b (any nonzero condition is true). The gradient goes to the chosen
/// operand; the condition gets none.
struct where {
  static constexpr const char* name = "where";
  template <class C, class A, class B>
  FG_HOST_DEVICE auto operator()(C c, A a, B b) const {
    using R = promote_t<A, B>;
    return c ? R(a) : R(b);
  }
  template <std::size_t I, class C, class A, class B>
    requires(I != 0)
  FG_HOST_DEVICE auto partial(C c, A, B) const {
    if constexpr (I == 1) {
      return A(static_cast<bool>(c));
    } else {
      return B(!c);
    }
  }
  template <std::size_t I, class G, class C, class A, class B>
    requires(I != 0)
  FG_HOST_DEVICE G vjp(G g, C c, A, B) const {
    return (I == 1) == static_cast<bool>(c) ? g : G(0);
  }
};

/// Converts to U's compute type (float for half/bfloat16 storage).
template <class U>
struct cast {
  static constexpr const char* name = "cast";
  static constexpr bool constant_partials = true;
  template <class A>
  FG_HOST_DEVICE compute_t<U> operator()(A a) const {
    return static_cast<compute_t<U>>(a);
  }
  /// The gradient passes through, converted back to the operand's type.
  template <std::size_t I, class A>
  FG_HOST_DEVICE A partial(A) const {
    return A(1);
  }
};

}  // namespace fusegrad::ops
