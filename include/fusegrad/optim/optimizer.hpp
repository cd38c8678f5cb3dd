// fusegrad/optim/optimizer.hpp — what every multi-tensor optimizer shares: device state, argument
// checks, the step (one launch per 64 parameters, see multi_tensor.hpp), and access to the state
// for checkpoints.
//
// Device state, allocated and initialised at construction (one zero-fill launch per state buffer;
// after that, a step launches only its multi-tensor kernel):
//   "<buffer>.<name>"  Tensor<T, 1>             state buffer of the parameter named <name> (C
//                                               order, its numel). <name> is the index when the
//                                               ParamList has no names: "m.0", "v.0" (Adam),
//                                               "momentum.2" (SGD); from optim::params(model), the
//                                               dotted field name: "m.blocks.3.fc1.weight"
//   "step"             Tensor<std::int64_t, 0>  steps taken so far; a step computes with
//                                               t = step + 1 and leaves step = t
//   "lr"               Tensor<double, 0>        the learning rate the next step reads (set_lr)
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusegrad/autodiff/grad.hpp"
#include "fusegrad/eval/factory.hpp"
#include "fusegrad/optim/multi_tensor.hpp"
#include "fusegrad/optim/params.hpp"

namespace fusegrad::inline FG_BACKEND_NS::optim {

namespace detail {

template <class G, class T>
struct is_tensor_of : std::false_type {};
template <class T, int R>
struct is_tensor_of<Tensor<T, R>, T> : std::true_type {};

/// Throws fusegrad::error naming the optimizer unless `ok`.
inline void require(bool ok, const char* optimizer, const std::string& what) {
  if (!ok) {
    throw error(std::string(optimizer) + ": " + what);
  }
}

inline std::string number_text(double x) {
  std::ostringstream out;
  out << x;
  return out.str();
}

/// The optimizer's state and step. `Derived` supplies `rule()` (see multi_tensor.hpp); S is the
/// number of state buffers per parameter (0 allocated when `with_state` is false).
template <class Derived, class T, int S>
class MultiTensorOptimizer {
  static_assert(std::is_floating_point_v<T>, "optimizers: parameters must be float or double");

 public:
  using element_type = T;

  /// One update of every parameter from its gradient, in the parameters' order. Gradients are
  /// tensors of the parameters' shapes. Counts and shapes are checked before anything runs
  /// (shape_error naming the optimizer, the parameter index and both shapes).
  /// Example: `opt.step(gW1, gb1, gW2, gb2);`
  template <class... G>
  void step(const G&... grads) {
    constexpr bool tensors = (is_tensor_of<G, T>::value && ...);
    static_assert(tensors,
                  "optimizer step: every gradient must be a fusegrad::Tensor with the parameters' "
                  "element type (evaluate an expression into a Tensor first)");
    if constexpr (tensors) {  // after a failed check, no cascade of errors
      check_count(sizeof...(G));
      [[maybe_unused]] std::size_t i = 0;
      (check_gradient(i++, grads), ...);
      check_state();
      const std::array<const T*, sizeof...(G)> grad_data{grads.data()...};
      launch_all(std::span<const T* const>(grad_data));
    }
  }
  /// The same, with the gradients in a tuple (what fg::grad returns).
  /// Example: `opt.step(fg::grad(loss, W1, b1, W2, b2));`
  template <class... G>
  void step(const std::tuple<G...>& grads) {
    std::apply([this](const auto&... g) { this->step(g...); }, grads);
  }

  /// The same, with a run-time list of gradients of one rank (e.g. a model's layers in a vector).
  template <int R>
  void step(std::span<const Tensor<T, R>> grads) {
    check_count(grads.size());
    std::vector<const T*> grad_data;
    for (std::size_t i = 0; i < grads.size(); ++i) {
      check_gradient(i, grads[i]);
      grad_data.push_back(grads[i].data());
    }
    check_state();
    launch_all(std::span<const T* const>(grad_data));
  }
  template <int R>
  void step(const std::vector<Tensor<T, R>>& grads) {
    step(std::span<const Tensor<T, R>>(grads));
  }

