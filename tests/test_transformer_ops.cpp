// tests/test_transformer_ops.cpp — the ops of transformers: the softmax family (stable at any
// magnitude, causally masked), gelu / gelu_tanh / silu. Values against double references written
// here, gradients against central finite differences, kernel counts, errors and edge cases.
#include <fusegrad/fusegrad.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_transformer_ops {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;
using fgtest::Ref;

/// softmax (or log-softmax) of a C-order array along its last axis, in double, shifted by the row
/// maximum; `causal` masks key j of query row i (the axis before the last) when j > i.
Ref softmax_ref(const Ref& x, bool log, bool causal = false) {
  Ref out(x.shape);
  const index_t cols = x.shape.back();
  const index_t queries = x.rank() >= 2 ? x.shape[x.shape.size() - 2] : 1;
  for (index_t r = 0; cols > 0 && r < x.size() / cols; ++r) {
    const index_t q = r % queries;
    auto kept = [&](index_t j) { return !causal || j <= q; };
    double m = -INFINITY;
    for (index_t j = 0; j < cols; ++j) {
      if (kept(j)) {
        m = std::max(m, x.v[static_cast<std::size_t>(r * cols + j)]);
      }
    }
    double s = 0;
    for (index_t j = 0; j < cols; ++j) {
      if (kept(j)) {
        s += std::exp(x.v[static_cast<std::size_t>(r * cols + j)] - m);
      }
    }
    for (index_t j = 0; j < cols; ++j) {
      const double d = x.v[static_cast<std::size_t>(r * cols + j)] - m - std::log(s);
      out.v[static_cast<std::size_t>(r * cols + j)] =
          kept(j) ? (log ? d : std::exp(d)) : (log ? -INFINITY : 0.0);
    }
  }
  return out;
}

template <int R>
fg::Tensor<float, R> float_tensor(const Dims& d, const std::vector<double>& v) {
  return fgtest::tensor_from<float, R>(fgtest::shape_of<R>(d), std::vector<float>(v.begin(), v.end()));
}

TEST_CASE("softmax family: maximum/minimum inside, also with `using namespace fusegrad`",
          "[nn][softmax]") {
  std::mt19937 rng(1201);
  auto a = fgtest::random_tensor<double, 2>(Dims{3, 4}, rng);
  auto b = fgtest::random_tensor<double, 2>(Dims{3, 4}, rng);
  fg::Tensor<double, 2> p = fg::nn::softmax(fg::maximum(a, b));
  fg::Tensor<double, 2> q = fg::nn::log_softmax(fg::minimum(a, b), 0);
  {
    using namespace fusegrad;
    fg::Tensor<double, 2> e = exp(maximum(a, b)) + log(abs(minimum(a, b)) + 1.0);
    const Ref want = fgtest::map2(fgtest::ref_of(a), fgtest::ref_of(b), [](double x, double y) {
      return std::exp(std::max(x, y)) + std::log(std::abs(std::min(x, y)) + 1.0);
    });
    CHECK(fgtest::compare(e, want, 1e-15, 0) == "");
  }
  const Ref mx = fgtest::map2(fgtest::ref_of(a), fgtest::ref_of(b), [](double x, double y) { return std::max(x, y); });
  CHECK(fgtest::compare(p, softmax_ref(mx, false), 1e-14, 0) == "");
  const Ref mn = fgtest::map2(fgtest::ref_of(a), fgtest::ref_of(b), [](double x, double y) { return std::min(x, y); });
  CHECK(fgtest::compare(q, fgtest::transpose(softmax_ref(fgtest::transpose(mn), true)), 1e-14, 1e-15) == "");
}

TEST_CASE("softmax family: float logits far from zero keep float's precision", "[nn][softmax][stability]") {
  const std::vector<double> base = {0.5, -1, 1.5, 0, 2, -0.5};
  const std::vector<int> label_values = {2, 0};
  const auto labels = fgtest::tensor_from<int, 1>(fg::Shape<1>({2}), label_values);
  for (const double offset : {0.0, 5000.0, -5000.0, 1e4, -1e4}) {
    for (const double scale : {1.0, 30.0, 1e4}) {
      INFO("logits * " << scale << " + " << offset);
      std::vector<double> v(base.size());
      for (std::size_t i = 0; i < v.size(); ++i) {
        v[i] = static_cast<double>(static_cast<float>(base[i] * scale + offset));  // exact floats
      }
      const Ref x(Dims{2, 3}, v);
      auto z = float_tensor<2>(x.shape, v);
      // Values: softmax and log-softmax against double, a few float roundings.
      const Ref sm = softmax_ref(x, false), lsm = softmax_ref(x, true);
      CHECK(fgtest::compare(fg::Tensor<float, 2>(fg::nn::softmax(z)), sm, 4e-7, 1e-37) == "");
      CHECK(fgtest::compare(fg::Tensor<float, 2>(fg::nn::log_softmax(z)), lsm, 4e-7, 1e-6) == "");
      // Cross-entropy: the loss and its gradient softmax - onehot, over the mean of two rows.
      double want_loss = 0;
      Ref want_grad = sm;
      for (int r = 0; r < 2; ++r) {
        want_loss -= lsm.v[static_cast<std::size_t>(r * 3 + label_values[r])] / 2;
        for (int j = 0; j < 3; ++j) {
          auto& g = want_grad.v[static_cast<std::size_t>(r * 3 + j)];
          g = (g - (j == label_values[r] ? 1.0 : 0.0)) / 2;
        }
      }
      const auto loss = fg::mean(fg::nn::cross_entropy(z, labels));
      auto [value, grads] = fg::value_and_grad(loss, z);
      CHECK(std::abs(value.item() - want_loss) <= 4e-7 * want_loss + 1e-7);
      CHECK(fgtest::compare(std::get<0>(grads), want_grad, 1e-6, 1e-7) == "");
      // The same through log_softmax and softmax (their own fused rules).
      const auto nll = -fg::mean(fg::sum(fg::nn::log_softmax(z) * fg::nn::one_hot<float>(labels, 3), 1));
      auto [value2, grads2] = fg::value_and_grad(nll, z);
      CHECK(std::abs(value2.item() - want_loss) <= 4e-7 * want_loss + 1e-7);
      CHECK(fgtest::compare(std::get<0>(grads2), want_grad, 1e-6, 1e-7) == "");
    }
  }
  // The figure: + 5000 gives 1.28413656 (float32 rounding of the exact 1.284136561...).
  std::vector<float> v(base.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<float>(base[i]) + 5000.f;
  }
  const auto z = fgtest::tensor_from<float, 2>(fg::Shape<2>({2, 3}), v);
  CHECK(std::abs(fg::mean(fg::nn::cross_entropy(z, labels)).item() - 1.28413656) < 2e-7);
}

