// bench/mlp_train.cpp — the MNIST example's training step (784-128-ReLU-10, cross-entropy, Adam;
// examples/mnist_mlp.hpp) timed per step for batch 64, 128, 256, 1024 and 8192:
//   captured  fg::compile_step: on CUDA one graph launch per step; on the host it runs directly,
//             so there it equals `plain`
//   plain     the same step issued kernel by kernel
//   torch     (--torch, when python3 can import torch) bench/mlp_train_torch.py in the same run: the
//             same network, loss, optimizer and shapes in PyTorch eager mode and under torch.compile
// plus kernels per step (fusegrad: stats::kernel_launches of one plain step; PyTorch: its profiler,
// CUDA only) and the time of one whole Fashion-MNIST epoch at batch 128 through the data loader
// (when the dataset is found; see examples/mnist_data.hpp for where it looks).
//
//   bench_mlp_train [--batches 64,128,256,1024,8192] [--budget S] [--data DIR] [--torch]
//
// --torch runs mlp_train_torch.py from $FG_BENCH_TORCH_DIR when that is set (a copy of the binary
// away from its source tree: bench/gpu/run.sh), else bench/mlp_train_torch.py of the tree it was
// built from.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../examples/mnist_mlp.hpp"
#include "common.hpp"

using fg::index_t;

static int run_main(int argc, char** argv) {
  bench::Options o;
  o.budget_s = 1.0;
  o.reps = 10;
  std::string batch_list = "64,128,256,1024,8192", data_dir;
  bool torch = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--batches") { batch_list = v; ++i; }
    else if (a == "--budget") { o.budget_s = std::atof(v); ++i; }
    else if (a == "--data") { data_dir = v; ++i; }
    else if (a == "--torch") { torch = true; }
    else {
      std::fprintf(stderr, "usage: %s [--batches 64,128,256,1024,8192] [--budget S] [--data DIR] [--torch]\n", argv[0]);
      return 2;
    }
  }
  std::vector<index_t> batches;
  std::stringstream ss(batch_list);
  for (std::string item; std::getline(ss, item, ',');) batches.push_back(std::stol(item));

  bench::CpuMonitor monitor;
  std::printf("# bench_mlp_train: one training step of the 784-128-10 MLP (cross-entropy, Adam)\n\n");
  std::printf("- device: %s\n- run at: %s\n- protocol: median of >= %d samples and >= %.2f s per variant and batch, "
              "in %d interleaved passes; synthetic data of MNIST's shapes\n", fg::backend::describe().c_str(),
              bench::now_string().c_str(), o.reps, o.budget_s, o.passes);
  std::map<long, bench::TrainPeerRow> peer;
  if (torch) {
    std::string info;
    peer = bench::run_train_peer("mlp_train_torch.py", batch_list, o.budget_s, info);
    std::printf("- PyTorch: %s\n", info.empty() ? "ran" : info.c_str());
  }
  std::printf("\n| batch | captured ms | plain ms | captured samples/s | kernels/step | torch eager ms | "
              "torch compiled ms | torch kernels/step (eager, compiled) | eager / captured | compiled / captured |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const index_t b : batches) {
    const fg::Tensor<float, 2> x = fg::random::uniform<float>({b, mnist::pixels}, 0.f, 1.f, 1);
    const fg::Tensor<std::int32_t, 1> y = fg::cast<std::int32_t>(fg::random::uniform<float>({b}, 0.f, 9.999f, 2));
    mnist::Model model(1);
    mnist::Optimizer opt(model, "adam", 1e-3);
    fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
    auto step = fg::compile_step([&](const fg::Tensor<float, 2>& xb, const fg::Tensor<std::int32_t, 1>& yb) {
      mnist::train_step(model, opt, mnist::Loss::cross_entropy, xb, yb, loss_sum);
    });
    auto plain = [&] { mnist::train_step(model, opt, mnist::Loss::cross_entropy, x, y, loss_sum); };
    plain();
    fg::backend::synchronize();
    const auto k0 = fg::stats::kernel_launches();
    plain();
    fg::backend::synchronize();
    const auto kernels = fg::stats::kernel_launches() - k0;
    const auto t = bench::measure_all(o, {[&] { step(x, y); }, plain});
    const bench::TrainPeerRow p = peer.count(b) ? peer[b] : bench::TrainPeerRow{};
    auto cell = [](double v) { return v < 0 ? std::string("-") : bench::fmt("%.3f", v); };
    std::printf("| %ld | %.3f | %.3f | %.0f | %ld | %s | %s | %s | %s | %s |\n", static_cast<long>(b), t[0] * 1e3,
                t[1] * 1e3, double(b) / t[0], static_cast<long>(kernels), cell(p.eager_ms).c_str(),
                cell(p.compiled_ms).c_str(),
                p.eager_kernels < 0 ? "-" : (std::to_string(p.eager_kernels) + ", " + std::to_string(p.compiled_kernels)).c_str(),
                bench::ratio(p.eager_ms, t[0] * 1e3).c_str(), bench::ratio(p.compiled_ms, t[0] * 1e3).c_str());
    std::fflush(stdout);
  }

  // One epoch of Fashion-MNIST at batch 128, through the loader, with the captured step.
  std::optional<mnist::Files> files;
  for (const auto& dir : data_dir.empty() ? mnist::default_data_dirs() : std::vector<std::filesystem::path>{data_dir}) {
    if ((files = mnist::files_in(dir))) break;
  }
  if (files) {
    auto train = fg::io::read_idx_dataset(files->train_images, files->train_labels, mnist::classes);
    mnist::Model model(1);
    mnist::Optimizer opt(model, "adam", 1e-3);
    fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
    fg::data::Loader loader(train.images, train.labels, {.batch = 128, .shuffle = true, .seed = 1});
    auto step = fg::compile_step([&](const fg::Tensor<float, 2>& xb, const fg::Tensor<std::int32_t, 1>& yb) {
      mnist::train_step(model, opt, mnist::Loss::cross_entropy, xb, yb, loss_sum);
    });
    std::vector<double> seconds;
    for (int epoch = 0; epoch < 3; ++epoch) {  // the first epoch also captures the graphs
      bench::Timer timer;
      timer.start();
      for (const auto& batch : loader.epoch(epoch)) step(batch.x(), batch.y());
      seconds.push_back(timer.stop());
    }
    std::printf("\nOne epoch of %s (%ld images, batch 128, loader + captured step): %.3f s and %.3f s after a "
                "first epoch of %.3f s (%.0f samples/s)\n",
                files->train_images.parent_path().string().c_str(), static_cast<long>(train.images.shape(0)),
                seconds[1], seconds[2], seconds[0], double(train.images.shape(0)) / std::min(seconds[1], seconds[2]));
  } else {
    std::printf("\nNo MNIST-format dataset found: no epoch timing (apt-get install dataset-fashion-mnist).\n");
  }
  monitor.print();
  return 0;
}

int main(int argc, char** argv) {
  return bench::guarded_main(argv[0], [&] { return run_main(argc, argv); });
}
