// bench/gemm.cpp — the host backend's matrix products in GFLOP/s: the MLP's six products at batch
// 128 and 8192 (forward, input gradient, weight gradient of both layers) and square ones, through
// fg::matmul (its provider: oneDNN's sgemm, OpenBLAS or the blocked kernel), beside
//   blas      the same product by a direct cblas_sgemm call on OpenBLAS's own threads (when the
//             build has OpenBLAS): what the provider choice is worth on this CPU
//   torch     (--torch, when python3 can import torch) bench/gemm_torch.py in the same run:
//             torch.matmul on the same shapes, transposes and thread count
//
//   bench_gemm [--budget S] [--threads N] [--torch]
//
// Host only (on CUDA the products are cuBLAS's; bench_mlp_train_cuda times them in context).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp"

#if defined(FG_BACKEND_HOST)
namespace {

using fg::index_t;

/// C (m, n) = op(A) · op(B) with op(A) (m, k), op(B) (k, n); ta/tb: the operand is stored
/// transposed (a transposed view of a row-major tensor, as autodiff's gradients read them).
struct Shape {
  const char* what;
  index_t m, n, k;
  bool ta, tb;
};

std::string shape_key(const Shape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) + (s.ta ? "T" : "N") +
         (s.tb ? "T" : "N");
}

double gflops(const Shape& s, double seconds) {
  return seconds <= 0 ? -1 : 2.0 * double(s.m) * double(s.n) * double(s.k) / seconds * 1e-9;
}

/// One product through fg::matmul into a preallocated tensor (no allocation timed).
struct Product {
  fg::Tensor<float, 2> a, b, c;
  Shape s;
  explicit Product(const Shape& shape)
      : a(fg::random::uniform<float>(fg::Shape<2>({shape.ta ? shape.k : shape.m, shape.ta ? shape.m : shape.k}), -1.f, 1.f, 1)),
        b(fg::random::uniform<float>(fg::Shape<2>({shape.tb ? shape.n : shape.k, shape.tb ? shape.k : shape.n}), -1.f, 1.f, 2)),
        c(fg::zeros<float>(fg::Shape<2>({shape.m, shape.n}))),
        s(shape) {}
  void run() {
    if (s.ta && s.tb) c = fg::matmul(fg::transpose(a), fg::transpose(b));
    else if (s.ta) c = fg::matmul(fg::transpose(a), b);
    else if (s.tb) c = fg::matmul(a, fg::transpose(b));
    else c = fg::matmul(a, b);
  }
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
  void run_blas(std::vector<float>& out) const {
    cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.f,
                a.data(), s.ta ? s.m : s.k, b.data(), s.tb ? s.k : s.n, 0.f, out.data(), s.n);
  }
#endif
};

