// tests/test_autodiff_reduce.cpp — gradients through reductions that are not sum/mean/max/min:
// argmax and argmin anywhere in a loss (labels, masks, weights) pass no gradient and need no rule;
// prod has its own rule, d/dx_i prod(x) = prod_{j≠i} x_j, checked against finite differences on
// random data and exactly against a host reference where lanes hold one or two zeros.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_autodiff_reduce {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;

/// Values of magnitude in [0.5, 1.5) with a random sign: no zeros, products neither vanish nor blow up.
template <int R>
fg::Tensor<double, R> nonzero_random(const Dims& d, std::mt19937& rng) {
  std::uniform_real_distribution<double> magnitude(0.5, 1.5);
  std::bernoulli_distribution negative(0.5);
  std::vector<double> v(static_cast<std::size_t>(fgtest::numel(d)));
  for (double& x : v) {
    x = negative(rng) ? -magnitude(rng) : magnitude(rng);
  }
  return fgtest::tensor_from<double, R>(fgtest::shape_of<R>(d), v);
}

/// Random values with few mantissa bits (±0.5, ±0.75, ... ±3): products of a few of them, and their
/// quotients by one factor, are exact in double and float, so gradients compare with ==.
inline std::vector<double> dyadic_values(std::size_t n, std::mt19937& rng) {
  static const double choices[] = {0.5, 0.75, 1.25, 1.5, 2.0, 3.0};
  std::uniform_int_distribution<int> pick(0, 5);
  std::bernoulli_distribution negative(0.5);
  std::vector<double> v(n);
  for (double& x : v) {
    x = negative(rng) ? -choices[pick(rng)] : choices[pick(rng)];
  }
  return v;
}

/// prod_{j≠i} x_j over the lane of each element: lanes are rows of an (m, n) matrix (axis 1),
/// or the whole matrix (all = true). Written out with no division, so exact at zeros.
inline std::vector<double> prod_others(const std::vector<double>& x, index_t m, index_t n, bool all) {
  std::vector<double> out(x.size());
  for (index_t i = 0; i < m * n; ++i) {
    const index_t begin = all ? 0 : (i / n) * n;
    const index_t end = all ? m * n : begin + n;
    double p = 1;
    for (index_t j = begin; j < end; ++j) {
      if (j != i) {
        p *= x[static_cast<std::size_t>(j)];
      }
    }
    out[static_cast<std::size_t>(i)] = p;
  }
  return out;
}

// ---- argmax / argmin: no gradient, no rule needed -----------------------------------------------

TEST_CASE("autodiff reduce: cross-entropy against argmax labels of a teacher", "[autodiff][reduce][argmax]") {
  std::mt19937 rng(2201);
  for (int trial = 0; trial < 3; ++trial) {
    const index_t b = std::uniform_int_distribution<index_t>(1, 9)(rng);
    const index_t c = std::uniform_int_distribution<index_t>(2, 7)(rng);
    INFO("batch " << b << ", classes " << c);
    auto z = fgtest::random_double<2>({b, c}, rng, -2, 2);        // (B, C)
    auto teacher = fgtest::random_double<2>({b, c}, rng, -2, 2);  // (B, C), not a variable
    auto [g] = fg::grad(fg::mean(fg::nn::cross_entropy(z, fg::argmax(teacher, -1))), z);

    // Hand reference: (softmax(z) - onehot(argmax teacher)) / B.
    const auto zv = z.to_vector();
    const auto tv = teacher.to_vector();
    std::vector<double> want(zv.size());
    for (index_t i = 0; i < b; ++i) {
      index_t label = 0;
      double m = zv[static_cast<std::size_t>(i * c)];
      double s = 0;
      for (index_t j = 0; j < c; ++j) {
        label = tv[static_cast<std::size_t>(i * c + j)] > tv[static_cast<std::size_t>(i * c + label)] ? j : label;
        m = std::max(m, zv[static_cast<std::size_t>(i * c + j)]);
      }
      for (index_t j = 0; j < c; ++j) {
        s += std::exp(zv[static_cast<std::size_t>(i * c + j)] - m);
      }
      for (index_t j = 0; j < c; ++j) {
        const auto k = static_cast<std::size_t>(i * c + j);
        want[k] = (std::exp(zv[k] - m) / s - (j == label ? 1.0 : 0.0)) / static_cast<double>(b);
      }
    }
    CHECK(fgtest::rel_error(g.to_vector(), want) < 1e-12);

    check_gradients("cross_entropy(z, argmax(teacher))", [&teacher](auto& logits) {
      return fg::mean(fg::nn::cross_entropy(logits, fg::argmax(teacher, -1)));
    }, rng, z);
  }
}

