// tests/test_reduce.cpp — sum mean max min prod argmax argmin against a double-precision host
// reference: full reductions, every axis (negative ones too), keepdims; over non-contiguous views
// and over element-wise trees (fused: one kernel, no temporary); the 1-D size sweep; ties (first
// index wins), NaN, empty inputs; reduction results used element-wise again (softmax-like rows).
#include <fusegrad/fusegrad.hpp>

#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_reduce {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Red;
using fgtest::Ref;

// One tag per reduction: its reference op and its three fusegrad forms.
#define FG_TEST_REDUCE_TAG(NAME)           \
  struct tag_##NAME {                      \
    static constexpr Red red = Red::NAME;  \
    template <class E>                     \
    static auto all(const E& e) {          \
      return fg::NAME(e);                  \
    }                                      \
    template <class E>                     \
    static auto axis(const E& e, int a) {  \
      return fg::NAME(e, a);               \
    }                                      \
    template <class E>                     \
    static auto keep(const E& e, int a) {  \
      return fg::NAME(e, a, fg::keepdims); \
    }                                      \
  };
FG_TEST_REDUCE_TAG(sum)
FG_TEST_REDUCE_TAG(mean)
FG_TEST_REDUCE_TAG(max)
FG_TEST_REDUCE_TAG(min)
FG_TEST_REDUCE_TAG(prod)
FG_TEST_REDUCE_TAG(argmax)
FG_TEST_REDUCE_TAG(argmin)
#undef FG_TEST_REDUCE_TAG

inline constexpr int full_axis = INT_MIN;  // "every element"

/// Checks one reduction outcome against the reference of `input` (the values the reduced
/// expression has, exactly as its dtype computes them). eps: the result dtype's epsilon.
inline void check_reduction(const fgtest::Outcome& o, const Ref& input, Red op, int axis, bool keep,
                            double eps) {
  INFO(fgtest::red_name(op) << " over "
                            << (axis == full_axis ? std::string("every element")
                                                  : "axis " + std::to_string(axis))
                            << (keep ? " (keepdims)" : "") << " of shape "
                            << fgtest::dims_str(input.shape));
  const bool full = axis == full_axis;
  const Ref want =
      full ? fgtest::reduce_all(input, op) : fgtest::reduce_axis(input, op, axis, keep);
  CHECK(o.in_place);
  CHECK(o.launches == (want.size() > 0 ? 1 : 0));
  if (op == Red::sum || op == Red::mean) {
    // Rounding error of any summation order is bounded by (n-1) eps sum|x|; allow 64 eps sum|x|
    // (the backends sum in short runs and combine the partial sums).
    Ref tol = full ? fgtest::reduce_all(fgtest::map1(input, [](double x) { return std::abs(x); }),
                                        Red::sum)
                   : fgtest::abs_sum_axis(input, axis, keep);
    const double n = static_cast<double>(
        full ? input.size()
             : input.shape[static_cast<std::size_t>(axis < 0 ? axis + input.rank() : axis)]);
    for (auto& t : tol.v) {
      t = 64 * eps * t / (op == Red::mean && n > 0 ? n : 1.0) + 1e-300;
    }
    CHECK(fgtest::compare_scaled(o.got, want, tol) == "");
  } else if (op == Red::prod) {
    const double n = static_cast<double>(
        full ? input.size()
             : input.shape[static_cast<std::size_t>(axis < 0 ? axis + input.rank() : axis)]);
    CHECK(fgtest::compare(o.got, want, 4 * (n + 1) * eps, 0) == "");
  } else {
    CHECK(fgtest::compare_exact(o.got, want) == "");
  }
}

/// The reduction `Tag` of `e` (reference values `re`): over every element, and over every axis in
/// both signs, with and without keepdims; each into a poisoned output in one kernel.
template <class Tag, class E>
void check_op(const E& e, const Ref& re) {
  using Out = typename decltype(Tag::all(e))::value_type;
  constexpr int R = fg::node_t<E>::rank;
  const double eps = fgtest::eps_of<Out>();
  const bool needs_elements = Tag::red == Red::max || Tag::red == Red::min ||
                              Tag::red == Red::argmax || Tag::red == Red::argmin;
  if (re.size() > 0 || !needs_elements) {
    check_reduction(fgtest::run<Out, 0>(Tag::all(e)), re, Tag::red, full_axis, false, eps);
  }
  for (int axis = -R; axis < R; ++axis) {
    if (needs_elements && re.shape[static_cast<std::size_t>(axis < 0 ? axis + R : axis)] == 0) {
      continue;  // max of nothing is an error (tested in test_errors.cpp)
    }
    check_reduction(fgtest::run<Out, R - 1>(Tag::axis(e, axis)), re, Tag::red, axis, false, eps);
    check_reduction(fgtest::run<Out, R>(Tag::keep(e, axis)), re, Tag::red, axis, true, eps);
  }
}

