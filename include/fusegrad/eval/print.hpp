// fusegrad/eval/print.hpp — `std::cout << tensor`: shape, dtype and values, abridged like NumPy
// (first and last 3 entries of each axis) when the tensor has more than 1000 elements.
#pragma once

#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "fusegrad/eval/assign.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {

inline constexpr index_t print_threshold = 1000;
inline constexpr index_t print_edge = 3;

template <class T>
std::string format_value(const T& v) {
  std::ostringstream s;
  if constexpr (std::is_same_v<T, bool>) {
    s << (v ? "true" : "false");
  } else if constexpr (std::is_floating_point_v<compute_t<T>>) {
    s.precision(6);
    s << static_cast<compute_t<T>>(v);
  } else {
    s << static_cast<long long>(v);
  }
  return s.str();
}

template <class T, int R>
void print_axis(std::ostream& os, const std::vector<T>& v, const Shape<R>& shape, int axis, index_t offset,
                bool abridge) {
  if constexpr (R == 0) {
    os << format_value(v[0]);
  } else {
    const index_t n = shape[axis];
    index_t step = 1;
    for (int i = axis + 1; i < R; ++i) {
      step *= shape[i];
    }
    os << '[';
    for (index_t i = 0; i < n; ++i) {
      if (abridge && n > 2 * print_edge && i == print_edge) {
        os << (axis == R - 1 ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(axis) + 1, ' '));
        i = n - print_edge - 1;
        continue;
      }
      if (axis == R - 1) {
        os << format_value(v[offset + i]);
      } else {
        print_axis(os, v, shape, axis + 1, offset + i * step, abridge);
      }
      if (i + 1 < n) {
        os << (axis == R - 1 ? ", " : ",\n" + std::string(static_cast<std::size_t>(axis) + 1, ' '));
      }
    }
    os << ']';
  }
}

}  // namespace detail

/// Prints `tensor(shape=[2, 3], dtype=float32)` and the values, nested by axis.
template <class T, int R>
std::ostream& operator<<(std::ostream& os, const Tensor<T, R>& t) {
  os << "tensor(shape=" << to_string(t.shape()) << ", dtype=" << dtype_traits<T>::name << ")\n";
  detail::print_axis(os, t.to_vector(), t.shape(), 0, 0, t.size() > detail::print_threshold);
  return os;
}

/// Prints an expression's value (evaluating it).
template <expression_node E>
std::ostream& operator<<(std::ostream& os, const E& e) {
  return os << evaluate(e);
}

}  // namespace fusegrad::inline FG_BACKEND_NS
