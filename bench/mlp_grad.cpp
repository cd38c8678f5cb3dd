// bench/mlp_grad.cpp — value_and_grad of the 784-128-10 MLP with softmax cross-entropy, derived by
// autodiff, three ways side by side: one expression; two statements (the hidden layer as a Var,
// then the loss: what a model of any depth is made of); and the same forward and backward written
// out by hand with the library's own primitives (no autodiff: every GEMM, fused kernel and
// reduction spelled out), for batch 64, 256, 1024 and 8192. All run 5 GEMMs and 12 kernels; the
// targets are autodiff within 5% of the hand version and statements at >= 0.95 of the expression's
// speed. Prints a Markdown table; checks that the three give the same gradients.
//
//   bench_mlp_grad [--batches 64,256,1024,8192] [--budget S] [--reps N] [--passes P]
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace {

using fg::index_t;
constexpr index_t D = 784, H = 128, C = 10;

struct Net {
  fg::Tensor<float, 2> x, W1, W2;
  fg::Tensor<float, 1> b1, b2;
  fg::Tensor<std::int32_t, 1> y;
  explicit Net(index_t batch)
      : x(fg::random::uniform<float>({batch, D}, 0.f, 1.f, 1)),
        W1(fg::nn::kaiming_uniform<float>({D, H}, 2)),
        W2(fg::nn::kaiming_uniform<float>({H, C}, 3)),
        b1(fg::random::uniform<float>({H}, -0.03f, 0.03f, 4)),
        b2(fg::random::uniform<float>({C}, -0.1f, 0.1f, 5)),
        y(fg::cast<std::int32_t>(fg::random::uniform<float>({batch}, 0.f, 9.999f, 6))) {}
};

struct Grads {
  fg::Tensor<float, 0> loss;
  fg::Tensor<float, 2> W1, W2;
  fg::Tensor<float, 1> b1, b2;
};

Grads autodiff(const Net& n) {
  auto logits = fg::matmul(fg::relu(fg::matmul(n.x, n.W1) + n.b1), n.W2) + n.b2;
  auto [value, g] = fg::value_and_grad(fg::mean(fg::nn::cross_entropy(logits, n.y)), n.W1, n.b1, n.W2, n.b2);
  auto& [gW1, gb1, gW2, gb2] = g;
  return {std::move(value), std::move(gW1), std::move(gW2), std::move(gb1), std::move(gb2)};
}

/// The same MLP as two statements: the hidden layer is a Var, the loss reads it.
Grads statements(const Net& n) {
  fg::Var<float, 2> h = fg::relu(fg::matmul(n.x, n.W1) + n.b1);  // (B, H)
  auto [value, g] = fg::value_and_grad(fg::mean(fg::nn::cross_entropy(fg::matmul(h, n.W2) + n.b2, n.y)),
                                       n.W1, n.b1, n.W2, n.b2);
  auto& [gW1, gb1, gW2, gb2] = g;
  return {std::move(value), std::move(gW1), std::move(gW2), std::move(gb1), std::move(gb2)};
}

/// The same math by hand: forward keeps Z1, H, Z2 and the row log-sum-exp; backward is
/// dZ2 = (softmax - onehot) / B, dW2 = Hᵀ dZ2, db2 = Σ dZ2, dH = dZ2 W2ᵀ, dZ1 = dH · [Z1 + b1 > 0],
/// dW1 = xᵀ dZ1, db1 = Σ dZ1.
Grads by_hand(const Net& n) {
  const index_t batch = n.x.shape(0);
  const fg::Tensor<float, 2> Z1 = fg::matmul(n.x, n.W1);                 // (B, H)
  const fg::Tensor<float, 2> Hd = fg::relu(Z1 + n.b1);                   // (B, H)
  const fg::Tensor<float, 2> Z2 = fg::matmul(Hd, n.W2);                  // (B, C), bias not added
  const fg::Tensor<float, 1> lse = fg::logsumexp(Z2 + n.b2, 1);          // (B)
  const auto logits = Z2 + n.b2;
  const auto lse_leaf = lse.view();
  using CE = fg::nn::CrossEntropy<std::remove_cvref_t<decltype(fg::as_node(logits))>, fg::Leaf<std::int32_t, 1>,
                                  fg::Leaf<float, 1>>;
  Grads g;
  g.loss = fg::mean(CE{{}, logits, n.y.view(), lse_leaf, fg::Shape<1>({batch}), C});
  const fg::Tensor<float, 2> dZ2 =
      (fg::exp(logits - fg::reshape(lse, {batch, 1})) - fg::nn::one_hot<float>(n.y, C)) * (1.f / float(batch));
  g.W2 = fg::matmul(fg::transpose(Hd), dZ2);
  g.b2 = fg::sum(dZ2, 0);
  const fg::Tensor<float, 2> dZ1 = fg::matmul(dZ2, fg::transpose(n.W2)) * (Z1 + n.b1 > 0.f);
  g.W1 = fg::matmul(fg::transpose(n.x), dZ1);
  g.b1 = fg::sum(dZ1, 0);
  return g;
}

template <int R>
double max_rel_diff(const fg::Tensor<float, R>& a, const fg::Tensor<float, R>& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, double(std::abs(va[i] - vb[i])));
    scale = std::max(scale, double(std::abs(vb[i])));
  }
  return diff / scale;
}

}  // namespace

