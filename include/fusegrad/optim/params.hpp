// fusegrad/optim/params.hpp — ParamList<T>: the parameter tensors an optimizer updates, held by
// reference with their ranks erased, so one optimizer type serves any mix of ranks
// (W1 (784, 128), b1 (128), ...), each with a name: the dotted name of a module's field
// ("blocks.3.fc1.weight", from params(model)), or its index ("0", "1", ...) when added unnamed.
//
// Lifetime rule: the tensors are referenced, not owned. They must outlive the optimizer and stay
// at the same address (do not keep them in a std::vector that grows). Reassigning one
// (`W1 = fg::random::normal<float>(...)`) is fine: the optimizer reads data() at every step and
// checks that the element count still matches its state.
#pragma once

#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusegrad/core/error.hpp"
#include "fusegrad/memory/tensor.hpp"
#include "fusegrad/nn/module.hpp"

namespace fusegrad::inline FG_BACKEND_NS::optim {

namespace detail {

/// "[784, 128]" for a shape given as a list of extents (rank erased).
inline std::string dims_text(const std::vector<index_t>& dims) {
  std::string out = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(dims[i]);
  }
  return out + "]";
}

template <int R>
std::vector<index_t> dims_of(const Shape<R>& s) {
  std::vector<index_t> d(static_cast<std::size_t>(R));
  for (int i = 0; i < R; ++i) {
    d[static_cast<std::size_t>(i)] = s[i];
  }
  return d;
}

}  // namespace detail

/// References to parameter tensors of element type T (any ranks), in order, with unique names.
/// Example:
///   fg::optim::ParamList<float> ps = fg::optim::params(W1, b1);   // named "0", "1"
///   for (auto& w : extra) { ps.add(w); }   // tensors held by reference: `extra` must not grow
///   ps.add(scale, "scale");                // ps.name(ps.size() - 1) == "scale"
template <class T>
class ParamList {
 public:
  using element_type = T;

  ParamList() = default;

  /// Appends `p` (by reference) named `name`, or by its index ("3") when `name` is empty.
  /// Returns *this, so adds chain. Throws fusegrad::error when the name is already taken.
  template <int R>
  ParamList& add(Tensor<T, R>& p, std::string name = "") {
    if (name.empty()) {
      name = std::to_string(refs_.size());
    }
    check_unique(name);
    refs_.push_back(Ref{&p, &data_of<R>, &size_of<R>, &dims_of<R>, std::move(name), {}});
    return *this;
  }

  /// Appends every parameter of `other` (names must stay unique), with its weight decay.
  ParamList& add(const ParamList& other) {
    for (const Ref& r : other.refs_) {
      check_unique(r.name);
      refs_.push_back(r);
    }
    return *this;
  }

  /// The parameters for which `keep(name, dims)` is true, in order (a parameter group).
  /// Example: `auto norms = ps.where([](const std::string& n, auto&) { return n.ends_with("bias"); });`
  template <class Keep>
  ParamList where(Keep&& keep) const {
    ParamList out;
    for (std::size_t i = 0; i < refs_.size(); ++i) {
      if (keep(refs_[i].name, dims(i))) {
        out.refs_.push_back(refs_[i]);
      }
    }
    return out;
  }

  /// Gives every parameter of the list its own weight decay, used instead of the optimizer's
  /// option (a PyTorch parameter group's "weight_decay"). Throws fusegrad::error when negative.
  ParamList& set_weight_decay(double weight_decay) {
    if (!(weight_decay >= 0)) {
      throw error("ParamList::set_weight_decay: invalid weight decay " + std::to_string(weight_decay) +
                  " (must be >= 0)");
    }
    for (Ref& r : refs_) {
      r.weight_decay = weight_decay;
    }
    return *this;
  }
  /// The weight decay parameter i was given, if any (else the optimizer's option applies).
  std::optional<double> weight_decay(std::size_t i) const { return refs_[i].weight_decay; }

  /// Number of parameter tensors.
  std::size_t size() const { return refs_.size(); }
  bool empty() const { return refs_.empty(); }

