// fusegrad/ops/reduce.hpp — reduction op functors: sum mean prod max min argmax argmin.
//
// Each op gives, for an input value type V, a `reducer<V>` with
//   acc_type, result_type;
//   identity()                 the value of an empty reduction's accumulator
//   lift(v, i)                 the accumulator of one element v at position i along the reduction
//   combine(a, b)              associative; a holds positions before b's
//   finish(acc, n)             the result of reducing n elements
// `needs_elements` says whether an empty reduction is an error (max of nothing has no value).
//
// Derivatives (autodiff): an op with `partial(x, y, n)` gives d y / d x for an element x of the
// reduced lane whose result is y (n elements); `partial_reads_input` says whether it looks at x.
// An op with an `aux_op` (prod) has `partial(x, y, aux, n)` instead: aux is the lane's result of
// that second reduction of the same input. max and min instead route the whole gradient to the
// first arg-extremum (`to_extremum`, with the arg-op that finds it), the element argmax/argmin
// picks: ties go to the first position. argmax and argmin (int64 positions) have no derivative:
// like every integer-valued reduction they pass no gradient (autodiff/record.hpp).
#pragma once

#include <limits>
#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"
#include "fusegrad/ops/math.hpp"

namespace fusegrad::ops {

namespace detail {
/// Integers and bools accumulate in int64, floating point in its own type.
template <class V>
using sum_acc_t = std::conditional_t<std::is_floating_point_v<V>, V, std::int64_t>;

template <class V>
FG_HOST_DEVICE constexpr V lowest() {
  if constexpr (std::is_floating_point_v<V>) {
    return -std::numeric_limits<V>::infinity();
  } else {
    return std::numeric_limits<V>::lowest();
  }
}
template <class V>
FG_HOST_DEVICE constexpr V highest() {
  if constexpr (std::is_floating_point_v<V>) {
    return std::numeric_limits<V>::infinity();
  } else {
    return std::numeric_limits<V>::max();
  }
}
}  // namespace detail

namespace detail {
/// A reduction whose accumulator is a plain value: Derived supplies identity() and combine().
template <class V, class Acc>
struct value_reducer {
  using acc_type = Acc;
  using result_type = Acc;
  FG_HOST_DEVICE static acc_type lift(V v, index_t) { return acc_type(v); }
  FG_HOST_DEVICE static result_type finish(acc_type a, index_t) { return a; }
};
}  // namespace detail

struct sum {
  static constexpr const char* name = "sum";
  static constexpr bool needs_elements = false;
  static constexpr bool partial_reads_input = false;
  template <class V>
  FG_HOST_DEVICE static V partial(V, V, index_t) {
    return V(1);
  }
  template <class V>
  struct reducer : detail::value_reducer<V, detail::sum_acc_t<V>> {
    using acc_type = detail::sum_acc_t<V>;
    FG_HOST_DEVICE static acc_type identity() { return acc_type(0); }
    FG_HOST_DEVICE static acc_type combine(acc_type a, acc_type b) { return a + b; }
  };
};

/// The arithmetic mean; integer inputs give a double (as NumPy does). Empty: NaN.
struct mean {
  static constexpr const char* name = "mean";
  static constexpr bool needs_elements = false;
  static constexpr bool partial_reads_input = false;
  template <class V>
  FG_HOST_DEVICE static V partial(V, V, index_t n) {
    return V(1) / V(n);
  }
  template <class V>
  struct reducer : sum::reducer<std::conditional_t<std::is_floating_point_v<V>, V, double>> {
    using acc_type = std::conditional_t<std::is_floating_point_v<V>, V, double>;
    using result_type = acc_type;
    FG_HOST_DEVICE static acc_type lift(V v, index_t) { return acc_type(v); }
    FG_HOST_DEVICE static result_type finish(acc_type a, index_t n) {
      return n == 0 ? std::numeric_limits<acc_type>::quiet_NaN() : a / acc_type(n);
    }
  };
};

namespace detail {
/// The product of the non-zero elements seen, and how many zeros were seen.
template <class V>
struct ProdZerosAcc {
  V nonzero;
  index_t zeros;
};
}  // namespace detail

/// The product of a lane with one of its zeros left out (the whole product when it has none):
/// for the zero x_i of a lane with exactly one zero, prod_{j≠i} x_j exactly (no division); 0 when
/// the lane has two zeros or more (NaN when it also holds an infinity or NaN, as 0 · inf is).
/// Not exposed as a function: prod's derivative reads it.
struct prod_skip_zero {
  static constexpr const char* name = "prod_skip_zero";
  static constexpr bool needs_elements = false;
  template <class V>
  struct reducer {
    static_assert(std::is_floating_point_v<V>, "prod_skip_zero: needs a floating-point operand");
    using acc_type = detail::ProdZerosAcc<V>;
    using result_type = V;
    FG_HOST_DEVICE static acc_type identity() { return {V(1), 0}; }
    FG_HOST_DEVICE static acc_type lift(V v, index_t) {
      return v == V(0) ? acc_type{V(1), 1} : acc_type{v, 0};
    }
    FG_HOST_DEVICE static acc_type combine(acc_type a, acc_type b) {
      return {a.nonzero * b.nonzero, a.zeros + b.zeros};
    }
    FG_HOST_DEVICE static result_type finish(acc_type a, index_t) {
      return a.zeros > 1 ? a.nonzero * V(0) : a.nonzero;
    }
  };
};

/// The product of the elements. Empty: 1. Derivative: d y / d x_i = prod_{j≠i} x_j, exact at zeros.
struct prod {
  static constexpr const char* name = "prod";
  static constexpr bool needs_elements = false;
  static constexpr bool partial_reads_input = true;
  using aux_op = prod_skip_zero;
  /// prod_{j≠i} x_j for the element x = x_i of a lane whose product is y and whose prod_skip_zero
  /// is aux. For x ≠ 0 it is y / x: one more rounding than the product itself, and 0 where y
  /// underflowed or inf where it overflowed (PyTorch does the same); it is exactly 0 when another
  /// element of the lane is 0 (y = 0 then). For x = 0 it is aux, exact: the product of the others
  /// when x is the lane's only zero, 0 when there is another.
  template <class V>
  FG_HOST_DEVICE static V partial(V x, V y, V aux, index_t) {
    return x == V(0) ? aux : y / x;
  }
  template <class V>
  struct reducer : detail::value_reducer<V, detail::sum_acc_t<V>> {
    using acc_type = detail::sum_acc_t<V>;
    FG_HOST_DEVICE static acc_type identity() { return acc_type(1); }
    FG_HOST_DEVICE static acc_type combine(acc_type a, acc_type b) { return a * b; }
  };
};

struct argmax;
struct argmin;

/// The largest element; NaN propagates.
struct max {
  static constexpr const char* name = "max";
  static constexpr bool needs_elements = true;
  static constexpr bool to_extremum = true;
  using arg_op = argmax;
  template <class V>
  struct reducer : detail::value_reducer<V, V> {
    FG_HOST_DEVICE static V identity() { return detail::lowest<V>(); }
    FG_HOST_DEVICE static V combine(V a, V b) { return (a != a || a >= b) ? a : b; }
  };
};

/// The smallest element; NaN propagates.
struct min {
  static constexpr const char* name = "min";
  static constexpr bool needs_elements = true;
  static constexpr bool to_extremum = true;
  using arg_op = argmin;
  template <class V>
  struct reducer : detail::value_reducer<V, V> {
    FG_HOST_DEVICE static V identity() { return detail::highest<V>(); }
    FG_HOST_DEVICE static V combine(V a, V b) { return (a != a || a <= b) ? a : b; }
  };
};

namespace detail {
template <class V>
struct ValueIndex {
  V value;
  index_t index;
};
/// Position of the extremum under `better`; ties go to the first position, NaN counts as extreme.
template <class V, bool Greater>
struct arg_reducer {
  using acc_type = ValueIndex<V>;
  using result_type = std::int64_t;
  FG_HOST_DEVICE static acc_type identity() {
    return {Greater ? lowest<V>() : highest<V>(), std::numeric_limits<index_t>::max()};
  }
  FG_HOST_DEVICE static acc_type lift(V v, index_t i) { return {v, i}; }
  FG_HOST_DEVICE static acc_type combine(acc_type a, acc_type b) {
    const bool a_nan = a.value != a.value;
    const bool b_nan = b.value != b.value;
    if (a_nan || b_nan) {
      return (a_nan && (!b_nan || a.index < b.index)) ? a : b;
    }
    const bool a_wins = Greater ? a.value > b.value : a.value < b.value;
    if (a_wins) {
      return a;
    }
    if (a.value == b.value) {
      return a.index <= b.index ? a : b;
    }
    return b;
  }
  FG_HOST_DEVICE static result_type finish(acc_type a, index_t) { return a.index; }
};
}  // namespace detail

/// Index of the largest element (first one on ties; NaN counts as largest). Result: int64.
struct argmax {
  static constexpr const char* name = "argmax";
  static constexpr bool needs_elements = true;
  template <class V>
  using reducer = detail::arg_reducer<V, true>;
};

/// Index of the smallest element (first one on ties; NaN counts as smallest). Result: int64.
struct argmin {
  static constexpr const char* name = "argmin";
  static constexpr bool needs_elements = true;
  template <class V>
  using reducer = detail::arg_reducer<V, false>;
};

namespace detail {
/// Running log-sum-exp: the largest element m and sum of e^(x - m) over the elements seen.
template <class V>
struct LogSumExpAcc {
  V max;
  V scaled_sum;
};
}  // namespace detail

/// log(sum(exp(x))), computed stably in one pass (the running maximum rescales the running sum),
/// so no exponential overflows. Empty: -inf. Derivative: softmax, e^(x - y).
struct logsumexp {
  static constexpr const char* name = "logsumexp";
  static constexpr bool needs_elements = false;
  static constexpr bool partial_reads_input = true;
  template <class V>
  FG_HOST_DEVICE static V partial(V x, V y, index_t) {
    return exp{}(x - y);
  }
  template <class V>
  struct reducer {
    static_assert(std::is_floating_point_v<V>, "logsumexp: needs a floating-point operand");
    using acc_type = detail::LogSumExpAcc<V>;
    using result_type = V;
    FG_HOST_DEVICE static acc_type identity() { return {detail::lowest<V>(), V(0)}; }
    FG_HOST_DEVICE static acc_type lift(V v, index_t) { return {v, V(1)}; }
    /// N consecutive values at once (host backend, reduce.hpp): their maximum m, then Σ e^(v - m)
    /// in a loop that vectorises; one exponential per value, none per combine. A block holding NaN
    /// or +inf, or only -inf, takes the per-value path (its rules for those cases).
    template <int N>
    static acc_type lift_block(const V (&v)[N]) {
      V m = v[0];
      bool nan = false;
      for (int l = 0; l < N; ++l) {
        m = v[l] > m ? v[l] : m;
        nan = nan || v[l] != v[l];
      }
      if (nan || !(m < detail::highest<V>()) || !(m > detail::lowest<V>())) {
        acc_type a = identity();
        for (int l = 0; l < N; ++l) {
          a = combine(a, lift(v[l], 0));
        }
        return a;
      }
      V e[N];
      for (int l = 0; l < N; ++l) {  // element-wise: vectorises
        e[l] = v[l] > detail::lowest<V>() ? exp{}(v[l] - m) : V(0);
      }
      V sum(0);
      for (int l = 0; l < N; ++l) {
        sum += e[l];
      }
      return {m, sum};
    }
    FG_HOST_DEVICE static acc_type combine(acc_type a, acc_type b) {
      if (b.scaled_sum == V(0)) {
        return a;
      }
      if (a.scaled_sum == V(0)) {
        return b;
      }
      if (a.max != a.max || b.max != b.max) {
        return {a.max != a.max ? a.max : b.max, V(1)};  // NaN propagates
      }
      if (a.max < b.max) {
        const acc_type t = a;
        a = b;
        b = t;
      }
      if (b.max == a.max) {  // also both infinite: no inf - inf
        return {a.max, a.scaled_sum + b.scaled_sum};
      }
      return {a.max, a.scaled_sum + b.scaled_sum * scalar::exp_library(b.max - a.max)};
    }
    FG_HOST_DEVICE static result_type finish(acc_type a, index_t) {
      if (a.scaled_sum == V(0)) {
        return detail::lowest<V>();
      }
      if (a.max != a.max || a.max == detail::highest<V>() || a.max == detail::lowest<V>()) {
        return a.max;
      }
      return a.max + log{}(a.scaled_sum);
    }
  };
};

/// logsumexp with a double result: the running maximum m and scaled sum s accumulate in the
/// operand's precision, and only the final m + log(s) is formed in double, so that x - result (a
/// log-softmax) keeps its digits for float logits however far they sit from zero (PyTorch shifts by
/// the row maximum for the same reason). Not exposed as a function: the softmax family and
/// cross-entropy save it for their fused rules, which take no derivative of it.
struct logsumexp_wide {
  static constexpr const char* name = "logsumexp";
  static constexpr bool needs_elements = false;
  template <class V>
  struct reducer : logsumexp::reducer<V> {
    using acc_type = detail::LogSumExpAcc<V>;
    using result_type = double;
    FG_HOST_DEVICE static result_type finish(acc_type a, index_t) {
      if (a.scaled_sum == V(0)) {
        return detail::lowest<double>();
      }
      if (a.max != a.max || a.max == detail::highest<V>() || a.max == detail::lowest<V>()) {
        return static_cast<double>(a.max);
      }
      return static_cast<double>(a.max) + log{}(static_cast<double>(a.scaled_sum));
    }
  };
};

/// Two values of one element or one lane, reduced together (a reduction with two results).
template <class V>
struct Two {
  V first;
  V second;
};

/// The mean and the population variance of a lane (Welford's update, Chan's combination: no
/// cancellation for data far from zero). Empty: NaN, NaN. Not exposed as a function: layer norm
/// saves it; its rule takes no derivative of it.
struct moments {
  static constexpr const char* name = "moments";
  static constexpr bool needs_elements = false;
  template <class V>
  struct reducer {
    static_assert(std::is_floating_point_v<V>, "moments: needs a floating-point operand");
    struct acc_type {
      V count, mean, m2;  // m2 = Σ (x - mean)²
    };
    using result_type = Two<V>;  // {mean, variance}
    FG_HOST_DEVICE static acc_type identity() { return {V(0), V(0), V(0)}; }
    FG_HOST_DEVICE static acc_type lift(V v, index_t) { return {V(1), v, V(0)}; }
    FG_HOST_DEVICE static acc_type combine(acc_type a, acc_type b) {
      if (b.count == V(0)) {
        return a;
      }
      if (a.count == V(0)) {
        return b;
      }
      const V count = a.count + b.count;
      const V delta = b.mean - a.mean;
      const V wb = b.count / count;
      return {count, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.count * wb};
    }
    FG_HOST_DEVICE static result_type finish(acc_type a, index_t n) {
      if (n == 0) {
        const V nan = std::numeric_limits<V>::quiet_NaN();
        return {nan, nan};
      }
      return {a.mean, a.m2 / static_cast<V>(n)};
    }
  };
};

/// Sums of both values of Two<V> elements at once. Not exposed as a function: layer norm's rule
/// reduces Σ g and Σ g x̂ in one pass with it.
struct sum_two {
  static constexpr const char* name = "sum";
  static constexpr bool needs_elements = false;
  template <class P>
  struct reducer : detail::value_reducer<P, P> {
    using V = decltype(P::first);
    FG_HOST_DEVICE static P identity() { return {V(0), V(0)}; }
    FG_HOST_DEVICE static P combine(P a, P b) { return {a.first + b.first, a.second + b.second}; }
  };
};

}  // namespace fusegrad::ops

namespace fusegrad {
/// Two<V> is stored as the result of the two-valued reductions (moments, sum_two); it is not an
/// element type of user tensors.
template <class V>
struct dtype_traits<ops::Two<V>> : dtype_info<ops::Two<V>> {
  static constexpr const char* name = "two";
};
}  // namespace fusegrad
