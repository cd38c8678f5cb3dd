// tests/test_matmul.cpp — matmul against a double-precision reference: 2-D and batched 3-D
// ([B,M,K]@[B,K,N], [B,M,K]@[K,N], [M,K]@[B,K,N], batch extent 1), transposed, permuted, sliced
// and broadcast operands, expression operands, odd sizes (1, 7, 33, 65), K = 0; float and double;
// how many kernels and GEMMs each takes; a destination that is also an operand.
#include <fusegrad/fusegrad.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_matmul {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using fgtest::Ref;

/// Checks C = A @ B (got) against the reference, with the classic bound for a K-term dot product:
/// |error| <= 2 (K + 1) eps sum_k |a_ik b_kj|.
inline void check_product(const fgtest::Outcome& o, const Ref& ra, const Ref& rb, double eps,
                          std::int64_t launches, const std::string& what) {
  INFO(what << ": " << fgtest::dims_str(ra.shape) << " @ " << fgtest::dims_str(rb.shape));
  Ref scale;
  const Ref want = fgtest::matmul(ra, rb, &scale);
  const double k = static_cast<double>(ra.shape.back());
  for (auto& t : scale.v) {
    t = 2 * (k + 1) * eps * t + 1e-300;
  }
  CHECK(o.in_place);
  CHECK(o.launches == (want.size() > 0 ? launches : 0));
  CHECK(fgtest::compare_scaled(o.got, want, scale) == "");
}

/// A [rows, cols] operand stored in one of several layouts, all read through a Leaf<T, 2>.
enum class Form { plain, transposed, row_slice, col_window, strided, broadcast };

inline const char* form_name(Form f) {
  switch (f) {
    case Form::plain:
      return "plain";
    case Form::transposed:
      return "transposed";
    case Form::row_slice:
      return "row slice";
    case Form::col_window:
      return "column window";
    case Form::strided:
      return "step-2 slice";
    case Form::broadcast:
      return "broadcast";
  }
  return "?";
}

/// Whether matmul must copy an operand of this form first (neither row-major nor transposed).
inline bool copied(Form f, index_t rows, index_t cols) {
  if (f == Form::strided) {  // column stride 2: with one row it is a transposed view (ld 2)
    return rows > 1 && cols > 1;
  }
  if (f == Form::broadcast) {  // row stride 0
    return rows > 1;
  }
  return false;
}

template <class T>
struct Mat {
  fg::Tensor<T, 2> storage;
  fg::Leaf<T, 2> view;
  Ref ref;
};

template <class T>
Mat<T> make_mat(index_t rows, index_t cols, Form form, std::mt19937& rng) {
  Mat<T> m;
  switch (form) {
    case Form::plain:
      m.storage = fgtest::random_tensor<T, 2>(Dims{rows, cols}, rng);
      m.view = m.storage.view();
      m.ref = fgtest::ref_of(m.storage);
      break;
    case Form::transposed:
      m.storage = fgtest::random_tensor<T, 2>(Dims{cols, rows}, rng);
      m.view = fg::transpose(m.storage);
      m.ref = fgtest::transpose(fgtest::ref_of(m.storage));
      break;
    case Form::row_slice:  // rows 2 .. 2 + rows of a taller matrix
      m.storage = fgtest::random_tensor<T, 2>(Dims{rows + 3, cols}, rng);
      m.view = fg::slice(m.storage, 0, 2, 2 + rows);
      m.ref = fgtest::slice(fgtest::ref_of(m.storage), 0, 2, 2 + rows);
      break;
    case Form::col_window:  // columns 1 .. 1 + cols of a wider matrix: leading dimension > cols
      m.storage = fgtest::random_tensor<T, 2>(Dims{rows, cols + 5}, rng);
      m.view = fg::slice(m.storage, 1, 1, 1 + cols);
      m.ref = fgtest::slice(fgtest::ref_of(m.storage), 1, 1, 1 + cols);
      break;
    case Form::strided:  // every other column
      m.storage = fgtest::random_tensor<T, 2>(Dims{rows, 2 * cols + 1}, rng);
      m.view = fg::slice(m.storage, 1, 0, 2 * cols, 2);
      m.ref = fgtest::slice(fgtest::ref_of(m.storage), 1, 0, 2 * cols, 2);
      break;
    case Form::broadcast:  // one row repeated
      m.storage = fgtest::random_tensor<T, 2>(Dims{1, cols}, rng);
      m.view = fg::broadcast_to(m.storage, {rows, cols});
      m.ref = fgtest::broadcast_to(fgtest::ref_of(m.storage), {rows, cols});
      break;
  }
  REQUIRE(m.ref.shape == (Dims{rows, cols}));
  return m;
}

