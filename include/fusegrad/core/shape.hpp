// fusegrad/core/shape.hpp — Shape<R>: extents of a rank-R tensor, row-major strides, and the
// NumPy broadcasting rule.
//
// Shapes are small device-copyable value types (a plain array, no std::array) so nodes holding them
// can be passed to a kernel by value.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"

namespace fusegrad {

/// Extents (or strides) of a rank-R tensor. `Shape<2> s({3, 4});` — rank from the braced list.
template <int R>
struct Shape {
  static_assert(R >= 0 && R <= max_rank, "Shape: rank must be between 0 and 6");
  static constexpr int rank = R;
  index_t d[R > 0 ? R : 1] = {};

  constexpr Shape() = default;
  template <std::size_t N>
    requires(N == static_cast<std::size_t>(R))
  constexpr Shape(const index_t (&dims)[N]) {  // NOLINT: braced shapes convert implicitly
    for (int i = 0; i < R; ++i) {
      d[i] = dims[i];
    }
  }

  /// `Shape<2>{3, 4}`, and so `Tensor<float, 2> t({3, 4})`.
  template <class... I>
    requires(sizeof...(I) == static_cast<std::size_t>(R) && R > 0 && (std::is_integral_v<I> && ...))
  constexpr Shape(I... dims) : d{static_cast<index_t>(dims)...} {}  // NOLINT: implicit on purpose

  FG_HOST_DEVICE constexpr index_t& operator[](int i) { return d[i]; }
  FG_HOST_DEVICE constexpr const index_t& operator[](int i) const { return d[i]; }

  /// Number of elements: the product of the extents (1 for rank 0).
  FG_HOST_DEVICE constexpr index_t size() const {
    index_t n = 1;
    for (int i = 0; i < R; ++i) {
      n *= d[i];
    }
    return n;
  }

  friend constexpr bool operator==(const Shape& a, const Shape& b) {
    for (int i = 0; i < R; ++i) {
      if (a.d[i] != b.d[i]) {
        return false;
      }
    }
    return true;
  }
};

/// s[axis] for an axis known only at run time, as an unrolled select: indexing a register array
/// with a run-time value would move it to local memory in a CUDA kernel.
template <int R>
FG_HOST_DEVICE constexpr index_t axis_value(const Shape<R>& s, int axis) {
  index_t v = 0;
  FG_UNROLL for (int i = 0; i < R; ++i) { v = i == axis ? s[i] : v; }
  return v;
}

/// s with s[axis] = v, for an axis known only at run time (see axis_value).
template <int R>
FG_HOST_DEVICE constexpr void set_axis_value(Shape<R>& s, int axis, index_t v) {
  FG_UNROLL for (int i = 0; i < R; ++i) { s[i] = i == axis ? v : s[i]; }
}

/// "[3, 4]" — how shapes appear in every error message.
template <int R>
std::string to_string(const Shape<R>& s) {
  std::string out = "[";
  for (int i = 0; i < R; ++i) {
    out += (i ? ", " : "") + std::to_string(s[i]);
  }
  return out + "]";
}

/// Row-major (C order) strides, in elements, of a contiguous tensor of shape `s`.
template <int R>
constexpr Shape<R> contiguous_strides(const Shape<R>& s) {
  Shape<R> st;
  index_t step = 1;
  for (int i = R - 1; i >= 0; --i) {
    st[i] = step;
    step *= s[i];
  }
  return st;
}

/// NumPy broadcasting of two shapes, aligned at the right.
/// @post result[i] = max(a', b') where a', b' are the right-aligned extents (missing = 1), and
///       every extent of a and b is 1 or equal to the result's. Otherwise throws shape_error naming
///       `op` and both shapes.
template <int RA, int RB>
Shape<(RA > RB ? RA : RB)> broadcast_shapes(const char* op, const Shape<RA>& a, const Shape<RB>& b) {
  constexpr int R = RA > RB ? RA : RB;
  Shape<R> out;
  for (int i = 0; i < R; ++i) {
    const int ia = i - (R - RA);
    const int ib = i - (R - RB);
    const index_t ea = ia >= 0 ? a[ia] : 1;
    const index_t eb = ib >= 0 ? b[ib] : 1;
    if (ea != eb && ea != 1 && eb != 1) {
      throw shape_error(std::string(op) + ": shapes " + to_string(a) + " and " + to_string(b) +
                        " do not broadcast");
    }
    out[i] = ea == 1 ? eb : ea;
  }
  return out;
}

/// Checks that `from` broadcasts to exactly `to` (used by broadcast_to and by assignment).
template <int RF, int RT>
void check_broadcastable(const char* op, const Shape<RF>& from, const Shape<RT>& to) {
  static_assert(RF <= RT, "broadcast_to: the target rank must be at least the operand's rank");
  for (int i = 0; i < RF; ++i) {
    const index_t e = from[i];
    const index_t t = to[i + RT - RF];
    if (e != t && e != 1) {
      throw shape_error(std::string(op) + ": shape " + to_string(from) + " cannot broadcast to " +
                        to_string(to));
    }
  }
}

/// Converts a negative axis (-1 = last) and checks it; throws shape_error naming `op`.
inline int normalize_axis(const char* op, int axis, int rank, const std::string& shape_text) {
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw shape_error(std::string(op) + ": axis " + std::to_string(axis) +
                      " is out of range for shape " + shape_text + " (rank " +
                      std::to_string(rank) + ")");
  }
  return a;
}

}  // namespace fusegrad