template <class E>
void check_all_ops(const E& e, const Ref& re) {
  check_op<tag_sum>(e, re);
  check_op<tag_mean>(e, re);
  check_op<tag_max>(e, re);
  check_op<tag_min>(e, re);
  check_op<tag_argmax>(e, re);
  check_op<tag_argmin>(e, re);
}

/// Shapes of rank 3: size-1 axes, odd sizes, an empty axis.
inline std::vector<Dims> reduce_shapes() {
  return {{2, 3, 4},    {1, 7, 1}, {5, 1, 33},   {3, 0, 2},
          {17, 16, 15}, {1, 1, 1}, {65, 2, 129}, {0, 0, 0}};
}

template <class T>
void reduce_sweep(std::uint32_t seed, double lo, double hi) {
  std::mt19937 rng(seed);
  const fgtest::Layout layouts[] = {fgtest::Layout::contiguous, fgtest::Layout::permuted,
                                    fgtest::Layout::strided, fgtest::Layout::broadcast};
  for (const Dims& s : reduce_shapes()) {
    for (fgtest::Layout layout : layouts) {
      INFO("layout " << fgtest::layout_name(layout));
      auto x = fgtest::make_operand<T>(s, layout, rng, lo, hi);
      check_all_ops(x.view, x.ref);
    }
  }
}

TEST_CASE("reductions of float tensors and views: every op, full, every axis, keepdims",
          "[reduce]") {
  reduce_sweep<float>(301, -1, 1);
}
TEST_CASE("reductions of double tensors and views", "[reduce]") {
  reduce_sweep<double>(302, -1, 1);
}
TEST_CASE("reductions of int32 tensors: sum is int64, mean is double", "[reduce][int]") {
  reduce_sweep<std::int32_t>(303, -1000, 1000);
  std::mt19937 rng(304);
  auto x = fgtest::random_tensor<std::int32_t, 3>(Dims{2, 3, 4}, rng, -1000, 1000);
  static_assert(std::is_same_v<decltype(fg::sum(x).eval())::element_type, std::int64_t>);
  static_assert(std::is_same_v<decltype(fg::mean(x).eval())::element_type, double>);
  static_assert(std::is_same_v<decltype(fg::max(x).eval())::element_type, std::int32_t>);
  static_assert(std::is_same_v<decltype(fg::argmax(x).eval())::element_type, std::int64_t>);
  // Sums of large int32 values do not overflow: they accumulate in int64.
  auto big = fgtest::filled<std::int32_t, 3>(fg::Shape<3>({4, 1000, 1}), 2000000000);
  CHECK(fg::sum(big).item() == std::int64_t(8) * 1000 * 1000000000);
}

TEST_CASE("prod: float, double and int32, full and per axis", "[reduce][prod]") {
  std::mt19937 rng(305);
  for (const Dims& s : reduce_shapes()) {
    // Factors near 1 keep products of ~10^5 factors in range.
    auto x = fgtest::random_tensor<float, 3>(s, rng, 0.9, 1.1);
    check_op<tag_prod>(x, fgtest::ref_of(x));
    auto d = fgtest::make_operand<double>(s, fgtest::Layout::permuted, rng, -1.5, 1.5);
    check_op<tag_prod>(d.view, d.ref);
  }
  auto i = fgtest::random_tensor<std::int32_t, 3>(Dims{3, 4, 5}, rng, -1, 2);  // |product| <= 2^60
  check_op<tag_prod>(i, fgtest::ref_of(i));
}

