// tests/test_autodiff.cpp — grad() and value_and_grad(): every differentiable op against central
// finite differences in double (and float against double), on random shapes with size-1 and
// broadcast dimensions and non-contiguous views; the MLP against finite differences and against a
// second formulation; and what the backward pass launches (GEMMs and kernels).
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_autodiff {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;

TEST_CASE("autodiff: unary element-wise ops", "[autodiff][elementwise]") {
  std::mt19937 rng(1101);
  for (int trial = 0; trial < 3; ++trial) {
    const Dims d = fgtest::random_dims<2>(rng, 9);
    INFO("shape " << fgtest::dims_str(d));
    auto x = fgtest::random_double<2>(d, rng, -2, 2);
    auto p = fgtest::random_double<2>(d, rng, 0.2, 3);  // positive: log, sqrt, rsqrt, pow(x, 0.5)
    check_gradients("neg exp sin cos", [](auto& a) { return fg::sum(fg::exp(-a) * fg::sin(a) + fg::cos(a)); }, rng, x);
    check_gradients("tanh sigmoid", [](auto& a) { return fg::sum(fg::tanh(a) * fg::sigmoid(2.0 * a)); }, rng, x);
    check_gradients("relu abs square", [](auto& a) { return fg::sum(fg::sin(fg::relu(a) + fg::abs(a) * fg::square(a))); }, rng, x);
    check_gradients("log log1p sqrt rsqrt", [](auto& a) { return fg::sum(fg::log(a) + fg::log1p(a) * fg::sqrt(a) - fg::rsqrt(a)); }, rng, p);
    check_gradients("pow", [](auto& a) { return fg::sum(fg::pow(a, 3) + fg::pow(a, 0.5) + fg::pow(a, 2) + fg::pow(a, 0)); }, rng, p);
  }
}

TEST_CASE("autodiff: binary ops with broadcasting, numbers on both sides", "[autodiff][elementwise]") {
  std::mt19937 rng(1102);
  for (int trial = 0; trial < 3; ++trial) {
    const index_t m = std::uniform_int_distribution<index_t>(1, 7)(rng);
    const index_t n = std::uniform_int_distribution<index_t>(1, 7)(rng);
    auto a = fgtest::random_double<2>({m, n}, rng);
    auto row = fgtest::random_double<1>({n}, rng);      // broadcast along axis 0 (a leaf with a zero stride)
    auto col = fgtest::random_double<2>({m, 1}, rng);   // size-1 dimension stretched
    auto den = fgtest::random_double<2>({m, n}, rng, 0.5, 2);
    INFO("m " << m << ", n " << n);
    check_gradients("add sub mul", [](auto& x, auto& r, auto& c) {
      return fg::sum(fg::sin((x + r) * c - r * 2.0 + 1.0 - x));
    }, rng, a, row, col);
    check_gradients("div", [](auto& x, auto& d, auto& c) { return fg::sum(fg::sin(x / d + 1.0 / d - c / 3.0)); }, rng, a, den, col);
    check_gradients("maximum minimum", [](auto& x, auto& r) {
      return fg::sum(fg::sin(fg::maximum(x, r) * 2.0 + fg::minimum(x * 0.5, r) + fg::maximum(x, 0.2)));
    }, rng, a, row);
    check_gradients("where and comparisons", [](auto& x, auto& r) {
      return fg::sum(fg::sin(fg::where(x > r, x * r, 2.0 * x) + (x < 0.0) * x));
    }, rng, a, row);
    // A broadcast of an expression (not a leaf): its gradient is summed by a reduction kernel.
    check_gradients("expression broadcast", [](auto& x, auto& r) { return fg::sum(fg::sin(x * fg::exp(r * 0.5))); }, rng, a, row);
  }
}

TEST_CASE("autodiff: reductions over everything, one axis, keepdims", "[autodiff][reduce]") {
  std::mt19937 rng(1103);
  for (int trial = 0; trial < 2; ++trial) {
    const Dims d = fgtest::random_dims<3>(rng, 6);
    INFO("shape " << fgtest::dims_str(d));
    auto x = fgtest::random_double<3>(d, rng, -2, 2);
    check_gradients("sum", [](auto& a) { return fg::sum(fg::sin(fg::sum(a * a, 1))) + fg::sum(a); }, rng, x);
    check_gradients("mean", [](auto& a) { return fg::sum(fg::sin(fg::mean(fg::exp(a), 2, fg::keepdims) * a)) + fg::mean(a); }, rng, x);
    check_gradients("max min", [](auto& a) {
      return fg::sum(fg::sin(fg::max(a, 0))) + fg::sum(fg::cos(fg::min(a, -1, fg::keepdims) + a)) + fg::max(a * 2.0) - fg::min(a);
    }, rng, x);
    check_gradients("logsumexp", [](auto& a) { return fg::sum(fg::sin(fg::logsumexp(a, 1))) + fg::logsumexp(a * 3.0); }, rng, x);
  }
}

TEST_CASE("autodiff: max routes the gradient to the first arg-extremum on ties", "[autodiff][reduce]") {
  auto x = fgtest::tensor_from<double, 2>(fg::Shape<2>({2, 4}), {1, 3, 3, 2, 5, 5, 5, 0});
  auto [g] = fg::grad(fg::sum(fg::max(x, 1)) + fg::min(x), x);
  CHECK(g.to_vector() == std::vector<double>{0, 1, 0, 0, 1, 0, 0, 1});
}

TEST_CASE("autodiff: views of variables and of expressions", "[autodiff][views]") {
  std::mt19937 rng(1104);
  for (int trial = 0; trial < 2; ++trial) {
    const index_t a = std::uniform_int_distribution<index_t>(2, 5)(rng);
    const index_t b = std::uniform_int_distribution<index_t>(1, 5)(rng);
    const index_t c = std::uniform_int_distribution<index_t>(2, 6)(rng);
    INFO("a " << a << ", b " << b << ", c " << c);
    auto x = fgtest::random_double<3>({a, b, c}, rng);
    auto m = fgtest::random_double<2>({c, a}, rng);
    auto v = fgtest::random_double<1>({b}, rng);
    check_gradients("permute of a variable and of an expression", [](auto& t) {
      return fg::sum(fg::sin(fg::permute(t, {2, 0, 1}) * fg::permute(fg::exp(t), {2, 0, 1})));
    }, rng, x);
    check_gradients("transpose", [](auto& s) {
      return fg::sum(fg::sin(fg::transpose(s) * 2.0 + fg::transpose(s * s)));
    }, rng, m);
    check_gradients("reshape", [c](auto& t) {
      return fg::sum(fg::sin(fg::reshape(t, {-1, c}) + fg::reshape(t * 3.0, {-1, c})));
    }, rng, x);
    check_gradients("slice with step (non-contiguous leaf and Slice node)", [c](auto& t) {
      return fg::sum(fg::sin(fg::slice(t, 2, 1, c, 2) * 3.0)) + fg::sum(fg::cos(fg::slice(fg::exp(t), 0, 1, 2)));
    }, rng, x);
    check_gradients("broadcast_to", [a, b](auto& s) {
      return fg::sum(fg::sin(fg::broadcast_to(s, {a, b}) * fg::broadcast_to(fg::exp(s), {a, 1, b})));
    }, rng, v);
    check_gradients("a variable read through several views at once", [](auto& t) {
      return fg::sum(fg::sin(fg::matmul(t, fg::transpose(t)))) + fg::sum(fg::cos(fg::matmul(fg::transpose(t), t)));
    }, rng, m);
  }
}

TEST_CASE("autodiff: cast passes the gradient through, converted", "[autodiff][elementwise]") {
  std::mt19937 rng(1105);
  auto xf = fgtest::random_tensor<float, 1>(Dims{7}, rng, -1, 1);
  auto w = fgtest::random_tensor<double, 1>(Dims{7}, rng, -1, 1);
  auto [g] = fg::grad(fg::sum(fg::cast<double>(xf * 2.f) * w), xf);
  const auto gv = g.to_vector();
  const auto wv = w.to_vector();
  for (std::size_t i = 0; i < gv.size(); ++i) {
    CHECK(gv[i] == static_cast<float>(2 * wv[i]));
  }
  // An integer operand gets nothing and needs nothing.
  auto n = fgtest::random_tensor<int, 1>(Dims{7}, rng, -3, 3);
  auto [gw] = fg::grad(fg::sum(w * fg::cast<double>(n)), w);
  CHECK(gw.to_vector() == std::vector<double>(fg::cast<double>(n).to_vector()));
}

}  // namespace test_autodiff
