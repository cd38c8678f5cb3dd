// fusegrad/autodiff/record.hpp — the forward pass of grad(): the loss tree rebuilt with every
// boundary node replaced by a Saved node whose value is computed once, plus the two questions the
// backward pass asks of any recorded subtree.
//
//   record(node, tape)   the same tree, children first; matmul and reductions (and element-wise
//                        operands of a matmul) become Saved nodes, evaluated now; element-wise
//                        nodes stay lazy, so the backward kernels recompute them inline.
//   depends(node, tape)  whether a variable gradients were asked for lies below: no gradient work
//                        is done for a subtree that has none.
//   same(a, b)           structural equality (same type, same leaves and parameters): a subtree
//                        that occurs twice (x in x - logsumexp(x)) is saved, and computed, once.
//
// Every node type answers all three here; a node type defined elsewhere (nn/) answers them next
// to its definition.
#pragma once

#include <cstring>
#include <type_traits>

#include "fusegrad/autodiff/tape.hpp"
#include "fusegrad/expr/concat.hpp"
#include "fusegrad/expr/generator.hpp"
#include "fusegrad/expr/matmul.hpp"
#include "fusegrad/expr/reduce.hpp"
#include "fusegrad/expr/view.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {
/// Equality of plain parameter values (op functors, numbers): empty types are always equal.
template <class X>
bool same_bytes(const X& a, const X& b) {
  if constexpr (std::is_empty_v<X>) {
    return true;
  } else {
    static_assert(std::is_trivially_copyable_v<X>, "autodiff: op parameters must be plain values");
    return std::memcmp(&a, &b, sizeof(X)) == 0;
  }
}
}  // namespace detail

// ---- leaves and constants -------------------------------------------------------------------

template <class T, int R, class Tp>
Leaf<T, R> record(const Leaf<T, R>& x, Tp& tape) {
  tape.note(x);
  return x;
}
template <class T, int R, class Tp>
bool depends(const Leaf<T, R>& x, const Tp& tape) {
  return tape.is_variable(x);
}
template <class T, int R>
bool same(const Leaf<T, R>& a, const Leaf<T, R>& b) {
  return a.data == b.data && a.extents == b.extents && a.strides == b.strides;
}

template <class T, class Tp>
Scalar<T> record(const Scalar<T>& x, Tp&) {
  return x;
}
template <class T, class Tp>
bool depends(const Scalar<T>&, const Tp&) {
  return false;
}
template <class T>
bool same(const Scalar<T>& a, const Scalar<T>& b) {
  return detail::same_bytes(a.value, b.value);
}

template <class T, class F, class Tp>
Generator<T, F> record(const Generator<T, F>& x, Tp&) {
  return x;
}
template <class T, class F, class Tp>
bool depends(const Generator<T, F>&, const Tp&) {
  return false;
}
template <class T, class F>
bool same(const Generator<T, F>& a, const Generator<T, F>& b) {
  return a.n == b.n && detail::same_bytes(a.f, b.f);
}

template <class N, class Tp>
Saved<N> record(const Saved<N>& x, Tp&) {
  return x;
}
template <class N, class Tp>
bool depends(const Saved<N>& x, const Tp&) {
  return x.state->depends;
}
template <class N>
bool same(const Saved<N>& a, const Saved<N>& b) {
  return a.state == b.state;
}

// ---- element-wise maps ----------------------------------------------------------------------

namespace detail {
template <class Op, class... A, class Tp, std::size_t... I>
auto record_map(const Map<Op, A...>& x, Tp& tape, std::index_sequence<I...>) {
  using Out = Map<Op, decltype(record(detail::get<I>(x.args), tape))...>;
  return Out(x.op, x.extents, record(detail::get<I>(x.args), tape)...);
}
template <class Op, class... A, std::size_t... I>
bool same_args(const Map<Op, A...>& a, const Map<Op, A...>& b, std::index_sequence<I...>) {
  return (same(detail::get<I>(a.args), detail::get<I>(b.args)) && ...);
}
}  // namespace detail

template <class Op, class... A, class Tp>
auto record(const Map<Op, A...>& x, Tp& tape) {
  return detail::record_map(x, tape, std::index_sequence_for<A...>{});
}
template <class Op, class... A, class Tp>
bool depends(const Map<Op, A...>& x, const Tp& tape) {
  return !x.all([&](const auto& a) { return !depends(a, tape); });
}
template <class Op, class... A>
bool same(const Map<Op, A...>& a, const Map<Op, A...>& b) {
  return a.extents == b.extents && detail::same_bytes(a.op, b.op) &&
         detail::same_args(a, b, std::index_sequence_for<A...>{});
}

// ---- views ----------------------------------------------------------------------------------

template <class E, int R, class Tp>
auto record(const Broadcast<E, R>& x, Tp& tape) {
  auto inner = record(x.inner, tape);
  Broadcast<decltype(inner), R> out;
  out.inner = inner;
  out.extents = x.extents;
  out.inner_extents = x.inner_extents;
  out.identity = x.identity;
  return out;
}
template <class E, class Tp>
auto record(const Permute<E>& x, Tp& tape) {
  auto inner = record(x.inner, tape);
  return Permute<decltype(inner)>{{}, inner, x.perm, x.extents};
}
template <class E, int R, class Tp>
auto record(const Reshape<E, R>& x, Tp& tape) {
  auto inner = record(x.inner, tape);
  return Reshape<decltype(inner), R>{{}, inner, x.extents, x.inner_extents};
}
template <class E, class Tp>
auto record(const Slice<E>& x, Tp& tape) {
  auto inner = record(x.inner, tape);
  return Slice<decltype(inner)>{{}, inner, x.axis, x.start, x.step, x.extents};
}

