// fusegrad/expr/leaf.hpp — Leaf<T, R>: a non-owning strided view of tensor memory, and Scalar<T>.
//
// Views (transpose, permute, slice, reshape of contiguous data, broadcast) of a leaf are leaves
// with other strides: they cost nothing and reach cuBLAS as transpose flags.
#pragma once

#include "fusegrad/expr/node.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

/// A strided view: element `index` lives at `data[sum_i index[i] * strides[i]]`.
template <class T, int R>
struct Leaf : ExprBase<Leaf<T, R>> {
  using value_type = compute_t<T>;
  using storage_type = T;
  static constexpr int rank = R;

  const T* data = nullptr;
  Shape<R> extents;
  Shape<R> strides;  // in elements; 0 on broadcast dimensions

  Leaf() = default;
  Leaf(const T* p, const Shape<R>& shape, const Shape<R>& st) : data(p), extents(shape), strides(st) {}
  Leaf(const T* p, const Shape<R>& shape) : Leaf(p, shape, contiguous_strides(shape)) {}

  Shape<R> shape() const { return extents; }

  FG_HOST_DEVICE index_t offset(const Shape<R>& index) const {
    index_t off = 0;
    FG_UNROLL for (int i = 0; i < R; ++i) { off += index[i] * strides[i]; }
    return off;
  }
  FG_HOST_DEVICE value_type at(const Shape<R>& index) const {
    return static_cast<value_type>(data[offset(index)]);
  }
  FG_HOST_DEVICE value_type at_linear(index_t i) const { return static_cast<value_type>(data[i]); }
  template <int V>
  FG_HOST_DEVICE Lanes<value_type, V> lanes(index_t i) const {
    const Lanes<T, V> raw = load_lanes<V>(data + i);
    Lanes<value_type, V> r;
    FG_UNROLL for (int j = 0; j < V; ++j) { r.v[j] = static_cast<value_type>(raw.v[j]); }
    return r;
  }
  bool lanes_aligned(int lanes) const { return lanes_aligned_ptr(data, lanes); }

  /// Row cursor (node.hpp): one base pointer and the last axis' stride (1, or 0 when broadcast).
  struct Row {
    const T* data;
    index_t stride;
    value_type operator()(index_t j) const { return static_cast<value_type>(data[j * stride]); }
  };
  Row row(const Shape<R>& index) const { return {data + offset(index), strides[R - 1]}; }

  /// True when the elements are in C order with no gaps (size-1 dimensions' strides ignored).
  bool contiguous() const {
    index_t step = 1;
    for (int i = R - 1; i >= 0; --i) {
      if (extents[i] != 1 && strides[i] != step) {
        return false;
      }
      step *= extents[i];
    }
    return true;
  }
  bool linear() const { return contiguous(); }

  template <class Plan>
  Leaf prepare(Plan&) const {
    return *this;
  }

  /// True when this leaf reads memory in [begin, end) other than the element a write of the same
  /// index would touch: an aliasing hazard for `dst = f(this)`. `same_index` says whether the path
  /// from the root reads this leaf at the output's own index.
  bool conflicts_with(const void* begin, const void* end, bool same_index) const {
    if (extents.size() == 0) {
      return false;
    }
    index_t last = 0;
    for (int i = 0; i < R; ++i) {
      last += (extents[i] - 1) * strides[i];
    }
    const auto* lo = reinterpret_cast<const char*>(data);
    const auto* hi = reinterpret_cast<const char*>(data + last + 1);
    if (!(lo < static_cast<const char*>(end) && hi > static_cast<const char*>(begin))) {
      return false;
    }
    return !(same_index && static_cast<const void*>(data) == begin && contiguous());
  }
};

/// A number broadcast to any shape. Rank 0; element-wise maps accept it at any rank.
template <class T>
struct Scalar : ExprBase<Scalar<T>> {
  using value_type = T;
  static constexpr int rank = 0;
  T value{};

  Scalar() = default;
  explicit Scalar(T v) : value(v) {}
  Shape<0> shape() const { return {}; }
  template <int R>
  FG_HOST_DEVICE T at(const Shape<R>&) const {
    return value;
  }
  FG_HOST_DEVICE T at_linear(index_t) const { return value; }
  template <int V>
  FG_HOST_DEVICE Lanes<T, V> lanes(index_t) const {
    Lanes<T, V> r;
    FG_UNROLL for (int j = 0; j < V; ++j) { r.v[j] = value; }
    return r;
  }
  bool lanes_aligned(int) const { return true; }
  bool linear() const { return true; }
  struct Row {
    T value;
    T operator()(index_t) const { return value; }
  };
  template <int R>
  Row row(const Shape<R>&) const {
    return {value};
  }
  template <class Plan>
  Scalar prepare(Plan&) const {
    return *this;
  }
  bool conflicts_with(const void*, const void*, bool) const { return false; }
};

template <class E>
struct is_scalar_node : std::false_type {};
template <class T>
struct is_scalar_node<Scalar<T>> : std::true_type {};

template <class E>
struct is_leaf : std::false_type {};
template <class T, int R>
struct is_leaf<Leaf<T, R>> : std::true_type {};

}  // namespace fusegrad::inline FG_BACKEND_NS
