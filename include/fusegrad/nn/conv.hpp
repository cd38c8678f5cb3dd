// fusegrad/nn/conv.hpp — 2-D convolution over NCHW as an unfolding and one GEMM per batch.
//
//   conv2d(x, w, b, {.stride, .padding, .dilation, .groups})
//       x (N, C, H, W), w (O, C/groups, KH, KW), b (O)  ->  (N, O, OH, OW)
//       OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1, OW likewise; each option an int or {h, w}
//   conv2d(x, w, opts)   the same without a bias
//   Conv2d<T>(C, O, {KH, KW}, seed, opts)   owns weight (O, C/groups, KH, KW) and bias (O), drawn
//                        as nn::Linear draws its own (He-uniform, U(±1/√fan_in), fan_in =
//                        C/groups·KH·KW); a module (nn/module.hpp): fields "weight", "bias"
//
// Forward (the fusion contract): unfold(x), the im2col matrix (N, groups, C/groups·KH·KW, OH·OW),
// is one kernel that gathers x (zeros in the padding); the weights, a free view as (groups, O/groups,
// C/groups·KH·KW), multiply it in one GEMM call over the batch axes (the weights shared by the N
// images); the product is (N, groups, O/groups, OH·OW), which is NCHW already, so the bias and any
// element-wise activation around conv2d(...) fuse into one kernel after the GEMM:
//   relu(conv2d(x, w, b, {.padding = 1}))  ->  1 unfolding + 1 GEMM + 1 element-wise kernel.
// Backward, derived by the rules that exist: the GEMM's (dW: one GEMM over the batch, summed over
// the images; dcols: one GEMM), then fold(dcols), the transpose of the unfolding, as a gather: each
// input element sums the columns that read it, in a fixed order (the same bits every run, no
// atomics). The bias gets the sum of g over N, H, W.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "fusegrad/expr/elementwise.hpp"
#include "fusegrad/expr/matmul.hpp"
#include "fusegrad/expr/view.hpp"
#include "fusegrad/nn/init.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace nn {

/// A pair of extents along H and W, from one number (both) or {h, w}.
struct Extent2 {
  index_t h = 0;
  index_t w = 0;
  constexpr Extent2(index_t both) : h(both), w(both) {}  // NOLINT: an int is both extents
  constexpr Extent2(index_t eh, index_t ew) : h(eh), w(ew) {}
};

/// conv2d's options, PyTorch's defaults: `{.stride = 2, .padding = {1, 0}}`.
struct Conv2dOptions {
  Extent2 stride = 1;
  Extent2 padding = 0;
  Extent2 dilation = 1;
  index_t groups = 1;
};

/// The geometry of one convolution: everything the unfolding and its transpose compute indices
/// from (plain numbers: device code cannot ask a node for its shape).
struct ConvGeometry {
  index_t channels = 0, height = 0, width = 0;  // of the input (C, H, W)
  index_t groups = 1;
  index_t kh = 1, kw = 1;                       // kernel
  index_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  index_t oh = 0, ow = 0;                       // output

  FG_HOST_DEVICE index_t group_channels() const { return channels / groups; }
  FG_HOST_DEVICE index_t window() const { return kh * kw; }
  bool operator==(const ConvGeometry&) const = default;
};

/// unfold(x): cols[n, g, k, oh, ow] = x[n, g·C/G + k / (KH·KW), ih, iw], 0 in the padding, where
/// k % (KH·KW) = i·KW + j picks the kernel tap, ih = oh·sh - ph + i·dh, iw = ow·sw - pw + j·dw.
/// (N, G, C/G·KH·KW, OH, OW); conv2d reads it as (N, G, C/G·KH·KW, OH·OW), the same memory.
template <class X>
struct Unfold : ExprBase<Unfold<X>> {
  using value_type = typename X::value_type;
  static constexpr int rank = 5;
  static constexpr bool may_be_linear = false;
  X x;
  ConvGeometry geo;
  Shape<5> extents;

