// tests/test_gemm_fallback.cpp — the host backend's blocked GEMM, used when no CBLAS was found.
// The normal build links OpenBLAS, so this kernel is exercised here directly.
#include <fusegrad/fusegrad.hpp>

#include <random>
#include <vector>

#include "support/catch.hpp"

#if defined(FG_BACKEND_HOST)
namespace test_gemm_fallback {
namespace fg = fusegrad;

TEST_CASE("host blocked GEMM matches a double reference for every transpose combination",
          "[matmul][host]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  const fg::index_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 65, 17}, {4, 300, 2}, {3, 2, 0}};
  for (const auto& s : sizes) {
    const fg::index_t m = s[0], n = s[1], k = s[2];
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        // Stored with a padded leading dimension so ld != row length is exercised.
        const fg::index_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2;
        std::vector<double> a(static_cast<std::size_t>((ta ? k : m) * lda)), b(static_cast<std::size_t>((tb ? n : k) * ldb));
        for (auto& x : a) x = u(rng);
        for (auto& x : b) x = u(rng);
        std::vector<double> c(static_cast<std::size_t>(m * n), std::nan(""));
        fg::backend::GemmProblem<double, double> p;
        p.m = m;
        p.n = n;
        p.k = k;
        p.a = {a.data(), ta == 1, lda, 0};
        p.b = {b.data(), tb == 1, ldb, 0};
        p.c = c.data();
        p.ldc = n;
        fg::backend::detail::gemm_blocked(p, 0);
        for (fg::index_t i = 0; i < m; ++i) {
          for (fg::index_t j = 0; j < n; ++j) {
            double ref = 0;
            for (fg::index_t q = 0; q < k; ++q) {
              ref += (ta ? a[q * lda + i] : a[i * lda + q]) * (tb ? b[j * ldb + q] : b[q * ldb + j]);
            }
            REQUIRE(std::abs(c[i * n + j] - ref) < 1e-12 * (1 + std::abs(ref)));
          }
        }
      }
    }
  }
}
TEST_CASE("host GEMM accumulates (beta = 1) on both paths: blocked and the backend's", "[matmul][host]") {
  std::mt19937 rng(8);
  std::uniform_real_distribution<double> u(-1, 1);
  const fg::index_t m = 9, n = 13, k = 6;
  for (int tb = 0; tb < 2; ++tb) {
    std::vector<double> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n)), c0(static_cast<std::size_t>(m * n));
    for (auto& x : a) x = u(rng);
    for (auto& x : b) x = u(rng);
    for (auto& x : c0) x = u(rng);  // what C holds before: the product is added to it
    fg::backend::GemmProblem<double, double> p;
    p.m = m;
    p.n = n;
    p.k = k;
    p.a = {a.data(), false, k, 0};
    p.b = {b.data(), tb == 1, tb ? k : n, 0};
    p.ldc = n;
    p.accumulate = true;
    for (int path = 0; path < 2; ++path) {
      std::vector<double> c = c0;
      p.c = c.data();
      if (path == 0) {
        fg::backend::detail::gemm_blocked(p, 0);
      } else {
        fg::backend::gemm(p);
      }
      for (fg::index_t i = 0; i < m; ++i) {
        for (fg::index_t j = 0; j < n; ++j) {
          double ref = c0[static_cast<std::size_t>(i * n + j)];
          for (fg::index_t q = 0; q < k; ++q) {
            ref += a[static_cast<std::size_t>(i * k + q)] * (tb ? b[static_cast<std::size_t>(j * k + q)] : b[static_cast<std::size_t>(q * n + j)]);
          }
          INFO("path " << path << ", transposed b " << tb);
          REQUIRE(std::abs(c[static_cast<std::size_t>(i * n + j)] - ref) < 1e-12 * (1 + std::abs(ref)));
        }
      }
    }
  }
}
}  // namespace test_gemm_fallback
#endif
