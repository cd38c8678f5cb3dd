// fusegrad/autodiff/accumulate.hpp — where gradients land: the sum of every contribution to a
// saved node or to a variable (GradSink), each contribution evaluated in as few kernels as possible.
//
// A variable is read in an expression through leaves: the tensor itself, or views of it
// (broadcast, transposed, permuted, sliced, reshaped). A contribution `g` arrives in the leaf's
// shape and goes back through the view:
//   - axes the leaf broadcasts (stride 0) are summed away (one reduction kernel);
//   - a leaf that is the variable in C order (any reshape of it included) takes g as it is: one
//     kernel, or the GEMM itself when g is a matrix product;
//   - a transposed matrix view takes a product's transpose as another GEMM (Bᵀ Aᵀ), no copy;
//   - any other view (a slice, a permutation) scatters g into the variable's gradient, which
//     starts at zero where the view does not reach.
#pragma once

#include "fusegrad/autodiff/nodes.hpp"
#include "fusegrad/eval/reduce_axes.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

/// out[offset of index] (+)= k.at(index): g written back through a view's strides.
template <class T, class K>
struct ScatterWrite {
  T* out;
  K k;
  Shape<K::rank> strides;
  bool add;
  template <int R>
  FG_HOST_DEVICE void operator()(const Shape<R>& index, index_t) const {
    index_t offset = 0;
    FG_UNROLL for (int i = 0; i < R; ++i) { offset += index[i] * strides[i]; }
    const T v = to_storage<T>(k.at(index));
    out[offset] = add ? to_storage<T>(out[offset] + v) : v;
  }
};

}  // namespace detail

/// dst = g when no gradient has arrived yet (one kernel, or the GEMM itself), else dst += g: a
/// product is added by the GEMM itself (beta = 1); anything else is evaluated into a temporary,
/// then added (every later arrival costs one kernel more, but compiles no second kernel for g).
/// `has` records whether dst holds a gradient.
template <class T, int R, class G>
void accumulate(Tensor<T, R>& dst, bool& has, const G& g) {
  if (!has) {
    dst = g;
    has = true;
  } else if constexpr (is_matmul<G>::value) {
    detail::gemm_into(dst.data(), g, /*accumulate*/ true);  // the GEMM adds it: no second kernel
  } else {
    const Tensor<T, R> more = g;
    dst += more;
  }
}

/// Where the gradient of one variable accumulates: the variable's memory and shape, and the sum of
/// every contribution so far, kept flat (C order) so that one type serves variables of any rank.
/// A variable is a tensor gradients were asked for, or the value of a recorded Var (autodiff/var.hpp).
template <class T>
struct GradSink {
  const T* data = nullptr;  // the variable's first element
  index_t size = 0;         // its element count
  int rank = 0;
  Shape<max_rank> dims;     // its extents (the first `rank`)
  Tensor<T, 1> grad;        // the gradient so far, flat; valid when `has`
  bool has = false;

  GradSink() = default;
  template <int R>
  GradSink(const T* p, const Shape<R>& shape) : data(p), size(shape.size()), rank(R) {
    for (int i = 0; i < R; ++i) {
      dims[i] = shape[i];
    }
  }
  /// True when a leaf starting at `p` reads this variable's elements.
  bool contains(const void* p) const {
    const auto* c = static_cast<const char*>(p);
    const auto* begin = reinterpret_cast<const char*>(data);
    return size > 0 && c >= begin && c < begin + size * static_cast<index_t>(sizeof(T));
  }
  /// Forgets the gradient (before another backward pass over a retained graph).
  void reset() {
    grad = Tensor<T, 1>();
    has = false;
  }
  /// The gradient as a tensor of the variable's shape (zeros when nothing arrived); the sink is
  /// left empty. One fill kernel for zeros, no copy otherwise.
  template <int R>
  Tensor<T, R> take(const Shape<R>& shape) {
    if (!has) {
      grad = Tensor<T, 1>(Shape<1>({size}));
      backend::for_each_linear(size, detail::Fill<T>{grad.data(), T(0)});
    }
    has = false;
    return std::move(grad).reshaped(shape);
  }
};