TEST_CASE("the 1-D size sweep: full and axis reductions over 0 ... 100000 elements",
          "[reduce][sweep]") {
  std::mt19937 rng(306);
  for (index_t n : fgtest::sweep_sizes()) {
    INFO("n = " << n);
    // [1, 1, n]: the reduced run is contiguous; [n, 1, 1] via a permuted view: strided reads;
    // [3, n, 2] (small n): the middle axis, with inner extent 2.
    auto x = fgtest::random_tensor<float, 3>(Dims{1, 1, n}, rng, -1, 1);
    check_all_ops(x.view(), fgtest::ref_of(x));
    auto y = fgtest::random_tensor<float, 3>(Dims{1, n, 1}, rng, -1, 1);
    check_op<tag_sum>(fg::permute(y, {1, 0, 2}), fgtest::permute(fgtest::ref_of(y), {1, 0, 2}));
    check_op<tag_argmax>(fg::permute(y, {1, 0, 2}), fgtest::permute(fgtest::ref_of(y), {1, 0, 2}));
    if (n <= 4097) {
      auto z = fgtest::random_tensor<double, 3>(Dims{3, n, 2}, rng, -1, 1);
      check_all_ops(z.view(), fgtest::ref_of(z));
    }
    auto p = fgtest::random_tensor<float, 3>(Dims{1, 1, n}, rng, 0.999, 1.001);
    check_op<tag_prod>(p.view(), fgtest::ref_of(p));
  }
}

TEST_CASE("reductions of element-wise trees are fused: sum(square(a - b), axis), one kernel",
          "[reduce][fusion]") {
  std::mt19937 rng(307);
  for (const Dims& s : reduce_shapes()) {
    for (fgtest::Layout lb :
         {fgtest::Layout::contiguous, fgtest::Layout::permuted, fgtest::Layout::strided}) {
      auto a = fgtest::make_operand<float>(s, fgtest::Layout::contiguous, rng, -1, 1);
      auto b = fgtest::make_operand<float>(s, lb, rng, -1, 1);
      // The tree's values exactly as float computes them: round(round(a - b)^2).
      const Ref diff = fgtest::round_to<float>(
          fgtest::map2(a.ref, b.ref, [](double x, double y) { return x - y; }));
      const Ref sq = fgtest::round_to<float>(fgtest::map1(diff, [](double x) { return x * x; }));
      const auto tree = fg::square(a.view - b.view);
      check_op<tag_sum>(tree, sq);
      check_op<tag_mean>(tree, sq);
      check_op<tag_max>(tree, sq);
      check_op<tag_argmin>(tree, sq);
    }
  }
}

TEST_CASE("argmax/argmin: ties go to the first index; NaN counts as extreme; max/min propagate NaN",
          "[reduce][arg]") {
  std::mt19937 rng(308);
  // Few distinct values: every row has ties, at positions both inside and across the backends'
  // interleaved lanes and chunks.
  for (const Dims& s : {Dims{4, 5, 37}, Dims{2, 3, 40000}, Dims{40000, 1, 2}}) {
    auto x = fgtest::make_operand<float>(s, fgtest::Layout::contiguous, rng, -2, 2);
    fgtest::transform_operand(x, [](double v) { return std::round(v); });
    check_op<tag_argmax>(x.view, x.ref);
    check_op<tag_argmin>(x.view, x.ref);
    check_op<tag_max>(x.view, x.ref);
  }
  // All equal: index 0 everywhere.
  auto c = fgtest::filled<float, 3>(fg::Shape<3>({3, 17, 4}), 1.5f);
  CHECK(fg::argmax(c).item() == 0);
  CHECK(fg::argmin(c).item() == 0);
  CHECK(fgtest::compare_exact(fg::argmax(c, 1).eval(), Ref(Dims{3, 4}, 0.0)) == "");
  CHECK(fgtest::compare_exact(fg::argmin(c, -1, fg::keepdims).eval(), Ref(Dims{3, 17, 1}, 0.0)) ==
        "");
  // The maximum at the very end, and twice: the first of the two.
  std::vector<float> v(100000, 0.f);
  v[99998] = 3.f;
  v[99999] = 3.f;
  v[5] = -1.f;
  v[70000] = -1.f;
  auto t = fgtest::tensor_from<float, 3>(fg::Shape<3>({1, 1, 100000}), v);
  CHECK(fg::argmax(t).item() == 99998);
  CHECK(fg::argmin(t).item() == 5);
  // NaN: max/min propagate it; argmax/argmin report the first NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  v[12345] = nan;
  v[54321] = nan;
  t.copy_from(std::span<const float>(v));
  CHECK(std::isnan(fg::max(t).item()));
  CHECK(std::isnan(fg::min(t).item()));
  CHECK(fg::argmax(t).item() == 12345);
  CHECK(fg::argmin(t).item() == 12345);
  check_all_ops(t.view(), fgtest::ref_of(t));
}

