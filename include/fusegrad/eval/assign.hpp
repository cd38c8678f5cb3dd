// fusegrad/eval/assign.hpp — evaluation: `tensor = expression`, fused reductions, GEMMs, and the
// materialisation of boundary nodes inside element-wise trees.
//
// Kernel counts (the fusion contract, tested with stats::kernel_launches()):
//   element-wise tree of any depth, with broadcasts, views and scalars  -> 1 launch
//   reduction (full or one axis) of such a tree                        -> 1 launch, no temporary
//   matmul                                                             -> 1 GEMM (+1 copy for an
//                                                                          operand that is neither a
//                                                                          plain nor a transposed view
//                                                                          of memory in the GEMM's
//                                                                          dtype; +1 store when the
//                                                                          GEMM cannot write the
//                                                                          result's dtype itself)
//   element-wise tree containing k boundary nodes                      -> their launches + 1
#pragma once

#include "fusegrad/backend/backend.hpp"
#include "fusegrad/eval/plan.hpp"
#include "fusegrad/expr/matmul.hpp"
#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/reduce.hpp"
#include "fusegrad/expr/view.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

template <class E, class T>
constexpr void check_dtype() {
  using V = typename E::value_type;
  static_assert(std::is_same_v<V, compute_t<T>> || std::is_same_v<V, bool>,
                "Tensor assignment: the expression's dtype differs from the tensor's dtype; "
                "convert explicitly with fg::cast<T>(expression)");
}

/// Writes the kernel-ready tree `k` of shape `shape` into `out` (C order): one kernel.
template <class T, int R, class K>
void write(T* out, const Shape<R>& shape, const K& k) {
  if constexpr (linear_possible<K>()) {
    if (k.linear()) {
      backend::for_each_linear(shape.size(), WriteLinear<T, K>{out, k});
      return;
    }
  }
  backend::for_each_index(shape, WriteIndexed<T, K>{out, k});
}
/// A reshape writes the same C order as its operand: the operand is written in its own shape, so
/// that its rows (and their cursors) are the ones walked.
template <class T, int R, class E>
void write(T* out, const Shape<R>&, const Reshape<E, R>& k) {
  write(out, k.inner_extents, k.inner);
}
template <class T, int R, class K>
void write(Tensor<T, R>& dst, const K& k) {
  write(dst.data(), dst.shape(), k);
}

/// Runs the reduction `r`, whose input is already planned as `k`, into `out` (r's shape, C order).
template <class T, class Op, class E, int RO, class K>
void run_reduce(T* out, const Reduce<Op, E, RO>& r, const K& k) {
  using Red = typename Reduce<Op, E, RO>::reducer;
  const auto in = r.input.shape();
  index_t outer = 1, len = in.size(), inner = 1;
  if (r.axis >= 0) {
    for (int i = 0; i < r.axis; ++i) {
      outer *= in[i];
    }
    len = in[r.axis];
    for (int i = r.axis + 1; i < E::rank; ++i) {
      inner *= in[i];
    }
  }
  // A rank-0 result is a full reduction (or one over the only axis, the same thing): the
  // grid-wide kernel. Any other is an axis reduction. Decided at compile time, so each reduction
  // compiles only the kernels it can run.
  auto run = [&](const auto& load) {
    if constexpr (RO == 0) {
      backend::reduce_all<Red>(len, load, out);
    } else {
      backend::reduce_axis<Red>(outer, len, inner, load, out);
    }
  };
  if constexpr (linear_possible<K>()) {
    if (k.linear()) {
      run(LoadLinear<K>{k});
      return;
    }
  }
  run(LoadIndexed<K>{k, in});
}

/// Runs the reduction `r` over every axis but r.axis, its input planned as `k`, into `out`.
template <class T, class Op, class E, class K>
void run_reduce(T* out, const ReduceKept<Op, E>& r, const K& k) {
  using Red = typename ReduceKept<Op, E>::reducer;
  const auto in = r.input.shape();
  index_t outer = 1, inner = 1;
  for (int i = 0; i < E::rank; ++i) {
    (i < r.axis ? outer : inner) *= i == r.axis ? 1 : in[i];
  }
  if constexpr (linear_possible<K>()) {
    if (k.linear()) {
      backend::reduce_kept<Red>(outer, in[r.axis], inner, LoadLinear<K>{k}, out);
      return;
    }
  }
  backend::reduce_kept<Red>(outer, in[r.axis], inner, LoadIndexed<K>{k, in}, out);
}

