// fusegrad/autodiff/rules.hpp — the adjoint rules: how the gradient g of a node's output becomes
// the gradients of its operands. Every rule builds lazy expressions; only boundaries evaluate.
//
//   backprop(node, g, tape)             g reaches a node of the recorded tree (g has its shape)
//   backprop_saved(node, y, g, tape)    the rule of a saved node, run once its gradient g is
//                                       complete; y is its saved value
//
//   element-wise op(x...)   x_i gets g * op.partial<i>(x...)           (ops/: value and partial)
//   broadcast               g summed over the broadcast axes            (one reduction kernel)
//   permute, reshape        g read through the inverse view             (lazy)
//   slice                   g placed back, zero elsewhere               (lazy)
//   concat                  each operand gets its slice of g            (lazy)
//   leaf                    added to the variable it views              (autodiff/accumulate.hpp)
//   saved node              added to its gradient; its rule runs later  (one kernel per arrival)
//   reduce                  g spread over the reduced axis × partial    (lazy; max/min: to argmax;
//                           prod: + 1 reduction; argmax/argmin, integer reductions: no gradient)
//   matmul C = A B          dA = g Bᵀ, dB = Aᵀ g                         (GEMMs, transposes as flags)
#pragma once

#include "fusegrad/autodiff/nodes.hpp"
#include "fusegrad/autodiff/record.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

template <std::size_t I, class T0, class... T>
struct nth {
  using type = typename nth<I - 1, T...>::type;
};
template <class T0, class... T>
struct nth<0, T0, T...> {
  using type = T0;
};

/// True when op has a derivative with respect to operand I at arguments of types V...
template <class Op, std::size_t I, class... V>
concept has_partial = requires(const Op& op, V... v) { op.template partial<I>(v...); };

/// g * d op / d x_I, in x_I's type: the element-wise rule of every op (its own vjp<I> when it has
/// one, a select; else g times its partial).
template <class Op, std::size_t I>
struct Vjp {
  static constexpr const char* name = "grad";
  Op op;
  template <class G, class... X>
  FG_HOST_DEVICE auto operator()(G g, X... x) const {
    using XI = typename nth<I, X...>::type;
    if constexpr (requires { op.template vjp<I>(static_cast<XI>(g), x...); }) {
      return static_cast<XI>(op.template vjp<I>(static_cast<XI>(g), x...));
    } else {
      return static_cast<XI>(static_cast<XI>(g) * op.template partial<I>(x...));
    }
  }
};

/// g times a number, in type T: the rule of an op whose partial is a constant (+, -, cast).
template <class T>
struct Scale {
  static constexpr const char* name = "grad";
  T factor;
  template <class G>
  FG_HOST_DEVICE T operator()(G g) const {
    return static_cast<T>(g) * factor;
  }
};

/// The gradient of operand I of x, given the gradient g of x: g · partial<I>(x's operands).
template <std::size_t I, class Op, class... A, class G>
auto vjp_node(const Map<Op, A...>& x, const G& g) {
  using XI = typename nth<I, A...>::type::value_type;
  if constexpr (requires { Op::constant_partials; }) {
    const auto factor = static_cast<XI>(x.op.template partial<I>(typename A::value_type{}...));
    return Map<Scale<XI>, G>(Scale<XI>{factor}, x.extents, g);
  } else {
    return [&]<std::size_t... J>(std::index_sequence<J...>) {
      return Map<Vjp<Op, I>, G, A...>(Vjp<Op, I>{x.op}, x.extents, g, detail::get<J>(x.args)...);
    }(std::index_sequence_for<A...>{});
  }
}

template <std::size_t I, class Op, class... A>
constexpr bool differentiable_operand() {
  using AI = typename nth<I, A...>::type;
  return std::is_floating_point_v<typename AI::value_type> && has_partial<Op, I, typename A::value_type...>;
}

template <std::size_t I, class Op, class... A, class G, class Tp>
void backprop_operand(const Map<Op, A...>& x, const G& g, Tp& tape, int skip) {
  if constexpr (differentiable_operand<I, Op, A...>()) {
    const auto& operand = detail::get<I>(x.args);
    if (static_cast<int>(I) != skip && depends(operand, tape)) {
      backprop(operand, vjp_node<I>(x, g), tape);
    }
  }
}

/// The saved node an operand reads as it is (itself, or an identity broadcast of it); nullptr for
/// any other operand.
template <class E>
struct broadcasts_saved : std::false_type {};
template <class N, int R>
struct broadcasts_saved<Broadcast<Saved<N>, R>> : std::bool_constant<N::rank == R> {};

