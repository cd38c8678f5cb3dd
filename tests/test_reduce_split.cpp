// tests/test_reduce_split.cpp — axis reductions with few outputs and a long reduced axis, the
// shapes for which the CUDA backend splits the axis across blocks (a last-block combine per output
// row or column tile): sum(x, 0) of a long vector, max/min/argmax/argmin over axis 0 of
// [4096, 1024] with planted ties and NaN, a bias gradient over [65536, 10], means, logsumexp and
// prod over long axes, fused trees, column tiles of every width, a permuted view; each in one
// kernel, against a double-precision host reference. Split results are bitwise reproducible, and
// a compiled step replays them (the tickets start from zero at every replay). On the host backend
// the same checks cover its chunked reductions.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_reduce_split {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Red;
using fgtest::Ref;

/// The lanes of a reduction over `axis` of `input`: for each output (C order), the len values it
/// reduces, in order, stored one lane after another (references of inputs of millions of elements
/// then read memory in order).
struct Lanes {
  Dims shape;  // the reduction's result
  index_t len = 0;
  std::vector<double> v;  // (outputs, len)

  Lanes(const Ref& input, int axis) : shape(input.shape) {
    const auto ax = static_cast<std::size_t>(axis);
    index_t outer = 1, inner = 1;
    for (std::size_t k = 0; k < input.shape.size(); ++k) {
      if (k != ax) {
        (k < ax ? outer : inner) *= input.shape[k];
      }
    }
    len = input.shape[ax];
    shape.erase(shape.begin() + axis);
    v.resize(input.v.size());
    for (index_t o = 0; o < outer; ++o) {
      for (index_t l = 0; l < len; ++l) {
        for (index_t j = 0; j < inner; ++j) {
          v[static_cast<std::size_t>((o * inner + j) * len + l)] =
              input.v[static_cast<std::size_t>((o * len + l) * inner + j)];
        }
      }
    }
  }
  index_t outputs() const { return len == 0 ? 0 : static_cast<index_t>(v.size()) / len; }
  std::vector<double> lane(index_t i) const {
    const auto first = v.begin() + static_cast<std::ptrdiff_t>(i * len);
    return std::vector<double>(first, first + static_cast<std::ptrdiff_t>(len));
  }
};

/// fgtest::reduce_axis over the lanes.
inline Ref reduce_ref(const Lanes& lanes, Red op) {
  Ref out(lanes.shape);
  for (index_t i = 0; i < lanes.outputs(); ++i) {
    out.v[static_cast<std::size_t>(i)] = fgtest::reduce_values(lanes.lane(i), op);
  }
  return out;
}

/// Tolerance of a sum over the lanes, per output: eps (16 sum|x| + 4 sqrt(sum_k S_k^2)), S_k the
/// running sums along the lane. The second term, which grows with the length (about
/// sqrt(n) sum|x| for data of one sign), is the typical rounding error of summing a long lane in
/// sequence, as the host backend does; a tree of chunks does better. A chunk dropped or counted
/// twice is far outside it.
inline Ref sum_tolerance(const Lanes& lanes, double eps) {
  Ref tol(lanes.shape);
  for (index_t i = 0; i < lanes.outputs(); ++i) {
    double magnitude = 0, running = 0, squares = 0;
    for (const double x : lanes.lane(i)) {
      magnitude += std::abs(x);
      running += x;
      squares += running * running;
    }
    tol.v[static_cast<std::size_t>(i)] = eps * (16 * magnitude + 4 * std::sqrt(squares)) + 1e-300;
  }
  return tol;
}

/// Checks one reduction of `lanes` (the input's values exactly as the dtype computes them):
/// written in place in one kernel; sums and means within sum_tolerance (divided by n for the
/// mean), products within 4 (n + 1) eps, the rest exact.
inline void check_lanes(const fgtest::Outcome& o, const Lanes& lanes, Red op, double eps) {
  INFO(fgtest::red_name(op) << " into shape " << fgtest::dims_str(lanes.shape) << ", lanes of "
                            << lanes.len);
  const Ref want = reduce_ref(lanes, op);
  CHECK(o.in_place);
  CHECK(o.launches == 1);
  const double n = static_cast<double>(lanes.len);
  if (op == Red::sum || op == Red::mean) {
    Ref tol = sum_tolerance(lanes, eps);
    for (auto& t : tol.v) {
      t /= op == Red::mean ? n : 1.0;
    }
    CHECK(fgtest::compare_scaled(o.got, want, tol) == "");
  } else if (op == Red::prod) {
    CHECK(fgtest::compare(o.got, want, 4 * (n + 1) * eps, 0) == "");
  } else {
    CHECK(fgtest::compare_exact(o.got, want) == "");
  }
}

