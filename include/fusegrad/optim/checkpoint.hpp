// fusegrad/optim/checkpoint.hpp — checkpoints of whole models (nn/module.hpp) and their optimizers:
// every parameter under its dotted name, the optimizer's state under "optimizer.<state name>",
// loaded all-or-nothing.
//
//   put_module(c, model)                    c.put(dotted_name, t) for every tensor of the model
//                                           (parameters and buffers, nn/module.hpp)
//   get_module(c, model)                    checks every tensor, then copies them all
//   save_checkpoint(path, model[, opt][, extra])
//   load_checkpoint(path, model[, opt])     -> the loaded Checkpoint (for its metadata)
//
// A file written by save_checkpoint(path, model, ...) holds, in this order: the model's tensors
// ("blocks.0.fc1.weight", ...), the optimizer's ("optimizer.m.blocks.0.fc1.weight", ...,
// "optimizer.step", "optimizer.lr"), then `extra`'s tensors; its metadata is `extra`'s plus
// "fusegrad.parameters" (the number of model tensors), so that loading into a model that lacks
// some of them (fewer blocks) is an error and not a silent partial load.
//
// In namespace io (it is the io API), kept out of io/ because io/ may include only memory/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fusegrad/io/checkpoint.hpp"
#include "fusegrad/nn/module.hpp"

