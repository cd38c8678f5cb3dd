// tests/test_batch_norm.cpp — nn::batch_norm and the BatchNorm layer: values against a double
// reference in training and evaluation mode (ranks 2, 3, 4; data far from zero), the running
// moments, gradients against central finite differences, kernel counts, statements, the layer's
// parameters and buffers (checkpoints), NaN, empty batches and every error.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_batch_norm {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;
using fgtest::Ref;

/// Every channel's mean and population variance of x (N, C, ...), in double, two passes.
void moments_ref(const Ref& x, std::vector<double>& mean, std::vector<double>& var) {
  const index_t n = x.shape[0], c = x.shape[1];
  const index_t inner = n == 0 || c == 0 ? 0 : fgtest::numel(x.shape) / (n * c);
  mean.assign(static_cast<std::size_t>(c), 0.0);
  var.assign(static_cast<std::size_t>(c), 0.0);
  const double count = static_cast<double>(n * inner);
  for (index_t ch = 0; ch < c; ++ch) {
    double s = 0;
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < inner; ++j) {
        s += x.v[static_cast<std::size_t>((i * c + ch) * inner + j)];
      }
    }
    const double mu = s / count;
    double q = 0;
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < inner; ++j) {
        const double d = x.v[static_cast<std::size_t>((i * c + ch) * inner + j)] - mu;
        q += d * d;
      }
    }
    mean[static_cast<std::size_t>(ch)] = mu;
    var[static_cast<std::size_t>(ch)] = q / count;
  }
}

/// (x - mean_c) / √(var_c + eps) · γ_c + β_c.
Ref normalize_ref(const Ref& x, const std::vector<double>& mean, const std::vector<double>& var, const Ref& gamma,
                  const Ref& beta, double eps) {
  const index_t c = x.shape[1];
  const index_t inner = x.shape[0] == 0 || c == 0 ? 0 : fgtest::numel(x.shape) / (x.shape[0] * c);
  Ref out(x.shape);
  for (std::size_t i = 0; i < x.v.size(); ++i) {
    const auto ch = static_cast<std::size_t>((static_cast<index_t>(i) / inner) % c);
    out.v[i] = (x.v[i] - mean[ch]) / std::sqrt(var[ch] + eps) * gamma.v[ch] + beta.v[ch];
  }
  return out;
}

template <int R>
void check_training_values(const Dims& shape, double offset, std::mt19937& rng) {
  INFO("x " << fgtest::dims_str(shape) << " + " << offset);
  const index_t c = shape[1];
  auto x = fgtest::random_double<R>(shape, rng, offset - 1, offset + 1);
  auto gamma = fgtest::random_double<1>(Dims{c}, rng, 0.5, 2);
  auto beta = fgtest::random_double<1>(Dims{c}, rng);
  std::vector<double> mean, var;
  moments_ref(fgtest::ref_of(x), mean, var);
  const Ref want = normalize_ref(fgtest::ref_of(x), mean, var, fgtest::ref_of(gamma), fgtest::ref_of(beta), 1e-5);
  fg::Tensor<double, R> y = fgtest::poisoned<double, R>(shape);
  y = fg::nn::batch_norm(x, gamma, beta);
  CHECK(fgtest::compare(y, want, 1e-9, 1e-9) == "");
  // Float against double: Welford's moments keep data far from zero accurate.
  fg::Tensor<float, R> yf =
      fg::nn::batch_norm(fgtest::to_float(x), fgtest::to_float(gamma), fgtest::to_float(beta));
  CHECK(fgtest::compare(yf, want, 2e-4, 2e-4) == "");
}

TEST_CASE("batch_norm: training values against a double reference, ranks 2 to 4", "[nn][batch_norm]") {
  std::mt19937 rng(1801);
  check_training_values<4>(Dims{4, 3, 5, 6}, 0.0, rng);
  check_training_values<4>(Dims{2, 5, 1, 1}, 0.0, rng);    // two values per channel
  check_training_values<4>(Dims{3, 1, 17, 9}, 0.0, rng);   // one channel
  check_training_values<4>(Dims{5, 4, 3, 3}, 1000.0, rng);  // far from zero: no cancellation
  check_training_values<2>(Dims{9, 6}, 0.0, rng);          // (N, C)
  check_training_values<3>(Dims{3, 4, 11}, 0.0, rng);      // (N, C, L)
  check_training_values<4>(Dims{2, 3, 33, 2}, -50.0, rng);  // rows longer than a vector
}

