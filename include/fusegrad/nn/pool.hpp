// fusegrad/nn/pool.hpp — max and average pooling over the H and W axes of NCHW.
//
//   max_pool2d(x, kernel, stride = kernel, padding = 0)   x (N, C, H, W) -> (N, C, OH, OW)
//   avg_pool2d(x, kernel, stride = kernel, padding = 0)   OH = (H + 2 ph - KH) / sh + 1, OW likewise
//
// Each argument is an int or {h, w}; padding at most half the kernel (PyTorch's rule: every window
// holds an input element). Max pooling ignores the padding and propagates NaN; average pooling
// counts the padding as zeros (PyTorch's count_include_pad = True). Both are element-wise nodes:
// the pooling fuses with what reads it and with what it reads (`max_pool2d(relu(x), 2)` is one
// kernel). Backward (no atomics, the same bits every run):
//   max: each input element receives g of the windows whose first maximum (in row-major window
//        order, the `max` reduction's convention) it is; the window is scanned again, not stored
//        (a lazy input is evaluated first: one kernel, so that windows are scanned in memory);
//   avg: each input element receives Σ g / (KH·KW) over the windows that hold it (a gather).
#pragma once

#include <algorithm>
#include <string>

#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/nn/conv.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// The geometry of one pooling (plain numbers, for device code).
struct PoolGeometry {
  index_t height = 0, width = 0;  // of the input
  index_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  index_t oh = 0, ow = 0;

  /// The first output row (or column) whose window holds input row i, given kernel k, stride s,
  /// padding p: windows start at o·s - p and hold k rows.
  FG_HOST_DEVICE static index_t first_window(index_t i, index_t k, index_t s, index_t p) {
    const index_t top = i + p - k + 1;  // the window must start at or after this row
    return top <= 0 ? 0 : (top + s - 1) / s;
  }
  /// 2x2 windows at stride 2 without padding: every window lies in the input (OH = H / 2).
  bool is_pair() const { return kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0; }
  bool operator==(const PoolGeometry&) const = default;
};

/// The position (ih · W + iw) of the first maximum of output (n, c, oh, ow)'s window, NaN first if
/// any; and its value.
template <class X>
FG_HOST_DEVICE void window_max(const X& x, const PoolGeometry& g, index_t n, index_t c, index_t oh, index_t ow,
                               typename X::value_type& best, index_t& where) {
  using V = typename X::value_type;
  bool found = false;
  best = V(0);
  where = -1;
  for (index_t i = 0; i < g.kh; ++i) {
    const index_t ih = oh * g.sh - g.ph + i;
    if (ih < 0 || ih >= g.height) {
      continue;
    }
    for (index_t j = 0; j < g.kw; ++j) {
      const index_t iw = ow * g.sw - g.pw + j;
      if (iw < 0 || iw >= g.width) {
        continue;
      }
      const V v = static_cast<V>(x.at(Shape<4>({n, c, ih, iw})));
      if (!found || v > best || (v != v && best == best)) {
        found = true;
        best = v;
        where = ih * g.width + iw;
      }
    }
  }
}

/// The first maximum of the 2x2 window (a b / c d) in window_max's order, NaN first: its position
/// 0..3 (a, b, c, d) and value. Unrolled and free of branches for the 2x2 / stride 2 fast paths.
template <class V>
FG_HOST_DEVICE int first_max4(V a, V b, V c, V d, V& best) {
  best = a;
  int where = 0;
  const V v[3] = {b, c, d};
  FG_UNROLL
  for (int k = 0; k < 3; ++k) {
    const bool better = v[k] > best || (v[k] != v[k] && best == best);
    best = better ? v[k] : best;
    where = better ? k + 1 : where;
  }
  return where;
}

