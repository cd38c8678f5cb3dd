// fusegrad/expr/elementwise.hpp — the public element-wise API: operators and free functions that
// build Map nodes. One line per op; the op itself lives in ops/.
//
// Lifetime rule: `auto e = a + b;` holds views of `a` and `b`, not copies. Evaluate `e` (assign it
// to a Tensor) while they are alive.
#pragma once

#include "fusegrad/expr/map.hpp"
#include "fusegrad/ops/arith.hpp"
#include "fusegrad/ops/compare.hpp"
#include "fusegrad/ops/math.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

/// The node for operand `x` of an op whose other operand is `Other`: numbers take the type of
/// the other side (see scalar_type_for).
template <class X, class Other>
auto operand_node(const X& x) {
  if constexpr (scalar<X>) {
    return Scalar<scalar_type_for<typename node_t<Other>::value_type, X>>(x);
  } else {
    return as_node(x);
  }
}

template <class Op, class A, class B>
auto binary(const Op& op, const A& a, const B& b) {
  return make_map(Op::name, op, operand_node<A, B>(a), operand_node<B, A>(b));
}

template <class Op, class E>
auto float_unary(const E& e) {
  static_assert(std::is_floating_point_v<typename node_t<E>::value_type>,
                "element-wise math (exp, log, log1p, sqrt, rsqrt, sin, cos, tanh, sigmoid, gelu, "
                "silu, pow) needs a floating-point operand; convert integers first with fg::cast<float>(e)");
  return make_map(Op::name, Op{}, as_node(e));
}

}  // namespace detail

/// Two operands of which at least one is a tensor expression (the other may be a number).
template <class A, class B>
concept binary_operands = operand<A> && operand<B> && (tensor_expression<A> || tensor_expression<B>);

// clang-format off
template <class A, class B> requires binary_operands<A, B>
auto operator+(const A& a, const B& b) { return detail::binary(ops::add{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator-(const A& a, const B& b) { return detail::binary(ops::sub{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator*(const A& a, const B& b) { return detail::binary(ops::mul{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator/(const A& a, const B& b) { return detail::binary(ops::div{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator<(const A& a, const B& b) { return detail::binary(ops::less{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator<=(const A& a, const B& b) { return detail::binary(ops::less_equal{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator>(const A& a, const B& b) { return detail::binary(ops::greater{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator>=(const A& a, const B& b) { return detail::binary(ops::greater_equal{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator==(const A& a, const B& b) { return detail::binary(ops::equal{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto operator!=(const A& a, const B& b) { return detail::binary(ops::not_equal{}, a, b); }

/// Element-wise maximum / minimum of two operands (NaN propagates), with broadcasting.
template <class A, class B> requires binary_operands<A, B>
auto maximum(const A& a, const B& b) { return detail::binary(ops::maximum{}, a, b); }
template <class A, class B> requires binary_operands<A, B>
auto minimum(const A& a, const B& b) { return detail::binary(ops::minimum{}, a, b); }

template <tensor_expression E> auto operator-(const E& e) { return make_map("neg", ops::neg{}, as_node(e)); }
template <tensor_expression E> auto abs(const E& e) { return make_map("abs", ops::abs{}, as_node(e)); }
template <tensor_expression E> auto square(const E& e) { return make_map("square", ops::square{}, as_node(e)); }
template <tensor_expression E> auto relu(const E& e) { return make_map("relu", ops::relu{}, as_node(e)); }
template <tensor_expression E> auto exp(const E& e) { return detail::float_unary<ops::exp>(e); }
template <tensor_expression E> auto log(const E& e) { return detail::float_unary<ops::log>(e); }
template <tensor_expression E> auto log1p(const E& e) { return detail::float_unary<ops::log1p>(e); }
template <tensor_expression E> auto sqrt(const E& e) { return detail::float_unary<ops::sqrt>(e); }
template <tensor_expression E> auto rsqrt(const E& e) { return detail::float_unary<ops::rsqrt>(e); }
template <tensor_expression E> auto sin(const E& e) { return detail::float_unary<ops::sin>(e); }
template <tensor_expression E> auto cos(const E& e) { return detail::float_unary<ops::cos>(e); }
template <tensor_expression E> auto tanh(const E& e) { return detail::float_unary<ops::tanh>(e); }
template <tensor_expression E> auto sigmoid(const E& e) { return detail::float_unary<ops::sigmoid>(e); }
/// Activations: gelu(x) = x Φ(x) (exact, erf), gelu_tanh(x) (GPT-2's tanh form), silu(x) = x σ(x).
template <tensor_expression E> auto gelu(const E& e) { return detail::float_unary<ops::gelu>(e); }
template <tensor_expression E> auto gelu_tanh(const E& e) { return detail::float_unary<ops::gelu_tanh>(e); }
template <tensor_expression E> auto silu(const E& e) { return detail::float_unary<ops::silu>(e); }
// clang-format on

/// x^p element-wise for a number p.
template <tensor_expression E, scalar P>
auto pow(const E& e, P p) {
  using V = typename node_t<E>::value_type;
  static_assert(std::is_floating_point_v<V>,
                "pow: needs a floating-point operand; convert integers first with fg::cast<float>(e)");
  return make_map("pow", ops::pow<V>{static_cast<V>(p)}, as_node(e));
}

/// where(cond, a, b): a where cond is nonzero, else b; all three broadcast together.
template <operand C, operand A, operand B>
  requires tensor_expression<C>
auto where(const C& cond, const A& a, const B& b) {
  if constexpr (scalar<A> && scalar<B>) {
    using V = std::common_type_t<A, B>;
    return make_map("where", ops::where{}, as_node(cond), Scalar<V>(a), Scalar<V>(b));
  } else {
    return make_map("where", ops::where{}, as_node(cond), detail::operand_node<A, B>(a),
                    detail::operand_node<B, A>(b));
  }
}

/// Converts element-wise to dtype U (stored as U when assigned to a Tensor<U>).
template <dtype U, tensor_expression E>
auto cast(const E& e) {
  return make_map("cast", ops::cast<U>{}, as_node(e));
}

}  // namespace fusegrad::inline FG_BACKEND_NS