static int run_main(int argc, char** argv) {
  bench::Options o;
  o.budget_s = 1.0;
  o.reps = 10;
  std::vector<index_t> batches = {64, 256, 1024, 8192};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--batches") {
      batches.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) batches.push_back(std::stol(item));
      ++i;
    } else if (a == "--budget") { o.budget_s = std::atof(v); ++i; }
    else if (a == "--reps") { o.reps = std::atoi(v); ++i; }
    else if (a == "--passes") { o.passes = std::atoi(v); ++i; }
    else {
      std::fprintf(stderr, "usage: %s [--batches 64,256,1024,8192] [--budget S] [--reps N] [--passes P]\n", argv[0]);
      return 2;
    }
  }
  bench::CpuMonitor monitor;
  std::printf("# bench_mlp_grad: value_and_grad of the 784-128-10 MLP: one expression, two statements, by hand\n\n");
  std::printf("- device: %s\n- run at: %s\n- protocol: median of >= %d samples and >= %.2f s per variant and batch, "
              "in %d interleaved passes\n\n", fg::backend::describe().c_str(), bench::now_string().c_str(), o.reps,
              o.budget_s, o.passes);
  std::printf("| batch | expression ms | statements ms | by hand ms | expression / by hand | statements speed / expression | kernels (expr, stmts, hand) | GEMMs | max rel. grad diff |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  int status = 0;
  for (const index_t batch : batches) {
    const Net net(batch);
    // Kernel and GEMM counts of one call of each variant.
    auto counted = [](auto&& f, std::int64_t& kernels, std::int64_t& gemms) {
      const auto k0 = fg::stats::kernel_launches(), g0 = fg::stats::gemm_calls();
      Grads g = f();
      fg::backend::synchronize();
      kernels = fg::stats::kernel_launches() - k0;
      gemms = fg::stats::gemm_calls() - g0;
      return g;
    };
    std::int64_t ka = 0, ga = 0, ks = 0, gs = 0, kh = 0, gh = 0;
    Grads a = counted([&] { return autodiff(net); }, ka, ga);
    Grads s = counted([&] { return statements(net); }, ks, gs);
    Grads h = counted([&] { return by_hand(net); }, kh, gh);
    double diff = 0;
    for (const Grads* other : {&s, &h}) {
      diff = std::max({diff, max_rel_diff(a.W1, other->W1), max_rel_diff(a.b1, other->b1), max_rel_diff(a.W2, other->W2),
                       max_rel_diff(a.b2, other->b2), max_rel_diff(a.loss, other->loss)});
    }
    if (diff > 1e-4) {
      std::fprintf(stderr, "batch %ld: the gradients of the three forms differ by %g\n", static_cast<long>(batch), diff);
      status = 1;
    }
    const auto t = bench::measure_all(o, {[&] { (void)autodiff(net); }, [&] { (void)statements(net); }, [&] { (void)by_hand(net); }});
    std::printf("| %ld | %.3f | %.3f | %.3f | %.3f | %.3f | %ld, %ld, %ld | %ld, %ld, %ld | %.1e |\n", static_cast<long>(batch),
                t[0] * 1e3, t[1] * 1e3, t[2] * 1e3, t[0] / t[2], t[0] / t[1], static_cast<long>(ka), static_cast<long>(ks),
                static_cast<long>(kh), static_cast<long>(ga), static_cast<long>(gs), static_cast<long>(gh), diff);
    std::fflush(stdout);
  }
  monitor.print();
  return status;
}

int main(int argc, char** argv) {
  return bench::guarded_main(argv[0], [&] { return run_main(argc, argv); });
}
