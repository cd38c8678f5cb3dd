// tests/test_data.cpp — data::Loader and data::shuffled_order: every sample exactly once per epoch
// (with and without shuffling, with a partial last batch or drop_last), batch rows equal to the
// source rows, the order a function of (seed, epoch) only (so a resumed run sees the same
// batches), fixed slot addresses, small edge cases and argument errors; per-sample transforms
// (data/augment.hpp's random_shift) against a reference, reproducible from (seed, epoch, sample).
#include <fusegrad/fusegrad.hpp>
#include <fusegrad/data/loader.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_data {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;

/// What a test keeps of one batch (read while it is valid).
struct Seen {
  index_t index, size, epoch;
  int slot;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  const float* x_address;
  bool operator==(const Seen& o) const {
    return index == o.index && size == o.size && epoch == o.epoch && slot == o.slot && x == o.x &&
           y == o.y;
  }
};

template <class L>
std::vector<Seen> run_epoch(L& loader, index_t epoch) {
  std::vector<Seen> out;
  for (const auto& batch : loader.epoch(epoch)) {
    out.push_back({batch.index(), batch.size(), batch.epoch(), batch.slot(), batch.x().to_vector(),
                   batch.y().to_vector(), batch.x().data()});
  }
  return out;
}

/// N samples of D features, random (never all zero); the label of sample i is i + 1000, so a batch
/// names the samples it holds.
struct Dataset {
  index_t n, d;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  Dataset(index_t n_, index_t d_, std::mt19937& rng) : n(n_), d(d_) {
    x = fgtest::random_values<float>(static_cast<std::size_t>(n * d), rng, -5, 5);
    for (index_t i = 0; i < n; ++i) {
      y.push_back(static_cast<std::int32_t>(i + 1000));
    }
  }
  fg::Tensor<float, 2> x_tensor() const { return fgtest::tensor_from<float, 2>({n, d}, x); }
  fg::Tensor<std::int32_t, 1> y_tensor() const { return fgtest::tensor_from<std::int32_t, 1>({n}, y); }
};