template <class E, int R, class Tp>
bool depends(const Broadcast<E, R>& x, const Tp& tape) {
  return depends(x.inner, tape);
}
template <class E, class Tp>
bool depends(const Permute<E>& x, const Tp& tape) {
  return depends(x.inner, tape);
}
template <class E, int R, class Tp>
bool depends(const Reshape<E, R>& x, const Tp& tape) {
  return depends(x.inner, tape);
}
template <class E, class Tp>
bool depends(const Slice<E>& x, const Tp& tape) {
  return depends(x.inner, tape);
}

template <class E, int R>
bool same(const Broadcast<E, R>& a, const Broadcast<E, R>& b) {
  return a.extents == b.extents && same(a.inner, b.inner);
}
template <class E>
bool same(const Permute<E>& a, const Permute<E>& b) {
  return a.perm == b.perm && a.extents == b.extents && same(a.inner, b.inner);
}
template <class E, int R>
bool same(const Reshape<E, R>& a, const Reshape<E, R>& b) {
  return a.extents == b.extents && same(a.inner, b.inner);
}
template <class E>
bool same(const Slice<E>& a, const Slice<E>& b) {
  return a.axis == b.axis && a.start == b.start && a.step == b.step && a.extents == b.extents &&
         same(a.inner, b.inner);
}

template <class... A, class Tp>
auto record(const Concat<A...>& x, Tp& tape) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    using Out = Concat<decltype(record(detail::get<I>(x.args), tape))...>;
    Out out;
    out.args = detail::Pack<decltype(record(detail::get<I>(x.args), tape))...>(record(detail::get<I>(x.args), tape)...);
    out.axis = x.axis;
    for (std::size_t i = 0; i < x.count; ++i) {
      out.starts[i] = x.starts[i];
    }
    out.extents = x.extents;
    return out;
  }(std::index_sequence_for<A...>{});
}
template <class... A, class Tp>
bool depends(const Concat<A...>& x, const Tp& tape) {
  return x.any([&](const auto& a) { return depends(a, tape); });
}
template <class... A>
bool same(const Concat<A...>& a, const Concat<A...>& b) {
  bool equal = a.axis == b.axis && a.extents == b.extents;
  for (std::size_t i = 0; i < a.count; ++i) {
    equal = equal && a.starts[i] == b.starts[i];
  }
  return equal && [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (same(detail::get<I>(a.args), detail::get<I>(b.args)) && ...);
  }(std::index_sequence_for<A...>{});
}

// ---- boundary nodes: saved ------------------------------------------------------------------

namespace detail {
/// Whether gradient flows through a reduction: only a floating-point reduction of a floating-point
/// operand passes any. argmax and argmin (int64 positions), and reductions of integers, pass none:
/// they may appear anywhere in a loss (labels, masks, counts) and need no derivative rule.
template <class N>
inline constexpr bool differentiable_reduce =
    std::is_floating_point_v<typename N::value_type> &&
    std::is_floating_point_v<typename N::input_type::value_type>;
}  // namespace detail

template <class Op, class E, int R, class Tp>
auto record(const Reduce<Op, E, R>& x, Tp& tape) {
  auto input = record(x.input, tape);
  using N = Reduce<Op, decltype(input), R>;
  // Saved without a rule when no gradient can flow through it: its rule is not even compiled.
  return tape.template save<detail::differentiable_reduce<N>>(N{{}, input, x.axis, x.extents});
}
template <class Op, class E, int R, class Tp>
bool depends(const Reduce<Op, E, R>& x, const Tp& tape) {
  return detail::differentiable_reduce<Reduce<Op, E, R>> && depends(x.input, tape);
}
template <class Op, class E, int R>
bool same(const Reduce<Op, E, R>& a, const Reduce<Op, E, R>& b) {
  return a.axis == b.axis && a.extents == b.extents && same(a.input, b.input);
}

namespace detail {
/// A GEMM reads its operands whole, in the forward pass and again in the backward one: an
/// operand that is not already memory (a leaf or a saved node) is saved, so it is computed once.
template <class X, class Tp>
auto gemm_operand_record(const X& x, Tp& tape) {
  if constexpr (is_leaf<X>::value || is_saved<X>::value) {
    return x;
  } else {
    return tape.save(x);
  }
}
}  // namespace detail

template <class A, class B, class Tp>
auto record(const Matmul<A, B>& x, Tp& tape) {
  auto a = detail::gemm_operand_record(record(x.a, tape), tape);
  auto b = detail::gemm_operand_record(record(x.b, tape), tape);
  return tape.save(Matmul<decltype(a), decltype(b)>{{}, a, b, x.extents});
}
template <class A, class B, class Tp>
bool depends(const Matmul<A, B>& x, const Tp& tape) {
  return depends(x.a, tape) || depends(x.b, tape);
}
template <class A, class B>
bool same(const Matmul<A, B>& a, const Matmul<A, B>& b) {
  return same(a.a, b.a) && same(a.b, b.b);
}

}  // namespace fusegrad::inline FG_BACKEND_NS
