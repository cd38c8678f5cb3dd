// tests/test_var.cpp — Var and the recorded graph of statements (autodiff/var.hpp, graph.hpp):
// gradients through statements against the single-expression grad() and central finite
// differences (double, and float against double), what statements launch, memory given back after
// grad(), no_grad, and the errors.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_var {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::LaunchCounter;

/// The Var type of the same element type as tensor `t`, rank R.
template <int R, class X>
using VarLike = fg::Var<typename std::remove_cvref_t<X>::element_type, R>;

template <class T, int R>
double max_abs_diff(const fg::Tensor<T, R>& a, const fg::Tensor<T, R>& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    m = std::max(m, std::abs(static_cast<double>(x[i]) - static_cast<double>(y[i])));
  }
  return m;
}

struct Mlp {
  fg::Tensor<double, 2> x, W1, W2;
  fg::Tensor<double, 1> b1, b2;
  fg::Tensor<int, 1> labels;
  Mlp(index_t batch, index_t d, index_t h, index_t c, std::mt19937& rng)
      : x(fgtest::random_double<2>({batch, d}, rng)), W1(fgtest::random_double<2>({d, h}, rng, -0.5, 0.5)),
        W2(fgtest::random_double<2>({h, c}, rng, -0.5, 0.5)), b1(fgtest::random_double<1>({h}, rng, -0.5, 0.5)),
        b2(fgtest::random_double<1>({c}, rng, -0.5, 0.5)),
        labels(fgtest::random_tensor<int, 1>(fgtest::Dims{batch}, rng, 0, static_cast<double>(c - 1))) {}
};

TEST_CASE("Var: the MLP as two statements equals the single expression", "[var][mlp]") {
  std::mt19937 rng(801);
  Mlp n(33, 17, 12, 5, rng);
  // One expression.
  LaunchCounter one;
  auto single = fg::value_and_grad(
      fg::mean(fg::nn::cross_entropy(fg::matmul(fg::relu(fg::matmul(n.x, n.W1) + n.b1), n.W2) + n.b2, n.labels)),
      n.W1, n.b1, n.W2, n.b2);
  const auto single_launches = one.launches();
  const auto single_gemms = one.gemms();
  // Two statements: the hidden layer, then the loss.
  LaunchCounter two;
  fg::Var<double, 2> h = fg::relu(fg::matmul(n.x, n.W1) + n.b1);
  auto stmt = fg::value_and_grad(fg::mean(fg::nn::cross_entropy(fg::matmul(h, n.W2) + n.b2, n.labels)),
                                 n.W1, n.b1, n.W2, n.b2);
  const auto stmt_launches = two.launches();
  INFO("single " << single_launches << " launches, statements " << stmt_launches);
  CHECK(single_launches == 12);
  CHECK(stmt_launches <= single_launches + 2);
  CHECK(two.gemms() == single_gemms);
  CHECK(stmt.value.item() == single.value.item());
  const auto& [a1, a2, a3, a4] = single.grads;
  const auto& [s1, s2, s3, s4] = stmt.grads;
  CHECK(fgtest::rel_error(fgtest::as_doubles(s1), fgtest::as_doubles(a1)) <= 1e-12);
  CHECK(fgtest::rel_error(fgtest::as_doubles(s2), fgtest::as_doubles(a2)) <= 1e-12);
  // Same kernels for the second layer: the same bits.
  CHECK(max_abs_diff(s3, a3) == 0);
  CHECK(max_abs_diff(s4, a4) == 0);
}