namespace fusegrad::inline FG_BACKEND_NS::io {

/// Stores every tensor of `model` in `c` under its dotted name ("blocks.0.fc1.weight").
/// Example: `io::Checkpoint c; io::put_module(c, model); c.put_meta("epoch", 3);`
template <nn::module M>
void put_module(Checkpoint& c, const M& model) {
  nn::for_each_tensor(model, [&](const std::string& name, const auto& t) { c.put(name, t); });
}

namespace detail {

/// What the optimizer_state concept calls visit_state() with.
struct StateProbe {
  template <class V>
  void operator()(const std::string& name, V& tensor) const;
};

/// An optimizer whose device state checkpoints can hold: it has `visit_state(f)` calling
/// `f(name, tensor)` (optim::SGD, Adam, AdamW).
template <class O>
concept optimizer_state = requires(O& o, StateProbe& f) { o.visit_state(f); };

/// The metadata key holding how many of the first tensors of a saved checkpoint are the model's.
inline constexpr const char* parameters_key = "fusegrad.parameters";
inline constexpr std::string_view optimizer_prefix = "optimizer.";

/// Every reason `model` cannot be loaded from `c` (empty strings for tensors that fit); adds the
/// model's names to `names`.
template <class M>
std::vector<std::string> module_problems(const Checkpoint& c, M& model,
                                         std::set<std::string, std::less<>>& names) {
  std::vector<std::string> problems;
  nn::for_each_tensor(model, [&](const std::string& name, const auto& t) {
    problems.push_back(c.mismatch(name, t));
    names.insert(name);
  });
  if (c.contains_meta(parameters_key)) {  // saved by save_checkpoint(path, model, ...)
    const std::int64_t saved = c.meta<std::int64_t>(parameters_key);
    for (std::int64_t i = 0; i < saved && i < std::int64_t(c.tensors().size()); ++i) {
      const std::string& name = c.tensors()[static_cast<std::size_t>(i)].name;
      if (!names.contains(name)) {
        problems.push_back("tensor '" + name + "' is in the checkpoint but not in the model");
      }
    }
  }
  return problems;
}

/// Every reason the optimizer's state cannot be loaded from `c`; adds the names it checked (with
/// "optimizer.") to `names`, which holds the model's.
template <class O>
std::vector<std::string> optimizer_problems(const Checkpoint& c, O& opt,
                                            std::set<std::string, std::less<>>& names) {
  std::vector<std::string> problems;
  opt.visit_state([&](const std::string& name, const auto& t) {
    names.insert(std::string(optimizer_prefix) + name);
    problems.push_back(c.mismatch(std::string(optimizer_prefix) + name, t));
  });
  for (const CheckpointTensor& e : c.tensors()) {
    if (e.name.starts_with(optimizer_prefix) && !names.contains(e.name)) {
      problems.push_back("tensor '" + e.name +
                         "' is in the checkpoint but not in the optimizer's state");
    }
  }
  return problems;
}

template <class M>
void copy_module(const Checkpoint& c, M& model) {
  nn::for_each_tensor(model, [&](const std::string& name, auto& t) { c.get(name, t); });
}
template <class O>
void copy_optimizer(const Checkpoint& c, O& opt) {
  opt.visit_state(
      [&](const std::string& name, auto& t) { c.get(std::string(optimizer_prefix) + name, t); });
}

/// Checks everything first (one io_error naming `who` lists every problem), then copies.
template <class M, class O>
void load_into(std::string_view who, const Checkpoint& c, M& model, O* opt) {
  std::set<std::string, std::less<>> names;
  std::vector<std::string> problems = module_problems(c, model, names);
  if constexpr (!std::is_same_v<O, void>) {
    for (std::string& problem : optimizer_problems(c, *opt, names)) {
      problems.push_back(std::move(problem));
    }
  }
  c.require_match(who, problems);
  copy_module(c, model);
  if constexpr (!std::is_same_v<O, void>) {
    copy_optimizer(c, *opt);
  }
}

/// The checkpoint save_checkpoint writes: the model's tensors, the optimizer's (when `opt` is not
/// null), then `extra`'s tensors and metadata.
template <class M, class O>
Checkpoint model_checkpoint(const std::filesystem::path& path, const M& model, O* opt,
                            const Checkpoint& extra) {
  Checkpoint c;
  put_module(c, model);
  const std::size_t parameters = c.tensors().size();
  if constexpr (!std::is_same_v<O, void>) {
    opt->visit_state([&](const std::string& name, const auto& t) {
      c.put(std::string(optimizer_prefix) + name, t);
    });
  }
  for (const CheckpointTensor& e : extra.tensors()) {
    if (c.contains(e.name)) {
      throw io_error("save_checkpoint", path,
                     "the extra tensor '" + e.name + "' has the name of a model or optimizer "
                     "tensor; rename it");
    }
    c.put(e);
  }
  for (const auto& entry : extra.metadata()) {  // (no structured binding: lambdas capture it)
    std::visit([&](const auto& v) { c.put_meta(entry.first, v); }, entry.second);
  }
  c.put_meta(parameters_key, parameters);
  return c;
}

}  // namespace detail

/// Copies every tensor of `model` from `c`, all or nothing: checks each tensor's presence, dtype
/// and shape first and throws one io_error listing every problem before anything is modified.
/// A checkpoint written by save_checkpoint(path, model, ...) must also hold no parameter that
/// `model` lacks. Example: `io::get_module(io::load_checkpoint("run.fgc"), model);`
template <nn::module M>
void get_module(const Checkpoint& c, M& model) {
  detail::load_into<M, void>("get_module", c, model, nullptr);
}

/// Saves `model`'s tensors under their dotted names, then `opt`'s state under
/// "optimizer.<state name>" ("optimizer.m.blocks.0.fc1.weight", "optimizer.step", ...), then
/// `extra`'s tensors and metadata (e.g. the epoch), atomically, as save_checkpoint(path, c).
/// Example:
///   io::Checkpoint meta;
///   meta.put_meta("epoch", epoch);
///   io::save_checkpoint("run.fgc", model, opt, meta);
template <nn::module M, detail::optimizer_state O>
void save_checkpoint(const std::filesystem::path& path, const M& model, const O& opt,
                     const Checkpoint& extra = {}) {
  O* state = const_cast<O*>(&opt);  // visit_state is not const; saving only reads
  save_checkpoint(path, detail::model_checkpoint(path, model, state, extra));
}
/// The same without an optimizer. Example: `io::save_checkpoint("model.fgc", model);`
template <nn::module M>
void save_checkpoint(const std::filesystem::path& path, const M& model,
                     const Checkpoint& extra = {}) {
  save_checkpoint(path, detail::model_checkpoint<M, void>(path, model, nullptr, extra));
}

/// Loads a checkpoint written by save_checkpoint(path, model, opt) into `model` and `opt`, all or
/// nothing: every parameter and every piece of optimizer state is checked (present, same dtype
/// and shape, nothing extra) before any is modified, and one io_error lists every problem.
/// Returns the checkpoint, for its metadata. Example:
///   const io::Checkpoint c = io::load_checkpoint("run.fgc", model, opt);
///   int first_epoch = c.meta<int>("epoch") + 1;
template <nn::module M, detail::optimizer_state O>
Checkpoint load_checkpoint(const std::filesystem::path& path, M& model, O& opt) {
  Checkpoint c = load_checkpoint(path);
  detail::load_into("load_checkpoint", c, model, &opt);
  return c;
}
/// The same for the model alone (optimizer state in the file is ignored).
/// Example: `io::load_checkpoint("model.fgc", model);`
template <nn::module M>
Checkpoint load_checkpoint(const std::filesystem::path& path, M& model) {
  Checkpoint c = load_checkpoint(path);
  detail::load_into<M, void>("load_checkpoint", c, model, nullptr);
  return c;
}

}  // namespace fusegrad::inline FG_BACKEND_NS::io
