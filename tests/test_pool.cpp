// tests/test_pool.cpp — nn::max_pool2d and nn::avg_pool2d: values against a direct reference in
// double (windows that overhang the padding, odd sizes, non-square kernels and strides), ties
// (the first maximum takes the gradient), NaN, gradients against central finite differences,
// float against double, kernel counts, shape errors.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_pool {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;
using fgtest::Ref;

struct Case {
  Dims x;
  index_t kh, kw, sh, sw, ph, pw;
};

/// Direct pooling in double; `arg` (max only) receives each window's first maximum's flat index.
Ref pool_ref(const Ref& x, const Case& k, bool max, std::vector<index_t>* arg = nullptr) {
  const index_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  const index_t oh = (h + 2 * k.ph - k.kh) / k.sh + 1, ow = (w + 2 * k.pw - k.kw) / k.sw + 1;
  Ref out(Dims{n, c, oh, ow});
  for (index_t p = 0; p < n * c; ++p) {
    for (index_t y = 0; y < oh; ++y) {
      for (index_t z = 0; z < ow; ++z) {
        double best = -INFINITY, sum = 0;
        index_t where = -1;
        for (index_t i = 0; i < k.kh; ++i) {
          for (index_t j = 0; j < k.kw; ++j) {
            const index_t r = y * k.sh - k.ph + i, q = z * k.sw - k.pw + j;
            if (r < 0 || r >= h || q < 0 || q >= w) {
              continue;
            }
            const index_t flat = (p * h + r) * w + q;
            const double v = x.v[static_cast<std::size_t>(flat)];
            sum += v;
            if (where < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              where = flat;
            }
          }
        }
        const auto o = static_cast<std::size_t>((p * oh + y) * ow + z);
        out.v[o] = max ? best : sum / static_cast<double>(k.kh * k.kw);
        if (arg != nullptr) {
          arg->push_back(where);
        }
      }
    }
  }
  return out;
}

const std::vector<Case>& grid() {
  static const std::vector<Case> cases = {
      {{2, 3, 8, 8}, 2, 2, 2, 2, 0, 0},  // the CNN's pool
      {{1, 2, 7, 9}, 3, 3, 2, 2, 1, 1},  // overlapping windows overhanging the padding
      {{2, 1, 5, 6}, 3, 2, 1, 2, 1, 0},  // non-square kernel and stride
      {{1, 2, 5, 5}, 5, 5, 1, 1, 2, 2},  // padding half the kernel: edge windows mostly padding
      {{1, 1, 4, 7}, 1, 1, 3, 2, 0, 0},  // 1x1 subsampling
      {{2, 2, 7, 9}, 2, 3, 3, 3, 1, 1},  // disjoint windows with gaps, padding and a leftover row
      {{1, 3, 7, 7}, 2, 2, 2, 2, 0, 0},  // the last row and column in no window
  };
  return cases;
}

TEST_CASE("max_pool2d, avg_pool2d: values against the direct reference", "[nn][pool]") {
  std::mt19937 rng(1801);
  for (const Case& k : grid()) {
    INFO("x " << fgtest::dims_str(k.x) << " kernel " << k.kh << "x" << k.kw << " stride " << k.sh << "," << k.sw
              << " padding " << k.ph << "," << k.pw);
    auto x = fgtest::random_double<4>(k.x, rng);
    const Ref rx = fgtest::ref_of(x);
    fg::Tensor<double, 4> mx = fg::nn::max_pool2d(x, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw});
    fg::Tensor<double, 4> av = fg::nn::avg_pool2d(x, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw});
    CHECK(fgtest::compare_exact(mx, pool_ref(rx, k, true)) == "");
    CHECK(fgtest::compare(av, pool_ref(rx, k, false), 1e-14, 1e-15) == "");
    fg::Tensor<float, 4> avf = fg::nn::avg_pool2d(fgtest::to_float(x), {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw});
    CHECK(fgtest::compare(avf, pool_ref(rx, k, false), 1e-6, 1e-6) == "");
    check_gradients("max_pool2d", [&](auto& v) {
      return fg::sum(fg::sin(fg::nn::max_pool2d(v, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw})));
    }, rng, x);
    check_gradients("avg_pool2d", [&](auto& v) {
      return fg::sum(fg::sin(fg::nn::avg_pool2d(v, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw})));
    }, rng, x);
  }
}