/// fg::<op>(e, axis), op known at compile time: a check site instantiates only what it tests.
template <Red op, class E>
auto reduction_of(const E& e, int axis) {
  if constexpr (op == Red::sum) {
    return fg::sum(e, axis);
  } else if constexpr (op == Red::mean) {
    return fg::mean(e, axis);
  } else if constexpr (op == Red::prod) {
    return fg::prod(e, axis);
  } else if constexpr (op == Red::max) {
    return fg::max(e, axis);
  } else if constexpr (op == Red::min) {
    return fg::min(e, axis);
  } else if constexpr (op == Red::argmax) {
    return fg::argmax(e, axis);
  } else {
    return fg::argmin(e, axis);
  }
}

/// Every reduction `ops` of `e` (reference `re`) over `axis`.
template <Red... ops, class E>
void check_ops(const E& e, const Ref& re, int axis) {
  constexpr int R = fg::node_t<E>::rank;
  INFO("axis " << axis << " of shape " << fgtest::dims_str(re.shape));
  const Lanes lanes(re, axis);
  auto check = [&](Red op, const auto& reduction) {
    using Out = typename std::decay_t<decltype(reduction)>::value_type;
    check_lanes(fgtest::run<Out, R - 1>(reduction), lanes, op, fgtest::eps_of<Out>());
  };
  (check(ops, reduction_of<ops>(e, axis)), ...);
}

TEST_CASE("split reductions: sum, mean, max, argmax of a long vector over axis 0",
          "[reduce][split]") {
  std::mt19937 rng(901);
  for (const index_t n : {index_t(1) << 20, index_t(1000003)}) {
    INFO("n = " << n);
    auto host = fgtest::random_values<float>(static_cast<std::size_t>(n), rng, -1, 1);
    // Ties of the extremes in different chunks (and in the same one): the first index wins.
    host[17] = host[static_cast<std::size_t>(n - 5)] = 2.f;
    host[static_cast<std::size_t>(n / 2)] = host[static_cast<std::size_t>(n / 2 + 1)] = -2.f;
    host[static_cast<std::size_t>(n - 1)] = -2.f;
    const auto x = fgtest::tensor_from<float, 1>(fg::Shape<1>({n}), host);
    const Ref rx = fgtest::ref_of(x);
    check_ops<Red::sum, Red::mean, Red::max, Red::min, Red::argmax, Red::argmin>(x.view(), rx, 0);
    CHECK(fg::argmax(x, 0).item() == 17);
    CHECK(fg::argmin(x, 0).item() == n / 2);
  }
  // Double, of one sign: the rounding error grows with the length.
  const auto d = fgtest::random_tensor<double, 1>(Dims{1000003}, rng, 0.5, 1.5);
  check_ops<Red::sum, Red::mean>(d.view(), fgtest::ref_of(d), 0);
  // Rows: a few long rows (one output each).
  auto rows = fgtest::random_tensor<float, 2>(Dims{3, 300007}, rng, -1, 1);
  check_ops<Red::sum, Red::mean, Red::max, Red::argmin>(rows.view(), fgtest::ref_of(rows), 1);
}

/// [rows, cols] of small integers (ties everywhere), each column's maximum and minimum planted
/// twice at random rows, NaN twice in every 97th column (3, 100, ...), and extremes at the first
/// and last rows of columns 0, 1 and 2.
inline std::vector<float> planted_columns(std::mt19937& rng, index_t rows, index_t cols) {
  auto v = fgtest::random_values<float>(static_cast<std::size_t>(rows * cols), rng, -50, 50);
  for (auto& x : v) {
    x = std::round(x);
  }
  std::uniform_int_distribution<index_t> row(0, rows - 1);
  auto at = [&](index_t r, index_t c) -> float& { return v[static_cast<std::size_t>(r * cols + c)]; };
  for (index_t c = 0; c < cols; ++c) {
    const float top = 100.f + static_cast<float>(c % 5), bottom = -100.f - static_cast<float>(c % 3);
    at(row(rng), c) = top;
    at(row(rng), c) = top;
    at(row(rng), c) = bottom;
    at(row(rng), c) = bottom;
    if (c % 97 == 3) {
      at(row(rng), c) = std::numeric_limits<float>::quiet_NaN();
      at(row(rng), c) = std::numeric_limits<float>::quiet_NaN();
    }
  }
  at(0, 0) = at(rows - 1, 0) = 1000.f;  // first row and last row: the first wins
  at(rows - 1, 1) = 1000.f;             // the last row only
  at(rows - 1, 2) = at(rows - 2, 2) = -1000.f;
  return v;
}