TEST_CASE("autodiff reduce: a mask made from argmax of the variable itself", "[autodiff][reduce][argmax]") {
  std::mt19937 rng(2202);
  for (int trial = 0; trial < 3; ++trial) {
    const index_t m = std::uniform_int_distribution<index_t>(2, 8)(rng);
    const index_t n = std::uniform_int_distribution<index_t>(2, 6)(rng);
    INFO("shape (" << m << ", " << n << ")");
    auto x = fgtest::random_double<2>({m, n}, rng);  // (M, N)
    auto xv = x.to_vector();
    xv[0] = 5;               // row 0: argmax is 0
    xv[n] = -5;              // row 1: argmax is not 0
    x.copy_from(xv);
    auto [g] = fg::grad(fg::sum(fg::where(fg::argmax(x, 1, fg::keepdims) == 0, x, 0.0)), x);

    // d/dx sum(where(mask, x, 0)) = mask: 1 on every element of the rows whose largest is first.
    std::vector<double> want(xv.size());
    for (index_t i = 0; i < m; ++i) {
      bool first = true;
      for (index_t j = 1; j < n; ++j) {
        first = first && xv[static_cast<std::size_t>(i * n + j)] <= xv[static_cast<std::size_t>(i * n)];
      }
      for (index_t j = 0; j < n; ++j) {
        want[static_cast<std::size_t>(i * n + j)] = first ? 1.0 : 0.0;
      }
    }
    CHECK(g.to_vector() == want);
    CHECK(want[0] == 1.0);
    CHECK(want[static_cast<std::size_t>(n)] == 0.0);

    check_gradients("where(argmax(x, 1, keepdims) == 0, x, 0)", [](auto& a) {
      return fg::sum(fg::sin(fg::where(fg::argmax(a, 1, fg::keepdims) == 0, a, 0.0) * 2.0));
    }, rng, x);
  }
}

TEST_CASE("autodiff reduce: argmax on the variable as a weight passes no gradient", "[autodiff][reduce][argmax]") {
  std::mt19937 rng(2203);
  const index_t m = 5, n = 4;
  auto x = fgtest::random_double<2>({m, n}, rng);  // (M, N)
  auto [g] = fg::grad(fg::sum(x * fg::cast<double>(fg::argmax(x, 1, fg::keepdims))), x);
  // Only the product rule's x-side: each element gets its row's argmax.
  const auto xv = x.to_vector();
  std::vector<double> want(xv.size());
  for (index_t i = 0; i < m; ++i) {
    index_t arg = 0;
    for (index_t j = 1; j < n; ++j) {
      arg = xv[static_cast<std::size_t>(i * n + j)] > xv[static_cast<std::size_t>(i * n + arg)] ? j : arg;
    }
    for (index_t j = 0; j < n; ++j) {
      want[static_cast<std::size_t>(i * n + j)] = static_cast<double>(arg);
    }
  }
  CHECK(g.to_vector() == want);
  check_gradients("x * argmax(x, 1, keepdims) and * argmax(x)", [](auto& a) {
    return fg::sum(fg::sin(a) * fg::cast<double>(fg::argmax(a, 1, fg::keepdims))) +
           fg::sum(a) * fg::cast<double>(fg::argmax(a));
  }, rng, x);
}

