// tests/support/reference.hpp — shared test helpers: random host data, a double-precision N-d
// reference (element-wise maps with NumPy broadcasting, views, reductions, matmul), tolerances
// scaled by the dtype's epsilon, and poisoned outputs that expose elements a kernel never wrote.
//
// Everything lives in namespace fgtest, so the test files can be compiled together as one
// translation unit (the CUDA test build does that).
#pragma once

#include <fusegrad/fusegrad.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/catch.hpp"

namespace fgtest {

namespace fg = fusegrad;
using fg::index_t;
using Dims = std::vector<index_t>;

// ---------------------------------------------------------------------------------------------
// Tolerances

/// Machine epsilon of T (0 for integers and bool: they must match exactly).
template <class T>
constexpr double eps_of() {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<double>(std::numeric_limits<T>::epsilon());
  } else {
    return 0.0;
  }
}

/// `factor` ulps of T, relative.
template <class T>
constexpr double ulps(double factor) {
  return factor * eps_of<T>();
}

// ---------------------------------------------------------------------------------------------
// Shapes

template <int R>
Dims dims_of(const fg::Shape<R>& s) {
  Dims d(static_cast<std::size_t>(R));
  for (int i = 0; i < R; ++i) {
    d[static_cast<std::size_t>(i)] = s[i];
  }
  return d;
}

template <int R>
fg::Shape<R> shape_of(const Dims& d) {
  if (d.size() != static_cast<std::size_t>(R)) {
    throw std::logic_error("fgtest::shape_of: rank mismatch");
  }
  fg::Shape<R> s;
  for (int i = 0; i < R; ++i) {
    s[i] = d[static_cast<std::size_t>(i)];
  }
  return s;
}

inline index_t numel(const Dims& d) {
  index_t n = 1;
  for (index_t e : d) {
    n *= e;
  }
  return n;
}

inline std::string dims_str(const Dims& d) {
  std::string out = "[";
  for (std::size_t i = 0; i < d.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(d[i]);
  }
  return out + "]";
}

/// Row-major strides of a contiguous array of shape d.
inline Dims strides_of(const Dims& d) {
  Dims s(d.size());
  index_t step = 1;
  for (std::size_t i = d.size(); i-- > 0;) {
    s[i] = step;
    step *= d[i];
  }
  return s;
}

/// The C-order multi-index of position i in shape d.
inline Dims unravel(index_t i, const Dims& d) {
  Dims idx(d.size());
  for (std::size_t k = d.size(); k-- > 0;) {
    idx[k] = d[k] == 0 ? 0 : i % d[k];
    i = d[k] == 0 ? 0 : i / d[k];
  }
  return idx;
}