TEST_CASE("split reductions: max, min, argmax, argmin over axis 0 of [4096, 1024], ties and NaN",
          "[reduce][split][arg]") {
  std::mt19937 rng(902);
  const index_t rows = 4096, cols = 1024;
  const auto a = fgtest::tensor_from<float, 2>(fg::Shape<2>({rows, cols}), planted_columns(rng, rows, cols));
  const Ref ra = fgtest::ref_of(a);
  check_ops<Red::max, Red::min, Red::argmax, Red::argmin>(a.view(), ra, 0);
  const auto am = fg::argmax(a, 0).eval().to_vector();
  CHECK(am[0] == 0);
  CHECK(am[1] == rows - 1);
  const auto an = fg::argmin(a, 0).eval().to_vector();
  CHECK(an[2] == rows - 2);
  const auto mx = fg::max(a, 0).eval().to_vector();
  CHECK(std::isnan(mx[3]));
  CHECK(std::isnan(mx[100]));
  CHECK(!std::isnan(mx[4]));
  // The same reductions over the columns of a transposed view (an indexed load): t is [256, 4096].
  const auto planted_t = planted_columns(rng, rows, 256);
  std::vector<float> stored(planted_t.size());
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < 256; ++j) {
      stored[static_cast<std::size_t>(j * rows + i)] = planted_t[static_cast<std::size_t>(i * 256 + j)];
    }
  }
  const auto t = fgtest::tensor_from<float, 2>(fg::Shape<2>({256, rows}), stored);
  const auto rt = fgtest::tensor_from<float, 2>(fg::Shape<2>({rows, 256}), planted_t);
  check_ops<Red::max, Red::argmax, Red::argmin>(fg::transpose(t), fgtest::ref_of(rt), 0);
  // Rows: four long rows, the planted columns above transposed on the host (a contiguous load).
  const index_t len = 200003;
  const auto planted = planted_columns(rng, len, 4);
  std::vector<float> row_major(planted.size());
  for (index_t l = 0; l < len; ++l) {
    for (index_t c = 0; c < 4; ++c) {
      row_major[static_cast<std::size_t>(c * len + l)] = planted[static_cast<std::size_t>(l * 4 + c)];
    }
  }
  const auto r = fgtest::tensor_from<float, 2>(fg::Shape<2>({4, len}), row_major);
  check_ops<Red::max, Red::min, Red::argmax, Red::argmin>(r.view(), fgtest::ref_of(r), 1);
}

TEST_CASE("split reductions: a bias gradient over [65536, 10], sum over axis 0", "[reduce][split]") {
  std::mt19937 rng(903);
  const auto g = fgtest::random_tensor<float, 2>(Dims{65536, 10}, rng, -1, 1);
  check_ops<Red::sum, Red::mean, Red::max, Red::argmax>(g.view(), fgtest::ref_of(g), 0);
  const auto gd = fgtest::random_tensor<double, 2>(Dims{65536, 10}, rng, -1, 1);
  check_ops<Red::sum>(gd.view(), fgtest::ref_of(gd), 0);
  const auto gi = fgtest::random_tensor<std::int32_t, 2>(Dims{65536, 10}, rng, -1000000, 1000000);
  check_ops<Red::sum>(gi.view(), fgtest::ref_of(gi), 0);  // int64: exact
  // The gradient of sum((x + b)^2) with respect to the broadcast bias: sum over axis 0 of
  // 2 (x + b), through autodiff's sum back to the operand's shape.
  const auto x = fgtest::random_tensor<float, 2>(Dims{65536, 10}, rng, -1, 1);
  const auto b = fgtest::random_tensor<float, 1>(Dims{10}, rng, -1, 1);
  auto [gb] = fg::grad(fg::sum(fg::square(x + b)), b);
  const Ref xb = fgtest::round_to<float>(fgtest::map2(fgtest::ref_of(x), fgtest::ref_of(b),
                                                      [](double p, double q) { return p + q; }));
  const Ref twice = fgtest::map1(xb, [](double v) { return 2 * v; });
  const Lanes lanes(twice, 0);
  CHECK(fgtest::compare_scaled(fgtest::ref_of(gb), reduce_ref(lanes, Red::sum),
                               sum_tolerance(lanes, fgtest::eps_of<float>())) == "");
}

