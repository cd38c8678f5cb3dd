// tests/test_module.cpp — the module protocol (nn/module.hpp): dotted names of nested models with
// vectors and arrays of blocks and tensors, parameter counts, optim::params(model) against a
// hand-written parameter list (bit-identical Adam steps), named optimizer state, model + Adam
// checkpoints (bit-identical round trip, all-or-nothing loads into models of another depth or
// width, or with another optimizer), and reset_parameters / Linear::reset seeding.
#include <fusegrad/fusegrad.hpp>
#include <fusegrad/nn/module.hpp>
#include <fusegrad/optim/checkpoint.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/tempdir.hpp"
#include "support/reference.hpp"

namespace test_module {
namespace fg = fusegrad;
namespace io = fusegrad::io;
namespace fs = std::filesystem;
using fg::index_t;
using fgtest::Dims;
using Snapshot = std::map<std::string, std::vector<double>>;  // name -> elements

// ---------------------------------------------------------------------------------------------
// Models: the README's Block / Model, and one with every other kind of field.

struct Block {
  fg::nn::Linear<float> fc1, fc2;
  Block(index_t width, index_t hidden, std::uint64_t seed)
      : fc1(width, hidden, 2 * seed), fc2(hidden, width, 2 * seed + 1) {}
  void fields(auto& f) {
    f("fc1", fc1);
    f("fc2", fc2);
  }
};

struct Model {
  std::vector<Block> blocks;
  fg::nn::Linear<float> head;
  Model(int depth, index_t width, std::uint64_t seed, index_t hidden = 8)
      : head(width, 3, 1000 + seed) {
    for (int i = 0; i < depth; ++i) {
      blocks.emplace_back(width, hidden, 10 * seed + static_cast<std::uint64_t>(i));
    }
  }
  void fields(auto& f) {
    f("blocks", blocks);
    f("head", head);
  }
};

struct Mixed {
  Block block;
  std::array<fg::Tensor<float, 1>, 2> gains;
  std::vector<fg::Tensor<float, 2>> tables;
  fg::Tensor<double, 0> temperature;
  fg::Tensor<std::int64_t, 1> counts;
  explicit Mixed(std::mt19937& rng)
      : block(4, 5, 7),
        gains{fgtest::random_tensor<float, 1>(Dims{4}, rng),
              fgtest::random_tensor<float, 1>(Dims{5}, rng)},
        temperature(fgtest::random_tensor<double, 0>(Dims{}, rng, 0.5, 2)),
        counts(fgtest::random_tensor<std::int64_t, 1>(Dims{6}, rng, 1, 100)) {
    tables.push_back(fgtest::random_tensor<float, 2>(Dims{3, 2}, rng));
    tables.push_back(fgtest::random_tensor<float, 2>(Dims{2, 3}, rng));
  }
  void fields(auto& f) {
    f("block", block);
    f("gains", gains);
    f("tables", tables);
    f("temperature", temperature);
    f("counts", counts);
  }
};

static_assert(fg::nn::module<Model> && fg::nn::module<const Model> && fg::nn::module<Block>);
static_assert(fg::nn::module<fg::nn::Linear<double>>);
static_assert(!fg::nn::module<fg::Tensor<float, 2>> && !fg::nn::module<std::vector<Block>>);

template <class M>
Snapshot snapshot(const M& model) {
  Snapshot out;
  fg::nn::for_each_parameter(model, [&](const std::string& name, const auto& t) {
    const auto v = t.to_vector();
    out[name] = std::vector<double>(v.begin(), v.end());
  });
  return out;
}

template <class Opt>
Snapshot state_of(Opt& opt) {
  Snapshot out;
  opt.visit_state([&](const std::string& name, const auto& t) {
    const auto v = t.to_vector();
    out[name] = std::vector<double>(v.begin(), v.end());
  });
  return out;
}

// Runs `f`, which must throw io_error whose message holds every one of `parts`.
template <class F>
void expect_io_error(F&& f, std::initializer_list<std::string> parts) {
  const std::string message = fgtest::thrown_message<fg::io_error>(f);
  for (const std::string& part : parts) {
    INFO("message: " << message);
    CHECK(fgtest::contains(message, part));
  }
}

/// A fresh temporary directory for this file's tests.
struct TempDir : fgtest::TempDir {
  TempDir() : fgtest::TempDir("module") {}
};

// Random gradients for Model(2, ...) in declaration order; one Adam step of `opt` over them.
struct Grads {
  std::vector<fg::Tensor<float, 2>> w;
  std::vector<fg::Tensor<float, 1>> b;
  Grads(const Model& m, std::mt19937& rng) {
    fg::nn::for_each_parameter(m, [&](const std::string&, const auto& t) {
      if constexpr (std::remove_cvref_t<decltype(t)>::rank == 2) {
        w.push_back(fgtest::random_tensor<float, 2>(fgtest::dims_of(t.shape()), rng));
      } else {
        b.push_back(fgtest::random_tensor<float, 1>(fgtest::dims_of(t.shape()), rng));
      }
    });
  }
  template <class Opt>
  void step(Opt& opt) const {  // depth 2: 2 x (fc1, fc2) + head, each (weight, bias)
    opt.step(w[0], b[0], w[1], b[1], w[2], b[2], w[3], b[3], w[4], b[4]);
  }
};

// ---------------------------------------------------------------------------------------------

TEST_CASE("module: dotted names, declaration order, counts", "[module]") {
  Model model(2, 6, 1);
  CHECK(fg::nn::parameter_names(model) ==
        std::vector<std::string>{"blocks.0.fc1.weight", "blocks.0.fc1.bias",
                                 "blocks.0.fc2.weight", "blocks.0.fc2.bias",
                                 "blocks.1.fc1.weight", "blocks.1.fc1.bias",
                                 "blocks.1.fc2.weight", "blocks.1.fc2.bias",
                                 "head.weight",         "head.bias"});
  // 2 x (6·8 + 8 + 8·6 + 6) + 6·3 + 3
  CHECK(fg::nn::parameter_count(model) == 2 * (48 + 8 + 48 + 6) + 18 + 3);
  CHECK(fg::nn::parameter_count(Model(5, 6, 1)) == 5 * (48 + 8 + 48 + 6) + 18 + 3);

  // The callback gets the tensor itself (writable, or const over a const model).
  fg::nn::for_each_parameter(model, [&](const std::string& name, auto& t) {
    static_assert(!std::is_const_v<std::remove_reference_t<decltype(t)>>);
    if (name == "head.bias") {
      CHECK(static_cast<const void*>(&t) == static_cast<const void*>(&model.head.b));
    }
  });
  const Model& cmodel = model;
  fg::nn::for_each_parameter(cmodel, [&](const std::string&, auto& t) {
    static_assert(std::is_const_v<std::remove_reference_t<decltype(t)>>);
  });

  std::mt19937 rng(5101);
  Mixed mixed(rng);
  CHECK(fg::nn::parameter_names(mixed) ==
        std::vector<std::string>{"block.fc1.weight", "block.fc1.bias", "block.fc2.weight",
                                 "block.fc2.bias", "gains.0", "gains.1", "tables.0", "tables.1",
                                 "temperature", "counts"});
  // Floating-point tensors only: the int64 counts are not parameters.
  CHECK(fg::nn::parameter_count(mixed) == (20 + 5 + 20 + 4) + (4 + 5) + (6 + 6) + 1);

  // An empty vector of blocks has no parameters.
  Model headless(0, 6, 1);
  CHECK(fg::nn::parameter_names(headless) == std::vector<std::string>{"head.weight", "head.bias"});
}

TEST_CASE("module: ParamList names; optim::params(model) picks tensors of one dtype",
          "[module][optim]") {
  std::mt19937 rng(5102);
  auto w = fgtest::random_tensor<float, 2>(Dims{3, 4}, rng);
  auto b = fgtest::random_tensor<float, 1>(Dims{4}, rng);
  auto s = fgtest::random_tensor<float, 0>(Dims{}, rng);
  fg::optim::ParamList<float> list = fg::optim::params(w, b);
  list.add(s, "scale");
  REQUIRE(list.size() == 3);
  CHECK(list.name(0) == "0");
  CHECK(list.name(1) == "1");
  CHECK(list.name(2) == "scale");
  const std::string msg = fgtest::thrown_message<fg::error>([&] { list.add(w, "scale"); });
  CHECK(fgtest::contains(msg, "ParamList::add: the name 'scale' is already used by parameter 2"));
  CHECK(list.size() == 3);

  Mixed mixed(rng);
  const auto floats = fg::optim::params(mixed);  // ParamList<float> by default
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(floats)>, fg::optim::ParamList<float>>);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < floats.size(); ++i) {
    names.push_back(floats.name(i));
  }
  CHECK(names == std::vector<std::string>{"block.fc1.weight", "block.fc1.bias", "block.fc2.weight",
                                          "block.fc2.bias", "gains.0", "gains.1", "tables.0",
                                          "tables.1"});
  CHECK(floats.data(0) == mixed.block.fc1.W.data());
  CHECK(floats.data(7) == mixed.tables[1].data());
  CHECK(floats.dims(6) == std::vector<index_t>{3, 2});
  const auto doubles = fg::optim::params<double>(mixed);
  REQUIRE(doubles.size() == 1);
  CHECK(doubles.name(0) == "temperature");
  CHECK(doubles.data(0) == mixed.temperature.data());
}

