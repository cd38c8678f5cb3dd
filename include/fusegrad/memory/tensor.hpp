// fusegrad/memory/tensor.hpp — Tensor<T, R>: an owning, contiguous (C order) tensor in device
// memory, of rank R fixed at compile time.
//
// Copying a Tensor copies its elements; moving is free. Assigning an expression evaluates it in
// one fused kernel (see eval/assign.hpp); `+=`, `-=`, `*=`, `/=` fuse the same way.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fusegrad/backend/backend.hpp"
#include "fusegrad/expr/map.hpp"
#include "fusegrad/ops/arith.hpp"
#include "fusegrad/memory/buffer.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {
/// out[i] = value for i in [0, n).
template <class T>
struct Fill {
  static constexpr int lanes = lanes_for<T>;
  T* out;
  T value;
  FG_HOST_DEVICE void operator()(index_t i) const { out[i] = value; }
  FG_HOST_DEVICE void write_lanes(index_t i) const {
    Lanes<T, lanes> o;
    FG_UNROLL for (int j = 0; j < lanes; ++j) { o.v[j] = value; }
    store_lanes<lanes>(out + i, o);
  }
  bool lanes_aligned() const { return lanes_aligned_ptr(out, lanes); }
};
}  // namespace detail

template <class E>
void assign_to(auto& dst, const E& e);
template <class Op, class E>
void update_in_place(auto& dst, const Op& op, const E& e);

/// Owning tensor. `Tensor<float, 2> t({3, 4});` allocates a 3x4 tensor with unspecified contents
/// (like torch.empty); `Tensor<float, 2> c = a * 2.f + b;` evaluates an expression.
template <class T, int R>
class Tensor {
  static_assert(dtype<T>, "Tensor: the element type must be float, double, int32, int64, uint8, "
                          "bool, or (on CUDA) half or bfloat16");
  static_assert(R >= 0 && R <= max_rank, "Tensor: rank must be between 0 and 6");

 public:
  using element_type = T;
  using value_type = compute_t<T>;
  static constexpr int rank = R;

  /// An empty tensor (every extent 0); a rank-0 tensor holds its one element, unspecified.
  Tensor() : buffer_(R == 0 ? 1 : 0) {}
  /// A tensor of the given shape, contents unspecified.
  explicit Tensor(const Shape<R>& shape) : shape_(checked(shape)), buffer_(shape.size()) {}
  /// `Tensor<float, 2> t({3, 4});` — the rank is checked against the braced list.
  template <std::size_t N>
    requires(N == static_cast<std::size_t>(R))
  explicit Tensor(const index_t (&shape)[N]) : Tensor(Shape<R>(shape)) {}
  /// Evaluates `e` (any expression of the same rank) into a new tensor.
  template <tensor_expression E>
    requires(!std::is_same_v<std::remove_cvref_t<E>, Tensor>)
  Tensor(const E& e) {  // NOLINT: implicit, so that `Tensor<float, 2> c = a + b;` reads naturally
    check_rank<E>();
    if constexpr (node_t<E>::rank == R) {  // after a failed check, no cascade of errors
      assign_to(*this, e);
    }
  }
  Tensor(const Tensor& other) : shape_(other.shape_), buffer_(other.buffer_.size()) {
    backend::copy_on_device(data(), other.data(), buffer_.bytes());
  }
  /// Moving leaves `other` empty (every extent 0, no elements).
  Tensor(Tensor&& other) noexcept
      : shape_(std::exchange(other.shape_, Shape<R>{})), buffer_(std::move(other.buffer_)) {}
  Tensor& operator=(const Tensor& other) {
    if (this != &other) {
      if (buffer_.size() != other.buffer_.size()) {
        buffer_ = Buffer<T>(other.buffer_.size());
      }
      shape_ = other.shape_;
      backend::copy_on_device(data(), other.data(), buffer_.bytes());
    }
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    shape_ = std::exchange(other.shape_, Shape<R>{});
    buffer_ = std::move(other.buffer_);
    return *this;
  }

  /// Evaluates `e` into this tensor (reallocating if the shape differs). `a = a * 2 + b` is safe;
  /// an expression that reads this tensor at other indices (`a = transpose(a)`) goes through a
  /// temporary.
  template <tensor_expression E>
    requires(!std::is_same_v<std::remove_cvref_t<E>, Tensor>)
  Tensor& operator=(const E& e) {
    check_rank<E>();
    if constexpr (node_t<E>::rank == R) {
      assign_to(*this, e);
    }
    return *this;
  }

  /// In-place updates; `e` must broadcast to this tensor's shape. One fused kernel each.
  template <operand E>
  Tensor& operator+=(const E& e) { update_in_place(*this, ops::add{}, e); return *this; }
  template <operand E>
  Tensor& operator-=(const E& e) { update_in_place(*this, ops::sub{}, e); return *this; }
  template <operand E>
  Tensor& operator*=(const E& e) { update_in_place(*this, ops::mul{}, e); return *this; }
  template <operand E>
  Tensor& operator/=(const E& e) { update_in_place(*this, ops::div{}, e); return *this; }

