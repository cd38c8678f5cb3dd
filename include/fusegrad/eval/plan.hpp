// fusegrad/eval/plan.hpp — Plan: the temporaries of one evaluation, and the functors the backends
// run over a kernel-ready tree.
//
// Planning walks the tree once (node.prepare(plan)): boundary nodes (matmul, reductions feeding
// element-wise work) are evaluated into temporaries the plan owns and replaced by leaves; what is
// left is one element-wise tree, evaluated by one kernel.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// Owns the temporaries of one evaluation until its kernel has been issued (on CUDA, freeing is
/// stream-ordered, so the kernel still sees them).
class Plan {
 public:
  /// Keeps `t` alive for the plan's lifetime and returns a leaf viewing it.
  template <class T, int R>
  Leaf<T, R> keep(Tensor<T, R>&& t) {
    auto owned = std::make_shared<Tensor<T, R>>(std::move(t));
    Leaf<T, R> leaf = owned->view();
    temporaries_.push_back(std::move(owned));
    return leaf;
  }

 private:
  std::vector<std::shared_ptr<void>> temporaries_;
};

namespace detail {

/// out[i] = k.at_linear(i): the fast path, every leaf contiguous with the output's shape. Backends
/// that vectorise call write_lanes(i) for whole steps of `lanes` elements when lanes_aligned().
template <class T, class K>
struct WriteLinear {
  static constexpr int lanes = lanes_for<T>;
  T* out;
  K k;
  FG_HOST_DEVICE void operator()(index_t i) const { out[i] = to_storage<T>(k.at_linear(i)); }
  /// out[i, i + lanes) in one vector store, each leaf read with one vector load.
  FG_HOST_DEVICE void write_lanes(index_t i) const {
    const auto in = detail::lanes_of<lanes>(k, i);
    Lanes<T, lanes> o;
    FG_UNROLL for (int j = 0; j < lanes; ++j) { o.v[j] = to_storage<T>(in.v[j]); }
    store_lanes<lanes>(out + i, o);
  }
  bool lanes_aligned() const { return lanes_aligned_ptr(out, lanes) && detail::lanes_aligned(k, lanes); }
};

/// out[i] = k.at(index): the general path (broadcasts, strided views).
template <class T, class K>
struct WriteIndexed {
  T* out;
  K k;
  template <int R>
  FG_HOST_DEVICE void operator()(const Shape<R>& index, index_t i) const {
    out[i] = to_storage<T>(k.at(index));
  }
  /// The row starting at position i (host backend: launch.hpp).
  template <class C>
  struct Row {
    T* out;
    C in;
    void operator()(index_t j) const { out[j] = to_storage<T>(in(j)); }
  };
  template <int R>
  auto row(const Shape<R>& index, index_t i) const {
    using C = decltype(row_cursor(k, index));
    return Row<C>{out + i, row_cursor(k, index)};
  }
};

/// Element i (C order) of a kernel-ready tree whose leaves are all contiguous.
template <class K>
struct LoadLinear {
  K k;
  FG_HOST_DEVICE typename K::value_type operator()(index_t i) const { return k.at_linear(i); }
};

/// Element i (C order) of any kernel-ready tree of shape `extents`.
template <class K>
struct LoadIndexed {
  K k;
  Shape<K::rank> extents;
  FG_HOST_DEVICE typename K::value_type operator()(index_t i) const {
    Shape<K::rank> index;
    FG_UNROLL for (int d = K::rank - 1; d >= 0; --d) {
      index[d] = i % extents[d];
      i /= extents[d];
    }
    return k.at(index);
  }
  /// Whether a stretch of `len` positions starting at a multiple of len is one row of the last
  /// axis (host backend: reduce.hpp then reads it through row(first)).
  bool rows_along_last_axis(index_t len) const {
    return K::rank >= 1 && len > 0 && extents[K::rank - 1] == len;
  }
  /// The extent of the last axis: the length of a row.
  index_t last_extent() const
    requires(K::rank >= 1)
  {
    return extents[K::rank - 1];
  }
  /// The cursor of the last-axis row that starts at position `first`.
  auto row(index_t first) const
    requires(K::rank >= 1)
  {
    Shape<K::rank> index;
    index[K::rank - 1] = 0;
    first /= extents[K::rank - 1];
    for (int d = K::rank - 2; d >= 0; --d) {
      index[d] = first % extents[d];
      first /= extents[d];
    }
    return row_cursor(k, index);
  }
};

}  // namespace detail

}  // namespace fusegrad::inline FG_BACKEND_NS