/// max_pool2d (Max = true) or avg_pool2d (Max = false) of x.
template <class X, bool Max>
struct Pool2d : ExprBase<Pool2d<X, Max>> {
  using value_type = typename X::value_type;
  static constexpr int rank = 4;
  static constexpr bool may_be_linear = false;
  X x;
  PoolGeometry geo;
  Shape<4> extents;

  Shape<4> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<4>& index) const {
    if constexpr (Max) {
      value_type best;
      index_t where;
      window_max(x, geo, index[0], index[1], index[2], index[3], best, where);
      return best;
    } else {
      value_type total(0);
      for (index_t i = 0; i < geo.kh; ++i) {
        const index_t ih = index[2] * geo.sh - geo.ph + i;
        if (ih < 0 || ih >= geo.height) {
          continue;
        }
        for (index_t j = 0; j < geo.kw; ++j) {
          const index_t iw = index[3] * geo.sw - geo.pw + j;
          if (iw >= 0 && iw < geo.width) {
            total += static_cast<value_type>(x.at(Shape<4>({index[0], index[1], ih, iw})));
          }
        }
      }
      return total / static_cast<value_type>(geo.kh * geo.kw);
    }
  }
  /// Row cursor (node.hpp): output row (n, c, oh) reads the window's input rows through their own
  /// cursors (up to `cursor_rows` of them; taller windows use at()), in at()'s order, so the values
  /// are the same bits. 2x2 windows at stride 2 without padding (the common pooling) are unrolled.
  static constexpr index_t cursor_rows = 4;
  template <class C>
  struct Row {
    C rows[cursor_rows];
    unsigned valid = 0;  // bit i: window row i lies in the input
    bool fallback = false;
    bool pair = false;  // 2x2, stride 2, no padding, both window rows in the input
    const Pool2d* self;
    Shape<4> index;
    value_type operator()(index_t ow) const {
      const PoolGeometry& g = self->geo;
      if (pair) {
        const index_t w = 2 * ow;
        const auto a = static_cast<value_type>(rows[0](w)), b = static_cast<value_type>(rows[0](w + 1));
        const auto c = static_cast<value_type>(rows[1](w)), d = static_cast<value_type>(rows[1](w + 1));
        if constexpr (Max) {
          value_type best;
          first_max4(a, b, c, d, best);
          return best;
        } else {
          return (((value_type(0) + a) + b) + c + d) / value_type(4);
        }
      }
      if (fallback) {
        Shape<4> i = index;
        i[3] = ow;
        return self->at(i);
      }
      value_type acc(0);
      bool found = false;
      for (index_t i = 0; i < g.kh; ++i) {
        if (!((valid >> i) & 1u)) {
          continue;
        }
        for (index_t j = 0; j < g.kw; ++j) {
          const index_t iw = ow * g.sw - g.pw + j;
          if (iw < 0 || iw >= g.width) {
            continue;
          }
          const auto v = static_cast<value_type>(rows[i](iw));
          if constexpr (Max) {
            if (!found || v > acc || (v != v && acc == acc)) {
              found = true;
              acc = v;
            }
          } else {
            acc += v;
          }
        }
      }
      return Max ? acc : acc / static_cast<value_type>(g.kh * g.kw);
    }
  };
  auto row(const Shape<4>& index) const {
    auto cursor = [&](index_t i) {  // the cursor of window row i, clamped into the input
      const index_t ih = std::min(std::max<index_t>(index[2] * geo.sh - geo.ph + i, 0), geo.height - 1);
      return fusegrad::FG_BACKEND_NS::detail::row_cursor(x, Shape<4>({index[0], index[1], ih, 0}));
    };
    using C = decltype(cursor(0));
    Row<C> r{{cursor(0), cursor(1), cursor(2), cursor(3)}, 0u, geo.kh > cursor_rows, false, this, index};
    for (index_t i = 0; i < geo.kh && i < cursor_rows; ++i) {
      const index_t ih = index[2] * geo.sh - geo.ph + i;
      r.valid |= (ih >= 0 && ih < geo.height ? 1u : 0u) << i;
    }
    r.pair = geo.is_pair() && r.valid == 3u;
    return r;
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    return Pool2d<decltype(px), Max>{{}, px, geo, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return x.conflicts_with(b, e, false); }
};