TEST_CASE("autodiff reduce: argmin inside a loss", "[autodiff][reduce][argmin]") {
  std::mt19937 rng(2204);
  for (int trial = 0; trial < 3; ++trial) {
    const Dims d = fgtest::random_dims<3>(rng, 6);
    INFO("shape " << fgtest::dims_str(d));
    auto x = fgtest::random_double<3>(d, rng, -2, 2);
    auto t = fgtest::random_double<3>(d, rng, -2, 2);
    check_gradients("argmin of an expression of the variable, per axis and over everything", [&t](auto& a) {
      return fg::sum(fg::sin(a) * fg::cast<double>(fg::argmin(a * 2.0 + t, 1, fg::keepdims))) +
             fg::sum(fg::cos(a)) * fg::cast<double>(fg::argmin(a)) +
             fg::sum(fg::where(fg::argmin(t, -1) == 0, fg::sum(a, 2), 0.0));
    }, rng, x);
  }
  // A one-hot of argmin labels: the labels carry nothing, the logits get everything.
  auto z = fgtest::random_double<2>({6, 4}, rng);
  auto t = fgtest::random_double<2>({6, 4}, rng);
  check_gradients("one_hot(argmin(t))", [&t](auto& a) {
    using T = typename std::remove_cvref_t<decltype(a)>::element_type;
    return fg::sum(fg::square(fg::nn::softmax(a) - fg::nn::one_hot<T>(fg::argmin(t, 1), 4)));
  }, rng, z);
}

TEST_CASE("autodiff reduce: reductions of integers pass no gradient", "[autodiff][reduce]") {
  std::mt19937 rng(2205);
  auto x = fgtest::random_double<2>({3, 4}, rng);
  auto k = fgtest::random_tensor<int, 2>(Dims{3, 4}, rng, -3, 3);
  auto [g] = fg::grad(fg::sum(x * fg::cast<double>(fg::sum(k, 0)) + fg::mean(k) + fg::cast<double>(fg::prod(k))), x);
  const auto kv = k.to_vector();
  std::vector<double> want(12);
  for (int i = 0; i < 12; ++i) {
    want[static_cast<std::size_t>(i)] = kv[static_cast<std::size_t>(i % 4)] + kv[static_cast<std::size_t>(4 + i % 4)] +
                                        kv[static_cast<std::size_t>(8 + i % 4)];
  }
  CHECK(g.to_vector() == want);
}

// ---- prod ---------------------------------------------------------------------------------------

TEST_CASE("autodiff reduce: prod of a constant scales a variable", "[autodiff][reduce][prod]") {
  std::mt19937 rng(2206);
  auto x = fgtest::random_double<2>({3, 5}, rng);  // (3, 5)
  auto c = nonzero_random<1>({6}, rng);            // (6)
  auto [gx] = fg::grad(fg::sum(x * fg::prod(c)), x);
  const double p = fg::prod(c).item();
  CHECK(gx.to_vector() == std::vector<double>(15, p));
  check_gradients("sum(x * prod(c)) wrt x and c", [](auto& a, auto& b) { return fg::sum(a * fg::prod(b)); },
                  rng, x, c);
}

TEST_CASE("autodiff reduce: prod over everything, one axis, keepdims", "[autodiff][reduce][prod]") {
  std::mt19937 rng(2207);
  for (int trial = 0; trial < 3; ++trial) {
    const Dims d = fgtest::random_dims<3>(rng, 6);
    INFO("shape " << fgtest::dims_str(d));
    auto x = nonzero_random<3>(d, rng);
    check_gradients("prod over everything", [](auto& a) { return fg::prod(a) + fg::prod(a * 0.9); }, rng, x);
    check_gradients("prod along one axis", [](auto& a) { return fg::sum(fg::sin(fg::prod(a, 1))); }, rng, x);
    check_gradients("prod keepdims, used element-wise", [](auto& a) {
      return fg::sum(fg::sin(fg::prod(a, -1, fg::keepdims) * a));
    }, rng, x);
    check_gradients("prod of an expression", [](auto& a) { return fg::sum(fg::cos(fg::prod(fg::exp(a * 0.1), 0))); },
                    rng, x);
  }
}

