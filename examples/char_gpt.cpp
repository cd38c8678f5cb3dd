// examples/char_gpt.cpp — a character-level GPT written as fusegrad statements, trained on any text
// (Debian's fortunes by default), then sampled. On the GPU when built by nvcc, on the CPU otherwise.
//
//   char_gpt [--data FILE|DIR] [--iters N] [--eval-interval N] [--eval-iters N] [--csv FILE]
//            [--seed N] [--save FILE] [--resume FILE] [--sample N] [--temperature T]
//            [--prompt TEXT] [--n-layer N] [--n-head N] [--n-embd N] [--block-size N]
//            [--batch-size N] [--lr X] [--min-lr X] [--warmup N] [--weight-decay X]
//            [--grad-clip X] [--dropout P] [--max-val-loss X]
//
// Defaults: nanoGPT's published CPU configuration of its character-level example (4 layers, 4
// heads, 128 wide, context 64, batch 12, 2,000 iterations, lr 1e-3 with 100 warm-up steps and
// cosine decay to 1e-4, AdamW β = (0.9, 0.99), weight decay 0.1 on the matrices only, gradient
// clipping at 1.0, dropout 0, 20 batches per loss estimate every 250 iterations).
//
// The model: token + position embeddings; N pre-norm blocks x += proj(attention(ln1(x))),
// x += fc2(gelu(fc1(ln2(x)))) with causal self-attention over H heads; a final layer norm and an
// untied linear head. Linear layers have biases. Weights are drawn N(0, 0.02), the residual
// projections N(0, 0.02/√(2N)), biases 0 (GPT-2's scheme, as nanoGPT draws it).
//
// Data: the text's bytes are the tokens (the vocabulary is the distinct bytes present); the first
// 90% trains, the last 10% validates. Batches are drawn at offsets from a SplitMix64 stream seeded
// by --seed (bench/gpt_train_torch.py draws the same ones).
//
// Exit codes: 0 done; 1 an error (unreadable or empty corpus, bad checkpoint: the message says
// which file and what); 2 bad arguments; 3 the final validation loss is above --max-val-loss;
// 4 no corpus found.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "cli.hpp"

#include "char_gpt.hpp"

namespace {

using namespace gpt;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string data = "/usr/share/games/fortunes";
  int iters = 2000, eval_interval = 250, eval_iters = 20;
  std::string csv, save, resume;
  std::uint64_t seed = 1337;
  int sample = 0;
  double temperature = 1.0;
  std::string prompt = "\n";
  int n_layer = 4, n_head = 4;
  index_t n_embd = 128, block_size = 64, batch = 12;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, grad_clip = 1.0, dropout = 0.0;
  int warmup = 100;
  double max_val_loss = -1;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "char_gpt: " << message << "\n"
            << "usage: char_gpt [--data FILE|DIR] [--iters N] [--eval-interval N] [--eval-iters N] [--csv FILE]\n"
            << "                [--seed N] [--save FILE] [--resume FILE] [--sample N] [--temperature T]\n"
            << "                [--prompt TEXT] [--n-layer N] [--n-head N] [--n-embd N] [--block-size N]\n"
            << "                [--batch-size N] [--lr X] [--min-lr X] [--warmup N] [--weight-decay X]\n"
            << "                [--grad-clip X] [--dropout P] [--max-val-loss X]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  cli::parse_flags(argc, argv, "trains a character-level GPT on a text, then samples from it", usage_error,
                   [&](const std::string& flag, const std::string& value) {
      if (flag == "--data") o.data = value;
      else if (flag == "--iters") o.iters = std::stoi(value);
      else if (flag == "--eval-interval") o.eval_interval = std::stoi(value);
      else if (flag == "--eval-iters") o.eval_iters = std::stoi(value);
      else if (flag == "--csv") o.csv = value;
      else if (flag == "--seed") o.seed = std::stoull(value);
      else if (flag == "--save") o.save = value;
      else if (flag == "--resume") o.resume = value;
      else if (flag == "--sample") o.sample = std::stoi(value);
      else if (flag == "--temperature") o.temperature = std::stod(value);
      else if (flag == "--prompt") o.prompt = value;
      else if (flag == "--n-layer") o.n_layer = std::stoi(value);
      else if (flag == "--n-head") o.n_head = std::stoi(value);
      else if (flag == "--n-embd") o.n_embd = std::stol(value);
      else if (flag == "--block-size") o.block_size = std::stol(value);
      else if (flag == "--batch-size") o.batch = std::stol(value);
      else if (flag == "--lr") o.lr = std::stod(value);
      else if (flag == "--min-lr") o.min_lr = std::stod(value);
      else if (flag == "--warmup") o.warmup = std::stoi(value);
      else if (flag == "--weight-decay") o.weight_decay = std::stod(value);
      else if (flag == "--grad-clip") o.grad_clip = std::stod(value);
      else if (flag == "--dropout") o.dropout = std::stod(value);
      else if (flag == "--max-val-loss") o.max_val_loss = std::stod(value);
      else return false;
      return true;
  });
  if (o.iters < 0 || o.eval_interval < 1 || o.eval_iters < 1) usage_error("--iters >= 0, --eval-interval and --eval-iters >= 1");
  if (o.n_layer < 1 || o.n_head < 1 || o.n_embd < 1 || o.block_size < 1 || o.batch < 1) usage_error("model sizes must be >= 1");
  if (o.n_embd % o.n_head != 0) usage_error("--n-embd must be a multiple of --n-head");
  if (!(o.dropout >= 0 && o.dropout < 1)) usage_error("--dropout must be in [0, 1)");
  if (!(o.temperature > 0)) usage_error("--temperature must be positive");
  if (o.sample < 0 || o.warmup < 0) usage_error("--sample and --warmup must be >= 0");
  return o;
}