  Shape<5> shape() const { return extents; }
  /// The input row read by row (n, g, k, oh), or -1 when it lies in the padding; the channel and
  /// the tap's column offset.
  FG_HOST_DEVICE index_t source_row(const Shape<5>& index, index_t& c, index_t& column) const {
    const index_t k = index[2];
    c = index[1] * geo.group_channels() + k / geo.window();
    const index_t tap = k % geo.window();
    column = (tap % geo.kw) * geo.dw - geo.pw;
    const index_t ih = index[3] * geo.sh - geo.ph + (tap / geo.kw) * geo.dh;
    return ih < 0 || ih >= geo.height ? -1 : ih;
  }
  FG_HOST_DEVICE value_type at(const Shape<5>& index) const {
    index_t c, column;
    const index_t ih = source_row(index, c, column);
    const index_t iw = index[4] * geo.sw + column;
    if (ih < 0 || iw < 0 || iw >= geo.width) {
      return value_type(0);
    }
    return static_cast<value_type>(x.at(Shape<4>({index[0], c, ih, iw})));
  }
  /// Row cursor (node.hpp): row (n, g, k, oh) reads one input row (or none: zeros).
  template <class C>
  struct Row {
    C x;
    index_t ih, column, sw, width;
    value_type operator()(index_t ow) const {
      const index_t iw = ow * sw + column;
      return ih < 0 || iw < 0 || iw >= width ? value_type(0) : static_cast<value_type>(x(iw));
    }
  };
  auto row(const Shape<5>& index) const {
    index_t c, column;
    const index_t ih = source_row(index, c, column);
    using C = decltype(fusegrad::FG_BACKEND_NS::detail::row_cursor(x, Shape<4>()));
    return Row<C>{fusegrad::FG_BACKEND_NS::detail::row_cursor(x, Shape<4>({index[0], c, ih < 0 ? 0 : ih, 0})), ih,
                  column, geo.sw, geo.width};
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto px = x.prepare(plan);
    return Unfold<decltype(px)>{{}, px, geo, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return x.conflicts_with(b, e, false); }
};

/// fold(g), the transpose of unfold: dx[n, c, ih, iw] = Σ over the taps (i, j) and output
/// positions (oh, ow) that read (ih, iw) of g[n, g, k, oh, ow], taps in increasing order.
/// (N, C, H, W) from g (N, G, C/G·KH·KW, OH, OW).
template <class G>
struct Fold : ExprBase<Fold<G>> {
  using value_type = typename G::value_type;
  static constexpr int rank = 4;
  static constexpr bool may_be_linear = false;
  G g;
  ConvGeometry geo;
  Shape<4> extents;

