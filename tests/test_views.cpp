// tests/test_views.cpp — transpose, permute, reshape (-1 inference; of a tensor and of an
// expression), slice (axis, start, stop, step), broadcast_to; views of views; views as operands;
// and aliasing: a destination read by its own expression (same index, transposed, shifted).
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_views {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Ref;

TEST_CASE("views of a tensor are leaves over its memory: no copy, no kernel", "[views]") {
  std::mt19937 rng(401);
  auto a = fgtest::random_tensor<float, 3>(Dims{4, 5, 6}, rng);
  fgtest::LaunchCounter count;
  const auto t = fg::permute(a, {2, 0, 1});
  const auto s = fg::slice(a, 1, 1, 5, 2);
  const auto r = fg::reshape(a, {20, -1});
  const auto b = fg::broadcast_to(a, {3, 4, 5, 6});
  const auto tt = fg::transpose(r);
  CHECK(count.launches() == 0);
  CHECK(t.data == a.data());
  CHECK(s.data == a.data() + 6);
  CHECK(r.data == a.data());
  CHECK(b.data == a.data());
  CHECK(tt.data == a.data());
  CHECK(fgtest::dims_of(t.shape()) == Dims{6, 4, 5});
  CHECK(fgtest::dims_of(s.shape()) == Dims{4, 2, 6});
  CHECK(fgtest::dims_of(r.shape()) == Dims{20, 6});
  CHECK(fgtest::dims_of(b.shape()) == Dims{3, 4, 5, 6});
  CHECK(fgtest::dims_of(tt.shape()) == Dims{6, 20});
  CHECK(b.strides[0] == 0);
}

TEST_CASE("transpose and every permutation of rank 3, of tensors and of expressions",
          "[views][permute]") {
  std::mt19937 rng(402);
  for (int trial = 0; trial < 4; ++trial) {
    const Dims s2 = fgtest::random_dims<2>(rng, 40);
    auto m = fgtest::random_tensor<float, 2>(s2, rng);
    const Ref rm = fgtest::ref_of(m);
    fgtest::expect_exact(fgtest::run<float, 2>(fg::transpose(m)), fgtest::transpose(rm),
                         "transpose(m)");
    fgtest::expect_exact(fgtest::run<float, 2>(fg::transpose(fg::transpose(m))), rm,
                         "transpose(transpose(m))");
    fgtest::expect(fgtest::run<float, 2>(fg::transpose(m * 2.f)),
                   fgtest::map1(fgtest::transpose(rm), [](double x) { return 2 * x; }), 0, 0,
                   "transpose(m * 2)");

    const Dims s3 = fgtest::random_dims<3>(rng, 12);
    auto x = fgtest::random_tensor<float, 3>(s3, rng);
    const Ref rx = fgtest::ref_of(x);
    const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (const auto& p : perms) {
      INFO("perm {" << p[0] << ", " << p[1] << ", " << p[2] << "} of " << fgtest::dims_str(s3));
      const std::vector<int> pv = {p[0], p[1], p[2]};
      const Ref want = fgtest::permute(rx, pv);
      fgtest::expect_exact(fgtest::run<float, 3>(fg::permute(x, {p[0], p[1], p[2]})), want,
                           "permute(x)");
      fgtest::expect_exact(fgtest::run<float, 3>(fg::permute(-x, {p[0], p[1], p[2]})),
                           fgtest::map1(want, [](double v) { return -v; }), "permute(-x)");
      // Permuting twice by p composes to p∘p.
      const std::vector<int> pp = {p[p[0]], p[p[1]], p[p[2]]};
      fgtest::expect_exact(fgtest::run<float, 3>(
                               fg::permute(fg::permute(x, {p[0], p[1], p[2]}), {p[0], p[1], p[2]})),
                           fgtest::permute(rx, pp), "permute(permute(x))");
    }
  }
}

TEST_CASE("reshape: of a tensor (a view), of an expression, of a non-contiguous view; -1 inference",
          "[views][reshape]") {
  std::mt19937 rng(403);
  auto x = fgtest::random_tensor<float, 3>(Dims{4, 6, 5}, rng);
  const Ref rx = fgtest::ref_of(x);
  fgtest::expect_exact(fgtest::run<float, 2>(fg::reshape(x, {24, 5})), fgtest::reshape(rx, {24, 5}),
                       "reshape(x, {24, 5})");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::reshape(x, {-1, 10})),
                       fgtest::reshape(rx, {12, 10}), "reshape(x, {-1, 10})");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::reshape(x, {3, -1})), fgtest::reshape(rx, {3, 40}),
                       "reshape(x, {3, -1})");
  fgtest::expect_exact(fgtest::run<float, 1>(fg::reshape(x, {-1})), fgtest::reshape(rx, {120}),
                       "reshape(x, {-1})");
  fgtest::expect_exact(fgtest::run<float, 3>(fg::reshape(x, {2, -1, 3})),
                       fgtest::reshape(rx, {2, 20, 3}), "reshape(x, {2, -1, 3})");
  CHECK(fgtest::dims_of(fg::reshape(x, {-1, 1, 1}).shape()) == Dims{120, 1, 1});
  // Of an expression: C-order of the expression's values.
  fgtest::expect(fgtest::run<float, 2>(fg::reshape(x * 3.f - 1.f, {-1, 8})),
                 fgtest::reshape(fgtest::map1(rx, [](double v) { return v * 3 - 1; }), {15, 8}),
                 fgtest::ulps<float>(2), fgtest::ulps<float>(8), "reshape(x * 3 - 1, {-1, 8})");
  // Of a non-contiguous view: the view's C order, not the storage order.
  fgtest::expect_exact(fgtest::run<float, 2>(fg::reshape(fg::permute(x, {2, 0, 1}), {5, 24})),
                       fgtest::reshape(fgtest::permute(rx, {2, 0, 1}), {5, 24}),
                       "reshape(permute(x))");
  fgtest::expect_exact(fgtest::run<float, 1>(fg::reshape(fg::slice(x, 2, 1, 5, 3), {-1})),
                       fgtest::reshape(fgtest::slice(rx, 2, 1, 5, 3), {48}), "reshape(slice(x))");
  // Rank-raising and size-1 reshapes, and empty ones.
  auto e = fg::Tensor<float, 2>(fg::Shape<2>({0, 7}));
  CHECK(fgtest::dims_of(fg::reshape(e, {7, 0, 1}).shape()) == Dims{7, 0, 1});
  CHECK(fgtest::dims_of(fg::reshape(e, {-1, 7}).shape()) == Dims{0, 7});
  auto one = fgtest::random_tensor<float, 2>(Dims{1, 1}, rng);
  fgtest::expect_exact(fgtest::run<float, 4>(fg::reshape(one, {1, 1, 1, -1})),
                       fgtest::reshape(fgtest::ref_of(one), {1, 1, 1, 1}),
                       "reshape(one, {1, 1, 1, -1})");
}