TEST_CASE("split reductions of fused trees: sum(square(a - b), 0) and more, one kernel",
          "[reduce][split][fusion]") {
  std::mt19937 rng(904);
  for (const Dims& s : {Dims{1, 1 << 20, 1}, Dims{1, 65536, 10}, Dims{2, 5000, 33}, Dims{1, 4096, 160}}) {
    INFO("shape " << fgtest::dims_str(s));
    const auto a = fgtest::random_tensor<float, 3>(s, rng, -1, 1);
    const auto b = fgtest::random_tensor<float, 3>(s, rng, -1, 1);
    const Ref diff = fgtest::round_to<float>(
        fgtest::map2(fgtest::ref_of(a), fgtest::ref_of(b), [](double x, double y) { return x - y; }));
    const Ref sq = fgtest::round_to<float>(fgtest::map1(diff, [](double x) { return x * x; }));
    const auto tree = fg::square(a - b);
    check_ops<Red::sum, Red::mean, Red::max, Red::argmin>(tree, sq, 1);
  }
}

TEST_CASE("split reductions: column tiles of every width, views, int, prod", "[reduce][split]") {
  std::mt19937 rng(905);
  // (outer, len, inner): inner 2 (one tile of 2 columns), 17, 33 and 40 (tiles of 17 and 20),
  // 100, 1 (rows); outer > 1 gives several groups.
  for (const Dims& s : {Dims{1, 3001, 2}, Dims{3, 20000, 2}, Dims{2, 4097, 17}, Dims{3, 2000, 33},
                        Dims{2, 1500, 40}, Dims{1, 1200, 100}, Dims{7, 3000, 1}, Dims{2, 1025, 1}}) {
    INFO("shape " << fgtest::dims_str(s));
    auto x = fgtest::random_tensor<float, 3>(s, rng, -2, 2);
    const Ref rx = fgtest::ref_of(x);
    check_ops<Red::sum, Red::mean, Red::max, Red::min, Red::argmax, Red::argmin>(x.view(), rx, 1);
    auto i = fgtest::random_tensor<std::int32_t, 3>(s, rng, -3, 3);  // ties everywhere
    check_ops<Red::sum, Red::max, Red::argmax, Red::argmin>(i.view(), fgtest::ref_of(i), 1);
    auto p = fgtest::random_tensor<float, 3>(s, rng, 0.999, 1.001);
    check_ops<Red::prod>(p.view(), fgtest::ref_of(p), 1);
  }
  // A permuted view: the load is indexed, not linear.
  auto y = fgtest::random_tensor<float, 3>(Dims{40, 1, 3000}, rng, -1, 1);
  check_ops<Red::sum, Red::argmax>(fg::permute(y, {1, 2, 0}),
                                   fgtest::permute(fgtest::ref_of(y), {1, 2, 0}), 1);
}

/// log(sum(exp(x))) over `axis` of a rank-2 reference, in long double.
inline Ref logsumexp_ref(const Ref& a, int axis) {
  const index_t rows = a.shape[0], cols = a.shape[1];
  const index_t outs = axis == 0 ? cols : rows, len = axis == 0 ? rows : cols;
  Ref out(Dims{outs});
  for (index_t o = 0; o < outs; ++o) {
    auto at = [&](index_t l) { return a.v[static_cast<std::size_t>(axis == 0 ? l * cols + o : o * cols + l)]; };
    double m = -std::numeric_limits<double>::infinity();
    for (index_t l = 0; l < len; ++l) {
      m = std::max(m, at(l));
    }
    long double s = 0;
    for (index_t l = 0; l < len; ++l) {
      s += std::exp(static_cast<long double>(at(l) - m));
    }
    out.v[static_cast<std::size_t>(o)] = m + static_cast<double>(std::log(s));
  }
  return out;
}