template <class T>
void matmul_2d_sweep(std::uint32_t seed) {
  std::mt19937 rng(seed);
  const index_t sizes[] = {1, 7, 33, 65};
  const Form forms[] = {Form::plain,      Form::transposed, Form::row_slice,
                        Form::col_window, Form::strided,    Form::broadcast};
  for (index_t m : sizes) {
    for (index_t k : sizes) {
      for (index_t n : sizes) {
        // Every form of A against plain B and every form of B against plain A; plus
        // transposed @ transposed.
        for (Form f : forms) {
          auto a = make_mat<T>(m, k, f, rng);
          auto b = make_mat<T>(k, n, Form::plain, rng);
          check_product(fgtest::run<T, 2>(fg::matmul(a.view, b.view)), a.ref, b.ref,
                        fgtest::eps_of<T>(), 1 + copied(f, m, k), std::string("A ") + form_name(f));
          auto c = make_mat<T>(m, k, Form::plain, rng);
          auto d = make_mat<T>(k, n, f, rng);
          check_product(fgtest::run<T, 2>(fg::matmul(c.view, d.view)), c.ref, d.ref,
                        fgtest::eps_of<T>(), 1 + copied(f, k, n), std::string("B ") + form_name(f));
        }
        auto a = make_mat<T>(m, k, Form::transposed, rng);
        auto b = make_mat<T>(k, n, Form::transposed, rng);
        check_product(fgtest::run<T, 2>(fg::matmul(a.view, b.view)), a.ref, b.ref,
                      fgtest::eps_of<T>(), 1, "both transposed");
      }
    }
  }
}

TEST_CASE("matmul 2-D, float: odd sizes, transposed, sliced, strided and broadcast operands",
          "[matmul]") {
  matmul_2d_sweep<float>(501);
}
TEST_CASE("matmul 2-D, double", "[matmul]") {
  matmul_2d_sweep<double>(502);
}

TEST_CASE("matmul of tensors directly, and of expressions (evaluated first, one extra kernel)",
          "[matmul]") {
  std::mt19937 rng(503);
  auto a = fgtest::random_tensor<float, 2>(Dims{33, 7}, rng);
  auto b = fgtest::random_tensor<float, 2>(Dims{7, 65}, rng);
  auto c = fgtest::random_tensor<float, 2>(Dims{65, 7}, rng);
  const Ref ra = fgtest::ref_of(a), rb = fgtest::ref_of(b), rc = fgtest::ref_of(c);
  const double eps = fgtest::eps_of<float>();
  check_product(fgtest::run<float, 2>(fg::matmul(a, b)), ra, rb, eps, 1, "tensors");
  check_product(fgtest::run<float, 2>(fg::matmul(a, fg::transpose(c))), ra, fgtest::transpose(rc),
                eps, 1, "a @ transpose(c)");
  check_product(fgtest::run<float, 2>(fg::matmul(a * 2.f, b)),
                fgtest::map1(ra, [](double x) { return 2 * x; }), rb, eps, 2, "(a * 2) @ b");
  check_product(fgtest::run<float, 2>(fg::matmul(a, b + 1.f)), ra,
                fgtest::round_to<float>(fgtest::map1(rb, [](double x) { return x + 1; })), eps, 2,
                "a @ (b + 1)");
  check_product(fgtest::run<float, 2>(fg::matmul(a * 2.f, b + 1.f)),
                fgtest::map1(ra, [](double x) { return 2 * x; }),
                fgtest::round_to<float>(fgtest::map1(rb, [](double x) { return x + 1; })), eps, 3,
                "(a * 2) @ (b + 1)");
  // A reshape of a tensor is a view (no copy); a matmul operand that is itself a product.
  auto v = fgtest::random_tensor<float, 1>(Dims{33 * 7}, rng);
  check_product(fgtest::run<float, 2>(fg::matmul(fg::reshape(v, {33, 7}), b)),
                fgtest::reshape(fgtest::ref_of(v), {33, 7}), rb, eps, 1, "reshape(v) @ b");
  fg::Tensor<float, 2> ab = fg::matmul(a, b);
  check_product(fgtest::run<float, 2>(fg::matmul(fg::matmul(a, b), c)), fgtest::ref_of(ab), rc, eps,
                2, "(a @ b) @ c");
}