TEST_CASE("Var: gradients through statements against finite differences", "[var][fd]") {
  std::mt19937 rng(802);
  const index_t b = 4, d = 5;
  auto x = fgtest::random_double<2>({b, d}, rng);
  auto W = fgtest::random_double<2>({d, d}, rng, -0.6, 0.6);
  auto U = fgtest::random_double<2>({d, d}, rng, -0.6, 0.6);
  auto c = fgtest::random_double<1>({d}, rng, -0.5, 0.5);
  const auto xf = fgtest::to_float(x);
  auto input = [&](const auto& w) -> const auto& {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(w)>::element_type, double>) {
      return x;
    } else {
      return xf;
    }
  };

  for (int depth : {1, 3}) {  // a run-time number of residual blocks of one type
    INFO("depth " << depth);
    check_gradients("residual block applied N times", [&](auto& w, auto& bias) {
      VarLike<2, decltype(w)> h = input(w) * 1.0;
      for (int i = 0; i < depth; ++i) {
        h = h + fg::tanh(fg::matmul(h, w) + bias);
      }
      VarLike<0, decltype(w)> loss = fg::sum(fg::sin(h));
      return loss;
    }, rng, W, c);
  }
  check_gradients("fan-out: a Var read by two later statements", [&](auto& w, auto& u) {
    VarLike<2, decltype(w)> h = fg::tanh(fg::matmul(input(w), w));
    VarLike<2, decltype(w)> p = fg::sigmoid(fg::matmul(h, u));
    VarLike<2, decltype(w)> q = h * h;
    VarLike<0, decltype(w)> loss = fg::sum(p * q) + fg::sum(h);
    return loss;
  }, rng, W, U);
  check_gradients("a Var reassigned in a loop, += and *=", [&](auto& w) {
    VarLike<2, decltype(w)> h = fg::matmul(input(w), w);
    for (int i = 0; i < 3; ++i) {
      h = fg::sin(h) * 0.9;
      h += fg::matmul(input(w), w) * 0.1;
      h *= 1.1;
    }
    VarLike<0, decltype(w)> loss = fg::sum(fg::square(h));
    return loss;
  }, rng, W);
  check_gradients("one weight used by two layers (tied)", [&](auto& w, auto& bias) {
    VarLike<2, decltype(w)> h1 = fg::tanh(fg::matmul(input(w), w) + bias);
    VarLike<2, decltype(w)> h2 = fg::tanh(fg::matmul(h1, w) + bias);
    VarLike<2, decltype(w)> h3 = fg::matmul(h2, fg::transpose(w));
    VarLike<0, decltype(w)> loss = fg::mean(fg::square(h3));
    return loss;
  }, rng, W, c);
  check_gradients("views of a Var: transpose, reshape, slice", [&](auto& w) {
    VarLike<2, decltype(w)> h = fg::tanh(fg::matmul(input(w), w));                 // (4, 5)
    VarLike<2, decltype(w)> t = fg::matmul(fg::transpose(h), h);                   // (5, 5)
    VarLike<1, decltype(w)> r = fg::reshape(h, {20}) * 2.0;                        // (20)
    VarLike<2, decltype(w)> s = fg::exp(fg::slice(h, 1, 1, 5, 2));                 // (4, 2)
    VarLike<0, decltype(w)> loss = fg::sum(t) + fg::sum(fg::sin(r)) + fg::sum(s);
    return loss;
  }, rng, W);
  // Integer inputs carry no gradient, and a Var of integers may be read.
  auto labels = fgtest::tensor_from<int, 1>(fg::Shape<1>({4}), {2, 0, 4, 1});
  check_gradients("integer inputs", [&](auto& w) {
    fg::Var<int, 1> y = labels * 1;
    VarLike<2, decltype(w)> z = fg::matmul(input(w), w);
    using T = typename std::remove_cvref_t<decltype(w)>::element_type;
    VarLike<0, decltype(w)> loss = fg::mean(fg::nn::cross_entropy(z, y)) + fg::sum(z * fg::cast<T>(fg::argmax(z, 1, fg::keepdims) == 0));
    return loss;
  }, rng, W);
}

