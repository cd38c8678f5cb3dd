// examples/char_gpt.hpp — the character-level GPT of examples/char_gpt.cpp and its data: the
// model (as fusegrad statements), the byte tokenizer, the 90/10 split, the batch stream, and one
// training step. bench/gpt_train.cpp times the same code.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <fusegrad/fusegrad.hpp>

namespace gpt {

namespace fg = fusegrad;
using fg::index_t;

/// The model's shape and the seed its weights are drawn from.
struct Config {
  int n_layer = 4, n_head = 4;
  index_t n_embd = 128, block_size = 64;
  std::uint64_t seed = 1337;
};

/// The bytes of FILE, or of every regular file in DIR (sorted by name; symbolic links and `.dat`
/// indexes skipped). Throws fusegrad::io_error naming the path when nothing can be read.
inline std::string read_corpus(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const auto st = fs::symlink_status(entry.path(), ec);
      if (fs::is_regular_file(st) && entry.path().extension() != ".dat") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      throw fg::io_error("char_gpt", path, "is a directory with no text files");
    }
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    throw fg::io_error("char_gpt", path, "does not exist");
  }
  std::string text;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      throw fg::io_error("char_gpt", f, "cannot be opened for reading");
    }
    text.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
      throw fg::io_error("char_gpt", f, "could not be read");
    }
  }
  if (text.empty()) {
    throw fg::io_error("char_gpt", path, "holds no text (an empty corpus)");
  }
  return text;
}

/// SplitMix64: the batch offsets, reproducible in Python (bench/gpt_train_torch.py).
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

// ---- the model ----------------------------------------------------------------------------

/// A linear layer drawn N(0, std²) with a zero bias (GPT-2's initialisation).
inline fg::nn::Linear<float> gpt_linear(index_t in, index_t out, float stddev, std::uint64_t seed) {
  fg::nn::Linear<float> l(in, out, seed);
  l.W = fg::nn::normal<float>(fg::Shape<2>{in, out}, 0.f, stddev, seed);
  l.b.fill(0.f);
  return l;
}

struct Block {
  fg::nn::LayerNorm<float> ln1, ln2;
  fg::nn::Linear<float> attn, proj, fc1, fc2;  // C -> 3C, C -> C, C -> 4C, 4C -> C
  Block(index_t c, int layers, std::uint64_t seed)
      : ln1(c), ln2(c),
        attn(gpt_linear(c, 3 * c, 0.02f, seed)),
        proj(gpt_linear(c, c, 0.02f / std::sqrt(2.f * layers), seed + 1)),
        fc1(gpt_linear(c, 4 * c, 0.02f, seed + 2)),
        fc2(gpt_linear(4 * c, c, 0.02f / std::sqrt(2.f * layers), seed + 3)) {}
  void fields(auto& f) {
    f("ln1", ln1);
    f("attn", attn);
    f("proj", proj);
    f("ln2", ln2);
    f("fc1", fc1);
    f("fc2", fc2);
  }
};

struct GPT {
  index_t vocab, block_size, width;
  int heads;
  fg::nn::Embedding<float> wte, wpe;
  std::vector<Block> blocks;
  fg::nn::LayerNorm<float> ln_f;
  fg::nn::Linear<float> head;  // untied from wte

  GPT(index_t v, const Config& o)
      : vocab(v), block_size(o.block_size), width(o.n_embd), heads(o.n_head),
        wte(v, o.n_embd, 10 * o.seed + 1, 0.02f), wpe(o.block_size, o.n_embd, 10 * o.seed + 2, 0.02f),
        ln_f(o.n_embd), head(gpt_linear(o.n_embd, v, 0.02f, 10 * o.seed + 3)) {
    for (int l = 0; l < o.n_layer; ++l) {
      blocks.emplace_back(o.n_embd, o.n_layer, 10 * o.seed + 100 + 10 * static_cast<std::uint64_t>(l));
    }
  }
  void fields(auto& f) {
    f("wte", wte);
    f("wpe", wpe);
    f("blocks", blocks);
    f("ln_f", ln_f);
    f("head", head);
  }

  /// Logits (B·T, V) of ids (B, T); positions (T) are 0..T-1. One statement per step of the
  /// math: each is one or two fused kernels, or a GEMM (the README's fusion table).
  fg::Var<float, 2> logits(const fg::Tensor<std::int32_t, 2>& ids, const fg::Tensor<std::int32_t, 1>& pos,
                           double dropout, std::uint64_t dropout_seed) const {
    const index_t b = ids.shape(0), t = ids.shape(1), c = width, h = heads, d = width / heads;
    if (t > block_size) {
      throw fg::shape_error("char_gpt: a context of " + std::to_string(t) + " tokens is longer than the position table (" +
                            std::to_string(block_size) + " rows, --block-size)");
    }
    fg::Var<float, 2> x = fg::reshape(wte(ids) + wpe(pos), {b * t, c});
    std::uint64_t salt = dropout_seed;
    auto drop = [&](const auto& e) { return fg::nn::dropout(e, dropout, salt++); };
    for (const Block& blk : blocks) {
      // Causal self-attention: q, k, v are [B, H, T, D] views of the one projection (the GEMMs
      // read them in place: no copies), attention, heads merged back for the output projection.
      fg::Var<float, 2> qkv = blk.attn(blk.ln1(x));
      const auto heads = fg::permute(fg::reshape(qkv, {b, t, 3, h, d}), {2, 0, 3, 1, 4});  // [3, B, H, T, D]
      fg::Var<float, 4> y = fg::nn::scaled_dot_product_attention(fg::select(heads, 0, 0), fg::select(heads, 0, 1),
                                                                 fg::select(heads, 0, 2), fg::nn::causal);
      x = x + drop(blk.proj(fg::reshape(fg::permute(y, {0, 2, 1, 3}), {b * t, c})));
      fg::Var<float, 2> a = fg::gelu(blk.fc1(blk.ln2(x)));
      x = x + drop(blk.fc2(a));
    }
    return head(ln_f(x));
  }
};

