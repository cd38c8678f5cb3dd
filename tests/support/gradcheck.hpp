// tests/support/gradcheck.hpp — gradients against central finite differences.
//
// check_gradients(what, loss_of, rng, vars...): `loss_of(vars...)` builds a lazy rank-0 loss over
// double tensors. The gradients from fg::grad are compared
//   - with central differences of the loss in double: max|g - fd| <= 1e-6 · max|fd| per variable;
//   - with fg::grad of the same loss built over float copies of the variables:
//     max|g_float - g_double| <= 1e-4 · max|g_double|.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "support/reference.hpp"

namespace fgtest {

/// Relative ∞-norm distance of `got` from `want`, scaled by want's largest magnitude.
inline double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  if (!(diff == diff)) {
    return INFINITY;
  }
  return diff / std::max(scale, 1e-12);
}

template <class T, int R>
std::vector<double> as_doubles(const fg::Tensor<T, R>& t) {
  const auto v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

/// Central differences of f() with respect to up to `max_points` elements of `var` (all of them
/// when it is small), and the positions used.
template <int R>
std::pair<std::vector<double>, std::vector<std::size_t>> finite_differences(
    fg::Tensor<double, R>& var, const std::function<double()>& f, std::mt19937& rng,
    std::size_t max_points = 40) {
  auto values = var.to_vector();
  std::vector<std::size_t> points(values.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    points[i] = i;
  }
  if (points.size() > max_points) {
    std::shuffle(points.begin(), points.end(), rng);
    points.resize(max_points);
  }
  std::vector<double> fd;
  for (std::size_t p : points) {
    const double x = values[p];
    const double h = 5e-6 * std::max(1.0, std::abs(x));
    values[p] = x + h;
    var.copy_from(values);
    const double up = f();
    values[p] = x - h;
    var.copy_from(values);
    const double down = f();
    values[p] = x;
    fd.push_back((up - down) / (2 * h));
  }
  var.copy_from(values);
  return {fd, points};
}

/// A double tensor of shape d, uniform in [lo, hi).
template <int R>
fg::Tensor<double, R> random_double(const Dims& d, std::mt19937& rng, double lo = -1, double hi = 1) {
  return random_tensor<double, R>(d, rng, lo, hi);
}

template <class T, int R>
fg::Tensor<float, R> to_float(const fg::Tensor<T, R>& t) {
  return fg::Tensor<float, R>(fg::cast<float>(t));
}

namespace detail {
template <class LossOf, class Grads, class... Vars, std::size_t... I>
void check_each(const std::string& what, LossOf& loss_of, std::mt19937& rng, const Grads& grads,
                std::tuple<Vars&...> vars, std::index_sequence<I...>) {
  auto f = [&] { return static_cast<double>(loss_of(std::get<I>(vars)...).item()); };
  auto one = [&](auto& var, const auto& g, std::size_t index) {
    const auto [fd, points] = finite_differences(var, f, rng);
    const auto all = as_doubles(g);
    std::vector<double> got;
    for (std::size_t p : points) {
      got.push_back(all[p]);
    }
    INFO(what << ": variable " << index << " of shape " << fg::to_string(var.shape()));
    CHECK(rel_error(got, fd) < 1e-6);
  };
  (one(std::get<I>(vars), std::get<I>(grads), I), ...);
}
}  // namespace detail

/// See the file comment. Variables are double tensors; `loss_of` must be generic over the dtype.
template <class LossOf, int... R>
void check_gradients(const std::string& what, LossOf loss_of, std::mt19937& rng,
                     fg::Tensor<double, R>&... vars) {
  const auto grads = fg::grad(loss_of(vars...), vars...);
  detail::check_each(what, loss_of, rng, grads, std::tuple<fg::Tensor<double, R>&...>(vars...),
                     std::index_sequence_for<fg::Tensor<double, R>...>{});
  // The same loss in float agrees with the double gradients.
  auto floats = std::make_tuple(to_float(vars)...);
  const auto float_grads = std::apply(
      [&](auto&... fv) { return fg::grad(loss_of(fv...), fv...); }, floats);
  auto compare = [&](const auto& gd, const auto& gf, std::size_t index) {
    INFO(what << ": float gradient of variable " << index);
    CHECK(rel_error(as_doubles(gf), as_doubles(gd)) < 1e-4);
  };
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (compare(std::get<I>(grads), std::get<I>(float_grads), I), ...);
  }(std::index_sequence_for<fg::Tensor<double, R>...>{});
}

}  // namespace fgtest
