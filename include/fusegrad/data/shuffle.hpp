// fusegrad/data/shuffle.hpp — the sample order of an epoch, from (seed, epoch) alone.
//
// A counter-based generator (SplitMix64, Steele et al., "Fast splittable pseudorandom number
// generators", OOPSLA'14) seeded from (seed, epoch) drives a Fisher-Yates shuffle on the host.
// Only 64-bit integer arithmetic is involved, so the order is the same on every backend, compiler
// and thread count, and a run resumed at epoch k sees the batches an uninterrupted run would.
#pragma once

#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fusegrad/core/config.hpp"
#include "fusegrad/core/error.hpp"

namespace fusegrad::inline FG_BACKEND_NS::data {

/// SplitMix64: next() = mix(state += 0x9E3779B97F4A7C15).
struct SplitMix64 {
  std::uint64_t state = 0;

  /// The finaliser (a bijection of 64-bit words).
  static constexpr std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  constexpr std::uint64_t next() { return mix(state += 0x9E3779B97F4A7C15ull); }

  /// Uniform in [0, bound), bound > 0, without modulo bias (rejects the top partial range).
  constexpr std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t limit = max - (max % bound + 1) % bound;  // accept r <= limit
    std::uint64_t r = next();
    while (r > limit) {
      r = next();
    }
    return r % bound;
  }
};

/// The generator of epoch `epoch` under `seed`: state = mix(seed) ^ mix(~epoch).
constexpr SplitMix64 epoch_generator(std::uint64_t seed, std::uint64_t epoch) {
  return SplitMix64{SplitMix64::mix(seed) ^ SplitMix64::mix(~epoch)};
}

/// The generator of one sample in one epoch (data augmentation): independent of the order in which
/// samples are visited, so any batch or thread layout draws the same numbers for it.
constexpr SplitMix64 sample_generator(std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample) {
  return SplitMix64{SplitMix64::mix(SplitMix64::mix(seed) ^ SplitMix64::mix(~epoch)) ^ SplitMix64::mix(sample)};
}

/// A permutation of 0 .. n-1 that depends only on (n, seed, epoch): Fisher-Yates, from the last
/// position down, swapping i with below(i + 1).
/// Example: `auto order = fg::data::shuffled_order(60000, /*seed=*/1, /*epoch=*/3);`
inline std::vector<index_t> shuffled_order(index_t n, std::uint64_t seed, index_t epoch) {
  if (n < 0 || epoch < 0) {
    throw error("shuffled_order: needs n >= 0 and epoch >= 0, got n " + std::to_string(n) +
                ", epoch " + std::to_string(epoch));
  }
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index_t(0));
  SplitMix64 gen = epoch_generator(seed, static_cast<std::uint64_t>(epoch));
  for (index_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<index_t>(gen.below(static_cast<std::uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

}  // namespace fusegrad::inline FG_BACKEND_NS::data
