// tests/test_tensor.cpp — Tensor itself: construction, from_host, copy_from, to_vector, item,
// copies and moves, in-place += -= *= /=, the factories (zeros ones full arange), random::uniform
// and random::normal (reproducibility, range, moments), printing (abridged above 1000 elements),
// and the dtypes float, double, int32, int64, bool.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_tensor {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Ref;

template <class T, int R>
std::string printed(const fg::Tensor<T, R>& t) {
  std::ostringstream s;
  s << t;
  return s.str();
}

TEST_CASE("construction: shapes, sizes, empty and rank-0 tensors", "[tensor]") {
  fg::Tensor<float, 2> t({3, 4});
  CHECK(t.size() == 12);
  CHECK(fgtest::dims_of(t.shape()) == Dims{3, 4});
  CHECK(t.shape(0) == 3);
  CHECK(t.shape(-1) == 4);
  CHECK(t.data() != nullptr);
  fg::Tensor<double, 3> s(fg::Shape<3>({2, 1, 5}));
  CHECK(s.size() == 10);
  fg::Tensor<float, 2> empty;
  CHECK(empty.size() == 0);
  CHECK(fgtest::dims_of(empty.shape()) == Dims{0, 0});
  fg::Tensor<std::int32_t, 0> scalar;
  CHECK(scalar.size() == 1);
  fg::Tensor<std::int64_t, 6> six({1, 2, 1, 3, 1, 2});
  CHECK(six.size() == 12);
  fg::Tensor<float, 3> zero_extent({4, 0, 3});
  CHECK(zero_extent.size() == 0);
  static_assert(std::is_same_v<fg::Tensor<std::int32_t, 2>::value_type, std::int32_t>);
  static_assert(fg::Tensor<bool, 4>::rank == 4);
}

TEST_CASE("from_host, copy_from, to_vector and item round-trip every dtype", "[tensor]") {
  std::mt19937 rng(601);
  const auto f = fgtest::random_values<float>(60, rng);
  const auto d = fgtest::random_values<double>(60, rng);
  const auto i = fgtest::random_values<std::int32_t>(60, rng, -1000000, 1000000);
  const auto l = fgtest::random_values<std::int64_t>(60, rng, -4000000000000LL, 4000000000000LL);
  auto tf = fg::from_host<float>({3, 4, 5}, std::span<const float>(f));
  auto td = fg::from_host<double>({60}, std::span<const double>(d));
  auto ti = fg::from_host<std::int32_t>(fg::Shape<2>({6, 10}), std::span<const std::int32_t>(i));
  auto tl = fg::from_host<std::int64_t>({2, 30}, std::span<const std::int64_t>(l));
  CHECK(tf.to_vector() == f);
  CHECK(td.to_vector() == d);
  CHECK(ti.to_vector() == i);
  CHECK(tl.to_vector() == l);
  CHECK(fgtest::dims_of(tf.shape()) == Dims{3, 4, 5});
  // copy_from overwrites in place.
  const auto f2 = fgtest::random_values<float>(60, rng);
  const float* storage = tf.data();
  tf.copy_from(std::span<const float>(f2));
  CHECK(tf.to_vector() == f2);
  CHECK(tf.data() == storage);
  // bool tensors.
  bool bools[5] = {true, false, false, true, true};
  auto tb = fg::from_host<bool>({5}, std::span<const bool>(bools, 5));
  CHECK(tb.to_vector() == std::vector<bool>{true, false, false, true, true});
  // item() on one-element tensors of any rank.
  const float one = 2.75f;
  CHECK(fg::from_host<float>({1, 1, 1}, std::span<const float>(&one, 1)).item() == 2.75f);
  const std::int64_t big = -(std::int64_t(1) << 50);
  CHECK(
      fg::from_host<std::int64_t>(fg::Shape<0>{}, std::span<const std::int64_t>(&big, 1)).item() ==
      big);
  // Empty tensors round-trip too.
  fg::Tensor<float, 2> e({0, 3});
  e.copy_from(std::span<const float>());
  CHECK(e.to_vector().empty());
}