/// The gradient of a pooling with respect to its input x: a gather over the windows holding each
/// element (see the file comment). (N, C, H, W) from g (N, C, OH, OW).
template <class G, class X, bool Max>
struct Pool2dGrad : ExprBase<Pool2dGrad<G, X, Max>> {
  using value_type = typename G::value_type;
  static constexpr int rank = 4;
  static constexpr bool may_be_linear = false;
  G g;
  X x;  // the pooled input (max: to find each window's maximum again)
  PoolGeometry geo;
  Shape<4> extents;

  Shape<4> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<4>& index) const {
    const index_t n = index[0], c = index[1], ih = index[2], iw = index[3];
    value_type total(0);
    const index_t oh_end = (ih + geo.ph) / geo.sh + 1, ow_end = (iw + geo.pw) / geo.sw + 1;
    for (index_t oh = PoolGeometry::first_window(ih, geo.kh, geo.sh, geo.ph); oh < oh_end && oh < geo.oh; ++oh) {
      for (index_t ow = PoolGeometry::first_window(iw, geo.kw, geo.sw, geo.pw); ow < ow_end && ow < geo.ow; ++ow) {
        if constexpr (Max) {
          typename X::value_type best;
          index_t where;
          window_max(x, geo, n, c, oh, ow, best, where);
          if (where == ih * geo.width + iw) {
            total += static_cast<value_type>(g.at(Shape<4>({n, c, oh, ow})));
          }
        } else {
          total += static_cast<value_type>(g.at(Shape<4>({n, c, oh, ow})));
        }
      }
    }
    if constexpr (Max) {
      return total;
    } else {
      return total / static_cast<value_type>(geo.kh * geo.kw);
    }
  }
  /// Row cursor (node.hpp) for max pooling with windows that do not overlap (stride >= kernel, at
  /// most Pool2d::cursor_rows rows): input row ih lies in at most one window row oh, so the g row
  /// and the window's input rows are found once per row; each element then rescans its one window
  /// (in window_max's order: the same result as at()). Other poolings read through at().
  template <class GC, class XC>
  struct Row {
    GC g;
    XC rows[Pool2d<X, Max>::cursor_rows];
    unsigned valid = 0;  // bit i: window row i lies in the input
    index_t row_in_window = -1;  // ih's row in window oh; -1: in no window
    bool fast = false;
    bool pair = false;  // 2x2, stride 2, no padding (PoolGeometry::is_pair)
    const Pool2dGrad* self;
    Shape<4> index;
    value_type operator()(index_t iw) const {
      const PoolGeometry& geo = self->geo;
      if (pair) {
        const index_t ow = iw >> 1, w = 2 * ow;
        if (row_in_window < 0 || ow >= geo.ow) {
          return value_type(0);
        }
        using XV = typename X::value_type;
        XV best;
        const int where = first_max4(static_cast<XV>(rows[0](w)), static_cast<XV>(rows[0](w + 1)),
                                     static_cast<XV>(rows[1](w)), static_cast<XV>(rows[1](w + 1)), best);
        return where == 2 * row_in_window + (iw & 1) ? value_type(0) + static_cast<value_type>(g(ow))
                                                     : value_type(0);
      }
      if (!fast) {
        Shape<4> i = index;
        i[3] = iw;
        return self->at(i);
      }
      const index_t t = iw + geo.pw, ow = t / geo.sw, column = t - ow * geo.sw;
      if (row_in_window < 0 || column >= geo.kw || ow >= geo.ow) {
        return value_type(0);
      }
      typename X::value_type best(0);
      bool found = false;
      index_t best_i = -1, best_j = -1;
      for (index_t i = 0; i < geo.kh; ++i) {
        if (!((valid >> i) & 1u)) {
          continue;
        }
        for (index_t j = 0; j < geo.kw; ++j) {
          const index_t w = ow * geo.sw - geo.pw + j;
          if (w < 0 || w >= geo.width) {
            continue;
          }
          const auto v = static_cast<typename X::value_type>(rows[i](w));
          if (!found || v > best || (v != v && best == best)) {
            found = true;
            best = v;
            best_i = i;
            best_j = j;
          }
        }
      }
      return best_i == row_in_window && best_j == column ? value_type(0) + static_cast<value_type>(g(ow))
                                                        : value_type(0);
    }
  };
  auto row(const Shape<4>& index) const {
    const index_t rows_cap = Pool2d<X, Max>::cursor_rows;
    const bool fast = Max && geo.sh >= geo.kh && geo.sw >= geo.kw && geo.kh <= rows_cap && geo.oh > 0;
    const index_t t = index[2] + geo.ph;
    const index_t oh = fast ? std::min(t / geo.sh, geo.oh - 1) : 0;
    auto x_row = [&](index_t i) {  // window row i of output row oh, clamped into the input
      const index_t ih = std::min(std::max<index_t>(oh * geo.sh - geo.ph + i, 0), geo.height - 1);
      return fusegrad::FG_BACKEND_NS::detail::row_cursor(x, Shape<4>({index[0], index[1], ih, 0}));
    };
    using GC = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(g, index));
    using XC = decltype(x_row(0));
    Row<GC, XC> r{fusegrad::FG_BACKEND_NS::detail::row_cursor(g, Shape<4>({index[0], index[1], oh, 0})),
                  {x_row(0), x_row(1), x_row(2), x_row(3)}, 0u, -1, fast, false, this, index};
    if (fast) {
      const index_t in_window = t - oh * geo.sh;  // ih's row in window oh
      r.row_in_window = t >= 0 && t / geo.sh < geo.oh && in_window < geo.kh ? in_window : -1;
      for (index_t i = 0; i < geo.kh; ++i) {
        const index_t ih = oh * geo.sh - geo.ph + i;
        r.valid |= (ih >= 0 && ih < geo.height ? 1u : 0u) << i;
      }
      r.pair = geo.is_pair() && r.valid == 3u;
    }
    return r;
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pg = g.prepare(plan);
    auto px = x.prepare(plan);
    return Pool2dGrad<decltype(pg), decltype(px), Max>{{}, pg, px, geo, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const {
    return g.conflicts_with(b, e, false) || x.conflicts_with(b, e, false);
  }
};

