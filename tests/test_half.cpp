// tests/test_half.cpp — half and bfloat16 storage with float math (CUDA backend only).
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <vector>

#include "support/catch.hpp"

#if defined(FG_BACKEND_CUDA)
namespace test_half {
namespace fg = fusegrad;

template <class H>
std::vector<double> widen(const std::vector<H>& v) {
  std::vector<double> out;
  for (const auto& x : v) {
    out.push_back(static_cast<double>(static_cast<float>(x)));
  }
  return out;
}

template <class H>
void check_storage_type(double eps) {
  fg::Tensor<float, 2> x = fg::random::uniform<float>({33, 17}, -2.f, 2.f, 11);
  fg::Tensor<float, 1> b = fg::random::normal<float>({17}, 0.f, 1.f, 12);
  fg::Tensor<H, 2> xh = fg::cast<H>(x);
  fg::Tensor<H, 1> bh = fg::cast<H>(b);
  const auto k0 = fg::stats::kernel_launches();
  fg::Tensor<H, 2> y = fg::relu(xh * 2.f + bh) - fg::exp(-fg::square(xh));  // float math, one kernel
  CHECK(fg::stats::kernel_launches() - k0 == 1);
  const auto vx = widen(xh.to_vector()), vb = widen(bh.to_vector()), vy = widen(y.to_vector());
  for (std::size_t i = 0; i < vx.size(); ++i) {
    const double ref = std::max(2 * vx[i] + vb[i % 17], 0.0) - std::exp(-vx[i] * vx[i]);
    REQUIRE(std::abs(vy[i] - ref) <= eps * (1 + std::abs(ref)));
  }
  // Reductions and GEMMs read half storage and produce float.
  fg::Tensor<float, 0> s = fg::sum(xh);
  double ref_sum = 0;
  for (double v : vx) {
    ref_sum += v;
  }
  CHECK(std::abs(s.item() - ref_sum) <= 1e-4 * (1 + std::abs(ref_sum)));
  fg::Tensor<float, 2> p = fg::matmul(xh, fg::transpose(xh));  // (33, 33)
  const auto vp = p.to_vector();
  for (int i = 0; i < 33; ++i) {
    for (int j = 0; j < 33; ++j) {
      double ref = 0;
      for (int k = 0; k < 17; ++k) {
        ref += vx[i * 17 + k] * vx[j * 17 + k];
      }
      REQUIRE(std::abs(vp[i * 33 + j] - ref) <= 1e-4 * (1 + std::abs(ref)));
    }
  }
}

TEST_CASE("half: storage with float math, reductions, GEMM", "[half][cuda]") {
  check_storage_type<fg::half>(1e-3);
}
TEST_CASE("bfloat16: storage with float math, reductions, GEMM", "[half][cuda]") {
  check_storage_type<fg::bfloat16>(1e-2);
}
}  // namespace test_half
#endif