TEST_CASE(
    "slice: every axis (negative too), start/stop/step, empty and full ranges, of expressions",
    "[views][slice]") {
  std::mt19937 rng(404);
  for (int trial = 0; trial < 8; ++trial) {
    const Dims s = fgtest::random_dims<3>(rng, 20, 0.1);
    auto x = fgtest::random_tensor<float, 3>(s, rng);
    const Ref rx = fgtest::ref_of(x);
    for (int axis = -3; axis < 3; ++axis) {
      const index_t n = s[static_cast<std::size_t>(axis < 0 ? axis + 3 : axis)];
      std::uniform_int_distribution<index_t> pick(0, n);
      index_t start = pick(rng), stop = pick(rng);
      if (stop < start) {
        std::swap(start, stop);
      }
      const index_t step = std::uniform_int_distribution<index_t>(1, 4)(rng);
      INFO("slice(x, " << axis << ", " << start << ", " << stop << ", " << step << ") of "
                       << fgtest::dims_str(s));
      const Ref want = fgtest::slice(rx, axis, start, stop, step);
      fgtest::expect_exact(fgtest::run<float, 3>(fg::slice(x, axis, start, stop, step)), want,
                           "slice(x)");
      fgtest::expect_exact(fgtest::run<float, 3>(fg::slice(x, axis, 0, n)), rx, "slice(x, all)");
      fgtest::expect_exact(fgtest::run<float, 3>(fg::slice(x, axis, start, start)),
                           fgtest::slice(rx, axis, start, start), "empty slice");
      fgtest::expect(fgtest::run<float, 3>(fg::slice(x + 1.f, axis, start, stop, step)),
                     fgtest::map1(want, [](double v) { return v + 1; }), fgtest::ulps<float>(1), 0,
                     "slice(x + 1)");
      // A slice of a slice (the second on the next axis).
      const int axis2 = (axis + 4) % 3;
      const index_t n2 = fgtest::dims_of(
          fg::slice(x, axis, start, stop, step).shape())[static_cast<std::size_t>(axis2)];
      const index_t start2 = n2 / 3, stop2 = n2 - n2 / 4;
      fgtest::expect_exact(fgtest::run<float, 3>(fg::slice(fg::slice(x, axis, start, stop, step),
                                                           axis2, start2, stop2, 2)),
                           fgtest::slice(want, axis2, start2, stop2, 2), "slice(slice(x))");
    }
  }
}

