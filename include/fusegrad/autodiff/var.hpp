// fusegrad/autodiff/var.hpp — Var<T, R>: a tensor that remembers the statement that computed it.
//
//   fg::Var<float, 2> h = fg::relu(fg::matmul(x, W1) + b1);   // one statement: GEMM + 1 kernel
//   for (auto& block : blocks) { h = h + block(h); }          // depth chosen at run time
//   auto [loss, grads] = fg::value_and_grad(fg::mean(fg::nn::cross_entropy(head(h), y)), params);
//
// Assigning an expression to a Var evaluates it with exactly the kernels a Tensor assignment
// launches, then records one graph node (autodiff/graph.hpp): the expression (plain leaves and
// numbers), the values its backward reads (matrix products, reductions: computed once, now), and
// the Var storages it read. The node's backward is the statement's own rule, derived from the
// expression's type as grad() derives one (autodiff/rules.hpp) and compiled once per statement
// type — so compile time grows with the number of distinct statements, not with depth.
//
// A Var is used like a Tensor: in expressions, views, item(), to_vector(), printing. Copies share
// the value (it is never modified in place while something else reads it). Assigning a Var with
// recording on always writes a new value; the old one lives on while a recorded statement reads it.
//
// Lifetime rule (as for any expression): the plain tensors a recorded statement reads (parameters,
// inputs) must stay alive and unchanged until grad() has run; the Vars it reads are kept alive by
// the graph. A compiled step (compile_step) must create its Vars inside the step.
#pragma once

#include <memory>
#include <ostream>
#include <utility>

#include "fusegrad/autodiff/rules.hpp"

namespace fusegrad::inline FG_BACKEND_NS {

template <class T, int R>
class Var;

/// A Var is a tensor in every expression: it reads as a leaf of its value.
template <class T, int R>
struct is_tensor<Var<T, R>> : std::true_type {};

namespace detail {

/// The value of a Var<T, R>.
template <class T, int R>
class VarValue final : public VarStorage {
 public:
  explicit VarValue(Tensor<T, R>&& v) : value(std::move(v)) { claim(); }
  ~VarValue() override { unregister(); }

  /// Registers the value's memory again after it was reallocated in place.
  void claim() {
    unregister();
    register_memory(value.data(), static_cast<std::size_t>(value.size()) * sizeof(T));
  }

  Tensor<T, R> value;
};

/// The recorded statement `var = expr` for an expression of type N and a Var<T, R>.
template <class T, int R, class N>
class Statement final : public Node {
 public:
  explicit Statement(const N& expr) : expr_(expr) {}

  /// The saved values of the forward pass (filled while recording).
  SavedList& saved() { return saved_; }
  /// Sets the value the statement computed (owned by the storage that owns this node).
  void computed(const Tensor<T, R>& value) {
    output_ = &value;
    sink_ = GradSink<T>(value.data(), value.shape());
  }

  void backward(Tape& tape) override {
    auto scope = tape.replay(saved_);
    const auto root = record(expr_, tape);
    const Leaf<T, R> g(sink_.grad.data(), output_->shape());
    using Root = std::remove_cvref_t<decltype(root)>;
    if constexpr (is_saved<Root>::value) {
      // The statement's value is the saved node's: its rule reads it there.
      if (root.state->depends) {
        backprop_saved(root.state->node, output_->view(), g, tape);
      }
    } else {
      if (depends(root, tape)) {
        backprop(root, g, tape);
      }
    }
    tape.run_backward();
  }
  bool has_gradient() const override { return sink_.has; }
  void reset_gradient() override { sink_.reset(); }
  const void* dtype_tag() const override { return &type_tag<T>; }
  void* sink() override { return &sink_; }

 protected:
  void release_saved() noexcept override {
    saved_.clear();
    saved_.shrink_to_fit();
    sink_.reset();
  }

 private:
  N expr_;
  SavedList saved_;
  GradSink<T> sink_;
  const Tensor<T, R>* output_ = nullptr;
};

}  // namespace detail

/// A differentiable tensor: a Tensor that remembers the statement that computed it, so that grad()
/// reaches through it. See the file comment.
/// Example: `fg::Var<float, 2> h = fg::relu(fg::matmul(x, W) + b); auto [gW] = fg::grad(fg::sum(h * h), W);`
template <class T, int R>
class Var {
  static_assert(dtype<T>, "Var: the element type must be a fusegrad dtype (float, double, ...)");

 public:
  using element_type = T;
  using value_type = compute_t<T>;
  static constexpr int rank = R;

  /// An empty Var (every extent 0; a rank-0 Var holds one unspecified element).
  Var() : storage_(std::make_shared<detail::VarValue<T, R>>(Tensor<T, R>())) {}
  /// A constant Var that takes over `t`'s elements (no copy): nothing flows back through it unless
  /// it is asked for by grad().
  Var(Tensor<T, R>&& t) : storage_(std::make_shared<detail::VarValue<T, R>>(std::move(t))) {}  // NOLINT
  /// Evaluates `e` (one statement) and records it unless inside no_grad. A tensor is an
  /// expression too: `Var<float, 2> h = W;` copies W, and gradients flow back to W.
  template <tensor_expression E>
    requires(!std::is_same_v<std::remove_cvref_t<E>, Var>)
  Var(const E& e) {  // NOLINT: implicit, so that `Var<float, 2> h = a + b;` reads naturally
    assign(e);
  }