TEST_CASE("softmax family: a shift shared by equal logits has gradient 0", "[nn][softmax][stability]") {
  // logits = 300 · w over two equal columns: d loss / d w = 300 (Σ_j p_j - 1) = 0 exactly; a
  // log-sum-exp rounded at 300 gave -0.00873 before.
  fg::Tensor<float, 2> x = fgtest::filled<float, 2>(fg::Shape<2>({2, 2}), 300.f);
  fg::Tensor<float, 1> w = fgtest::filled<float, 1>(fg::Shape<1>({1}), 1.f);
  const auto labels = fgtest::tensor_from<int, 1>(fg::Shape<1>({2}), std::vector<int>{0, 1});
  auto [g1] = fg::grad(fg::mean(fg::nn::cross_entropy(x * w, labels)), w);
  auto [g2] = fg::grad(-fg::sum(fg::nn::log_softmax(x * w) * fg::nn::one_hot<float>(labels, 2)), w);
  auto [g3] = fg::grad(fg::sum(fg::nn::softmax(x * w) * 3.f), w);
  for (const auto& g : {g1.item(), g2.item(), g3.item()}) {
    CHECK(std::abs(g) <= 300 * 4 * std::numeric_limits<float>::epsilon());
  }
  CHECK(fg::Tensor<float, 2>(fg::nn::softmax(x * w)).to_vector() == std::vector<float>(4, 0.5f));
}

TEST_CASE("softmax family: NaN, infinities and empty tensors", "[nn][softmax][edge]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const auto x = fgtest::tensor_from<float, 2>(fg::Shape<2>({3, 3}),
                                               std::vector<float>{-inf, 0, 1, 2, nan, 0, -inf, -inf, -inf});
  const auto p = fg::Tensor<float, 2>(fg::nn::softmax(x)).to_vector();
  CHECK(p[0] == 0.f);
  CHECK(std::abs(p[1] - 1 / (1 + std::exp(1.f))) < 1e-7);
  for (int i = 3; i < 9; ++i) {
    CHECK(std::isnan(p[static_cast<std::size_t>(i)]));  // a NaN poisons its row; a row of -inf has no softmax
  }
  const auto lp = fg::Tensor<float, 2>(fg::nn::log_softmax(x)).to_vector();
  CHECK(lp[0] == -inf);
  for (const Dims& d : {Dims{0, 4}, Dims{4, 0}, Dims{0, 0}}) {
    fg::Tensor<float, 2> e(fgtest::shape_of<2>(d));
    LaunchCounter count;
    fg::Tensor<float, 2> s = fg::nn::softmax(e, -1, fg::nn::causal);
    CHECK(s.shape() == e.shape());
    auto [ge] = fg::grad(fg::sum(fg::nn::log_softmax(e)), e);
    CHECK(ge.shape() == e.shape());
  }
}

TEST_CASE("causal softmax: values, gradients, one mask for any shape", "[nn][softmax][causal]") {
  std::mt19937 rng(1202);
  for (const Dims& d : {Dims{2, 3, 5, 5}, Dims{1, 1, 1, 1}, Dims{2, 1, 4, 7}, Dims{1, 2, 6, 3}}) {
    INFO("shape " << fgtest::dims_str(d));
    auto x = fgtest::random_double<4>(d, rng, -4, 4);
    const Ref scaled = fgtest::map1(fgtest::ref_of(x), [](double v) { return v * 0.7; });
    CHECK(fgtest::compare(fg::Tensor<double, 4>(fg::nn::softmax(x * 0.7, -1, fg::nn::causal)),
                          softmax_ref(scaled, false, true), 1e-14, 1e-16) == "");
    CHECK(fgtest::compare(fg::Tensor<double, 4>(fg::nn::log_softmax(x * 0.7, 3, fg::nn::causal)),
                          softmax_ref(scaled, true, true), 1e-14, 1e-14) == "");
    check_gradients("causal softmax", [](auto& v) {
      return fg::sum(fg::sin(fg::nn::softmax(v * 0.7, -1, fg::nn::causal) * 3.0));
    }, rng, x);
    check_gradients("causal log-softmax", [](auto& v) {
      return fg::sum(fg::sin(fg::nn::causal_fill(fg::nn::log_softmax(v, -1, fg::nn::causal), 0.0)));
    }, rng, x);
  }
  auto y = fgtest::random_double<2>(Dims{5, 4}, rng);
  check_gradients("softmax along the first axis", [](auto& v) { return fg::sum(fg::sin(fg::nn::softmax(v, 0) * 2.0)); }, rng, y);
  check_gradients("log_softmax of a shared operand", [](auto& v) {
    return fg::sum(fg::nn::log_softmax(v * v) * v);
  }, rng, y);
}

