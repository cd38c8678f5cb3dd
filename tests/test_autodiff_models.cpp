// tests/test_autodiff_models.cpp — grad() through matrix products, the softmax family and losses,
// and the MLP: against central finite differences (double) and float against double, the MLP also
// against a second formulation; and what the backward pass launches (GEMMs and kernels).
// (Split from test_autodiff.cpp so the two compile in parallel.)
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_autodiff_models {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;

TEST_CASE("autodiff: matmul, transposed operands, batches and shared matrices", "[autodiff][matmul]") {
  std::mt19937 rng(1106);
  for (int trial = 0; trial < 2; ++trial) {
    std::uniform_int_distribution<index_t> e(1, 6);
    const index_t bt = e(rng) + 1, m = e(rng), k = e(rng), n = e(rng);
    INFO("batch " << bt << ", m " << m << ", k " << k << ", n " << n);
    auto a = fgtest::random_double<2>({m, k}, rng);
    auto b = fgtest::random_double<2>({k, n}, rng);
    auto bT = fgtest::random_double<2>({n, k}, rng);
    auto a3 = fgtest::random_double<3>({bt, m, k}, rng);
    auto b3 = fgtest::random_double<3>({bt, k, n}, rng);
    auto one3 = fgtest::random_double<3>({1, k, n}, rng);
    check_gradients("2-D", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(x, y))); }, rng, a, b);
    check_gradients("transposed operand", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(x, fg::transpose(y)))); }, rng, a, bT);
    check_gradients("expression operands", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(fg::tanh(x), y * 2.0))); }, rng, a, b);
    check_gradients("batched", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(x, y))); }, rng, a3, b3);
    check_gradients("batch @ shared matrix", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(x, y))); }, rng, a3, b);
    check_gradients("shared matrix @ batch", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(x, y))); }, rng, a, b3);
    check_gradients("batch extent 1 broadcast", [](auto& x, auto& y) { return fg::sum(fg::sin(fg::matmul(x, y))); }, rng, a3, one3);
    check_gradients("non-GEMM-able operand view", [](auto& x, auto& y) {
      return fg::sum(fg::sin(fg::matmul(fg::permute(x, {1, 0, 2}), fg::slice(y, 0, 0, 1))));
    }, rng, a3, b3);
  }
}

TEST_CASE("autodiff: softmax family and losses", "[autodiff][nn]") {
  std::mt19937 rng(1107);
  const index_t n = 6, c = 5;
  auto z = fgtest::random_double<2>({n, c}, rng, -3, 3);
  auto t = fgtest::random_double<2>({n, c}, rng);
  std::vector<int> lv(static_cast<std::size_t>(n));
  for (auto& l : lv) {
    l = std::uniform_int_distribution<int>(0, static_cast<int>(c) - 1)(rng);
  }
  const auto labels = fgtest::tensor_from<int, 1>(fg::Shape<1>({n}), lv);
  check_gradients("log_softmax", [](auto& x) { return fg::sum(fg::sin(fg::nn::log_softmax(x))); }, rng, z);
  check_gradients("softmax over axis 0", [](auto& x) { return fg::sum(fg::sin(fg::nn::softmax(x, 0) * 3.0)); }, rng, z);
  check_gradients("cross_entropy", [&](auto& x) { return fg::mean(fg::nn::cross_entropy(x, labels)); }, rng, z);
  check_gradients("cross_entropy of an expression", [&](auto& x) { return fg::sum(fg::nn::cross_entropy(x * x, labels)); }, rng, z);
  check_gradients("mse", [](auto& x, auto& y) { return fg::mean(fg::nn::mse(x, y)); }, rng, z, t);
  check_gradients("mse against one_hot", [&](auto& x) { return fg::mean(fg::nn::mse(fg::sigmoid(x), fg::nn::one_hot<double>(labels, c))); }, rng, z);
  check_gradients("cross_entropy with label smoothing", [&](auto& x) { return fg::mean(fg::nn::cross_entropy(x, labels, 0.1)); }, rng, z);
  check_gradients("label smoothing 1 of an expression", [&](auto& x) { return fg::sum(fg::nn::cross_entropy(x * x, labels, 1.0)); }, rng, z);
}