  Var(const Var&) = default;
  Var(Var&&) noexcept = default;
  Var& operator=(const Var&) = default;
  Var& operator=(Var&&) noexcept = default;

  /// `h = expr`: evaluates `expr` into a new value (in place under no_grad when nothing else reads
  /// this Var's value) and records the statement unless inside no_grad.
  template <tensor_expression E>
    requires(!std::is_same_v<std::remove_cvref_t<E>, Var>)
  Var& operator=(const E& e) {
    assign(e);
    return *this;
  }
  /// Makes this Var a constant holding `t`'s elements (no copy).
  Var& operator=(Tensor<T, R>&& t) {
    storage_ = std::make_shared<detail::VarValue<T, R>>(std::move(t));
    return *this;
  }

  /// `h += e` is the statement `h = h + e` (e broadcast to h's shape); likewise -=, *=, /=.
  template <operand E>
  Var& operator+=(const E& e) { return update(ops::add{}, e); }
  template <operand E>
  Var& operator-=(const E& e) { return update(ops::sub{}, e); }
  template <operand E>
  Var& operator*=(const E& e) { return update(ops::mul{}, e); }
  template <operand E>
  Var& operator/=(const E& e) { return update(ops::div{}, e); }

  const Shape<R>& shape() const { return value().shape(); }
  index_t shape(int axis) const { return value().shape(axis); }
  index_t size() const { return value().size(); }
  /// Device pointer to the first element (read only: a Var's value is never written in place
  /// while a recorded statement reads it).
  const T* data() const { return value().data(); }
  /// A non-owning view for use in expressions.
  Leaf<T, R> view() const { return value().view(); }
  std::vector<T> to_vector() const { return value().to_vector(); }
  T item() const { return value().item(); }
  /// The value as a Tensor (read only).
  const Tensor<T, R>& value() const { return storage_->value; }

  /// True when a recorded statement computed this value and grad() has not released it.
  bool recorded() const { return storage_->node && !storage_->node->released(); }
  /// The node that computed this value (null for a constant); what grad() starts from.
  const std::shared_ptr<Node>& node() const { return storage_->node; }

 private:
  template <class E>
  void assign(const E& e) {
    auto expr = as_node(e);
    using N = decltype(expr);
    static_assert(N::rank == R,
                  "Var assignment: the expression's rank differs from the Var's rank (reshape, "
                  "reduce or broadcast_to the expression first)");
    if constexpr (N::rank == R) {  // after a failed check, no cascade of errors
      detail::check_dtype<N, T>();
      if (!grad_enabled()) {
        assign_constant(expr);
      } else {
        record_statement(expr);
      }
    }
  }

  /// no_grad: exactly a Tensor assignment, in place when this Var alone holds its value.
  template <class N>
  void assign_constant(const N& expr) {
    if (storage_ && storage_.use_count() == 1) {
      storage_->node.reset();
      assign_to(storage_->value, expr);
      storage_->claim();
    } else {
      storage_ = std::make_shared<detail::VarValue<T, R>>(Tensor<T, R>(expr));
    }
  }

  /// Records the statement: its saved values computed once, its value evaluated from them.
  template <class N>
  void record_statement(const N& expr) {
    auto node = std::make_shared<detail::Statement<T, R, N>>(expr);
    Tensor<T, R> value;
    {
      Tape tape(*node, node->saved());
      const auto root = record(expr, tape);
      using Root = std::remove_cvref_t<decltype(root)>;
      if constexpr (is_saved<Root>::value && std::is_same_v<typename Root::value_type, T>) {
        value = std::move(root.state->value);  // the statement's value is the saved node's
      } else {
        value = root;
      }
    }
    auto storage = std::make_shared<detail::VarValue<T, R>>(std::move(value));
    node->computed(storage->value);
    storage->node = std::move(node);
    storage_ = std::move(storage);
  }

  template <class Op, class E>
  Var& update(const Op& op, const E& e) {
    if (!grad_enabled() && storage_.use_count() == 1) {
      storage_->node.reset();
      update_in_place(storage_->value, op, e);
      storage_->claim();  // the update may have gone through a new buffer
      return *this;
    }
    auto rhs = detail::operand_node<E, Var>(e);
    static_assert(decltype(rhs)::rank <= R, "in-place update: the right-hand side has a higher rank than the Var");
    const auto s = rhs.shape();
    for (int i = 0; i < decltype(rhs)::rank; ++i) {
      if (s[i] != 1 && s[i] != shape()[i + R - decltype(rhs)::rank]) {
        throw shape_error(std::string(Op::name) + " (in place): shape " + to_string(s) +
                          " does not broadcast to the Var's shape " + to_string(shape()));
      }
    }
    assign(make_map(Op::name, op, view(), rhs));
    return *this;
  }

  std::shared_ptr<detail::VarValue<T, R>> storage_;
};

/// Prints a Var as its value.
template <class T, int R>
std::ostream& operator<<(std::ostream& os, const Var<T, R>& v) {
  return os << v.value();
}

}  // namespace fusegrad::inline FG_BACKEND_NS
