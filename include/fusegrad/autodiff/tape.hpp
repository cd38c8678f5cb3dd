// fusegrad/autodiff/tape.hpp — Tape: the state of one differentiation, and of one statement's
// recording.
//
// The adjoint rules (rules.hpp) and the recording (record.hpp) ask the tape five things:
//   is_variable(leaf)     does a gradient flow into the memory this leaf reads?
//   note(leaf)            a leaf was recorded (to find the Vars a statement or loss reads)
//   contribute(leaf, g)   add g, the gradient of the leaf, to what it reads
//   save(node)            a boundary node, computed once (or, replaying, computed before)
//   keep(tensor)          keep a temporary until the rules that read it have run
//
// Modes (one Tape type serves them all, so every rule is compiled once):
//   live     grad()'s loss: nodes are evaluated as they are saved, rules registered at once;
//   forward  a Var assignment (autodiff/var.hpp): nodes are evaluated and kept in the statement's
//            list, the leaves noted; nothing about gradients is decided yet (which tensors will be
//            asked for is only known when grad() is called);
//   replay   a statement's backward: the statement is recorded again, but each saved node is taken
//            from the list the forward pass kept (same walk, same order), never recomputed.
//
// Variables are known by the memory they occupy: a tensor gradients were asked for (a GradSink),
// or the value of a recorded Var whose statement leads back to one (its node's sink). Backward =
// the loss's rules, then each recorded statement it reaches in reverse order of recording: a node
// runs after every statement that read its value, so all of its gradient has arrived.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "fusegrad/autodiff/accumulate.hpp"
#include "fusegrad/autodiff/graph.hpp"
#include "fusegrad/autodiff/saved.hpp"
#include "fusegrad/eval/factory.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {
/// One address per type: tells Saved states and sinks of different types apart without RTTI.
template <class N>
inline constexpr char type_tag = 0;

inline std::atomic<std::uint64_t> tape_passes{0};

/// What a forward pass saved, in the order it saved it: (type tag, SavedState<N>).
using SavedList = std::vector<std::pair<const void*, std::shared_ptr<void>>>;
}  // namespace detail

/// The error grad() throws when the loss reads a Var whose recorded graph an earlier grad()
/// released.
inline error released_graph_error() {
  return error(
      "grad: the loss reads a Var whose recorded graph was released by an earlier grad() (each "
      "grad frees the graph it ran). Compute the Var again, or keep the graph for a second grad: "
      "fg::grad(loss, fg::retain_graph, vars...)");
}

class Tape {
 public:
  enum class Mode { live, forward, replay };

  /// A tape for grad(): live mode.
  Tape() : pass_(detail::tape_passes.fetch_add(1, std::memory_order_relaxed) + 1) {}
  /// A tape recording statement `node`'s forward pass into `saved`.
  Tape(Node& node, detail::SavedList& saved) : mode_(Mode::forward), recording_(&node), saved_(&saved) {}
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // ---- what gradients are asked for ----------------------------------------------------------

  /// Asks for the gradient of the tensor at `data` with shape `shape`; returns its request index.
  template <class T, int R>
  std::size_t request(const T* data, const Shape<R>& shape) {
    const auto* begin = reinterpret_cast<const char*>(data);
    requests_.push_back(Request{&detail::type_tag<T>, std::make_shared<GradSink<T>>(data, shape), nullptr,
                                begin, begin + shape.size() * static_cast<index_t>(sizeof(T))});
    return requests_.size() - 1;
  }
  /// Asks for the gradient of a recorded Var's value: its node's own gradient.
  std::size_t request(const std::shared_ptr<Node>& node) {
    requests_.push_back(Request{node->dtype_tag(), nullptr, node, nullptr, nullptr});
    return requests_.size() - 1;
  }
  /// The gradient asked for by request `i`, as a tensor of `shape` (zeros when none arrived).
  template <class T, int R>
  Tensor<T, R> take(std::size_t i, const Shape<R>& shape) {
    Request& r = requests_[i];
    if (r.node) {
      auto* sink = static_cast<GradSink<T>*>(r.node->sink());
      if (r.node->pass != pass_) {
        sink->reset();  // the loss does not read it: zeros (not what an earlier pass left)
      }
      for (std::size_t later = i + 1; later < requests_.size(); ++later) {
        if (requests_[later].node == r.node && sink->has) {  // asked for again: a copy this time
          return Tensor<T, 1>(sink->grad).reshaped(shape);
        }
      }
      return sink->take(shape);
    }
    return static_cast<GradSink<T>*>(r.sink.get())->take(shape);
  }

  // ---- what the recording and the rules ask ---------------------------------------------------