  const Shape<R>& shape() const { return shape_; }
  index_t shape(int axis) const { return shape_[normalize_axis("shape", axis, R, to_string(shape_))]; }
  index_t size() const { return buffer_.size(); }
  /// Device pointer to the first element (C order).
  T* data() { return buffer_.data(); }
  const T* data() const { return buffer_.data(); }

  /// A non-owning view for use in expressions.
  Leaf<T, R> view() const { return Leaf<T, R>(buffer_.data(), shape_); }

  /// Copies the elements to the host, in C order.
  std::vector<T> to_vector() const {
    if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> has no contiguous storage
      std::unique_ptr<bool[]> staged(new bool[static_cast<std::size_t>(size())]);
      backend::copy_to_host(staged.get(), data(), buffer_.bytes());
      return std::vector<bool>(staged.get(), staged.get() + size());
    } else {
      std::vector<T> out(static_cast<std::size_t>(size()));
      backend::copy_to_host(out.data(), data(), buffer_.bytes());
      return out;
    }
  }

  /// The value of a one-element tensor (any rank); shape_error otherwise.
  T item() const {
    if (size() != 1) {
      throw shape_error("item: needs exactly one element, but the tensor has shape " +
                        to_string(shape_) + " (" + std::to_string(size()) + " elements)");
    }
    T out;
    backend::copy_to_host(&out, data(), sizeof(T));
    return out;
  }

  /// Copies `host` (C order, exactly size() elements) into the tensor.
  void copy_from(std::span<const T> host) {
    if (static_cast<index_t>(host.size()) != size()) {
      throw shape_error("copy_from: " + std::to_string(host.size()) +
                        " host elements do not fill a tensor of shape " + to_string(shape_) + " (" +
                        std::to_string(size()) + " elements)");
    }
    backend::copy_to_device(data(), host.data(), buffer_.bytes());
  }

  /// Sets every element to `value`, in place: one kernel, and the storage keeps its address (what a
  /// running sum in a compiled step needs: reset it with `fill`, never by assigning a new tensor).
  /// Example: `loss_sum.fill(0.f);`
  void fill(const value_type& value) {
    backend::for_each_linear(size(), detail::Fill<T>{data(), to_storage<T>(value)});
  }

  /// Moves the elements into a tensor of `shape` (same element count, C order; no copy) and leaves
  /// this one empty. Example: `fg::Tensor<float, 2> m = std::move(flat).reshaped(fg::Shape<2>({3, 4}));`
  template <int R2>
  Tensor<T, R2> reshaped(const Shape<R2>& shape) && {
    if (shape.size() != buffer_.size()) {
      throw shape_error("reshaped: cannot move " + to_string(shape_) + " (" + std::to_string(size()) +
                        " elements) into shape " + to_string(shape));
    }
    Tensor<T, R2> out;
    out.shape_ = Tensor<T, R2>::checked(shape);
    out.buffer_ = std::move(buffer_);
    shape_ = Shape<R>{};
    return out;
  }

  /// Makes this tensor `shape` (contents unspecified), keeping the storage when the element count
  /// is unchanged.
  void resize(const Shape<R>& shape) {
    checked(shape);
    if (shape.size() != buffer_.size()) {
      buffer_ = Buffer<T>(shape.size());
    }
    shape_ = shape;
  }

  /// True when this tensor has exactly `shape` and the storage for it (false for an empty,
  /// moved-from or default rank-0 tensor): what in-place evaluation needs.
  bool holds(const Shape<R>& shape) const { return shape_ == shape && buffer_.size() == shape.size(); }

 private:
  template <class, int>
  friend class Tensor;

  static const Shape<R>& checked(const Shape<R>& shape) {
    index_t count = 1;
    for (int i = 0; i < R; ++i) {
      if (shape[i] < 0) {
        throw shape_error("Tensor: negative extent in shape " + to_string(shape));
      }
      if (__builtin_mul_overflow(count, shape[i], &count)) {
        throw shape_error("Tensor: shape " + to_string(shape) +
                          " has more elements than an int64 can count");
      }
    }
    return shape;
  }
  template <class E>
  static constexpr void check_rank() {
    static_assert(node_t<E>::rank == R,
                  "Tensor assignment: the expression's rank differs from the tensor's rank "
                  "(reshape, reduce or broadcast_to the expression first)");
  }

  Shape<R> shape_;
  Buffer<T> buffer_;
};

/// A tensor of `shape` holding a copy of `host` (C order).
/// Example: `auto t = fg::from_host<float>({37, 53}, std::span<const float>(v));`
template <dtype T, int R>
Tensor<T, R> from_host(const Shape<R>& shape, std::span<const T> host) {
  Tensor<T, R> t(shape);
  t.copy_from(host);
  return t;
}
template <dtype T, std::size_t N>
Tensor<T, static_cast<int>(N)> from_host(const index_t (&shape)[N], std::span<const T> host) {
  return from_host<T>(Shape<static_cast<int>(N)>(shape), host);
}

}  // namespace fusegrad::inline FG_BACKEND_NS
