// tests/test_fusion.cpp — the fusion contract, by counting kernels (stats::kernel_launches) and
// GEMMs (stats::gemm_calls) around each evaluation, with the values checked as well:
//   element-wise tree (broadcasts, views, numbers)       1 launch
//   sum(square(a - c)), full or per axis                 1 launch
//   matmul(a, transpose(c))                              1 launch, 1 GEMM (no copy)
//   relu(matmul(x, W) + b)                               1 GEMM + 1 launch
//   x - max(x, 1, keepdims)                              2 launches
//   factories, +=                                        1 launch each
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_fusion {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Red;
using fgtest::Ref;

TEST_CASE("stats: counters only grow with work, reset() zeroes them", "[fusion][stats]") {
  auto a = fg::ones<float>({4, 4});
  CHECK(fg::stats::kernel_launches() > 0);
  fg::stats::reset();
  CHECK(fg::stats::kernel_launches() == 0);
  CHECK(fg::stats::gemm_calls() == 0);
  fg::Tensor<float, 2> b = fg::matmul(a, a);
  CHECK(fg::stats::kernel_launches() == 1);  // a GEMM is a launch too
  CHECK(fg::stats::gemm_calls() == 1);
  auto v = b.to_vector();  // copies are not kernels
  fg::Tensor<float, 2> c = b;
  CHECK(fg::stats::kernel_launches() == 1);
  CHECK(v == std::vector<float>(16, 4.f));
}

TEST_CASE("any element-wise tree with broadcasts, views and numbers is exactly one kernel",
          "[fusion][elementwise]") {
  std::mt19937 rng(701);
  for (int trial = 0; trial < 5; ++trial) {
    const index_t m = std::uniform_int_distribution<index_t>(1, 80)(rng),
                  n = std::uniform_int_distribution<index_t>(1, 80)(rng);
    INFO("m " << m << ", n " << n);
    auto a = fgtest::random_tensor<float, 2>(Dims{m, n}, rng, -2, 2);
    auto b = fgtest::random_tensor<float, 1>(Dims{n}, rng, -2, 2);
    auto c = fgtest::random_tensor<float, 2>(Dims{n, m}, rng, -2, 2);
    auto d = fgtest::random_tensor<float, 3>(Dims{2, m, 2 * n}, rng, 0.5, 2);
    const Ref ra = fgtest::ref_of(a), rb = fgtest::ref_of(b),
              rc = fgtest::transpose(fgtest::ref_of(c));
    const Ref rd = fgtest::slice(
        fgtest::reshape(fgtest::slice(fgtest::ref_of(d), 0, 1, 2), {m, 2 * n}), 1, 1, 2 * n, 2);
    const Ref t1 = fgtest::map3(
        fgtest::map2(ra, rb, [](double x, double y) { return double(x > y); }),
        fgtest::map2(ra, rb, [](double x, double y) { return 1 / (1 + std::exp(-(2 * x - y))); }),
        fgtest::map1(rc, [](double x) { return 0.5 * x; }),
        [](double cond, double x, double y) { return cond != 0 ? x : y; });
    // Broadcast row, transposed operand, a step-2 slice of a reshape of a slice, numbers on both
    // sides, a comparison, where, casts there and back, math.
    const auto half = fg::slice(fg::reshape(fg::slice(d, 0, 1, 2), {m, 2 * n}), 1, 1, 2 * n, 2);
    const auto tree2 = fg::where(a > b, fg::sigmoid(a * 2.f - b), 0.5f * fg::transpose(c)) +
                       fg::cast<float>(fg::cast<double>(fg::sqrt(half)) * 2.0) / 3.f -
                       fg::maximum(fg::abs(half), 1.f);
    const Ref t2 = fgtest::map1(
        rd, [](double x) { return std::sqrt(x) * 2 / 3 - std::max(std::abs(x), 1.0); });
    const Ref want = fgtest::map2(t1, t2, [](double x, double y) { return x + y; });
    fgtest::expect(fgtest::run<float, 2>(tree2), want, fgtest::ulps<float>(32),
                   fgtest::ulps<float>(32), "big tree");
    // Built from a Tensor on the right of a number, a rank-0 tensor, a broadcast_to view.
    auto s = fgtest::random_tensor<float, 0>(Dims{}, rng, 1, 2);
    const Ref rs = fgtest::ref_of(s);
    fgtest::expect(
        fgtest::run<float, 3>(1.f - fg::broadcast_to(a, {3, m, n}) * s),
        fgtest::broadcast_to(fgtest::map2(ra, rs, [](double x, double y) { return 1 - x * y; }),
                             {3, m, n}),
        fgtest::ulps<float>(2), fgtest::ulps<float>(4), "1 - broadcast_to(a) * s");
    // fg::eval of a tree: one kernel too.
    fgtest::LaunchCounter count;
    auto e = fg::eval(fg::exp(-fg::square(a)) * b);
    CHECK(count.launches() == 1);
    CHECK(fgtest::compare(
              e, fgtest::map2(ra, rb, [](double x, double y) { return std::exp(-x * x) * y; }),
              fgtest::ulps<float>(8), fgtest::ulps<float>(2)) == "");
  }
}

TEST_CASE("a reduction of an element-wise tree is one kernel: full and per axis",
          "[fusion][reduce]") {
  std::mt19937 rng(702);
  auto a = fgtest::random_tensor<float, 2>(Dims{257, 129}, rng);
  auto c = fgtest::random_tensor<float, 2>(Dims{257, 129}, rng);
  auto t = fgtest::random_tensor<float, 2>(Dims{129, 257}, rng);
  const Ref ra = fgtest::ref_of(a), rc = fgtest::ref_of(c),
            rt = fgtest::transpose(fgtest::ref_of(t));
  const Ref sq = fgtest::round_to<float>(fgtest::map1(
      fgtest::round_to<float>(fgtest::map2(ra, rc, [](double x, double y) { return x - y; })),
      [](double x) { return x * x; }));
  const double tol = 64 * fgtest::eps_of<float>() * fgtest::reduce_all(sq, Red::sum).v[0];
  // sum(square(a - c)): one fused map-reduce, through item() (evaluate + copy) and into a tensor.
  fgtest::LaunchCounter count;
  const float s = fg::sum(fg::square(a - c)).item();
  CHECK(count.launches() == 1);
  CHECK(std::abs(s - fgtest::reduce_all(sq, Red::sum).v[0]) <= tol);
  const fgtest::Outcome o = fgtest::run<float, 0>(fg::sum(fg::square(a - c)));
  CHECK(o.launches == 1);
  CHECK(std::abs(o.got.v[0] - fgtest::reduce_all(sq, Red::sum).v[0]) <= tol);
  // Axis reductions of trees, with views inside.
  const Ref sq_t = fgtest::map2(ra, rt, [](double x, double y) { return (x - y) * (x - y); });
  fgtest::expect(fgtest::run<float, 1>(fg::sum(fg::square(a - fg::transpose(t)), 0)),
                 fgtest::reduce_axis(sq_t, Red::sum, 0), 1e-4, 1e-5,
                 "sum(square(a - transpose(t)), 0)", 1);
  fgtest::expect(fgtest::run<float, 2>(fg::max(fg::abs(a * 2.f - 1.f), -1, fg::keepdims)),
                 fgtest::reduce_axis(fgtest::map1(ra, [](double x) { return std::abs(2 * x - 1); }),
                                     Red::max, 1, true),
                 fgtest::ulps<float>(2), 0, "max(abs(a * 2 - 1), -1, keepdims)", 1);
  fgtest::expect_exact(fgtest::run<std::int64_t, 1>(fg::argmax(fg::transpose(t) + a, 1)),
                       fgtest::reduce_axis(fgtest::round_to<float>(fgtest::map2(
                                               rt, ra, [](double x, double y) { return x + y; })),
                                           Red::argmax, 1),
                       "argmax(transpose(t) + a, 1)", 1);
  fgtest::expect(fgtest::run<float, 1>(fg::mean(fg::slice(a, 1, 0, 129, 2), 1)),
                 fgtest::reduce_axis(fgtest::slice(ra, 1, 0, 129, 2), Red::mean, 1), 1e-5, 1e-6,
                 "mean(slice(a), 1)", 1);
}

TEST_CASE(
    "matmul: one GEMM, no copy for transposed operands; relu(matmul(x, W) + b) is 1 GEMM + 1 "
    "kernel",
    "[fusion][matmul]") {
  std::mt19937 rng(703);
  auto a = fgtest::random_tensor<float, 2>(Dims{65, 33}, rng);
  auto c = fgtest::random_tensor<float, 2>(Dims{17, 33}, rng);
  auto x = fgtest::random_tensor<float, 2>(Dims{31, 65}, rng);
  auto w = fgtest::random_tensor<float, 2>(Dims{65, 7}, rng);
  auto b = fgtest::random_tensor<float, 1>(Dims{7}, rng);
  const Ref ra = fgtest::ref_of(a), rc = fgtest::ref_of(c), rx = fgtest::ref_of(x),
            rw = fgtest::ref_of(w), rb = fgtest::ref_of(b);
  fgtest::LaunchCounter count;
  fg::Tensor<float, 2> p = fg::matmul(a, fg::transpose(c));
  CHECK(count.launches() == 1);
  CHECK(count.gemms() == 1);
  CHECK(fgtest::compare(p, fgtest::matmul(ra, fgtest::transpose(rc)), 1e-5, 1e-5) == "");
  count.restart();
  p = fg::matmul(fg::transpose(fg::transpose(a)), fg::transpose(c));
  CHECK(count.launches() == 1);
  CHECK(count.gemms() == 1);
  // relu(matmul(x, W) + b): the product once, then one fused element-wise kernel.
  count.restart();
  fg::Tensor<float, 2> y = fg::relu(fg::matmul(x, w) + b);
  CHECK(count.gemms() == 1);
  CHECK(count.launches() <= 2);
  CHECK(count.launches() == 2);
  const Ref want = fgtest::map2(fgtest::matmul(rx, rw), rb,
                                [](double v, double bias) { return std::max(v + bias, 0.0); });
  CHECK(fgtest::compare(y, want, 1e-5, 1e-5) == "");
  // With a transposed weight (stored [N, K]): still no copy.
  auto wt = fgtest::random_tensor<float, 2>(Dims{7, 65}, rng);
  count.restart();
  y = fg::relu(fg::matmul(x, fg::transpose(wt)) + b);
  CHECK(count.gemms() == 1);
  CHECK(count.launches() == 2);
  CHECK(fgtest::compare(y,
                        fgtest::map2(fgtest::matmul(rx, fgtest::transpose(fgtest::ref_of(wt))), rb,
                                     [](double v, double bias) { return std::max(v + bias, 0.0); }),
                        1e-5, 1e-5) == "");
  // An operand that is an expression costs one kernel to evaluate it first.
  count.restart();
  p = fg::matmul(a * 2.f, fg::transpose(c));
  CHECK(count.gemms() == 1);
  CHECK(count.launches() == 2);
  // Batched: one GEMM call for the whole batch.
  auto a3 = fgtest::random_tensor<float, 3>(Dims{6, 5, 4}, rng);
  auto b3 = fgtest::random_tensor<float, 3>(Dims{6, 3, 4}, rng);
  count.restart();
  fg::Tensor<float, 3> q = fg::matmul(a3, fg::permute(b3, {0, 2, 1}));
  CHECK(count.gemms() == 1);
  CHECK(count.launches() == 1);
  CHECK(fgtest::compare(
            q, fgtest::matmul(fgtest::ref_of(a3), fgtest::permute(fgtest::ref_of(b3), {0, 2, 1})),
            1e-5, 1e-5) == "");
}

TEST_CASE("factories and in-place updates are one kernel each", "[fusion][factory]") {
  fgtest::LaunchCounter count;
  auto z = fg::zeros<float>({100, 100});
  CHECK(count.launches() == 1);
  count.restart();
  auto o = fg::ones<double>({3, 5, 7});
  CHECK(count.launches() == 1);
  count.restart();
  auto f = fg::full<std::int32_t>({33}, 3);
  CHECK(count.launches() == 1);
  count.restart();
  auto r = fg::arange<float>(0.f, 10.f, 0.5f);
  CHECK(count.launches() == 1);
  count.restart();
  auto u = fg::random::uniform<float>({10000}, 0.f, 1.f, 1);
  CHECK(count.launches() == 1);
  count.restart();
  auto n = fg::random::normal<double>({10, 10}, 0.0, 1.0, 1);
  CHECK(count.launches() == 1);
  count.restart();
  z += 1.f;
  CHECK(count.launches() == 1);
  count.restart();
  z += fg::transpose(z) * 2.f + fg::reshape(u, {100, 100}) -
       1.f;  // reads itself transposed: via a temporary
  CHECK(count.launches() == 1);
  count.restart();
  z -= fg::broadcast_to(fg::slice(z, 0, 0, 1), {100, 100});  // shifted reads of itself
  CHECK(count.launches() == 1);
  const auto vz = z.to_vector();
  bool first_row_zero = true;
  for (int j = 0; j < 100; ++j) {
    first_row_zero = first_row_zero && vz[static_cast<std::size_t>(j)] == 0.f;
  }
  CHECK(first_row_zero);
  count.restart();
  f *= f;
  f /= 2;
  CHECK(count.launches() == 2);
  CHECK(f.to_vector() == std::vector<std::int32_t>(33, 4));
  CHECK(o.to_vector() == std::vector<double>(105, 1.0));
  CHECK(r.size() == 20);
  CHECK(n.size() == 100);
}

TEST_CASE("an element-wise tree containing reductions: one kernel per reduction plus one",
          "[fusion][composite]") {
  std::mt19937 rng(704);
  auto x = fgtest::random_tensor<float, 2>(Dims{37, 53}, rng, -3, 3);
  const Ref rx = fgtest::ref_of(x);
  fgtest::LaunchCounter count;
  fg::Tensor<float, 2> y = x - fg::max(x, 1, fg::keepdims);
  CHECK(count.launches() == 2);
  CHECK(fgtest::compare(y,
                        fgtest::map2(rx, fgtest::reduce_axis(rx, Red::max, 1, true),
                                     [](double a, double b) { return a - b; }),
                        fgtest::ulps<float>(1), 0) == "");
  count.restart();
  y = x / fg::sum(fg::abs(x), 1, fg::keepdims) - fg::min(x, 0, fg::keepdims);
  CHECK(count.launches() == 3);
  count.restart();
  y = fg::exp(x - fg::max(x)) * 2.f;  // a full reduction broadcast as a rank-0 tensor
  CHECK(count.launches() == 2);
  const double mx = fgtest::reduce_all(rx, Red::max).v[0];
  Ref ey = rx;
  for (auto& v : ey.v) {
    v = std::exp(v - mx) * 2;
  }
  CHECK(fgtest::compare(y, ey, fgtest::ulps<float>(16), 0) == "");
  // A reduction of a tree that contains a reduction: 2 launches.
  count.restart();
  fg::Tensor<float, 1> s = fg::sum(fg::exp(x - fg::max(x, 1, fg::keepdims)), 1);
  CHECK(count.launches() == 2);
  const Ref shifted = fgtest::map2(rx, fgtest::reduce_axis(rx, Red::max, 1, true),
                                   [](double a, double b) { return a - b; });
  CHECK(
      fgtest::compare(s,
                      fgtest::reduce_axis(
                          fgtest::map1(shifted, [](double v) { return std::exp(v); }), Red::sum, 1),
                      1e-5, 0) == "");
  // matmul inside a tree with a reduction: 1 GEMM + 1 reduction + 1 element-wise kernel.
  auto w = fgtest::random_tensor<float, 2>(Dims{53, 8}, rng);
  count.restart();
  fg::Tensor<float, 2> h = fg::relu(fg::matmul(x, w)) - fg::mean(x, 1, fg::keepdims);
  CHECK(count.gemms() == 1);
  CHECK(count.launches() == 3);
  CHECK(fgtest::dims_of(h.shape()) == Dims{37, 8});
}

}  // namespace test_fusion