TEST_CASE("copies are deep, moves leave the source empty, self-assignment is harmless",
          "[tensor]") {
  std::mt19937 rng(602);
  auto a = fgtest::random_tensor<float, 2>(Dims{7, 9}, rng);
  const auto va = a.to_vector();
  fgtest::LaunchCounter count;
  fg::Tensor<float, 2> b = a;  // copy: new storage, same values
  CHECK(b.data() != a.data());
  CHECK(b.to_vector() == va);
  a += 1.f;
  CHECK(b.to_vector() == va);  // unaffected by later writes to a
  fg::Tensor<float, 2> c({2, 2});
  c = b;  // copy assignment into another shape
  CHECK(fgtest::dims_of(c.shape()) == Dims{7, 9});
  CHECK(c.to_vector() == va);
  const auto& alias = c;
  c = alias;  // self copy-assignment
  CHECK(c.to_vector() == va);
  count.restart();
  const float* storage = b.data();
  fg::Tensor<float, 2> d = std::move(b);  // move: the storage changes hands
  CHECK(d.data() == storage);
  CHECK(b.size() == 0);  // NOLINT: moved-from state is specified
  CHECK(fgtest::dims_of(b.shape()) == Dims{0, 0});
  CHECK(b.to_vector().empty());
  fg::Tensor<float, 2> e({1, 1});
  e = std::move(d);
  CHECK(e.data() == storage);
  CHECK(d.size() == 0);  // NOLINT
  CHECK(e.to_vector() == va);
  CHECK(count.launches() == 0);  // copies and moves are not kernels
  // A moved-from tensor can be assigned again.
  d = fg::zeros<float>({2, 3});
  CHECK(d.to_vector() == std::vector<float>(6, 0.f));
  // Copy-assignment between shapes of the same element count keeps the storage.
  auto p = fgtest::random_tensor<float, 2>(Dims{3, 2}, rng);
  const float* kept = d.data();
  d = p;
  CHECK(d.data() == kept);
  CHECK(fgtest::dims_of(d.shape()) == Dims{3, 2});
  CHECK(d.to_vector() == p.to_vector());
}

// A moved-from tensor is empty (no elements, every extent 0), copies of it are empty, and
// assigning to it allocates again.
TEST_CASE("rank-0 tensors: moved-from, copied, and re-assigned", "[tensor]") {
  auto x = fgtest::filled<float, 1>(fg::Shape<1>({10}), 1.f);
  fg::Tensor<float, 0> a(fg::Shape<0>{});
  fg::Tensor<float, 0> b = std::move(a);
  CHECK(b.size() == 1);
  CHECK(a.size() == 0);
  fg::Tensor<float, 0> c = a;
  CHECK(c.size() == 0);
  a = fg::sum(x);
  CHECK(a.item() == 10.f);
  fg::Tensor<float, 2> m({3, 4});
  fg::Tensor<float, 2> n = std::move(m);
  CHECK(m.size() == 0);
  CHECK(m.shape() == fg::Shape<2>({0, 0}));
  CHECK(n.size() == 12);
}

