// fusegrad/expr/node.hpp — what every expression node is, and the concepts public templates use.
//
// A node is a small value type (operands held by value, leaves are non-owning views) with
//   using value_type;                 // the type its elements compute to
//   static constexpr int rank;
//   Shape<rank> shape() const;        // known when the node is built
// and, once planned (eval/plan.hpp) into a kernel-ready tree, element access
//   value_type at(const Shape<rank>& index) const;   // N-d index, any layout
//   value_type at_linear(index_t i) const;           // only when linear() is true
//   bool linear() const;                             // every leaf contiguous, no broadcast
// and, optionally, the vectorised form of at_linear (core/lanes.hpp; detail::lanes_of falls back to
// V calls of at_linear):
//   Lanes<value_type, V> lanes<V>(index_t i) const;  // elements [i, i + V), i a multiple of V
//   bool lanes_aligned(int V) const;                 // every leaf aligned to V of its elements
// and, optionally, a row cursor for backends that walk the last axis in an inner loop (the host):
//   auto row(const Shape<rank>& index) const;        // index[rank - 1] == 0; returns c with
//                                                    // c(j) = at(index with index[rank - 1] = j)
// whose per-row work (a leaf's base offset, a row statistic) is done once, so that c(j) is a
// stride walk the compiler vectorises. detail::row_cursor falls back to at() for a node without it.
// Boundary nodes (matmul, reductions) have no element access: planning evaluates them first.
#pragma once

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/dtype.hpp"
#include "fusegrad/core/lanes.hpp"
#include "fusegrad/core/shape.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

template <class T, int R>
class Tensor;

/// Base of every node. Gives expressions the members users expect of a lazy tensor:
/// `sum(square(a - b)).item()`, `(a + b).eval()`. Their bodies live in eval/.
template <class Derived>
struct ExprBase {
  /// Evaluates the expression into a new Tensor.
  auto eval() const { return evaluate(static_cast<const Derived&>(*this)); }
  /// Evaluates a one-element expression and returns its value on the host.
  auto item() const { return evaluate(static_cast<const Derived&>(*this)).item(); }
  /// Evaluates the expression and copies its elements to the host in C order.
  auto to_vector() const { return evaluate(static_cast<const Derived&>(*this)).to_vector(); }
};

/// A lazy node (not a Tensor, not a scalar).
template <class E>
concept expression_node = std::derived_from<E, ExprBase<E>> && requires(const E& e) {
  typename E::value_type;
  { E::rank } -> std::convertible_to<int>;
  e.shape();
};

/// Whether a kernel-ready tree of type K can take the linear fast path at all. A node that always
/// remaps indices (permute, slice, ...) says `static constexpr bool may_be_linear = false;`, and so
/// does every tree holding it: the fast path is then not compiled (it could never run).
template <class K>
constexpr bool linear_possible() {
  if constexpr (requires { K::may_be_linear; }) {
    return K::may_be_linear;
  } else {
    return true;
  }
}

/// k.linear(), known false at compile time where linear_possible<K>() is.
template <class K>
bool is_linear(const K& k) {
  if constexpr (linear_possible<K>()) {
    return k.linear();
  } else {
    return false;
  }
}

namespace detail {

/// Elements [i, i + V) of a linear kernel-ready tree: one vector load per leaf where the nodes
/// provide `lanes`, else V calls of at_linear.
template <int V, class K>
FG_HOST_DEVICE Lanes<typename K::value_type, V> lanes_of(const K& k, index_t i) {
  if constexpr (requires { k.template lanes<V>(i); }) {
    return k.template lanes<V>(i);
  } else {
    Lanes<typename K::value_type, V> r;
    FG_UNROLL for (int j = 0; j < V; ++j) { r.v[j] = k.at_linear(i + j); }
    return r;
  }
}

/// The fallback row cursor: at() with the last coordinate set to j.
template <class K, int R>
struct IndexRow {
  const K* k;
  Shape<R> index;
  typename K::value_type operator()(index_t j) const {
    Shape<R> i = index;
    i[R - 1] = j;
    return k->at(i);
  }
};

/// k's row cursor at `index` (index[R - 1] == 0): k.row(index) where the node defines it, else
/// IndexRow over k (which must outlive the cursor). Host only.
template <class K, int R>
auto row_cursor(const K& k, const Shape<R>& index) {
  if constexpr (requires { k.row(index); }) {
    return k.row(index);
  } else {
    return IndexRow<K, R>{&k, index};
  }
}

/// Whether every leaf of k is aligned to a step of V of its elements. False for a node that does
/// not say (the scalar path is always correct).
template <class K>
bool lanes_aligned(const K& k, int lanes) {
  if constexpr (requires { k.lanes_aligned(lanes); }) {
    return k.lanes_aligned(lanes);
  } else {
    return false;
  }
}

}  // namespace detail

template <class T>
struct is_tensor : std::false_type {};
template <class T, int R>
struct is_tensor<Tensor<T, R>> : std::true_type {};

/// Anything that can stand for a tensor in an expression: a Tensor or a lazy node.
template <class E>
concept tensor_expression = expression_node<std::remove_cvref_t<E>> ||
                            is_tensor<std::remove_cvref_t<E>>::value;

/// A plain number usable on either side of an element-wise op.
template <class S>
concept scalar = std::is_arithmetic_v<std::remove_cvref_t<S>>;

/// An operand of an element-wise op: a tensor expression or a scalar.
template <class X>
concept operand = tensor_expression<X> || scalar<X>;

namespace detail {

/// A device-copyable tuple of nodes (std::tuple is not usable in device code without flags).
template <std::size_t I, class T>
struct PackElem {
  T value;
};
template <class Seq, class... T>
struct PackImpl;
template <std::size_t... I, class... T>
struct PackImpl<std::index_sequence<I...>, T...> : PackElem<I, T>... {
  constexpr PackImpl() = default;
  constexpr explicit PackImpl(const T&... v) : PackElem<I, T>{v}... {}
};
template <class... T>
struct Pack : PackImpl<std::index_sequence_for<T...>, T...> {
  using PackImpl<std::index_sequence_for<T...>, T...>::PackImpl;
};
template <std::size_t I, class T>
FG_HOST_DEVICE const T& get(const PackElem<I, T>& p) {
  return p.value;
}

}  // namespace detail

}  // namespace fusegrad::inline FG_BACKEND_NS