  /// True when a gradient flows into what `leaf` reads.
  template <class T, int R>
  bool is_variable(const Leaf<T, R>& leaf) const {
    if constexpr (!std::is_floating_point_v<compute_t<T>>) {
      return false;
    } else {
      if (leaf.extents.size() == 0) {
        return false;
      }
      for (const Request& r : requests_) {
        if (r.sink && r.tag == &detail::type_tag<T> &&
            static_cast<const GradSink<T>*>(r.sink.get())->contains(leaf.data)) {
          return true;
        }
      }
      const Node* n = live_node(leaf.data);
      return n != nullptr && n->needed;
    }
  }

  /// Called by record() for every leaf: a statement's forward pass notes what it reads; grad()'s
  /// loss finds the recorded statements it reaches.
  template <class T, int R>
  void note(const Leaf<T, R>& leaf) {
    if (leaf.extents.size() == 0) {
      return;
    }
    if (mode_ == Mode::forward) {
      recording_->note_read(leaf.data, std::is_floating_point_v<compute_t<T>>);
    } else if (mode_ == Mode::live) {
      if (VarStorage* s = find_storage(leaf.data); s != nullptr && s->node) {
        visit(s->node);
      }
    }
  }

  /// Adds `g`, the gradient of `leaf` (in its shape), to every variable the leaf reads.
  template <class T, int R, class G>
  void contribute(const Leaf<T, R>& leaf, const G& g) {
    if constexpr (std::is_floating_point_v<compute_t<T>>) {
      for (Request& r : requests_) {
        if (r.sink && r.tag == &detail::type_tag<T>) {
          auto& sink = *static_cast<GradSink<T>*>(r.sink.get());
          if (sink.contains(leaf.data)) {
            accumulate_into_sink(sink, leaf, g);
          }
        }
      }
      if (Node* n = live_node(leaf.data); n != nullptr && n->needed && n->dtype_tag() == &detail::type_tag<T>) {
        accumulate_into_sink(*static_cast<GradSink<T>*>(n->sink()), leaf, g);
      }
    }
  }

  /// The Saved node for the recorded subtree `node`: an earlier one when the same subtree was
  /// saved before (its value is reused), else a new one whose value is computed now (replaying:
  /// the one the forward pass computed). With `differentiate` false no gradient ever flows into
  /// it (a value a fused rule reads, such as cross-entropy's log-sum-exp), so its rule is neither
  /// run nor compiled.
  template <bool differentiate = true, class N>
  Saved<N> save(const N& node) {
    // A value saved for a fused rule alone (no gradient) is not shared with a differentiated use.
    const void* const my_tag = &detail::type_tag<std::pair<N, std::bool_constant<differentiate>>>;
    detail::SavedList& list = *saved_;
    const std::size_t seen = mode_ == Mode::replay ? cursor_ : list.size();
    for (std::size_t i = 0; i < seen; ++i) {
      if (list[i].first == my_tag) {
        auto s = std::static_pointer_cast<SavedState<N>>(list[i].second);
        if (same(s->node, node)) {
          return Saved<N>{{}, s};
        }
      }
    }
    std::shared_ptr<SavedState<N>> s;
    if (mode_ == Mode::replay) {
      if (cursor_ >= list.size() || list[cursor_].first != my_tag) {
        throw error("autodiff: a statement's backward pass does not match its forward pass (an "
                    "expression node's record() is not deterministic)");
      }
      s = std::static_pointer_cast<SavedState<N>>(list[cursor_++].second);
      s->grad = {};
      s->has_grad = false;
    } else {
      s = std::make_shared<SavedState<N>>(SavedState<N>{node, evaluate(node), {}, false, false});
      list.emplace_back(my_tag, s);
      if (mode_ == Mode::forward) {
        return Saved<N>{{}, s};
      }
    }
    s->depends = differentiate && depends(node, *this);
    if constexpr (differentiate) {
      if (s->depends) {
        backward_->emplace_back([this, s] {
          if (s->has_grad) {
            backprop_saved(s->node, s->value.view(), s->grad.view(), *this);
          }
        });
      }
    }
    return Saved<N>{{}, s};
  }

  /// Keeps a temporary of the backward pass alive until the current statement's (or the loss's)
  /// rules have run; returns a view of it.
  template <class T, int R>
  Leaf<T, R> keep(Tensor<T, R>&& t) {
    return kept_->keep(std::move(t));
  }

  /// Runs the rules of the current scope's Saved nodes that received a gradient, parents first.
  void run_backward() {
    for (auto it = backward_->rbegin(); it != backward_->rend(); ++it) {
      (*it)();
    }
  }

  // ---- the graph of statements ----------------------------------------------------------------

