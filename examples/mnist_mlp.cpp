// examples/mnist_mlp.cpp — trains the classic 784-128-ReLU-10 MLP on MNIST-format images
// (Fashion-MNIST from Debian's dataset-fashion-mnist by default), on the GPU when built by nvcc and
// on the CPU otherwise, from the same code. Each training step (forward, backward, optimizer) is
// captured once as a CUDA graph and replayed (fg::compile_step); on the CPU it runs directly.
// --hidden-layers N (N > 1) trains a residual MLP instead: 784 -> width, then N - 1 residual blocks
// width -> width, then 10, written as one statement per layer (fg::Var); the depth is a run-time
// number, so one binary trains any depth.
//
//   mnist_mlp [--data DIR] [--epochs N] [--batch N] [--lr X] [--optimizer sgd|adam] [--loss ce|mse]
//             [--hidden-layers N] [--width W]
//             [--schedule cosine|constant] [--seed N] [--save FILE] [--resume FILE] [--csv FILE]
//             [--train-limit N] [--test-limit N] [--stop-after N] [--min-accuracy X]
//
// Defaults: 10 epochs, batch 128, Adam with lr 2e-3 (SGD: momentum 0.9, lr 0.05; 0.01 for the
// squared error, whose gradient is not bounded as cross-entropy's is), cosine decay of
// the learning rate over the epochs, cross-entropy, seed 1. Pixels are standardised with the
// training set's mean and standard deviation. --save writes a checkpoint after every epoch
// (atomically: a crash never leaves a half-written file); --resume continues from one and
// reproduces the remaining epochs of the uninterrupted run.
//
// Exit codes: 0 done; 1 an error (bad data or checkpoint: the message names the file); 2 bad
// arguments; 3 the final test accuracy is below --min-accuracy; 4 no dataset found.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "mnist_mlp.hpp"

namespace {

namespace fg = fusegrad;
using fg::index_t;

struct Options : mnist::TrainOptions {
  mnist::Loss loss = mnist::Loss::cross_entropy;
  int hidden_layers = 1;
  index_t width = mnist::hidden;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "mnist_mlp: " << message << "\n"
            << "usage: mnist_mlp [--data DIR] [--epochs N] [--batch N] [--lr X] [--optimizer sgd|adam]\n"
            << "                 [--loss ce|mse] [--hidden-layers N] [--width W]\n"
            << "                 [--schedule cosine|constant] [--seed N] [--save FILE]\n"
            << "                 [--resume FILE] [--csv FILE]\n"
            << "                 [--train-limit N] [--test-limit N] [--stop-after N] [--min-accuracy X]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  cli::parse_flags(argc, argv, "trains a 784-128-10 MLP (or a residual MLP of --hidden-layers) on MNIST-format data", usage_error,
                   [&](const std::string& flag, const std::string& value) {
      if (o.parse(flag, value)) return true;
      if (flag == "--loss" && (value == "ce" || value == "mse")) o.loss = value == "ce" ? mnist::Loss::cross_entropy : mnist::Loss::mse;
      else if (flag == "--hidden-layers") o.hidden_layers = std::stoi(value);
      else if (flag == "--width") o.width = std::stol(value);
      else return false;
      return true;
  });
  if (o.optimizer != "sgd" && o.optimizer != "adam") usage_error("--optimizer is sgd or adam");
  if (o.epochs < 0 || o.batch < 1) usage_error("--epochs must be >= 0 and --batch >= 1");
  if (o.hidden_layers < 1 || o.width < 1) usage_error("--hidden-layers and --width must be >= 1");
  if (o.lr < 0) o.lr = o.optimizer == "adam" ? 2e-3 : (o.loss == mnist::Loss::mse ? 0.01 : 0.05);
  return o;
}

/// Test loss, accuracy and confusion matrix, in chunks of rows viewed in place (no copies).
mnist::Evaluation evaluate(const mnist::Model& model, mnist::Loss kind, const fg::Tensor<float, 2>& x,
                           const fg::Tensor<std::int32_t, 1>& y) {
  mnist::Evaluation ev;
  const index_t n = x.shape(0), chunk = 2000;
  for (index_t start = 0; start < n; start += chunk) {
    const index_t stop = std::min(n, start + chunk);
    const auto xs = fg::slice(x, 0, start, stop);
    const auto ys = fg::slice(y, 0, start, stop);
    const fg::Tensor<float, 2> logits = model.predict(xs);
    double loss = 0;
    mnist::Model::with_loss_of_logits(kind, logits, ys, [&](const auto& l) { loss = l.item(); });
    ev.add(logits, ys, loss);
  }
  return ev;
}