/// NumPy broadcasting of two shapes; throws std::logic_error when they do not broadcast.
inline Dims broadcast_dims(const Dims& a, const Dims& b) {
  const std::size_t r = std::max(a.size(), b.size());
  Dims out(r);
  for (std::size_t i = 0; i < r; ++i) {
    const std::ptrdiff_t ia =
        static_cast<std::ptrdiff_t>(i) - static_cast<std::ptrdiff_t>(r - a.size());
    const std::ptrdiff_t ib =
        static_cast<std::ptrdiff_t>(i) - static_cast<std::ptrdiff_t>(r - b.size());
    const index_t ea = ia >= 0 ? a[static_cast<std::size_t>(ia)] : 1;
    const index_t eb = ib >= 0 ? b[static_cast<std::size_t>(ib)] : 1;
    if (ea != eb && ea != 1 && eb != 1) {
      throw std::logic_error("fgtest: shapes " + dims_str(a) + " and " + dims_str(b) +
                             " do not broadcast");
    }
    out[i] = ea == 1 ? eb : ea;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The reference: a dense, C-order N-d array of doubles

struct Ref {
  Dims shape;
  std::vector<double> v;

  Ref() = default;
  Ref(Dims s, std::vector<double> values) : shape(std::move(s)), v(std::move(values)) {
    if (static_cast<index_t>(v.size()) != numel(shape)) {
      throw std::logic_error("fgtest::Ref: " + std::to_string(v.size()) + " values for shape " +
                             dims_str(shape));
    }
  }
  explicit Ref(Dims s, double fill = 0.0)
      : shape(std::move(s)), v(static_cast<std::size_t>(numel(shape)), fill) {}

  index_t size() const { return static_cast<index_t>(v.size()); }
  int rank() const { return static_cast<int>(shape.size()); }

  /// Element at `idx`, which has this array's rank or more (right-aligned; extent-1 axes
  /// broadcast).
  double at(const Dims& idx) const {
    index_t off = 0;
    const std::size_t skip = idx.size() - shape.size();
    for (std::size_t k = 0; k < shape.size(); ++k) {
      const index_t i = shape[k] == 1 ? 0 : idx[k + skip];
      off = off * shape[k] + i;
    }
    return v[static_cast<std::size_t>(off)];
  }
};

template <class T, int R>
Ref ref_of(const fg::Tensor<T, R>& t) {
  const auto host = t.to_vector();
  std::vector<double> v(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    v[i] = static_cast<double>(host[i]);
  }
  return Ref(dims_of(t.shape()), std::move(v));
}

// Maps take plain function pointers (captureless lambdas convert), so each is compiled once.
using Fn1 = double (*)(double);
using Fn2 = double (*)(double, double);
using Fn3 = double (*)(double, double, double);

/// out[idx] = f(a[idx]).
inline Ref map1(const Ref& a, Fn1 f) {
  Ref out(a.shape);
  for (std::size_t i = 0; i < a.v.size(); ++i) {
    out.v[i] = f(a.v[i]);
  }
  return out;
}

/// out[idx] = f(a[idx], b[idx]) with NumPy broadcasting.
inline Ref map2(const Ref& a, const Ref& b, Fn2 f) {
  if (a.shape == b.shape) {
    Ref out(a.shape);
    for (std::size_t i = 0; i < a.v.size(); ++i) {
      out.v[i] = f(a.v[i], b.v[i]);
    }
    return out;
  }
  Ref out(broadcast_dims(a.shape, b.shape));
  for (index_t i = 0; i < out.size(); ++i) {
    const Dims idx = unravel(i, out.shape);
    out.v[static_cast<std::size_t>(i)] = f(a.at(idx), b.at(idx));
  }
  return out;
}

/// out[idx] = f(a[idx], b[idx], c[idx]) with NumPy broadcasting.
inline Ref map3(const Ref& a, const Ref& b, const Ref& c, Fn3 f) {
  Ref out(broadcast_dims(broadcast_dims(a.shape, b.shape), c.shape));
  for (index_t i = 0; i < out.size(); ++i) {
    const Dims idx = unravel(i, out.shape);
    out.v[static_cast<std::size_t>(i)] = f(a.at(idx), b.at(idx), c.at(idx));
  }
  return out;
}

/// Result axis i is operand axis perm[i].
inline Ref permute(const Ref& a, const std::vector<int>& perm) {
  Dims s(a.shape.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    s[i] = a.shape[static_cast<std::size_t>(perm[i])];
  }
  Ref out(s);
  Dims src(a.shape.size());
  for (index_t i = 0; i < out.size(); ++i) {
    const Dims idx = unravel(i, s);
    for (std::size_t k = 0; k < perm.size(); ++k) {
      src[static_cast<std::size_t>(perm[k])] = idx[k];
    }
    out.v[static_cast<std::size_t>(i)] = a.at(src);
  }
  return out;
}

inline Ref transpose(const Ref& a) {
  return permute(a, {1, 0});
}

inline Ref slice(const Ref& a, int axis, index_t start, index_t stop, index_t step = 1) {
  const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + a.rank() : axis);
  Dims s = a.shape;
  s[ax] = stop > start ? (stop - start + step - 1) / step : 0;
  Ref out(s);
  for (index_t i = 0; i < out.size(); ++i) {
    Dims idx = unravel(i, s);
    idx[ax] = start + idx[ax] * step;
    out.v[static_cast<std::size_t>(i)] = a.at(idx);
  }
  return out;
}

inline Ref reshape(const Ref& a, const Dims& s) {
  if (numel(s) != a.size()) {
    throw std::logic_error("fgtest::reshape: element count differs");
  }
  return Ref(s, a.v);
}

inline Ref broadcast_to(const Ref& a, const Dims& s) {
  Ref out(s);
  for (index_t i = 0; i < out.size(); ++i) {
    out.v[static_cast<std::size_t>(i)] = a.at(unravel(i, s));
  }
  return out;
}

enum class Red { sum, mean, max, min, prod, argmax, argmin };

inline const char* red_name(Red r) {
  switch (r) {
    case Red::sum:
      return "sum";
    case Red::mean:
      return "mean";
    case Red::max:
      return "max";
    case Red::min:
      return "min";
    case Red::prod:
      return "prod";
    case Red::argmax:
      return "argmax";
    case Red::argmin:
      return "argmin";
  }
  return "?";
}

/// Reduces the values vals[0..n) (in order) by `op`, in double (long double for sums).
inline double reduce_values(const std::vector<double>& vals, Red op) {
  const std::size_t n = vals.size();
  switch (op) {
    case Red::sum:
    case Red::mean: {
      long double s = 0;
      for (double x : vals) {
        s += x;
      }
      if (op == Red::mean) {
        return n == 0 ? std::numeric_limits<double>::quiet_NaN()
                      : static_cast<double>(s / static_cast<long double>(n));
      }
      return static_cast<double>(s);
    }
    case Red::prod: {
      long double p = 1;
      for (double x : vals) {
        p *= x;
      }
      return static_cast<double>(p);
    }
    case Red::max:
    case Red::min: {
      double best = op == Red::max ? -std::numeric_limits<double>::infinity()
                                   : std::numeric_limits<double>::infinity();
      for (double x : vals) {
        if (std::isnan(x)) {
          return x;
        }
        best = op == Red::max ? std::max(best, x) : std::min(best, x);
      }
      return best;
    }
    case Red::argmax:
    case Red::argmin: {
      std::size_t best = 0;
      for (std::size_t i = 0; i < n; ++i) {
        if (std::isnan(vals[i])) {
          return static_cast<double>(i);
        }
        if (op == Red::argmax ? vals[i] > vals[best] : vals[i] < vals[best]) {
          best = i;
        }
      }
      return static_cast<double>(best);
    }
  }
  return 0;
}

/// Full reduction (rank-0 result).
inline Ref reduce_all(const Ref& a, Red op) {
  return Ref(Dims{}, std::vector<double>{reduce_values(a.v, op)});
}

/// Reduction over one axis (negative counts from the end), optionally keeping it with extent 1.
inline Ref reduce_axis(const Ref& a, Red op, int axis, bool keep = false) {
  const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + a.rank() : axis);
  Dims kept = a.shape;
  kept[ax] = 1;
  Ref out(kept);
  std::vector<double> vals(static_cast<std::size_t>(a.shape[ax]));
  for (index_t i = 0; i < out.size(); ++i) {
    Dims idx = unravel(i, kept);
    for (index_t l = 0; l < a.shape[ax]; ++l) {
      idx[ax] = l;
      vals[static_cast<std::size_t>(l)] = a.at(idx);
    }
    out.v[static_cast<std::size_t>(i)] = reduce_values(vals, op);
  }
  if (!keep) {
    out.shape.erase(out.shape.begin() + static_cast<std::ptrdiff_t>(ax));
  }
  return out;
}

