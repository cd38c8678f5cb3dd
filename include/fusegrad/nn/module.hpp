// fusegrad/nn/module.hpp — the module protocol: a model is a struct of layers that names its fields
// in one line, and optimizers, checkpoints and initialisers walk it by those names.
//
//   struct Block {
//     fg::nn::Linear<float> fc1, fc2;
//     void fields(auto& f) { f("fc1", fc1); f("fc2", fc2); }
//   };
//   struct Model {
//     std::vector<Block> blocks;
//     fg::nn::Linear<float> head;
//     void fields(auto& f) { f("blocks", blocks); f("head", head); }
//   };
//
// A field is a Tensor<T, R> (a parameter), a module, or a std::vector / std::array of fields
// (elements named by index). Names join with dots: "blocks.3.fc1.weight", "head.bias". A layer
// names state that is saved but not trained (batch norm's running moments) with
// `f.buffer("running_mean", running_mean)`: a buffer is no parameter (optimizers and
// parameter_count skip it) but checkpoints hold it.
//
//   for_each_parameter(m, f)   f(dotted_name, tensor) for every parameter, in declaration order
//   for_each_tensor(m, f)      the same for parameters and buffers (what a checkpoint holds)
//   parameter_names(m)         the dotted names, in that order
//   parameter_count(m)         elements of the floating-point parameters
//   reset_parameters(m, seed)  layer.reset(layer_seed(seed, dotted_name)) for every layer that has
//                              reset(std::uint64_t); distinct, stable seeds at any depth
//   set_training(m, on)        layer.train(on) for every layer that has train(bool) (batch norm)
//
// Lifetime rule: fields() must name members of the object it is called on (references into it
// are handed out), and must not change the model's structure while it is walked.
#pragma once

#include <array>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusegrad/memory/tensor.hpp"

namespace fusegrad::inline FG_BACKEND_NS::nn {

namespace detail {

/// What the `module` concept calls fields() with: accepts any (name, member).
struct FieldProbe {
  template <class V>
  void operator()(std::string_view name, V& value) const;
  template <class T, int R>
  void buffer(std::string_view name, Tensor<T, R>& value) const;
};

template <class V>
struct is_tensor : std::false_type {};
template <class T, int R>
struct is_tensor<Tensor<T, R>> : std::true_type {};

template <class V>
struct sequence_element {};  // `type` only for std::vector and std::array
template <class E, class A>
struct sequence_element<std::vector<E, A>> {
  using type = E;
};
template <class E, std::size_t N>
struct sequence_element<std::array<E, N>> {
  using type = E;
};

}  // namespace detail

/// A type that names its fields: it has `fields(auto& f)` calling `f("name", member)` per field.
/// Example: `struct Block { Linear<float> fc; void fields(auto& f) { f("fc", fc); } };`
template <class M>
concept module = requires(std::remove_cvref_t<M>& m, detail::FieldProbe& f) { m.fields(f); };

namespace detail {
/// splitmix64 (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace detail

/// The seed reset_parameters gives the layer named `name`: splitmix64(splitmix64(seed) ^
/// fnv1a64(name)). Stable across runs, platforms and model depth.
/// Example: `fg::nn::Linear<float> fc(4, 3, fg::nn::layer_seed(7, "blocks.1.fc1"));`
constexpr std::uint64_t layer_seed(std::uint64_t seed, std::string_view name) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bit
  for (const char c : name) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  return detail::splitmix64(detail::splitmix64(seed) ^ hash);
}

namespace detail {

/// A Tensor, a module, or a std::vector / std::array of fields; never const.
template <class V>
constexpr bool is_field() {
  if constexpr (std::is_const_v<V>) {
    return false;
  } else if constexpr (is_tensor<V>::value || module<V>) {
    return true;
  } else if constexpr (requires { typename sequence_element<V>::type; }) {
    return is_field<typename sequence_element<V>::type>();
  } else {
    return false;
  }
}

/// "a.b" (or "b" when `prefix` is empty).
inline std::string join_name(const std::string& prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
}

/// Walks `value` named `name`: visit.tensor(name, t) for each tensor; for each module,
/// visit.enter(name, m) and, when it returns true, its fields.
template <class V, class Visit>
void walk(const std::string& name, V& value, Visit& visit);

template <class Visit>
struct FieldWalker {
  Visit& visit;
  const std::string& prefix;