TEST_CASE("module: Adam over params(model) steps exactly as over params(W, b, ...)",
          "[module][optim]") {
  std::mt19937 rng(5103);
  Model a(2, 6, 1);
  Model b = a;  // deep copy
  fg::optim::Adam opt_a(fg::optim::params(a), {.lr = 0.01, .weight_decay = 0.1});
  fg::optim::Adam opt_b(
      fg::optim::params(b.blocks[0].fc1.W, b.blocks[0].fc1.b, b.blocks[0].fc2.W, b.blocks[0].fc2.b,
                        b.blocks[1].fc1.W, b.blocks[1].fc1.b, b.blocks[1].fc2.W, b.blocks[1].fc2.b,
                        b.head.W, b.head.b),
      {.lr = 0.01, .weight_decay = 0.1});
  REQUIRE(opt_a.parameters().size() == 10);
  for (int t = 0; t < 4; ++t) {
    const Grads g(a, rng);
    g.step(opt_a);
    g.step(opt_b);
  }
  const Snapshot after = snapshot(a);
  CHECK(after == snapshot(b));
  CHECK(after != snapshot(Model(2, 6, 1)));  // the steps did something

  // The same state, under the parameters' names (model) or indices (plain list).
  const Snapshot state_a = state_of(opt_a);
  const Snapshot state_b = state_of(opt_b);
  REQUIRE(state_a.size() == 2 * 10 + 2);
  CHECK(state_a.at("m.blocks.1.fc2.weight") == state_b.at("m.6"));
  CHECK(state_a.at("v.head.bias") == state_b.at("v.9"));
  CHECK(state_a.at("step") == std::vector<double>{4});
  std::vector<std::string> order;
  opt_a.visit_state([&](const std::string& name, const auto&) { order.push_back(name); });
  CHECK(order.front() == "m.blocks.0.fc1.weight");
  CHECK(order[10] == "v.blocks.0.fc1.weight");
  CHECK(order.back() == "lr");
}

TEST_CASE("module: model + Adam checkpoint round trip is bit-identical", "[module][io]") {
  TempDir dir;
  std::mt19937 rng(5104);
  Model a(2, 6, 1);
  fg::optim::Adam opt_a(fg::optim::params(a), {.lr = 0.02});
  for (int t = 0; t < 3; ++t) {
    Grads(a, rng).step(opt_a);
  }
  opt_a.set_lr(0.005);
  io::Checkpoint meta;
  meta.put_meta("epoch", 3);
  meta.put("rng_state", fgtest::random_tensor<std::int64_t, 1>(Dims{4}, rng, 1, 1000));
  io::save_checkpoint(dir / "run.fgc", a, opt_a, meta);

  Model c(2, 6, 99);  // freshly initialised from another seed
  fg::optim::Adam opt_c(fg::optim::params(c), {.lr = 0.02});
  REQUIRE(snapshot(c) != snapshot(a));
  const io::Checkpoint loaded = io::load_checkpoint(dir / "run.fgc", c, opt_c);
  CHECK(loaded.meta<int>("epoch") == 3);
  CHECK(loaded.meta<std::int64_t>("fusegrad.parameters") == 10);
  CHECK(loaded.contains("rng_state"));
  REQUIRE(loaded.tensors().size() == 10 + 2 * 10 + 2 + 1);
  CHECK(loaded.tensors()[0].name == "blocks.0.fc1.weight");
  CHECK(loaded.tensors()[9].name == "head.bias");
  CHECK(loaded.tensors()[10].name == "optimizer.m.blocks.0.fc1.weight");
  CHECK(loaded.tensors()[31].name == "optimizer.lr");
  CHECK(loaded.tensors()[32].name == "rng_state");
  CHECK(snapshot(c) == snapshot(a));
  CHECK(state_of(opt_c) == state_of(opt_a));
  CHECK(opt_c.steps() == 3);
  CHECK(opt_c.lr() == 0.005);
  // The optimizer still updates c's tensors: one more step keeps both runs identical.
  const Snapshot at_save = snapshot(a);
  const Grads g(a, rng);
  g.step(opt_a);
  g.step(opt_c);
  CHECK(snapshot(c) == snapshot(a));

  // The model alone; optimizer state in the file is ignored.
  Model d(2, 6, 7);
  io::load_checkpoint(dir / "run.fgc", d);
  CHECK(snapshot(d) == at_save);
  io::save_checkpoint(dir / "model.fgc", a);
  const io::Checkpoint only = io::load_checkpoint(dir / "model.fgc", d);
  CHECK(only.tensors().size() == 10);
  CHECK(snapshot(d) == snapshot(a));

  // In memory: put_module / get_module.
  io::Checkpoint mem;
  io::put_module(mem, a);
  Model e(2, 6, 8);
  io::get_module(mem, e);
  CHECK(snapshot(e) == snapshot(a));

  // An extra tensor may not take a parameter's name.
  io::Checkpoint clash;
  clash.put("head.bias", a.head.b);
  expect_io_error([&] { io::save_checkpoint(dir / "clash.fgc", a, opt_a, clash); },
                  {"save_checkpoint: ", "the extra tensor 'head.bias' has the name of a model"});
  CHECK_FALSE(fs::exists(dir / "clash.fgc"));
}

TEST_CASE("module: loading into another depth, width or optimizer changes nothing",
          "[module][io]") {
  TempDir dir;
  std::mt19937 rng(5105);
  Model saved(2, 6, 1);
  fg::optim::Adam opt_saved(fg::optim::params(saved));
  Grads(saved, rng).step(opt_saved);
  const fs::path file = dir / "run.fgc";
  io::save_checkpoint(file, saved, opt_saved);

  const auto expect_untouched = [&](Model& m, auto& opt, std::initializer_list<std::string> parts) {
    const Snapshot before = snapshot(m);
    const Snapshot state_before = state_of(opt);
    expect_io_error([&] { io::load_checkpoint(file, m, opt); }, parts);
    CHECK(snapshot(m) == before);
    CHECK(state_of(opt) == state_before);
  };

  Model deeper(3, 6, 2);
  fg::optim::Adam opt_deeper(fg::optim::params(deeper));
  expect_untouched(deeper, opt_deeper,
                   {"load_checkpoint: " + file.string(), "nothing was loaded",
                    "tensor 'blocks.2.fc1.weight' (float32 [6, 8]) is not in the checkpoint",
                    "tensor 'optimizer.m.blocks.2.fc2.bias' (float32 [6]) is not in the "
                    "checkpoint"});

  Model shallower(1, 6, 3);
  fg::optim::Adam opt_shallower(fg::optim::params(shallower));
  expect_untouched(shallower, opt_shallower,
                   {"tensor 'blocks.1.fc1.weight' is in the checkpoint but not in the model",
                    "tensor 'optimizer.v.blocks.1.fc2.bias' is in the checkpoint but not in the "
                    "optimizer's state"});
  // Without the optimizer, too.
  const Snapshot before = snapshot(shallower);
  expect_io_error([&] { io::load_checkpoint(file, shallower); },
                  {"tensor 'blocks.1.fc2.bias' is in the checkpoint but not in the model"});
  CHECK(snapshot(shallower) == before);

  Model wider(2, 7, 4);
  fg::optim::Adam opt_wider(fg::optim::params(wider));
  expect_untouched(wider, opt_wider,
                   {"tensor 'blocks.0.fc1.weight' is float32 [6, 8] in the checkpoint, but the "
                    "target is float32 [7, 8]",
                    "tensor 'optimizer.m.head.weight' is float32 [18] in the checkpoint, but the "
                    "target is float32 [21]"});

  // The same model with another optimizer: its state is missing, Adam's is unexpected.
  Model same(2, 6, 5);
  fg::optim::SGD sgd(fg::optim::params(same), {.lr = 0.1, .momentum = 0.9});
  expect_untouched(same, sgd,
                   {"tensor 'optimizer.momentum.blocks.0.fc1.weight' (float32 [48]) is not in "
                    "the checkpoint",
                    "tensor 'optimizer.m.blocks.0.fc1.weight' is in the checkpoint but not in the "
                    "optimizer's state"});

  // In memory, get_module names itself and the checkpoint's origin.
  io::Checkpoint mem;
  io::put_module(mem, saved);
  const Snapshot deeper_before = snapshot(deeper);
  expect_io_error([&] { io::get_module(mem, deeper); },
                  {"get_module: (checkpoint in memory)", "'blocks.2.fc2.bias' (float32 [6])"});
  CHECK(snapshot(deeper) == deeper_before);
}

TEST_CASE("module: reset_parameters seeds every layer from its dotted name", "[module][nn]") {
  // Linear::reset(seed) draws what Linear(in, out, seed) draws.
  fg::nn::Linear<float> fc(13, 7, 1);
  fc.reset(42);
  const fg::nn::Linear<float> fresh(13, 7, 42);
  CHECK(fc.W.to_vector() == fresh.W.to_vector());
  CHECK(fc.b.to_vector() == fresh.b.to_vector());
  CHECK(fc.W.to_vector() != fg::nn::Linear<float>(13, 7, 1).W.to_vector());

  Model a(3, 6, 1);
  Model b(3, 6, 2);
  REQUIRE(snapshot(a) != snapshot(b));
  fg::nn::reset_parameters(a, 42);
  fg::nn::reset_parameters(b, 42);
  const Snapshot reset = snapshot(a);
  CHECK(reset == snapshot(b));  // deterministic: the old values do not matter
  const fg::nn::Linear<float> expected(6, 8, fg::nn::layer_seed(42, "blocks.1.fc1"));
  CHECK(a.blocks[1].fc1.W.to_vector() == expected.W.to_vector());
  CHECK(a.blocks[1].fc1.b.to_vector() == expected.b.to_vector());
  // Layers of the same shape get different values.
  CHECK(reset.at("blocks.0.fc1.weight") != reset.at("blocks.1.fc1.weight"));
  CHECK(reset.at("blocks.0.fc1.weight") != reset.at("blocks.2.fc1.weight"));
  CHECK(reset.at("blocks.0.fc2.bias") != reset.at("blocks.1.fc2.bias"));
  // Another seed, other values; a deeper model keeps the seeds of the layers it shares.
  fg::nn::reset_parameters(b, 43);
  CHECK(snapshot(b).at("blocks.0.fc1.weight") != reset.at("blocks.0.fc1.weight"));
  Model deeper(5, 6, 3);
  fg::nn::reset_parameters(deeper, 42);
  CHECK(snapshot(deeper).at("blocks.2.fc2.weight") == reset.at("blocks.2.fc2.weight"));
  CHECK(fg::nn::layer_seed(42, "blocks.1.fc1") != fg::nn::layer_seed(42, "blocks.11.fc1"));
  CHECK(fg::nn::layer_seed(42, "blocks.1.fc1") != fg::nn::layer_seed(43, "blocks.1.fc1"));

  // Tensors outside any layer with reset() are left as they are.
  std::mt19937 rng(5106);
  Mixed mixed(rng);
  const Snapshot mixed_before = snapshot(mixed);
  fg::nn::reset_parameters(mixed, 9);
  const Snapshot mixed_after = snapshot(mixed);
  CHECK(mixed_after.at("gains.1") == mixed_before.at("gains.1"));
  CHECK(mixed_after.at("tables.0") == mixed_before.at("tables.0"));
  CHECK(mixed_after.at("counts") == mixed_before.at("counts"));
  CHECK(mixed_after.at("block.fc2.weight") != mixed_before.at("block.fc2.weight"));
  CHECK(mixed.block.fc2.W.to_vector() ==
        fg::nn::Linear<float>(5, 4, fg::nn::layer_seed(9, "block.fc2")).W.to_vector());
}

}  // namespace test_module