TEST_CASE("batch_norm: running moments in training, and evaluation mode", "[nn][batch_norm]") {
  std::mt19937 rng(1802);
  const Dims shape{4, 3, 5, 2};
  auto x = fgtest::random_double<4>(shape, rng, 2, 5);
  auto gamma = fgtest::random_double<1>(Dims{3}, rng, 0.5, 2);
  auto beta = fgtest::random_double<1>(Dims{3}, rng);
  auto rmean = fgtest::random_double<1>(Dims{3}, rng);
  auto rvar = fgtest::random_double<1>(Dims{3}, rng, 0.5, 2);
  const auto m0 = rmean.to_vector(), v0 = rvar.to_vector();
  std::vector<double> mean, var;
  moments_ref(fgtest::ref_of(x), mean, var);
  const double count = 4 * 5 * 2, momentum = 0.25;
  auto y = fg::nn::batch_norm(x, rmean, rvar, gamma, beta, /*training=*/true, momentum);
  CHECK(rmean.to_vector() == m0);  // lazy: nothing ran yet
  fg::Tensor<double, 4> out = y;
  CHECK(fgtest::compare(out, normalize_ref(fgtest::ref_of(x), mean, var, fgtest::ref_of(gamma), fgtest::ref_of(beta), 1e-5),
                        1e-10, 1e-10) == "");
  const auto m1 = rmean.to_vector(), v1 = rvar.to_vector();
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(m1[c] == Approx((1 - momentum) * m0[c] + momentum * mean[c]).epsilon(1e-12));
    // The unbiased variance, as PyTorch.
    CHECK(v1[c] == Approx((1 - momentum) * v0[c] + momentum * var[c] * count / (count - 1)).epsilon(1e-12));
  }
  // Each evaluation is one forward pass: the moments move again.
  out = y;
  CHECK(rmean.to_vector()[0] == Approx((1 - momentum) * m1[0] + momentum * mean[0]).epsilon(1e-12));
  // Evaluation: the running moments normalise, and stay as they are.
  const auto m2 = rmean.to_vector(), v2 = rvar.to_vector();
  fg::Tensor<double, 4> ev = fg::nn::batch_norm(x, rmean, rvar, gamma, beta, /*training=*/false, momentum);
  CHECK(fgtest::compare(ev, normalize_ref(fgtest::ref_of(x), m2, v2, fgtest::ref_of(gamma), fgtest::ref_of(beta), 1e-5),
                        1e-12, 1e-12) == "");
  CHECK(rmean.to_vector() == m2);
  CHECK(rvar.to_vector() == v2);
  // One value per channel is fine in evaluation.
  auto one = fgtest::random_double<4>(Dims{1, 3, 1, 1}, rng);
  fg::Tensor<double, 4> ev1 = fg::nn::batch_norm(one, rmean, rvar, gamma, beta, false);
  CHECK(fgtest::all_finite(ev1));
}