TEST_CASE("empty reductions: sum 0, prod 1, mean NaN; an empty axis gives identities",
          "[reduce][empty]") {
  auto e = fg::Tensor<float, 3>(fg::Shape<3>({3, 0, 2}));
  CHECK(fg::sum(e).item() == 0.f);
  CHECK(fg::prod(e).item() == 1.f);
  CHECK(std::isnan(fg::mean(e).item()));
  CHECK(fgtest::compare_exact(fgtest::run<float, 2>(fg::sum(e, 1)).got, Ref(Dims{3, 2}, 0.0)) ==
        "");
  CHECK(fgtest::compare_exact(fgtest::run<float, 2>(fg::prod(e, 1)).got, Ref(Dims{3, 2}, 1.0)) ==
        "");
  CHECK(fgtest::compare_exact(fgtest::run<float, 3>(fg::mean(e, 1, fg::keepdims)).got,
                              Ref(Dims{3, 1, 2}, NAN)) == "");
  // An empty result launches nothing.
  fgtest::LaunchCounter count;
  fg::Tensor<float, 2> r = fg::sum(e, 2);
  CHECK(r.size() == 0);
  CHECK(count.launches() == 0);
}

TEST_CASE("reduction results used element-wise: x - max(x, 1, keepdims), softmax rows, x / sum(x)",
          "[reduce][composite]") {
  std::mt19937 rng(309);
  const Dims shapes[] = {{7, 13}, {1, 129}, {33, 1}, {100, 4097}};
  for (const Dims& s : shapes) {
    INFO("shape " << fgtest::dims_str(s));
    auto x = fgtest::random_tensor<float, 2>(s, rng, -5, 5);
    const Ref rx = fgtest::ref_of(x);
    const Ref rmax = fgtest::reduce_axis(rx, Red::max, 1, true);
    const Ref shifted = fgtest::map2(rx, rmax, [](double a, double b) { return a - b; });
    // The reduction is one kernel, the element-wise tree around it another.
    fgtest::expect(fgtest::run<float, 2>(x - fg::max(x, 1, fg::keepdims)), shifted,
                   fgtest::ulps<float>(1), 0, "x - max(x, 1, keepdims)", 2);
    fgtest::expect(fgtest::run<float, 2>(x - fg::max(x, -1, fg::keepdims)), shifted,
                   fgtest::ulps<float>(1), 0, "x - max(x, -1, keepdims)", 2);
    // Softmax over rows: e = exp(x - max), p = e / sum(e); rows sum to 1.
    fg::Tensor<float, 2> ex = fg::exp(x - fg::max(x, 1, fg::keepdims));
    fg::Tensor<float, 2> p = fgtest::poisoned<float, 2>(x.shape());
    p = ex / fg::sum(ex, 1, fg::keepdims);
    const Ref rex = fgtest::map1(shifted, [](double v) { return std::exp(v); });
    const Ref want = fgtest::map2(rex, fgtest::reduce_axis(rex, Red::sum, 1, true),
                                  [](double a, double b) { return a / b; });
    CHECK(fgtest::compare(p, want, fgtest::ulps<float>(64), fgtest::ulps<float>(4)) == "");
    fg::Tensor<float, 1> rows = fg::sum(p, 1);
    CHECK(fgtest::compare(rows, Ref(Dims{s[0]}, 1.0), 0, fgtest::ulps<float>(64)) == "");
    // Column centring: x - mean(x, 0, keepdims) has zero column means.
    const Ref centred = fgtest::map2(rx, fgtest::reduce_axis(rx, Red::mean, 0, true),
                                     [](double a, double b) { return a - b; });
    fgtest::expect(fgtest::run<float, 2>(x - fg::mean(x, 0, fg::keepdims)), centred, 0,
                   fgtest::ulps<float>(64) * 5, "x - mean(x, 0, keepdims)", 2);
    // A full reduction (rank 0) broadcast against the tensor.
    const double total =
        fgtest::reduce_all(fgtest::map1(rx, [](double v) { return std::abs(v); }), Red::sum).v[0];
    Ref normalised = rx;
    for (auto& v : normalised.v) {
      v /= total;
    }
    fgtest::expect(fgtest::run<float, 2>(x / fg::sum(fg::abs(x))), normalised,
                   fgtest::ulps<float>(66), 0, "x / sum(abs(x))", 2);
  }
}