TEST_CASE("autodiff: label smoothing against -Σ target · log_softmax, and its errors", "[autodiff][nn]") {
  std::mt19937 rng(1109);
  const index_t n = 7, c = 6;
  auto z = fgtest::random_double<2>({n, c}, rng, -4, 4);
  auto labels = fgtest::random_tensor<int, 1>(Dims{n}, rng, 0, static_cast<double>(c - 1));
  const auto zv = z.to_vector();
  const auto lv = labels.to_vector();
  for (const double eps : {0.0, 0.1, 0.35, 1.0}) {
    INFO("label smoothing " << eps);
    // The reference: the loss of each row from its definition, in double.
    std::vector<double> want(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      double m = -1e300, s = 0;
      for (index_t k = 0; k < c; ++k) {
        m = std::max(m, zv[static_cast<std::size_t>(i * c + k)]);
      }
      for (index_t k = 0; k < c; ++k) {
        s += std::exp(zv[static_cast<std::size_t>(i * c + k)] - m);
      }
      for (index_t k = 0; k < c; ++k) {
        const double target = (k == lv[static_cast<std::size_t>(i)] ? 1 - eps : 0) + eps / static_cast<double>(c);
        want[static_cast<std::size_t>(i)] -= target * (zv[static_cast<std::size_t>(i * c + k)] - m - std::log(s));
      }
    }
    fg::Tensor<double, 1> got = fg::nn::cross_entropy(z, labels, eps);
    CHECK(fgtest::rel_error(got.to_vector(), want) < 1e-13);
    fg::Tensor<float, 1> got_float = fg::nn::cross_entropy(fgtest::to_float(z), labels, eps);
    CHECK(fgtest::rel_error(fgtest::as_doubles(got_float), want) < 1e-5);
    // A different tree for the same loss: the same gradient.
    const auto target = (1 - eps) * fg::nn::one_hot<double>(labels, c) + eps / static_cast<double>(c);
    const auto [g] = fg::grad(fg::mean(fg::nn::cross_entropy(z, labels, eps)), z);
    const auto [h] = fg::grad(-fg::mean(fg::sum(fg::nn::log_softmax(z) * target, 1)), z);
    CHECK(fgtest::rel_error(fgtest::as_doubles(g), fgtest::as_doubles(h)) < 1e-12);
  }
  for (const double bad : {-0.1, 1.5, std::nan("")}) {
    const auto msg = fgtest::thrown_message<fg::error>([&] { (void)fg::nn::cross_entropy(z, labels, bad); });
    CHECK(fgtest::contains(msg, "cross_entropy: label_smoothing must be in [0, 1], got"));
  }
}

TEST_CASE("autodiff: cross_entropy is stable for huge logits", "[autodiff][nn]") {
  auto z = fgtest::tensor_from<float, 2>(fg::Shape<2>({2, 3}), {1000.f, 0.f, -1000.f, 50.f, 60.f, 70.f});
  auto y = fgtest::tensor_from<int, 1>(fg::Shape<1>({2}), {0, 0});
  auto [value, grads] = fg::value_and_grad(fg::sum(fg::nn::cross_entropy(z, y)), z);
  CHECK(std::abs(value.item() - 20.f) < 1e-3f);  // row 0: 0; row 1: 70 - 50 + log(1 + e^-10 + e^-20)
  auto [g] = grads;
  const auto gv = g.to_vector();
  for (float v : gv) {
    CHECK(std::isfinite(v));
  }
  CHECK(std::abs(gv[0]) < 1e-6f);
  CHECK(std::abs(gv[3] + 1.f) < 1e-3f);
  CHECK(std::abs(gv[5] - 1.f) < 1e-3f);
}

