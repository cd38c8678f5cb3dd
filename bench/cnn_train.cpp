// bench/cnn_train.cpp — the MNIST CNN example's training step (conv3x3-BN-ReLU-pool x2, linear,
// cross-entropy, Adam; examples/mnist_cnn.hpp) timed per step for batch 64 and 256:
//   captured  fg::compile_step: on CUDA one graph launch per step; on the host it runs directly
//   plain     the same step issued kernel by kernel
//   torch     (--torch, when python3 can import torch) bench/cnn_train_torch.py in the same run: the
//             same network (bias-free convolutions, BatchNorm2d in training mode), loss, optimizer
//             and shapes in PyTorch eager mode (oneDNN / cuDNN convolutions) and under torch.compile
// plus kernels and GEMMs per step (fusegrad: stats counters of one plain step; PyTorch: its
// profiler, CUDA only).
//
//   bench_cnn_train [--batches 64,256] [--channels 32,64] [--budget S] [--torch]
//
// --torch runs cnn_train_torch.py from $FG_BENCH_TORCH_DIR when that is set, else from the tree it
// was built from.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../examples/mnist_cnn.hpp"
#include "common.hpp"

using fg::index_t;

static int run_main(int argc, char** argv) {
  bench::Options o;
  o.budget_s = 2.0;
  o.reps = 10;
  std::string batch_list = "64,256", channels = "32,64";
  bool torch = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--batches") { batch_list = v; ++i; }
    else if (a == "--channels") { channels = v; ++i; }
    else if (a == "--budget") { o.budget_s = std::atof(v); ++i; }
    else if (a == "--torch") { torch = true; }
    else {
      std::fprintf(stderr, "usage: %s [--batches 64,256] [--channels 32,64] [--budget S] [--torch]\n", argv[0]);
      return 2;
    }
  }
  std::vector<index_t> batches;
  std::stringstream ss(batch_list);
  for (std::string item; std::getline(ss, item, ',');) batches.push_back(std::stol(item));
  const index_t c1 = std::stol(channels.substr(0, channels.find(','))), c2 = std::stol(channels.substr(channels.find(',') + 1));

  bench::CpuMonitor monitor;
  std::printf("# bench_cnn_train: one training step of the MNIST CNN (channels %ld, %ld; cross-entropy, Adam)\n\n",
              static_cast<long>(c1), static_cast<long>(c2));
  std::printf("- device: %s\n- run at: %s\n- protocol: median of >= %d samples and >= %.2f s per variant and batch, "
              "in %d interleaved passes; synthetic images of MNIST's shapes\n", fg::backend::describe().c_str(),
              bench::now_string().c_str(), o.reps, o.budget_s, o.passes);
  std::map<long, bench::TrainPeerRow> peer;
  if (torch) {
    std::string info;
    peer = bench::run_train_peer("cnn_train_torch.py", batch_list, o.budget_s, info, " --channels " + channels);
    std::printf("- PyTorch: %s\n", info.empty() ? "ran" : info.c_str());
  }
  std::printf("\n| batch | captured ms | plain ms | captured samples/s | kernels/step | GEMMs/step | torch eager ms | "
              "torch compiled ms | torch kernels/step (eager, compiled) | eager / captured | compiled / captured |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const index_t b : batches) {
    const fg::Tensor<float, 2> x = fg::random::uniform<float>({b, mnist::pixels}, 0.f, 1.f, 1);
    const fg::Tensor<std::int32_t, 1> y = fg::cast<std::int32_t>(fg::random::uniform<float>({b}, 0.f, 9.999f, 2));
    mnist::Cnn model(1, c1, c2);
    mnist::Optimizer opt(model, "adam", 1e-3);
    fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
    auto step = fg::compile_step([&](const fg::Tensor<float, 2>& xb, const fg::Tensor<std::int32_t, 1>& yb) {
      mnist::train_step(model, opt, xb, yb, loss_sum);
    });
    auto plain = [&] { mnist::train_step(model, opt, x, y, loss_sum); };
    plain();
    fg::backend::synchronize();
    const auto k0 = fg::stats::kernel_launches();
    const auto g0 = fg::stats::gemm_calls();
    plain();
    fg::backend::synchronize();
    const auto kernels = fg::stats::kernel_launches() - k0;
    const auto gemms = fg::stats::gemm_calls() - g0;
    const auto t = bench::measure_all(o, {[&] { step(x, y); }, plain});
    const bench::TrainPeerRow p = peer.count(b) ? peer[b] : bench::TrainPeerRow{};
    auto cell = [](double v) { return v < 0 ? std::string("-") : bench::fmt("%.3f", v); };
    std::printf("| %ld | %.3f | %.3f | %.0f | %ld | %ld | %s | %s | %s | %s | %s |\n", static_cast<long>(b), t[0] * 1e3,
                t[1] * 1e3, double(b) / t[0], static_cast<long>(kernels), static_cast<long>(gemms),
                cell(p.eager_ms).c_str(), cell(p.compiled_ms).c_str(),
                p.eager_kernels < 0 ? "-" : (std::to_string(p.eager_kernels) + ", " + std::to_string(p.compiled_kernels)).c_str(),
                bench::ratio(p.eager_ms, t[0] * 1e3).c_str(), bench::ratio(p.compiled_ms, t[0] * 1e3).c_str());
    std::fflush(stdout);
  }
  monitor.print();
  return 0;
}

int main(int argc, char** argv) {
  return bench::guarded_main(argv[0], [&] { return run_main(argc, argv); });
}