  template <class V>
  void operator()(std::string_view name, V& value) const {
    static_assert(is_field<std::remove_const_t<V>>(),
                  "fields: f(name, member) takes a fusegrad::Tensor, a module (a type with "
                  "`void fields(auto& f)`), or a std::vector / std::array of them");
    static_assert(!std::is_const_v<V>,
                  "fields: f(name, member) needs a modifiable member (parameters are trained and "
                  "loaded in place); do not declare it const");
    if constexpr (is_field<V>() && !std::is_const_v<V>) {  // after a failed check, no cascade
      walk(join_name(prefix, name), value, visit);
    }
  }
  /// A buffer: state that is saved but not trained.
  template <class T, int R>
  void buffer(std::string_view name, Tensor<T, R>& value) const {
    if constexpr (requires { visit.buffer(prefix, value); }) {
      visit.buffer(join_name(prefix, name), value);
    }
  }
};

template <class V, class Visit>
void walk(const std::string& name, V& value, Visit& visit) {
  if constexpr (is_tensor<V>::value) {
    visit.tensor(name, value);
  } else if constexpr (module<V>) {
    if (visit.enter(name, value)) {
      FieldWalker<Visit> walker{visit, name};
      value.fields(walker);
    }
  } else {
    for (std::size_t i = 0; i < value.size(); ++i) {
      walk(join_name(name, std::to_string(i)), value[i], visit);
    }
  }
}

template <class F, bool Const>
struct ParameterVisit {
  F& f;
  template <class T, int R>
  void tensor(const std::string& name, Tensor<T, R>& t) {
    if constexpr (Const) {
      f(name, std::as_const(t));
    } else {
      f(name, t);
    }
  }
  template <class M>
  bool enter(const std::string&, M&) {
    return true;
  }
};

/// Parameters and buffers alike.
template <class F, bool Const>
struct TensorVisit : ParameterVisit<F, Const> {
  template <class T, int R>
  void buffer(const std::string& name, Tensor<T, R>& t) {
    this->tensor(name, t);
  }
};

struct TrainVisit {
  bool on;
  template <class T, int R>
  void tensor(const std::string&, Tensor<T, R>&) {}
  template <class M>
  bool enter(const std::string&, M& layer) {
    if constexpr (requires { layer.train(true); }) {
      layer.train(on);
    }
    return true;
  }
};

struct ResetVisit {
  std::uint64_t seed;
  template <class T, int R>
  void tensor(const std::string&, Tensor<T, R>&) {}
  template <class M>
  bool enter(const std::string& name, M& layer) {
    if constexpr (requires { layer.reset(std::uint64_t{}); }) {
      layer.reset(layer_seed(seed, name));
      return false;  // the layer initialises all of its own tensors
    } else {
      return true;
    }
  }
};

}  // namespace detail

/// Calls `f(dotted_name, tensor)` for every tensor of `model`, in declaration order (a generic
/// lambda: tensors of different dtypes and ranks). Example:
///   fg::nn::for_each_parameter(model, [](const std::string& name, auto& t) {
///     std::cout << name << " " << t.shape() << "\n";   // "blocks.0.fc1.weight [784, 128]"
///   });
template <module M, class F>
void for_each_parameter(M& model, F&& f) {
  detail::ParameterVisit<F, false> visit{f};
  detail::walk(std::string(), model, visit);
}
/// The same over a const model: f receives `const Tensor<T, R>&`.
template <module M, class F>
void for_each_parameter(const M& model, F&& f) {
  detail::ParameterVisit<F, true> visit{f};
  detail::walk(std::string(), const_cast<M&>(model), visit);  // fields() is not const; f only reads
}

/// Calls `f(dotted_name, tensor)` for every parameter and buffer of `model`, in declaration order:
/// what a checkpoint saves. Example: a BatchNorm2d named "bn" gives "bn.weight", "bn.bias",
/// "bn.running_mean", "bn.running_var".
template <module M, class F>
void for_each_tensor(M& model, F&& f) {
  detail::TensorVisit<F, false> visit{{f}};
  detail::walk(std::string(), model, visit);
}
/// The same over a const model: f receives `const Tensor<T, R>&`.
template <module M, class F>
void for_each_tensor(const M& model, F&& f) {
  detail::TensorVisit<F, true> visit{{f}};
  detail::walk(std::string(), const_cast<M&>(model), visit);  // fields() is not const; f only reads
}

/// The dotted names of every parameter of `model`, in declaration order.
/// Example: `fg::nn::parameter_names(model)` = {"blocks.0.fc1.weight", ..., "head.bias"}.
template <module M>
std::vector<std::string> parameter_names(const M& model) {
  std::vector<std::string> names;
  for_each_parameter(model, [&](const std::string& name, const auto&) { names.push_back(name); });
  return names;
}

/// The number of elements of the floating-point parameters of `model` (buffers not counted).
/// Example: a Linear<float>(784, 128, 1) has 784 · 128 + 128 = 100480.
template <module M>
index_t parameter_count(const M& model) {
  index_t count = 0;
  for_each_parameter(model, [&](const std::string&, const auto& t) {
    using Value = typename std::remove_cvref_t<decltype(t)>::value_type;
    if constexpr (std::is_floating_point_v<Value>) {
      count += t.size();
    }
  });
  return count;
}

/// Re-initialises every layer of `model` that has `reset(std::uint64_t seed)` (e.g. Linear), with
/// the seed layer_seed(seed, dotted name of the layer); does not look inside such a layer. Tensors
/// outside any such layer are left as they are.
/// Example: `fg::nn::reset_parameters(model, 42);  // blocks.0.fc1, blocks.1.fc1, ... all differ`
template <module M>
void reset_parameters(M& model, std::uint64_t seed) {
  detail::ResetVisit visit{seed};
  detail::walk(std::string(), model, visit);
}

/// Switches every layer of `model` that has `train(bool)` (batch norm) to training (true) or
/// evaluation (false) mode. Example: `fg::nn::set_training(model, false);  // before testing`
template <module M>
void set_training(M& model, bool on) {
  detail::TrainVisit visit{on};
  detail::walk(std::string(), model, visit);
}

}  // namespace fusegrad::inline FG_BACKEND_NS::nn