/// The 784-128-10 network's shape, smaller: x (B, D), W1 (D, H), b1 (H), W2 (H, C), b2 (C).
struct Mlp {
  fg::Tensor<double, 2> x, W1, W2;
  fg::Tensor<double, 1> b1, b2;
  fg::Tensor<int, 1> labels;
  Mlp(index_t batch, index_t d, index_t h, index_t c, std::mt19937& rng)
      : x(fgtest::random_double<2>({batch, d}, rng)), W1(fgtest::random_double<2>({d, h}, rng, -0.5, 0.5)), W2(fgtest::random_double<2>({h, c}, rng, -0.5, 0.5)),
        b1(fgtest::random_double<1>({h}, rng, -0.5, 0.5)), b2(fgtest::random_double<1>({c}, rng, -0.5, 0.5)),
        labels(fgtest::random_tensor<int, 1>(Dims{batch}, rng, 0, static_cast<double>(c - 1))) {}
};

template <class X, class W, class B, class L>
auto mlp_loss(const X& x, const W& W1, const B& b1, const W& W2, const B& b2, const L& labels) {
  auto logits = fg::matmul(fg::relu(fg::matmul(x, W1) + b1), W2) + b2;
  return fg::mean(fg::nn::cross_entropy(logits, labels));
}

TEST_CASE("autodiff: the MLP's gradients against finite differences and a second formulation", "[autodiff][mlp]") {
  std::mt19937 rng(1108);
  Mlp net(9, 13, 8, 5, rng);
  const auto& x = net.x;
  const auto xf = fgtest::to_float(net.x);
  const auto& labels = net.labels;
  check_gradients("mlp", [&](auto& W1, auto& b1, auto& W2, auto& b2) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(W1)>::element_type, double>) {
      return mlp_loss(x, W1, b1, W2, b2, labels);
    } else {
      return mlp_loss(xf, W1, b1, W2, b2, labels);
    }
  }, rng, net.W1, net.b1, net.W2, net.b2);
  // log_softmax + one-hot instead of cross_entropy: a different tree, the same gradients.
  const auto [g1, g2, g3, g4] = fg::grad(mlp_loss(x, net.W1, net.b1, net.W2, net.b2, labels), net.W1, net.b1, net.W2, net.b2);
  auto logits = fg::matmul(fg::relu(fg::matmul(x, net.W1) + net.b1), net.W2) + net.b2;
  auto other = -fg::mean(fg::sum(fg::nn::log_softmax(logits) * fg::nn::one_hot<double>(labels, 5), 1));
  const auto [h1, h2, h3, h4] = fg::grad(other, net.W1, net.b1, net.W2, net.b2);
  CHECK(fgtest::rel_error(fgtest::as_doubles(h1), fgtest::as_doubles(g1)) < 1e-12);
  CHECK(fgtest::rel_error(fgtest::as_doubles(h2), fgtest::as_doubles(g2)) < 1e-12);
  CHECK(fgtest::rel_error(fgtest::as_doubles(h3), fgtest::as_doubles(g3)) < 1e-12);
  CHECK(fgtest::rel_error(fgtest::as_doubles(h4), fgtest::as_doubles(g4)) < 1e-12);
}

TEST_CASE("autodiff: the MLP's value_and_grad runs 2 + 3 GEMMs and 12 kernels", "[autodiff][mlp][fusion]") {
  std::mt19937 rng(1109);
  Mlp net(64, 30, 16, 10, rng);
  fg::Tensor<float, 2> x = fg::cast<float>(net.x), W1 = fg::cast<float>(net.W1), W2 = fg::cast<float>(net.W2);
  fg::Tensor<float, 1> b1 = fg::cast<float>(net.b1), b2 = fg::cast<float>(net.b2);
  const auto loss = mlp_loss(x, W1, b1, W2, b2, net.labels);
  const float forward = loss.item();
  LaunchCounter count;
  auto [value, grads] = fg::value_and_grad(loss, W1, b1, W2, b2);
  // Forward: GEMM, bias+ReLU, GEMM, row logsumexp, mean. Backward: dZ2 = softmax - onehot,
  // dW2 (GEMM), db2, dH (GEMM), dZ1 = dH * relu', dW1 (GEMM), db1. No dx: x was not asked for.
  CHECK(count.gemms() == 5);
  CHECK(count.launches() == 12);
  CHECK(value.item() == forward);
  // Only W2 asked for: nothing below H is differentiated.
  count.restart();
  auto [gW2] = fg::grad(loss, W2);
  CHECK(count.gemms() == 3);
  CHECK(count.launches() == 7);
  CHECK(fgtest::rel_error(fgtest::as_doubles(gW2), fgtest::as_doubles(std::get<2>(grads))) == 0);
}

