// tests/test_compile_step.cpp — compile_step: the first call runs eagerly, the second captures,
// later calls replay; a tensor the step uses that is reassigned (its buffer freed) makes the next
// call capture again instead of replaying into freed memory. The same bookkeeping runs on both
// backends (on the host a "captured" step runs f directly), so the counts are checked here; on
// CUDA the values check that no replay wrote into a freed buffer.
#include <fusegrad/fusegrad.hpp>

#include <random>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_compile_step {
namespace fg = fusegrad;

TEST_CASE("compile_step: captures once, replays, and captures again after a used buffer is freed", "[compile]") {
  std::mt19937 rng(91);
  const auto x = fgtest::random_tensor<float, 1>(fgtest::Dims{37}, rng, -1, 1);
  const auto xs = x.to_vector();
  fg::Tensor<float, 1> total = fg::zeros<float>(fg::Shape<1>({37}));
  auto step = fg::compile_step([&](const fg::Tensor<float, 1>& v) { total += v * 2.f; });
  auto expect_total = [&](float times) {
    const auto t = total.to_vector();
    for (std::size_t i = 0; i < t.size(); ++i) {
      REQUIRE(t[i] == xs[i] * 2.f * times);
    }
  };
  step(x);  // eager
  step(x);  // captured (and run)
  step(x);  // replayed
  CHECK(step.graphs() == 1);
  CHECK(step.recaptures() == 0);
  expect_total(3);

  // Reset in place: the same buffer, the same graph.
  total.fill(0.f);
  step(x);
  CHECK(step.recaptures() == 0);
  expect_total(1);

  // Reassigned: the old buffer is freed, the captured graph would add into it. The next call
  // captures again and adds into the new one.
  total = fg::zeros<float>(fg::Shape<1>({37}));
  step(x);
  CHECK(step.recaptures() == 1);
  expect_total(1);
  step(x);
  CHECK(step.recaptures() == 1);
  expect_total(2);

  // Temporaries created and freed after the capture do not concern it.
  { const fg::Tensor<float, 1> scratch = x * 3.f; }
  step(x);
  CHECK(step.recaptures() == 1);
  expect_total(3);
}

TEST_CASE("compile_step: every call counts the kernels it runs, captured or replayed", "[compile]") {
  std::mt19937 rng(92);
  const auto x = fgtest::random_tensor<float, 2>(fgtest::Dims{16, 8}, rng, -1, 1);
  const auto w = fgtest::random_tensor<float, 2>(fgtest::Dims{8, 4}, rng, -1, 1);
  fg::Tensor<float, 0> total = fg::zeros<float>(fg::Shape<0>{});
  // One GEMM, one fused reduction, one in-place add: three kernels, one of them a GEMM.
  auto body = [&](const fg::Tensor<float, 2>& v) { total += fg::sum(fg::relu(fg::matmul(v, w))); };
  auto step = fg::compile_step(body);
  const auto g0 = fg::stats::graph_launches();
  for (int call = 0; call < 4; ++call) {  // eager, capture (+ replay), replay, replay
    const auto k0 = fg::stats::kernel_launches(), m0 = fg::stats::gemm_calls();
    step(x);
    INFO("call " << call);
    CHECK(fg::stats::kernel_launches() - k0 == 3);
    CHECK(fg::stats::gemm_calls() - m0 == 1);
  }
#if defined(FG_BACKEND_CUDA)
  CHECK(fg::stats::graph_launches() - g0 == 3);  // the capture's own run, then two replays
#else
  CHECK(fg::stats::graph_launches() - g0 == 0);
#endif
  const auto xs = x.to_vector(), ws = w.to_vector();
  double want = 0;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 4; ++j) {
      double dot = 0;
      for (int k = 0; k < 8; ++k) {
        dot += double(xs[i * 8 + k]) * ws[k * 4 + j];
      }
      want += std::max(dot, 0.0);
    }
  }
  CHECK(std::abs(total.item() - 4 * want) <= 1e-4 * (1 + 4 * std::abs(want)));
}

TEST_CASE("compile_step: a watch turns stale only for buffers older than its start", "[compile]") {
  fg::Tensor<float, 1> old_tensor = fg::ones<float>(fg::Shape<1>({4}));
  fg::BufferWatch watch;
  watch.restart();
  { const fg::Tensor<float, 1> young = fg::ones<float>(fg::Shape<1>({8})); }
  CHECK_FALSE(watch.stale());
  old_tensor = fg::zeros<float>(fg::Shape<1>({4}));  // frees the old buffer
  CHECK(watch.stale());
  watch.restart();
  CHECK_FALSE(watch.stale());
}

}  // namespace test_compile_step