// ---- data -------------------------------------------------------------------------------

struct Corpus {
  std::vector<int> to_id = std::vector<int>(256, -1);
  std::vector<unsigned char> to_byte;
  std::vector<std::int32_t> train, val;
};

inline Corpus tokenize(const std::string& text, index_t block_size) {
  Corpus c;
  std::array<bool, 256> seen{};
  for (const char ch : text) {
    seen[static_cast<unsigned char>(ch)] = true;
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (seen[static_cast<std::size_t>(byte)]) {
      c.to_id[static_cast<std::size_t>(byte)] = static_cast<int>(c.to_byte.size());
      c.to_byte.push_back(static_cast<unsigned char>(byte));
    }
  }
  const std::size_t n_train = text.size() * 9 / 10;
  for (std::size_t i = 0; i < text.size(); ++i) {
    (i < n_train ? c.train : c.val).push_back(c.to_id[static_cast<unsigned char>(text[i])]);
  }
  const auto need = static_cast<std::size_t>(block_size) + 2;
  if (c.train.size() < need || c.val.size() < need) {
    throw fg::error("char_gpt: the corpus has " + std::to_string(text.size()) + " bytes; its 90/10 split needs at least " +
                    std::to_string(need) + " in each part for a context of " + std::to_string(block_size) +
                    " (use more text or a smaller --block-size)");
  }
  return c;
}

/// A batch: ids (B, T), targets (B·T), at offsets drawn from `rng` (uniform over the split).
struct Batch {
  fg::Tensor<std::int32_t, 2> x;
  fg::Tensor<std::int32_t, 1> y;
};
inline Batch get_batch(const std::vector<std::int32_t>& data, index_t b, index_t t, SplitMix64& rng) {
  std::vector<std::int32_t> xs, ys;
  const auto range = static_cast<std::uint64_t>(data.size()) - static_cast<std::uint64_t>(t);
  for (index_t i = 0; i < b; ++i) {
    const auto start = static_cast<std::size_t>(rng.next() % range);
    xs.insert(xs.end(), data.begin() + static_cast<std::ptrdiff_t>(start), data.begin() + static_cast<std::ptrdiff_t>(start + t));
    ys.insert(ys.end(), data.begin() + static_cast<std::ptrdiff_t>(start + 1), data.begin() + static_cast<std::ptrdiff_t>(start + t + 1));
  }
  return {fg::from_host<std::int32_t>({b, t}, std::span<const std::int32_t>(xs)),
          fg::from_host<std::int32_t>({b * t}, std::span<const std::int32_t>(ys))};
}

inline fg::Tensor<std::int32_t, 1> positions(index_t t) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(t));
  for (index_t i = 0; i < t; ++i) {
    p[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  }
  return fg::from_host<std::int32_t>({t}, std::span<const std::int32_t>(p));
}

/// The AdamW of the example: weight decay on the matrices of the blocks and the head, none on
/// biases, norms and embeddings (two parameter groups, one launch per step).
inline fg::optim::AdamW<float> make_optimizer(GPT& model, double lr, double weight_decay) {
  auto all = fg::optim::params(model);
  auto decays = [](const std::string& name, const std::vector<index_t>& dims) {
    return dims.size() == 2 && !name.starts_with("wte") && !name.starts_with("wpe");
  };
  auto rest = [&](const std::string& name, const std::vector<index_t>& dims) { return !decays(name, dims); };
  return fg::optim::AdamW<float>(fg::optim::groups<float>({{all.where(decays)}, {all.where(rest), 0.0}}),
                                 {.lr = lr, .beta1 = 0.9, .beta2 = 0.99, .weight_decay = weight_decay});
}

/// One training step: forward, backward, gradient clipping (when clip > 0), AdamW. Returns the
/// loss (on the device: reading it waits for the step).
inline fg::Tensor<float, 0> train_step(const GPT& model, fg::optim::AdamW<float>& opt, const Batch& bt,
                                       const fg::Tensor<std::int32_t, 1>& pos, double clip, double dropout,
                                       std::uint64_t dropout_seed) {
  const auto logits = model.logits(bt.x, pos, dropout, dropout_seed);
  auto [value, grads] = fg::value_and_grad(fg::mean(fg::nn::cross_entropy(logits, bt.y)), opt.parameters());
  if (clip > 0) {
    fg::optim::clip_grad_norm(grads, clip);
  }
  opt.step(grads);
  return value;
}

}  // namespace gpt