  Shape<4> shape() const { return extents; }
  FG_HOST_DEVICE value_type at(const Shape<4>& index) const {
    const index_t c = index[1], ih = index[2], iw = index[3];
    const index_t group = c / geo.group_channels();
    const index_t k0 = (c % geo.group_channels()) * geo.window();
    value_type total(0);
    for (index_t i = 0; i < geo.kh; ++i) {
      const index_t rows = ih + geo.ph - i * geo.dh;  // = oh · sh for the output row that reads it
      if (rows < 0 || rows % geo.sh != 0 || rows / geo.sh >= geo.oh) {
        continue;
      }
      for (index_t j = 0; j < geo.kw; ++j) {
        const index_t cols = iw + geo.pw - j * geo.dw;
        if (cols < 0 || cols % geo.sw != 0 || cols / geo.sw >= geo.ow) {
          continue;
        }
        total += static_cast<value_type>(g.at(Shape<5>({index[0], group, k0 + i * geo.kw + j, rows / geo.sh, cols / geo.sw})));
      }
    }
    return total;
  }
  /// Row cursor (node.hpp): row (n, c, ih) reads the g rows of its taps, found once (kernels of
  /// up to `cursor_taps` taps; larger ones read through at()). The same sums in the same order.
  static constexpr index_t cursor_taps = 16;
  template <class C>
  struct Row {
    C taps[cursor_taps];  // tap i·KW + j: g row (n, group, k0 + i·KW + j, oh_i)
    unsigned valid = 0;   // bit i: kernel row i reads an output row
    bool fallback = false;
    const Fold* self;
    Shape<4> index;
    value_type operator()(index_t iw) const {
      const ConvGeometry& geo = self->geo;
      if (fallback) {
        Shape<4> i = index;
        i[3] = iw;
        return self->at(i);
      }
      value_type total(0);
      for (index_t i = 0; i < geo.kh; ++i) {
        if (!((valid >> i) & 1u)) {
          continue;
        }
        for (index_t j = 0; j < geo.kw; ++j) {
          const index_t cols = iw + geo.pw - j * geo.dw;
          const index_t ow = geo.sw == 1 ? cols : cols / geo.sw;
          if (cols < 0 || (geo.sw != 1 && cols % geo.sw != 0) || ow >= geo.ow) {
            continue;
          }
          total += static_cast<value_type>(taps[i * geo.kw + j](ow));
        }
      }
      return total;
    }
  };
  auto row(const Shape<4>& index) const {
    const index_t c = index[1], ih = index[2];
    const index_t group = geo.groups > 0 ? c / geo.group_channels() : 0;
    const index_t k0 = geo.groups > 0 ? (c % geo.group_channels()) * geo.window() : 0;
    const bool fallback = geo.window() > cursor_taps;
    auto tap = [&](index_t t) {  // tap t's g row (any row when the tap reads none)
      const index_t i = t / geo.kw, rows = ih + geo.ph - i * geo.dh;
      const bool reads = !fallback && t < geo.window() && rows >= 0 && rows % geo.sh == 0 && rows / geo.sh < geo.oh;
      return fusegrad::FG_BACKEND_NS::detail::row_cursor(
          g, Shape<5>({index[0], group, reads ? k0 + t : 0, reads ? rows / geo.sh : 0, 0}));
    };
    using C = decltype(tap(0));
    Row<C> r{{tap(0), tap(1), tap(2), tap(3), tap(4), tap(5), tap(6), tap(7), tap(8), tap(9), tap(10), tap(11),
              tap(12), tap(13), tap(14), tap(15)},
             0u, fallback, this, index};
    for (index_t i = 0; i < geo.kh && !fallback; ++i) {
      const index_t rows = ih + geo.ph - i * geo.dh;
      r.valid |= (rows >= 0 && rows % geo.sh == 0 && rows / geo.sh < geo.oh ? 1u : 0u) << i;
    }
    return r;
  }
  bool linear() const { return false; }
  template <class Plan>
  auto prepare(Plan& plan) const {
    auto pg = g.prepare(plan);
    return Fold<decltype(pg)>{{}, pg, geo, extents};
  }
  bool conflicts_with(const void* b, const void* e, bool) const { return g.conflicts_with(b, e, false); }
};

namespace detail {

inline std::string conv_shapes(const Shape<4>& x, const Shape<4>& w) {
  return "input [N, C, H, W] = " + to_string(x) + ", weight [O, C/groups, KH, KW] = " + to_string(w);
}

/// The geometry of conv2d(x, w, opts), checked: throws shape_error naming conv2d, the rule broken
/// and every shape involved.
inline ConvGeometry conv_geometry(const Shape<4>& xs, const Shape<4>& ws, const Conv2dOptions& o) {
  const auto fail = [&](const std::string& what) {
    throw shape_error("conv2d: " + what + " (" + conv_shapes(xs, ws) + ", stride {" + std::to_string(o.stride.h) +
                      ", " + std::to_string(o.stride.w) + "}, padding {" + std::to_string(o.padding.h) + ", " +
                      std::to_string(o.padding.w) + "}, dilation {" + std::to_string(o.dilation.h) + ", " +
                      std::to_string(o.dilation.w) + "}, groups " + std::to_string(o.groups) + ")");
  };
  if (o.stride.h <= 0 || o.stride.w <= 0) {
    fail("the stride must be positive");
  }
  if (o.dilation.h <= 0 || o.dilation.w <= 0) {
    fail("the dilation must be positive");
  }
  if (o.padding.h < 0 || o.padding.w < 0) {
    fail("the padding must not be negative");
  }
  if (o.groups <= 0) {
    fail("groups must be positive");
  }
  if (xs[1] % o.groups != 0 || ws[0] % o.groups != 0) {
    fail("groups must divide the input channels C and the output channels O");
  }
  if (ws[1] * o.groups != xs[1]) {
    fail("the weight's axis 1 must be the input channels per group, C/groups = " + std::to_string(xs[1] / o.groups) +
         ", not " + std::to_string(ws[1]));
  }
  if (ws[2] <= 0 || ws[3] <= 0) {
    fail("the kernel must not be empty");
  }
  ConvGeometry g;
  g.channels = xs[1];
  g.height = xs[2];
  g.width = xs[3];
  g.groups = o.groups;
  g.kh = ws[2];
  g.kw = ws[3];
  g.sh = o.stride.h;
  g.sw = o.stride.w;
  g.ph = o.padding.h;
  g.pw = o.padding.w;
  g.dh = o.dilation.h;
  g.dw = o.dilation.w;
  const index_t span_h = g.dh * (g.kh - 1) + 1, span_w = g.dw * (g.kw - 1) + 1;
  if (span_h > g.height + 2 * g.ph || span_w > g.width + 2 * g.pw) {
    fail("the kernel (dilated: " + std::to_string(span_h) + " x " + std::to_string(span_w) +
         ") is larger than the padded input (" + std::to_string(g.height + 2 * g.ph) + " x " +
         std::to_string(g.width + 2 * g.pw) + ")");
  }
  g.oh = (g.height + 2 * g.ph - span_h) / g.sh + 1;
  g.ow = (g.width + 2 * g.pw - span_w) / g.sw + 1;
  return g;
}

template <class X>
auto unfold(const X& x, const ConvGeometry& g) {
  const index_t n = x.shape()[0];
  return Unfold<X>{{}, x, g, Shape<5>({n, g.groups, g.group_channels() * g.window(), g.oh, g.ow})};
}

}  // namespace detail

/// 2-D convolution (cross-correlation, as PyTorch's conv2d) of x (N, C, H, W) with w
/// (O, C/groups, KH, KW), no bias: (N, O, OH, OW), lazy. See the file comment for what it costs.
/// Example: `fg::Tensor<float, 4> y = fg::relu(fg::nn::conv2d(x, w, {.padding = 1}));`
template <tensor_expression EX, tensor_expression EW>
auto conv2d(const EX& ex, const EW& ew, const Conv2dOptions& opts = {}) {
  auto x = as_node(ex);
  auto w = as_node(ew);
  using X = decltype(x);
  using W = decltype(w);
  static_assert(X::rank == 4, "conv2d: the input must have rank 4, (N, C, H, W)");
  static_assert(W::rank == 4, "conv2d: the weight must have rank 4, (O, C/groups, KH, KW)");
  static_assert(std::is_floating_point_v<typename X::value_type> &&
                    std::is_same_v<typename X::value_type, typename W::value_type>,
                "conv2d: input and weight must have the same floating-point dtype");
  const auto xs = x.shape();
  const auto ws = w.shape();
  const ConvGeometry g = detail::conv_geometry(xs, ws, opts);
  const index_t k = g.group_channels() * g.window();
  auto weights = reshape(ew, {g.groups, ws[0] / g.groups, k});  // (G, O/G, K): of a Tensor, a view
  auto cols = reshape(detail::unfold(x, g), {xs[0], g.groups, k, g.oh * g.ow});  // (N, G, K, OH·OW)
  auto product = matmul(weights, cols);                                         // (N, G, O/G, OH·OW)
  return reshape(product, {xs[0], ws[0], g.oh, g.ow});           // NCHW: the same memory
}

/// conv2d with a bias b (O) added to every output channel; the add fuses with the caller's
/// element-wise work. Example: `fg::relu(fg::nn::conv2d(x, w, b, {.stride = 2}))`.
template <tensor_expression EX, tensor_expression EW, tensor_expression EB>
auto conv2d(const EX& ex, const EW& ew, const EB& eb, const Conv2dOptions& opts = {}) {
  auto b = as_node(eb);
  using B = decltype(b);
  static_assert(B::rank == 1, "conv2d: the bias must have rank 1, (O)");
  const auto ws = as_node(ew).shape();
  if (b.shape()[0] != ws[0]) {
    throw shape_error("conv2d: the bias has " + std::to_string(b.shape()[0]) + " elements for " +
                      std::to_string(ws[0]) + " output channels (bias " + to_string(b.shape()) + ", " +
                      detail::conv_shapes(as_node(ex).shape(), ws) + ")");
  }
  return conv2d(ex, ew, opts) + reshape(b, {ws[0], 1, 1});
}

/// A convolution layer over NCHW: weight (O, C/groups, KH, KW), bias (O), its options. Drawn from
/// one seed as nn::Linear's are (He-uniform weights for ReLU networks, U(±1/√fan_in) bias).
/// Example: `fg::nn::Conv2d<float> c1(1, 16, 3, /*seed*/ 1, {.padding = 1}); auto h = fg::relu(c1(x));`
template <class T = float>
struct Conv2d {
  Tensor<T, 4> weight;  // (O, C/groups, KH, KW)
  Tensor<T, 1> bias;    // (O)
  Conv2dOptions options;