template <class E>
auto* saved_state_of(const E& e) {
  if constexpr (is_saved<E>::value) {
    return e.state.get();
  } else if constexpr (broadcasts_saved<E>::value) {
    return e.identity ? e.inner.state.get() : nullptr;
  } else {
    return static_cast<SavedState<int>*>(nullptr);
  }
}

/// The first operand that is a saved node whose gradient is the Map's own (a sum: operands of
/// +, the first of -); -1 for none.
template <class Op, class... A>
constexpr int sum_operand_saved() {
  using V = typename Map<Op, A...>::value_type;
  constexpr bool sum = std::is_same_v<Op, ops::add> || std::is_same_v<Op, ops::sub>;
  constexpr bool saved[] = {
      (!std::is_same_v<decltype(saved_state_of(std::declval<const A&>())), SavedState<int>*> &&
       std::is_same_v<typename A::value_type, V>)...};
  for (std::size_t i = 0; i < sizeof...(A); ++i) {
    if (sum && saved[i] && (i == 0 || std::is_same_v<Op, ops::add>)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

template <class Op, class... A, class G, class Tp, std::size_t... I>
void backprop_map(const Map<Op, A...>& x, const G& g, Tp& tape, int skip, std::index_sequence<I...>) {
  (backprop_operand<I>(x, g, tape, skip), ...);
}

/// The value of a recorded GEMM operand (a leaf, or a saved node's value).
template <class X>
auto value_of(const X& x) {
  if constexpr (is_saved<X>::value) {
    return x.value();
  } else {
    return x;
  }
}

/// Swaps the last two axes (a view).
template <class X>
auto transpose_last(const X& x) {
  if constexpr (X::rank == 2) {
    return permute_node(x, Shape<2>({1, 0}));
  } else if constexpr (X::rank == 3) {
    return permute_node(x, Shape<3>({0, 2, 1}));
  } else {
    return permute_node(x, Shape<4>({0, 1, 3, 2}));
  }
}

/// g as an operand of a backward product whose other operand is stored as S: g itself, or, when g
/// is stored as another dtype (the float gradient of a product of half tensors), g converted to S
/// as the GEMM reads it (one kernel), so that the backward GEMMs read what the forward one read.
template <class S, class G>
auto gemm_operand_as(const G& g) {
  using SG = storage_of_t<G>;
  if constexpr (std::is_void_v<SG> || std::is_same_v<SG, S>) {
    return g;
  } else {
    return cast<S>(g);
  }
}

/// Passes `product` (the gradient of a GEMM operand computed with the output's batch) to operand
/// x, summing over the batch axis when x was shared by the batch (rank 2, or batch extent 1).
template <class X, class P, class Tp>
void backprop_gemm_operand(const X& x, const P& product, Tp& tape) {
  if constexpr (P::rank == X::rank) {
    if (product.shape() == x.shape()) {
      backprop(x, product, tape);
      return;
    }
  }
  using V = typename P::value_type;
  const Tensor<V, P::rank> full = evaluate(product);
  // Sum over the batch axes x is shared along: those it lacks, and those where it has extent 1.
  const auto xs = x.shape();
  const auto ps = full.shape();
  unsigned mask = 0;
  for (int i = 0; i < P::rank - 2; ++i) {
    const int j = i - (P::rank - X::rank);
    if (j < 0 || (xs[j] == 1 && ps[i] != 1)) {
      mask |= 1u << i;
    }
  }
  Tensor<V, X::rank> summed(xs);
  detail::sum_axes_into(summed.data(), full.view(), full.shape(), mask);
  backprop(x, tape.keep(std::move(summed)), tape);
}

/// A (..., M, K) leaf as a (prod(...)·M, K) matrix when its rows follow each other across the
/// batch axes.
template <class T, int R>
bool collapse_batch(const Leaf<T, R>& x, Leaf<T, 2>& out) {
  index_t rows = x.extents[R - 2];
  index_t next = x.extents[R - 2] * x.strides[R - 2];  // where row 0 of the next batch entry must start
  for (int i = R - 3; i >= 0; --i) {
    if (x.extents[i] != 1 && x.strides[i] != next) {
      return false;
    }
    next *= x.extents[i];
    rows *= x.extents[i];
  }
  out = Leaf<T, 2>(x.data, Shape<2>({rows, x.extents[R - 1]}), Shape<2>({x.strides[R - 2], x.strides[R - 1]}));
  return true;
}

}  // namespace detail

// ---- backprop: a gradient reaches a node ----------------------------------------------------

template <class T, int R, class G, class Tp>
void backprop(const Leaf<T, R>& x, const G& g, Tp& tape) {
  tape.contribute(x, g);
}
template <class T, class G, class Tp>
void backprop(const Scalar<T>&, const G&, Tp&) {}
template <class T, class F, class G, class Tp>
void backprop(const Generator<T, F>&, const G&, Tp&) {}

template <class N, class G, class Tp>
void backprop(const Saved<N>& x, const G& g, Tp&) {
  if (x.state->depends) {
    accumulate(x.state->grad, x.state->has_grad, g);
  }
}

/// Each operand gets g · partial. One case is scheduled with care: a sum with a saved operand
/// (`matmul(x, W) + b`). The saved node is going to store its gradient anyway; when this is the
/// first to arrive, it is stored first, and the other operands (the bias) read the stored copy
/// instead of recomputing the expression: same kernels, less traffic, simpler kernels to compile.
template <class Op, class... A, class G, class Tp>
void backprop(const Map<Op, A...>& x, const G& g, Tp& tape) {
  constexpr int s = detail::sum_operand_saved<Op, A...>();
  if constexpr (s >= 0) {
    using V = typename G::value_type;
    constexpr auto I = static_cast<std::size_t>(s);
    auto* state = detail::saved_state_of(detail::get<I>(x.args));
    OneOf<G, Leaf<V, Map<Op, A...>::rank>> gg{{}, true, g, {}};
    int skip = -1;
    if (state != nullptr && state->depends && !state->has_grad) {
      // The plain g, not gg: this is the hot kernel (dZ = dH · relu'), and a per-element choice
      // between g and a leaf would keep it from being branch-free.
      accumulate(state->grad, state->has_grad, detail::vjp_node<I>(x, g));
      gg.first = false;
      gg.b = state->grad.view();
      skip = s;
    }
    detail::backprop_map(x, gg, tape, skip, std::index_sequence_for<A...>{});
  } else {
    detail::backprop_map(x, g, tape, -1, std::index_sequence_for<A...>{});
  }
}

template <class E, int R, class G, class Tp>
void backprop(const Broadcast<E, R>& x, const G& g, Tp& tape) {
  if (!depends(x.inner, tape)) {
    return;
  }
  using V = typename E::value_type;
  Leaf<V, E::rank> reduced;
  if (!x.identity) {
    unsigned mask = 0;  // the broadcast axes: added in front, or extent 1 stretched
    for (int i = 0; i < R; ++i) {
      const int j = i - (R - E::rank);
      if (x.extents[i] != 1 && (j < 0 || x.inner_extents[j] == 1)) {
        mask |= 1u << i;
      }
    }
    Tensor<V, E::rank> summed(x.inner_extents);
    detail::sum_axes_into(summed.data(), g, x.extents, mask);
    reduced = tape.keep(std::move(summed));
  }
  if constexpr (E::rank == R) {
    // Most broadcasts of an expression are the identity (an operand already of the result's
    // shape): g passes on unchanged then, in the same type as the reduced copy.
    backprop(x.inner, OneOf<G, Leaf<V, R>>{{}, x.identity, g, reduced}, tape);
  } else {
    backprop(x.inner, reduced, tape);
  }
}

template <class E, class G, class Tp>
void backprop(const Permute<E>& x, const G& g, Tp& tape) {
  Shape<E::rank> inverse;
  for (int i = 0; i < E::rank; ++i) {
    inverse[x.perm[i]] = i;
  }
  backprop(x.inner, permute_node(g, inverse), tape);
}

template <class E, int R, class G, class Tp>
void backprop(const Reshape<E, R>& x, const G& g, Tp& tape) {
  backprop(x.inner, reshape_node(g, x.inner_extents), tape);
}

template <class E, class G, class Tp>
void backprop(const Slice<E>& x, const G& g, Tp& tape) {
  backprop(x.inner, Unslice<G>{{}, g, x.axis, x.start, x.step, x.inner.shape(), x.extents[x.axis]},
           tape);
}

/// Each operand of a concat gets its own range of g along the axis (a view of g).
template <class... A, class G, class Tp>
void backprop(const Concat<A...>& x, const G& g, Tp& tape) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    auto part = [&](const auto& operand, std::size_t i) {
      if (depends(operand, tape)) {
        const index_t start = x.starts[i];
        backprop(operand, slice(g, x.axis, start, start + operand.shape()[x.axis]), tape);
      }
    };
    (part(detail::get<I>(x.args), I), ...);
  }(std::index_sequence_for<A...>{});
}

