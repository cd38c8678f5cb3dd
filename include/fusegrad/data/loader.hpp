// fusegrad/data/loader.hpp — Loader: batches of an in-memory dataset (features X (N, ...), labels
// Y (N, ...)), in an order shuffled per epoch from (seed, epoch) (data/shuffle.hpp), with a last
// partial batch unless drop_last.
//
// Where batches live: loader-owned device tensors at fixed addresses. Full batches alternate
// between slot 0 and slot 1 (batch k of an epoch is in slot k % 2), so a CUDA graph captured
// once per slot can read them; the last partial batch has its own, smaller slot 2.
//
// CUDA pipeline (host backend: none of it; a batch is gathered straight into its slot by next()):
//   next() handing out batch k
//     1. records `released[slot(k-1)]` on fusegrad::cuda_stream(): the caller is done queueing
//        work on batch k-1;
//     2. makes cuda_stream() wait for `copied[slot(k)]` (batch k's copy, issued one call earlier);
//     3. prefetches batch k+1 into slot(k+1) = slot(k-1): the host waits for the previous copy out
//        of that slot's pinned staging (event sync), gathers the rows into it, and the copy stream
//        waits for `released[slot(k+1)]`, copies host->device and records `copied[slot(k+1)]`.
//   So batch k+1's copy runs on the copy engine while the GPU computes batch k.
// Rule for callers: a Batch is valid until the next call to next() or start_epoch(), and its
// tensors must be used on fusegrad::cuda_stream() (or the legacy default stream). Call next()
// outside CUDA graph capture; the captured step reads the slot tensors by address.
//
// The dataset is copied to host memory once at construction (pageable: the per-batch row gather is
// a host memcpy into pinned staging, so only the staging needs to be page-locked).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fusegrad/data/cuda_resources.hpp"
#include "fusegrad/data/shuffle.hpp"
#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS::data {

/// How batches are formed.
struct LoaderOptions {
  index_t batch = 64;        // samples per full batch, > 0
  bool shuffle = true;       // a new permutation every epoch, from (seed, epoch)
  std::uint64_t seed = 0;
  bool drop_last = false;    // false: the last N % batch samples form a smaller last batch
};

/// One batch: views of loader-owned tensors, valid until the loader's next next()/start_epoch().
template <class TX, int RX, class TY, int RY>
class Batch {
 public:
  Batch(const Tensor<TX, RX>& x, const Tensor<TY, RY>& y, index_t index, index_t epoch, int slot)
      : x_(&x), y_(&y), index_(index), epoch_(epoch), slot_(slot) {}

  const Tensor<TX, RX>& x() const { return *x_; }  // (size, ...)
  const Tensor<TY, RY>& y() const { return *y_; }  // (size, ...)
  index_t size() const { return x_->shape(0); }    // samples in this batch
  index_t index() const { return index_; }         // batch number within the epoch
  index_t epoch() const { return epoch_; }
  int slot() const { return slot_; }                // 0, 1: full batches (index % 2); 2: the tail

 private:
  const Tensor<TX, RX>* x_;
  const Tensor<TY, RY>* y_;
  index_t index_, epoch_;
  int slot_;
};

/// Batches of (X, Y) over epochs. Non-copyable, movable (batches and slot addresses survive a move).
/// Example:
///   fg::data::Loader loader(X, Y, {.batch = 128, .shuffle = true, .seed = 1});  // X (N, 784), Y (N)
///   for (index_t e = start; e < epochs; ++e) {
///     for (const auto& batch : loader.epoch(e)) {
///       auto loss = fg::mean(fg::nn::cross_entropy(model(batch.x()), batch.y()));  // x (b, 784)
///       opt.step(fg::grad(loss, W1, b1, W2, b2));
///     }
///   }
template <class TX = float, int RX = 2, class TY = std::int32_t, int RY = 1>
class Loader {
  static_assert(RX >= 1 && RY >= 1, "Loader: X and Y need a leading sample axis (rank >= 1)");
  static_assert(!std::is_same_v<TX, bool> && !std::is_same_v<TY, bool>,
                "Loader: bool data is not supported (store it as uint8)");

 public:
  using batch_type = Batch<TX, RX, TY, RY>;
  static constexpr int tail_slot = 2;

