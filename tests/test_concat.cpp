// tests/test_concat.cpp — concat, stack, split, chunk: values against references built here,
// views where a view can serve, gradients against central finite differences, launch counts,
// errors and empty parts.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "support/catch.hpp"
#include "support/gradcheck.hpp"
#include "support/reference.hpp"

namespace test_concat {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::check_gradients;
using fgtest::Dims;
using fgtest::LaunchCounter;
using fgtest::Ref;

/// Reference concat of C-order arrays along `axis`.
Ref concat_ref(const std::vector<Ref>& parts, int axis) {
  Dims shape = parts[0].shape;
  shape[static_cast<std::size_t>(axis)] = 0;
  for (const Ref& p : parts) {
    shape[static_cast<std::size_t>(axis)] += p.shape[static_cast<std::size_t>(axis)];
  }
  Ref out(shape);
  for (index_t i = 0; i < out.size(); ++i) {
    Dims at = fgtest::unravel(i, shape);
    for (const Ref& p : parts) {
      const index_t n = p.shape[static_cast<std::size_t>(axis)];
      if (at[static_cast<std::size_t>(axis)] < n) {
        index_t linear = 0;
        for (std::size_t d = 0; d < at.size(); ++d) {
          linear = linear * p.shape[d] + at[d];
        }
        out.v[static_cast<std::size_t>(i)] = p.v[static_cast<std::size_t>(linear)];
        break;
      }
      at[static_cast<std::size_t>(axis)] -= n;
    }
  }
  return out;
}

TEST_CASE("concat: values along every axis, of leaves, views and expressions, in one kernel", "[views][concat]") {
  std::mt19937 rng(2101);
  auto a = fgtest::random_tensor<double, 3>(Dims{2, 3, 4}, rng);
  auto b = fgtest::random_tensor<double, 3>(Dims{2, 3, 4}, rng);
  auto c = fgtest::random_tensor<double, 3>(Dims{2, 5, 4}, rng);
  const Ref ra = fgtest::ref_of(a), rb = fgtest::ref_of(b), rc = fgtest::ref_of(c);
  const Ref rexp_b = fgtest::map1(rb, [](double x) { return std::exp(x); });
  for (int axis : {0, 1, 2, -1, -3}) {
    const int ax = axis < 0 ? axis + 3 : axis;
    INFO("axis " << axis);
    Dims shape = fgtest::dims_of(a.shape());
    shape[static_cast<std::size_t>(ax)] *= 3;
    auto y = fgtest::poisoned<double, 3>(shape);
    y = fg::concat(axis, a, fg::exp(b), a);
    CHECK(fgtest::compare_exact(y, concat_ref({ra, rexp_b, ra}, ax)) == "");
  }
  // Unequal extents along the axis; a permuted view (a leaf with other strides) as an operand.
  fg::Tensor<double, 3> y = fg::concat(1, a, c, fg::permute(fg::Tensor<double, 3>(fg::permute(b, {0, 2, 1})), {0, 2, 1}));
  CHECK(y.shape() == fg::Shape<3>{2, 11, 4});
  CHECK(fgtest::compare_exact(y, concat_ref({ra, rc, rb}, 1)) == "");
  // One operand; an empty operand.
  fg::Tensor<double, 3> one = fg::concat(2, b);
  CHECK(fgtest::compare_exact(one, rb) == "");
  fg::Tensor<double, 3> empty(fg::Shape<3>{2, 0, 4});
  fg::Tensor<double, 3> with_empty = fg::concat(1, empty, a, empty);
  CHECK(fgtest::compare_exact(with_empty, ra) == "");
  fg::Tensor<double, 3> all_empty = fg::concat(1, empty, empty);
  CHECK(all_empty.shape() == fg::Shape<3>{2, 0, 4});
  // The concat fuses with its operands and its consumer: one kernel, no copies of the parts.
  auto af = fgtest::to_float(a);
  auto bf = fgtest::to_float(b);
  auto out = fgtest::poisoned<float, 3>(Dims{2, 6, 4});
  {
    LaunchCounter count;
    out = fg::relu(fg::concat(1, af, fg::exp(bf)) * 2.0f);
    CHECK(count.launches() == 1);
  }
  const Ref want = fgtest::map1(concat_ref({ra, rexp_b}, 1), [](double x) { return std::max(x * 2, 0.0); });
  CHECK(fgtest::compare(out, want, 1e-6, 1e-6) == "");
}

TEST_CASE("stack: a new axis anywhere, leaves stay views", "[views][concat]") {
  std::mt19937 rng(2102);
  auto a = fgtest::random_tensor<double, 2>(Dims{3, 4}, rng);
  auto b = fgtest::random_tensor<double, 2>(Dims{3, 4}, rng);
  const Ref ra = fgtest::ref_of(a), rb = fgtest::ref_of(b);
  auto lift = [](const Ref& r, int axis) {
    Dims s = r.shape;
    s.insert(s.begin() + axis, 1);
    return fgtest::reshape(r, s);
  };
  for (int axis : {0, 1, 2, -1}) {
    const int ax = axis < 0 ? axis + 3 : axis;
    INFO("axis " << axis);
    fg::Tensor<double, 3> y = fg::stack(axis, a, fg::sin(b), a);
    const Ref rs = fgtest::map1(rb, [](double x) { return std::sin(x); });
    CHECK(fgtest::compare_exact(y, concat_ref({lift(ra, ax), lift(rs, ax), lift(ra, ax)}, ax)) == "");
  }
  // stack(0, ...) of two (3, 4) gives (2, 3, 4); the tensor operands enter as strided leaves.
  auto s = fg::stack(0, a, b);
  static_assert(fg::is_leaf<std::remove_cvref_t<decltype(fg::FG_BACKEND_NS::detail::get<0>(s.args))>>::value);
  CHECK(s.shape() == fg::Shape<3>{2, 3, 4});
}

TEST_CASE("split and chunk: views that share the operand's memory, PyTorch's part sizes", "[views][concat]") {
  std::mt19937 rng(2103);
  auto x = fgtest::random_tensor<double, 2>(Dims{3, 7}, rng);
  const Ref rx = fgtest::ref_of(x);
  auto sizes_of = [](const auto& parts, int axis) {
    std::vector<index_t> s;
    for (const auto& p : parts) {
      s.push_back(p.shape()[axis]);
    }
    return s;
  };
  auto parts = fg::split(x, std::vector<index_t>{2, 0, 5}, 1);
  static_assert(fg::is_leaf<std::remove_cvref_t<decltype(parts[0])>>::value, "a split of a tensor is a view");
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].data == x.data());
  CHECK(parts[2].data == x.data() + 2);
  CHECK(fgtest::compare_exact(fg::Tensor<double, 2>(parts[2]), fgtest::slice(rx, 1, 2, 7)) == "");
  CHECK(sizes_of(fg::split(x, 3, 1), 1) == std::vector<index_t>{3, 3, 1});
  CHECK(sizes_of(fg::split(x, 2, -2), 0) == std::vector<index_t>{2, 1});
  CHECK(sizes_of(fg::chunk(x, 3, 1), 1) == std::vector<index_t>{3, 3, 1});
  CHECK(sizes_of(fg::chunk(x, 4, 1), 1) == std::vector<index_t>{2, 2, 2, 1});
  CHECK(sizes_of(fg::chunk(x, 7, 1), 1) == std::vector<index_t>(7, 1));
  CHECK(sizes_of(fg::chunk(x, 10, 1), 1) == std::vector<index_t>(7, 1));
  auto six = fgtest::random_tensor<double, 1>(Dims{6}, rng);
  CHECK(sizes_of(fg::chunk(six, 4), 0) == std::vector<index_t>{2, 2, 2});  // fewer parts, as torch.chunk
  // Of an expression: parts are slice nodes of it; concat puts them back together.
  auto e = fg::chunk(fg::exp(x), 2, 1);
  fg::Tensor<double, 2> back = fg::concat(1, e[1], e[0]);
  const Ref ex = fgtest::map1(rx, [](double v) { return std::exp(v); });
  CHECK(fgtest::compare_exact(back, concat_ref({fgtest::slice(ex, 1, 4, 7), fgtest::slice(ex, 1, 0, 4)}, 1)) == "");
  // A split of split qkv-style projection reaches matmul as a strided leaf: no copy.
  auto w = fgtest::random_tensor<double, 2>(Dims{7, 2}, rng);
  auto qkv = fg::chunk(fg::transpose(x), 3, 0);  // (3, 3), (3, 3), (1, 3) row blocks of xᵀ
  fg::Tensor<double, 2> p = fg::matmul(qkv[0], fg::slice(w, 0, 0, 3));
  CHECK(fgtest::compare(p, fgtest::matmul(fgtest::slice(fgtest::transpose(rx), 0, 0, 3), fgtest::slice(fgtest::ref_of(w), 0, 0, 3)),
                        1e-14, 1e-14) == "");
}