TEST_CASE("batch_norm: gradients against finite differences, training and evaluation", "[nn][batch_norm][grad]") {
  std::mt19937 rng(1803);
  for (const Dims& shape : {Dims{3, 2, 4, 3}, Dims{5, 3}, Dims{2, 4, 3}}) {
    const index_t c = shape[1];
    auto gamma = fgtest::random_double<1>(Dims{c}, rng, 0.5, 2);
    auto beta = fgtest::random_double<1>(Dims{c}, rng);
    if (shape.size() == 4) {
      auto x = fgtest::random_double<4>(shape, rng, -2, 3);
      // A loss that is not linear in y, so that the Σ terms of the rule matter.
      check_gradients("training " + fgtest::dims_str(shape), [&](auto& xv, auto& gv, auto& bv) {
        return fg::sum(fg::sin(fg::nn::batch_norm(xv, gv, bv) * 1.5));
      }, rng, x, gamma, beta);
      // With an activation after it and a lazy operand before it.
      check_gradients("relu(bn(tanh(x)))", [&](auto& xv, auto& gv, auto& bv) {
        return fg::sum(fg::square(fg::relu(fg::nn::batch_norm(fg::tanh(xv), gv, bv)) - 0.3));
      }, rng, x, gamma, beta);
      // Evaluation mode: the running moments are constants.
      auto rmean = fgtest::random_double<1>(Dims{c}, rng);
      auto rvar = fgtest::random_double<1>(Dims{c}, rng, 0.5, 2);
      auto rmean_f = fgtest::to_float(rmean);
      auto rvar_f = fgtest::to_float(rvar);
      check_gradients("evaluation " + fgtest::dims_str(shape), [&](auto& xv, auto& gv, auto& bv) {
        using T = typename std::remove_cvref_t<decltype(xv)>::element_type;
        if constexpr (std::is_same_v<T, double>) {
          return fg::sum(fg::sin(fg::nn::batch_norm(xv, rmean, rvar, gv, bv, false)));
        } else {
          return fg::sum(fg::sin(fg::nn::batch_norm(xv, rmean_f, rvar_f, gv, bv, false)));
        }
      }, rng, x, gamma, beta);
    } else if (shape.size() == 3) {
      auto x = fgtest::random_double<3>(shape, rng);
      check_gradients("training " + fgtest::dims_str(shape), [&](auto& xv, auto& gv, auto& bv) {
        return fg::sum(fg::cos(fg::nn::batch_norm(xv, gv, bv)));
      }, rng, x, gamma, beta);
    } else {
      auto x = fgtest::random_double<2>(shape, rng);
      check_gradients("training " + fgtest::dims_str(shape), [&](auto& xv, auto& gv, auto& bv) {
        return fg::sum(fg::cos(fg::nn::batch_norm(xv, gv, bv)));
      }, rng, x, gamma, beta);
    }
  }
}

TEST_CASE("batch_norm: kernel counts forward and backward", "[nn][batch_norm][fusion]") {
  std::mt19937 rng(1804);
  auto x = fgtest::random_tensor<float, 4>(Dims{8, 4, 6, 6}, rng);
  auto gamma = fgtest::random_tensor<float, 1>(Dims{4}, rng, 0.5, 2);
  auto beta = fgtest::random_tensor<float, 1>(Dims{4}, rng);
  fg::Tensor<float, 1> rmean(fg::Shape<1>({4})), rvar(fg::Shape<1>({4}));
  rmean.fill(0.f);
  rvar.fill(1.f);
  fg::Tensor<float, 4> y = fgtest::poisoned<float, 4>(fg::Shape<4>({8, 4, 6, 6}));
  LaunchCounter count;
  y = fg::relu(fg::nn::batch_norm(x, rmean, rvar, gamma, beta, true));
  // The moments (one reduction), r = 1/√(σ² + ε) and the running update (one kernel over C),
  // normalise + affine + ReLU.
  CHECK(count.launches() == 3);
  CHECK(fgtest::all_finite(y));
  count.restart();
  y = fg::relu(fg::nn::batch_norm(x, rmean, rvar, gamma, beta, false));
  CHECK(count.launches() == 2);  // {mean, r} from the running moments (C), normalise + affine + ReLU
  count.restart();
  auto [gx, gg, gb] = fg::grad(fg::sum(fg::square(fg::relu(fg::nn::batch_norm(x, gamma, beta)))), x, gamma, beta);
  INFO("batch_norm forward + backward: " << count.launches() << " kernels");
  // Forward (3): the moments, {μ, r} (C), the loss (one fused reduction). Backward (5): the
  // upstream gradient (ReLU's and the square's derivatives, one kernel: it is read twice), then
  // batch norm's two: {Σg, Σ g x̂} per channel (one reduction) and dx (one element-wise kernel);
  // dγ and dβ are views of the sums, copied into the gradients (one small kernel each).
  CHECK(count.launches() == 8);
  CHECK(fgtest::all_finite(gx));
  CHECK(fgtest::all_finite(gg));
  CHECK(fgtest::all_finite(gb));
  CHECK(count.gemms() == 0);
}

