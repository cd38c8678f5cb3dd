// tests/test_threads.cpp — the host backend's thread pool (backend/host/thread_pool.hpp): every
// element written exactly once whatever the size and thread count, results bit-identical with 1 to
// 4 threads (element-wise chains with exp and log, reductions, matrix products), kernels run from
// two user threads at once, and a competing busy thread changes nothing but the speed.
#include <fusegrad/fusegrad.hpp>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

#if defined(FG_BACKEND_HOST)

namespace test_threads {
namespace fg = fusegrad;
using fg::index_t;

/// Restores the thread count a test found.
struct KeepThreads {
  int threads = fg::backend::num_threads();
  ~KeepThreads() { fg::backend::set_num_threads(threads); }
};

/// A thread that spins until destroyed: another program wanting a core.
struct BusyNeighbour {
  std::atomic<bool> stop{false};
  std::thread spinner{[this] {
    volatile std::uint64_t x = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      x = x + 1;
    }
  }};
  ~BusyNeighbour() {
    stop = true;
    spinner.join();
  }
};

/// Everything one run computes, as raw values: compared bit for bit across thread counts.
struct Results {
  std::vector<float> chain, rows, cols, product, product_t, product_k;
  std::vector<double> product_d;
  float total = 0;
  bool operator==(const Results&) const = default;
};

Results compute(std::uint32_t seed) {
  std::mt19937 rng(seed);
  const index_t n = 100003;  // odd: every chunk edge and the tail are exercised
  auto a = fgtest::random_tensor<float, 1>(fg::Shape<1>({n}), rng, 0.1, 3.0);
  fg::Tensor<float, 1> chain = fg::exp(fg::log(a) * 0.7f) - fg::sqrt(a) / (a + 1.f);
  auto m = fgtest::random_tensor<float, 2>(fg::Shape<2>({515, 333}), rng, -1.0, 1.0);
  fg::Tensor<float, 1> rows = fg::sum(m, 1), cols = fg::sum(m, 0);
  fg::Tensor<float, 0> total = fg::sum(fg::exp(chain * 0.1f));
  auto w = fgtest::random_tensor<float, 2>(fg::Shape<2>({333, 130}), rng, -1.0, 1.0);
  fg::Tensor<float, 2> product = fg::matmul(m, w);
  fg::Tensor<float, 2> product_t = fg::matmul(fg::transpose(m), m);  // (333, 333), k = 515
  // A weight gradient's shape: few rows, a long k, both operands read transposed or not.
  auto x = fgtest::random_tensor<float, 2>(fg::Shape<2>({2100, 300}), rng, -1.0, 1.0);
  auto g = fgtest::random_tensor<float, 2>(fg::Shape<2>({64, 2100}), rng, -1.0, 1.0);
  fg::Tensor<float, 2> product_k = fg::matmul(fg::transpose(x), fg::transpose(g));  // (300, 64), k = 2100
  auto md = fgtest::random_tensor<double, 2>(fg::Shape<2>({700, 300}), rng, -1.0, 1.0);
  auto wd = fgtest::random_tensor<double, 2>(fg::Shape<2>({300, 90}), rng, -1.0, 1.0);
  fg::Tensor<double, 2> product_d = fg::matmul(md, wd);
  return {chain.to_vector(), rows.to_vector(), cols.to_vector(), product.to_vector(), product_t.to_vector(),
          product_k.to_vector(), product_d.to_vector(), total.item()};
}

TEST_CASE("threads: the thread count is a setting, at least 1", "[threads][errors]") {
  KeepThreads keep;
  fg::backend::set_num_threads(3);
  CHECK(fg::backend::num_threads() == 3);
  CHECK(fg::backend::info().threads == 3);
  bool caught = false;
  try {
    fg::backend::set_num_threads(0);
  } catch (const fg::error& e) {
    caught = true;
    CHECK(std::string(e.what()) == "set_num_threads: the thread count must be at least 1, got 0");
  }
  CHECK(caught);
  CHECK(fg::backend::num_threads() == 3);  // a refused setting changes nothing
}

TEST_CASE("threads: every element is written exactly once, for every size and thread count", "[threads]") {
  KeepThreads keep;
  for (int threads : {1, 2, 3, 4}) {
    fg::backend::set_num_threads(threads);
    for (index_t n : {index_t(0), index_t(1), index_t(63), index_t(64), index_t(65), index_t(1) << 15,
                      (index_t(1) << 15) + 1, index_t(100003)}) {
      INFO("threads " << threads << ", n " << n);
      auto out = fgtest::poisoned<float, 1>(fg::Shape<1>({n}));
      out = fg::arange<float>(n) + 1.f;
      const auto v = out.to_vector();
      bool all = true;
      for (index_t i = 0; i < n; ++i) {
        all = all && v[static_cast<std::size_t>(i)] == float(i + 1);
      }
      CHECK(all);
    }
  }
}

TEST_CASE("threads: results are bit-identical with 1, 2, 3 and 4 threads, idle or loaded", "[threads]") {
  KeepThreads keep;
  fg::backend::set_num_threads(1);
  const Results one = compute(5);
  for (int threads : {2, 3, 4}) {
    INFO("threads " << threads);
    fg::backend::set_num_threads(threads);
    CHECK(compute(5) == one);
    BusyNeighbour busy;
    CHECK(compute(5) == one);
  }
  CHECK(compute(6) != one);  // the comparison can fail
}

TEST_CASE("threads: kernels from two user threads at once are both right", "[threads]") {
  KeepThreads keep;
  fg::backend::set_num_threads(1);
  const Results want5 = compute(5), want7 = compute(7);
  fg::backend::set_num_threads(3);
  Results got5, got7;
  std::thread other([&] {
    for (int i = 0; i < 3; ++i) {
      got7 = compute(7);
    }
  });
  for (int i = 0; i < 3; ++i) {
    got5 = compute(5);
  }
  other.join();
  CHECK(got5 == want5);
  CHECK(got7 == want7);
}

TEST_CASE("host GEMM: the provider runs kernels fit for this CPU and says which", "[threads][matmul]") {
  const fg::BackendInfo info = fg::backend::info();
  INFO(info.gemm << " / " << info.gemm_kernel << " / " << info.warning);
  CHECK(!info.device.empty());
  CHECK(!info.gemm.empty());
  CHECK(fg::backend::describe().find(info.gemm_kernel) != std::string::npos);
#if defined(FG_HAVE_DNNL)
  CHECK(info.gemm.rfind("oneDNN ", 0) == 0);
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  // Checked at run time against the CPU, not taken on trust: a CPU with AVX-512 gets AVX-512
  // kernels, one with AVX2 at least AVX2 ones.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq")) {
    CHECK(info.gemm_kernel.rfind("avx512_core", 0) == 0);
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    CHECK((info.gemm_kernel.rfind("avx2", 0) == 0 || info.gemm_kernel.rfind("avx512", 0) == 0));
  }
#endif
  CHECK(info.warning.empty());
#endif
}

}  // namespace test_threads

#endif
