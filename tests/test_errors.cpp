// tests/test_errors.cpp — the errors the API promises: fusegrad::shape_error (a
// fusegrad::error) when an expression is BUILT with shapes that do not fit — naming the op and the
// shapes — before any kernel runs; memory_error naming the bytes of an allocation that cannot be
// satisfied.
#include <fusegrad/fusegrad.hpp>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_errors {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;

/// What running a piece of code that should throw gave.
struct Thrown {
  std::string message;
  std::int64_t launches = 0, gemms = 0;
};

/// Runs f, catching a shape_error; counts the kernels and GEMMs it launched.
template <class F>
Thrown attempt(F&& f) {
  fgtest::LaunchCounter count;
  Thrown t;
  t.message = fgtest::thrown_message<fg::shape_error>(f);
  t.launches = count.launches();
  t.gemms = count.gemms();
  return t;
}

/// The attempt threw shape_error with a message containing every one of `parts`, and launched no
/// kernel and no GEMM before throwing.
inline void expect_shape_error(const Thrown& t, const std::vector<std::string>& parts) {
  INFO("message: " << t.message);
  for (const auto& p : parts) {
    INFO("expected to contain: " << p);
    CHECK(fgtest::contains(t.message, p));
  }
  CHECK(t.launches == 0);
  CHECK(t.gemms == 0);
}

TEST_CASE(
    "exception types: shape_error and memory_error are fusegrad::error and std::runtime_error",
    "[errors]") {
  static_assert(std::is_base_of_v<fg::error, fg::shape_error>);
  static_assert(std::is_base_of_v<fg::error, fg::memory_error>);
  static_assert(std::is_base_of_v<fg::error, fg::cuda_error>);
  static_assert(std::is_base_of_v<std::runtime_error, fg::error>);
  fg::Tensor<float, 2> a({3, 4}), b({5, 4});
  bool caught = false;
  try {
    auto e = a + b;
    (void)e;
  } catch (const fg::error& e) {
    caught = true;
    CHECK(std::string(e.what()) == "add: shapes [3, 4] and [5, 4] do not broadcast");
  }
  CHECK(caught);
}

TEST_CASE(
    "non-broadcasting shapes throw when the expression is built, naming the op and both shapes",
    "[errors][broadcast]") {
  fg::Tensor<float, 2> a({3, 4}), bad({5, 4});
  fg::Tensor<float, 2> c({3, 4});
  expect_shape_error(attempt([&] {
                       auto e = a + bad;
                       (void)e;
                     }),
                     {"add: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = a - bad;
                       (void)e;
                     }),
                     {"sub: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = a * bad;
                       (void)e;
                     }),
                     {"mul: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = a / bad;
                       (void)e;
                     }),
                     {"div: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = fg::maximum(a, bad);
                       (void)e;
                     }),
                     {"maximum: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = fg::minimum(a, bad);
                       (void)e;
                     }),
                     {"minimum: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = a < bad;
                       (void)e;
                     }),
                     {"less: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = a <= bad;
                       (void)e;
                     }),
                     {"less_equal: shapes [3, 4] and [5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = a > bad;
                       (void)e;
                     }),
                     {"greater: shapes [3, 4] and [5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = a >= bad;
                       (void)e;
                     }),
                     {"greater_equal: shapes [3, 4] and [5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = a == bad;
                       (void)e;
                     }),
                     {"equal: shapes [3, 4] and [5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = a != bad;
                       (void)e;
                     }),
                     {"not_equal: shapes [3, 4] and [5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::where(a > 0.f, a, bad);
                       (void)e;
                     }),
                     {"where: shapes [3, 4] and [5, 4] do not broadcast"});
  expect_shape_error(attempt([&] {
                       auto e = fg::where(bad > 0.f, a, 1.f);
                       (void)e;
                     }),
                     {"where: shapes [5, 4] and [3, 4] do not broadcast"});
  // Deep inside a tree: the failing node names itself.
  expect_shape_error(attempt([&] {
                       auto e = fg::exp(a * 2.f) + fg::relu(bad - 1.f);
                       (void)e;
                     }),
                     {"add: shapes [3, 4] and [5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::sum(a * bad, 0);
                       (void)e;
                     }),
                     {"mul: shapes [3, 4] and [5, 4]"});
  // Assigning a failed expression leaves the destination alone.
  auto filled = fgtest::filled<float, 2>(c.shape(), 1.5f);
  expect_shape_error(attempt([&] { filled = a + bad; }), {"add: shapes [3, 4] and [5, 4]"});
  CHECK(filled.to_vector() == std::vector<float>(12, 1.5f));
  CHECK(filled.size() == 12);
  // Rank differences: [3, 4] against [5, 1, 3] (the trailing axes 4 and 3 differ).
  fg::Tensor<float, 3> r3({5, 1, 3});
  expect_shape_error(attempt([&] {
                       auto e = a + r3;
                       (void)e;
                     }),
                     {"add: shapes ", "[5, 1, 3] do not broadcast"});
  {
    // Each operand is named with its own shape, not padded to the result's rank.
    const std::string msg = fgtest::thrown_message<fg::shape_error>([&] {
      auto e = a + r3;
      (void)e;
    });
    INFO(msg);
    CHECK(fgtest::contains(msg, "add: shapes [3, 4] and [5, 1, 3] do not broadcast"));
  }
  // Integer tensors and numbers on either side.
  fg::Tensor<std::int32_t, 1> i3({3}), i4({4});
  expect_shape_error(attempt([&] {
                       auto e = (i3 * 2) + i4;
                       (void)e;
                     }),
                     {"add: shapes [3] and [4] do not broadcast"});
}