TEST_CASE("batch_norm: in statements, the running moments move once per recorded forward", "[nn][batch_norm][var]") {
  std::mt19937 rng(1805);
  auto x = fgtest::random_double<4>(Dims{3, 2, 4, 4}, rng);
  auto w = fgtest::random_double<4>(Dims{2, 2, 3, 3}, rng);
  fg::nn::BatchNorm2d<double> bn(2);
  auto gamma0 = fgtest::random_double<1>(Dims{2}, rng, 0.5, 2);
  bn.weight = gamma0;
  fg::Var<double, 4> h = fg::relu(bn(fg::nn::conv2d(x, w, {.padding = 1})));
  const auto m1 = bn.running_mean.to_vector();
  auto [gw, gg] = fg::grad(fg::sum(fg::square(h)), w, bn.weight);
  CHECK(bn.running_mean.to_vector() == m1);  // the backward pass reused the saved moments
  // The same gradients as one expression, and as finite differences of it.
  const auto rm = bn.running_mean.to_vector();
  auto [gw2, gg2] = fg::grad(fg::sum(fg::square(fg::relu(bn(fg::nn::conv2d(x, w, {.padding = 1}))))), w, bn.weight);
  CHECK(fgtest::rel_error(fgtest::as_doubles(gw), fgtest::as_doubles(gw2)) < 1e-12);
  CHECK(fgtest::rel_error(fgtest::as_doubles(gg), fgtest::as_doubles(gg2)) < 1e-12);
  CHECK(bn.running_mean.to_vector() != rm);  // recorded once more: moved once more
  auto beta = fgtest::random_double<1>(Dims{2}, rng);
  check_gradients("bn(conv(x))", [&](auto& xv, auto& wv, auto& gv, auto& bv) {
    return fg::sum(fg::square(fg::relu(fg::nn::batch_norm(fg::nn::conv2d(xv, wv, {.padding = 1}), gv, bv))));
  }, rng, x, w, gamma0, beta);
}

/// Two batch-norm layers, one inside a vector.
struct Net {
  fg::nn::BatchNorm2d<float> bn{5};
  std::vector<fg::nn::BatchNorm2d<float>> more{fg::nn::BatchNorm2d<float>(5)};
  void fields(auto& f) {
    f("bn", bn);
    f("more", more);
  }
};

TEST_CASE("BatchNorm layer: parameters, buffers, modes, checkpoints", "[nn][batch_norm][module]") {
  static_assert(fg::nn::module<fg::nn::BatchNorm2d<float>>);
  fg::nn::BatchNorm2d<float> bn(5);
  CHECK(fg::nn::parameter_names(bn) == std::vector<std::string>{"weight", "bias"});
  CHECK(fg::nn::parameter_count(bn) == 10);
  std::vector<std::string> all;
  fg::nn::for_each_tensor(bn, [&](const std::string& name, const auto&) { all.push_back(name); });
  CHECK(all == std::vector<std::string>{"weight", "bias", "running_mean", "running_var"});
  CHECK(bn.weight.to_vector() == std::vector<float>(5, 1.f));
  CHECK(bn.running_var.to_vector() == std::vector<float>(5, 1.f));
  CHECK(fg::optim::params(bn).size() == 2);  // the optimizer never sees the buffers
  // Training moves the running moments; set_training(false) stops it.
  std::mt19937 rng(1806);
  auto x = fgtest::random_tensor<float, 4>(Dims{4, 5, 3, 3}, rng, 1, 3);
  fg::Tensor<float, 4> y = bn(x);
  const auto moved = bn.running_mean.to_vector();
  CHECK(moved != std::vector<float>(5, 0.f));
  Net net;
  net.bn = bn;
  fg::nn::set_training(net, false);
  CHECK(!net.bn.training);
  CHECK(!net.more[0].training);
  y = net.bn(x);
  CHECK(net.bn.running_mean.to_vector() == moved);
  fg::nn::set_training(net, true);
  CHECK(net.more[0].training);
  // Checkpoints hold the buffers.
  fg::io::Checkpoint c;
  fg::io::put_module(c, net);
  CHECK(c.contains("bn.running_mean"));
  CHECK(c.contains("more.0.running_var"));
  Net loaded;
  fg::io::get_module(c, loaded);
  CHECK(loaded.bn.running_mean.to_vector() == moved);
  // Evaluation output from the loaded layer equals the original's.
  loaded.bn.eval();
  net.bn.eval();
  fg::Tensor<float, 4> a = loaded.bn(x), b = net.bn(x);
  CHECK(a.to_vector() == b.to_vector());
}