TEST_CASE("autodiff: a further gradient that is a matrix product adds itself (GEMM, beta = 1)", "[var][fusion]") {
  std::mt19937 rng(809);
  auto x = fgtest::random_double<2>({6, 5}, rng);
  auto y = fgtest::random_double<2>({7, 5}, rng);
  auto W = fgtest::random_double<2>({5, 4}, rng);
  auto two_reads = [&](auto& w) {
    return fg::sum(fg::sin(fg::matmul(x, w))) + fg::sum(fg::cos(fg::matmul(y, w)));
  };
  LaunchCounter count;
  auto [gW] = fg::grad(two_reads(W), W);
  // forward: 2 GEMMs, 2 fused reductions, the sum of the two; backward: each reduction's (scalar)
  // gradient (2), each product's gradient (2), then dW = xᵀ g1 and dW += yᵀ g2 (2 GEMMs, the
  // second accumulating: no staging and no addition kernel).
  CHECK(count.gemms() == 4);
  CHECK(count.launches() == 11);
  const auto xf = fgtest::to_float(x);
  const auto yf = fgtest::to_float(y);
  check_gradients("one weight read by two products", [&](auto& w) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(w)>::element_type, double>) {
      return fg::sum(fg::sin(fg::matmul(x, w))) + fg::sum(fg::cos(fg::matmul(y, w)));
    } else {
      return fg::sum(fg::sin(fg::matmul(xf, w))) + fg::sum(fg::cos(fg::matmul(yf, w)));
    }
  }, rng, W);
  // The same through a transposed read (the gradient is (A B)ᵀ = Bᵀ Aᵀ, accumulated).
  auto Wt = fgtest::random_double<2>({4, 5}, rng);
  check_gradients("a weight read plainly and transposed", [&](auto& w) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(w)>::element_type, double>) {
      return fg::sum(fg::sin(fg::matmul(fg::matmul(x, fg::transpose(w)), w)));
    } else {
      return fg::sum(fg::sin(fg::matmul(fg::matmul(xf, fg::transpose(w)), w)));
    }
  }, rng, Wt);
}

TEST_CASE("Var: the gradient with respect to a Var, and losses that read Vars directly", "[var]") {
  std::mt19937 rng(803);
  auto x = fgtest::random_double<2>({3, 4}, rng);
  auto W = fgtest::random_double<2>({4, 4}, rng);
  fg::Var<double, 2> h = fg::matmul(x, W);
  fg::Var<double, 2> y = fg::tanh(h);
  // d/dh sum(y^2) = 2 y (1 - y^2); d/dW = xᵀ (that).
  auto [gh, gy, gW] = fg::grad(fg::sum(fg::square(y)), h, y, W);
  fg::Tensor<double, 2> want_gy = y * 2.0;
  fg::Tensor<double, 2> want_gh = want_gy * (1.0 - fg::square(y));
  fg::Tensor<double, 2> want_gW = fg::matmul(fg::transpose(x), want_gh);
  CHECK(max_abs_diff(gy, want_gy) < 1e-14);
  CHECK(max_abs_diff(gh, want_gh) < 1e-14);
  CHECK(max_abs_diff(gW, want_gW) < 1e-13);
}

TEST_CASE("Var: usable wherever a Tensor is", "[var]") {
  std::mt19937 rng(804);
  auto a = fgtest::random_double<2>({2, 3}, rng);
  fg::Var<double, 2> v = a * 2.0;
  CHECK(v.shape() == fg::Shape<2>({2, 3}));
  CHECK(v.size() == 6);
  const auto av = a.to_vector(), vv = v.to_vector();
  for (std::size_t i = 0; i < av.size(); ++i) {
    CHECK(vv[i] == av[i] * 2.0);
  }
  fg::Tensor<double, 2> t = fg::transpose(v);  // a view of a Var
  CHECK(t.shape() == fg::Shape<2>({3, 2}));
  CHECK(fg::sum(v).item() == Approx(2.0 * fg::sum(a).item()));
  fg::Var<double, 0> s = fg::sum(v);
  CHECK(s.item() == Approx(fg::sum(v).item()));
  std::ostringstream printed, expected;
  printed << v;
  expected << v.value();
  CHECK(printed.str() == expected.str());
  CHECK(v.recorded());
  fg::Var<double, 2> copy = v;  // shares the value and its statement
  CHECK(copy.data() == v.data());
}