TEST_CASE("matmul with K = 0 gives zeros; empty M or N gives an empty result", "[matmul][empty]") {
  std::mt19937 rng(504);
  auto a = fg::Tensor<double, 2>(fg::Shape<2>({5, 0}));
  auto b = fg::Tensor<double, 2>(fg::Shape<2>({0, 3}));
  fgtest::Outcome o = fgtest::run<double, 2>(fg::matmul(a, b));
  CHECK(fgtest::compare_exact(o.got, Ref(Dims{5, 3}, 0.0)) == "");
  auto af = fg::Tensor<float, 3>(fg::Shape<3>({2, 4, 0}));
  auto bf = fg::Tensor<float, 3>(fg::Shape<3>({2, 0, 6}));
  CHECK(fgtest::compare_exact(fgtest::run<float, 3>(fg::matmul(af, bf)).got,
                              Ref(Dims{2, 4, 6}, 0.0)) == "");
  CHECK(fgtest::compare_exact(
            fgtest::run<float, 2>(
                fg::matmul(fg::transpose(fg::Tensor<float, 2>(fg::Shape<2>({0, 4}))),
                           fg::Tensor<float, 2>(fg::Shape<2>({0, 2}))))
                .got,
            Ref(Dims{4, 2}, 0.0)) == "");
  auto m0 = fg::Tensor<float, 2>(fg::Shape<2>({0, 3}));
  auto k3 = fgtest::random_tensor<float, 2>(Dims{3, 4}, rng);
  fgtest::LaunchCounter count;
  fg::Tensor<float, 2> e = fg::matmul(m0, k3);
  CHECK(fgtest::dims_of(e.shape()) == Dims{0, 4});
  CHECK(count.gemms() == 0);
  CHECK(count.launches() == 0);
}

template <class T>
void batched_sweep(std::uint32_t seed) {
  std::mt19937 rng(seed);
  const double eps = fgtest::eps_of<T>();
  struct Case {
    index_t batch, m, k, n;
  };
  const Case cases[] = {{3, 7, 33, 5}, {1, 65, 7, 33}, {4, 1, 1, 1}, {2, 33, 65, 7}, {5, 1, 17, 9}};
  for (const Case& c : cases) {
    INFO("B " << c.batch << ", M " << c.m << ", K " << c.k << ", N " << c.n);
    auto a3 = fgtest::random_tensor<T, 3>(Dims{c.batch, c.m, c.k}, rng);
    auto b3 = fgtest::random_tensor<T, 3>(Dims{c.batch, c.k, c.n}, rng);
    auto a2 = fgtest::random_tensor<T, 2>(Dims{c.m, c.k}, rng);
    auto b2 = fgtest::random_tensor<T, 2>(Dims{c.k, c.n}, rng);
    const Ref ra3 = fgtest::ref_of(a3), rb3 = fgtest::ref_of(b3), ra2 = fgtest::ref_of(a2),
              rb2 = fgtest::ref_of(b2);
    check_product(fgtest::run<T, 3>(fg::matmul(a3, b3)), ra3, rb3, eps, 1, "[B,M,K] @ [B,K,N]");
    check_product(fgtest::run<T, 3>(fg::matmul(a3, b2)), ra3, rb2, eps, 1, "[B,M,K] @ [K,N]");
    check_product(fgtest::run<T, 3>(fg::matmul(a2, b3)), ra2, rb3, eps, 1, "[M,K] @ [B,K,N]");
    // Batch extent 1 against B, both ways.
    auto a1 = fgtest::random_tensor<T, 3>(Dims{1, c.m, c.k}, rng);
    auto b1 = fgtest::random_tensor<T, 3>(Dims{1, c.k, c.n}, rng);
    check_product(fgtest::run<T, 3>(fg::matmul(a1, b3)), fgtest::ref_of(a1), rb3, eps, 1,
                  "[1,M,K] @ [B,K,N]");
    check_product(fgtest::run<T, 3>(fg::matmul(a3, b1)), ra3, fgtest::ref_of(b1), eps, 1,
                  "[B,M,K] @ [1,K,N]");
    // Transposed batches: permute {0, 2, 1} of [B,K,M] storage.
    auto at = fgtest::random_tensor<T, 3>(Dims{c.batch, c.k, c.m}, rng);
    auto bt = fgtest::random_tensor<T, 3>(Dims{c.batch, c.n, c.k}, rng);
    const Ref rat = fgtest::permute(fgtest::ref_of(at), {0, 2, 1}),
              rbt = fgtest::permute(fgtest::ref_of(bt), {0, 2, 1});
    check_product(
        fgtest::run<T, 3>(fg::matmul(fg::permute(at, {0, 2, 1}), fg::permute(bt, {0, 2, 1}))), rat,
        rbt, eps, 1, "permuted @ permuted");
    check_product(fgtest::run<T, 3>(fg::matmul(fg::permute(at, {0, 2, 1}), b2)), rat, rb2, eps, 1,
                  "permuted @ [K,N]");
    check_product(fgtest::run<T, 3>(fg::matmul(a2, fg::permute(bt, {0, 2, 1}))), ra2, rbt, eps, 1,
                  "[M,K] @ permuted");
    // Batch axis not outermost in memory: permute {1, 0, 2} of [M,B,K] storage (row stride B*K).
    auto am = fgtest::random_tensor<T, 3>(Dims{c.m, c.batch, c.k}, rng);
    const Ref ram = fgtest::permute(fgtest::ref_of(am), {1, 0, 2});
    check_product(fgtest::run<T, 3>(fg::matmul(fg::permute(am, {1, 0, 2}), b3)), ram, rb3, eps, 1,
                  "batch-interleaved @ [B,K,N]");
    // Sliced batches and a broadcast batch.
    auto as = fgtest::random_tensor<T, 3>(Dims{2 * c.batch, c.m, c.k + 2}, rng);
    const Ref ras =
        fgtest::slice(fgtest::slice(fgtest::ref_of(as), 0, 1, 2 * c.batch, 2), 2, 1, c.k + 1);
    check_product(fgtest::run<T, 3>(fg::matmul(
                      fg::slice(fg::slice(as, 0, 1, 2 * c.batch, 2), 2, 1, c.k + 1), b3)),
                  ras, rb3, eps, 1, "sliced batches @ [B,K,N]");
    check_product(fgtest::run<T, 3>(fg::matmul(fg::broadcast_to(a2, {c.batch, c.m, c.k}), b3)),
                  fgtest::broadcast_to(ra2, {c.batch, c.m, c.k}), rb3, eps, 1,
                  "broadcast_to([M,K]) @ [B,K,N]");
    // An expression operand.
    check_product(fgtest::run<T, 3>(fg::matmul(a3 * T(2), b3)),
                  fgtest::map1(ra3, [](double x) { return 2 * x; }), rb3, eps, 2,
                  "(a * 2) @ [B,K,N]");
  }
}