/// A GEMM operand for leaf `x` of rank XR (batch axes first: inner XR - 3, outer XR - 4); false
/// when its last two axes are neither row-major nor transposed.
template <class T, int XR>
bool gemm_operand(const Leaf<T, XR>& x, backend::GemmOperand<T>& op) {
  const index_t rows = x.extents[XR - 2], cols = x.extents[XR - 1];
  const index_t sr = x.strides[XR - 2], sc = x.strides[XR - 1];
  op.ptr = x.data;
  op.batch_stride = XR >= 3 && x.extents[XR >= 3 ? XR - 3 : 0] > 1 ? x.strides[XR >= 3 ? XR - 3 : 0] : 0;
  op.outer_stride = XR >= 4 && x.extents[0] > 1 ? x.strides[0] : 0;
  if ((cols == 1 || sc == 1) && (rows == 1 || sr >= cols)) {
    op.trans = false;
    op.ld = rows == 1 ? cols : sr;
    return true;
  }
  if ((rows == 1 || sr == 1) && (cols == 1 || sc >= rows)) {
    op.trans = true;
    op.ld = cols == 1 ? rows : sc;
    return true;
  }
  return false;
}

/// What operand X of a product says about the dtype its values are stored in: a leaf's element
/// type; a cast's target; a view's operand's; an element-wise map's when its operands that compute
/// to the map's own value type (numbers aside) all say the same; a product's GEMM input dtype.
/// `void` when it cannot be told (mixed dtypes, generators, reductions, saved values).
/// @post storage_of_t<X> is void, or compute_t<storage_of_t<X>> == X::value_type.
template <class X>
struct storage_of {
  using type = void;
};
template <class X>
using storage_of_t = typename storage_of<X>::type;

template <class T, int R>
struct storage_of<Leaf<T, R>> {
  using type = T;
};
template <class E, int R>
struct storage_of<Broadcast<E, R>> : storage_of<E> {};
template <class E>
struct storage_of<Permute<E>> : storage_of<E> {};
template <class E, int R>
struct storage_of<Reshape<E, R>> : storage_of<E> {};
template <class E>
struct storage_of<Slice<E>> : storage_of<E> {};
template <class U, class A>
struct storage_of<Map<ops::cast<U>, A>> {
  using type = U;
};

/// An operand of a map that says nothing about storage: a number, or one of another value type
/// (the condition of a where, the operands of a comparison).
struct NoClaim {};
template <class V, class A>
using storage_claim_t =
    std::conditional_t<is_scalar_node<A>::value || !std::is_same_v<typename A::value_type, V>,
                       NoClaim, storage_of_t<A>>;
template <class... S>
struct join_storage {
  using type = NoClaim;
};
template <class S0, class... S>
struct join_storage<S0, S...> {
  using rest = typename join_storage<S...>::type;
  using type = std::conditional_t<
      std::is_same_v<S0, NoClaim>, rest,
      std::conditional_t<std::is_same_v<rest, NoClaim> || std::is_same_v<rest, S0>, S0, void>>;
};
template <class Op, class... A>
struct storage_of<Map<Op, A...>> {
  using joined =
      typename join_storage<storage_claim_t<typename Map<Op, A...>::value_type, A>...>::type;
  using type = std::conditional_t<std::is_same_v<joined, NoClaim>, void, joined>;
};

/// The dtype the GEMM of `matmul(a, b)` reads, from both operands at compile time: the one they
/// are stored in (storage_of) where either says, else their value type. So a half tensor times
/// relu(half tensor), or relu(a) times relu(b) of half tensors, is a half GEMM whose expression
/// operands are evaluated into half; a float tensor times a half tensor is an error.
template <class A, class B>
struct gemm_input_dtype {
  using SA = storage_of_t<A>;
  using SB = storage_of_t<B>;
  static_assert(
      std::is_void_v<SA> || std::is_void_v<SB> || std::is_same_v<SA, SB>,
      "matmul: both operands must have the same dtype (they are stored in different "
      "dtypes, e.g. a float tensor and a half one; convert one with fg::cast<T>(operand))");
  using type =
      std::conditional_t<!std::is_void_v<SA>, SA,
                         std::conditional_t<!std::is_void_v<SB>, SB, typename A::value_type>>;
};
template <class A, class B>
using gemm_input_dtype_t = typename gemm_input_dtype<A, B>::type;