void save(const std::string& path, mnist::Model& model, mnist::Optimizer& opt, const Options& o,
          int epochs_done) {
  fg::io::Checkpoint meta;
  meta.put_meta("epochs_done", std::int64_t(epochs_done));
  meta.put_meta("optimizer", opt.name());
  meta.put_meta("loss", std::string(o.loss == mnist::Loss::mse ? "mse" : "ce"));
  meta.put_meta("seed", std::int64_t(o.seed));
  meta.put_meta("batch", std::int64_t(o.batch));
  meta.put_meta("hidden_layers", std::int64_t(model.hidden_layers()));
  meta.put_meta("width", std::int64_t(model.width()));
  // Parameters under their names (fc1.weight, blocks.3.fc.bias, ...), the optimizer's state under
  // optimizer.*: written atomically.
  fg::io::save_checkpoint(path, model, opt, meta);
}

/// Loads a checkpoint written by save(); every tensor is checked before any is changed.
int resume(const std::string& path, mnist::Model& model, mnist::Optimizer& opt) {
  const auto ckpt = fg::io::load_checkpoint(path);
  if (ckpt.meta<std::string>("optimizer") != opt.name()) {
    throw fg::io_error("resume", path, "was written with optimizer " + ckpt.meta<std::string>("optimizer") +
                                               ", not " + opt.name());
  }
  if (ckpt.meta<int>("hidden_layers") != model.hidden_layers() || ckpt.meta<index_t>("width") != model.width()) {
    throw fg::io_error("resume", path, "holds a model of " + std::to_string(ckpt.meta<int>("hidden_layers")) +
                                           " hidden layers of width " + std::to_string(ckpt.meta<index_t>("width")) +
                                           ", not " + std::to_string(model.hidden_layers()) + " of width " +
                                           std::to_string(model.width()) + " (--hidden-layers, --width)");
  }
  fg::io::load_checkpoint(path, model, opt);
  return static_cast<int>(ckpt.meta<std::int64_t>("epochs_done"));
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    // ---- data ----
    const std::optional<mnist::Data> data = mnist::load_data(o.data, o.train_limit, o.test_limit, "mnist_mlp");
    if (!data) {
      return 4;
    }
    const auto& [dir, fashion, x_train, x_test, y_train, y_test] = *data;
    if (o.hidden_layers == 1) {
      std::printf("fusegrad MNIST MLP 784-%ld-10 on %s\n", static_cast<long>(o.width), fg::backend::describe().c_str());
    } else {
      std::printf("fusegrad MNIST residual MLP 784-%ld, %d residual blocks of width %ld, -10 on %s\n",
                  static_cast<long>(o.width), o.hidden_layers - 1, static_cast<long>(o.width),
                  fg::backend::describe().c_str());
    }
    if (const std::string warning = fg::backend::info().warning; !warning.empty()) {
      std::fprintf(stderr, "warning: %s\n", warning.c_str());
    }
    std::printf("optimizer %s, lr %g, batch %ld, loss %s, seed %llu\n", o.optimizer.c_str(), o.lr,
                static_cast<long>(o.batch), o.loss == mnist::Loss::mse ? "mse" : "cross-entropy",
                static_cast<unsigned long long>(o.seed));

    // ---- model, optimizer, loader ----
    mnist::Model model(o.seed, o.hidden_layers, o.width);
    mnist::Optimizer opt(model, o.optimizer, o.lr);
    std::printf("parameters: %ld in %zu tensors\n", static_cast<long>(fg::nn::parameter_count(model)),
                fg::nn::parameter_names(model).size());
    int start_epoch = 0;
    if (!o.resume.empty()) {
      start_epoch = resume(o.resume, model, opt);
      std::printf("resumed from %s after epoch %d\n", o.resume.c_str(), start_epoch);
    }
    fg::data::Loader loader(x_train, y_train, {.batch = o.batch, .shuffle = true, .seed = o.seed});
    fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
    auto step = fg::compile_step([&](const fg::Tensor<float, 2>& x, const fg::Tensor<std::int32_t, 1>& y) {
      mnist::train_step(model, opt, o.loss, x, y, loss_sum);
    });

    const mnist::Evaluation ev = mnist::train_epochs(
        o, start_epoch, opt, loader, step, loss_sum, [&] { return evaluate(model, o.loss, x_test, y_test); },
        [&](int epochs_done) { save(o.save, model, opt, o, epochs_done); });
    return mnist::finish(ev, fashion, o.min_accuracy, "mnist_mlp");
  } catch (const fg::error& e) {
    std::fprintf(stderr, "mnist_mlp: %s\n", e.what());
    return 1;
  }
}