int run_main(int argc, char** argv) {
  bench::Options o;
  o.budget_s = 0.5;
  o.reps = 7;
  o.passes = 3;
  bool torch = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--budget") { o.budget_s = std::atof(v); ++i; }
    else if (a == "--threads") { fg::backend::set_num_threads(std::atoi(v)); ++i; }
    else if (a == "--torch") { torch = true; }
    else {
      std::fprintf(stderr, "usage: %s [--budget S] [--threads N] [--torch]\n", argv[0]);
      return 2;
    }
  }
  const int threads = fg::backend::num_threads();
  const std::vector<Shape> shapes = {
      {"MLP b128 x·W1", 128, 128, 784, false, false},     {"MLP b128 xᵀ·dH (dW1)", 784, 128, 128, true, false},
      {"MLP b128 dY·W2ᵀ (dH)", 128, 128, 10, false, true}, {"MLP b8192 x·W1", 8192, 128, 784, false, false},
      {"MLP b8192 h·W2", 8192, 10, 128, false, false},     {"MLP b8192 xᵀ·dH (dW1)", 784, 128, 8192, true, false},
      {"MLP b8192 hᵀ·dY (dW2)", 128, 10, 8192, true, false}, {"MLP b8192 dY·W2ᵀ (dH)", 8192, 128, 10, false, true},
      {"MLP b8192 dH·W1ᵀ (dx)", 8192, 784, 128, false, true}, {"square 1024", 1024, 1024, 1024, false, false},
      {"square 2048", 2048, 2048, 2048, false, false}};

  bench::CpuMonitor monitor;
  const fg::BackendInfo info = fg::backend::info();
  std::printf("# bench_gemm: host matrix products, float32, GFLOP/s (2·m·n·k / median time)\n\n");
  std::printf("- device: %s\n- provider: %s\n- run at: %s\n- protocol: median of >= %d samples and >= %.2f s per "
              "variant and shape, in %d interleaved passes\n",
              fg::backend::describe().c_str(), info.gemm.c_str(), bench::now_string().c_str(), o.reps, o.budget_s,
              o.passes);
  if (!info.warning.empty()) {
    std::printf("- warning: %s\n", info.warning.c_str());
  }

  std::map<std::string, double> peer;  // shape key -> GFLOP/s
  if (torch) {
    std::string keys, peer_info;
    for (const Shape& s : shapes) keys += (keys.empty() ? "" : ",") + shape_key(s);
    bench::run_peer(bench::peer_script("gemm_torch.py"),
                    "--shapes " + keys + " --threads " + std::to_string(threads) + " --budget " + std::to_string(o.budget_s),
                    peer_info, [&](const std::string& line) {
                      char key[64] = {};
                      double g = -1;
                      if (std::sscanf(line.c_str(), "RESULT shape=%63s gflops=%lf", key, &g) != 2) return false;
                      peer[key] = g;
                      return true;
                    });
    std::printf("- PyTorch: %s\n", peer_info.empty() ? "ran" : peer_info.c_str());
  }

  const bool with_blas =
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
      true;
  std::printf("- blas: cblas_sgemm of %s (%s kernels) on its own %d threads\n",
              fg::backend::detail::openblas_version().c_str(), openblas_get_corename(), threads);
#else
      false;
#endif
  std::printf("\n| product | m×n×k | fusegrad GFLOP/s | blas GFLOP/s | torch GFLOP/s | fusegrad / blas | fusegrad / torch |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const Shape& s : shapes) {
    Product p(s);
    std::vector<std::function<void()>> variants = {[&] { p.run(); }};
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    std::vector<float> out(static_cast<std::size_t>(s.m * s.n));
    // OpenBLAS's OpenMP build takes the calling thread's OpenMP count at every call.
    variants.push_back([&] {
#if defined(_OPENMP)
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
#endif
      p.run_blas(out);
#if defined(_OPENMP)
      openblas_set_num_threads(1);
      omp_set_num_threads(before);
#endif
    });
#endif
    const auto t = bench::measure_all(o, variants);
#if defined(FG_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    // The two agree to float rounding: the provider is checked, not only timed.
    const auto mine = p.c.to_vector();
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      err = std::max(err, double(std::abs(mine[i] - out[i])));
      scale = std::max(scale, double(std::abs(out[i])));
    }
    if (!(err <= 1e-4 * std::max(scale, 1.0))) {
      std::printf("\n**CHECK FAILED**: %s: fusegrad and OpenBLAS differ by %g (largest |C| %g)\n\n",
                  shape_key(s).c_str(), err, scale);
      bench::g_failed = true;
    }
#endif
    const double fg_g = gflops(s, t[0]), blas_g = with_blas ? gflops(s, t[1]) : -1;
    const double torch_g = peer.count(shape_key(s)) ? peer[shape_key(s)] : -1;
    auto cell = [](double g) { return g < 0 ? std::string("-") : bench::fmt("%.1f", g); };
    std::printf("| %s | %ld×%ld×%ld%s | %s | %s | %s | %s | %s |\n", s.what, static_cast<long>(s.m),
                static_cast<long>(s.n), static_cast<long>(s.k),
                s.ta || s.tb ? (std::string(" (") + (s.ta ? "Aᵀ" : "") + (s.tb ? "Bᵀ" : "") + ")").c_str() : "",
                cell(fg_g).c_str(), cell(blas_g).c_str(), cell(torch_g).c_str(), bench::ratio(fg_g, blas_g).c_str(),
                bench::ratio(fg_g, torch_g).c_str());
    std::fflush(stdout);
  }
  monitor.print();
  return bench::g_failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::guarded_main(argv[0], [&] { return run_main(argc, argv); });
}
#else
int main() {
  std::fprintf(stderr, "bench_gemm is a host benchmark\n");
  return 2;
}
#endif