  /// The same, with the gradients value_and_grad returns for a parameter list (params(model)).
  /// Example: `auto [loss, grads] = fg::value_and_grad(l, opt.parameters()); opt.step(grads);`
  void step(const Gradients<T>& grads) {
    check_count(grads.size());
    std::vector<const T*> grad_data;
    for (std::size_t i = 0; i < grads.size(); ++i) {
      check_dims(i, grads.dims(i));
      grad_data.push_back(grads.data(i));
    }
    check_state();
    launch_all(std::span<const T* const>(grad_data));
  }

  /// Steps taken so far (reads the device counter: blocks until queued steps are done).
  std::int64_t steps() const { return step_.item(); }
  /// The learning rate the next step uses (reads the device value: blocks).
  double lr() const { return lr_.item(); }
  /// Sets the learning rate of later steps: a blocking host->device copy, ordered after the steps
  /// already queued. Call it between steps (e.g. per epoch), not while capturing a CUDA graph; a
  /// captured step reads the new value when replayed.
  void set_lr(double lr) {
    check_lr(name_, lr);
    lr_.copy_from(std::span<const double>(&lr, 1));
  }

  const ParamList<T>& parameters() const { return params_; }
  /// The weight decay parameter i is updated with: its group's, else the optimizer's option.
  double weight_decay(std::size_t i) const { return group_decay_[group_of_[i]]; }

  /// Calls f(name, tensor) for every piece of device state: "<buffer>.<name>" (Tensor<T, 1>&,
  /// <name> = parameters().name(i): the index "0", "1", ... unless the parameter was named), then
  /// "step" (Tensor<std::int64_t, 0>&) and "lr" (Tensor<double, 0>&); f must accept all three
  /// (a generic lambda). Loading a checkpoint = writing into these tensors in place (copy_from).
  /// Example: `opt.visit_state([&](const std::string& name, auto& t) { save(name, t.to_vector()); });`
  template <class F>
  void visit_state(F&& f) {
    for (int s = 0; s < S; ++s) {
      for (std::size_t i = 0; i < state_[s].size(); ++i) {
        f(std::string(state_names_[s]) + "." + params_.name(i), state_[s][i]);
      }
    }
    f(std::string("step"), step_);
    f(std::string("lr"), lr_);
  }

 protected:
  /// `weight_decay`: the option's, for parameters whose group sets none (group 0).
  MultiTensorOptimizer(const char* name, std::array<const char*, S> state_names,
                       ParamList<T> params, double lr, double weight_decay, bool with_state)
      : name_(name), state_names_(state_names), params_(std::move(params)) {
    require(!params_.empty(), name_, "the parameter list is empty");
    check_lr(name_, lr);
    group_decay_.push_back(weight_decay);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      sizes_.push_back(params_.numel(i));
      const double wd = params_.weight_decay(i).value_or(weight_decay);
      std::size_t g = 0;
      while (g < group_decay_.size() && group_decay_[g] != wd) {
        ++g;
      }
      if (g == group_decay_.size()) {
        require(g < static_cast<std::size_t>(max_groups), name_,
                "more than " + std::to_string(max_groups) + " distinct weight decays among the parameter groups");
        group_decay_.push_back(wd);
      }
      group_of_.push_back(static_cast<unsigned char>(g));
    }
    if (with_state) {
      for (int s = 0; s < S; ++s) {
        for (const index_t n : sizes_) {
          state_[s].push_back(zeros<T>(Shape<1>({n})));
        }
      }
    }
    const std::int64_t zero = 0;
    step_.copy_from(std::span<const std::int64_t>(&zero, 1));
    lr_.copy_from(std::span<const double>(&lr, 1));
#if defined(FG_BACKEND_CUDA)
    ticket_ = Buffer<unsigned int>(1);
    FG_CUDA_CHECK(cudaMemsetAsync(ticket_.data(), 0, sizeof(unsigned int), cuda_stream()));
#endif
  }