namespace detail {

inline PoolGeometry pool_geometry(const char* name, const Shape<4>& xs, Extent2 k, Extent2 s, Extent2 p) {
  const auto fail = [&](const std::string& what) {
    throw shape_error(std::string(name) + ": " + what + " (input [N, C, H, W] = " + to_string(xs) + ", kernel {" +
                      std::to_string(k.h) + ", " + std::to_string(k.w) + "}, stride {" + std::to_string(s.h) + ", " +
                      std::to_string(s.w) + "}, padding {" + std::to_string(p.h) + ", " + std::to_string(p.w) + "})");
  };
  if (k.h <= 0 || k.w <= 0) {
    fail("the kernel must be positive");
  }
  if (s.h <= 0 || s.w <= 0) {
    fail("the stride must be positive");
  }
  if (p.h < 0 || p.w < 0 || 2 * p.h > k.h || 2 * p.w > k.w) {
    fail("the padding must be between 0 and half the kernel");
  }
  if (k.h > xs[2] + 2 * p.h || k.w > xs[3] + 2 * p.w) {
    fail("the kernel is larger than the padded input (" + std::to_string(xs[2] + 2 * p.h) + " x " +
         std::to_string(xs[3] + 2 * p.w) + ")");
  }
  PoolGeometry g;
  g.height = xs[2];
  g.width = xs[3];
  g.kh = k.h;
  g.kw = k.w;
  g.sh = s.h;
  g.sw = s.w;
  g.ph = p.h;
  g.pw = p.w;
  g.oh = (g.height + 2 * g.ph - g.kh) / g.sh + 1;
  g.ow = (g.width + 2 * g.pw - g.kw) / g.sw + 1;
  return g;
}

template <bool Max, tensor_expression E>
auto pool_node(const char* name, const E& e, Extent2 kernel, Extent2 stride, Extent2 padding) {
  auto x = as_node(e);
  using X = decltype(x);
  static_assert(X::rank == 4, "max_pool2d, avg_pool2d: the input must have rank 4, (N, C, H, W)");
  static_assert(std::is_floating_point_v<typename X::value_type>,
                "max_pool2d, avg_pool2d: need a floating-point input");
  const auto xs = x.shape();
  const PoolGeometry g = pool_geometry(name, xs, kernel, stride, padding);
  return Pool2d<X, Max>{{}, x, g, Shape<4>({xs[0], xs[1], g.oh, g.ow})};
}

}  // namespace detail