TEST_CASE("reductions are deterministic, item() and .eval() work on reduction nodes", "[reduce]") {
  std::mt19937 rng(310);
  auto x = fgtest::random_tensor<float, 3>(Dims{3, 333, 170}, rng, -1, 1);
  const float s1 = fg::sum(x).item();
  const float s2 = fg::sum(x).item();
  CHECK(s1 == s2);
  const auto a1 = fg::sum(x, 1).eval().to_vector();
  const auto a2 = fg::sum(x, 1).eval().to_vector();
  CHECK(a1 == a2);
  CHECK(std::abs(static_cast<double>(s1) - fgtest::reduce_all(fgtest::ref_of(x), Red::sum).v[0]) <
        1e-2);
  // Assigning a reduction to a tensor of another shape reallocates it.
  fg::Tensor<float, 2> r = fgtest::poisoned<float, 2>(fg::Shape<2>({1, 1}));
  r = fg::max(x, 2);
  CHECK(fgtest::compare_exact(r, fgtest::reduce_axis(fgtest::ref_of(x), Red::max, 2)) == "");
  // A reduction reading its own destination goes through a temporary.
  auto y = fgtest::random_tensor<float, 2>(Dims{1, 50}, rng, -1, 1);
  const Ref ry = fgtest::ref_of(y);
  y = fg::sum(fg::square(y), 0, fg::keepdims);  // same shape [1, 50]
  CHECK(fgtest::compare(y, fgtest::map1(ry, [](double v) { return v * v; }), fgtest::ulps<float>(1),
                        0) == "");
}

TEST_CASE("sums of comparisons count (int64); a reduction of the destination inside its own tree",
          "[reduce][composite]") {
  std::mt19937 rng(311);
  auto a = fgtest::random_tensor<float, 2>(Dims{33, 129}, rng, -1, 1);
  auto b = fgtest::random_tensor<float, 1>(Dims{129}, rng, -1, 1);
  const Ref ra = fgtest::ref_of(a), rb = fgtest::ref_of(b);
  const Ref gt = fgtest::map2(ra, rb, [](double x, double y) { return double(x > y); });
  static_assert(std::is_same_v<decltype(fg::sum(a > b).eval())::element_type, std::int64_t>);
  fgtest::expect_exact(fgtest::run<std::int64_t, 0>(fg::sum(a > b)),
                       fgtest::reduce_all(gt, Red::sum), "sum(a > b)", 1);
  fgtest::expect_exact(fgtest::run<std::int64_t, 1>(fg::sum(a > b, 0)),
                       fgtest::reduce_axis(gt, Red::sum, 0), "sum(a > b, 0)", 1);
  // x = x - max(x, 1, keepdims): the reduction is evaluated first, then x is updated in place.
  auto x = fgtest::random_tensor<float, 2>(Dims{17, 65}, rng, -3, 3);
  const Ref rx = fgtest::ref_of(x);
  const float* storage = x.data();
  fgtest::LaunchCounter count;
  x = x - fg::max(x, 1, fg::keepdims);
  CHECK(count.launches() == 2);
  CHECK(x.data() == storage);
  CHECK(fgtest::compare(x,
                        fgtest::map2(rx, fgtest::reduce_axis(rx, Red::max, 1, true),
                                     [](double p, double q) { return p - q; }),
                        fgtest::ulps<float>(1), 0) == "");
  CHECK(fgtest::compare_exact(fgtest::ref_of(fg::max(x, 1).eval()), Ref(Dims{17}, 0.0)) == "");
}

// A rank-0 tensor built from an expression gets its storage from the evaluation.
TEST_CASE("Tensor<float, 0> constructed from a reduction and from an expression of one",
          "[reduce]") {
  auto x = fgtest::filled<float, 1>(fg::Shape<1>({10}), 1.f);
  fg::Tensor<float, 0> s = fg::sum(x);
  CHECK(s.item() == 10.f);
  fg::Tensor<float, 0> t = fg::sum(x) * 2.f;
  CHECK(t.item() == 20.f);
}

TEST_CASE("rank-0 results: assignment into an allocated rank-0 tensor, item(), eval()",
          "[reduce]") {
  auto x = fgtest::filled<float, 1>(fg::Shape<1>({10}), 1.5f);
  fg::Tensor<float, 0> s = fgtest::poisoned<float, 0>(fg::Shape<0>{});
  s = fg::sum(x);
  CHECK(s.item() == 15.f);
  s = fg::sum(x) * 2.f;
  CHECK(s.item() == 30.f);
  CHECK(fg::sum(x).eval().item() == 15.f);
  CHECK(fg::eval(fg::mean(x)).item() == 1.5f);
}

}  // namespace test_reduce