// ---- backprop_saved: the rule of a saved node, with its whole gradient --------------------

/// An element-wise subtree saved because a GEMM reads it: its own rule.
template <class N, class Y, class G, class Tp>
void backprop_saved(const N& node, const Y&, const G& g, Tp& tape) {
  backprop(node, g, tape);
}

/// y = Op-reduce(x): x gets g spread over the reduced lane times the op's partial (one lazy node).
/// max/min: the gradient goes to the first arg-extremum (one argmax/argmin reduction). prod: one
/// more reduction, the lane's product with a zero left out, makes the rule exact at zeros.
/// argmax, argmin and reductions of integers pass nothing (record.hpp saves them without a rule).
template <class Op, class E, int R, class Y, class G, class Tp>
void backprop_saved(const Reduce<Op, E, R>& r, const Y& y, const G& g, Tp& tape) {
  if constexpr (!detail::differentiable_reduce<Reduce<Op, E, R>>) {
    return;  // an integer-valued reduction, or one of integers: no gradient flows through it
  } else {
    static_assert(requires { Op::to_extremum; } || requires { Op::partial_reads_input; },
                  "grad: this floating-point reduction has no derivative rule (give its op in "
                  "ops/reduce.hpp a partial, or to_extremum)");
    using V = typename Reduce<Op, E, R>::value_type;
    constexpr int RI = E::rank;
    if (!depends(r.input, tape)) {
      return;
    }
    const auto in = r.input.shape();
    const index_t n = r.axis < 0 ? in.size() : in[r.axis];
    const Scalar<V> unused(0);
    if constexpr (requires { Op::to_extremum; }) {
      // The whole gradient goes to the element argmax/argmin picks (the first on ties).
      const auto arg = tape.keep(evaluate(Reduce<typename Op::arg_op, E, R>{{}, r.input, r.axis, r.extents}));
      backprop(r.input,
               ReduceGrad<Op, G, Scalar<V>, Scalar<V>, decltype(arg), RI>{{}, g, unused, unused, arg,
                                                                          r.axis, in, n},
               tape);
    } else if constexpr (requires { typename Op::aux_op; }) {
      // The partial reads a second reduction of the same input (prod: the product with a zero
      // left out), evaluated once here.
      const auto aux = tape.keep(evaluate(Reduce<typename Op::aux_op, E, R>{{}, r.input, r.axis, r.extents}));
      backprop(r.input,
               ReduceGrad<Op, G, E, Y, decltype(aux), RI>{{}, g, r.input, y, aux, r.axis, in, n},
               tape);
    } else if constexpr (Op::partial_reads_input) {
      backprop(r.input,
               ReduceGrad<Op, G, E, Y, Scalar<index_t>, RI>{{}, g, r.input, y, Scalar<index_t>(0),
                                                            r.axis, in, n},
               tape);
    } else {
      backprop(r.input,
               ReduceGrad<Op, G, Scalar<V>, Scalar<V>, Scalar<index_t>, RI>{
                   {}, g, unused, unused, Scalar<index_t>(0), r.axis, in, n},
               tape);
    }
  }
}

