// tests/test_conv.cpp — nn::conv2d: values against a direct seven-loop reference in double over a
// grid of stride, padding, dilation, groups, odd sizes, 1x1 and non-square kernels; gradients
// against central finite differences; float against double; kernel counts; shape errors.
#include <fusegrad/fusegrad.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_conv {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;
using fgtest::Ref;

struct Case {
  Dims x, w;  // (N, C, H, W), (O, C/groups, KH, KW)
  index_t sh, sw, ph, pw, dh, dw, groups;
};

/// The direct convolution in double: seven loops over n, o, oh, ow, c, i, j.
Ref conv_ref(const Ref& x, const Ref& w, const Ref* b, const Case& k) {
  const index_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
  const index_t o = w.shape[0], cg = w.shape[1], kh = w.shape[2], kw = w.shape[3];
  const index_t oh = (h + 2 * k.ph - k.dh * (kh - 1) - 1) / k.sh + 1;
  const index_t ow = (wd + 2 * k.pw - k.dw * (kw - 1) - 1) / k.sw + 1;
  const index_t og = o / k.groups;
  Ref out(Dims{n, o, oh, ow});
  for (index_t in = 0; in < n; ++in) {
    for (index_t io = 0; io < o; ++io) {
      for (index_t y = 0; y < oh; ++y) {
        for (index_t z = 0; z < ow; ++z) {
          double s = b != nullptr ? b->v[static_cast<std::size_t>(io)] : 0.0;
          for (index_t ic = 0; ic < cg; ++ic) {
            const index_t channel = (io / og) * cg + ic;
            for (index_t i = 0; i < kh; ++i) {
              for (index_t j = 0; j < kw; ++j) {
                const index_t r = y * k.sh - k.ph + i * k.dh, q = z * k.sw - k.pw + j * k.dw;
                if (r < 0 || r >= h || q < 0 || q >= wd) {
                  continue;
                }
                s += x.v[static_cast<std::size_t>(((in * c + channel) * h + r) * wd + q)] *
                     w.v[static_cast<std::size_t>(((io * cg + ic) * kh + i) * kw + j)];
              }
            }
          }
          out.v[static_cast<std::size_t>(((in * o + io) * oh + y) * ow + z)] = s;
        }
      }
    }
  }
  return out;
}

fg::nn::Conv2dOptions options_of(const Case& k) {
  return {.stride = {k.sh, k.sw}, .padding = {k.ph, k.pw}, .dilation = {k.dh, k.dw}, .groups = k.groups};
}

std::string describe(const Case& k) {
  return "x " + fgtest::dims_str(k.x) + ", w " + fgtest::dims_str(k.w) + ", stride {" + std::to_string(k.sh) + ", " +
         std::to_string(k.sw) + "}, padding {" + std::to_string(k.ph) + ", " + std::to_string(k.pw) +
         "}, dilation {" + std::to_string(k.dh) + ", " + std::to_string(k.dw) + "}, groups " + std::to_string(k.groups);
}

const std::vector<Case>& grid() {
  static const std::vector<Case> cases = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1, 1, 1, 1, 1, 1},   // 3x3 "same"
      {{1, 2, 9, 8}, {3, 2, 3, 2}, 2, 1, 0, 1, 1, 1, 1},   // non-square kernel and stride, odd sizes
      {{2, 4, 8, 9}, {6, 2, 3, 3}, 1, 2, 2, 1, 2, 1, 2},   // dilation, groups 2
      {{1, 6, 5, 5}, {6, 1, 3, 3}, 1, 1, 1, 1, 1, 1, 6},   // depthwise
      {{3, 5, 4, 3}, {2, 5, 1, 1}, 1, 1, 0, 0, 1, 1, 1},   // 1x1
      {{1, 1, 5, 7}, {2, 1, 5, 7}, 1, 1, 0, 0, 1, 1, 1},   // the kernel covers the input: 1x1 out
      {{2, 3, 6, 6}, {3, 3, 2, 2}, 3, 3, 1, 1, 1, 1, 1},   // stride larger than the kernel
      {{1, 2, 3, 3}, {2, 2, 3, 3}, 1, 1, 2, 2, 2, 2, 1},   // windows mostly in the padding
  };
  return cases;
}