/// Sum of |x| over the values a reduction result depends on: the scale of its rounding error.
inline Ref abs_sum_axis(const Ref& a, int axis, bool keep = false) {
  return reduce_axis(map1(a, [](double x) { return std::abs(x); }), Red::sum, axis, keep);
}

/// (M,K)@(K,N), or batched with rank-3 operands (a rank-2 operand or batch extent 1 is shared).
/// Also returns, in *scale, sum_k |a||b| per output (the scale of its rounding error).
inline Ref matmul(const Ref& a, const Ref& b, Ref* scale = nullptr) {
  const int ra = a.rank(), rb = b.rank();
  const index_t m = a.shape[static_cast<std::size_t>(ra - 2)],
                k = a.shape[static_cast<std::size_t>(ra - 1)];
  const index_t n = b.shape[static_cast<std::size_t>(rb - 1)];
  if (b.shape[static_cast<std::size_t>(rb - 2)] != k) {
    throw std::logic_error("fgtest::matmul: inner dimensions differ");
  }
  const index_t ba = ra == 3 ? a.shape[0] : 1, bb = rb == 3 ? b.shape[0] : 1;
  const index_t batch = std::max(ba, bb);
  const bool batched = ra == 3 || rb == 3;
  Dims s = batched ? Dims{batch, m, n} : Dims{m, n};
  Ref out(s);
  if (scale) {
    *scale = Ref(s);
  }
  for (index_t q = 0; q < batch; ++q) {
    const index_t qa = ba == 1 ? 0 : q, qb = bb == 1 ? 0 : q;
    for (index_t i = 0; i < m; ++i) {
      for (index_t j = 0; j < n; ++j) {
        long double acc = 0, mag = 0;
        for (index_t l = 0; l < k; ++l) {
          const double x = a.v[static_cast<std::size_t>((qa * m + i) * k + l)];
          const double y = b.v[static_cast<std::size_t>((qb * k + l) * n + j)];
          acc += static_cast<long double>(x) * y;
          mag += std::abs(static_cast<long double>(x) * y);
        }
        const std::size_t o = static_cast<std::size_t>((q * m + i) * n + j);
        out.v[o] = static_cast<double>(acc);
        if (scale) {
          scale->v[o] = static_cast<double>(mag);
        }
      }
    }
  }
  return out;
}