TEST_CASE("causal attention as the README writes it: values and gradients", "[nn][softmax][attention]") {
  std::mt19937 rng(1206);
  const index_t n = 3, t = 5, d = 4;
  auto q = fgtest::random_double<3>(Dims{n, t, d}, rng), k = fgtest::random_double<3>(Dims{n, t, d}, rng);
  auto v = fgtest::random_double<3>(Dims{n, t, d}, rng);
  const double scale = 1 / std::sqrt(double(d));
  auto attention = [scale](auto& qq, auto& kk, auto& vv) {
    using T = typename std::remove_cvref_t<decltype(qq)>::element_type;
    return fg::matmul(fg::nn::softmax(fg::matmul(qq, fg::permute(kk, {0, 2, 1})) * T(scale), -1, fg::nn::causal), vv);
  };
  const Ref scores = fgtest::map1(fgtest::matmul(fgtest::ref_of(q), fgtest::permute(fgtest::ref_of(k), {0, 2, 1})),
                                  [](double s) { return s / 2; });  // scale = 1/√4
  const Ref want = fgtest::matmul(softmax_ref(scores, false, true), fgtest::ref_of(v));
  CHECK(fgtest::compare(fg::Tensor<double, 3>(attention(q, k, v)), want, 1e-13, 1e-15) == "");
  check_gradients("attention", [&](auto& a, auto& b, auto& c) { return fg::sum(fg::sin(attention(a, b, c))); }, rng, q, k, v);
  // The library's composite: the same numbers; non-causal against its own reference; launches.
  CHECK(fgtest::compare(fg::Tensor<double, 3>(fg::nn::scaled_dot_product_attention(q, k, v, fg::nn::causal)), want,
                        1e-13, 1e-15) == "");
  CHECK(fgtest::compare(fg::Tensor<double, 3>(fg::nn::scaled_dot_product_attention(q, k, v)),
                        fgtest::matmul(softmax_ref(scores, false), fgtest::ref_of(v)), 1e-13, 1e-15) == "");
  auto k2 = fgtest::random_double<3>(Dims{n, t + 2, d}, rng), v2 = fgtest::random_double<3>(Dims{n, t + 2, 2}, rng);
  check_gradients("attention, more keys than queries", [](auto& a, auto& b, auto& c) {
    return fg::sum(fg::sin(fg::nn::scaled_dot_product_attention(a, b, c, fg::nn::causal)));
  }, rng, q, k2, v2);
  auto qf = fgtest::to_float(q), kf = fgtest::to_float(k), vf = fgtest::to_float(v);
  fg::Tensor<float, 3> y = fgtest::poisoned<float, 3>(q.shape());
  LaunchCounter count;
  y = fg::nn::scaled_dot_product_attention(qf, kf, vf, fg::nn::causal);
  CHECK(count.gemms() == 2);
  CHECK(count.launches() == 4);  // 2 GEMMs; the row log-sum-exp; the probabilities (the second GEMM reads them)
  count.restart();
  auto [gq, gk, gv] = fg::grad(fg::sum(fg::nn::scaled_dot_product_attention(qf, kf, vf, fg::nn::causal) * vf), qf, kf, vf);
  INFO("attention forward + backward: " << count.gemms() << " GEMMs, " << count.launches() << " kernels");
  CHECK(count.gemms() == 6);  // forward 2; backward: d(probabilities), dv, dq, dk
  // Forward: 2 GEMMs, log-sum-exp, probabilities, the loss sum. Backward: the upstream gradient
  // for the GEMMs, 4 GEMMs, the softmax rule's two kernels, v's direct term (the GEMM adds onto it).
  CHECK(count.launches() == 14);
  const auto msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::nn::scaled_dot_product_attention(qf, fgtest::to_float(k2), vf); });
  CHECK(msg.find("scaled_dot_product_attention") != std::string::npos);
  CHECK(msg.find("[3, 7, 4]") != std::string::npos);
}

/// `r` (contiguous) in another shape of the same size.
Ref reshaped(const Ref& r, const Dims& d) { return Ref(d, r.v); }

TEST_CASE("attention over [B, H, T, D] heads read in place: two batch axes, no copies", "[nn][attention][matmul]") {
  std::mt19937 rng(1213);
  const index_t b = 2, t = 5, h = 3, d = 4, c = h * d;
  auto qkv = fgtest::random_double<3>(Dims{b, t, 3 * c}, rng);
  // nanoGPT's split of one projection into heads, as views: [B, T, 3C] -> [3, B, H, T, D].
  auto head = [&](auto& x, index_t part) {
    return fg::select(fg::permute(fg::reshape(x, {b, t, 3, h, d}), {2, 0, 3, 1, 4}), 0, part);
  };
  const Ref split = fgtest::permute(reshaped(fgtest::ref_of(qkv), Dims{b, t, 3, h, d}), {2, 0, 3, 1, 4});
  auto head_ref = [&](index_t part) {  // [B·H, T, D]
    const auto n = static_cast<std::ptrdiff_t>(b * h * t * d);
    return Ref(Dims{b * h, t, d}, std::vector<double>(split.v.begin() + part * n, split.v.begin() + (part + 1) * n));
  };
  const Ref q = head_ref(0), k = head_ref(1), v = head_ref(2);
  // The scores: one GEMM over both batch axes, k's transpose a flag.
  fg::Tensor<double, 4> scores = fg::matmul(head(qkv, 0), fg::permute(head(qkv, 1), {0, 1, 3, 2}));
  CHECK(fgtest::compare(scores, reshaped(fgtest::matmul(q, fgtest::permute(k, {0, 2, 1})), Dims{b, h, t, t}), 1e-13,
                        1e-15) == "");
  const Ref probs = softmax_ref(fgtest::map1(fgtest::matmul(q, fgtest::permute(k, {0, 2, 1})),
                                             [](double s) { return s / 2; }), false, true);  // 1/√4
  CHECK(fgtest::compare(fg::Tensor<double, 4>(fg::nn::scaled_dot_product_attention(head(qkv, 0), head(qkv, 1),
                                                                                      head(qkv, 2), fg::nn::causal)),
                        reshaped(fgtest::matmul(probs, v), Dims{b, h, t, d}), 1e-13, 1e-15) == "");
  check_gradients("attention over head views of one projection", [&](auto& x) {
    return fg::sum(fg::sin(fg::nn::scaled_dot_product_attention(head(x, 0), head(x, 1), head(x, 2), fg::nn::causal)));
  }, rng, qkv);
  // Launches: the same as over [B·H, T, D] tensors — the views cost nothing.
  auto qkvf = fgtest::to_float(qkv);
  fg::Tensor<float, 4> y = fgtest::poisoned<float, 4>(fg::Shape<4>({b, h, t, d}));
  // cuBLAS takes one batch stride: a product reading a head view (batch strides over B and H that
  // do not compose) is one strided-batched call per entry of the shorter axis, min(B, H) = 2 here;
  // the host's GEMM walks both axes in one call.
#if defined(FG_BACKEND_CUDA)
  const index_t calls = std::min(b, h);
#else
  const index_t calls = 1;
#endif
  LaunchCounter count;
  y = fg::nn::scaled_dot_product_attention(head(qkvf, 0), head(qkvf, 1), head(qkvf, 2), fg::nn::causal);
  CHECK(count.gemms() == 2 * calls);
  CHECK(count.launches() == 2 + 2 * calls);
  count.restart();
  auto [g] = fg::grad(fg::sum(fg::nn::scaled_dot_product_attention(head(qkvf, 0), head(qkvf, 1), head(qkvf, 2),
                                                                   fg::nn::causal)), qkvf);
  INFO("attention over head views, forward + backward: " << count.gemms() << " GEMMs, " << count.launches() << " kernels");
  // Products reading a head view: forward q kᵀ and P v; backward d(P) = g vᵀ, dq = g k, dk = gᵀ q
  // (dv = Pᵀ g reads no view).
  CHECK(count.gemms() == 1 + 5 * calls);
  // 12 as over separate [B·H, T, D] variables (forward 2 GEMMs + 3 kernels; backward the upstream
  // gradient, 4 GEMMs, the softmax rule's 2), + 4: dq, dk and dv land in strided thirds of one
  // gradient (one zero fill, three scatters; a GEMM writing strided C would save those).
  CHECK(count.launches() == 10 + 1 + 5 * calls);
  (void)g;
}