TEST_CASE("conv2d: values against the direct convolution over a grid of geometries", "[nn][conv]") {
  std::mt19937 rng(1701);
  for (const Case& k : grid()) {
    INFO(describe(k));
    auto x = fgtest::random_double<4>(k.x, rng);
    auto w = fgtest::random_double<4>(k.w, rng);
    auto b = fgtest::random_double<1>(Dims{k.w[0]}, rng);
    const Ref rx = fgtest::ref_of(x), rw = fgtest::ref_of(w), rb = fgtest::ref_of(b);
    const Ref want = conv_ref(rx, rw, &rb, k);
    fg::Tensor<double, 4> y = fg::nn::conv2d(x, w, b, options_of(k));
    CHECK(fgtest::compare(y, want, 1e-13, 1e-13) == "");
    fg::Tensor<double, 4> nb = fg::nn::conv2d(x, w, options_of(k));
    CHECK(fgtest::compare(nb, conv_ref(rx, rw, nullptr, k), 1e-13, 1e-13) == "");
    // float against double
    fg::Tensor<float, 4> yf = fg::nn::conv2d(fgtest::to_float(x), fgtest::to_float(w), fgtest::to_float(b), options_of(k));
    CHECK(fgtest::compare(yf, want, 1e-4, 1e-4) == "");
  }
}

TEST_CASE("conv2d: gradients of input, weight and bias against finite differences", "[nn][conv][grad]") {
  std::mt19937 rng(1702);
  for (const Case& k : grid()) {
    INFO(describe(k));
    auto x = fgtest::random_double<4>(k.x, rng);
    auto w = fgtest::random_double<4>(k.w, rng);
    auto b = fgtest::random_double<1>(Dims{k.w[0]}, rng);
    const auto opts = options_of(k);
    // A non-linear loss, so that every output element's gradient differs.
    check_gradients(describe(k), [&](auto& xv, auto& wv, auto& bv) {
      return fg::sum(fg::sin(fg::nn::conv2d(xv, wv, bv, opts)));
    }, rng, x, w, b);
  }
}

TEST_CASE("conv2d: an activation over it, inside a network of statements", "[nn][conv][grad]") {
  std::mt19937 rng(1703);
  auto x = fgtest::random_double<4>(Dims{2, 3, 6, 5}, rng);
  auto w1 = fgtest::random_double<4>(Dims{4, 3, 3, 3}, rng);
  auto w2 = fgtest::random_double<4>(Dims{2, 4, 3, 3}, rng);
  auto b1 = fgtest::random_double<1>(Dims{4}, rng);
  check_gradients("two convolutions with a tanh between", [&](auto& xv, auto& w1v, auto& w2v, auto& b1v) {
    return fg::sum(fg::square(fg::nn::conv2d(fg::tanh(fg::nn::conv2d(xv, w1v, b1v, {.padding = 1})), w2v,
                                             {.stride = 2})));
  }, rng, x, w1, w2, b1);
}