TEST_CASE(
    "in-place += -= *= /=: tensors, broadcast operands, numbers, expressions; one kernel each",
    "[tensor][inplace]") {
  std::mt19937 rng(603);
  auto a = fgtest::random_tensor<float, 2>(Dims{17, 33}, rng, 1, 2);
  auto b = fgtest::random_tensor<float, 2>(Dims{17, 33}, rng, 1, 2);
  auto row = fgtest::random_tensor<float, 1>(Dims{33}, rng, 1, 2);
  auto col = fgtest::random_tensor<float, 2>(Dims{17, 1}, rng, 1, 2);
  auto t = fgtest::random_tensor<float, 2>(Dims{33, 17}, rng, 1, 2);
  Ref ra = fgtest::ref_of(a);
  const Ref rb = fgtest::ref_of(b), rrow = fgtest::ref_of(row), rcol = fgtest::ref_of(col),
            rt = fgtest::ref_of(t);
  const float* storage = a.data();
  fgtest::LaunchCounter count;
  const auto step = [&](const Ref& rhs, fgtest::Fn2 f, const char* what) {
    INFO(what);
    ra = fgtest::round_to<float>(fgtest::map2(ra, rhs, f));
    CHECK(count.launches() == 1);
    CHECK(a.data() == storage);
    CHECK(fgtest::compare_exact(a, ra) == "");
    count.restart();
  };
  const fgtest::Fn2 add = [](double x, double y) { return x + y; };
  const fgtest::Fn2 sub = [](double x, double y) { return x - y; };
  const fgtest::Fn2 mul = [](double x, double y) { return x * y; };
  const fgtest::Fn2 div = [](double x, double y) { return x / y; };
  a += b;
  step(rb, add, "a += b");
  a -= row;
  step(rrow, sub, "a -= row (broadcast)");
  a *= col;
  step(rcol, mul, "a *= col (broadcast)");
  a /= b;
  step(rb, div, "a /= b");
  a += 2.f;
  step(Ref(Dims{}, 2.0), add, "a += 2");
  a *= 0.5f;
  step(Ref(Dims{}, 0.5), mul, "a *= 0.5");
  a -= 3;
  step(Ref(Dims{}, 3.0), sub, "a -= 3 (int number)");
  a /= 4.f;
  step(Ref(Dims{}, 4.0), div, "a /= 4");
  a += fg::transpose(t);
  step(fgtest::transpose(rt), add, "a += transpose(t)");
  a -= b * 2.f;  // an expression: rounded once to float before the subtraction
  step(fgtest::round_to<float>(fgtest::map1(rb, [](double x) { return 2 * x; })), sub,
       "a -= b * 2");
  a *= fg::broadcast_to(row, {17, 33});
  step(rrow, mul, "a *= broadcast_to(row)");
  // Integer tensors.
  auto i = fgtest::random_tensor<std::int32_t, 1>(Dims{129}, rng, -1000, 1000);
  auto j = fgtest::random_tensor<std::int32_t, 1>(Dims{129}, rng, -1000, 1000);
  Ref ri = fgtest::ref_of(i);
  const Ref rj = fgtest::ref_of(j);
  i += j;
  i *= 3;
  i -= 7;
  i /= 2;
  ri = fgtest::map2(ri, rj, [](double x, double y) { return std::trunc(((x + y) * 3 - 7) / 2); });
  CHECK(fgtest::compare_exact(i, ri) == "");
  auto l = fgtest::random_tensor<std::int64_t, 2>(Dims{3, 4}, rng, -100, 100);
  Ref rl = fgtest::ref_of(l);
  l *= l;
  CHECK(fgtest::compare_exact(l, fgtest::map1(rl, [](double x) { return x * x; })) == "");
}