TEST_CASE("max_pool2d: ties send the gradient to the first maximum; NaN propagates", "[nn][pool][edge]") {
  std::mt19937 rng(1802);
  // Small integers: most windows hold ties. Overlapping padded windows, and the 2x2 / stride 2
  // windows (their own unrolled path).
  std::vector<double> values(2 * 2 * 6 * 7);
  auto x = fgtest::tensor_from<double, 4>(fg::Shape<4>({2, 2, 6, 7}), std::vector<double>(values.size(), 1.0));
  for (const Case& k : {Case{{2, 2, 6, 7}, 3, 3, 2, 2, 1, 1}, Case{{2, 2, 6, 7}, 2, 2, 2, 2, 0, 0}}) {
    INFO("kernel " << k.kh << " stride " << k.sh << " padding " << k.ph);
    std::uniform_int_distribution<int> few(0, 2);
    for (auto& v : values) {
      v = few(rng);
    }
    x.copy_from(values);
    std::vector<index_t> arg;
    const Ref want = pool_ref(fgtest::ref_of(x), k, true, &arg);
    fg::Tensor<double, 4> p = fg::nn::max_pool2d(x, k.kh, k.sh, k.ph);
    CHECK(fgtest::compare_exact(p, want) == "");
    auto g = fgtest::random_double<4>(want.shape, rng);
    auto [dx] = fg::grad(fg::sum(fg::nn::max_pool2d(x, k.kh, k.sh, k.ph) * g), x);
    Ref expected(Dims{2, 2, 6, 7}, 0.0);
    const auto gv = g.to_vector();
    for (std::size_t o = 0; o < arg.size(); ++o) {
      expected.v[static_cast<std::size_t>(arg[o])] += gv[o];
    }
    CHECK(fgtest::compare(dx, expected, 1e-15, 1e-15) == "");
  }
  // NaN: the window's result is NaN, and its gradient goes to the (first) NaN.
  values.assign(values.size(), 1.0);
  values[8] = std::numeric_limits<double>::quiet_NaN();  // (0, 0, 1, 1)
  values[9] = std::numeric_limits<double>::quiet_NaN();  // (0, 0, 1, 2): a later NaN in the same window
  x.copy_from(values);
  fg::Tensor<double, 4> p = fg::nn::max_pool2d(x, 2);
  const auto pv = p.to_vector();
  CHECK(std::isnan(pv[0]));      // window rows 0-1, cols 0-1 holds (1, 1)
  CHECK(std::isnan(pv[1]));      // cols 2-3 holds (1, 2)
  CHECK(pv[2] == 1.0);
  auto [dn] = fg::grad(fg::sum(fg::nn::max_pool2d(x, 2)), x);
  const auto dv = dn.to_vector();
  CHECK(dv[8] == 1.0);
  CHECK(dv[9] == 1.0);
  CHECK(dv[0] == 0.0);
}

TEST_CASE("pooling: kernel counts, fused with what it reads and what reads it", "[nn][pool][fusion]") {
  std::mt19937 rng(1803);
  auto x = fgtest::random_tensor<float, 4>(Dims{4, 8, 16, 16}, rng);
  auto b = fgtest::random_tensor<float, 1>(Dims{8}, rng);
  fg::Tensor<float, 4> y = fgtest::poisoned<float, 4>(fg::Shape<4>({4, 8, 8, 8}));
  LaunchCounter count;
  y = fg::nn::max_pool2d(fg::relu(x + fg::reshape(b, {8, 1, 1})), 2) * 2.f;
  CHECK(count.launches() == 1);
  count.restart();
  y = fg::nn::avg_pool2d(x, 2);
  CHECK(count.launches() == 1);
  count.restart();
  auto [gx] = fg::grad(fg::sum(fg::nn::max_pool2d(fg::relu(x), 2)), x);
  INFO("max_pool2d forward + backward: " << count.launches() << " kernels");
  // The loss (the pooled sum); the pooled input relu(x), evaluated once so that the windows are
  // rescanned in memory; the gather with ReLU's mask inline.
  CHECK(count.launches() == 3);
  CHECK(fgtest::all_finite(gx));
  count.restart();
  auto [gx2] = fg::grad(fg::sum(fg::nn::max_pool2d(x, 2)), x);
  CHECK(count.launches() == 2);  // a tensor is pooled: the loss, the gather
  CHECK(fgtest::all_finite(gx2));
}

TEST_CASE("pooling: shape errors name the op and the shapes", "[nn][pool][errors]") {
  std::mt19937 rng(1804);
  auto x = fgtest::random_tensor<float, 4>(Dims{2, 3, 5, 4}, rng);
  auto message = [&](auto&& f) { return fgtest::thrown_message<fg::shape_error>(f); };
  std::string msg = message([&] { (void)fg::nn::max_pool2d(x, 6); });
  CHECK(msg.find("max_pool2d: the kernel is larger than the padded input (5 x 4)") != std::string::npos);
  CHECK(msg.find("[2, 3, 5, 4]") != std::string::npos);
  CHECK(message([&] { (void)fg::nn::avg_pool2d(x, 2, 0); }).find("avg_pool2d: the stride must be positive") !=
        std::string::npos);
  CHECK(message([&] { (void)fg::nn::max_pool2d(x, 2, 2, 2); }).find("between 0 and half the kernel") !=
        std::string::npos);
  CHECK(message([&] { (void)fg::nn::max_pool2d(x, {0, 2}); }).find("the kernel must be positive") !=
        std::string::npos);
  CHECK(message([&] { (void)fg::nn::max_pool2d(x, 4, 1, 2); }) == "<nothing thrown>");
  // An empty batch pools to an empty result; nothing runs.
  fg::Tensor<float, 4> empty(fg::Shape<4>({0, 3, 6, 6}));
  LaunchCounter count;
  fg::Tensor<float, 4> p = fg::nn::max_pool2d(empty, 2);
  CHECK(fgtest::dims_of(p.shape()) == Dims{0, 3, 3, 3});
  CHECK(count.launches() == 0);
}

}  // namespace test_pool