TEST_CASE("matmul over two batch axes: shared operands, broadcasting, select", "[matmul][select]") {
  std::mt19937 rng(1214);
  auto a = fgtest::random_double<4>(Dims{2, 3, 4, 5}, rng);
  auto w = fgtest::random_double<2>(Dims{5, 6}, rng);     // shared by every batch entry
  auto hw = fgtest::random_double<3>(Dims{3, 5, 6}, rng);  // one per head, shared over the outer axis
  auto one = fgtest::random_double<4>(Dims{2, 1, 5, 6}, rng);  // one per outer entry
  const Ref ar = reshaped(fgtest::ref_of(a), Dims{6, 4, 5});
  CHECK(fgtest::compare(fg::Tensor<double, 4>(fg::matmul(a, w)), reshaped(fgtest::matmul(ar, fgtest::ref_of(w)), Dims{2, 3, 4, 6}),
                        1e-13, 1e-15) == "");
  // Per-head weights: batch entry (i, j) multiplies by hw[j].
  Ref want_h(Dims{2, 3, 4, 6}), want_o(Dims{2, 3, 4, 6});
  const auto av = fgtest::ref_of(a).v, hv = fgtest::ref_of(hw).v, ov = fgtest::ref_of(one).v;
  for (index_t i = 0; i < 2; ++i) {
    for (index_t j = 0; j < 3; ++j) {
      for (index_t r = 0; r < 4; ++r) {
        for (index_t col = 0; col < 6; ++col) {
          double sh = 0, so = 0;
          for (index_t l = 0; l < 5; ++l) {
            const double x = av[static_cast<std::size_t>(((i * 3 + j) * 4 + r) * 5 + l)];
            sh += x * hv[static_cast<std::size_t>((j * 5 + l) * 6 + col)];
            so += x * ov[static_cast<std::size_t>((i * 5 + l) * 6 + col)];
          }
          want_h.v[static_cast<std::size_t>(((i * 3 + j) * 4 + r) * 6 + col)] = sh;
          want_o.v[static_cast<std::size_t>(((i * 3 + j) * 4 + r) * 6 + col)] = so;
        }
      }
    }
  }
  CHECK(fgtest::compare(fg::Tensor<double, 4>(fg::matmul(a, hw)), want_h, 1e-13, 1e-15) == "");
  CHECK(fgtest::compare(fg::Tensor<double, 4>(fg::matmul(a, one)), want_o, 1e-13, 1e-15) == "");
  check_gradients("matmul, rank 4 by shared operands", [](auto& x, auto& p, auto& q, auto& r) {
    return fg::sum(fg::sin(fg::matmul(x, p))) + fg::sum(fg::cos(fg::matmul(x, q))) + fg::sum(fg::sin(fg::matmul(x, r)));
  }, rng, a, w, hw, one);
  // select: a view of a tensor (a leaf: no kernel), a reshaped slice of an expression.
  fg::Tensor<double, 3> s1 = fg::select(a, 1, 2);
  fg::Tensor<double, 3> s2 = fg::select(a * 2.0, 3, 4);
  const auto all = fgtest::ref_of(a).v;
  for (index_t i = 0; i < 2; ++i) {
    for (index_t r = 0; r < 4; ++r) {
      CHECK(s1.to_vector()[static_cast<std::size_t>((i * 4 + r) * 5 + 1)] ==
            all[static_cast<std::size_t>(((i * 3 + 2) * 4 + r) * 5 + 1)]);
      CHECK(s2.to_vector()[static_cast<std::size_t>((i * 3 + 1) * 4 + r)] ==
            2 * all[static_cast<std::size_t>(((i * 3 + 1) * 4 + r) * 5 + 4)]);
    }
  }
  check_gradients("select", [](auto& x) { return fg::sum(fg::sin(fg::select(x, 1, 2)) * fg::select(x * 3.0, 1, 0)); }, rng, a);
  auto msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::select(a, 1, 3); });
  CHECK(msg.find("select") != std::string::npos);
  CHECK(msg.find("[2, 3, 4, 5]") != std::string::npos);
  auto bad = fgtest::random_double<4>(Dims{2, 2, 4, 5}, rng);
  msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::matmul(bad, hw); });
  CHECK(msg.find("batch extents differ") != std::string::npos);
  CHECK(msg.find("[3, 5, 6]") != std::string::npos);
}

TEST_CASE("causal softmax: launches", "[nn][softmax][causal][fusion]") {
  std::mt19937 rng(1203);
  auto s = fgtest::random_tensor<float, 3>(Dims{4, 16, 16}, rng);
  auto t = fgtest::random_tensor<float, 3>(Dims{4, 16, 16}, rng);
  fg::Tensor<float, 3> out = fgtest::poisoned<float, 3>(fg::Shape<3>({4, 16, 16}));
  LaunchCounter count;
  out = fg::nn::softmax(s * 0.25f, -1, fg::nn::causal);
  CHECK(count.launches() == 2);  // the row log-sum-exp; the masked, scaled exponentials
  count.restart();
  auto [value, grads] = fg::value_and_grad(fg::sum(fg::nn::softmax(s * 0.25f, -1, fg::nn::causal) * t), s);
  // Forward: the row log-sum-exp, the fused loss sum. Backward: Σ g y per row; dx.
  CHECK(count.launches() == 4);
  (void)value;
  (void)grads;
}