TEST_CASE("factories: zeros, ones, full, arange; one kernel each; every dtype",
          "[tensor][factory]") {
  fgtest::LaunchCounter count;
  auto z = fg::zeros<float>({3, 4});
  CHECK(count.launches() == 1);
  CHECK(z.to_vector() == std::vector<float>(12, 0.f));
  count.restart();
  auto o = fg::ones<double>({2, 3, 4});
  CHECK(count.launches() == 1);
  CHECK(o.to_vector() == std::vector<double>(24, 1.0));
  count.restart();
  auto f = fg::full<std::int32_t>({5}, -7);
  CHECK(count.launches() == 1);
  CHECK(f.to_vector() == std::vector<std::int32_t>(5, -7));
  auto fl = fg::full<std::int64_t>(fg::Shape<2>({2, 2}), std::int64_t(1) << 40);
  CHECK(fl.to_vector() == std::vector<std::int64_t>(4, std::int64_t(1) << 40));
  auto fb = fg::full<float>({100001}, 0.25f);
  CHECK(fb.to_vector() == std::vector<float>(100001, 0.25f));
  auto zi = fg::zeros<std::int64_t>(fg::Shape<0>{});
  CHECK(zi.item() == 0);
  auto oi = fg::ones<std::int32_t>({0, 3});
  CHECK(oi.size() == 0);
  // arange: count = ceil((stop - start) / step), as NumPy.
  count.restart();
  auto r = fg::arange<float>(0.f, 1.f, 0.25f);
  CHECK(count.launches() == 1);
  CHECK(r.to_vector() == std::vector<float>{0.f, 0.25f, 0.5f, 0.75f});
  CHECK(fg::arange<std::int32_t>(10).to_vector() ==
        std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(fg::arange<std::int64_t>(3, 12, 4).to_vector() == std::vector<std::int64_t>{3, 7, 11});
  CHECK(fg::arange<double>(5, 0, -1).to_vector() == std::vector<double>{5, 4, 3, 2, 1});
  CHECK(fg::arange<double>(0.5, 2.0, 0.5).to_vector() == std::vector<double>{0.5, 1.0, 1.5});
  CHECK(fg::arange<std::int32_t>(-3, 4, 3).to_vector() == std::vector<std::int32_t>{-3, 0, 3});
  count.restart();
  CHECK(fg::arange<float>(2.f, 2.f).size() == 0);
  CHECK(fg::arange<float>(3.f, 2.f).size() == 0);
  CHECK(fg::arange<float>(0).size() == 0);
  CHECK(count.launches() == 0);  // empty results launch nothing
  auto big = fg::arange<float>(100000);
  const auto vb = big.to_vector();
  bool ok = vb.size() == 100000;
  for (std::size_t k = 0; ok && k < vb.size(); ++k) {
    ok = vb[k] == static_cast<float>(k);
  }
  CHECK(ok);
}

TEST_CASE(
    "random: the same seed and shape give the same tensor; element i depends only on (seed, i)",
    "[tensor][random]") {
  const auto u1 = fg::random::uniform<float>({100, 37}, -1.f, 1.f, 42).to_vector();
  const auto u2 = fg::random::uniform<float>({100, 37}, -1.f, 1.f, 42).to_vector();
  const auto u3 = fg::random::uniform<float>({100, 37}, -1.f, 1.f, 43).to_vector();
  CHECK(u1 == u2);
  CHECK(u1 != u3);
  // Another shape with the same element count: the same stream.
  const auto flat = fg::random::uniform<float>({3700}, -1.f, 1.f, 42).to_vector();
  CHECK(flat == u1);
  const auto prefix = fg::random::uniform<float>({1000}, -1.f, 1.f, 42).to_vector();
  CHECK(std::equal(prefix.begin(), prefix.end(), u1.begin()));
  std::size_t same = 0;
  for (std::size_t k = 0; k < u1.size(); ++k) {
    same += u1[k] == u3[k];
  }
  CHECK(same < 10);
  const auto n1 = fg::random::normal<double>({5000}, 0.0, 1.0, 7).to_vector();
  const auto n2 = fg::random::normal<double>({5000}, 0.0, 1.0, 7).to_vector();
  const auto n3 = fg::random::normal<double>({5000}, 0.0, 1.0, 8).to_vector();
  CHECK(n1 == n2);
  CHECK(n1 != n3);
  // High seed bits matter too.
  const auto h1 = fg::random::normal<float>({64}, 0.f, 1.f, 1).to_vector();
  const auto h2 =
      fg::random::normal<float>({64}, 0.f, 1.f, (std::uint64_t(1) << 40) | 1).to_vector();
  CHECK(h1 != h2);
  // One kernel each.
  fgtest::LaunchCounter count;
  auto r = fg::random::normal<float>({10, 10}, 0.f, 1.f, 3);
  CHECK(count.launches() == 1);
}

TEST_CASE("random: pinned values of the Philox stream (the same on every backend)",
          "[tensor][random]") {
  // u in [0, 1) is computed exactly (lo = 0, hi = 1), so these must match bit for bit.
  CHECK(fg::random::uniform<double>({4}, 0.0, 1.0, 42).to_vector() ==
        std::vector<double>{0.38844724682343379, 0.43264963760623965, 0.12193292058172234,
                            0.94181344650491305});
  CHECK(fg::random::uniform<float>({2, 2}, 0.f, 1.f, 42).to_vector() ==
        std::vector<float>{0.388447225f, 0.432649612f, 0.121932864f, 0.941813409f});
  CHECK(fg::random::uniform<double>(fg::Shape<0>{}, 0.0, 1.0, 0).item() == 0.2716535784755495);
  // Box-Muller goes through log, sqrt and cos: the same to a few ulps.
  const Ref want(
      Dims{4}, {0.92456134434145343, 0.65849199602514596, -0.50961634813504353, 1.103507845371527});
  CHECK(fgtest::compare(fg::random::normal<double>({4}, 0.0, 1.0, 42), want, 1e-13, 0) == "");
}

/// Mean, standard deviation, min and max of v.
struct Moments {
  double mean = 0, sd = 0, min = 0, max = 0, within_1sd = 0;
};

template <class T>
Moments moments(const std::vector<T>& v, double centre, double sigma) {
  Moments m;
  long double s = 0, s2 = 0;
  m.min = m.max = static_cast<double>(v[0]);
  std::size_t inside = 0;
  for (T x : v) {
    const double d = static_cast<double>(x);
    s += d;
    s2 += static_cast<long double>(d) * d;
    m.min = std::min(m.min, d);
    m.max = std::max(m.max, d);
    inside += std::abs(d - centre) < sigma;
  }
  const long double n = static_cast<long double>(v.size());
  m.mean = static_cast<double>(s / n);
  m.sd = static_cast<double>(std::sqrt(s2 / n - (s / n) * (s / n)));
  m.within_1sd = static_cast<double>(inside) / static_cast<double>(v.size());
  return m;
}

TEST_CASE("random::uniform: values in [lo, hi), mean and spread of 10^6 samples",
          "[tensor][random]") {
  const index_t n = 1000000;
  const auto f = fg::random::uniform<float>({1000, 1000}, -1.f, 1.f, 2024).to_vector();
  const Moments mf = moments(f, 0.0, 0.5);
  CHECK(mf.min >= -1.0);
  CHECK(mf.max < 1.0);
  const double sd = 2 / std::sqrt(12.0);
  CHECK(std::abs(mf.mean) < 5 * sd / std::sqrt(double(n)));
  CHECK(std::abs(mf.sd - sd) < 5 * sd / std::sqrt(2.0 * double(n)) * 1.2);
  CHECK(std::abs(mf.within_1sd - 0.5) < 0.003);
  const auto d = fg::random::uniform<double>({n}, 3.0, 5.0, 99).to_vector();
  const Moments md = moments(d, 4.0, 0.5);
  CHECK(md.min >= 3.0);
  CHECK(md.max < 5.0);
  CHECK(std::abs(md.mean - 4.0) < 5 * sd / std::sqrt(double(n)));
  CHECK(std::abs(md.sd - sd) < 5 * sd / std::sqrt(2.0 * double(n)) * 1.2);
  // Roughly 1/10 of the samples in each tenth of the range.
  std::vector<int> bins(10, 0);
  for (double x : d) {
    bins[static_cast<std::size_t>(std::min(9.0, (x - 3.0) * 5))]++;
  }
  for (int b : bins) {
    CHECK(std::abs(b - 100000) < 1500);
  }
}

// lo + (hi - lo) * u can round up to hi when u is within half an ulp of 1 (seed 7, element 436872
// has u = 1 - 2^-24); the library then returns the number just below hi.
TEST_CASE("random::uniform<float> never reaches hi, even where rounding would",
          "[tensor][random]") {
  const auto v = fg::random::uniform<float>({436873}, 1.f, 1.5f, 7).to_vector();
  CHECK(v.back() < 1.5f);
  CHECK(v.back() == std::nextafter(1.5f, 1.f));
  const auto w = fg::random::uniform<float>({436873}, 100.f, 101.f, 7).to_vector();
  CHECK(w.back() < 101.f);
}

TEST_CASE("random::normal: mean, standard deviation and the 68% rule over 10^6 samples",
          "[tensor][random]") {
  const index_t n = 1000000;
  const auto f = fg::random::normal<float>({n}, 2.f, 3.f, 5).to_vector();
  const Moments mf = moments(f, 2.0, 3.0);
  CHECK(std::abs(mf.mean - 2.0) < 5 * 3.0 / std::sqrt(double(n)));
  CHECK(std::abs(mf.sd - 3.0) < 5 * 3.0 / std::sqrt(2.0 * double(n)));
  CHECK(std::abs(mf.within_1sd - 0.682689) < 0.0025);
  CHECK(std::isfinite(mf.min));
  CHECK(std::isfinite(mf.max));
  CHECK(mf.max - 2.0 > 4 * 3.0);  // tails reach beyond 4 sigma with 10^6 samples
  CHECK(2.0 - mf.min > 4 * 3.0);
  const auto d = fg::random::normal<double>({1000, 1000}, -1.0, 0.5, 6).to_vector();
  const Moments md = moments(d, -1.0, 0.5);
  CHECK(std::abs(md.mean + 1.0) < 5 * 0.5 / std::sqrt(double(n)));
  CHECK(std::abs(md.sd - 0.5) < 5 * 0.5 / std::sqrt(2.0 * double(n)));
  CHECK(std::abs(md.within_1sd - 0.682689) < 0.0025);
  // Symmetry: as many samples above the mean as below.
  std::size_t above = 0;
  for (double x : d) {
    above += x > -1.0;
  }
  CHECK(std::abs(static_cast<double>(above) - 500000.0) < 2500);
}

TEST_CASE("printing: header, nesting, dtypes, and NumPy-style abridging above 1000 elements",
          "[tensor][print]") {
  const std::vector<float> v = {1.f, 2.5f, -3.f, 4.f, 0.125f, 6.f};
  auto t = fgtest::tensor_from<float, 2>(fg::Shape<2>({2, 3}), v);
  CHECK(printed(t) == "tensor(shape=[2, 3], dtype=float32)\n[[1, 2.5, -3],\n [4, 0.125, 6]]");
  auto i = fg::arange<std::int64_t>(-2, 2);
  CHECK(printed(i) == "tensor(shape=[4], dtype=int64)\n[-2, -1, 0, 1]");
  auto i32 = fg::full<std::int32_t>({1, 2}, 7);
  CHECK(printed(i32) == "tensor(shape=[1, 2], dtype=int32)\n[[7, 7]]");
  auto d = fg::full<double>(fg::Shape<0>{}, 0.1);
  CHECK(printed(d) == "tensor(shape=[], dtype=float64)\n0.1");
  bool bv[3] = {true, false, true};
  auto b = fg::from_host<bool>({3}, std::span<const bool>(bv, 3));
  CHECK(printed(b) == "tensor(shape=[3], dtype=bool)\n[true, false, true]");
  auto e = fg::Tensor<float, 2>(fg::Shape<2>({2, 0}));
  CHECK(printed(e) == "tensor(shape=[2, 0], dtype=float32)\n[[],\n []]");
  auto c = fg::arange<std::int32_t>(8);
  CHECK(printed(fg::reshape(c, {2, 2, 2}).eval()) ==
        "tensor(shape=[2, 2, 2], dtype=int32)\n[[[0, 1],\n  [2, 3]],\n [[4, 5],\n  [6, 7]]]");
  // Printing an expression evaluates it.
  std::ostringstream s;
  s << (t * 2.f);
  CHECK(s.str() == "tensor(shape=[2, 3], dtype=float32)\n[[2, 5, -6],\n [8, 0.25, 12]]");
  // 1000 elements: printed in full; 1001 and more: first and last 3 of each axis.
  auto full1000 = fg::arange<std::int32_t>(1000);
  const std::string p1000 = printed(full1000);
  CHECK(p1000.find("...") == std::string::npos);
  CHECK(p1000.find(", 500, 501, ") != std::string::npos);
  CHECK(printed(fg::arange<std::int32_t>(2000)) ==
        "tensor(shape=[2000], dtype=int32)\n[0, 1, 2, ..., 1997, 1998, 1999]");
  auto grid = fg::arange<float>(1600);
  CHECK(printed(fg::reshape(grid, {40, 40}).eval()) ==
        "tensor(shape=[40, 40], dtype=float32)\n"
        "[[0, 1, 2, ..., 37, 38, 39],\n"
        " [40, 41, 42, ..., 77, 78, 79],\n"
        " [80, 81, 82, ..., 117, 118, 119],\n"
        " ...,\n"
        " [1480, 1481, 1482, ..., 1517, 1518, 1519],\n"
        " [1520, 1521, 1522, ..., 1557, 1558, 1559],\n"
        " [1560, 1561, 1562, ..., 1597, 1598, 1599]]");
  // Axes of 6 or fewer are not cut even when the tensor is large.
  auto tall = fg::arange<std::int32_t>(1200);
  const std::string pt = printed(fg::reshape(tall, {200, 6}).eval());
  CHECK(pt.find("[0, 1, 2, 3, 4, 5]") != std::string::npos);
  CHECK(pt.find("[1194, 1195, 1196, 1197, 1198, 1199]]") != std::string::npos);
  CHECK(pt.find(" ...,\n") != std::string::npos);
  CHECK(pt.find("[12, ") != std::string::npos);
  CHECK(pt.find("[18, ") == std::string::npos);
}

}  // namespace test_tensor