  /// The name of parameter i: what add() was given, else its index ("0", "1", ...).
  const std::string& name(std::size_t i) const { return refs_[i].name; }

  /// Device pointer, element count and extents of parameter i, read from the tensor now.
  T* data(std::size_t i) const { return refs_[i].data(refs_[i].tensor); }
  index_t numel(std::size_t i) const { return refs_[i].size(refs_[i].tensor); }
  std::vector<index_t> dims(std::size_t i) const { return refs_[i].dims(refs_[i].tensor); }

 private:
  struct Ref {
    void* tensor;
    T* (*data)(void*);
    index_t (*size)(const void*);
    std::vector<index_t> (*dims)(const void*);
    std::string name;
    std::optional<double> weight_decay;
  };
  void check_unique(const std::string& name) const {
    for (std::size_t i = 0; i < refs_.size(); ++i) {
      if (refs_[i].name == name) {
        throw error("ParamList::add: the name '" + name + "' is already used by parameter " +
                    std::to_string(i) + " (names must be unique: optimizer state and "
                    "checkpoints are keyed by them)");
      }
    }
  }
  template <int R>
  static T* data_of(void* t) {
    return static_cast<Tensor<T, R>*>(t)->data();
  }
  template <int R>
  static index_t size_of(const void* t) {
    return static_cast<const Tensor<T, R>*>(t)->size();
  }
  template <int R>
  static std::vector<index_t> dims_of(const void* t) {
    return detail::dims_of(static_cast<const Tensor<T, R>*>(t)->shape());
  }

  std::vector<Ref> refs_;
};

/// The parameters `ps`, by reference, in order; all of one element type.
/// Example: `fg::optim::Adam opt(fg::optim::params(W1, b1, W2, b2), {.lr = 1e-3});`
template <class T, int... R>
ParamList<T> params(Tensor<T, R>&... ps) {
  ParamList<T> list;
  (list.add(ps), ...);
  return list;
}

/// Every Tensor<T, R> of a module (nn/module.hpp), by reference, in declaration order, named by
/// its dotted name ("blocks.0.fc1.weight"); tensors of other element types are skipped. The
/// lifetime rule above applies: do not add blocks to the model's vectors while it is in use.
/// Example: `fg::optim::Adam opt(fg::optim::params(model), {.lr = 1e-3});`
template <class T = float, nn::module M>
ParamList<T> params(M& model) {
  static_assert(!std::is_const_v<M>,
                "optim::params: the model must not be const (its tensors are updated in place)");
  ParamList<T> list;
  nn::for_each_parameter(model, [&](const std::string& name, auto& t) {
    if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(t)>::element_type, T>) {
      list.add(t, name);
    }
  });
  return list;
}

/// One parameter group: its parameters and, optionally, their own weight decay.
template <class T>
struct ParamGroup {
  ParamList<T> params;
  std::optional<double> weight_decay = std::nullopt;
};

/// Parameter groups as PyTorch's optimizers take them, merged into one list (one launch per step
/// still): a group without a weight decay uses the optimizer's option. At most 4 distinct weight
/// decays per optimizer. Example (GPT-style: no decay for biases, norms and embeddings):
///   auto all = fg::optim::params(model);
///   auto exempt = [](const std::string& n, auto&) { return n.ends_with("bias") || n.find("ln") != n.npos; };
///   fg::optim::AdamW opt(fg::optim::groups<float>({{all.where(std::not_fn(exempt))},
///                                                  {all.where(exempt), 0.0}}), {.weight_decay = 0.1});
template <class T>
ParamList<T> groups(std::initializer_list<ParamGroup<T>> gs) {
  ParamList<T> out;
  for (const ParamGroup<T>& g : gs) {
    ParamList<T> part = g.params;
    if (g.weight_decay) {
      part.set_weight_decay(*g.weight_decay);
    }
    out.add(part);
  }
  return out;
}

}  // namespace fusegrad::inline FG_BACKEND_NS::optim