/// Rounds every value to T and back (a reference for values stored as T).
template <class T>
Ref round_to(const Ref& a) {
  return map1(a, [](double x) { return static_cast<double>(static_cast<T>(x)); });
}

// ---------------------------------------------------------------------------------------------
// Comparison: an empty string when `got` matches `want`, else a description of the first
// mismatches. Use as CHECK(fgtest::compare(got, want, rtol, atol) == "").

/// |got - want| <= atol + rtol * |want| element-wise (NaN matches only NaN; infinities must match).
inline std::string compare(const Ref& got, const Ref& want, double rtol, double atol) {
  if (got.shape != want.shape) {
    return "shape " + dims_str(got.shape) + " != expected " + dims_str(want.shape);
  }
  std::ostringstream msg;
  msg.precision(17);
  int bad = 0;
  index_t bad_total = 0;
  for (index_t i = 0; i < got.size(); ++i) {
    const double g = got.v[static_cast<std::size_t>(i)], w = want.v[static_cast<std::size_t>(i)];
    bool ok;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = g == w;
    } else {
      ok = std::abs(g - w) <= atol + rtol * std::abs(w);
    }
    if (!ok) {
      ++bad_total;
      if (bad++ < 5) {
        msg << "at " << dims_str(unravel(i, got.shape)) << " (flat " << i << "): got " << g
            << ", expected " << w << "; ";
      }
    }
  }
  if (bad_total) {
    msg << bad_total << " of " << got.size() << " elements differ (shape " << dims_str(got.shape)
        << ", rtol " << rtol << ", atol " << atol << ")";
    return msg.str();
  }
  return "";
}