TEST_CASE("broadcast_to: of tensors and expressions, raising the rank, size-1 axes to any extent",
          "[views][broadcast]") {
  std::mt19937 rng(405);
  auto v = fgtest::random_tensor<float, 1>(Dims{5}, rng);
  auto c = fgtest::random_tensor<float, 2>(Dims{4, 1}, rng);
  const Ref rv = fgtest::ref_of(v), rc = fgtest::ref_of(c);
  fgtest::expect_exact(fgtest::run<float, 2>(fg::broadcast_to(v, {3, 5})),
                       fgtest::broadcast_to(rv, {3, 5}), "broadcast_to(v, {3, 5})");
  fgtest::expect_exact(fgtest::run<float, 3>(fg::broadcast_to(v, {2, 3, 5})),
                       fgtest::broadcast_to(rv, {2, 3, 5}), "broadcast_to(v, {2, 3, 5})");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::broadcast_to(c, {4, 7})),
                       fgtest::broadcast_to(rc, {4, 7}), "broadcast_to(c, {4, 7})");
  fgtest::expect_exact(fgtest::run<float, 3>(fg::broadcast_to(c, {2, 4, 0})),
                       fgtest::broadcast_to(rc, {2, 4, 0}), "broadcast_to(c, {2, 4, 0})");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::broadcast_to(c, {4, 1})), rc,
                       "broadcast_to(c, same shape)");
  // Of an expression: a Broadcast node.
  fgtest::expect(
      fgtest::run<float, 3>(fg::broadcast_to(c * 2.f + 1.f, {3, 4, 6})),
      fgtest::broadcast_to(fgtest::map1(rc, [](double x) { return 2 * x + 1; }), {3, 4, 6}),
      fgtest::ulps<float>(1), 0, "broadcast_to(c * 2 + 1)");
  fgtest::expect(
      fgtest::run<float, 3>(fg::broadcast_to(c * 2.f + 1.f, {1, 4, 1})),
      fgtest::broadcast_to(fgtest::map1(rc, [](double x) { return 2 * x + 1; }), {1, 4, 1}),
      fgtest::ulps<float>(1), 0, "broadcast_to(c * 2 + 1, identity extents)");
  // Broadcast views as operands of further views.
  fgtest::expect_exact(fgtest::run<float, 2>(fg::transpose(fg::broadcast_to(v, {3, 5}))),
                       fgtest::transpose(fgtest::broadcast_to(rv, {3, 5})),
                       "transpose(broadcast_to(v))");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::slice(fg::broadcast_to(c, {4, 9}), 1, 2, 9, 3)),
                       fgtest::slice(fgtest::broadcast_to(rc, {4, 9}), 1, 2, 9, 3),
                       "slice(broadcast_to(c))");
}