template <class A, class B>
struct storage_of<Matmul<A, B>> {
  using type = gemm_input_dtype_t<A, B>;
};

template <class T, int R, class A, class B>
void run_matmul(Tensor<T, R>& dst, const Matmul<A, B>& mm);

/// Operand x of a GEMM that reads dtype D, planned: a plain or transposed view of D memory is used
/// in place; a product is computed straight into D; anything else is evaluated (one kernel, which
/// converts to D) into a contiguous temporary the plan keeps. `reads` reports whether the operand
/// reads memory in [begin, end).
template <class D, class X>
backend::GemmOperand<D> gemm_input(const X& x, Plan& plan, const void* begin, const void* end,
                                   bool& reads) {
  backend::GemmOperand<D> op;
  if constexpr (is_matmul<X>::value) {
    Tensor<D, X::rank> product(x.shape());
    run_matmul(product, x);
    gemm_operand(plan.keep(std::move(product)), op);
    return op;
  } else {
    auto k = x.prepare(plan);
    using K = decltype(k);
    reads = reads || k.conflicts_with(begin, end, false);
    if constexpr (is_leaf<K>::value) {
      if constexpr (std::is_same_v<typename K::storage_type, D>) {
        if (gemm_operand(k, op)) {
          return op;
        }
      }
    }
    Tensor<D, K::rank> copy(k.shape());
    write(copy, k);
    gemm_operand(plan.keep(std::move(copy)), op);
    return op;
  }
}

/// The GEMM call of `mm` with planned operands a and b (both read as D), into `out` (mm's shape,
/// C order; added to what `out` holds when `accumulate`). A result type the GEMM cannot write
/// itself (float operands into a half tensor) is computed in D's compute type first, then stored
/// (or added) by one kernel.
template <class T, class A, class B, class D>
void gemm_run(T* out, const Matmul<A, B>& mm, const backend::GemmOperand<D>& a,
              const backend::GemmOperand<D>& b, bool accumulate = false) {
  constexpr int R = Matmul<A, B>::rank;
  const auto shape = mm.shape();
  if constexpr (!backend::gemm_writes<D, T>) {
    Tensor<compute_t<D>, R> product(shape);
    gemm_run(product.data(), mm, a, b);
    if (accumulate) {
      Plan plan;
      write(out, shape,
            make_map("add", ops::add{}, Leaf<T, R>(out, shape), product.view()).prepare(plan));
    } else {
      write(out, shape, product.view());
    }
  } else {
    backend::GemmProblem<D, T> p;
    p.batch = R == 4 ? shape[0] * shape[1] : R == 3 ? shape[0] : 1;
    p.inner = R == 4 ? shape[1] : 0;
    p.m = shape[R - 2];
    p.n = shape[R - 1];
    p.k = mm.a.shape()[A::rank - 1];
    p.a = a;
    p.b = b;
    p.c = out;
    p.ldc = p.n;
    p.accumulate = accumulate;
    backend::gemm(p);
  }
}

/// Runs the product `mm` into `out` (mm's shape, C order): one GEMM call. Fresh memory, or, with
/// `accumulate`, memory whose contents the product is added to (GEMM with beta = 1). @pre the
/// operands do not read `out`.
template <class T, class A, class B>
void gemm_into(T* out, const Matmul<A, B>& mm, bool accumulate = false) {
  using D = gemm_input_dtype_t<A, B>;
  Plan plan;
  bool reads = false;
  const auto a = gemm_input<D>(mm.a, plan, nullptr, nullptr, reads);
  const auto b = gemm_input<D>(mm.b, plan, nullptr, nullptr, reads);
  gemm_run(out, mm, a, b, accumulate);
}

/// Runs the product `mm` into dst (shape == mm's), or into a temporary moved into dst when an
/// operand reads dst or dst has another shape: one GEMM call.
template <class T, int R, class A, class B>
void run_matmul(Tensor<T, R>& dst, const Matmul<A, B>& mm) {
  using D = gemm_input_dtype_t<A, B>;
  Plan plan;
  bool reads = false;
  const void* begin = dst.data();
  const void* end = dst.data() + dst.size();
  const auto a = gemm_input<D>(mm.a, plan, begin, end, reads);
  const auto b = gemm_input<D>(mm.b, plan, begin, end, reads);
  const auto out = mm.shape();
  if (!reads && dst.holds(out)) {
    gemm_run(dst.data(), mm, a, b);
    return;
  }
  Tensor<T, R> tmp(out);
  gemm_run(tmp.data(), mm, a, b);
  dst = std::move(tmp);
}

}  // namespace detail

