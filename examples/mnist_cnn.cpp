// examples/mnist_cnn.cpp — trains a small convolutional network (two blocks of conv 3x3 -> batch
// norm -> ReLU -> max-pool 2, then a linear classifier; examples/mnist_cnn.hpp) on MNIST-format
// images (Fashion-MNIST from Debian's dataset-fashion-mnist by default), on the GPU when built by
// nvcc and on the CPU otherwise, from the same code. On CUDA each training step (forward, backward,
// optimizer, the running moments of batch norm) is captured once as a graph and replayed.
//
//   mnist_cnn [--data DIR] [--epochs N] [--batch N] [--lr X] [--optimizer sgd|adam] [--seed N]
//             [--channels C1,C2] [--schedule cosine|constant] [--save FILE] [--resume FILE]
//             [--csv FILE] [--train-limit N] [--test-limit N] [--stop-after N] [--min-accuracy X]
//
// Defaults: 10 epochs, batch 128, Adam with lr 2e-3 (SGD: momentum 0.9, lr 0.05) and cosine decay
// over the epochs, channels 32,64 (50,282 parameters), seed 1. Pixels are standardised with the
// training set's mean and standard deviation. The test set is evaluated with batch norm's running
// moments (evaluation mode). --save writes a checkpoint (parameters, running moments, optimizer
// state) after every epoch, atomically; --resume continues from one.
//
// Exit codes: 0 done; 1 an error (bad data or checkpoint: the message names the file); 2 bad
// arguments; 3 the final test accuracy is below --min-accuracy; 4 no dataset found.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "mnist_cnn.hpp"

namespace {

namespace fg = fusegrad;
using fg::index_t;

struct Options : mnist::TrainOptions {
  index_t c1 = 32, c2 = 64;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "mnist_cnn: " << message << "\n"
            << "usage: mnist_cnn [--data DIR] [--epochs N] [--batch N] [--lr X] [--optimizer sgd|adam]\n"
            << "                 [--seed N] [--channels C1,C2] [--schedule cosine|constant]\n"
            << "                 [--save FILE] [--resume FILE] [--csv FILE]\n"
            << "                 [--train-limit N] [--test-limit N] [--stop-after N] [--min-accuracy X]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  cli::parse_flags(argc, argv, "trains a two-block CNN (conv-BN-ReLU-pool x2, linear) on MNIST-format data",
                   usage_error, [&](const std::string& flag, const std::string& value) {
      if (o.parse(flag, value)) return true;
      if (flag == "--channels" && value.find(',') != std::string::npos) {
        o.c1 = std::stol(value.substr(0, value.find(',')));
        o.c2 = std::stol(value.substr(value.find(',') + 1));
      }
      else return false;
      return true;
  });
  if (o.optimizer != "sgd" && o.optimizer != "adam") usage_error("--optimizer is sgd or adam");
  if (o.epochs < 0 || o.batch < 2) usage_error("--epochs must be >= 0 and --batch >= 2 (batch norm needs two images)");
  if (o.c1 < 1 || o.c2 < 1) usage_error("--channels must be two positive numbers, e.g. 32,64");
  if (o.lr < 0) o.lr = o.optimizer == "adam" ? 2e-3 : 0.05;
  return o;
}

/// Test loss, accuracy and confusion matrix in evaluation mode, in chunks viewed in place.
mnist::Evaluation evaluate(mnist::Cnn& model, const fg::Tensor<float, 2>& x, const fg::Tensor<std::int32_t, 1>& y) {
  mnist::Evaluation ev;
  const index_t n = x.shape(0), chunk = 1000;
  for (index_t start = 0; start < n; start += chunk) {
    const index_t stop = std::min(n, start + chunk);
    const auto xs = fg::slice(x, 0, start, stop);
    const auto ys = fg::slice(y, 0, start, stop);
    const fg::Tensor<float, 2> logits = model.predict(xs);
    ev.add(logits, ys, fg::mean(fg::nn::cross_entropy(logits, ys)).item());
  }
  return ev;
}

void save(const std::string& path, mnist::Cnn& model, mnist::Optimizer& opt, const Options& o, int epochs_done) {
  fg::io::Checkpoint meta;
  meta.put_meta("epochs_done", std::int64_t(epochs_done));
  meta.put_meta("optimizer", opt.name());
  meta.put_meta("seed", std::int64_t(o.seed));
  meta.put_meta("batch", std::int64_t(o.batch));
  meta.put_meta("channels1", std::int64_t(model.c1));
  meta.put_meta("channels2", std::int64_t(model.c2));
  // Parameters and batch norm's running moments under their names (block1.bn.running_mean, ...),
  // the optimizer's state under optimizer.*: written atomically.
  fg::io::save_checkpoint(path, model, opt, meta);
}

/// Loads a checkpoint written by save(); every tensor is checked before any is changed.
int resume(const std::string& path, mnist::Cnn& model, mnist::Optimizer& opt) {
  const auto ckpt = fg::io::load_checkpoint(path);
  if (ckpt.meta<std::string>("optimizer") != opt.name()) {
    throw fg::io_error("resume", path, "was written with optimizer " + ckpt.meta<std::string>("optimizer") +
                                           ", not " + opt.name());
  }
  fg::io::load_checkpoint(path, model, opt);  // shapes checked: other --channels are an error naming them
  return static_cast<int>(ckpt.meta<std::int64_t>("epochs_done"));
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    const std::optional<mnist::Data> data = mnist::load_data(o.data, o.train_limit, o.test_limit, "mnist_cnn");
    if (!data) {
      return 4;
    }
    std::printf("fusegrad MNIST CNN (conv3x3-BN-ReLU-pool x2 with %ld and %ld channels, linear) on %s\n",
                static_cast<long>(o.c1), static_cast<long>(o.c2), fg::backend::describe().c_str());
    if (const std::string warning = fg::backend::info().warning; !warning.empty()) {
      std::fprintf(stderr, "warning: %s\n", warning.c_str());
    }
    std::printf("optimizer %s, lr %g, batch %ld, seed %llu\n", o.optimizer.c_str(), o.lr, static_cast<long>(o.batch),
                static_cast<unsigned long long>(o.seed));

    mnist::Cnn model(o.seed, o.c1, o.c2);
    mnist::Optimizer opt(model, o.optimizer, o.lr);
    std::printf("parameters: %ld in %zu tensors (and 4 running-moment buffers)\n",
                static_cast<long>(fg::nn::parameter_count(model)), fg::nn::parameter_names(model).size());
    int start_epoch = 0;
    if (!o.resume.empty()) {
      start_epoch = resume(o.resume, model, opt);
      std::printf("resumed from %s after epoch %d\n", o.resume.c_str(), start_epoch);
    }
    // Batches of one image cannot be normalised by their own statistics: the last partial batch is
    // dropped when it would hold one.
    fg::data::Loader loader(data->x_train, data->y_train,
                            {.batch = o.batch, .shuffle = true, .seed = o.seed,
                             .drop_last = data->x_train.shape(0) % o.batch == 1});
    fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
    auto step = fg::compile_step([&](const fg::Tensor<float, 2>& x, const fg::Tensor<std::int32_t, 1>& y) {
      mnist::train_step(model, opt, x, y, loss_sum);
    });
    const mnist::Evaluation ev = mnist::train_epochs(
        o, start_epoch, opt, loader, step, loss_sum, [&] { return evaluate(model, data->x_test, data->y_test); },
        [&](int epochs_done) { save(o.save, model, opt, o, epochs_done); });
    return mnist::finish(ev, data->fashion, o.min_accuracy, "mnist_cnn");
  } catch (const fg::error& e) {
    std::fprintf(stderr, "mnist_cnn: %s\n", e.what());
    return 1;
  }
}
