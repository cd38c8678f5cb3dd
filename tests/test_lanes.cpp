// tests/test_lanes.cpp — the vectorised contiguous fast path (core/lanes.hpp): whole steps of
// lanes_for<T> elements moved as 128-bit words, the tail element by element, and the scalar path
// whenever a pointer is not aligned to a whole step. Every size from 1 to past two steps, and
// operands offset by 0..3 elements, against a double reference on both backends (on CUDA these
// choose between the lanes kernel and the scalar one); the host additionally drives write_lanes
// directly, since its own loop does not use it.
#include <fusegrad/fusegrad.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_lanes {
namespace fg = fusegrad;
using fg::index_t;

/// a[off, off + n) * b[0, n) + 0.5 * c[off2, off2 + n) into a poisoned output, against a double
/// reference; one kernel whatever the alignment.
template <class T>
void check_offsets(index_t n, index_t off_a, index_t off_c, std::mt19937& rng) {
  auto a = fgtest::random_tensor<T, 1>(fg::Shape<1>({n + off_a}), rng, -2.0, 2.0);
  auto b = fgtest::random_tensor<T, 1>(fg::Shape<1>({n}), rng, -2.0, 2.0);
  auto c = fgtest::random_tensor<T, 1>(fg::Shape<1>({n + off_c}), rng, -2.0, 2.0);
  auto out = fgtest::poisoned<T, 1>(fg::Shape<1>({n}));
  const auto va = a.to_vector(), vb = b.to_vector(), vc = c.to_vector();
  const auto k0 = fg::stats::kernel_launches();
  out = fg::slice(a, 0, off_a, off_a + n) * b + T(0.5) * fg::slice(c, 0, off_c, off_c + n);
  CHECK(fg::stats::kernel_launches() - k0 == 1);
  const auto got = out.to_vector();
  for (index_t i = 0; i < n; ++i) {
    const double want = double(va[i + off_a]) * double(vb[i]) + 0.5 * double(vc[i + off_c]);
    INFO("n = " << n << ", offsets " << off_a << ", " << off_c << ", element " << i);
    REQUIRE(std::abs(double(got[i]) - want) <= 4 * fgtest::eps_of<T>() * (1 + std::abs(want)));
  }
}

TEST_CASE("lanes: every size and alignment writes every element once, float and double",
          "[elementwise][lanes]") {
  std::mt19937 rng(1701);
  for (index_t n : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 4099}) {
    for (index_t off : {0, 1, 2, 3}) {
      check_offsets<float>(n, off, 0, rng);
      check_offsets<float>(n, 0, off, rng);
      check_offsets<double>(n, off, off == 0 ? 1 : 0, rng);
    }
  }
}

TEST_CASE("lanes: integer, bool and mixed-dtype outputs", "[elementwise][lanes]") {
  std::mt19937 rng(1702);
  for (index_t n : {1, 7, 8, 9, 63, 64, 65, 1027}) {
    auto x = fgtest::random_tensor<float, 1>(fg::Shape<1>({n}), rng, -3.0, 3.0);
    auto y = fgtest::random_tensor<float, 1>(fg::Shape<1>({n}), rng, -3.0, 3.0);
    auto i32 = fgtest::random_tensor<int, 1>(fg::Shape<1>({n}), rng, -100.0, 100.0);
    auto i64 = fgtest::random_tensor<std::int64_t, 1>(fg::Shape<1>({n}), rng, -100.0, 100.0);
    const auto vx = x.to_vector(), vy = y.to_vector();
    const auto vi = i32.to_vector();
    const auto vl = i64.to_vector();

    auto gt = fgtest::filled<bool, 1>(fg::Shape<1>({n}), true);  // bool: 8 lanes of 1 byte
    gt = x > y;
    auto lt = fgtest::filled<bool, 1>(fg::Shape<1>({n}), false);
    lt = x < y;
    auto sum = fgtest::poisoned<int, 1>(fg::Shape<1>({n}));  // int from an int expression
    sum = i32 * 3 - 7;
    auto wide = fgtest::poisoned<std::int64_t, 1>(fg::Shape<1>({n}));  // int64: 2 lanes
    wide = i64 + fg::cast<std::int64_t>(i32);
    auto narrow = fgtest::poisoned<float, 1>(fg::Shape<1>({n}));  // double math into float
    narrow = fg::cast<float>(fg::cast<double>(x) * 2.0);

    const auto vgt = gt.to_vector(), vlt = lt.to_vector();
    const auto vs = sum.to_vector();
    const auto vw = wide.to_vector();
    const auto vn = narrow.to_vector();
    for (index_t i = 0; i < n; ++i) {
      INFO("n = " << n << ", element " << i);
      REQUIRE(vgt[i] == (vx[i] > vy[i]));
      REQUIRE(vlt[i] == (vx[i] < vy[i]));
      REQUIRE(vs[i] == vi[i] * 3 - 7);
      REQUIRE(vw[i] == vl[i] + vi[i]);
      REQUIRE(vn[i] == float(double(vx[i]) * 2.0));
    }
  }
}