  /// Copies X (N, ...) and Y (N, ...) to host memory. Throws shape_error when their N differ,
  /// fusegrad::error when the batch size is not positive.
  Loader(const Tensor<TX, RX>& x, const Tensor<TY, RY>& y, const LoaderOptions& options = {})
      : Loader(x.to_vector(), x.shape(), y.to_vector(), y.shape(), options) {}
  /// The same from host memory: `x` holds x_shape.size() elements in C order, `y` y_shape.size().
  Loader(std::span<const TX> x, const Shape<RX>& x_shape, std::span<const TY> y,
         const Shape<RY>& y_shape, const LoaderOptions& options = {})
      : Loader(std::vector<TX>(x.begin(), x.end()), x_shape,
               std::vector<TY>(y.begin(), y.end()), y_shape, options) {}
  /// The same from host vectors, taken over without a copy.
  Loader(std::vector<TX> x, const Shape<RX>& x_shape, std::vector<TY> y, const Shape<RY>& y_shape,
         const LoaderOptions& options = {});
  /// Labels of rank 1: their shape is (y.size()).
  Loader(std::span<const TX> x, const Shape<RX>& x_shape, std::span<const TY> y,
         const LoaderOptions& options = {})
    requires(RY == 1)
      : Loader(x, x_shape, y, Shape<1>({static_cast<index_t>(y.size())}), options) {}

  index_t size() const { return s_->n; }                // samples N
  index_t batch_size() const { return s_->options.batch; }
  /// Batches per epoch: N / batch, plus one partial batch unless drop_last or N % batch == 0.
  index_t num_batches() const { return s_->num_full + (s_->tail > 0 ? 1 : 0); }
  const LoaderOptions& options() const { return s_->options; }

  /// Per-sample augmentation: `f(sample, gen)` edits each sample's features (x_row elements, C
  /// order) after they are gathered into a batch, on the host, with `gen` drawn from (seed, epoch,
  /// sample) alone (sample_generator): the same edits on every backend and thread count, and a run
  /// resumed at epoch k sees what an uninterrupted one would. The dataset itself is never changed.
  /// An empty f removes the transform. Takes effect from the next batch gathered (CUDA: the one
  /// after the batch already prefetched).
  /// Example: `loader.set_transform(fg::data::random_shift<float>(28, 28, 2, background));`
  void set_transform(std::function<void(std::span<TX> sample, SplitMix64& gen)> f) { s_->transform = std::move(f); }

  /// The sample order of `epoch` (identity without shuffle): batch k holds samples
  /// order[k * batch ...].
  std::vector<index_t> order(index_t epoch) const {
    if (epoch < 0) {
      throw error("Loader: epoch must be >= 0, got " + std::to_string(epoch));
    }
    return s_->options.shuffle ? shuffled_order(s_->n, s_->options.seed, epoch) : identity(s_->n);
  }

  /// The fixed-address tensors of a slot (0, 1: full batches; 2: the partial last batch), e.g. for
  /// capturing a CUDA graph per slot. Empty when the slot is never used.
  const Tensor<TX, RX>& x_slot(int slot) const { return s_->slots[checked_slot(slot)].x; }
  const Tensor<TY, RY>& y_slot(int slot) const { return s_->slots[checked_slot(slot)].y; }

  /// Starts `epoch` (>= 0): fixes its order and, on CUDA, starts copying its first batch.
  void start_epoch(index_t epoch) {
    State& s = *s_;
    std::vector<index_t> new_order = order(epoch);  // checks epoch >= 0
    release_previous();
    s.order = std::move(new_order);
    s.epoch = epoch;
    s.next_batch = 0;
#if defined(FG_BACKEND_CUDA)
    if (num_batches() > 0) {
      fill(0);
    }
#endif
  }

  /// The next batch of the current epoch, or nullopt after the last one. The previous batch is
  /// invalid from this call on.
  std::optional<batch_type> next() {
    State& s = *s_;
    if (s.epoch < 0) {
      throw error("Loader::next: no epoch started (call start_epoch(e) or use epoch(e))");
    }
    release_previous();
    const index_t k = s.next_batch;
    if (k >= num_batches()) {
      return std::nullopt;
    }
    Slot& slot = s.slots[slot_of(k)];
#if defined(FG_BACKEND_CUDA)
    slot.copied.wait_on(cuda_stream());
    if (k + 1 < num_batches()) {
      fill(k + 1);
    }
#else
    fill(k);
#endif
    s.handed_slot = slot_of(k);
    s.next_batch = k + 1;
    return batch_type(slot.x, slot.y, k, s.epoch, slot_of(k));
  }