TEST_CASE("Var: a statement launches what the Tensor assignment launches; no_grad adds none", "[var][fusion]") {
  std::mt19937 rng(805);
  auto x = fgtest::random_double<2>({64, 32}, rng);
  auto W = fgtest::random_double<2>({32, 16}, rng);
  auto b = fgtest::random_double<1>({16}, rng);
  auto check = [&](const char* what, auto make) {
    LaunchCounter t;
    fg::Tensor<double, 2> plain = make();
    const auto tensor_launches = t.launches();
    LaunchCounter v;
    fg::Var<double, 2> rec = make();
    const auto var_launches = v.launches();
    LaunchCounter n;
    {
      fg::no_grad guard;
      fg::Var<double, 2> con = make();
      CHECK_FALSE(con.recorded());
    }
    INFO(what);
    CHECK(var_launches == tensor_launches);
    CHECK(n.launches() == tensor_launches);
    CHECK(max_abs_diff(rec.value(), plain) == 0);
  };
  check("bias + relu after a GEMM", [&] { return fg::relu(fg::matmul(x, W) + b); });
  check("a GEMM", [&] { return fg::matmul(x, W); });
  check("a reduction used element-wise", [&] { return x - fg::max(x, 1, fg::keepdims); });
  check("element-wise", [&] { return fg::exp(x) * 2.0 + 1.0; });
  LaunchCounter r;
  fg::Tensor<double, 1> red_t = fg::sum(fg::exp(x), 0);
  const auto red_launches = r.launches();
  r.restart();
  fg::Var<double, 1> red_v = fg::sum(fg::exp(x), 0);
  CHECK(r.launches() == red_launches);
  CHECK(max_abs_diff(red_v.value(), red_t) == 0);
}

TEST_CASE("Var: memory goes back after grad, no_grad keeps nothing", "[var][memory]") {
  std::mt19937 rng(806);
  auto x = fgtest::random_double<2>({16, 8}, rng);
  auto W1 = fgtest::random_double<2>({8, 8}, rng);
  auto W2 = fgtest::random_double<2>({8, 3}, rng);
  auto b = fgtest::random_double<1>({8}, rng);
  auto y = fgtest::random_tensor<int, 1>(fgtest::Dims{16}, rng, 0, 2);
  auto step = [&] {
    fg::Var<double, 2> h = fg::relu(fg::matmul(x, W1) + b);
    for (int i = 0; i < 3; ++i) {
      h = h + fg::tanh(fg::matmul(h, W1));
    }
    return fg::value_and_grad(fg::mean(fg::nn::cross_entropy(fg::matmul(h, W2), y)), W1, b, W2);
  };
  { auto warm = step(); }
  const auto before = fg::stats::bytes_in_use();
  for (int i = 0; i < 1000; ++i) {
    auto r = step();
  }
  CHECK(fg::stats::bytes_in_use() == before);

  // After grad, a Var held by the user keeps only its value.
  fg::Var<double, 2> h = fg::relu(fg::matmul(x, W1) + b);
  fg::Var<double, 2> h2 = fg::tanh(fg::matmul(h, W1)) + h;
  const auto recorded = fg::stats::bytes_in_use();
  { auto g = fg::grad(fg::sum(h2), W1); }
  const auto after = fg::stats::bytes_in_use();
  CHECK(after < recorded);
  CHECK(after == before + 2 * 16 * 8 * static_cast<std::int64_t>(sizeof(double)));

  // no_grad: only the values themselves.
  const auto base = fg::stats::bytes_in_use();
  {
    fg::no_grad guard;
    fg::Var<double, 2> a = fg::relu(fg::matmul(x, W1) + b);
    fg::Var<double, 2> c = fg::tanh(fg::matmul(a, W1)) + a;
    CHECK(fg::stats::bytes_in_use() == base + 2 * 16 * 8 * static_cast<std::int64_t>(sizeof(double)));
    c = fg::sin(c);  // in place: nothing else reads c
    CHECK(fg::stats::bytes_in_use() == base + 2 * 16 * 8 * static_cast<std::int64_t>(sizeof(double)));
  }
  CHECK(fg::stats::bytes_in_use() == base);
}