TEST_CASE("broadcast_to and in-place updates reject shapes that do not fit",
          "[errors][broadcast]") {
  fg::Tensor<float, 2> a({3, 4});
  fg::Tensor<float, 1> v5({5});
  fg::Tensor<float, 2> wide({3, 4}), col({3, 1});
  expect_shape_error(attempt([&] {
                       auto e = fg::broadcast_to(a, {5, 4});
                       (void)e;
                     }),
                     {"broadcast_to", "[3, 4]", "[5, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::broadcast_to(a * 2.f, {2, 3, 5});
                       (void)e;
                     }),
                     {"broadcast_to", "[3, 4]", "[2, 3, 5]"});
  expect_shape_error(attempt([&] { a += v5; }),
                     {"add (in place): shape [5] does not broadcast to the tensor's shape [3, 4]"});
  expect_shape_error(attempt([&] { a -= v5; }), {"sub (in place)", "[5]", "[3, 4]"});
  expect_shape_error(attempt([&] { a *= v5 * 2.f; }), {"mul (in place)", "[5]", "[3, 4]"});
  expect_shape_error(attempt([&] { a /= v5; }), {"div (in place)", "[5]", "[3, 4]"});
  // In place, the tensor cannot grow: [3, 1] += [3, 4] broadcasts but not to [3, 1].
  expect_shape_error(attempt([&] { col += wide; }), {"add (in place)", "[3, 4]", "[3, 1]"});
  CHECK(fgtest::dims_of(col.shape()) == Dims{3, 1});
}

TEST_CASE("matmul: inner and batch extents must agree", "[errors][matmul]") {
  fg::Tensor<float, 2> a({3, 4}), b({5, 6});
  fg::Tensor<float, 3> a3({2, 3, 4}), b3({3, 4, 5}), b35({2, 5, 6});
  expect_shape_error(attempt([&] {
                       auto e = fg::matmul(a, b);
                       (void)e;
                     }),
                     {"matmul", "[3, 4]", "[5, 6]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::matmul(a, b);
                       (void)e;
                     }),
                     {"matmul: inner dimensions differ: [3, 4] @ [5, 6]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::matmul(fg::transpose(a), b);
                       (void)e;
                     }),
                     {"matmul", "[4, 3]", "[5, 6]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::matmul(a3, b35);
                       (void)e;
                     }),
                     {"matmul", "[2, 3, 4]", "[2, 5, 6]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::matmul(a3, b3);
                       (void)e;
                     }),
                     {"matmul: batch extents differ", "[2, 3, 4]", "[3, 4, 5]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::relu(fg::matmul(a * 2.f, b));
                       (void)e;
                     }),
                     {"matmul", "[3, 4]", "[5, 6]"});
}