TEST_CASE("split reductions: logsumexp over long axes (a struct accumulator)", "[reduce][split]") {
  std::mt19937 rng(906);
  for (const Dims& s : {Dims{4096, 64}, Dims{65536, 3}, Dims{2, 100000}}) {
    INFO("shape " << fgtest::dims_str(s));
    const auto x = fgtest::random_tensor<float, 2>(s, rng, -20, 20);
    for (int axis : {0, 1}) {
      INFO("axis " << axis);
      const auto o = fgtest::run<float, 1>(fg::logsumexp(x, axis));
      CHECK(o.launches == 1);
      // The scaled sum (>= 1) carries a relative error that grows like sqrt(n) eps when summed in
      // sequence (the host backend): its log, absolutely.
      const double n = static_cast<double>(s[static_cast<std::size_t>(axis)]);
      CHECK(fgtest::compare(o.got, logsumexp_ref(fgtest::ref_of(x), axis), fgtest::ulps<float>(4),
                            fgtest::ulps<float>(64 + 4 * std::sqrt(n))) == "");
    }
  }
}

template <class T, int R>
bool bitwise_equal(const fg::Tensor<T, R>& p, const fg::Tensor<T, R>& q) {
  const auto u = p.to_vector(), v = q.to_vector();
  return u.size() == v.size() && std::memcmp(u.data(), v.data(), u.size() * sizeof(T)) == 0;
}

TEST_CASE("split reductions are deterministic: the same reduction twice is bitwise equal",
          "[reduce][split]") {
  std::mt19937 rng(907);
  const auto v = fgtest::random_tensor<float, 1>(Dims{1000003}, rng, -1, 1);
  const auto g = fgtest::random_tensor<float, 2>(Dims{65536, 10}, rng, -1, 1);
  const auto r = fgtest::random_tensor<float, 2>(Dims{3, 300007}, rng, -1, 1);
  const auto c = fgtest::random_tensor<float, 2>(Dims{4096, 256}, rng, -5, 5);
  for (int k = 0; k < 3; ++k) {
    CHECK(bitwise_equal(fg::sum(v, 0).eval(), fg::sum(v, 0).eval()));
    CHECK(bitwise_equal(fg::sum(g, 0).eval(), fg::sum(g, 0).eval()));
    CHECK(bitwise_equal(fg::mean(r, 1).eval(), fg::mean(r, 1).eval()));
    CHECK(bitwise_equal(fg::sum(fg::square(c - 1.f), 0).eval(), fg::sum(fg::square(c - 1.f), 0).eval()));
    CHECK(bitwise_equal(fg::logsumexp(c, 0).eval(), fg::logsumexp(c, 0).eval()));
  }
}

TEST_CASE("split reductions in a compiled step: every replay starts from fresh tickets",
          "[reduce][split][compile]") {
  std::mt19937 rng(908);
  auto x = fgtest::random_tensor<float, 2>(Dims{65536, 10}, rng, -1, 1);
  auto y = fgtest::random_tensor<float, 2>(Dims{2048, 256}, rng, -1, 1);
  fg::Tensor<float, 1> colsum = fg::zeros<float>(fg::Shape<1>({10}));
  fg::Tensor<std::int64_t, 1> top = fg::zeros<std::int64_t>(fg::Shape<1>({256}));
  auto step = fg::compile_step([&](const fg::Tensor<float, 2>& a, const fg::Tensor<float, 2>& b) {
    colsum = fg::sum(a, 0);
    top = fg::argmax(b, 0);
  });
  for (int k = 0; k < 4; ++k) {  // eager, captured, replayed twice: new data each time
    INFO("call " << k);
    x.copy_from(std::span<const float>(fgtest::random_values<float>(65536 * 10, rng, -1, 1)));
    y.copy_from(std::span<const float>(planted_columns(rng, 2048, 256)));
    step(x, y);
    const Lanes columns(fgtest::ref_of(x), 0);
    CHECK(fgtest::compare_scaled(fgtest::ref_of(colsum), reduce_ref(columns, Red::sum),
                                 sum_tolerance(columns, fgtest::eps_of<float>())) == "");
    CHECK(fgtest::compare_exact(fgtest::ref_of(top), reduce_ref(Lanes(fgtest::ref_of(y), 0), Red::argmax)) == "");
  }
  CHECK(step.graphs() == 1);
}

}  // namespace test_reduce_split