TEST_CASE(
    "batched matmul, float: [B,M,K]@[B,K,N], [B,M,K]@[K,N], [M,K]@[B,K,N], permuted and sliced "
    "batches",
    "[matmul][batched]") {
  batched_sweep<float>(505);
}
TEST_CASE("batched matmul, double", "[matmul][batched]") {
  batched_sweep<double>(506);
}

TEST_CASE("matmul into one of its own operands goes through a temporary", "[matmul][alias]") {
  std::mt19937 rng(507);
  for (index_t n : {1, 7, 33}) {
    auto a = fgtest::random_tensor<double, 2>(Dims{n, n}, rng);
    auto b = fgtest::random_tensor<double, 2>(Dims{n, n}, rng);
    const Ref ra = fgtest::ref_of(a), rb = fgtest::ref_of(b);
    Ref scale;
    const Ref want = fgtest::matmul(ra, rb, &scale);
    a = fg::matmul(a, b);
    for (auto& t : scale.v) {
      t = 2 * (n + 1) * fgtest::eps_of<double>() * t + 1e-300;
    }
    CHECK(fgtest::compare_scaled(fgtest::ref_of(a), want, scale) == "");
    const Ref want2 = fgtest::matmul(rb, fgtest::transpose(rb), &scale);
    for (auto& t : scale.v) {
      t = 2 * (n + 1) * fgtest::eps_of<double>() * t + 1e-300;
    }
    b = fg::matmul(b, fg::transpose(b));
    CHECK(fgtest::compare_scaled(fgtest::ref_of(b), want2, scale) == "");
  }
  // The result shape differs from the destination's: it is reallocated.
  auto x = fgtest::random_tensor<float, 2>(Dims{3, 5}, rng);
  auto y = fgtest::random_tensor<float, 2>(Dims{5, 2}, rng);
  fg::Tensor<float, 2> z = fgtest::poisoned<float, 2>(fg::Shape<2>({7, 7}));
  z = fg::matmul(x, y);
  CHECK(fgtest::dims_of(z.shape()) == Dims{3, 2});
  CHECK(fgtest::all_finite(z));
}

}  // namespace test_matmul