TEST_CASE("views of views: chains of permute, slice, reshape, broadcast_to, transpose", "[views]") {
  std::mt19937 rng(406);
  for (int trial = 0; trial < 6; ++trial) {
    const Dims s = {std::uniform_int_distribution<index_t>(2, 9)(rng),
                    std::uniform_int_distribution<index_t>(2, 9)(rng),
                    std::uniform_int_distribution<index_t>(2, 9)(rng)};
    INFO("shape " << fgtest::dims_str(s));
    auto x = fgtest::random_tensor<double, 3>(s, rng);
    const Ref rx = fgtest::ref_of(x);
    // permute -> slice with step -> reshape (a node: the slice is not contiguous) -> transpose.
    const auto pv = fg::slice(fg::permute(x, {2, 0, 1}), 1, 1, s[0], 2);
    const Ref rpv = fgtest::slice(fgtest::permute(rx, {2, 0, 1}), 1, 1, s[0], 2);
    const index_t n = rpv.size();
    fgtest::expect_exact(fgtest::run<double, 2>(fg::transpose(fg::reshape(pv, {s[2], -1}))),
                         fgtest::transpose(fgtest::reshape(rpv, {s[2], n / s[2]})),
                         "transpose(reshape(slice(permute(x))))");
    // reshape of a tensor (a view) -> transpose -> slice -> broadcast_to a higher rank.
    const auto r = fg::slice(fg::transpose(fg::reshape(x, {s[0] * s[1], s[2]})), 0, 0, s[2], 2);
    const Ref rr =
        fgtest::slice(fgtest::transpose(fgtest::reshape(rx, {s[0] * s[1], s[2]})), 0, 0, s[2], 2);
    fgtest::expect_exact(fgtest::run<double, 3>(fg::broadcast_to(r, {2, rr.shape[0], rr.shape[1]})),
                         fgtest::broadcast_to(rr, {2, rr.shape[0], rr.shape[1]}),
                         "broadcast_to(slice(transpose(reshape(x))))");
    // The same chains as operands of an element-wise tree.
    fgtest::expect(fgtest::run<double, 2>(fg::transpose(fg::reshape(pv, {s[2], -1})) * 2.0 +
                                          fg::transpose(fg::reshape(pv, {s[2], -1}))),
                   fgtest::map1(fgtest::transpose(fgtest::reshape(rpv, {s[2], n / s[2]})),
                                [](double v) { return 3 * v; }),
                   fgtest::ulps<double>(2), 0, "tree of view chains");
  }
}

TEST_CASE("views of non-leaf expressions: broadcasting trees, reductions, matrix products",
          "[views]") {
  std::mt19937 rng(408);
  auto a = fgtest::random_tensor<float, 2>(Dims{6, 10}, rng);
  auto row = fgtest::random_tensor<float, 1>(Dims{10}, rng);
  auto w = fgtest::random_tensor<float, 2>(Dims{10, 4}, rng);
  const Ref ra = fgtest::ref_of(a), rrow = fgtest::ref_of(row), rw = fgtest::ref_of(w);
  const Ref sum_ab =
      fgtest::round_to<float>(fgtest::map2(ra, rrow, [](double x, double y) { return x + y; }));
  // The tree a + row broadcasts, so it is read by index (not linearly) under each view.
  fgtest::expect_exact(fgtest::run<float, 1>(fg::reshape(a + row, {-1})),
                       fgtest::reshape(sum_ab, {60}), "reshape(a + row)");
  fgtest::expect_exact(fgtest::run<float, 3>(fg::reshape(a + row, {3, 4, 5})),
                       fgtest::reshape(sum_ab, {3, 4, 5}), "reshape(a + row, 3-D)");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::slice(a + row, 1, 1, 10, 3)),
                       fgtest::slice(sum_ab, 1, 1, 10, 3), "slice(a + row)");
  fgtest::expect_exact(fgtest::run<float, 2>(fg::transpose(a + row)), fgtest::transpose(sum_ab),
                       "transpose(a + row)");
  fgtest::expect_exact(fgtest::run<float, 3>(fg::broadcast_to(a + row, {2, 6, 10})),
                       fgtest::broadcast_to(sum_ab, {2, 6, 10}), "broadcast_to(a + row)");
  // Views of boundary nodes: the reduction or product is evaluated first (one more kernel).
  const Ref colsum = fgtest::reduce_axis(ra, fgtest::Red::sum, 0, true);
  fgtest::expect(fgtest::run<float, 2>(fg::transpose(fg::sum(a, 0, fg::keepdims))),
                 fgtest::transpose(colsum), 1e-6, 1e-6, "transpose(sum(a, 0, keepdims))", 2);
  fgtest::expect(fgtest::run<float, 1>(fg::reshape(fg::max(a, 1, fg::keepdims), {-1})),
                 fgtest::reduce_axis(ra, fgtest::Red::max, 1), 0, 0, "reshape(max(a, 1, keepdims))",
                 2);
  const Ref prod = fgtest::matmul(ra, rw);
  fgtest::expect(fgtest::run<float, 2>(fg::slice(fg::matmul(a, w), 0, 1, 6, 2)),
                 fgtest::slice(prod, 0, 1, 6, 2), 1e-5, 1e-5, "slice(matmul(a, w))", 2);
  fgtest::expect(fgtest::run<float, 2>(fg::transpose(fg::matmul(a, w))), fgtest::transpose(prod),
                 1e-5, 1e-5, "transpose(matmul(a, w))", 2);
  // A reduction of a matrix product, and a product of a transposed product.
  fgtest::expect(fgtest::run<float, 1>(fg::sum(fg::matmul(a, w), 0)),
                 fgtest::reduce_axis(prod, fgtest::Red::sum, 0), 1e-5, 1e-5, "sum(matmul(a, w), 0)",
                 2);
  fgtest::expect(fgtest::run<float, 2>(fg::matmul(fg::transpose(fg::matmul(a, w)), a)),
                 fgtest::matmul(fgtest::transpose(prod), ra), 1e-5, 1e-5,
                 "matmul(transpose(matmul(a, w)), a)", 3);
}