/// Per-element tolerance: |got - want| <= tol[idx] (tol the same shape as want).
inline std::string compare_scaled(const Ref& got, const Ref& want, const Ref& tol) {
  if (got.shape != want.shape || tol.shape != want.shape) {
    return "shape " + dims_str(got.shape) + " != expected " + dims_str(want.shape);
  }
  std::ostringstream msg;
  msg.precision(17);
  index_t bad_total = 0;
  for (index_t i = 0; i < got.size(); ++i) {
    const std::size_t u = static_cast<std::size_t>(i);
    const double g = got.v[u], w = want.v[u];
    const bool ok = (std::isnan(w) || std::isnan(g)) ? (std::isnan(w) && std::isnan(g))
                                                     : std::abs(g - w) <= tol.v[u];
    if (!ok && bad_total++ < 5) {
      msg << "at " << dims_str(unravel(i, got.shape)) << ": got " << g << ", expected " << w
          << " (tolerance " << tol.v[u] << "); ";
    }
  }
  if (bad_total) {
    msg << bad_total << " of " << got.size() << " elements differ (shape " << dims_str(got.shape)
        << ")";
    return msg.str();
  }
  return "";
}

inline std::string compare_exact(const Ref& got, const Ref& want) {
  return compare(got, want, 0.0, 0.0);
}

template <class T, int R>
std::string compare(const fg::Tensor<T, R>& got, const Ref& want, double rtol, double atol) {
  return compare(ref_of(got), want, rtol, atol);
}
template <class T, int R>
std::string compare_exact(const fg::Tensor<T, R>& got, const Ref& want) {
  return compare(ref_of(got), want, 0.0, 0.0);
}

/// Every element finite (no poison left, no overflow).
template <class T, int R>
bool all_finite(const fg::Tensor<T, R>& t) {
  for (const auto& x : t.to_vector()) {
    if (!std::isfinite(static_cast<double>(x))) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Random data (host-side, from a seeded std::mt19937; never all zeros)

/// n values uniform in [lo, hi) (integers: uniform in [lo, hi]).
template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937& rng, double lo = -1.0, double hi = 1.0) {
  std::vector<T> v(n);
  if constexpr (std::is_same_v<T, bool>) {
    std::bernoulli_distribution d(0.5);
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = d(rng);
    }
  } else if constexpr (std::is_integral_v<T>) {
    std::uniform_int_distribution<long long> d(static_cast<long long>(lo),
                                               static_cast<long long>(hi));
    for (auto& x : v) {
      x = static_cast<T>(d(rng));
    }
  } else {
    std::uniform_real_distribution<double> d(lo, hi);
    for (auto& x : v) {
      x = static_cast<T>(d(rng));
    }
  }
  return v;
}

/// A tensor of the given shape filled from random_values (no kernel launched).
template <class T, int R>
fg::Tensor<T, R> random_tensor(const fg::Shape<R>& shape, std::mt19937& rng, double lo = -1.0,
                               double hi = 1.0) {
  fg::Tensor<T, R> t(shape);
  if constexpr (std::is_same_v<T, bool>) {
    const auto v = random_values<T>(static_cast<std::size_t>(shape.size()), rng, lo, hi);
    std::unique_ptr<bool[]> host(new bool[v.size() + 1]);
    for (std::size_t i = 0; i < v.size(); ++i) {
      host[i] = v[i];
    }
    t.copy_from(std::span<const bool>(host.get(), v.size()));
  } else {
    const auto v = random_values<T>(static_cast<std::size_t>(shape.size()), rng, lo, hi);
    t.copy_from(std::span<const T>(v));
  }
  return t;
}

template <class T, int R>
fg::Tensor<T, R> random_tensor(const Dims& shape, std::mt19937& rng, double lo = -1.0,
                               double hi = 1.0) {
  return random_tensor<T, R>(shape_of<R>(shape), rng, lo, hi);
}

/// A tensor holding `values` (no kernel launched).
template <class T, int R>
fg::Tensor<T, R> tensor_from(const fg::Shape<R>& shape, const std::vector<T>& values) {
  fg::Tensor<T, R> t(shape);
  t.copy_from(std::span<const T>(values));
  return t;
}