TEST_CASE("data: every sample exactly once per epoch, rows equal to the source rows",
          "[data][loader]") {
  std::mt19937 rng(8101);
  for (const index_t n : {1, 7, 64, 100, 129}) {
    for (const index_t batch : {1, 7, 16, 64, 128}) {
      for (const bool shuffle : {false, true}) {
        for (const bool drop_last : {false, true}) {
          INFO("N " << n << ", batch " << batch << ", shuffle " << shuffle << ", drop_last "
                    << drop_last);
          const Dataset data(n, 5, rng);
          const auto X = data.x_tensor();
          const auto Y = data.y_tensor();
          fg::data::Loader loader(X, Y, {.batch = batch, .shuffle = shuffle, .seed = 42,
                                         .drop_last = drop_last});
          static_assert(std::is_same_v<decltype(loader), fg::data::Loader<float, 2, std::int32_t, 1>>);
          const index_t full = n / batch, tail = drop_last ? 0 : n % batch;
          CHECK(loader.size() == n);
          CHECK(loader.num_batches() == full + (tail > 0));
          for (const index_t epoch : {0, 1}) {
            fgtest::LaunchCounter launches;
            const auto seen = run_epoch(loader, epoch);
            CHECK(launches.launches() == 0);  // copies only
            REQUIRE(static_cast<index_t>(seen.size()) == loader.num_batches());
            const std::vector<index_t> order =
                shuffle ? fg::data::shuffled_order(n, 42, epoch) : loader.order(epoch);
            CHECK(loader.order(epoch) == order);
            std::vector<index_t> got;
            for (std::size_t k = 0; k < seen.size(); ++k) {
              const Seen& b = seen[k];
              const index_t kk = static_cast<index_t>(k);
              CHECK(b.index == kk);
              CHECK(b.epoch == epoch);
              CHECK(b.size == (kk < full ? batch : tail));
              CHECK(b.slot == (kk < full ? static_cast<int>(kk % 2) : 2));
              REQUIRE(static_cast<index_t>(b.y.size()) == b.size);
              for (index_t r = 0; r < b.size; ++r) {
                const index_t sample = b.y[static_cast<std::size_t>(r)] - 1000;
                got.push_back(sample);
                CHECK(sample == order[static_cast<std::size_t>(kk * batch + r)]);
                const auto row = data.x.begin() + sample * data.d;
                CHECK(std::equal(row, row + data.d, b.x.begin() + r * data.d));
              }
            }
            // Exactly once: the first full * batch (+ tail) of the order, no repeats.
            CHECK(static_cast<index_t>(got.size()) == full * batch + tail);
            std::sort(got.begin(), got.end());
            CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());
            if (!drop_last) {
              for (index_t i = 0; i < n; ++i) {
                CHECK(got[static_cast<std::size_t>(i)] == i);
              }
            }
            if (!shuffle) {
              for (index_t i = 0; i < n; ++i) {
                CHECK(order[static_cast<std::size_t>(i)] == i);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("data: the order depends on (seed, epoch) only", "[data][shuffle]") {
  const auto a = fg::data::shuffled_order(1000, 7, 3);
  CHECK(a == fg::data::shuffled_order(1000, 7, 3));
  CHECK(a != fg::data::shuffled_order(1000, 7, 4));
  CHECK(a != fg::data::shuffled_order(1000, 8, 3));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 1000; ++i) {
    CHECK(sorted[static_cast<std::size_t>(i)] == i);
  }
  // Pinned values: a change here breaks resuming runs saved by an earlier version.
  CHECK(fg::data::shuffled_order(10, 1, 0) == std::vector<index_t>{5, 2, 1, 6, 0, 3, 8, 9, 7, 4});
  CHECK(fg::data::shuffled_order(10, 1, 1) == std::vector<index_t>{8, 6, 1, 7, 2, 5, 0, 9, 3, 4});
  CHECK(fg::data::shuffled_order(0, 1, 0).empty());
  CHECK(fg::data::shuffled_order(1, 1, 0) == std::vector<index_t>{0});
  // Roughly uniform: over 4000 epochs, each sample lands in position 0 about 1/4 of the time.
  std::vector<int> first(4, 0);
  for (index_t e = 0; e < 4000; ++e) {
    ++first[static_cast<std::size_t>(fg::data::shuffled_order(4, 99, e)[0])];
  }
  for (const int c : first) {
    CHECK(c > 850);
    CHECK(c < 1150);
  }
}

TEST_CASE("data: a loader rebuilt at epoch 3 gives the batches of an uninterrupted run",
          "[data][loader]") {
  std::mt19937 rng(8102);
  const Dataset data(203, 6, rng);
  const auto X = data.x_tensor();
  const auto Y = data.y_tensor();
  const fg::data::LoaderOptions options{.batch = 32, .shuffle = true, .seed = 1234};
  fg::data::Loader a(X, Y, options);
  std::vector<std::vector<Seen>> epochs;
  for (index_t e = 0; e <= 3; ++e) {
    epochs.push_back(run_epoch(a, e));
  }
  CHECK(epochs[2] != epochs[3]);
  fg::data::Loader b(X, Y, options);
  CHECK(run_epoch(b, 3) == epochs[3]);
  // Same through the span constructor, and after leaving an epoch early.
  fg::data::Loader c(std::span<const float>(data.x), fg::Shape<2>{data.n, data.d},
                     std::span<const std::int32_t>(data.y), options);
  static_assert(std::is_same_v<decltype(c), fg::data::Loader<float, 2, std::int32_t, 1>>);
  for (const auto& batch : c.epoch(0)) {
    if (batch.index() == 2) {
      break;
    }
  }
  CHECK(run_epoch(c, 3) == epochs[3]);
  CHECK(run_epoch(c, 1) == epochs[1]);
  fg::data::Loader d(std::vector<float>(data.x), fg::Shape<2>{data.n, data.d},
                     std::vector<std::int32_t>(data.y), fg::Shape<1>{data.n}, options);
  CHECK(run_epoch(d, 3) == epochs[3]);
  // The manual interface gives the same batches.
  c.start_epoch(2);
  std::vector<Seen> manual;
  while (auto batch = c.next()) {
    manual.push_back({batch->index(), batch->size(), batch->epoch(), batch->slot(),
                      batch->x().to_vector(), batch->y().to_vector(), batch->x().data()});
  }
  CHECK(manual == epochs[2]);
  CHECK(!c.next().has_value());  // stays at the end
}

TEST_CASE("data: full batches live at two fixed addresses, the last partial batch at a third",
          "[data][loader]") {
  std::mt19937 rng(8103);
  const Dataset data(70, 3, rng);
  fg::data::Loader loader(data.x_tensor(), data.y_tensor(), {.batch = 16, .seed = 5});
  const float* slot0 = loader.x_slot(0).data();
  const float* slot1 = loader.x_slot(1).data();
  const float* tail = loader.x_slot(2).data();
  CHECK(loader.x_slot(0).shape() == fg::Shape<2>{16, 3});
  CHECK(loader.y_slot(1).shape() == fg::Shape<1>{16});
  CHECK(loader.x_slot(2).shape() == fg::Shape<2>{6, 3});
  CHECK(slot0 != slot1);
  for (index_t e = 0; e < 3; ++e) {
    const auto seen = run_epoch(loader, e);
    REQUIRE(seen.size() == 5);
    for (const auto& b : seen) {
      CHECK(b.x_address == (b.slot == 0 ? slot0 : b.slot == 1 ? slot1 : tail));
    }
  }
  // A moved loader keeps its slots.
  auto moved = std::move(loader);
  CHECK(moved.x_slot(0).data() == slot0);
  CHECK(run_epoch(moved, 0).size() == 5);
}

TEST_CASE("data: batch of 1, fewer samples than a batch, higher ranks", "[data][loader]") {
  std::mt19937 rng(8104);
  const Dataset data(5, 4, rng);
  fg::data::Loader ones(data.x_tensor(), data.y_tensor(), {.batch = 1, .shuffle = false});
  const auto seen = run_epoch(ones, 0);
  REQUIRE(seen.size() == 5);
  for (std::size_t k = 0; k < 5; ++k) {
    CHECK(seen[k].size == 1);
    CHECK(seen[k].slot == static_cast<int>(k % 2));
    CHECK(seen[k].y == std::vector<std::int32_t>{static_cast<std::int32_t>(1000 + k)});
  }

  fg::data::Loader small(data.x_tensor(), data.y_tensor(), {.batch = 8});
  CHECK(small.num_batches() == 1);
  const auto one = run_epoch(small, 0);
  REQUIRE(one.size() == 1);
  CHECK(one[0].size == 5);
  CHECK(one[0].slot == 2);
  fg::data::Loader none(data.x_tensor(), data.y_tensor(), {.batch = 8, .drop_last = true});
  CHECK(none.num_batches() == 0);
  CHECK(run_epoch(none, 0).empty());

  // Images (N, 2, 3) with targets (N, 2): a sample is a 6-float block and a 2-int row.
  const index_t n = 11;
  const auto x = fgtest::random_values<float>(n * 6, rng, 1, 2);
  const auto y = fgtest::random_values<std::int32_t>(n * 2, rng, 1, 1000);
  fg::data::Loader images(std::span<const float>(x), fg::Shape<3>{n, 2, 3},
                          std::span<const std::int32_t>(y), fg::Shape<2>{n, 2},
                          {.batch = 4, .seed = 3});
  const auto order = images.order(0);
  for (const auto& batch : images.epoch(0)) {
    CHECK(batch.x().shape() == fg::Shape<3>{batch.size(), 2, 3});
    CHECK(batch.y().shape() == fg::Shape<2>{batch.size(), 2});
    const auto bx = batch.x().to_vector();
    const auto by = batch.y().to_vector();
    for (index_t r = 0; r < batch.size(); ++r) {
      const auto s = static_cast<std::size_t>(order[static_cast<std::size_t>(batch.index() * 4 + r)]);
      CHECK(std::equal(x.begin() + s * 6, x.begin() + s * 6 + 6, bx.begin() + r * 6));
      CHECK(std::equal(y.begin() + s * 2, y.begin() + s * 2 + 2, by.begin() + r * 2));
    }
  }
}

/// random_shift's reference: out(p, y, x) = in(p, y - dy, x - dx) inside the plane, else fill.
std::vector<float> shifted(const std::vector<float>& in, index_t h, index_t w, index_t dy, index_t dx, float fill) {
  std::vector<float> out(in.size(), fill);
  for (index_t p = 0; p < static_cast<index_t>(in.size()); p += h * w) {
    for (index_t y = 0; y < h; ++y) {
      for (index_t x = 0; x < w; ++x) {
        if (y - dy >= 0 && y - dy < h && x - dx >= 0 && x - dx < w) {
          out[static_cast<std::size_t>(p + y * w + x)] = in[static_cast<std::size_t>(p + (y - dy) * w + x - dx)];
        }
      }
    }
  }
  return out;
}

TEST_CASE("data: random_shift moves every plane by one offset drawn from the generator", "[data][augment]") {
  std::mt19937 rng(8106);
  for (const auto& [h, w, planes, m] : std::vector<std::array<index_t, 4>>{{5, 7, 1, 2}, {4, 4, 3, 1}, {1, 9, 2, 3}, {6, 3, 1, 0}}) {
    const auto in = fgtest::random_values<float>(static_cast<std::size_t>(h * w * planes), rng, -5, 5);
    const auto shift = fg::data::random_shift<float>(h, w, m, -9.5f);
    std::vector<int> seen(static_cast<std::size_t>((2 * m + 1) * (2 * m + 1)), 0);
    for (std::uint64_t sample = 0; sample < 1000; ++sample) {
      auto gen = fg::data::sample_generator(3, 1, sample);
      auto copy = gen;
      const auto [dy, dx] = fg::data::RandomShift<float>::draw(m, copy);
      REQUIRE(std::abs(dy) <= m);
      REQUIRE(std::abs(dx) <= m);
      ++seen[static_cast<std::size_t>((dy + m) * (2 * m + 1) + dx + m)];
      auto out = in;
      shift(std::span<float>(out), gen);
      REQUIRE(out == shifted(in, h, w, dy, dx, -9.5f));
    }
    // Every offset is drawn (1000 draws over at most 49 offsets: a miss has odds below 1e-7).
    CHECK(std::count(seen.begin(), seen.end(), 0) == 0);
  }
}

TEST_CASE("data: a transform edits batches, not the dataset, the same way for any batch size", "[data][augment]") {
  std::mt19937 rng(8107);
  const Dataset data(23, 12, rng);  // samples of 3 planes of 2 x 2
  const auto X = data.x_tensor();
  const auto Y = data.y_tensor();
  // Sample s of epoch e as the loader must hand it out.
  auto expected = [&](index_t s, index_t e) {
    std::vector<float> row(data.x.begin() + s * 12, data.x.begin() + (s + 1) * 12);
    auto gen = fg::data::sample_generator(7, static_cast<std::uint64_t>(e), static_cast<std::uint64_t>(s));
    fg::data::random_shift<float>(2, 2, 1, 0.25f)(std::span<float>(row), gen);
    return row;
  };
  for (const index_t batch : {4, 23, 5}) {
    fg::data::Loader loader(X, Y, {.batch = batch, .shuffle = true, .seed = 7});
    loader.set_transform(fg::data::random_shift<float>(2, 2, 1, 0.25f));
    index_t changed = 0;
    for (const index_t epoch : {0, 2}) {
      for (const auto& seen : run_epoch(loader, epoch)) {
        for (index_t r = 0; r < seen.size; ++r) {
          const index_t s = seen.y[static_cast<std::size_t>(r)] - 1000;
          const std::vector<float> got(seen.x.begin() + r * 12, seen.x.begin() + (r + 1) * 12);
          REQUIRE(got == expected(s, epoch));
          changed += got != std::vector<float>(data.x.begin() + s * 12, data.x.begin() + (s + 1) * 12);
        }
      }
    }
    CHECK(changed > 23);  // most of the 46 samples move (1 in 9 draws (0, 0))
    // Without the transform the rows are the dataset's again: it was never written.
    loader.set_transform({});
    for (const auto& seen : run_epoch(loader, 1)) {
      for (index_t r = 0; r < seen.size; ++r) {
        const index_t s = seen.y[static_cast<std::size_t>(r)] - 1000;
        REQUIRE(std::equal(seen.x.begin() + r * 12, seen.x.begin() + (r + 1) * 12, data.x.begin() + s * 12));
      }
    }
  }
}

TEST_CASE("data: argument errors", "[data][errors]") {
  std::mt19937 rng(8105);
  const Dataset data(10, 3, rng);
  const auto X = data.x_tensor();
  const auto Y = data.y_tensor();
  auto msg = fgtest::thrown_message<fg::error>([&] { fg::data::Loader l(X, Y, {.batch = 0}); });
  CHECK(fgtest::contains(msg, "Loader: the batch size must be positive, got 0"));
  const auto Y9 = fgtest::tensor_from<std::int32_t, 1>({9}, std::vector<std::int32_t>(9, 1));
  msg = fgtest::thrown_message<fg::shape_error>([&] { fg::data::Loader l(X, Y9); });
  CHECK(fgtest::contains(msg, "X has shape [10, 3] (10 samples)"));
  CHECK(fgtest::contains(msg, "Y has shape [9] (9 samples)"));
  msg = fgtest::thrown_message<fg::shape_error>([&] {
    fg::data::Loader l(std::span<const float>(data.x).first(29), fg::Shape<2>{10, 3},
                       std::span<const std::int32_t>(data.y));
  });
  CHECK(fgtest::contains(msg, "29 X and 10 Y elements given for shapes [10, 3] and [10]"));
  fg::data::Loader loader(X, Y);
  msg = fgtest::thrown_message<fg::error>([&] { (void)loader.next(); });
  CHECK(fgtest::contains(msg, "no epoch started"));
  msg = fgtest::thrown_message<fg::error>([&] { loader.start_epoch(-1); });
  CHECK(fgtest::contains(msg, "epoch must be >= 0, got -1"));
  msg = fgtest::thrown_message<fg::error>([&] { (void)loader.x_slot(3); });
  CHECK(fgtest::contains(msg, "slot 3 does not exist"));
  // random_shift: its own arguments, and samples that are not whole planes (at the first batch).
  msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::data::random_shift<float>(0, 28, 2); });
  CHECK(fgtest::contains(msg, "random_shift: needs a positive plane and max_shift >= 0, got 0 x 28, max_shift 2"));
  msg = fgtest::thrown_message<fg::shape_error>([&] { (void)fg::data::random_shift<float>(28, 28, -1); });
  CHECK(fgtest::contains(msg, "max_shift -1"));
  loader.set_transform(fg::data::random_shift<float>(2, 2, 1));
  msg = fgtest::thrown_message<fg::shape_error>([&] { (void)run_epoch(loader, 0); });
  CHECK(fgtest::contains(msg, "random_shift: a sample of 3 elements is not whole planes of 2 x 2"));
}

}  // namespace test_data