TEST_CASE("autodiff reduce: prod with one and two zeros in a lane is exact", "[autodiff][reduce][prod]") {
  std::mt19937 rng(2208);
  const index_t m = 5, n = 4;
  for (int trial = 0; trial < 4; ++trial) {
    auto xv = dyadic_values(static_cast<std::size_t>(m * n), rng);
    std::uniform_int_distribution<index_t> col(0, n - 1);
    // Row 0: no zero. Rows 1 and 4: one zero. Rows 2 and 3: two zeros (3: every element but one).
    xv[static_cast<std::size_t>(1 * n + col(rng))] = 0;
    const index_t z = col(rng);
    xv[static_cast<std::size_t>(2 * n + z)] = 0;
    xv[static_cast<std::size_t>(2 * n + (z + 1 + col(rng) % (n - 1)) % n)] = 0;
    for (index_t j = 1; j < n; ++j) {
      xv[static_cast<std::size_t>(3 * n + j)] = 0;
    }
    xv[static_cast<std::size_t>(4 * n + n - 1)] = 0;
    INFO("trial " << trial);
    const auto w = dyadic_values(static_cast<std::size_t>(m), rng);  // per-row weight of the loss
    auto x = fgtest::tensor_from<double, 2>(fg::Shape<2>({m, n}), xv);                   // (M, N)
    const auto weights = fgtest::tensor_from<double, 1>(fg::Shape<1>({m}), w);           // (M)
    const auto weights_kept = fgtest::tensor_from<double, 2>(fg::Shape<2>({m, 1}), w);   // (M, 1)

    const auto others = prod_others(xv, m, n, false);
    std::vector<double> want(xv.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      want[i] = w[i / static_cast<std::size_t>(n)] * others[i];
    }
    auto [g] = fg::grad(fg::sum(fg::prod(x, 1) * weights), x);
    CHECK(g.to_vector() == want);
    auto [gk] = fg::grad(fg::sum(fg::prod(x, -1, fg::keepdims) * weights_kept), x);
    CHECK(gk.to_vector() == want);
    // Of an expression that makes the zeros (x - x0 is zero where x0 holds x's value).
    auto x0 = fgtest::tensor_from<double, 2>(fg::Shape<2>({m, n}), std::vector<double>(xv.size(), 0.0));
    auto [ge] = fg::grad(fg::sum(fg::prod(x - x0, 1) * weights), x);
    CHECK(ge.to_vector() == want);
    // Float: the same values and products are exact in float too.
    auto xf = fgtest::to_float(x);
    const auto weights_f = fgtest::to_float(weights);
    auto [gf] = fg::grad(fg::sum(fg::prod(xf, 1) * weights_f), xf);
    CHECK(fgtest::as_doubles(gf) == want);
    // Finite differences agree too (prod is linear in each element).
    check_gradients("prod along an axis with zeros", [](auto& a) { return fg::sum(fg::sin(fg::prod(a, 1))); }, rng, x);

    // Over everything: one zero, then two.
    for (int zeros = 1; zeros <= 2; ++zeros) {
      auto v = dyadic_values(6, rng);  // (2, 3): at most 5 factors in a product, exact
      v[static_cast<std::size_t>(trial % 6)] = 0;
      if (zeros == 2) {
        v[static_cast<std::size_t>((trial + 2) % 6)] = 0;
      }
      auto s = fgtest::tensor_from<double, 2>(fg::Shape<2>({2, 3}), v);
      auto [gs] = fg::grad(fg::prod(s) * 3.0, s);
      auto expect = prod_others(v, 2, 3, true);
      for (double& e : expect) {
        e *= 3.0;
      }
      INFO(zeros << " zeros over everything");
      CHECK(gs.to_vector() == expect);
      if (zeros == 1) {
        CHECK(gs.to_vector()[static_cast<std::size_t>(trial % 6)] != 0.0);
      }
    }
  }
}

}  // namespace test_autodiff_reduce