/// Adds `g` (contiguous, C order) to `grad`, the flat gradient of a variable of `n` elements,
/// through a view that starts at element `base` and steps by `strides`. A gradient that holds
/// nothing yet starts at zero, unless the view writes each of its elements exactly once.
/// Compiled once per dtype and leaf rank, whatever expression produced g.
template <class T, int RL>
void scatter_into_variable(index_t n, Tensor<T, 1>& grad, bool& has, index_t base,
                           const Leaf<T, RL>& g, const Shape<RL>& strides) {
  index_t last = 0;  // offset of the view's last element
  for (int i = 0; i < RL; ++i) {
    last += (g.extents[i] - 1) * strides[i];
  }
  const bool covers = base == 0 && g.extents.size() == n && last == n - 1;
  bool add = has;
  if (!has) {
    grad = Tensor<T, 1>(Shape<1>({n}));
    if (!covers) {
      backend::for_each_linear(n, detail::Fill<T>{grad.data(), T(0)});
      add = true;
    }
  }
  backend::for_each_index(g.extents,
                          detail::ScatterWrite<T, Leaf<T, RL>>{grad.data() + base, g, strides, add});
  has = true;
}

/// Writes g, the gradient of a leaf of shape `extents`, summed over the axes in `mask`, into `out`
/// (fresh memory) in C order of the kept axes: one kernel, or the GEMM itself when g is a product
/// and nothing is summed. Compiled once per leaf rank and g, whatever variable the leaf views.
template <class T, int RL, class G>
void stage_gradient(T* out, const Shape<RL>& extents, unsigned mask, const G& g) {
  if constexpr (is_matmul<G>::value) {
    if (mask == 0) {
      detail::gemm_into(out, g);
      return;
    }
  }
  if (mask == 0) {
    Plan plan;
    detail::write(out, extents, g.prepare(plan));
  } else {
    detail::sum_axes_into(out, g, extents, mask);
  }
}

/// Adds the gradient `g` of a leaf that views the memory of `sink`'s variable to the sink.
/// @pre sink.contains(leaf.data)
template <class T, int RL, class G>
void accumulate_into_sink(GradSink<T>& sink, const Leaf<T, RL>& leaf, const G& g) {
  static_assert(G::rank == RL, "autodiff: a leaf's gradient has the leaf's rank");
  const index_t base = leaf.data - sink.data;
  // Axes the leaf broadcasts are summed away; the kept axes, with their strides, say where each
  // remaining element of g goes.
  unsigned mask = 0;
  Shape<RL> kept_extents = leaf.extents;
  index_t kept_size = 1;
  bool c_order = true;  // the kept axes walk the variable's memory in C order from its first element
  index_t step = 1;
  for (int i = RL - 1; i >= 0; --i) {
    if (leaf.extents[i] == 1) {
      continue;
    }
    if (leaf.strides[i] == 0) {
      mask |= 1u << i;
      kept_extents[i] = 1;
      continue;
    }
    kept_size *= leaf.extents[i];
    c_order = c_order && leaf.strides[i] == step;
    step *= leaf.extents[i];
  }
  const bool dense = base == 0 && c_order && kept_size == sink.size;

  if constexpr (is_matmul<G>::value) {
    if (dense && sink.has && mask == 0) {  // added by the GEMM itself (beta = 1)
      detail::gemm_into(sink.grad.data(), g, /*accumulate*/ true);
      return;
    }
  }
  if constexpr (RL == 2 && is_matmul<G>::value) {
    const bool transposed = sink.rank == 2 && base == 0 && mask == 0 &&
                            leaf.extents[0] == sink.dims[1] && leaf.extents[1] == sink.dims[0] &&
                            (leaf.extents[0] == 1 || leaf.strides[0] == 1) &&
                            (leaf.extents[1] == 1 || leaf.strides[1] == leaf.extents[0]);
    if (transposed) {  // (A B)ᵀ = Bᵀ Aᵀ, straight from the GEMM into (or onto) the gradient
      if (!sink.has) {
        sink.grad = Tensor<T, 1>(Shape<1>({sink.size}));
      }
      detail::gemm_into(sink.grad.data(), matmul(transpose(g.b), transpose(g.a)), sink.has);
      sink.has = true;
      return;
    }
  }
  // g is evaluated once: into the gradient itself when that is where it belongs and nothing is
  // there yet; else into a temporary that is added or scattered (compiled once per dtype and rank).
  if (dense && !sink.has) {
    sink.grad = Tensor<T, 1>(Shape<1>({sink.size}));
    stage_gradient(sink.grad.data(), leaf.extents, mask, g);
    sink.has = true;
    return;
  }
  Tensor<T, 1> staged(Shape<1>({kept_size}));
  stage_gradient(staged.data(), leaf.extents, mask, g);
  if (dense) {
    sink.grad += staged.view();
  } else {
    scatter_into_variable(sink.size, sink.grad, sink.has, base, Leaf<T, RL>(staged.data(), kept_extents),
                          leaf.strides);
  }
}

}  // namespace fusegrad::inline FG_BACKEND_NS