TEST_CASE("conv2d: kernel counts forward and backward", "[nn][conv][fusion]") {
  std::mt19937 rng(1704);
  auto x = fgtest::random_tensor<float, 4>(Dims{4, 3, 8, 8}, rng);
  auto w = fgtest::random_tensor<float, 4>(Dims{8, 3, 3, 3}, rng);
  auto b = fgtest::random_tensor<float, 1>(Dims{8}, rng);
  fg::Tensor<float, 4> y = fgtest::poisoned<float, 4>(fg::Shape<4>({4, 8, 8, 8}));
  LaunchCounter count;
  y = fg::relu(fg::nn::conv2d(x, w, b, {.padding = 1}));
  // The unfolding, one GEMM over the batch, bias + ReLU.
  CHECK(count.gemms() == 1);
  CHECK(count.launches() == 3);
  CHECK(fgtest::all_finite(y));
  count.restart();
  auto [gx, gw, gb] = fg::grad(fg::sum(fg::relu(fg::nn::conv2d(x, w, b, {.padding = 1}))), x, w, b);
  INFO("conv2d forward + backward: " << count.gemms() << " GEMMs, " << count.launches() << " kernels");
  // Forward: the unfolding and the GEMM (2). Backward (9): the upstream gradient (ReLU's mask)
  // materialised once as a GEMM operand; dW = g colsᵀ as one GEMM over the batch, summed over the
  // images; dcols = Wᵀ g, one GEMM; fold(dcols) into dx; db = Σ g over N, H, W in one reduction
  // (the kept channel axis between the summed ones).
  CHECK(count.gemms() == 3);
  CHECK(count.launches() == 11);
  CHECK(fgtest::all_finite(gx));
  CHECK(fgtest::all_finite(gw));
  CHECK(fgtest::all_finite(gb));
}

TEST_CASE("conv2d: shape errors name conv2d and every shape", "[nn][conv][errors]") {
  std::mt19937 rng(1705);
  auto x = fgtest::random_tensor<float, 4>(Dims{2, 4, 5, 5}, rng);
  auto w = fgtest::random_tensor<float, 4>(Dims{6, 4, 3, 3}, rng);
  auto b = fgtest::random_tensor<float, 1>(Dims{6}, rng);
  auto message = [&](auto&& f) { return fgtest::thrown_message<fg::shape_error>(f); };
  // Channel mismatch.
  auto w3 = fgtest::random_tensor<float, 4>(Dims{6, 3, 3, 3}, rng);
  std::string msg = message([&] { (void)fg::nn::conv2d(x, w3, b); });
  CHECK(msg.find("conv2d") != std::string::npos);
  CHECK(msg.find("[2, 4, 5, 5]") != std::string::npos);
  CHECK(msg.find("[6, 3, 3, 3]") != std::string::npos);
  CHECK(msg.find("input channels per group") != std::string::npos);
  // A kernel larger than the padded input.
  auto big = fgtest::random_tensor<float, 4>(Dims{6, 4, 7, 3}, rng);
  msg = message([&] { (void)fg::nn::conv2d(x, big, {.padding = {0, 1}}); });
  CHECK(msg.find("larger than the padded input") != std::string::npos);
  CHECK(msg.find("[6, 4, 7, 3]") != std::string::npos);
  CHECK(message([&] { (void)fg::nn::conv2d(x, big, {.padding = 1}); }) == "<nothing thrown>");  // 7 <= 5 + 2
  // Dilation makes the kernel span larger.
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.dilation = 3}); }).find("dilated: 7 x 7") != std::string::npos);
  // Non-positive stride or dilation, negative padding, groups that do not divide.
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.stride = 0}); }).find("stride must be positive") != std::string::npos);
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.stride = {1, -1}}); }).find("stride must be positive") !=
        std::string::npos);
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.dilation = 0}); }).find("dilation must be positive") !=
        std::string::npos);
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.padding = -1}); }).find("padding must not be negative") !=
        std::string::npos);
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.groups = 3}); }).find("groups must divide") != std::string::npos);
  CHECK(message([&] { (void)fg::nn::conv2d(x, w, {.groups = 0}); }).find("groups must be positive") !=
        std::string::npos);
  // A bias of the wrong length.
  auto b5 = fgtest::random_tensor<float, 1>(Dims{5}, rng);
  msg = message([&] { (void)fg::nn::conv2d(x, w, b5); });
  CHECK(msg.find("bias has 5 elements for 6 output channels") != std::string::npos);
  CHECK(msg.find("[6, 4, 3, 3]") != std::string::npos);
  // Nothing ran for any of them.
}