/// What poisoned() fills a tensor with: NaN for floating point, an unlikely sentinel for integers,
/// `true` for bool (tests of bool outputs also run with filled(..., false)).
template <class T>
T poison_value() {
  if constexpr (std::is_floating_point_v<T>) {
    return std::numeric_limits<T>::quiet_NaN();
  } else if constexpr (std::is_same_v<T, bool>) {
    return true;
  } else if constexpr (sizeof(T) >= 8) {
    return static_cast<T>(-0x5A5A5A5A5A5A5A5LL);
  } else {
    return static_cast<T>(-0x5A5A5A5);
  }
}

/// A tensor of `shape` with every element `value`, written from the host (no kernel launched).
template <class T, int R>
fg::Tensor<T, R> filled(const fg::Shape<R>& shape, T value) {
  fg::Tensor<T, R> t(shape);
  const std::size_t n = static_cast<std::size_t>(shape.size());
  if constexpr (std::is_same_v<T, bool>) {
    std::unique_ptr<bool[]> host(new bool[n + 1]);
    for (std::size_t i = 0; i < n; ++i) {
      host[i] = value;
    }
    t.copy_from(std::span<const bool>(host.get(), n));
  } else {
    const std::vector<T> host(n, value);
    t.copy_from(std::span<const T>(host));
  }
  return t;
}

/// A tensor of `shape` full of NaN (integers: a sentinel), so an element a kernel forgot to write
/// shows up. Assigning an expression of the same shape to it writes in place.
template <class T, int R>
fg::Tensor<T, R> poisoned(const fg::Shape<R>& shape) {
  return filled<T, R>(shape, poison_value<T>());
}
template <class T, int R>
fg::Tensor<T, R> poisoned(const Dims& shape) {
  return poisoned<T, R>(shape_of<R>(shape));
}

/// A random shape of rank R: extents in [1, max_extent], each 1 with probability p_one.
template <int R>
Dims random_dims(std::mt19937& rng, index_t max_extent, double p_one = 0.2) {
  std::uniform_int_distribution<index_t> e(1, max_extent);
  std::bernoulli_distribution one(p_one);
  Dims d(static_cast<std::size_t>(R));
  for (auto& x : d) {
    x = one(rng) ? 1 : e(rng);
  }
  return d;
}

/// The 1-D sizes every sweep covers: empty, tiny, around vector widths and chunk sizes, and large.
inline const std::vector<index_t>& sweep_sizes() {
  static const std::vector<index_t> sizes = {0,   1,   15,   16,   17,   127,
                                             128, 129, 4095, 4096, 4097, 100000};
  return sizes;
}

/// Kernel and GEMM counters, read at construction; launches()/gemms() give the deltas since.
struct LaunchCounter {
  std::int64_t k0 = fg::stats::kernel_launches();
  std::int64_t g0 = fg::stats::gemm_calls();
  std::int64_t launches() const { return fg::stats::kernel_launches() - k0; }
  std::int64_t gemms() const { return fg::stats::gemm_calls() - g0; }
  void restart() {
    k0 = fg::stats::kernel_launches();
    g0 = fg::stats::gemm_calls();
  }
};

/// The message of the fusegrad exception `f()` throws as type E ("" when it throws nothing or
/// something else, "<wrong type>" for another exception).
template <class E, class F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception type: ") + e.what() + ">";
  }
  return "<nothing thrown>";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// View operands

enum class Layout { contiguous, permuted, strided, broadcast };

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous:
      return "contiguous";
    case Layout::permuted:
      return "permuted";
    case Layout::strided:
      return "strided";
    case Layout::broadcast:
      return "broadcast";
  }
  return "?";
}