  /// `for (const auto& batch : loader.epoch(e))`: start_epoch(e), then next() until the end.
  class EpochRange;
  EpochRange epoch(index_t e) { return EpochRange(*this, e); }

 private:
  struct Slot {
    Tensor<TX, RX> x;
    Tensor<TY, RY> y;
#if defined(FG_BACKEND_CUDA)
    detail::PinnedBuffer<TX> staged_x;
    detail::PinnedBuffer<TY> staged_y;
    detail::Event copied;    // on the copy stream, after this slot's latest host->device copy
    detail::Event released;  // on cuda_stream(), after the work on this slot's latest batch
#endif
  };
  struct State {
    LoaderOptions options;
    std::vector<TX> x;  // (N, ...) C order
    std::vector<TY> y;
    index_t n = 0, x_row = 1, y_row = 1, num_full = 0, tail = 0;
    std::vector<index_t> order;
    std::function<void(std::span<TX>, SplitMix64&)> transform;
    index_t epoch = -1, next_batch = 0;
    int handed_slot = -1;  // slot of the batch handed out last, until it is released
    std::array<Slot, 3> slots;
#if defined(FG_BACKEND_CUDA)
    detail::Stream copy_stream;  // declared last: destroyed first, after finishing its copies
#endif
  };

  static std::vector<index_t> identity(index_t n) {
    std::vector<index_t> v(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      v[static_cast<std::size_t>(i)] = i;
    }
    return v;
  }
  static std::size_t checked_slot(int slot) {
    if (slot < 0 || slot > tail_slot) {
      throw error("Loader: slot " + std::to_string(slot) + " does not exist (0, 1 or 2)");
    }
    return static_cast<std::size_t>(slot);
  }
  int slot_of(index_t k) const { return k < s_->num_full ? static_cast<int>(k % 2) : tail_slot; }
  void release_previous();
  void fill(index_t k);

  std::unique_ptr<State> s_;
};

// ---------------------------------------------------------------------------------------------

template <class TX, int RX, class TY, int RY>
Loader<TX, RX, TY, RY>::Loader(std::vector<TX> x, const Shape<RX>& x_shape, std::vector<TY> y,
                               const Shape<RY>& y_shape, const LoaderOptions& options)
    : s_(std::make_unique<State>()) {
  if (options.batch <= 0) {
    throw error("Loader: the batch size must be positive, got " + std::to_string(options.batch));
  }
  if (x_shape[0] != y_shape[0]) {
    throw shape_error("Loader: X has shape " + to_string(x_shape) + " (" +
                      std::to_string(x_shape[0]) + " samples) but Y has shape " +
                      to_string(y_shape) + " (" + std::to_string(y_shape[0]) + " samples)");
  }
  if (static_cast<index_t>(x.size()) != x_shape.size() ||
      static_cast<index_t>(y.size()) != y_shape.size()) {
    throw shape_error("Loader: " + std::to_string(x.size()) + " X and " +
                      std::to_string(y.size()) + " Y elements given for shapes " +
                      to_string(x_shape) + " and " + to_string(y_shape));
  }
  State& s = *s_;
  s.options = options;
  s.x = std::move(x);
  s.y = std::move(y);
  s.n = x_shape[0];
  for (int d = 1; d < RX; ++d) {
    s.x_row *= x_shape[d];
  }
  for (int d = 1; d < RY; ++d) {
    s.y_row *= y_shape[d];
  }
  s.num_full = s.n / options.batch;
  s.tail = options.drop_last ? 0 : s.n % options.batch;
  auto make = [&](Slot& slot, index_t rows) {
    Shape<RX> xs = x_shape;
    Shape<RY> ys = y_shape;
    xs[0] = rows;
    ys[0] = rows;
    slot.x = Tensor<TX, RX>(xs);
    slot.y = Tensor<TY, RY>(ys);
#if defined(FG_BACKEND_CUDA)
    slot.staged_x = detail::PinnedBuffer<TX>(xs.size());
    slot.staged_y = detail::PinnedBuffer<TY>(ys.size());
#endif
  };
  for (index_t k = 0; k < 2 && k < s.num_full; ++k) {
    make(s.slots[static_cast<std::size_t>(k)], options.batch);
  }
  if (s.tail > 0) {
    make(s.slots[tail_slot], s.tail);
  }
#if defined(FG_BACKEND_CUDA)
  backend::synchronize();  // the slots come from cudaMallocAsync on cuda_stream(); the copy stream
                           // writes them
#endif
}