TEST_CASE("indexed kernels over every layout of the last axis: broadcast, strided, non-leaf",
          "[views][rows]") {
  // The host backend walks an indexed kernel row by row through cursors (node.hpp): each leaf's
  // last axis is read with stride 0 (broadcast), 1, or any other; a non-leaf broadcast with step 0
  // or 1. Every combination against the reference, at row lengths 1, 3 and 129 and with no rows.
  std::mt19937 rng(409);
  const auto add = [](double x, double y) { return x + y; };
  const auto mul = [](double x, double y) { return x * y; };
  for (const index_t cols : {index_t(1), index_t(3), index_t(129)}) {
    INFO("row length " << cols);
    auto a = fgtest::random_tensor<float, 2>(Dims{5, cols}, rng);
    auto at = fgtest::random_tensor<float, 2>(Dims{cols, 5}, rng);  // read transposed: stride 5
    auto col = fgtest::random_tensor<float, 2>(Dims{5, 1}, rng);     // last-axis stride 0
    auto row = fgtest::random_tensor<float, 1>(Dims{cols}, rng);     // row stride 0, last 1
    const Ref ra = fgtest::ref_of(a), rat = fgtest::transpose(fgtest::ref_of(at));
    const Ref rcol = fgtest::ref_of(col), rrow = fgtest::ref_of(row);
    const Ref sum3 = fgtest::round_to<float>(fgtest::map2(
        fgtest::round_to<float>(fgtest::map2(ra, rat, add)), rcol, add));
    fgtest::expect_exact(fgtest::run<float, 2>(a + fg::transpose(at) + col), sum3,
                         "a + transpose(at) + col");
    fgtest::expect_exact(fgtest::run<float, 2>(fg::transpose(at) * row),
                         fgtest::round_to<float>(fgtest::map2(rat, rrow, mul)), "transpose(at) * row");
    // Non-leaf broadcasts: a [5, 1] tree (step 0 along the row) and a [cols] tree (step 1).
    const Ref col1 = fgtest::round_to<float>(fgtest::map1(rcol, [](double x) { return x + 1.0; }));
    fgtest::expect_exact(fgtest::run<float, 2>(fg::broadcast_to(col + 1.f, {5, cols}) * a),
                         fgtest::round_to<float>(fgtest::map2(col1, ra, mul)), "(col + 1) * a");
    const Ref row2 = fgtest::round_to<float>(fgtest::map1(rrow, [](double x) { return x * 2.0; }));
    fgtest::expect_exact(fgtest::run<float, 3>(fg::broadcast_to(row * 2.f, {2, 5, cols}) + col),
                         fgtest::round_to<float>(fgtest::map2(fgtest::broadcast_to(row2, {2, 5, cols}),
                                                              rcol, add)),
                         "broadcast_to(row * 2) + col");
    // A node that reads its own index (the causal mask) broadcast along the row: every column
    // sees the mask's column 0, which keeps everything.
    const Ref col_wide = fgtest::broadcast_to(rcol, {5, cols});
    fgtest::expect_exact(fgtest::run<float, 2>(fg::broadcast_to(fg::nn::causal_fill(col * 1.f, -7.f), {5, cols})),
                         col_wide, "broadcast_to(causal_fill(col))");
    // Reductions read through row cursors: along the last axis, and along the axis before it
    // (each block of columns one row); along axis 0 of rank 3 the blocks span rows (per element).
    auto b = fgtest::random_tensor<float, 3>(Dims{4, cols, 6}, rng);
    const Ref rb = fgtest::ref_of(b);
    const auto tb = fg::permute(b, {0, 2, 1});  // [4, 6, cols], last-axis stride 6
    const Ref rtb = fgtest::permute(rb, {0, 2, 1});
    const double tol = 1e-5 * static_cast<double>(cols);
    fgtest::expect(fgtest::run<float, 2>(fg::sum(tb + row, 2)),
                   fgtest::reduce_axis(fgtest::map2(rtb, rrow, add), fgtest::Red::sum, 2), tol, tol,
                   "sum(permuted + row, last axis)");
    fgtest::expect(fgtest::run<float, 2>(fg::max(tb * 2.f, 1)),
                   fgtest::reduce_axis(fgtest::map1(rtb, [](double x) { return 2 * x; }),
                                       fgtest::Red::max, 1),
                   0, 0, "max(permuted * 2, axis before last)");
    fgtest::expect(fgtest::run<float, 2>(fg::sum(tb + row, 0)),
                   fgtest::reduce_axis(fgtest::map2(rtb, rrow, add), fgtest::Red::sum, 0), tol, tol,
                   "sum(permuted + row, axis 0)");
    // Reshapes inside a tree: splitting the last axis of a non-linear operand (the operand's row
    // cursor), merging rows (per element), and of a linear operand (its C order).
    const Ref rsum = fgtest::round_to<float>(fgtest::map2(rtb, rrow, add));
    const Ref twice = fgtest::map1(rsum, [](double x) { return 2 * x; });
    const index_t split = cols % 3 == 0 ? 3 : 1;
    fgtest::expect_exact(fgtest::run<float, 4>(fg::reshape(tb + row, {4, 6, cols / split, split}) * 2.f),
                         fgtest::reshape(twice, {4, 6, cols / split, split}), "reshape splitting the last axis");
    fgtest::expect_exact(fgtest::run<float, 2>(fg::reshape(tb + row, {4, 6 * cols}) * 2.f),
                         fgtest::reshape(twice, {4, 6 * cols}), "reshape merging rows");
    auto four = fgtest::random_tensor<float, 2>(Dims{4, 1}, rng);
    fgtest::expect_exact(fgtest::run<float, 2>(fg::reshape(b * 2.f, {4, 6 * cols}) + four),
                         fgtest::round_to<float>(fgtest::map2(
                             fgtest::reshape(fgtest::map1(rb, [](double x) { return 2 * x; }), {4, 6 * cols}),
                             fgtest::ref_of(four), add)),
                         "reshape of a linear operand, broadcast");
  }
  // No rows, and rows of no elements: nothing runs, nothing is read.
  auto empty_rows = fgtest::random_tensor<float, 2>(Dims{0, 4}, rng);
  auto bias = fgtest::random_tensor<float, 1>(Dims{4}, rng);
  fgtest::expect_exact(fgtest::run<float, 2>(fg::transpose(fg::transpose(empty_rows) + 1.f) + bias),
                       Ref(Dims{0, 4}), "no rows");
  auto no_cols = fgtest::random_tensor<float, 2>(Dims{3, 0}, rng);
  auto col3 = fgtest::random_tensor<float, 2>(Dims{3, 1}, rng);
  fgtest::expect(fgtest::run<float, 1>(fg::sum(fg::transpose(fg::transpose(no_cols)) + col3, 1)),
                 Ref(Dims{3}, 0.0), 0, 0, "sums of empty rows", 1);
}