/// Layouts of a rank-3 view operand: a plain tensor, a permutation, a slice with step and offset,
/// and a broadcast (stride-0) axis.
/// A rank-3 operand of shape `s` read through a view of the given layout; keeps its storage.
template <class T>
struct Operand {
  fg::Tensor<T, 3> storage;
  fg::Leaf<T, 3> view;
  Ref ref;
};

template <class T>
Operand<T> make_operand(const Dims& s, Layout layout, std::mt19937& rng, double lo, double hi) {
  Operand<T> op;
  switch (layout) {
    case Layout::contiguous:
      op.storage = random_tensor<T, 3>(s, rng, lo, hi);
      op.view = op.storage.view();
      op.ref = ref_of(op.storage);
      break;
    case Layout::permuted:  // view axis i = storage axis perm[i]
      op.storage = random_tensor<T, 3>(Dims{s[1], s[2], s[0]}, rng, lo, hi);
      op.view = fg::permute(op.storage, {2, 0, 1});
      op.ref = permute(ref_of(op.storage), {2, 0, 1});
      break;
    case Layout::strided:  // every other row of axis 1, an offset window of axis 2
    {
      const index_t stop = s[1] > 0 ? 2 * s[1] : 1;
      op.storage = random_tensor<T, 3>(Dims{s[0], 2 * s[1] + 1, s[2] + 3}, rng, lo, hi);
      op.view = fg::slice(fg::slice(op.storage, 1, 1, stop, 2), 2, 2, 2 + s[2]);
      op.ref = slice(slice(ref_of(op.storage), 1, 1, stop, 2), 2, 2, 2 + s[2]);
      break;
    }
    case Layout::broadcast:  // axis 1 stored once
      op.storage = random_tensor<T, 3>(Dims{s[0], 1, s[2]}, rng, lo, hi);
      op.view = fg::broadcast_to(op.storage, {s[0], s[1], s[2]});
      op.ref = broadcast_to(ref_of(op.storage), s);
      break;
  }
  REQUIRE(dims_of(op.view.shape()) == s);
  REQUIRE(op.ref.shape == s);
  return op;
}

/// Replaces every stored value x by T(f(x)), and the reference likewise (the view reads them).
template <class T>
void transform_operand(Operand<T>& op, Fn1 f) {
  auto host = op.storage.to_vector();
  for (auto& x : host) {
    x = static_cast<T>(f(static_cast<double>(x)));
  }
  op.storage.copy_from(std::span<const T>(host));
  op.ref = round_to<T>(map1(op.ref, f));
}

// ---------------------------------------------------------------------------------------------
// Evaluating into poisoned outputs, and checking the outcome. The templates hold no Catch
// assertions (they are instantiated once per expression type); the checks are plain functions.

/// What evaluating one expression into a poisoned tensor gave.
struct Outcome {
  Ref got;
  std::int64_t launches = 0;
  bool in_place = false;  // written into the poisoned tensor's own storage
};

/// Evaluates `e` into a poisoned Tensor<T, R> of e's shape (which must be written in place).
template <class T, int R, class E>
Outcome run(const E& e) {
  fg::Tensor<T, R> out = poisoned<T, R>(e.shape());
  const T* storage = out.data();
  LaunchCounter count;
  out = e;
  Outcome o;
  o.launches = count.launches();
  o.in_place = out.data() == storage;
  o.got = ref_of(out);
  return o;
}

/// Checks an outcome: in place, `launches` kernels (default: one, none for an empty result), and
/// every element within atol + rtol * |want| of the reference.
inline void expect(const Outcome& o, const Ref& want, double rtol, double atol,
                   const char* what = "", std::int64_t launches = -1) {
  INFO(what);
  CHECK(o.in_place);
  CHECK(o.launches == (launches >= 0 ? launches : (want.size() > 0 ? 1 : 0)));
  CHECK(compare(o.got, want, rtol, atol) == "");
}

inline void expect_exact(const Outcome& o, const Ref& want, const char* what = "",
                         std::int64_t launches = -1) {
  expect(o, want, 0.0, 0.0, what, launches);
}

}  // namespace fgtest