TEST_CASE("causal softmax: errors", "[nn][softmax][causal][errors]") {
  fg::Tensor<float, 3> s(fg::Shape<3>({2, 3, 3}));
  const auto msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::nn::softmax(s, 1, fg::nn::causal); });
  CHECK(msg.find("softmax") != std::string::npos);
  CHECK(msg.find("last axis") != std::string::npos);
  CHECK(msg.find("[2, 3, 3]") != std::string::npos);
  CHECK(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::nn::log_softmax(s, 3); }).find("log_softmax") !=
        std::string::npos);
}

// The references avoid 1 + erf(t) and 1 + tanh(t), which cancel for negative t even in double.
double gelu_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_tanh_ref(double x) {
  return x / (1 + std::exp(-2 * std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu_ref(double x) { return x / (1 + std::exp(-x)); }

TEST_CASE("gelu, gelu_tanh, silu: values and gradients", "[nn][activations]") {
  std::mt19937 rng(1204);
  std::vector<double> v = {0, -0.0, 1, -1, 3, -3, 8, -8, 30, -30, 1e4, -1e4};
  for (int i = 0; i < 52; ++i) {
    v.push_back(std::uniform_real_distribution<double>(-6, 6)(rng));
  }
  const Dims d{8, 8};
  const auto xd = fgtest::tensor_from<double, 2>(fg::Shape<2>({8, 8}), v);
  const auto xf = float_tensor<2>(d, v);
  const Ref x(d, v), xr = fgtest::ref_of(xf);  // xr: the float-rounded inputs
  CHECK(fgtest::compare(fg::Tensor<double, 2>(fg::gelu(xd)), fgtest::map1(x, gelu_ref), 1e-12, 1e-300) == "");
  CHECK(fgtest::compare(fg::Tensor<double, 2>(fg::gelu_tanh(xd)), fgtest::map1(x, gelu_tanh_ref), 1e-15, 1e-300) == "");
  CHECK(fgtest::compare(fg::Tensor<double, 2>(fg::silu(xd)), fgtest::map1(x, silu_ref), 1e-15, 1e-300) == "");
  CHECK(fgtest::compare(fg::Tensor<float, 2>(fg::gelu(xf)), fgtest::map1(xr, gelu_ref), 4e-6, 1e-37) == "");
  CHECK(fgtest::compare(fg::Tensor<float, 2>(fg::gelu_tanh(xf)), fgtest::map1(xr, gelu_tanh_ref), 4e-6, 1e-37) == "");
  CHECK(fgtest::compare(fg::Tensor<float, 2>(fg::silu(xf)), fgtest::map1(xr, silu_ref), 6e-7, 1e-37) == "");
  // (For negative x both forms are ill-conditioned in their argument: Φ(x) = ½ erfc(-x/√2) has
  // condition number ~x², so rounding x/√2 costs up to 64 · 2⁻²⁴ ≈ 4e-6 relative at x = -8 (1e-14
  // in double, 1e-13 at x = -30); σ(2u) costs |2u| ≈ 49 roundings there.)
  // Published values: GELU(1) = 0.8413447460685429, tanh form 0.8411919906082768.
  CHECK(std::abs(fg::gelu(xd).to_vector()[2] - 0.8413447460685429) < 1e-15);
  CHECK(std::abs(fg::gelu_tanh(xd).to_vector()[2] - 0.8411919906082768) < 1e-15);
  auto y = fgtest::random_double<2>(Dims{7, 9}, rng, -5, 5);
  check_gradients("gelu", [](auto& t) { return fg::sum(fg::sin(fg::gelu(t))); }, rng, y);
  check_gradients("gelu_tanh", [](auto& t) { return fg::sum(fg::sin(fg::gelu_tanh(t))); }, rng, y);
  check_gradients("silu", [](auto& t) { return fg::sum(fg::sin(fg::silu(t) * t)); }, rng, y);
  // One kernel for the activation and its gradient chain.
  auto f = fgtest::random_tensor<float, 2>(Dims{33, 17}, rng);
  LaunchCounter count;
  auto [g] = fg::grad(fg::sum(fg::gelu_tanh(f * 2.f + 1.f)), f);
  CHECK(count.launches() == 2);
  (void)g;
}

}  // namespace test_transformer_ops

namespace test_transformer_ops {

/// Whether dropout keeps element `position` under `seed`: the documented mask, computed here.
bool kept_ref(index_t position, std::uint64_t seed, float p) {
  const auto w = fg::FG_BACKEND_NS::detail::Philox::generate(static_cast<std::uint64_t>(position), seed);
  return static_cast<float>(w.c[0] >> 8) * (1.0f / 16777216.0f) >= p;
}

TEST_CASE("dropout: the documented mask, rescaled, regenerated in the backward pass", "[nn][dropout]") {
  std::mt19937 rng(1205);
  auto x = fgtest::random_tensor<float, 3>(Dims{3, 50, 40}, rng);
  auto t = fgtest::random_tensor<float, 3>(Dims{3, 50, 40}, rng);
  const auto xv = x.to_vector();
  for (const double p : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    INFO("p = " << p);
    const std::uint64_t seed = 77 + static_cast<std::uint64_t>(p * 10);
    fg::Tensor<float, 3> y = fgtest::poisoned<float, 3>(x.shape());
    LaunchCounter count;
    y = fg::nn::dropout(x * 2.f, p, seed);
    CHECK(count.launches() == 1);
    const auto yv = y.to_vector();
    const float scale = p < 1 ? static_cast<float>(1 / (1 - p)) : 0.f;
    std::size_t kept = 0, wrong = 0;
    for (std::size_t i = 0; i < yv.size(); ++i) {
      const bool k = kept_ref(static_cast<index_t>(i), seed, static_cast<float>(p));
      kept += k;
      wrong += yv[i] != (k ? (xv[i] * 2.f) * scale : 0.f);
    }
    CHECK(wrong == 0);
    // The kept fraction is binomial: within 5 standard deviations of 1 - p.
    const double n = static_cast<double>(yv.size());
    CHECK(std::abs(static_cast<double>(kept) / n - (1 - p)) <= 5 * std::sqrt(p * (1 - p) / n) + 1e-12);
    // The gradient: the same mask and scale on the upstream gradient, bit for bit.
    count.restart();
    auto [g] = fg::grad(fg::sum(fg::nn::dropout(x * 2.f, p, seed) * t), x);
    fg::Tensor<float, 3> want = fg::nn::dropout(t * 2.f, p, seed);
    CHECK(g.to_vector() == want.to_vector());
  }
  // A strided operand gets the mask of its logical position; another seed, another mask.
  fg::Tensor<float, 2> a = fg::nn::dropout(fg::transpose(fg::reshape(fg::slice(x, 0, 0, 1), {50, 40})), 0.5, 3);
  const auto av = a.to_vector();  // (40, 50): a[i, j] = x[0, j, i] · 2 where kept(i · 50 + j)
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < 40; ++i) {
    for (std::size_t j = 0; j < 50; ++j) {
      const float want = kept_ref(static_cast<index_t>(i * 50 + j), 3, 0.5f) ? xv[j * 40 + i] * 2.f : 0.f;
      wrong += av[i * 50 + j] != want;
    }
  }
  CHECK(wrong == 0);
  fg::Tensor<float, 3> y1 = fg::nn::dropout(x, 0.5, 1), y2 = fg::nn::dropout(x, 0.5, 2);
  CHECK(y1.to_vector() != y2.to_vector());
  auto z = fgtest::random_double<2>(Dims{6, 7}, rng);
  check_gradients("dropout", [](auto& v) { return fg::sum(fg::sin(fg::nn::dropout(v * v, 0.3, 9))); }, rng, z);
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)fg::nn::dropout(x, 1.5, 0); }).find("dropout") != std::string::npos);
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)fg::nn::dropout(x, -0.1, 0); }).find("[0, 1]") != std::string::npos);
}

