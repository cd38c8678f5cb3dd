// fusegrad/autodiff/graph.hpp — the recorded graph of statements: what a Var's value remembers
// about how it was computed, and the switch that turns recording off.
//
//   VarStorage      the value of a Var (a tensor) and the statement that computed it (a Node, or
//                   none for a constant); registered by address, so that a leaf of any expression
//                   that reads a Var's memory finds the Var (expressions hold plain leaves)
//   Node            one recorded statement: its compiled backward (type-erased once per statement
//                   type, autodiff/var.hpp), the values that backward needs, and the storages it read
//   no_grad         a scope guard: Var assignments inside it record nothing and keep nothing
//
// Ownership: a Var holds its storage; a storage holds the node that computed it; a node holds the
// storages its statement read. So a node keeps alive exactly the values its backward reads, a chain
// `h = block(h)` stays alive as long as its last value, and nothing points back (no cycles).
// grad() releases the nodes it ran (their saved values and inputs go back to the pool) unless
// asked to retain them.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fusegrad/core/error.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

class Tape;
class Node;

/// The value of a Var, seen without its type: the memory it occupies and the node that computed
/// it. Registered while it lives, so that find_storage(p) knows which Var a pointer reads.
class VarStorage : public std::enable_shared_from_this<VarStorage> {
 public:
  VarStorage(const VarStorage&) = delete;
  VarStorage& operator=(const VarStorage&) = delete;
  virtual ~VarStorage() { unregister(); }

  /// The statement that computed this value; null for a constant (a Var computed under no_grad,
  /// made from a tensor, or detached).
  std::shared_ptr<Node> node;

  const char* begin() const { return begin_; }
  const char* end() const { return end_; }

 protected:
  VarStorage() = default;
  /// Registers the memory [begin, end) as this storage's (nothing for an empty value).
  void register_memory(const void* begin, std::size_t bytes);
  void unregister() noexcept;

 private:
  const char* begin_ = nullptr;
  const char* end_ = nullptr;
};

namespace detail {

/// Every live VarStorage by the address of its first byte. Storages never overlap (each owns its
/// allocation), so the one a pointer falls into is the last that starts at or before it.
class StorageRegistry {
 public:
  void add(const char* begin, VarStorage* s) {
    std::lock_guard<std::mutex> lock(mutex_);
    map_[begin] = s;
  }
  void remove(const char* begin, const VarStorage* s) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = map_.find(begin);
    if (it != map_.end() && it->second == s) {
      map_.erase(it);
    }
  }
  VarStorage* find(const void* p) const {
    const auto* c = static_cast<const char*>(p);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = map_.upper_bound(c);
    if (it == map_.begin()) {
      return nullptr;
    }
    --it;
    return c < it->second->end() ? it->second : nullptr;
  }

 private:
  mutable std::mutex mutex_;
  std::map<const char*, VarStorage*> map_;
};

/// Never destroyed: a Var that outlives static destruction still unregisters safely.
inline StorageRegistry& storage_registry() {
  static StorageRegistry* const registry = new StorageRegistry;
  return *registry;
}

inline thread_local int no_grad_depth = 0;
inline std::atomic<std::uint64_t> node_sequence{0};

}  // namespace detail

inline void VarStorage::register_memory(const void* begin, std::size_t bytes) {
  if (bytes == 0) {
    return;
  }
  begin_ = static_cast<const char*>(begin);
  end_ = begin_ + bytes;
  detail::storage_registry().add(begin_, this);
}
inline void VarStorage::unregister() noexcept {
  if (begin_ != nullptr) {
    detail::storage_registry().remove(begin_, this);
    begin_ = end_ = nullptr;
  }
}

/// The Var storage whose memory holds `p`, or null when `p` is not inside a live Var.
inline VarStorage* find_storage(const void* p) {
  return detail::storage_registry().find(p);
}

/// One recorded statement `var = expression`. Concrete nodes (autodiff/var.hpp) hold the
/// expression, the values its backward reads, and the gradient of the value they computed.
class Node {
 public:
  Node() : seq_(detail::node_sequence.fetch_add(1, std::memory_order_relaxed)) {}
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  virtual ~Node() = default;

  /// Order of recording: every node a statement read was recorded before it (smaller seq).
  std::uint64_t seq() const { return seq_; }
  /// The storages of the Vars the statement read (kept alive for its backward).
  const std::vector<std::shared_ptr<VarStorage>>& inputs() const { return inputs_; }
  /// The first element of every floating-point leaf the statement read (to see whether it reads a
  /// tensor gradients are asked for).
  const std::vector<const void*>& reads() const { return reads_; }
  bool released() const { return released_; }

  /// Notes that the statement reads memory at `p` (a leaf); called once per leaf while recording.
  void note_read(const void* p, bool floating) {
    if (floating) {
      reads_.push_back(p);
    }
    if (VarStorage* s = find_storage(p)) {
      for (const auto& in : inputs_) {
        if (in.get() == s) {
          return;
        }
      }
      inputs_.push_back(s->shared_from_this());
    }
  }

  /// Runs the statement's backward: its gradient (complete) flows to what it read.
  virtual void backward(Tape& tape) = 0;
  /// Whether a gradient arrived in this pass; dropping the one kept for the last backward pass.
  virtual bool has_gradient() const = 0;
  virtual void reset_gradient() = 0;
  /// The element type's tag and the gradient sink (a GradSink<T>*) of the value it computed.
  virtual const void* dtype_tag() const = 0;
  virtual void* sink() = 0;

  /// Frees what only a backward pass needs: saved values, the gradient, the inputs.
  void release() noexcept {
    release_saved();
    inputs_.clear();
    inputs_.shrink_to_fit();
    reads_.clear();
    reads_.shrink_to_fit();
    released_ = true;
  }

  // Scratch of one grad() call (Tape): whether a requested variable lies upstream.
  std::uint64_t pass = 0;
  bool needed = false;
  bool requested = false;

 protected:
  virtual void release_saved() noexcept = 0;

 private:
  std::uint64_t seq_;
  std::vector<std::shared_ptr<VarStorage>> inputs_;
  std::vector<const void*> reads_;
  bool released_ = false;
};

/// Record nothing while this guard lives (this thread): Var assignments evaluate exactly as Tensor
/// assignments do and keep no graph; a Var computed here is a constant to a later grad() (no
/// gradient flows through it). Nests.
/// Example: `{ fg::no_grad guard; fg::Var<float, 2> logits = model(x); print(accuracy(logits, y)); }`
class no_grad {
 public:
  no_grad() { ++detail::no_grad_depth; }
  ~no_grad() { --detail::no_grad_depth; }
  no_grad(const no_grad&) = delete;
  no_grad& operator=(const no_grad&) = delete;
};

/// False inside a no_grad scope (this thread).
inline bool grad_enabled() { return detail::no_grad_depth == 0; }

}  // namespace fusegrad::inline FG_BACKEND_NS