  Conv2d(index_t in_channels, index_t out_channels, Extent2 kernel, std::uint64_t seed, Conv2dOptions opts = {})
      : weight(Shape<4>({out_channels, opts.groups > 0 ? in_channels / opts.groups : in_channels, kernel.h, kernel.w})),
        bias(Shape<1>({out_channels})),
        options(opts) {
    if (opts.groups <= 0 || in_channels % opts.groups != 0 || out_channels % opts.groups != 0) {
      throw shape_error("Conv2d: groups " + std::to_string(opts.groups) + " must be positive and divide the " +
                        std::to_string(in_channels) + " input and " + std::to_string(out_channels) +
                        " output channels");
    }
    reset(seed);
  }

  /// Draws weight and bias again, exactly as the constructor with this seed draws them.
  void reset(std::uint64_t seed) {
    const auto ws = weight.shape();
    const index_t fan_in = ws[1] * ws[2] * ws[3];
    const double bound = std::sqrt(2.0) * std::sqrt(3.0 / static_cast<double>(fan_in > 0 ? fan_in : 1));
    weight = random::uniform<T>(ws, static_cast<T>(-bound), static_cast<T>(bound), 2 * seed);
    bias = bias_uniform<T>(ws[0], fan_in, 2 * seed + 1);
  }