TEST_CASE("WarmupCosine: nanoGPT's schedule", "[optim][schedule]") {
  const fg::optim::WarmupCosine s{.lr = 1e-3, .min_lr = 1e-4, .warmup = 10, .decay_steps = 110};
  CHECK(s(0) == Approx(1e-3 / 11).epsilon(1e-15));
  CHECK(s(9) == Approx(1e-3 * 10 / 11).epsilon(1e-15));
  CHECK(s(10) == Approx(1e-3).epsilon(1e-15));
  CHECK(s(60) == Approx(1e-4 + 0.5 * 9e-4).epsilon(1e-14));  // halfway: cos(π/2) = 0
  CHECK(s(110) == Approx(1e-4).epsilon(1e-14));
  CHECK(s(5000) == 1e-4);
  for (std::int64_t t = 10; t < 110; ++t) {
    CHECK(s(t + 1) <= s(t));  // monotone decay
  }
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)s(-1); }).find("WarmupCosine") != std::string::npos);
  const fg::optim::WarmupCosine bad{.lr = 1e-3, .min_lr = 0, .warmup = 20, .decay_steps = 10};
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)bad(0); }).find("decay_steps 10") != std::string::npos);
}

}  // namespace test_transformer_ops

namespace test_transformer_ops {

/// Layer norm of each row of the last axis, in double (two-pass moments), then · γ + β.
Ref layer_norm_ref(const Ref& x, const Ref& gamma, const Ref& beta, double eps) {
  Ref out(x.shape);
  const index_t c = x.shape.back();
  for (index_t r = 0; c > 0 && r < x.size() / c; ++r) {
    const double* row = &x.v[static_cast<std::size_t>(r * c)];
    double mean = 0, var = 0;
    for (index_t j = 0; j < c; ++j) {
      mean += row[j] / static_cast<double>(c);
    }
    for (index_t j = 0; j < c; ++j) {
      var += (row[j] - mean) * (row[j] - mean) / static_cast<double>(c);
    }
    for (index_t j = 0; j < c; ++j) {
      out.v[static_cast<std::size_t>(r * c + j)] =
          (row[j] - mean) / std::sqrt(var + eps) * gamma.v[static_cast<std::size_t>(j)] + beta.v[static_cast<std::size_t>(j)];
    }
  }
  return out;
}

TEST_CASE("layer_norm: values, far from zero, constant rows", "[nn][layer_norm]") {
  std::mt19937 rng(1207);
  for (const Dims& d : {Dims{5, 7}, Dims{2, 3, 16}, Dims{4, 1}, Dims{1, 129}}) {
    for (const double offset : {0.0, 1e3}) {
      INFO("shape " << fgtest::dims_str(d) << ", offset " << offset);
      const index_t c = d.back();
      auto x = fgtest::random_double<3>(d.size() == 3 ? d : Dims{1, d[0], d[1]}, rng, offset - 2, offset + 2);
      auto g = fgtest::random_double<1>(Dims{c}, rng, 0.5, 1.5);
      auto b = fgtest::random_double<1>(Dims{c}, rng);
      const Ref want = layer_norm_ref(fgtest::ref_of(x), fgtest::ref_of(g), fgtest::ref_of(b), 1e-5);
      fg::Tensor<double, 3> y = fgtest::poisoned<double, 3>(x.shape());
      LaunchCounter count;
      y = fg::nn::layer_norm(x, g, b, 1e-5);
      CHECK(count.launches() == 2);  // the rows' moments; normalise, scale, shift
      CHECK(fgtest::compare(y, want, 1e-9, 1e-9) == "");
      // float: the rows' moments in float (Welford: no E[x²] - E[x]² cancellation at 1e3).
      auto xf = fgtest::to_float(x);
      const Ref want_f = layer_norm_ref(fgtest::ref_of(xf), fgtest::ref_of(g), fgtest::ref_of(b), 1e-5);
      fg::Tensor<float, 3> yf = fg::nn::layer_norm(xf, fgtest::to_float(g), fgtest::to_float(b), 1e-5);
      CHECK(fgtest::compare(yf, want_f, 0, offset == 0 ? 2e-6 : 2e-4) == "");
    }
  }
  // A constant row normalises to exactly 0 (then β); a (0, C) input is empty, not an error.
  fg::Tensor<float, 2> flat = fgtest::filled<float, 2>(fg::Shape<2>({2, 6}), 3.25f);
  fg::Tensor<float, 2> z = fg::nn::layer_norm(flat);
  CHECK(z.to_vector() == std::vector<float>(12, 0.f));
  fg::Tensor<float, 2> empty(fg::Shape<2>({0, 6}));
  fg::Tensor<float, 2> ez = fg::nn::layer_norm(empty);
  CHECK(ez.shape() == empty.shape());
}

TEST_CASE("layer_norm: gradients and launches", "[nn][layer_norm]") {
  std::mt19937 rng(1208);
  auto x = fgtest::random_double<3>(Dims{2, 3, 6}, rng, -2, 3);
  auto g = fgtest::random_double<1>(Dims{6}, rng, 0.5, 1.5);
  auto b = fgtest::random_double<1>(Dims{6}, rng);
  check_gradients("layer_norm affine", [](auto& v, auto& gg, auto& bb) {
    return fg::sum(fg::sin(fg::nn::layer_norm(v, gg, bb) * 2.0));
  }, rng, x, g, b);
  check_gradients("layer_norm of an expression, shared operand", [](auto& v) {
    return fg::sum(fg::nn::layer_norm(fg::tanh(v) * 3.0, 1e-3) * v);
  }, rng, x);
  auto xf = fgtest::random_tensor<float, 2>(Dims{32, 48}, rng);
  auto gf = fgtest::random_tensor<float, 1>(Dims{48}, rng);
  auto bf = fgtest::random_tensor<float, 1>(Dims{48}, rng);
  auto tf = fgtest::random_tensor<float, 2>(Dims{32, 48}, rng);
  LaunchCounter count;
  auto [value, grads] = fg::value_and_grad(fg::sum(fg::nn::layer_norm(xf, gf, bf) * tf), xf, gf, bf);
  // Forward: moments, the fused loss sum. Backward: Σh and Σh x̂ per row (one pass); dx; dγ; dβ.
  CHECK(count.launches() == 6);
  (void)value;
  (void)grads;
}

TEST_CASE("layer_norm: errors and the LayerNorm layer", "[nn][layer_norm][errors]") {
  fg::Tensor<float, 2> x(fg::Shape<2>({3, 4}));
  fg::Tensor<float, 1> g(fg::Shape<1>({5})), b(fg::Shape<1>({4}));
  const auto msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::nn::layer_norm(x, g, b); });
  CHECK(msg.find("layer_norm") != std::string::npos);
  CHECK(msg.find("[5]") != std::string::npos);
  CHECK(msg.find("[3, 4]") != std::string::npos);
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)fg::nn::layer_norm(x, -1.0); }).find("eps") != std::string::npos);
  fg::nn::LayerNorm<float> ln(4);
  CHECK(fg::nn::parameter_names(ln) == std::vector<std::string>{"weight", "bias"});
  CHECK(ln.weight.to_vector() == std::vector<float>(4, 1.f));
  CHECK(ln.bias.to_vector() == std::vector<float>(4, 0.f));
  std::mt19937 rng(1209);
  auto xr = fgtest::random_tensor<float, 2>(Dims{3, 4}, rng);
  fg::Tensor<float, 2> y = ln(xr), want = fg::nn::layer_norm(xr);
  CHECK(y.to_vector() == want.to_vector());
}

}  // namespace test_transformer_ops