  /// While the returned guard lives, the tape replays statement `saved`'s recording: saved nodes
  /// come from the list, rules and temporaries belong to this statement alone.
  class ReplayScope {
   public:
    ReplayScope(Tape& t, detail::SavedList& saved)
        : tape_(t), mode_(t.mode_), saved_(t.saved_), cursor_(t.cursor_), backward_(t.backward_),
          kept_(t.kept_) {
      t.mode_ = Mode::replay;
      t.saved_ = &saved;
      t.cursor_ = 0;
      t.backward_ = &my_backward_;
      t.kept_ = &my_kept_;
    }
    ~ReplayScope() {
      tape_.mode_ = mode_;
      tape_.saved_ = saved_;
      tape_.cursor_ = cursor_;
      tape_.backward_ = backward_;
      tape_.kept_ = kept_;
    }
    ReplayScope(const ReplayScope&) = delete;
    ReplayScope& operator=(const ReplayScope&) = delete;

   private:
    Tape& tape_;
    Mode mode_;
    detail::SavedList* saved_;
    std::size_t cursor_;
    std::vector<std::function<void()>>* backward_;
    Plan* kept_;
    std::vector<std::function<void()>> my_backward_;
    Plan my_kept_;
  };
  ReplayScope replay(detail::SavedList& saved) { return ReplayScope(*this, saved); }

  /// Runs the backward of every recorded statement the loss reached that received a gradient, in
  /// reverse order of recording. A statement's gradient is freed once it has run (unless it was
  /// asked for).
  void run_graph() {
    std::sort(nodes_.begin(), nodes_.end(), [](const auto& a, const auto& b) { return a->seq() > b->seq(); });
    for (const auto& n : nodes_) {
      if (n->needed && n->has_gradient()) {
        n->backward(*this);
      }
      if (!n->requested) {
        n->reset_gradient();
      }
    }
  }

  /// Releases every statement the loss reached: saved values and inputs go back to the pool.
  void release_graph() {
    for (const auto& n : nodes_) {
      n->release();
    }
    nodes_.clear();
  }

 private:
  struct Request {
    const void* tag;              // the element type's
    std::shared_ptr<void> sink;   // a GradSink<T> for a tensor (or a Var with no recorded node)
    std::shared_ptr<Node> node;   // a recorded Var: its node's own gradient
    const char* begin;            // the sink's variable's bytes
    const char* end;
  };

  /// The recorded node whose value holds `p` and that this pass visited; null otherwise.
  Node* live_node(const void* p) const {
    VarStorage* s = find_storage(p);
    if (s == nullptr || !s->node || s->node->pass != pass_) {
      return nullptr;
    }
    return s->node.get();
  }

  /// Visits `start` and every recorded statement it reads, each once per pass, deciding for each
  /// whether a requested variable lies upstream (children before parents, without recursion).
  void visit(const std::shared_ptr<Node>& start) {
    if (start->pass == pass_) {
      return;
    }
    std::vector<std::pair<std::shared_ptr<Node>, bool>> stack{{start, false}};
    while (!stack.empty()) {
      auto [n, expanded] = std::move(stack.back());
      stack.pop_back();
      if (expanded) {
        bool need = n->requested || reads_request(*n);
        for (const auto& in : n->inputs()) {
          need = need || (in->node && in->node->needed);
        }
        n->needed = need;
        continue;
      }
      if (n->pass == pass_) {
        continue;
      }
      if (n->released()) {
        throw released_graph_error();
      }
      n->pass = pass_;
      n->needed = false;
      n->requested = false;
      for (const Request& r : requests_) {
        n->requested = n->requested || r.node == n;
      }
      n->reset_gradient();
      nodes_.push_back(n);
      stack.emplace_back(n, true);
      for (const auto& in : n->inputs()) {
        if (in->node && in->node->pass != pass_) {
          stack.emplace_back(in->node, false);
        }
      }
    }
  }

  /// True when the statement reads a tensor whose gradient was asked for.
  bool reads_request(const Node& n) const {
    for (const void* p : n.reads()) {
      for (const Request& r : requests_) {
        const auto* c = static_cast<const char*>(p);
        if (r.sink && c >= r.begin && c < r.end) {
          return true;
        }
      }
    }
    return false;
  }

  Mode mode_ = Mode::live;
  std::uint64_t pass_ = 0;
  Node* recording_ = nullptr;            // forward mode: the statement being recorded
  std::vector<Request> requests_;
  std::vector<std::shared_ptr<Node>> nodes_;   // every statement the loss reached, this pass
  detail::SavedList own_saved_;
  detail::SavedList* saved_ = &own_saved_;
  std::size_t cursor_ = 0;               // replay: the next entry of *saved_
  std::vector<std::function<void()>> own_backward_;
  std::vector<std::function<void()>>* backward_ = &own_backward_;
  Plan own_kept_;
  Plan* kept_ = &own_kept_;
};

}  // namespace fusegrad::inline FG_BACKEND_NS
