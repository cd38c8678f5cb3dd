// fusegrad/data/augment.hpp — per-sample augmentations for Loader::set_transform (host code: they
// edit a sample while its batch is gathered, before it reaches the device).
//
//   random_shift<T>(height, width, max_shift, fill)   translate by (dy, dx), each uniform in
//                                                     [-max_shift, max_shift]; vacated pixels = fill
//
// A sample is C planes of height x width in C order (an MNIST row of 784 is one 28 x 28 plane);
// every plane moves by the same (dy, dx). The numbers come from the generator the loader hands in,
// so an augmentation is reproducible from (seed, epoch, sample).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fusegrad/core/error.hpp"
#include "fusegrad/data/shuffle.hpp"

namespace fusegrad::inline FG_BACKEND_NS::data {

/// Translates each sample by a random (dy, dx) in [-max_shift, max_shift]², filling what moves in
/// with `fill` (the padding of a random crop: torchvision's RandomCrop(size, padding = max_shift)
/// draws the same distribution of offsets). Throws shape_error (at the first sample) when a sample
/// is not whole planes of height x width.
/// Example: `loader.set_transform(fg::data::random_shift<float>(28, 28, 2, background));`
template <class T>
struct RandomShift {
  index_t height = 0, width = 0, max_shift = 0;
  T fill{};

  /// (dy, dx) for one sample: dy first, then dx, each from gen.below(2·max_shift + 1).
  static std::pair<index_t, index_t> draw(index_t max_shift, SplitMix64& gen) {
    const auto span = static_cast<std::uint64_t>(2 * max_shift + 1);
    const auto dy = static_cast<index_t>(gen.below(span)) - max_shift;
    const auto dx = static_cast<index_t>(gen.below(span)) - max_shift;
    return {dy, dx};
  }

  /// out(y, x) = in(y - dy, x - dx) where that lies in the plane, else fill.
  void operator()(std::span<T> sample, SplitMix64& gen) const {
    const index_t plane = height * width, n = static_cast<index_t>(sample.size());
    if (plane <= 0 || n % plane != 0) {
      throw shape_error("random_shift: a sample of " + std::to_string(n) + " elements is not whole planes of " +
                        std::to_string(height) + " x " + std::to_string(width));
    }
    const auto [dy, dx] = draw(max_shift, gen);
    if (dy == 0 && dx == 0) {
      return;
    }
    std::vector<T> source(sample.begin(), sample.end());
    for (index_t p = 0; p < n; p += plane) {
      for (index_t y = 0; y < height; ++y) {
        T* out = sample.data() + p + y * width;
        const index_t sy = y - dy;
        if (sy < 0 || sy >= height) {
          std::fill(out, out + width, fill);
          continue;
        }
        const T* in = source.data() + p + sy * width;
        for (index_t x = 0; x < width; ++x) {
          const index_t sx = x - dx;
          out[x] = sx >= 0 && sx < width ? in[sx] : fill;
        }
      }
    }
  }
};

/// A RandomShift; throws shape_error for a non-positive plane or a negative max_shift.
template <class T>
RandomShift<T> random_shift(index_t height, index_t width, index_t max_shift, T fill = T(0)) {
  if (height <= 0 || width <= 0 || max_shift < 0) {
    throw shape_error("random_shift: needs a positive plane and max_shift >= 0, got " + std::to_string(height) +
                      " x " + std::to_string(width) + ", max_shift " + std::to_string(max_shift));
  }
  return RandomShift<T>{height, width, max_shift, fill};
}

}  // namespace fusegrad::inline FG_BACKEND_NS::data
