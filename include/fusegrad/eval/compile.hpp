// fusegrad/eval/compile.hpp — compile_step(f): a training step (or any function that only issues
// fusegrad work) captured once and replayed.
//
//   auto step = fg::compile_step([&](const auto& x, const auto& y) {
//     auto [loss, grads] = fg::value_and_grad(model_loss(x, y), W1, b1, W2, b2);
//     opt.step(grads);
//     loss_sum += loss;
//   });
//   for (const auto& batch : loader.epoch(e)) step(batch.x(), batch.y());
//
// CUDA: the first call with given tensor arguments (their addresses and shapes) runs f as usual,
// which initialises what is created on first use (cuBLAS, launch sizes); the second captures f as
// a CUDA graph; every later call replays it with one launch, so the step's dozen kernels cost one
// launch of host time. Host backend: f runs directly every time. Either way each call adds the
// step's kernels to stats::kernel_launches() (a capture's recorded kernels count when the graph
// runs, not when it is recorded); stats::graph_launches() counts the replays.
//
// Rules for f (CUDA): the arguments must be tensors; f must not synchronise (no item(), no
// to_vector(), no copies from the host); everything f reads on the host is read at capture, so
// what changes from step to step must live in device memory — the data (tensors at fixed
// addresses: the loader's batch slots), the optimizer's learning rate and step count are. A new
// argument address or shape (the last, smaller batch) gets its own graph.
//
// Every tensor a compiled step touches should keep its address for as long as the step is used:
// the parameters, the optimizer's state, and anything the step adds into (a running loss sum).
// Reset such a tensor in place — `loss_sum.fill(0.f)` — not by assigning a new one. A graph is never
// replayed into freed memory: when any buffer that existed at capture has been freed since
// (`loss_sum = fg::zeros(...)` frees the one the graph adds into), the next call captures again
// (recaptures() counts it), which costs a capture, so keep addresses stable. Vars belong inside
// the step: a step built from statements (Var assignments, grad over them, the optimizer) is
// captured whole; the graph's bookkeeping is host memory only, with no device allocation or
// synchronisation of its own, and every Var and temporary created in the step is freed in it.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "fusegrad/memory/tensor.hpp"

#if defined(FG_BACKEND_CUDA)
#include "fusegrad/backend/cuda/graph.hpp"
#endif

namespace fusegrad::inline FG_BACKEND_NS {

template <class F>
class CompiledStep {
 public:
  explicit CompiledStep(F f) : f_(std::move(f)) {}

  template <class... T, int... R>
  void operator()(const Tensor<T, R>&... args) {
    std::vector<index_t> key;
    (append_key(key, args), ...);
    Entry* entry = nullptr;
    for (auto& e : entries_) {
      if (e->key == key) {
        entry = e.get();
      }
    }
    if (entry == nullptr) {
      entries_.push_back(std::make_unique<Entry>(std::move(key)));
      f_(args...);  // first call: eager, so that everything created on first use exists
      return;
    }
    if (entry->captured && entry->watch.stale()) {
      ++recaptures_;  // memory the graph may use was freed: capture again, never replay into it
      entry->captured = false;
    }
    if (!entry->captured) {
      entry->watch.restart();
#if defined(FG_BACKEND_CUDA)
      entry->graph.capture([&] { f_(args...); });
      entry->graph.launch();
#else
      f_(args...);
#endif
      entry->captured = true;
      return;
    }
#if defined(FG_BACKEND_CUDA)
    entry->graph.launch();
#else
    f_(args...);
#endif
  }

  /// Argument sets captured so far (each is one CUDA graph; on the host backend the same
  /// bookkeeping runs, and a "captured" step runs f directly).
  std::size_t graphs() const {
    std::size_t n = 0;
    for (const auto& e : entries_) {
      n += e->captured ? 1 : 0;
    }
    return n;
  }
  /// Captures taken again because memory that existed at capture was freed since (a tensor the
  /// step uses was reassigned, or any older tensor was freed: the check is conservative).
  std::size_t recaptures() const { return recaptures_; }

 private:
  template <class T, int R>
  static void append_key(std::vector<index_t>& key, const Tensor<T, R>& t) {
    key.push_back(reinterpret_cast<index_t>(t.data()));
    for (int i = 0; i < R; ++i) {
      key.push_back(t.shape()[i]);
    }
  }
  struct Entry {
    explicit Entry(std::vector<index_t> k) : key(std::move(k)) {}
    std::vector<index_t> key;  // address and shape of every argument
    bool captured = false;
    BufferWatch watch;         // stale once a buffer older than the capture is freed
#if defined(FG_BACKEND_CUDA)
    backend::Graph graph;
#endif
  };
  std::vector<std::unique_ptr<Entry>> entries_;
  std::size_t recaptures_ = 0;
  F f_;
};

/// Wraps f (a function of tensors that issues fusegrad work) so that repeated calls with the same
/// tensors replay a captured CUDA graph. See the file comment for the rules f must follow.
template <class F>
CompiledStep<F> compile_step(F f) {
  return CompiledStep<F>(std::move(f));
}

}  // namespace fusegrad::inline FG_BACKEND_NS