TEST_CASE("batch_norm: NaN stays in its channel; an empty batch is an empty result", "[nn][batch_norm][edge]") {
  std::mt19937 rng(1807);
  auto x = fgtest::random_double<4>(Dims{2, 3, 2, 2}, rng);
  auto values = x.to_vector();
  values[4] = std::numeric_limits<double>::quiet_NaN();  // (0, 1, 0, 0): channel 1
  x = fgtest::tensor_from<double, 4>(x.shape(), values);
  auto gamma = fgtest::random_double<1>(Dims{3}, rng, 0.5, 2);
  auto beta = fgtest::random_double<1>(Dims{3}, rng);
  fg::Tensor<double, 4> y = fg::nn::batch_norm(x, gamma, beta);
  const auto out = y.to_vector();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const bool channel1 = (i / 4) % 3 == 1;
    INFO("element " << i);
    CHECK(std::isnan(out[i]) == channel1);
  }
  // No images: nothing to normalise, the running moments untouched.
  fg::Tensor<float, 4> empty(fg::Shape<4>({0, 3, 4, 4}));
  fg::nn::BatchNorm2d<float> bn(3);
  fg::Tensor<float, 4> e = bn(empty);
  CHECK(fgtest::dims_of(e.shape()) == Dims{0, 3, 4, 4});
  CHECK(bn.running_mean.to_vector() == std::vector<float>(3, 0.f));
  CHECK(bn.running_var.to_vector() == std::vector<float>(3, 1.f));
  // No channels.
  fg::Tensor<float, 4> none(fg::Shape<4>({2, 0, 3, 3}));
  fg::nn::BatchNorm2d<float> bn0(0);
  fg::Tensor<float, 4> e0 = bn0(none);
  CHECK(e0.size() == 0);
}

TEST_CASE("batch_norm: errors name batch_norm and the shapes", "[nn][batch_norm][errors]") {
  std::mt19937 rng(1808);
  auto x = fgtest::random_tensor<float, 4>(Dims{2, 4, 3, 3}, rng);
  auto g4 = fgtest::random_tensor<float, 1>(Dims{4}, rng);
  auto g3 = fgtest::random_tensor<float, 1>(Dims{3}, rng);
  fg::Tensor<float, 1> rm(fg::Shape<1>({4})), rv5(fg::Shape<1>({5}));
  rm.fill(0.f);
  rv5.fill(1.f);
  auto message = [&](auto&& f) { return fgtest::thrown_message<fg::shape_error>(f); };
  std::string msg = message([&] { (void)fg::nn::batch_norm(x, g3, g4); });
  CHECK(msg.find("batch_norm") != std::string::npos);
  CHECK(msg.find("[2, 4, 3, 3]") != std::string::npos);
  CHECK(msg.find("[3]") != std::string::npos);
  msg = message([&] { (void)fg::nn::batch_norm(x, rm, rv5, g4, g4, true); });
  CHECK(msg.find("[5]") != std::string::npos);
  // One value per channel cannot be normalised by its own variance.
  auto single = fgtest::random_tensor<float, 4>(Dims{1, 4, 1, 1}, rng);
  msg = message([&] { (void)fg::nn::batch_norm(single, g4, g4); });
  CHECK(msg.find("more than one value per channel") != std::string::npos);
  CHECK(msg.find("[1, 4, 1, 1]") != std::string::npos);
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)fg::nn::batch_norm(x, g4, g4, -1.0); }).find("eps") !=
        std::string::npos);
  fg::Tensor<float, 1> rv(fg::Shape<1>({4}));
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)fg::nn::batch_norm(x, rm, rv, g4, g4, true, 1.5); })
            .find("momentum") != std::string::npos);
  // Nothing ran for any of them.
  CHECK(rm.to_vector() == std::vector<float>(4, 0.f));
}

}  // namespace test_batch_norm