TEST_CASE("lanes: in-place updates, fill, and generators on aligned and offset memory",
          "[elementwise][lanes]") {
  std::mt19937 rng(1703);
  for (index_t n : {1, 5, 8, 13, 4096, 4101}) {
    auto x = fgtest::random_tensor<float, 1>(fg::Shape<1>({n}), rng);
    auto y = fgtest::random_tensor<float, 1>(fg::Shape<1>({n + 1}), rng);
    const auto vx = x.to_vector(), vy = y.to_vector();
    x += fg::slice(y, 0, 1, n + 1);  // reads y one element off its step
    auto vx2 = x.to_vector();
    for (index_t i = 0; i < n; ++i) {
      REQUIRE(vx2[i] == vx[i] + vy[i + 1]);
    }
    x *= 2.f;
    const auto vx3 = x.to_vector();
    for (index_t i = 0; i < n; ++i) {
      REQUIRE(vx3[i] == 2.f * vx2[i]);
    }
    fg::Tensor<double, 1> f({n});
    f.fill(-1.25);
    for (double v : f.to_vector()) {
      REQUIRE(v == -1.25);
    }
    fg::Tensor<float, 1> r = fg::arange<float>(0.f, float(n), 1.f) * 2.f + x;
    const auto vr = r.to_vector();
    for (index_t i = 0; i < n; ++i) {
      REQUIRE(vr[i] == float(i) * 2.f + vx3[i]);
    }
  }
}

#if !defined(FG_BACKEND_CUDA)
TEST_CASE("lanes: write_lanes moves exactly one step; lanes_aligned sees every operand",
          "[elementwise][lanes]") {
  using fg::FG_BACKEND_NS::detail::WriteLinear;
  std::mt19937 rng(1704);
  const index_t n = 64;
  auto a = fgtest::random_tensor<float, 1>(fg::Shape<1>({n + 1}), rng);
  auto b = fgtest::random_tensor<double, 1>(fg::Shape<1>({n}), rng);
  const auto va = a.to_vector();
  const auto vb = b.to_vector();
  fg::Plan plan;
  // float output from float and double operands: 4 lanes; the double operand reads 32 bytes.
  const auto k = fg::as_node(fg::slice(a, 0, 0, n) * fg::cast<float>(b) + 1.f).prepare(plan);
  alignas(64) float aligned_out[72];
  std::fill(std::begin(aligned_out), std::end(aligned_out), -7.f);
  WriteLinear<float, decltype(k)> w{aligned_out, k};
  STATIC_REQUIRE(WriteLinear<float, decltype(k)>::lanes == 4);
  REQUIRE(w.lanes_aligned());
  w.write_lanes(8);
  for (index_t i = 0; i < 72; ++i) {
    const bool in_step = i >= 8 && i < 12;
    const float want = in_step ? va[i] * float(vb[i]) + 1.f : -7.f;
    REQUIRE(aligned_out[i] == want);
  }
  // Any misaligned pointer (the output, or one operand) sends the kernel down the scalar path.
  WriteLinear<float, decltype(k)> shifted{aligned_out + 1, k};
  REQUIRE_FALSE(shifted.lanes_aligned());
  const auto k_off = fg::as_node(fg::slice(a, 0, 1, n + 1) * fg::cast<float>(b) + 1.f).prepare(plan);
  WriteLinear<float, decltype(k_off)> offset{aligned_out, k_off};
  REQUIRE_FALSE(offset.lanes_aligned());
  // half of a double step: a double operand offset by 2 elements is 16-byte but not 32-byte aligned
  auto d = fgtest::random_tensor<double, 1>(fg::Shape<1>({n + 2}), rng);
  const auto k_d = fg::as_node(fg::cast<float>(fg::slice(d, 0, 2, n + 2))).prepare(plan);
  WriteLinear<float, decltype(k_d)> wide{aligned_out, k_d};
  REQUIRE_FALSE(wide.lanes_aligned());
  // Scalars and generators read no memory and never block the vector path.
  // (fg::arange materialises a tensor; the lazy node is the Generator it evaluates.)
  const fg::Generator<float, fg::IotaFn<float>> iota{{}, fg::IotaFn<float>{0.f, 1.f}, n};
  const auto k_gen = fg::as_node(iota * 3.f).prepare(plan);
  WriteLinear<float, decltype(k_gen)> gen{aligned_out, k_gen};
  REQUIRE(gen.lanes_aligned());
  gen.write_lanes(0);
  for (int j = 0; j < 4; ++j) {
    REQUIRE(aligned_out[j] == 3.f * float(j));
  }
  // bool output: 8 lanes of one byte each.
  STATIC_REQUIRE(WriteLinear<bool, decltype(k)>::lanes == 8);
  STATIC_REQUIRE(WriteLinear<double, decltype(k)>::lanes == 2);
}
#endif

}  // namespace test_lanes