TEST_CASE("autodiff: fusion of element-wise backward chains", "[autodiff][fusion]") {
  std::mt19937 rng(1110);
  auto a = fgtest::random_tensor<float, 2>(Dims{33, 17}, rng);
  auto b = fgtest::random_tensor<float, 1>(Dims{17}, rng);
  LaunchCounter count;
  auto [ga] = fg::grad(fg::sum(fg::square(fg::exp(a) * 2.f - 1.f) * 0.5f), a);
  CHECK(count.launches() == 2);  // the fused sum; the whole gradient chain in one kernel
  count.restart();
  auto [gb] = fg::grad(fg::sum(fg::tanh(a + b) * 3.f), b);
  CHECK(count.launches() == 2);  // the sum; db summed over rows straight from the expression
  // Each further read of a variable adds two kernels: its contribution, then the addition.
  count.restart();
  auto [ga2, gb2] = fg::grad(fg::sum(fg::tanh(a + b) * a), a, b);
  CHECK(count.launches() == 5);  // sum; da from tanh; db; da from the product, added
  (void)ga;
  (void)gb;
  (void)ga2;
  (void)gb2;
}

TEST_CASE("autodiff: shared subtrees are computed once; repeated variables add up", "[autodiff]") {
  std::mt19937 rng(1111);
  auto x = fgtest::random_double<2>({5, 4}, rng);
  auto w = fgtest::random_double<2>({4, 3}, rng);
  check_gradients("a variable used many times", [](auto& t) { return fg::sum(t * t + fg::exp(t) * t - t); }, rng, x);
  // The product appears twice in the tree; it is computed (and differentiated) once.
  auto z = fg::matmul(x, w);
  LaunchCounter count;
  auto [gw] = fg::grad(fg::sum(z * z) + fg::sum(fg::sin(z)), w);
  CHECK(count.gemms() == 2);  // forward z, backward xᵀ dz
  const auto xf = fgtest::to_float(x);
  check_gradients("a product used twice", [&](auto& t) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(t)>::element_type, double>) {
      auto zz = fg::matmul(x, t);
      return fg::sum(zz * zz) + fg::sum(fg::sin(zz));
    } else {
      auto zz = fg::matmul(xf, t);
      return fg::sum(zz * zz) + fg::sum(fg::sin(zz));
    }
  }, rng, w);
  (void)gw;
}

TEST_CASE("autodiff: a variable the loss does not read gets zeros", "[autodiff]") {
  std::mt19937 rng(1112);
  auto x = fgtest::random_double<2>({3, 4}, rng);
  auto unused = fgtest::random_double<1>({6}, rng);
  auto [gx, gu] = fg::grad(fg::sum(x * x), x, unused);
  CHECK(gu.shape() == unused.shape());
  CHECK(gu.to_vector() == std::vector<double>(6, 0.0));
  CHECK(fgtest::rel_error(fgtest::as_doubles(gx), fgtest::as_doubles(fg::eval(2.0 * x))) == 0);
}

TEST_CASE("autodiff: shape errors surface when the forward expression is built", "[autodiff][errors]") {
  auto W = fg::zeros<float>({4, 3});
  auto x = fg::ones<float>({5, 5});
  LaunchCounter count;
  const auto message = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::grad(fg::sum(fg::matmul(x, W)), W); });
  CHECK(fgtest::contains(message, "matmul: inner dimensions differ"));
  CHECK(count.launches() == 0);
  auto labels = fg::zeros<int>({3});
  const auto ce = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::nn::cross_entropy(x, labels); });
  CHECK(fgtest::contains(ce, "cross_entropy: logits [5, 5] and labels [3] do not match"));
}

}  // namespace test_autodiff_models