TEST_CASE("reshape, slice, permute: invalid arguments", "[errors][views]") {
  fg::Tensor<float, 2> a({3, 4});
  expect_shape_error(attempt([&] {
                       auto e = fg::reshape(a, {5, 3});
                       (void)e;
                     }),
                     {"reshape", "[3, 4]", "12", "[5, 3]", "15"});
  expect_shape_error(attempt([&] {
                       auto e = fg::reshape(a * 2.f, {13});
                       (void)e;
                     }),
                     {"reshape", "[3, 4]", "[13]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::reshape(a, {5, -1});
                       (void)e;
                     }),
                     {"reshape", "-1", "[3, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::reshape(a, {-1, -1});
                       (void)e;
                     }),
                     {"reshape"});
  expect_shape_error(attempt([&] {
                       auto e = fg::reshape(a, {-2, -6});
                       (void)e;
                     }),
                     {"reshape"});
  expect_shape_error(attempt([&] {
                       auto e = fg::reshape(a, {0, -1});
                       (void)e;
                     }),
                     {"reshape"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a, 0, 0, 4);
                       (void)e;
                     }),
                     {"slice", "[0, 4)", "[3, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a, 1, 3, 2);
                       (void)e;
                     }),
                     {"slice", "[3, 2)"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a, 1, -1, 2);
                       (void)e;
                     }),
                     {"slice", "[-1, 2)"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a, 1, 0, 2, 0);
                       (void)e;
                     }),
                     {"slice", "step 0"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a + 1.f, 0, 2, 5);
                       (void)e;
                     }),
                     {"slice", "[2, 5)"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a, 2, 0, 1);
                       (void)e;
                     }),
                     {"slice: axis 2 is out of range for shape [3, 4] (rank 2)"});
  expect_shape_error(attempt([&] {
                       auto e = fg::slice(a, -3, 0, 1);
                       (void)e;
                     }),
                     {"slice: axis -3 is out of range"});
  fg::Tensor<float, 3> x({2, 3, 4});
  expect_shape_error(attempt([&] {
                       auto e = fg::permute(x, {0, 0, 1});
                       (void)e;
                     }),
                     {"permute: {0, 0, 1} is not a permutation", "[2, 3, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::permute(x, {0, 1, 3});
                       (void)e;
                     }),
                     {"permute: {0, 1, 3}"});
  expect_shape_error(attempt([&] {
                       auto e = fg::permute(x * 1.f, {-1, 0, 1});
                       (void)e;
                     }),
                     {"permute"});
  expect_shape_error(attempt([&] { (void)a.shape(2); }), {"shape: axis 2 is out of range"});
}

TEST_CASE("reductions: axis out of range, and max/min/argmax/argmin of nothing",
          "[errors][reduce]") {
  fg::Tensor<float, 2> a({3, 4});
  expect_shape_error(attempt([&] {
                       auto e = fg::sum(a, 2);
                       (void)e;
                     }),
                     {"sum: axis 2 is out of range for shape [3, 4] (rank 2)"});
  expect_shape_error(attempt([&] {
                       auto e = fg::sum(a, -3);
                       (void)e;
                     }),
                     {"sum: axis -3 is out of range for shape [3, 4] (rank 2)"});
  expect_shape_error(attempt([&] {
                       auto e = fg::mean(a, 2, fg::keepdims);
                       (void)e;
                     }),
                     {"mean: axis 2 is out of range"});
  expect_shape_error(attempt([&] {
                       auto e = fg::max(a * 2.f, -3);
                       (void)e;
                     }),
                     {"max: axis -3 is out of range"});
  expect_shape_error(attempt([&] {
                       auto e = fg::min(a, 7);
                       (void)e;
                     }),
                     {"min: axis 7"});
  expect_shape_error(attempt([&] {
                       auto e = fg::prod(a, -5, fg::keepdims);
                       (void)e;
                     }),
                     {"prod: axis -5"});
  expect_shape_error(attempt([&] {
                       auto e = fg::argmax(a, 2);
                       (void)e;
                     }),
                     {"argmax: axis 2"});
  expect_shape_error(attempt([&] {
                       auto e = fg::argmin(a, -3);
                       (void)e;
                     }),
                     {"argmin: axis -3"});
  fg::Tensor<float, 2> empty({0, 4});
  expect_shape_error(attempt([&] {
                       auto e = fg::max(empty);
                       (void)e;
                     }),
                     {"max: cannot reduce zero elements", "[0, 4]"});
  expect_shape_error(attempt([&] {
                       auto e = fg::min(empty, 0);
                       (void)e;
                     }),
                     {"min: cannot reduce zero elements"});
  expect_shape_error(attempt([&] {
                       auto e = fg::argmax(empty, 0, fg::keepdims);
                       (void)e;
                     }),
                     {"argmax: cannot reduce zero elements"});
  expect_shape_error(attempt([&] {
                       auto e = fg::argmin(empty * 2.f);
                       (void)e;
                     }),
                     {"argmin: cannot reduce zero elements"});
  // Reducing the other axis of the same tensor is fine (there are elements along it).
  fg::Tensor<float, 1> ok = fg::max(empty, 1);
  CHECK(ok.size() == 0);
}