/// The maximum of each window over H and W (padding ignored; NaN propagates). Lazy, element-wise.
/// Example: `fg::Tensor<float, 4> p = fg::nn::max_pool2d(fg::relu(h), 2);  // (N, C, H/2, W/2)`
template <tensor_expression E>
auto max_pool2d(const E& x, Extent2 kernel, Extent2 stride, Extent2 padding = 0) {
  return detail::pool_node<true>("max_pool2d", x, kernel, stride, padding);
}
template <tensor_expression E>
auto max_pool2d(const E& x, Extent2 kernel) {
  return max_pool2d(x, kernel, kernel);
}

/// The mean of each window over H and W, the padding counted as zeros. Lazy, element-wise.
/// Example: `fg::Tensor<float, 4> p = fg::nn::avg_pool2d(h, 3, 2, 1);`
template <tensor_expression E>
auto avg_pool2d(const E& x, Extent2 kernel, Extent2 stride, Extent2 padding = 0) {
  return detail::pool_node<false>("avg_pool2d", x, kernel, stride, padding);
}
template <tensor_expression E>
auto avg_pool2d(const E& x, Extent2 kernel) {
  return avg_pool2d(x, kernel, kernel);
}

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, bool Max, class Tp>
auto record(const Pool2d<X, Max>& p, Tp& tape) {
  auto x = record(p.x, tape);
  return Pool2d<decltype(x), Max>{{}, x, p.geo, p.extents};
}
template <class X, bool Max, class Tp>
bool depends(const Pool2d<X, Max>& p, const Tp& tape) {
  return depends(p.x, tape);
}
template <class X, bool Max>
bool same(const Pool2d<X, Max>& a, const Pool2d<X, Max>& b) {
  return a.extents == b.extents && a.geo == b.geo && same(a.x, b.x);
}
template <class X, bool Max, class G, class Tp>
void backprop(const Pool2d<X, Max>& p, const G& g, Tp& tape) {
  if (!depends(p.x, tape)) {
    return;
  }
  auto gn = as_node(g);
  if constexpr (Max) {
    // The maxima are found again in the input: a lazy input (relu(batch_norm(conv)), say) is
    // evaluated once, in one kernel, rather than once per window that holds each element.
    const auto xv = [&] {
      if constexpr (is_leaf<X>::value) {
        return p.x;
      } else {
        return tape.keep(evaluate(p.x));
      }
    }();
    backprop(p.x, Pool2dGrad<decltype(gn), decltype(xv), Max>{{}, gn, xv, p.geo, p.x.shape()}, tape);
  } else {
    backprop(p.x, Pool2dGrad<decltype(gn), X, Max>{{}, gn, p.x, p.geo, p.x.shape()}, tape);
  }
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