/// C = A B (batched when rank 3): dA = g Bᵀ, dB = Aᵀ g. Operands are leaves or saved nodes, so
/// their values are memory and every transpose is a GEMM flag; g is converted to the dtype of the
/// operand it multiplies when it is stored in another (a float gradient times a half weight is a
/// half GEMM). A rank-2 operand shared by a batch gets the sum over the batch: one GEMM when the
/// batch folds into the rows, else GEMM + sum.
template <class A, class B, class Y, class G, class Tp>
void backprop_saved(const Matmul<A, B>& mm, const Y&, const G& g, Tp& tape) {
  const auto av = detail::value_of(mm.a);
  const auto bv = detail::value_of(mm.b);
  using SA = typename decltype(av)::storage_type;
  using SB = typename decltype(bv)::storage_type;
  if (depends(mm.a, tape)) {
    detail::backprop_gemm_operand(
        mm.a, matmul(detail::gemm_operand_as<SB>(g), detail::transpose_last(bv)), tape);
  }
  if (depends(mm.b, tape)) {
    if constexpr (A::rank >= 3 && B::rank == 2) {
      Leaf<SA, 2> a2;
      if (detail::collapse_batch(av, a2)) {  // sum_b A_bᵀ g_b = (A as (B·M, K))ᵀ (g as (B·M, N))
        const auto gs = g.shape();
        index_t g_rows = 1;
        for (int i = 0; i < A::rank - 1; ++i) {
          g_rows *= gs[i];
        }
        const Leaf<typename G::storage_type, 2> g2(g.data, Shape<2>({g_rows, gs[A::rank - 1]}));
        backprop(mm.b, matmul(transpose(a2), detail::gemm_operand_as<SA>(g2)), tape);
        return;
      }
    }
    detail::backprop_gemm_operand(
        mm.b, matmul(detail::transpose_last(av), detail::gemm_operand_as<SA>(g)), tape);
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS
