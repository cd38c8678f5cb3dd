// tests/test_optim.cpp — optim::SGD, Adam, AdamW against double-precision scalar references of
// PyTorch's published update equations (5 steps, random gradients each step, parameters of ranks
// 0-3, learning rate changed mid-run), one launch per step (two for 100 parameters), argument
// checks before anything runs, the device step counter, state access for checkpoints, and Adam
// minimising a quadratic.
#include <fusegrad/fusegrad.hpp>
#include <fusegrad/optim/adam.hpp>
#include <fusegrad/optim/sgd.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_optim {
namespace fg = fusegrad;
using fg::index_t;
using fgtest::Dims;
using Values = std::vector<std::vector<double>>;  // [parameter][element]

// ---------------------------------------------------------------------------------------------
// The scalar references: the equations of optim/sgd.hpp and optim/adam.hpp, in double.

struct RefSGD {
  fg::optim::SGDOptions o;
  Values b;  // momentum buffers
  void step(std::int64_t t, double lr, Values& p, const Values& grads) {
    b.resize(p.size());
    for (std::size_t k = 0; k < p.size(); ++k) {
      b[k].resize(p[k].size(), 0.0);
      for (std::size_t j = 0; j < p[k].size(); ++j) {
        double g = grads[k][j];
        if (o.weight_decay != 0) {
          g = g + o.weight_decay * p[k][j];
        }
        if (o.momentum != 0) {
          b[k][j] = t > 1 ? o.momentum * b[k][j] + (1 - o.dampening) * g : g;
          g = o.nesterov ? g + o.momentum * b[k][j] : b[k][j];
        }
        p[k][j] = p[k][j] - lr * g;
      }
    }
  }
};