TEST_CASE("conv2d: an empty batch is an empty result", "[nn][conv][edge]") {
  std::mt19937 rng(1706);
  fg::Tensor<float, 4> x(fg::Shape<4>({0, 3, 5, 5}));
  auto w = fgtest::random_tensor<float, 4>(Dims{2, 3, 3, 3}, rng);
  fg::Tensor<float, 4> y = fg::nn::conv2d(x, w, {.padding = 1});
  CHECK(fgtest::dims_of(y.shape()) == Dims{0, 2, 5, 5});
  // No input channels: every output is the bias (an empty sum).
  fg::Tensor<double, 4> none(fg::Shape<4>({2, 0, 4, 4}));
  fg::Tensor<double, 4> w0(fg::Shape<4>({3, 0, 3, 3}));
  auto b = fgtest::random_double<1>(Dims{3}, rng);
  fg::Tensor<double, 4> yb = fg::nn::conv2d(none, w0, b, {.padding = 1});
  CHECK(fgtest::compare(yb, fgtest::broadcast_to(fgtest::reshape(fgtest::ref_of(b), Dims{3, 1, 1}), Dims{2, 3, 4, 4}),
                        0, 0) == "");
}

TEST_CASE("Conv2d layer: shapes, names, initialisation from a seed, forward", "[nn][conv][module]") {
  static_assert(fg::nn::module<fg::nn::Conv2d<float>>);
  fg::nn::Conv2d<double> c(4, 6, {3, 2}, /*seed*/ 7, {.padding = 1, .groups = 2});
  CHECK(fgtest::dims_of(c.weight.shape()) == Dims{6, 2, 3, 2});
  CHECK(fgtest::dims_of(c.bias.shape()) == Dims{6});
  CHECK(fg::nn::parameter_names(c) == std::vector<std::string>{"weight", "bias"});
  // He-uniform: |w| <= √2 · √(3 / fan_in), fan_in = 2 · 3 · 2; bias within 1/√fan_in; not all equal.
  const auto w = c.weight.to_vector();
  const auto b = c.bias.to_vector();
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 12.0);
  CHECK(std::all_of(w.begin(), w.end(), [&](double v) { return std::abs(v) <= bound; }));
  CHECK(std::all_of(b.begin(), b.end(), [&](double v) { return std::abs(v) <= 1 / std::sqrt(12.0); }));
  CHECK(*std::max_element(w.begin(), w.end()) - *std::min_element(w.begin(), w.end()) > bound);
  fg::nn::Conv2d<double> again(4, 6, {3, 2}, 7, {.padding = 1, .groups = 2});
  CHECK(again.weight.to_vector() == w);
  again.reset(8);
  CHECK(again.weight.to_vector() != w);
  again.reset(7);
  CHECK(again.bias.to_vector() == b);
  std::mt19937 rng(1707);
  auto x = fgtest::random_double<4>(Dims{2, 4, 5, 4}, rng);
  const Case k{{2, 4, 5, 4}, {6, 2, 3, 2}, 1, 1, 1, 1, 1, 1, 2};
  const Ref rb = fgtest::ref_of(c.bias);
  fg::Tensor<double, 4> y = c(x);
  CHECK(fgtest::compare(y, conv_ref(fgtest::ref_of(x), fgtest::ref_of(c.weight), &rb, k), 1e-13, 1e-13) == "");
  // flatten: a free view of a tensor, a lazy reshape of an expression.
  const auto flat = fg::flatten(y);
  CHECK(flat.data == y.data());
  CHECK(fgtest::dims_of(flat.shape()) == Dims{2, 6 * 5 * 5});
  fg::Tensor<double, 2> fe = fg::flatten(y * 2.0);
  CHECK(fgtest::dims_of(fe.shape()) == Dims{2, 150});
  CHECK(fe.to_vector()[37] == 2 * y.to_vector()[37]);
  CHECK(fgtest::dims_of(fg::flatten(fg::Tensor<float, 4>(fg::Shape<4>({0, 3, 2, 2}))).shape()) == Dims{0, 12});
  CHECK(fgtest::thrown_message<fg::shape_error>([] { fg::nn::Conv2d<float>(3, 4, 3, 1, {.groups = 2}); })
            .find("Conv2d: groups 2 must be positive and divide the 3 input and 4 output channels") !=
        std::string::npos);
}

}  // namespace test_conv