/// Mean loss over `iters` batches of each split (no gradients recorded), from its own stream so
/// that evaluating does not change the training batches.
std::array<double, 2> estimate_loss(const GPT& model, const Corpus& c, const Options& o, std::uint64_t salt) {
  fg::no_grad off;
  const auto pos = positions(o.block_size);
  std::array<double, 2> out{};
  for (int split = 0; split < 2; ++split) {
    SplitMix64 rng{o.seed * 7919 + salt * 2 + static_cast<std::uint64_t>(split)};
    double sum = 0;
    for (int i = 0; i < o.eval_iters; ++i) {
      const Batch bt = get_batch(split == 0 ? c.train : c.val, o.batch, o.block_size, rng);
      const auto logits = model.logits(bt.x, pos, 0.0, 0);
      sum += static_cast<double>(fg::mean(fg::nn::cross_entropy(logits, bt.y)).item());
    }
    out[static_cast<std::size_t>(split)] = sum / o.eval_iters;
  }
  return out;
}

/// N characters continuing `prompt`: each from softmax(logits / temperature) of the last position
/// (the context cropped to the block size), drawn with a SplitMix64 stream seeded by --seed.
std::string sample(const GPT& model, const Corpus& c, const Options& o) {
  fg::no_grad off;
  std::vector<std::int32_t> ctx;
  for (const char ch : o.prompt) {
    const int id = c.to_id[static_cast<unsigned char>(ch)];
    if (id < 0) {
      throw fg::error("char_gpt: --prompt has a character (byte " + std::to_string(static_cast<unsigned char>(ch)) +
                      ") that the corpus never uses");
    }
    ctx.push_back(id);
  }
  if (ctx.empty()) {
    ctx.push_back(0);
  }
  SplitMix64 rng{o.seed ^ 0x5eedULL};
  std::string out;
  for (int n = 0; n < o.sample; ++n) {
    const auto t = std::min<index_t>(static_cast<index_t>(ctx.size()), o.block_size);
    const std::vector<std::int32_t> window(ctx.end() - t, ctx.end());
    const auto ids = fg::from_host<std::int32_t>({1, t}, std::span<const std::int32_t>(window));
    const fg::Tensor<float, 2> logits = model.logits(ids, positions(t), 0.0, 0);
    const std::vector<float> row = fg::Tensor<float, 1>(fg::reshape(fg::slice(logits, 0, t - 1, t), {model.vocab})).to_vector();
    const double top = *std::max_element(row.begin(), row.end());
    std::vector<double> p(row.size());
    double total = 0;
    for (std::size_t j = 0; j < row.size(); ++j) {
      total += p[j] = std::exp((row[j] - top) / o.temperature);
    }
    double u = rng.uniform() * total;
    std::size_t pick = 0;
    while (pick + 1 < p.size() && u >= p[pick]) {
      u -= p[pick++];
    }
    ctx.push_back(static_cast<std::int32_t>(pick));
    out.push_back(static_cast<char>(c.to_byte[pick]));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    std::string text;
    try {
      text = read_corpus(o.data);
    } catch (const fg::io_error& e) {
      std::fprintf(stderr, "char_gpt: %s\n", e.what());
      const bool missing = !std::filesystem::exists(o.data);
      if (missing) {
        std::fprintf(stderr, "char_gpt: get the default corpus with `sudo apt-get install fortunes`, or pass --data FILE|DIR\n");
      }
      return missing ? 4 : 1;
    }
    const Corpus corpus = tokenize(text, o.block_size);
    std::printf("fusegrad char-GPT on %s\n", fg::backend::describe().c_str());
    std::printf("data: %s: %zu bytes, vocabulary %zu, %zu train / %zu validation tokens\n", o.data.c_str(), text.size(),
                corpus.to_byte.size(), corpus.train.size(), corpus.val.size());

    GPT model(static_cast<index_t>(corpus.to_byte.size()),
              Config{.n_layer = o.n_layer, .n_head = o.n_head, .n_embd = o.n_embd, .block_size = o.block_size, .seed = o.seed});
    auto opt = make_optimizer(model, o.lr, o.weight_decay);
    const fg::optim::WarmupCosine schedule{.lr = o.lr, .min_lr = o.min_lr, .warmup = std::min(o.warmup, o.iters),
                                           .decay_steps = std::max(o.iters, std::min(o.warmup, o.iters))};
    std::printf("model: %d layers, %d heads, width %ld, context %ld, %ld parameters; batch %ld, %d iterations\n",
                o.n_layer, o.n_head, static_cast<long>(o.n_embd), static_cast<long>(o.block_size),
                static_cast<long>(fg::nn::parameter_count(model)), static_cast<long>(o.batch), o.iters);

    int start = 0;
    if (!o.resume.empty()) {
      const auto ckpt = fg::io::load_checkpoint(o.resume);
      if (ckpt.meta<std::int64_t>("vocab") != model.vocab) {
        throw fg::io_error("resume", o.resume, "was trained on a vocabulary of " + std::to_string(ckpt.meta<std::int64_t>("vocab")) +
                                                   " characters, this corpus has " + std::to_string(model.vocab));
      }
      fg::io::load_checkpoint(o.resume, model, opt);
      start = static_cast<int>(ckpt.meta<std::int64_t>("iter"));
      std::printf("resumed from %s at iteration %d\n", o.resume.c_str(), start);
    }

    std::ofstream csv;
    if (!o.csv.empty()) {
      csv.open(o.csv, std::ios::app);
      if (!csv) {
        throw fg::io_error("--csv", o.csv, "cannot be opened for writing");
      }
      if (csv.tellp() == 0) {
        csv << "iter,train_loss,val_loss,ms_per_iter\n";
      }
    }

    const bool tty = isatty(fileno(stdout)) != 0;
    SplitMix64 rng{o.seed};
    for (int i = 0; i < start; ++i) {  // the batches a resumed run has already seen
      for (index_t r = 0; r < o.batch; ++r) {
        rng.next();
      }
    }
    const auto pos = positions(o.block_size);
    double ms_sum = 0;
    int ms_count = 0;
    std::array<double, 2> losses{NAN, NAN};
    auto report = [&](int iter) {
      losses = estimate_loss(model, corpus, o, static_cast<std::uint64_t>(iter));
      const double ms = ms_count > 0 ? ms_sum / ms_count : 0.0;
      std::printf("%siter %5d: train loss %.4f, val loss %.4f, %.1f ms/iter\n", tty ? "\r\033[K" : "", iter, losses[0],
                  losses[1], ms);
      if (csv.is_open()) {
        csv << iter << ',' << losses[0] << ',' << losses[1] << ',' << ms << '\n' << std::flush;
      }
      ms_sum = 0;
      ms_count = 0;
    };
    if (start == 0) {
      report(0);
    }
    for (int iter = start; iter < o.iters; ++iter) {
      const auto t0 = Clock::now();
      const Batch bt = get_batch(corpus.train, o.batch, o.block_size, rng);
      opt.set_lr(schedule(iter));
      const std::int64_t k0 = fg::stats::kernel_launches(), g0 = fg::stats::gemm_calls();
      const double loss = static_cast<double>(
          train_step(model, opt, bt, pos, o.grad_clip, o.dropout, o.seed * 1000003 + static_cast<std::uint64_t>(iter) * 64).item());
      if (iter == start) {
        std::printf("one training step: %ld launches (%ld of them GEMMs)\n",
                    static_cast<long>(fg::stats::kernel_launches() - k0), static_cast<long>(fg::stats::gemm_calls() - g0));
      }
      ms_sum += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      ++ms_count;
      if (tty) {
        const int width = 30, filled = static_cast<int>(width * (iter + 1) / std::max(o.iters, 1));
        std::printf("\r[%s%s] %d/%d  loss %.4f  %.1f ms/iter\033[K", std::string(filled, '#').c_str(),
                    std::string(width - filled, '.').c_str(), iter + 1, o.iters, loss, ms_sum / ms_count);
        std::fflush(stdout);
      }
      if ((iter + 1) % o.eval_interval == 0 || iter + 1 == o.iters) {
        report(iter + 1);
        if (!o.save.empty()) {
          fg::io::Checkpoint meta;
          meta.put_meta("iter", std::int64_t(iter + 1));
          meta.put_meta("vocab", std::int64_t(model.vocab));
          fg::io::save_checkpoint(o.save, model, opt, meta);
        }
      }
    }
    if (std::isnan(losses[1])) {
      report(o.iters);
    }
    std::printf("final validation loss: %.4f\n", losses[1]);
    if (o.sample > 0) {
      std::printf("--- %d sampled characters (temperature %g, seed %llu) ---\n%s%s\n---\n", o.sample, o.temperature,
                  static_cast<unsigned long long>(o.seed), o.prompt.c_str(), sample(model, corpus, o).c_str());
    }
    if (o.max_val_loss >= 0 && !(losses[1] <= o.max_val_loss)) {
      std::fprintf(stderr, "char_gpt: validation loss %.4f is above --max-val-loss %.4f\n", losses[1], o.max_val_loss);
      return 3;
    }
    return 0;
  } catch (const fg::error& e) {
    std::fprintf(stderr, "char_gpt: %s\n", e.what());
    return 1;
  }
}