TEST_CASE("concat, stack, split, chunk: gradients", "[views][concat][autodiff]") {
  std::mt19937 rng(2104);
  auto a = fgtest::random_double<2>(Dims{3, 4}, rng);
  auto b = fgtest::random_double<2>(Dims{3, 2}, rng);
  auto w = fgtest::random_double<2>(Dims{3, 4}, rng);
  check_gradients("concat", [](auto& x, auto& y, auto& z) {
    return fg::sum(fg::sin(fg::concat(1, x * x, y, fg::exp(y)) * fg::concat(1, z, z)));
  }, rng, a, b, w);
  check_gradients("concat through a matmul", [](auto& x, auto& y) {
    return fg::sum(fg::tanh(fg::matmul(fg::transpose(fg::concat(0, x, x * 0.5)), fg::concat(0, y, fg::cos(y)))));
  }, rng, a, b);
  auto c = fgtest::random_double<2>(Dims{3, 4}, rng);
  check_gradients("stack", [](auto& x, auto& y) {
    return fg::sum(fg::sin(fg::stack(1, x, y * x, x) * 1.5));
  }, rng, a, c);
  check_gradients("chunk and split", [](auto& x) {
    auto p = fg::chunk(x, 3, 1);  // (3, 2), (3, 2)
    auto q = fg::split(x, std::vector<index_t>{1, 2}, 0);
    return fg::sum(fg::sin(p[0]) * p[1]) + fg::sum(fg::exp(q[1]) * 0.25) + fg::sum(fg::matmul(q[0], fg::transpose(q[0])));
  }, rng, a);
  // Through Vars: statements that split and join.
  auto ad = fgtest::random_double<2>(Dims{3, 4}, rng);
  auto halves = fg::chunk(ad, 2, 1);
  fg::Var<double, 2> h = fg::concat(1, fg::tanh(halves[1]), halves[0] * 2.0);
  fg::Var<double, 3> s = fg::stack(0, h, h * h);
  auto [loss, grads] = fg::value_and_grad(fg::sum(fg::sin(s)), ad);
  auto [g] = fg::grad(fg::sum(fg::sin(fg::stack(0, fg::concat(1, fg::tanh(fg::slice(ad, 1, 2, 4)), fg::slice(ad, 1, 0, 2) * 2.0),
                                                    fg::concat(1, fg::tanh(fg::slice(ad, 1, 2, 4)), fg::slice(ad, 1, 0, 2) * 2.0) *
                                                        fg::concat(1, fg::tanh(fg::slice(ad, 1, 2, 4)), fg::slice(ad, 1, 0, 2) * 2.0)))),
                      ad);
  CHECK(fgtest::compare(std::get<0>(grads), fgtest::ref_of(g), 1e-13, 1e-14) == "");
  (void)loss;
}