  /// The module protocol (nn/module.hpp): names the parameters "weight" and "bias".
  void fields(auto& f) {
    f("weight", weight);
    f("bias", bias);
  }

  template <tensor_expression X>
  auto operator()(const X& x) const {
    return conv2d(x, weight, bias, options);
  }
};

// ---- autodiff hooks (see autodiff/record.hpp and rules.hpp) --------------------------------

template <class X, class Tp>
auto record(const Unfold<X>& u, Tp& tape) {
  auto x = record(u.x, tape);
  return Unfold<decltype(x)>{{}, x, u.geo, u.extents};
}
template <class X, class Tp>
bool depends(const Unfold<X>& u, const Tp& tape) {
  return depends(u.x, tape);
}
template <class X>
bool same(const Unfold<X>& a, const Unfold<X>& b) {
  return a.extents == b.extents && a.geo == b.geo && same(a.x, b.x);
}
/// The input gets fold(g): each element the sum of the columns that read it.
template <class X, class G, class Tp>
void backprop(const Unfold<X>& u, const G& g, Tp& tape) {
  if (depends(u.x, tape)) {
    auto gn = as_node(g);
    backprop(u.x, Fold<decltype(gn)>{{}, gn, u.geo, u.x.shape()}, tape);
  }
}

}  // namespace nn

}  // namespace fusegrad::inline FG_BACKEND_NS