namespace test_transformer_ops {

TEST_CASE("embedding: gathered rows, fused with their consumer", "[nn][embedding]") {
  std::mt19937 rng(1210);
  auto wte = fgtest::random_double<2>(Dims{7, 5}, rng);
  auto wpe = fgtest::random_double<2>(Dims{3, 5}, rng);
  const std::vector<int> idv = {3, 0, 6, 3, 3, 1};
  const auto ids = fgtest::tensor_from<int, 2>(fg::Shape<2>({2, 3}), idv);
  const auto pos = fgtest::tensor_from<int, 1>(fg::Shape<1>({3}), std::vector<int>{0, 1, 2});
  fg::Tensor<double, 3> x = fgtest::poisoned<double, 3>(fg::Shape<3>({2, 3, 5}));
  LaunchCounter count;
  x = fg::nn::embedding(wte, ids) + fg::nn::embedding(wpe, pos);  // (2, 3, 5) + (3, 5)
  CHECK(count.launches() == 1);
  const auto te = wte.to_vector(), pe = wpe.to_vector(), xv = x.to_vector();
  std::size_t wrong = 0;
  for (std::size_t p = 0; p < 6; ++p) {
    for (std::size_t d = 0; d < 5; ++d) {
      wrong += xv[p * 5 + d] != te[static_cast<std::size_t>(idv[p]) * 5 + d] + pe[(p % 3) * 5 + d];
    }
  }
  CHECK(wrong == 0);
  // Ids from an expression; the gradient sums repeated ids (id 3 three times).
  fg::Tensor<double, 3> shifted = fg::nn::embedding(wte, ids + 0);
  CHECK(shifted.to_vector() == fg::Tensor<double, 3>(fg::nn::embedding(wte, ids)).to_vector());
  auto w = fgtest::random_double<3>(Dims{2, 3, 5}, rng);
  check_gradients("embedding", [&](auto& t, auto& p) {
    using T = typename std::remove_cvref_t<decltype(t)>::element_type;
    return fg::sum(fg::sin(fg::nn::embedding(t, ids) * fg::cast<T>(w) + fg::nn::embedding(p, pos)));
  }, rng, wte, wpe);
}

TEST_CASE("embedding: the backward scatter-add is deterministic and exact in order", "[nn][embedding]") {
  std::mt19937 rng(1211);
  const index_t vocab = 13, dim = 24, n = 4096;
  auto table = fgtest::random_tensor<float, 2>(Dims{vocab, dim}, rng);
  auto ids = fgtest::random_tensor<int, 1>(Dims{n}, rng, 0, static_cast<double>(vocab) - 0.5);
  auto up = fgtest::random_tensor<float, 2>(Dims{n, dim}, rng);
  LaunchCounter count;
  auto [g1] = fg::grad(fg::sum(fg::nn::embedding(table, ids) * up), table);
  CHECK(count.launches() == 2);  // the forward sum; the scatter-add (one kernel over the table)
  auto [g2] = fg::grad(fg::sum(fg::nn::embedding(table, ids) * up), table);
  CHECK(g1.to_vector() == g2.to_vector());
  // Against a sequential sum in float over positions in increasing order: the same bits.
  const auto iv = ids.to_vector();
  const auto uv = up.to_vector();
  std::vector<float> want(static_cast<std::size_t>(vocab * dim), 0.f);
  for (std::size_t p = 0; p < static_cast<std::size_t>(n); ++p) {
    for (std::size_t d = 0; d < static_cast<std::size_t>(dim); ++d) {
      want[static_cast<std::size_t>(iv[p]) * static_cast<std::size_t>(dim) + d] += uv[p * static_cast<std::size_t>(dim) + d];
    }
  }
  CHECK(g1.to_vector() == want);
}

TEST_CASE("embedding: ids outside the table, the Embedding layer", "[nn][embedding][errors]") {
  fg::nn::Embedding<float> wte(7, 4, /*seed*/ 3, 0.02f);
  CHECK(fg::nn::parameter_names(wte) == std::vector<std::string>{"weight"});
  const auto tv = wte.weight.to_vector();
  double ss = 0;
  for (const float v : tv) {
    ss += double(v) * v;
  }
  CHECK(std::sqrt(ss / 28) < 0.05);  // drawn at the scale asked (0.02), not N(0, 1)
  for (const int bad : {7, -1}) {
    const auto ids = fgtest::tensor_from<int, 2>(fg::Shape<2>({2, 2}), std::vector<int>{0, 1, bad, 2});
#if defined(FG_BACKEND_CUDA)
    // Checked on the device: the gather runs, and the next synchronisation reports the bad id.
    fg::Tensor<float, 3> x = wte(ids);
    const auto msg = fgtest::thrown_message<fg::error>([&] { (void)x.to_vector(); });
    const auto xv = x.to_vector();  // reported once: the same read now succeeds
    CHECK(std::isnan(xv[8]));       // the row of the bad id is NaN
    CHECK(!std::isnan(xv[0]));
    // In a training step: the forward pass runs, the backward pass's first synchronisation throws.
    fg::Tensor<float, 3> up = fg::full<float>(fg::Shape<3>({2, 2, 4}), 1.0f);
    const auto step = fgtest::thrown_message<fg::error>([&] { (void)fg::grad(fg::sum(wte(ids) * up), wte.weight); });
    CHECK(step.find("id " + std::to_string(bad)) != std::string::npos);
    fg::backend::synchronize();  // nothing left to report
#else
    const auto msg = fgtest::thrown_message<fg::error>([&] { (void)wte(ids); });
    CHECK(msg.find("embedding") != std::string::npos);
    CHECK(msg.find("id " + std::to_string(bad)) != std::string::npos);
    CHECK(msg.find("position 2") != std::string::npos);
    CHECK(msg.find("7 rows") != std::string::npos);
#endif
  }
}

}  // namespace test_transformer_ops