  /// The weight decay of each group (group 0: the optimizer's option), for the rule.
  std::array<double, max_groups> group_decays() const {
    std::array<double, max_groups> out{};
    for (std::size_t g = 0; g < group_decay_.size(); ++g) {
      out[g] = group_decay_[g];
    }
    return out;
  }

  static void check_lr(const char* name, double lr) {
    require(lr >= 0, name, "invalid learning rate " + number_text(lr) + " (must be >= 0)");
  }

 private:
  void check_count(std::size_t count) const {
    if (count != params_.size()) {
      throw shape_error(std::string(name_) + ".step: " + std::to_string(count) +
                        " gradients for " + std::to_string(params_.size()) + " parameters");
    }
  }
  template <int R>
  void check_gradient(std::size_t i, const Tensor<T, R>& g) const {
    check_dims(i, detail::dims_of(g.shape()));
  }
  void check_dims(std::size_t i, const std::vector<index_t>& got) const {
    const std::vector<index_t> want = params_.dims(i);
    if (got != want) {
      throw shape_error(std::string(name_) + ".step: gradient " + std::to_string(i) +
                        " has shape " + dims_text(got) + " but parameter " + std::to_string(i) +
                        " has shape " + dims_text(want));
    }
  }
  void check_state() const {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (params_.numel(i) != sizes_[i]) {
        throw shape_error(std::string(name_) + ".step: parameter " + std::to_string(i) +
                          " has shape " + dims_text(params_.dims(i)) + " now, but had " +
                          std::to_string(sizes_[i]) + " elements when the optimizer was built");
      }
      for (int s = 0; s < S; ++s) {
        if (!state_[s].empty() && state_[s][i].size() != sizes_[i]) {
          throw shape_error(std::string(name_) + ".step: state " + state_names_[s] + "." +
                            params_.name(i) + " has " + std::to_string(state_[s][i].size()) +
                            " elements but parameter " + std::to_string(i) + " has " +
                            std::to_string(sizes_[i]));
        }
      }
    }
  }

  /// ceil(count / table_capacity) launches; the last one advances the step counter.
  void launch_all(std::span<const T* const> grads) {
    using Rule = decltype(static_cast<const Derived&>(*this).rule());
    const Rule rule = static_cast<const Derived&>(*this).rule();
    const std::size_t count = params_.size();
    for (std::size_t first = 0; first < count; first += table_capacity) {
      MultiTensorLaunch<T, S, Rule> launch{};
      launch.rule = rule;
      launch.lr = lr_.data();
      launch.step = step_.data();
      launch.ticket = ticket_.data();
      launch.advance = first + table_capacity >= count;
      auto& table = launch.table;
      for (std::size_t i = first; i < count && i < first + table_capacity; ++i) {
        const int k = table.count++;
        table.param[k] = params_.data(i);
        table.grad[k] = grads[i];
        table.group[k] = group_of_[i];
        for (int s = 0; s < S; ++s) {
          table.state[s][k] = state_[s].empty() ? nullptr : state_[s][i].data();
        }
        launch.total += sizes_[i];
        table.end[k] = launch.total;
      }
      run(launch);
    }
  }

  const char* name_;
  std::array<const char*, S> state_names_;
  ParamList<T> params_;
  std::vector<index_t> sizes_;           // numel of each parameter at construction
  std::vector<double> group_decay_;      // distinct weight decays; [0] = the option's
  std::vector<unsigned char> group_of_;  // weight-decay group of each parameter
  std::vector<Tensor<T, 1>> state_[S];   // state_[s][i]: buffer s of parameter i
  Tensor<std::int64_t, 0> step_;
  Tensor<double, 0> lr_;
  Buffer<unsigned int> ticket_;          // CUDA: the last-block ticket; empty on the host
};

}  // namespace detail

}  // namespace fusegrad::inline FG_BACKEND_NS::optim
