// tests/test_smoke.cpp — the README example's promises, end to end.
#include <fusegrad/fusegrad.hpp>

#include "support/catch.hpp"

namespace fg = fusegrad;

TEST_CASE("smoke: element-wise chain is one kernel", "[smoke]") {
  fg::Tensor<float, 2> a = fg::random::uniform<float>({37, 53}, -1.f, 1.f, 1);
  fg::Tensor<float, 1> b = fg::random::normal<float>({53}, 0.f, 1.f, 2);
  const auto k0 = fg::stats::kernel_launches();
  fg::Tensor<float, 2> c = fg::relu(a * 2.f + b) - fg::exp(-fg::square(a));
  CHECK(fg::stats::kernel_launches() - k0 == 1);
  const auto va = a.to_vector(), vb = b.to_vector(), vc = c.to_vector();
  for (std::size_t i = 0; i < va.size(); ++i) {
    const double x = va[i], y = vb[i % 53];
    const double ref = std::max(2 * x + y, 0.0) - std::exp(-x * x);
    REQUIRE(std::abs(vc[i] - ref) < 1e-5);
  }
}