TEST_CASE("Var: a Var computed under no_grad is a constant", "[var]") {
  std::mt19937 rng(807);
  auto x = fgtest::random_double<2>({3, 4}, rng);
  auto W = fgtest::random_double<2>({4, 4}, rng);
  fg::Var<double, 2> h;
  {
    fg::no_grad guard;
    h = fg::matmul(x, W);
  }
  auto [gW] = fg::grad(fg::sum(fg::square(h)) + fg::sum(W), W);
  const auto g = gW.to_vector();
  for (double v : g) {
    CHECK(v == 1.0);  // only the direct read of W
  }
}

TEST_CASE("Var: errors", "[var][errors]") {
  std::mt19937 rng(808);
  auto x = fgtest::random_double<2>({3, 4}, rng);
  auto W = fgtest::random_double<2>({4, 4}, rng);
  auto other = fgtest::random_double<2>({4, 4}, rng);
  fg::Var<double, 2> h = fg::tanh(fg::matmul(x, W));
  auto [g1, g0] = fg::grad(fg::sum(h), W, other);
  for (double v : g0.to_vector()) {
    CHECK(v == 0.0);  // not read by the loss: zeros
  }
  // The graph was released: a second grad over it says so and how to keep it.
  const std::string msg = fgtest::thrown_message<fg::error>([&] { (void)fg::grad(fg::sum(h), W); });
  CHECK(fgtest::contains(msg, "released"));
  CHECK(fgtest::contains(msg, "fg::retain_graph"));
  // Kept, it runs twice with the same result.
  fg::Var<double, 2> k = fg::tanh(fg::matmul(x, W));
  auto [r1] = fg::grad(fg::sum(k * k), fg::retain_graph, W);
  auto [r2] = fg::grad(fg::sum(k * k), W);
  CHECK(max_abs_diff(r1, r2) == 0);
  CHECK_FALSE(k.recorded());
  // A Var asked for but not read by the loss gets zeros, whatever an earlier retained pass left.
  fg::Var<double, 2> m = fg::tanh(fg::matmul(x, W));
  auto [q1] = fg::grad(fg::sum(m), fg::retain_graph, m);
  for (double v : q1.to_vector()) {
    CHECK(v == 1.0);
  }
  auto [q2, qW] = fg::grad(fg::sum(W), m, W);
  for (double v : q2.to_vector()) {
    CHECK(v == 0.0);
  }
  // A Var asked for twice gets its gradient twice.
  fg::Var<double, 2> twice = fg::tanh(fg::matmul(x, W));
  auto [t1, t2] = fg::grad(fg::sum(twice * 3.0), twice, twice);
  for (double v : t1.to_vector()) {
    CHECK(v == 3.0);
  }
  CHECK(max_abs_diff(t1, t2) == 0);
  // In place under no_grad, even through a temporary (the update reads the Var transposed), the
  // Var stays known by its memory: a later statement that reads it records it as its input.
  fg::Var<double, 2> sq = fg::matmul(fg::transpose(x), x);  // (4, 4)
  {
    fg::no_grad guard;
    sq += fg::transpose(sq);
  }
  fg::Var<double, 2> after = fg::matmul(x, sq);
  auto [gsq] = fg::grad(fg::sum(after), sq);
  fg::Tensor<double, 2> want_gsq = fg::matmul(fg::transpose(x), fg::ones<double>(fg::Shape<2>({3, 4})));
  CHECK(max_abs_diff(gsq, want_gsq) < 1e-13);
  // Shapes are checked when a statement's expression is built, as for tensors.
  fg::Var<double, 2> a = x * 1.0;
  const std::string shape_msg = fgtest::thrown_message<fg::shape_error>([&] { fg::Var<double, 2> bad = a + W; });
  CHECK(fgtest::contains(shape_msg, "[3, 4]"));
  CHECK(fgtest::contains(shape_msg, "[4, 4]"));
}

}  // namespace test_var