TEST_CASE("item, copy_from, from_host, arange, negative extents", "[errors][tensor]") {
  fg::Tensor<float, 2> a({2, 3});
  expect_shape_error(
      attempt([&] { (void)a.item(); }),
      {"item: needs exactly one element, but the tensor has shape [2, 3] (6 elements)"});
  fg::Tensor<float, 1> none({0});
  expect_shape_error(attempt([&] { (void)none.item(); }), {"item", "[0]", "0 elements"});
  std::vector<float> five(5, 1.f), seven(7, 1.f);
  expect_shape_error(
      attempt([&] { a.copy_from(std::span<const float>(five)); }),
      {"copy_from: 5 host elements do not fill a tensor of shape [2, 3] (6 elements)"});
  expect_shape_error(attempt([&] { a.copy_from(std::span<const float>(seven)); }),
                     {"copy_from: 7", "[2, 3]"});
  expect_shape_error(attempt([&] {
                       auto t = fg::from_host<float>({4, 2}, std::span<const float>(seven));
                       (void)t;
                     }),
                     {"copy_from", "[4, 2]"});
  expect_shape_error(attempt([&] {
                       auto t = fg::arange<float>(0.f, 1.f, 0.f);
                       (void)t;
                     }),
                     {"arange: step must not be zero"});
  expect_shape_error(attempt([&] {
                       fg::Tensor<float, 2> t({3, -1});
                       (void)t;
                     }),
                     {"Tensor: negative extent in shape [3, -1]"});
  // item() of an expression of many elements evaluates it first, then throws.
  const std::string msg = fgtest::thrown_message<fg::shape_error>([&] { (void)(a * 2.f).item(); });
  CHECK(fgtest::contains(msg, "item"));
}

TEST_CASE("allocations that cannot be satisfied throw memory_error naming the bytes",
          "[errors][memory]") {
  fgtest::LaunchCounter count;
  const std::string msg = fgtest::thrown_message<fg::memory_error>([] {
    fg::Tensor<float, 1> t({index_t(1) << 50});
    (void)t;
  });
  INFO(msg);
  CHECK(fgtest::contains(msg, "4503599627370496"));
  const std::string msg2 = fgtest::thrown_message<fg::memory_error>([] {
    fg::Tensor<double, 1> t({index_t(1) << 62});
    (void)t;
  });
  INFO(msg2);
  CHECK(fgtest::contains(msg2, "4611686018427387904"));
  // A failed allocation of a result: zeros of a huge shape.
  const std::string msg3 = fgtest::thrown_message<fg::memory_error>([] {
    auto t = fg::zeros<float>({index_t(1) << 25, index_t(1) << 25});
    (void)t;
  });
  INFO(msg3);
  CHECK(fgtest::contains(msg3, "4503599627370496"));
  CHECK(count.launches() == 0);
}

// Extents whose product overflows int64 are rejected before anything is allocated.
TEST_CASE("extents whose element count overflows int64 throw shape_error", "[errors]") {
  const std::string msg = fgtest::thrown_message<fg::shape_error>([] {
    fg::Tensor<float, 2> t({index_t(1) << 32, index_t(1) << 32});
    (void)t;
  });
  CHECK(fgtest::contains(msg, "[4294967296, 4294967296] has more elements than an int64 can count"));
}

}  // namespace test_errors