TEST_CASE("concat, stack, split, chunk: errors name the op and every shape", "[views][concat][errors]") {
  fg::Tensor<float, 2> a(fg::Shape<2>{3, 4}), b(fg::Shape<2>{2, 5}), c(fg::Shape<2>{3, 5});
  const auto m = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::concat(1, a, b); });
  CHECK(fgtest::contains(m, "concat"));
  CHECK(fgtest::contains(m, "[3, 4]"));
  CHECK(fgtest::contains(m, "[2, 5]"));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::concat(2, a, c); }), "concat"));
  const auto s = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::stack(0, a, c); });
  CHECK((fgtest::contains(s, "stack") && fgtest::contains(s, "[3, 4]") && fgtest::contains(s, "[3, 5]")));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::stack(3, a, a); }), "stack"));
  const auto sp = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::split(a, std::vector<index_t>{1, 2}, 1); });
  CHECK((fgtest::contains(sp, "split") && fgtest::contains(sp, "{1, 2}") && fgtest::contains(sp, "[3, 4]")));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::split(a, std::vector<index_t>{5, -1}, 1); }), "split"));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::split(a, 0, 1); }), "positive"));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::chunk(a, 0, 1); }), "chunk"));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::shape_error>([&] { (void)fg::chunk(a, 2, 2); }), "chunk"));
}

}  // namespace test_concat