namespace test_transformer_ops {

/// Gradients of the given sizes, random, and their values on the host.
fg::Gradients<float> random_gradients(const std::vector<index_t>& sizes, std::mt19937& rng,
                                      std::vector<std::vector<float>>& host) {
  fg::Gradients<float> g;
  host.clear();
  for (const index_t n : sizes) {
    auto t = fgtest::random_tensor<float, 1>(Dims{n}, rng, -3, 3);
    host.push_back(t.to_vector());
    g.push_back(std::move(t), {n});
  }
  return g;
}

TEST_CASE("clip_grad_norm: one reduction, one scaling launch, PyTorch's factor", "[optim][clip]") {
  std::mt19937 rng(1212);
  for (const std::size_t count : {std::size_t(3), std::size_t(70)}) {
    std::vector<index_t> sizes;
    for (std::size_t i = 0; i < count; ++i) {
      sizes.push_back(i % 7 == 3 ? 0 : static_cast<index_t>(1 + (i * 37) % 300));
    }
    for (const double ratio : {0.5, 2.0}) {
      INFO(count << " gradients, max_norm = " << ratio << " x the norm");
      std::vector<std::vector<float>> host;
      auto grads = random_gradients(sizes, rng, host);
      double ss = 0;
      for (const auto& h : host) {
        for (const float v : h) {
          ss += double(v) * v;
        }
      }
      const double want_norm = std::sqrt(ss), max_norm = ratio * want_norm;
      LaunchCounter count_launches;
      const auto norm = fg::optim::clip_grad_norm(grads, max_norm);
      CHECK(count_launches.launches() == (count <= 64 ? 2 : 5));  // 2 tables: 2 sums + the norm + 2 scalings
      CHECK(norm.item() == Approx(want_norm).epsilon(1e-12));
      const float factor = static_cast<float>(std::min(1.0, max_norm / (norm.item() + 1e-6)));
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < count; ++i) {
        const auto got = grads.flat(i).to_vector();
        for (std::size_t j = 0; j < got.size(); ++j) {
          wrong += got[j] != host[i][j] * factor;
        }
      }
      CHECK(wrong == 0);
    }
  }
  // Non-finite norms as PyTorch's default: inf scales by 0 (inf · 0 = NaN), NaN spreads everywhere.
  std::vector<std::vector<float>> host;
  auto grads = random_gradients({4}, rng, host);
  grads.push_back(fgtest::tensor_from<float, 1>(fg::Shape<1>({3}), std::vector<float>{1, std::numeric_limits<float>::infinity(), 0}), {3});
  CHECK(std::isinf(fg::optim::clip_grad_norm(grads, 1.0).item()));
  CHECK(grads.flat(0).to_vector() == std::vector<float>(4, 0.f));
  CHECK(std::isnan(grads.flat(1).to_vector()[1]));
  CHECK(std::isnan(fg::optim::clip_grad_norm(grads, 1.0).item()));
  CHECK(std::isnan(grads.flat(0).to_vector()[0]));
  CHECK(fgtest::thrown_message<fg::error>([&] { (void)fg::optim::clip_grad_norm(grads, -1.0); }).find("max_norm") !=
        std::string::npos);
  fg::Gradients<float> none;
  CHECK(fg::optim::clip_grad_norm(none, 1.0).item() == 0.0);
}

}  // namespace test_transformer_ops