/// Evaluates a reduction into a temporary of the plan (a reduction feeding element-wise work).
template <class Op, class E, int R, class P>
auto materialize(const Reduce<Op, E, R>& r, P& plan) {
  Tensor<typename Reduce<Op, E, R>::value_type, R> t(r.shape());
  Plan inner;
  detail::run_reduce(t.data(), r, r.input.prepare(inner));
  return plan.keep(std::move(t));
}

/// Evaluates a reduction keeping one axis into a temporary of the plan.
template <class Op, class E, class P>
auto materialize(const ReduceKept<Op, E>& r, P& plan) {
  Tensor<typename ReduceKept<Op, E>::value_type, 1> t(r.shape());
  Plan inner;
  detail::run_reduce(t.data(), r, r.input.prepare(inner));
  return plan.keep(std::move(t));
}

/// Evaluates a matrix product into a temporary of the plan.
template <class A, class B, class P>
auto materialize(const Matmul<A, B>& mm, P& plan) {
  Tensor<typename Matmul<A, B>::value_type, Matmul<A, B>::rank> t(mm.shape());
  detail::run_matmul(t, mm);
  return plan.keep(std::move(t));
}

/// Evaluates `e` into dst: one kernel for an element-wise tree (plus one per boundary node in it),
/// one fused map-reduce for a reduction, one GEMM for a matmul. dst takes e's shape; when e reads
/// dst at other indices than it writes, evaluation goes through a temporary.
template <class E>
void assign_to(auto& dst, const E& e) {
  using D = std::remove_cvref_t<decltype(dst)>;
  using T = typename D::element_type;
  auto node = as_node(e);
  using N = decltype(node);
  detail::check_dtype<N, T>();
  const auto shape = node.shape();
  const void* begin = dst.data();
  const void* end = dst.data() + dst.size();
  if constexpr (is_matmul<N>::value) {
    detail::run_matmul(dst, node);
  } else if constexpr (is_reduce<N>::value) {
    using detail::run_reduce;  // and, through ADL, a reduction node's own (nn::BatchMoments)
    Plan plan;
    const auto k = node.input.prepare(plan);
    if (dst.holds(shape) && !k.conflicts_with(begin, end, false)) {
      run_reduce(dst.data(), node, k);
    } else {
      D tmp(shape);
      run_reduce(tmp.data(), node, k);
      dst = std::move(tmp);
    }
  } else {
    Plan plan;
    const auto k = node.prepare(plan);
    if (dst.holds(shape) && !k.conflicts_with(begin, end, true)) {
      detail::write(dst, k);
    } else {
      D tmp(shape);
      detail::write(tmp, k);
      dst = std::move(tmp);
    }
  }
}

/// dst = op(dst, e) in one kernel; e must broadcast to dst's shape.
template <class Op, class E>
void update_in_place(auto& dst, const Op& op, const E& e) {
  using D = std::remove_cvref_t<decltype(dst)>;
  auto rhs = detail::operand_node<E, D>(e);
  static_assert(decltype(rhs)::rank <= D::rank,
                "in-place update: the right-hand side has a higher rank than the tensor");
  const auto s = rhs.shape();
  for (int i = 0; i < decltype(rhs)::rank; ++i) {
    if (s[i] != 1 && s[i] != dst.shape()[i + D::rank - decltype(rhs)::rank]) {
      throw shape_error(std::string(Op::name) + " (in place): shape " + to_string(s) +
                        " does not broadcast to the tensor's shape " + to_string(dst.shape()));
    }
  }
  assign_to(dst, make_map(Op::name, op, dst.view(), rhs));
}

/// Evaluates any expression into a new Tensor of its own dtype and shape.
template <class E>
auto evaluate(const E& e) {
  auto node = as_node(e);
  using N = decltype(node);
  Tensor<typename N::value_type, N::rank> out(node.shape());
  assign_to(out, node);
  return out;
}

/// Evaluates an expression into a new Tensor: `auto t = fg::eval(a * b + 1.f);`
template <tensor_expression E>
auto eval(const E& e) {
  return evaluate(e);
}

}  // namespace fusegrad::inline FG_BACKEND_NS