TEST_CASE("aliasing: a destination its own expression reads", "[views][alias]") {
  std::mt19937 rng(407);
  for (index_t n : {1, 2, 7, 64, 129}) {
    INFO("n = " << n);
    auto a = fgtest::random_tensor<float, 2>(Dims{n, n}, rng);
    auto b = fgtest::random_tensor<float, 2>(Dims{n, n}, rng);
    Ref ra = fgtest::ref_of(a);
    const Ref rb = fgtest::ref_of(b);
    const float* storage = a.data();
    fgtest::LaunchCounter count;
    // Same-index reads: in place, one kernel.
    a = a * 2.f + b;
    ra =
        fgtest::round_to<float>(fgtest::map2(ra, rb, [](double x, double y) { return 2 * x + y; }));
    CHECK(fgtest::compare_exact(a, ra) == "");
    CHECK(a.data() == storage);
    CHECK(count.launches() == 1);
    // Transposed reads (square): through a temporary.
    count.restart();
    a = fg::transpose(a);
    ra = fgtest::transpose(ra);
    CHECK(fgtest::compare_exact(a, ra) == "");
    CHECK(count.launches() == 1);
    a = a + fg::transpose(a);
    ra = fgtest::round_to<float>(
        fgtest::map2(ra, fgtest::transpose(ra), [](double x, double y) { return x + y; }));
    CHECK(fgtest::compare_exact(a, ra) == "");
    // Shifted reads: every row minus the first row; row 0 must not be zeroed before others read it.
    a = a - fg::broadcast_to(fg::slice(a, 0, 0, 1), {n, n});
    ra = fgtest::round_to<float>(
        fgtest::map2(ra, fgtest::broadcast_to(fgtest::slice(ra, 0, 0, 1), {n, n}),
                     [](double x, double y) { return x - y; }));
    CHECK(fgtest::compare_exact(a, ra) == "");
    a = fgtest::random_tensor<float, 2>(Dims{n, n}, rng);
    ra = fgtest::ref_of(a);
    a -= fg::broadcast_to(fg::slice(a, 1, n - 1, n), {n, n});  // minus the last column, in place
    ra = fgtest::round_to<float>(
        fgtest::map2(ra, fgtest::broadcast_to(fgtest::slice(ra, 1, n - 1, n), {n, n}),
                     [](double x, double y) { return x - y; }));
    CHECK(fgtest::compare_exact(a, ra) == "");
    a += fg::transpose(a);
    ra = fgtest::round_to<float>(
        fgtest::map2(ra, fgtest::transpose(ra), [](double x, double y) { return x + y; }));
    CHECK(fgtest::compare_exact(a, ra) == "");
    // A shifted slice of itself (another shape): a = a[1:, :].
    a = fg::slice(a, 0, 1, n);
    ra = fgtest::slice(ra, 0, 1, n);
    CHECK(fgtest::compare_exact(a, ra) == "");
  }
  // Shifted reads of the same shape through a reshape: v = reverse-blocked copy of itself.
  auto v = fgtest::random_tensor<float, 1>(Dims{12}, rng);
  Ref rv = fgtest::ref_of(v);
  v = fg::reshape(fg::transpose(fg::reshape(v, {3, 4})), {12});
  rv = fgtest::reshape(fgtest::transpose(fgtest::reshape(rv, {3, 4})), {12});
  CHECK(fgtest::compare_exact(v, rv) == "");
  // A shifted window of a longer row: row i reads row i + 1 of the same storage.
  auto w = fgtest::random_tensor<float, 2>(Dims{6, 5}, rng);
  Ref rw = fgtest::ref_of(w);
  w = fg::reshape(fg::slice(fg::reshape(w, {30}), 0, 5, 30), {5, 5}) * 1.f;  // another shape: temp
  rw = fgtest::reshape(fgtest::slice(fgtest::reshape(rw, {30}), 0, 5, 30), {5, 5});
  CHECK(fgtest::compare_exact(w, rw) == "");
  auto u = fgtest::random_tensor<float, 2>(Dims{6, 5}, rng);
  Ref ru = fgtest::ref_of(u);
  // Same shape [6, 5]: rows 1..5 then row 0 — each output row reads the next one, the last row
  // reads row 0, which an in-place evaluation would already have overwritten.
  u = fg::where(
      fg::broadcast_to(fgtest::filled<bool, 2>(fg::Shape<2>({1, 1}), true), {6, 5}),
      fg::reshape(fg::slice(fg::reshape(fg::broadcast_to(fg::reshape(u, {1, 30}), {2, 30}), {60}),
                            0, 5, 35),
                  {6, 5}),
      0.f);
  ru = fgtest::reshape(
      fgtest::slice(
          fgtest::reshape(fgtest::broadcast_to(fgtest::reshape(ru, {1, 30}), {2, 30}), {60}), 0, 5,
          35),
      {6, 5});
  CHECK(fgtest::compare_exact(u, ru) == "");
  // Rank 3 cube: a = permute(a) with the same shape.
  auto c = fgtest::random_tensor<float, 3>(Dims{5, 5, 5}, rng);
  Ref rc = fgtest::ref_of(c);
  c = fg::permute(c, {1, 2, 0});
  rc = fgtest::permute(rc, {1, 2, 0});
  CHECK(fgtest::compare_exact(c, rc) == "");
  c = fg::permute(c, {0, 1, 2}) * 0.5f;  // identity permutation: same-index read, in place
  rc = fgtest::map1(rc, [](double x) { return x * 0.5; });
  CHECK(fgtest::compare_exact(c, rc) == "");
}

}  // namespace test_views