/// The caller is done queueing work on the batch handed out last.
template <class TX, int RX, class TY, int RY>
void Loader<TX, RX, TY, RY>::release_previous() {
  State& s = *s_;
  if (s.handed_slot >= 0) {
#if defined(FG_BACKEND_CUDA)
    s.slots[static_cast<std::size_t>(s.handed_slot)].released.record(cuda_stream());
#endif
    s.handed_slot = -1;
  }
}

/// Gathers batch k of the current epoch into its slot (CUDA: through the slot's pinned staging and
/// an asynchronous copy on the copy stream, once the slot's previous batch is released).
template <class TX, int RX, class TY, int RY>
void Loader<TX, RX, TY, RY>::fill(index_t k) {
  State& s = *s_;
  Slot& slot = s.slots[static_cast<std::size_t>(slot_of(k))];
  const index_t rows = slot.x.shape(0);  // batch, or the tail
  const index_t first = k * s.options.batch;
#if defined(FG_BACKEND_CUDA)
  slot.copied.synchronize();  // the staging's previous copy has finished reading it
  TX* x = slot.staged_x.data();
  TY* y = slot.staged_y.data();
#else
  TX* x = slot.x.data();  // "device" memory is host memory
  TY* y = slot.y.data();
#endif
  const std::size_t x_bytes = static_cast<std::size_t>(s.x_row) * sizeof(TX);
  const std::size_t y_bytes = static_cast<std::size_t>(s.y_row) * sizeof(TY);
  for (index_t r = 0; r < rows; ++r) {
    const index_t sample = s.order[static_cast<std::size_t>(first + r)];
    if (x_bytes > 0) {
      std::memcpy(x + r * s.x_row, s.x.data() + sample * s.x_row, x_bytes);
      if (s.transform) {
        SplitMix64 gen = sample_generator(s.options.seed, static_cast<std::uint64_t>(s.epoch),
                                          static_cast<std::uint64_t>(sample));
        s.transform(std::span<TX>(x + r * s.x_row, static_cast<std::size_t>(s.x_row)), gen);
      }
    }
    if (y_bytes > 0) {
      std::memcpy(y + r * s.y_row, s.y.data() + sample * s.y_row, y_bytes);
    }
  }
#if defined(FG_BACKEND_CUDA)
  const cudaStream_t copy = s.copy_stream.get();
  slot.released.wait_on(copy);  // the GPU is done with the batch this slot held before
  if (rows * x_bytes > 0) {
    FG_CUDA_CHECK(cudaMemcpyAsync(slot.x.data(), x, static_cast<std::size_t>(rows) * x_bytes,
                                  cudaMemcpyHostToDevice, copy));
  }
  if (rows * y_bytes > 0) {
    FG_CUDA_CHECK(cudaMemcpyAsync(slot.y.data(), y, static_cast<std::size_t>(rows) * y_bytes,
                                  cudaMemcpyHostToDevice, copy));
  }
  slot.copied.record(copy);
#endif
}

/// The batches of one epoch as a range: begin() starts the epoch.
template <class TX, int RX, class TY, int RY>
class Loader<TX, RX, TY, RY>::EpochRange {
 public:
  struct End {};
  class Iterator {
   public:
    using value_type = batch_type;
    using difference_type = std::ptrdiff_t;
    explicit Iterator(Loader* loader) : loader_(loader), batch_(loader->next()) {}
    const batch_type& operator*() const { return *batch_; }
    const batch_type* operator->() const { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    bool operator==(End) const { return !batch_.has_value(); }

   private:
    Loader* loader_;
    std::optional<batch_type> batch_;
  };

  EpochRange(Loader& loader, index_t epoch) : loader_(&loader), epoch_(epoch) {}
  Iterator begin() {
    loader_->start_epoch(epoch_);
    return Iterator(loader_);
  }
  End end() const { return {}; }

 private:
  Loader* loader_;
  index_t epoch_;
};

}  // namespace fusegrad::inline FG_BACKEND_NS::data
