// bench/gpt_train.cpp — one training iteration of examples/char_gpt (forward, backward, gradient
// clipping, AdamW with parameter groups) timed at nanoGPT's CPU configuration (4 layers, 4 heads,
// context 64, batch 12) for each width asked (default 128 and 256), beside the same model in
// PyTorch eager and torch.compile (bench/gpt_train_torch.py --time, run by this program on the
// same cores), with the launches of one step: fusegrad's kernels + GEMMs, PyTorch's ATen operators
// (its profiler; on the CPU the counterpart of kernel launches).
//
//   bench_gpt_train [--widths 128,256] [--budget S] [--data FILE|DIR] [--torch]
//
// Batches come from the corpus (default: Debian's fortunes) as the example draws them.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../examples/char_gpt.hpp"
#include "common.hpp"

namespace {

using fg::index_t;

struct TorchRow {
  double eager_ms = -1, compiled_ms = -1;
  long eager_ops = -1;
};

std::map<index_t, TorchRow> run_torch(const std::string& widths, const std::string& data, double budget, std::string& info) {
  std::map<index_t, TorchRow> rows;
  const std::string args = "--time --widths " + widths + " --data " + bench::shell_quoted(data) + " --budget " +
                           std::to_string(budget) + " --threads " + std::to_string(bench::threads());
  bench::run_peer(bench::peer_script("gpt_train_torch.py"), args, info, [&](const std::string& s) {
    long w = 0, ops = -1;
    double em = -1, cm = -1;
    if (std::sscanf(s.c_str(), "RESULT width=%ld eager_ms=%lf compiled_ms=%lf eager_ops=%ld", &w, &em, &cm, &ops) != 4) {
      return false;
    }
    rows[w] = {em, cm, ops};
    return true;
  });
  return rows;
}

}  // namespace

static int run_main(int argc, char** argv) {
  bench::Options o;
  o.budget_s = 5.0;
  o.reps = 10;
  std::string width_list = "128,256", data = "/usr/share/games/fortunes";
  bool torch = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--widths") { width_list = v; ++i; }
    else if (a == "--budget") { o.budget_s = std::atof(v); ++i; }
    else if (a == "--data") { data = v; ++i; }
    else if (a == "--torch") { torch = true; }
    else {
      std::fprintf(stderr, "usage: %s [--widths 128,256] [--budget S] [--data FILE|DIR] [--torch]\n", argv[0]);
      return 2;
    }
  }
  std::vector<index_t> widths;
  std::stringstream ss(width_list);
  for (std::string item; std::getline(ss, item, ',');) widths.push_back(std::stol(item));

  bench::CpuMonitor monitor;
  const gpt::Corpus corpus = gpt::tokenize(gpt::read_corpus(data), 64);
  std::printf("# bench_gpt_train: one training iteration of the char-GPT (4 layers, 4 heads, context 64, batch 12)\n\n");
  std::printf("- device: %s\n- run at: %s\n- data: %s (vocabulary %zu)\n- protocol: median of >= %d samples and >= %.2f s "
              "per variant and width, in %d interleaved passes\n",
              fg::backend::describe().c_str(), bench::now_string().c_str(), data.c_str(), corpus.to_byte.size(), o.reps,
              o.budget_s, o.passes);
  std::map<index_t, TorchRow> peer;
  if (torch) {
    std::string info;
    peer = run_torch(width_list, data, o.budget_s, info);
    std::printf("- PyTorch: %s\n", info.empty() ? "ran" : info.c_str());
  }
  std::printf("\n| width | parameters | fusegrad ms | launches/step (GEMMs) | torch eager ms | torch compiled ms | "
              "torch ATen ops/step | eager / fusegrad | compiled / fusegrad |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const index_t w : widths) {
    gpt::GPT model(static_cast<index_t>(corpus.to_byte.size()), gpt::Config{.n_embd = w});
    auto opt = gpt::make_optimizer(model, 1e-3, 0.1);
    gpt::SplitMix64 rng{1337};
    std::vector<gpt::Batch> batches;
    for (int i = 0; i < 8; ++i) {
      batches.push_back(gpt::get_batch(corpus.train, 12, 64, rng));
    }
    const auto pos = gpt::positions(64);
    int next = 0;
    auto iteration = [&] { (void)gpt::train_step(model, opt, batches[static_cast<std::size_t>(next++ % 8)], pos, 1.0, 0.0, 0).item(); };
    iteration();
    const auto k0 = fg::stats::kernel_launches(), g0 = fg::stats::gemm_calls();
    iteration();
    const auto kernels = fg::stats::kernel_launches() - k0, gemms = fg::stats::gemm_calls() - g0;
    const auto t = bench::measure_all(o, {iteration});
    const TorchRow p = peer.count(w) ? peer[w] : TorchRow{};
    auto cell = [](double v) { return v < 0 ? std::string("-") : bench::fmt("%.2f", v); };
    std::printf("| %ld | %ld | %.2f | %ld (%ld) | %s | %s | %s | %s | %s |\n", static_cast<long>(w),
                static_cast<long>(fg::nn::parameter_count(model)), t[0] * 1e3, static_cast<long>(kernels),
                static_cast<long>(gemms), cell(p.eager_ms).c_str(), cell(p.compiled_ms).c_str(),
                p.eager_ops < 0 ? "-" : std::to_string(p.eager_ops).c_str(), bench::ratio(p.eager_ms, t[0] * 1e3).c_str(),
                bench::ratio(p.compiled_ms, t[0] * 1e3).c_str());
    std::fflush(stdout);
  }
  monitor.print();
  return 0;
}

int main(int argc, char** argv) {
  return bench::guarded_main(argv[0], [&] { return run_main(argc, argv); });
}