struct RefAdam {
  double beta1, beta2, eps, weight_decay;
  bool decoupled;
  Values m, v;
  void step(std::int64_t t, double lr, Values& p, const Values& grads) {
    m.resize(p.size());
    v.resize(p.size());
    for (std::size_t k = 0; k < p.size(); ++k) {
      m[k].resize(p[k].size(), 0.0);
      v[k].resize(p[k].size(), 0.0);
      for (std::size_t j = 0; j < p[k].size(); ++j) {
        double g = grads[k][j];
        if (decoupled) {
          p[k][j] = p[k][j] - lr * weight_decay * p[k][j];
        } else if (weight_decay != 0) {
          g = g + weight_decay * p[k][j];
        }
        m[k][j] = beta1 * m[k][j] + (1 - beta1) * g;
        v[k][j] = beta2 * v[k][j] + (1 - beta2) * g * g;
        const double mhat = m[k][j] / (1 - std::pow(beta1, static_cast<double>(t)));
        const double vhat = v[k][j] / (1 - std::pow(beta2, static_cast<double>(t)));
        p[k][j] = p[k][j] - lr * mhat / (std::sqrt(vhat) + eps);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Four parameters of ranks 2, 1, 3, 0; the first is big enough for the host's parallel path.

template <class T>
struct Net {
  fg::Tensor<T, 2> w;
  fg::Tensor<T, 1> b;
  fg::Tensor<T, 3> c;
  fg::Tensor<T, 0> s;
  using Grads = std::tuple<fg::Tensor<T, 2>, fg::Tensor<T, 1>, fg::Tensor<T, 3>, fg::Tensor<T, 0>>;

  explicit Net(std::mt19937& rng)
      : w(fgtest::random_tensor<T, 2>(Dims{181, 191}, rng)),
        b(fgtest::random_tensor<T, 1>(Dims{191}, rng)),
        c(fgtest::random_tensor<T, 3>(Dims{2, 3, 5}, rng)),
        s(fgtest::random_tensor<T, 0>(Dims{}, rng, 0.5, 1.5)) {}

  fg::optim::ParamList<T> list() { return fg::optim::params(w, b, c, s); }
  Grads random_grads(std::mt19937& rng) const {
    return {fgtest::random_tensor<T, 2>(fgtest::dims_of(w.shape()), rng),
            fgtest::random_tensor<T, 1>(fgtest::dims_of(b.shape()), rng),
            fgtest::random_tensor<T, 3>(fgtest::dims_of(c.shape()), rng),
            fgtest::random_tensor<T, 0>(Dims{}, rng, -2, 2)};
  }
  Values values() const { return {host(w), host(b), host(c), host(s)}; }

  template <int R>
  static std::vector<double> host(const fg::Tensor<T, R>& t) {
    const auto v = t.to_vector();
    return std::vector<double>(v.begin(), v.end());
  }
};

template <class T>
Values values_of(const typename Net<T>::Grads& g) {
  return std::apply([](const auto&... t) { return Values{Net<T>::host(t)...}; }, g);
}

/// Every element of got within rtol·|want| + atol of want; names the first mismatch.
inline std::string compare_values(const Values& got, const Values& want, double rtol, double atol) {
  for (std::size_t k = 0; k < want.size(); ++k) {
    if (got[k].size() != want[k].size()) {
      return "parameter " + std::to_string(k) + ": size differs";
    }
    for (std::size_t j = 0; j < want[k].size(); ++j) {
      if (!(std::abs(got[k][j] - want[k][j]) <= atol + rtol * std::abs(want[k][j]))) {
        return "parameter " + std::to_string(k) + " element " + std::to_string(j) + ": got " +
               std::to_string(got[k][j]) + ", expected " + std::to_string(want[k][j]);
      }
    }
  }
  return "";
}

/// Reads the optimizer's state buffers into name -> values.
template <class Opt>
std::map<std::string, std::vector<double>> state_of(Opt& opt) {
  std::map<std::string, std::vector<double>> out;
  opt.visit_state([&](const std::string& name, auto& t) {
    const auto v = t.to_vector();
    out[name] = std::vector<double>(v.begin(), v.end());
  });
  return out;
}

inline Values buffers(const std::map<std::string, std::vector<double>>& state,
                      const std::string& prefix, std::size_t count) {
  Values out;
  for (std::size_t k = 0; k < count; ++k) {
    out.push_back(state.at(prefix + "." + std::to_string(k)));
  }
  return out;
}

/// Runs 5 steps of `opt` and `ref` side by side (the learning rate halved after step 2, the
/// gradients passed as a tuple on odd steps and as separate arguments on even ones) and checks
/// every parameter and state element, the launch count and the step counter after each step.
template <class T, class Opt, class Ref>
void run_and_compare(Net<T>& net, Opt& opt, Ref& ref, double lr, std::mt19937& rng,
                     double tol_factor) {
  Values p = net.values();
  const double tol = tol_factor * fgtest::eps_of<T>();
  for (std::int64_t t = 1; t <= 5; ++t) {
    INFO("step " << t);
    if (t == 3) {
      lr *= 0.5;
      opt.set_lr(lr);
      CHECK(opt.lr() == lr);
    }
    const auto grads = net.random_grads(rng);
    fgtest::LaunchCounter count;
    if (t % 2) {
      opt.step(grads);
    } else {
      std::apply([&](const auto&... g) { opt.step(g...); }, grads);
    }
    CHECK(count.launches() == 1);
    ref.step(t, lr, p, values_of<T>(grads));
    CHECK(opt.steps() == t);
    CHECK(compare_values(net.values(), p, tol, tol) == "");
    const auto state = state_of(opt);
    CHECK(state.at("step") == std::vector<double>{static_cast<double>(t)});
    CHECK(state.at("lr") == std::vector<double>{lr});
    if constexpr (std::is_same_v<Ref, RefSGD>) {
      if (ref.o.momentum != 0) {
        CHECK(compare_values(buffers(state, "momentum", 4), ref.b, tol, tol) == "");
      } else {
        CHECK(state.size() == 2);  // no momentum buffers: just "step" and "lr"
      }
    } else {
      CHECK(compare_values(buffers(state, "m", 4), ref.m, tol, tol) == "");
      CHECK(compare_values(buffers(state, "v", 4), ref.v, tol, tol) == "");
    }
  }
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("optim: SGD matches the scalar reference for every option combination",
          "[optim][sgd]") {
  const std::vector<fg::optim::SGDOptions> cases = {
      {.lr = 0.1},
      {.lr = 0.1, .momentum = 0.9},
      {.lr = 0.05, .momentum = 0.9, .nesterov = true},
      {.lr = 0.1, .momentum = 0.8, .dampening = 0.3},
      {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01},
      {.lr = 0.2, .weight_decay = 0.05},
      {.lr = 0.05, .momentum = 0.7, .weight_decay = 0.1, .nesterov = true},
  };
  std::mt19937 rng(9101);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& o = cases[i];
    INFO("case " << i << ": lr " << o.lr << ", momentum " << o.momentum << ", dampening "
                 << o.dampening << ", weight_decay " << o.weight_decay << ", nesterov "
                 << o.nesterov);
    Net<float> net(rng);
    fg::optim::SGD opt(net.list(), o);
    static_assert(std::is_same_v<decltype(opt), fg::optim::SGD<float>>);
    CHECK(opt.steps() == 0);
    RefSGD ref{o, {}};
    run_and_compare(net, opt, ref, o.lr, rng, 16);
  }
}

TEST_CASE("optim: Adam and AdamW match the scalar reference (bias correction, weight decay)",
          "[optim][adam]") {
  std::mt19937 rng(9102);
  SECTION("Adam") {
    const std::vector<fg::optim::AdamOptions> cases = {
        {.lr = 0.05},
        {.lr = 0.05, .weight_decay = 0.1},
        {.lr = 0.02, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.01},
    };
    for (const auto& o : cases) {
      INFO("Adam lr " << o.lr << ", betas " << o.beta1 << " " << o.beta2 << ", eps " << o.eps
                      << ", weight_decay " << o.weight_decay);
      Net<float> net(rng);
      fg::optim::Adam opt(net.list(), o);
      static_assert(std::is_same_v<decltype(opt), fg::optim::Adam<float>>);
      RefAdam ref{o.beta1, o.beta2, o.eps, o.weight_decay, false, {}, {}};
      run_and_compare(net, opt, ref, o.lr, rng, 64);
    }
  }
  SECTION("AdamW") {
    const std::vector<fg::optim::AdamWOptions> cases = {
        {.lr = 0.05},  // PyTorch's default weight decay, 0.01
        {.lr = 0.05, .weight_decay = 0.2},
        {.lr = 0.03, .beta1 = 0.5, .beta2 = 0.9, .weight_decay = 0},
    };
    CHECK(fg::optim::AdamWOptions{}.weight_decay == 0.01);
    CHECK(fg::optim::AdamOptions{}.weight_decay == 0);
    for (const auto& o : cases) {
      INFO("AdamW lr " << o.lr << ", betas " << o.beta1 << " " << o.beta2 << ", weight_decay "
                       << o.weight_decay);
      Net<float> net(rng);
      fg::optim::AdamW opt(net.list(), o);
      RefAdam ref{o.beta1, o.beta2, o.eps, o.weight_decay, true, {}, {}};
      run_and_compare(net, opt, ref, o.lr, rng, 64);
    }
  }
  SECTION("Adam and SGD in double") {
    Net<double> net(rng);
    fg::optim::Adam opt(net.list(), {.lr = 0.05, .weight_decay = 0.1});
    static_assert(std::is_same_v<decltype(opt), fg::optim::Adam<double>>);
    RefAdam ref{0.9, 0.999, 1e-8, 0.1, false, {}, {}};
    run_and_compare(net, opt, ref, 0.05, rng, 64);
    Net<double> net2(rng);
    const fg::optim::SGDOptions o{.lr = 0.1, .momentum = 0.9, .nesterov = true};
    fg::optim::SGD sgd(net2.list(), o);
    RefSGD ref2{o, {}};
    run_and_compare(net2, sgd, ref2, 0.1, rng, 16);
  }
}

TEST_CASE("optim: one launch per 64 parameters, and the step counts once per step",
          "[optim][launches]") {
  std::mt19937 rng(9103);
  for (const std::size_t count : {1, 63, 64, 65, 100, 129}) {
    INFO(count << " parameters");
    std::vector<fg::Tensor<float, 1>> ps;  // filled once: the optimizer holds references
    for (std::size_t k = 0; k < count; ++k) {
      ps.push_back(fgtest::random_tensor<float, 1>(Dims{static_cast<index_t>(k % 7 * 40 + 1)}, rng));
    }
    fg::optim::ParamList<float> list;
    for (auto& p : ps) {
      list.add(p);
    }
    fg::optim::Adam opt(std::move(list), {.lr = 0.05});
    RefAdam ref{0.9, 0.999, 1e-8, 0.0, false, {}, {}};
    Values want;
    for (const auto& p : ps) {
      want.push_back(Net<float>::host(p));
    }
    for (std::int64_t t = 1; t <= 3; ++t) {
      std::vector<fg::Tensor<float, 1>> grads;
      for (const auto& p : ps) {
        grads.push_back(fgtest::random_tensor<float, 1>(fgtest::dims_of(p.shape()), rng));
      }
      Values g;
      for (const auto& x : grads) {
        g.push_back(Net<float>::host(x));
      }
      fgtest::LaunchCounter launches;
      opt.step(grads);  // a run-time list (std::vector) of gradients
      CHECK(launches.launches() == static_cast<std::int64_t>((count + 63) / 64));
      ref.step(t, 0.05, want, g);
      CHECK(opt.steps() == t);
    }
    Values got;
    for (const auto& p : ps) {
      got.push_back(Net<float>::host(p));
    }
    CHECK(compare_values(got, want, 64 * fgtest::eps_of<float>(), 64 * fgtest::eps_of<float>()) ==
          "");
  }
}

TEST_CASE("optim: counts and shapes are checked before anything runs", "[optim][errors]") {
  std::mt19937 rng(9104);
  Net<float> net(rng);
  fg::optim::Adam opt(net.list(), {.lr = 0.05});
  const Values before = net.values();
  const auto grads = net.random_grads(rng);
  const auto& [gw, gb, gc, gs] = grads;
  fgtest::LaunchCounter count;

  std::string msg = fgtest::thrown_message<fg::shape_error>([&] { opt.step(gw, gb); });
  CHECK(fgtest::contains(msg, "Adam.step"));
  CHECK(fgtest::contains(msg, "2 gradients for 4 parameters"));

  const auto bad_c = fgtest::random_tensor<float, 3>(Dims{3, 5, 2}, rng);  // parameter 2: [2, 3, 5]
  msg = fgtest::thrown_message<fg::shape_error>([&] { opt.step(gw, gb, bad_c, gs); });
  CHECK(fgtest::contains(msg, "Adam.step"));
  CHECK(fgtest::contains(msg, "gradient 2 has shape [3, 5, 2]"));
  CHECK(fgtest::contains(msg, "parameter 2 has shape [2, 3, 5]"));

  const auto bad_b = fgtest::random_tensor<float, 2>(Dims{191, 1}, rng);  // another rank
  msg = fgtest::thrown_message<fg::shape_error>(
      [&] { opt.step(std::make_tuple(gw, bad_b, gc, fg::Tensor<float, 0>(gs))); });
  CHECK(fgtest::contains(msg, "gradient 1 has shape [191, 1]"));
  CHECK(fgtest::contains(msg, "parameter 1 has shape [191]"));

  std::vector<fg::Tensor<float, 1>> three(3, fg::Tensor<float, 1>(gb));
  msg = fgtest::thrown_message<fg::shape_error>([&] { opt.step(three); });
  CHECK(fgtest::contains(msg, "3 gradients for 4 parameters"));

  CHECK(count.launches() == 0);
  CHECK(net.values() == before);
  CHECK(opt.steps() == 0);

  // A parameter reassigned with another element count no longer fits its state.
  {
    auto w = fgtest::random_tensor<float, 2>(Dims{4, 5}, rng);
    fg::optim::SGD sgd(fg::optim::params(w), {.lr = 0.1, .momentum = 0.9});
    w = fgtest::random_tensor<float, 2>(Dims{5, 5}, rng);
    const auto g = fgtest::random_tensor<float, 2>(Dims{5, 5}, rng);
    msg = fgtest::thrown_message<fg::shape_error>([&] { sgd.step(g); });
    CHECK(fgtest::contains(msg, "SGD.step: parameter 0 has shape [5, 5] now, but had 20 elements"));
    // The same count in another shape is fine: the state is flat.
    w = fgtest::random_tensor<float, 2>(Dims{2, 10}, rng);
    CHECK_NOTHROW(sgd.step(fgtest::random_tensor<float, 2>(Dims{2, 10}, rng)));
  }
}

TEST_CASE("optim: invalid hyperparameters are rejected as PyTorch rejects them",
          "[optim][errors]") {
  std::mt19937 rng(9105);
  auto w = fgtest::random_tensor<float, 2>(Dims{3, 4}, rng);
  using fg::optim::params;
  auto msg = fgtest::thrown_message<fg::error>(
      [&] { fg::optim::SGD opt(params(w), {.lr = 0.1, .nesterov = true}); });
  CHECK(fgtest::contains(msg, "SGD: Nesterov momentum requires a momentum and zero dampening"));
  msg = fgtest::thrown_message<fg::error>([&] {
    fg::optim::SGD opt(params(w), {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true});
  });
  CHECK(fgtest::contains(msg, "Nesterov"));
  msg = fgtest::thrown_message<fg::error>([&] { fg::optim::SGD opt(params(w), {.lr = -1}); });
  CHECK(fgtest::contains(msg, "SGD: invalid learning rate -1"));
  msg = fgtest::thrown_message<fg::error>(
      [&] { fg::optim::SGD opt(params(w), {.momentum = -0.5}); });
  CHECK(fgtest::contains(msg, "invalid momentum -0.5"));
  msg = fgtest::thrown_message<fg::error>([&] { fg::optim::Adam opt(params(w), {.beta1 = 1}); });
  CHECK(fgtest::contains(msg, "Adam: invalid beta1 1"));
  msg = fgtest::thrown_message<fg::error>(
      [&] { fg::optim::AdamW opt(params(w), {.weight_decay = -0.1}); });
  CHECK(fgtest::contains(msg, "AdamW: invalid weight_decay -0.1"));
  msg = fgtest::thrown_message<fg::error>(
      [&] { fg::optim::Adam opt(fg::optim::ParamList<float>{}); });
  CHECK(fgtest::contains(msg, "Adam: the parameter list is empty"));
  fg::optim::Adam opt(params(w));
  msg = fgtest::thrown_message<fg::error>([&] { opt.set_lr(-0.5); });
  CHECK(fgtest::contains(msg, "invalid learning rate -0.5"));
  CHECK(opt.lr() == 1e-3);
}

TEST_CASE("optim: state written back through visit_state resumes a run exactly",
          "[optim][state]") {
  std::mt19937 rng(9106);
  Net<float> a(rng);
  fg::optim::AdamW opt_a(a.list(), {.lr = 0.05, .weight_decay = 0.1});
  std::vector<Net<float>::Grads> grads;
  for (int t = 0; t < 5; ++t) {
    grads.push_back(a.random_grads(rng));
  }
  for (int t = 0; t < 3; ++t) {
    opt_a.step(grads[static_cast<std::size_t>(t)]);
  }
  opt_a.set_lr(0.02);
  // "Checkpoint": parameters and optimizer state to the host; "resume" into fresh objects.
  const auto saved = state_of(opt_a);
  CHECK(saved.size() == 2 * 4 + 2);
  CHECK(saved.at("step") == std::vector<double>{3});
  Net<float> b = a;  // parameters: a deep copy
  fg::optim::AdamW opt_b(b.list(), {.lr = 0.05, .weight_decay = 0.1});
  opt_b.visit_state([&](const std::string& name, auto& t) {
    using E = typename std::remove_cvref_t<decltype(t)>::element_type;
    const auto& v = saved.at(name);
    const std::vector<E> host(v.begin(), v.end());
    t.copy_from(std::span<const E>(host));
  });
  CHECK(opt_b.steps() == 3);
  CHECK(opt_b.lr() == 0.02);
  for (std::size_t t = 3; t < 5; ++t) {
    opt_a.step(grads[t]);
    opt_b.step(grads[t]);
  }
  CHECK(a.values() == b.values());
  CHECK(state_of(opt_a) == state_of(opt_b));
}

TEST_CASE("optim: empty parameters are skipped; a tuple from fg::grad is accepted",
          "[optim][edge]") {
  std::mt19937 rng(9107);
  auto w = fgtest::random_tensor<float, 2>(Dims{5, 3}, rng);
  fg::Tensor<float, 2> empty({0, 4});
  auto b = fgtest::random_tensor<float, 1>(Dims{3}, rng);
  fg::optim::SGD opt(fg::optim::params(w, empty, b), {.lr = 0.5, .momentum = 0.5});
  RefSGD ref{opt.options(), {}};
  Values p = {Net<float>::host(w), {}, Net<float>::host(b)};
  for (std::int64_t t = 1; t <= 3; ++t) {
    const auto gw = fgtest::random_tensor<float, 2>(Dims{5, 3}, rng);
    const auto gb = fgtest::random_tensor<float, 1>(Dims{3}, rng);
    fgtest::LaunchCounter count;
    opt.step(gw, fg::Tensor<float, 2>({0, 4}), gb);
    CHECK(count.launches() == 1);
    ref.step(t, 0.5, p, {Net<float>::host(gw), {}, Net<float>::host(gb)});
  }
  const double tol = 16 * fgtest::eps_of<float>();
  CHECK(compare_values({Net<float>::host(w), {}, Net<float>::host(b)}, p, tol, tol) == "");
  CHECK(opt.steps() == 3);

  // Adam minimises sum((x - c)^2), its gradients from fg::grad (a std::tuple).
  auto x = fgtest::random_tensor<float, 1>(Dims{300}, rng, -3, 3);
  const auto c = fgtest::random_tensor<float, 1>(Dims{300}, rng, -3, 3);
  const float start = fg::sum(fg::square(x - c)).item();
  fg::optim::Adam adam(fg::optim::params(x), {.lr = 0.1});
  for (int t = 0; t < 600; ++t) {
    if (t == 300) {
      adam.set_lr(0.01);
    }
    adam.step(fg::grad(fg::sum(fg::square(x - c)), x));
  }
  const float end = fg::sum(fg::square(x - c)).item();
  INFO("loss " << start << " -> " << end);
  CHECK(start > 100);
  CHECK(end < 1e-4f * start);
  CHECK(fg::max(fg::abs(x - c)).item() < 0.02f);
  CHECK(adam.steps() == 600);
}

TEST_CASE("optim: parameter groups give each its own weight decay in the same single launch",
          "[optim][groups]") {
  std::mt19937 rng(9110);
  // Four parameters in two groups: the matrices decay by 0.1, the vectors (biases, norms) not at
  // all; against one optimizer per group, which must give the same bits.
  std::vector<fg::Tensor<float, 2>> mats = {fgtest::random_tensor<float, 2>(Dims{5, 3}, rng),
                                            fgtest::random_tensor<float, 2>(Dims{3, 4}, rng)};
  std::vector<fg::Tensor<float, 1>> vecs = {fgtest::random_tensor<float, 1>(Dims{3}, rng),
                                            fgtest::random_tensor<float, 1>(Dims{4}, rng)};
  auto mats_ref = mats;
  auto vecs_ref = vecs;
  for (auto& m : mats_ref) {
    m = fg::Tensor<float, 2>(m * 1.0f);  // own copies of the values
  }
  for (auto& v : vecs_ref) {
    v = fg::Tensor<float, 1>(v * 1.0f);
  }
  fg::optim::ParamList<float> all;
  all.add(mats[0], "fc.weight").add(vecs[0], "fc.bias").add(mats[1], "proj.weight").add(vecs[1], "ln.weight");
  auto exempt = [](const std::string& name, const std::vector<index_t>& dims) { return dims.size() < 2 || name.starts_with("ln"); };
  auto decayed = all.where([&](const std::string& n, const std::vector<index_t>& d) { return !exempt(n, d); });
  auto plain = all.where(exempt);
  REQUIRE(decayed.size() == 2);
  REQUIRE(plain.size() == 2);
  CHECK(plain.name(0) == "fc.bias");
  for (const bool adamw : {true, false}) {
    INFO((adamw ? "AdamW" : "SGD"));
    auto check = [&](auto& grouped, auto& with_decay, auto& without) {
      CHECK(grouped.weight_decay(1) == 0.1);  // the list order is the groups' order
      CHECK(grouped.weight_decay(2) == 0.0);
      for (int t = 0; t < 3; ++t) {
        const auto g0 = fgtest::random_tensor<float, 2>(Dims{5, 3}, rng);
        const auto g1 = fgtest::random_tensor<float, 2>(Dims{3, 4}, rng);
        const auto h0 = fgtest::random_tensor<float, 1>(Dims{3}, rng);
        const auto h1 = fgtest::random_tensor<float, 1>(Dims{4}, rng);
        fgtest::LaunchCounter launches;
        grouped.step(g0, g1, h0, h1);  // groups(): decayed first, then the others
        CHECK(launches.launches() == 1);
        with_decay.step(g0, g1);
        without.step(h0, h1);
      }
      for (std::size_t i = 0; i < 2; ++i) {
        CHECK(fgtest::compare_exact(mats[i], fgtest::ref_of(mats_ref[i])) == "");
        CHECK(fgtest::compare_exact(vecs[i], fgtest::ref_of(vecs_ref[i])) == "");
      }
    };
    if (adamw) {
      fg::optim::AdamW grouped(fg::optim::groups<float>({{decayed}, {plain, 0.0}}), {.lr = 0.05, .weight_decay = 0.1});
      fg::optim::AdamW with_decay(fg::optim::params(mats_ref[0], mats_ref[1]), {.lr = 0.05, .weight_decay = 0.1});
      fg::optim::AdamW without(fg::optim::params(vecs_ref[0], vecs_ref[1]), {.lr = 0.05, .weight_decay = 0.0});
      check(grouped, with_decay, without);
    } else {
      fg::optim::SGD grouped(fg::optim::groups<float>({{decayed, 0.1}, {plain}}), {.lr = 0.05, .momentum = 0.9});
      fg::optim::SGD with_decay(fg::optim::params(mats_ref[0], mats_ref[1]), {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.1});
      fg::optim::SGD without(fg::optim::params(vecs_ref[0], vecs_ref[1]), {.lr = 0.05, .momentum = 0.9});
      check(grouped, with_decay, without);
    }
  }
  // Errors: a negative decay; more distinct decays than a launch carries; a name in two groups.
  CHECK(fgtest::contains(fgtest::thrown_message<fg::error>([&] { (void)fg::optim::groups<float>({{plain, -1.0}}); }),
                         "weight decay"));
  std::vector<fg::Tensor<float, 1>> many;
  for (int k = 0; k < 5; ++k) {
    many.push_back(fgtest::random_tensor<float, 1>(Dims{2}, rng));
  }
  fg::optim::ParamList<float> five;
  for (int k = 0; k < 5; ++k) {
    five.add(fg::optim::ParamList<float>().add(many[static_cast<std::size_t>(k)], "p" + std::to_string(k)).set_weight_decay(0.01 * k));
  }
  CHECK(fgtest::contains(fgtest::thrown_message<fg::error>([&] { fg::optim::AdamW opt(five, {.weight_decay = 0.5}); }),
                         "distinct weight decays"));
  CHECK(fgtest::contains(fgtest::thrown_message<fg::error>([&] { (void)fg::optim::groups<float>({{all}, {plain, 0.0}}); }),
                         "already used"));
}

}  // namespace test_optim
