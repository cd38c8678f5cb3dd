// fusegrad/autodiff/tape.hpp — Tape: the state of one grad() call.
//
// It knows the variables gradients were asked for (by the memory they occupy: a leaf is a use of
// a variable when it reads the variable's elements), keeps the Saved nodes of the recorded forward
// pass in the order they were computed (children before parents), finds a subtree that occurs
// twice so it is computed once, owns the temporaries of the backward pass, and collects each
// variable's gradient.
//
// Backward = the rule of the root, then every Saved node's rule in reverse order of recording:
// a node is only processed after every node that reads it, so all of its gradient has arrived.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "fusegrad/autodiff/accumulate.hpp"
#include "fusegrad/autodiff/saved.hpp"
#include "fusegrad/eval/factory.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

namespace detail {
/// One address per type: tells Saved states of different node types apart without RTTI.
template <class N>
inline constexpr char type_tag = 0;
}  // namespace detail

template <class... Vars>
class Tape {
 public:
  explicit Tape(const Vars&... vars) : vars_{&vars...} {}
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  /// True when `leaf` reads elements of a variable whose gradient was asked for.
  template <class T, int R>
  bool is_variable(const Leaf<T, R>& leaf) const {
    return std::apply([&](const auto*... var) { return (reads(leaf, *var) || ...); }, vars_);
  }

  /// Adds `g`, the gradient of `leaf` (in its shape), to every variable the leaf reads.
  template <class T, int R, class G>
  void contribute(const Leaf<T, R>& leaf, const G& g) {
    visit([&](const auto& var, auto& grad, bool& has) {
      if constexpr (std::is_same_v<T, typename std::remove_cvref_t<decltype(var)>::element_type>) {
        if (reads(leaf, var)) {
          accumulate_into_variable(var, grad, has, leaf, g);
        }
      }
    });
  }

  /// The Saved node for the recorded subtree `node`: an earlier one when the same subtree was
  /// saved before (its value is reused), else a new one whose value is computed now. With
  /// `differentiate` false no gradient ever flows into it (a value a fused rule reads, such as
  /// cross-entropy's log-sum-exp), so its rule is neither run nor compiled.
  template <bool differentiate = true, class N>
  Saved<N> save(const N& node) {
    // A value saved for a fused rule alone (no gradient) is not shared with a differentiated use.
    const void* const my_tag = &detail::type_tag<std::pair<N, std::bool_constant<differentiate>>>;
    for (const auto& [tag, state] : saved_) {
      if (tag == my_tag) {
        auto s = std::static_pointer_cast<SavedState<N>>(state);
        if (same(s->node, node)) {
          return Saved<N>{{}, s};
        }
      }
    }
    auto s = std::make_shared<SavedState<N>>(SavedState<N>{node, evaluate(node), {}, false, false});
    s->depends = differentiate && depends(node, *this);
    saved_.emplace_back(my_tag, s);
    if constexpr (differentiate) {
      if (s->depends) {
        backward_.emplace_back([this, s] {
          if (s->has_grad) {
            backprop_saved(s->node, s->value.view(), s->grad.view(), *this);
          }
        });
      }
    }
    return Saved<N>{{}, s};
  }

  /// Keeps a temporary of the backward pass alive until the tape ends; returns a view of it.
  template <class T, int R>
  Leaf<T, R> keep(Tensor<T, R>&& t) {
    return kept_.keep(std::move(t));
  }

  /// Runs the rules of the Saved nodes that received a gradient, parents before children.
  void run_backward() {
    for (auto it = backward_.rbegin(); it != backward_.rend(); ++it) {
      (*it)();
    }
  }

  /// The gradients, in the order the variables were given; a variable the loss does not depend
  /// on gets zeros (one fill kernel).
  std::tuple<Vars...> take_gradients() {
    visit([](const auto& var, auto& grad, bool& has) {
      if (!has) {
        using V = std::remove_cvref_t<decltype(var)>;
        grad = zeros<typename V::element_type>(var.shape());
        has = true;
      }
    });
    return std::move(grads_);
  }

 private:
  template <class T, int R, class V>
  static bool reads(const Leaf<T, R>& leaf, const V& var) {
    if constexpr (std::is_same_v<T, typename V::element_type>) {
      return leaf.extents.size() > 0 && var.size() > 0 && leaf.data >= var.data() &&
             leaf.data < var.data() + var.size();
    } else {
      return false;
    }
  }
  /// f(variable, its gradient, whether the gradient holds a value) for each variable.
  template <class F>
  void visit(F&& f) {
    visit_impl(f, std::index_sequence_for<Vars...>{});
  }
  template <class F, std::size_t... I>
  void visit_impl(F& f, std::index_sequence<I...>) {
    (f(*std::get<I>(vars_), std::get<I>(grads_), has_[I]), ...);
  }

  std::tuple<const Vars*...> vars_;
  std::tuple<Vars...> grads_;
  std::array<bool, sizeof...(Vars)> has_{};
  std::vector<std::pair<const void*, std::shared_ptr<void>>> saved_;
  std::vector<std::function<void()>> backward_;
  Plan kept_;  // temporaries of the backward pass
};

}  // namespace fusegrad::inline FG_BACKEND_NS
