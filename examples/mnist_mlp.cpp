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
using Clock = std::chrono::steady_clock;

struct Options {
  std::string data;
  int epochs = 10;
  index_t batch = 128;
  double lr = -1;  // default per optimizer
  bool cosine = true;  // the learning rate of epoch e: lr · ½ (1 + cos(π e / epochs))
  std::string optimizer = "adam";
  mnist::Loss loss = mnist::Loss::cross_entropy;
  std::uint64_t seed = 1;
  int hidden_layers = 1;
  index_t width = mnist::hidden;
  std::string save, resume, csv;
  int stop_after = -1;  // stop after this many epochs (as if interrupted), keeping the schedule
  index_t train_limit = 0, test_limit = 0;
  double min_accuracy = -1;
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
      if (flag == "--data") o.data = value;
      else if (flag == "--epochs") o.epochs = std::stoi(value);
      else if (flag == "--batch") o.batch = std::stol(value);
      else if (flag == "--lr") o.lr = std::stod(value);
      else if (flag == "--optimizer") o.optimizer = value;
      else if (flag == "--loss" && (value == "ce" || value == "mse")) o.loss = value == "ce" ? mnist::Loss::cross_entropy : mnist::Loss::mse;
      else if (flag == "--seed") o.seed = std::stoull(value);
      else if (flag == "--hidden-layers") o.hidden_layers = std::stoi(value);
      else if (flag == "--width") o.width = std::stol(value);
      else if (flag == "--schedule" && (value == "cosine" || value == "constant")) o.cosine = value == "cosine";
      else if (flag == "--save") o.save = value;
      else if (flag == "--resume") o.resume = value;
      else if (flag == "--csv") o.csv = value;
      else if (flag == "--stop-after") o.stop_after = std::stoi(value);
      else if (flag == "--train-limit") o.train_limit = std::stol(value);
      else if (flag == "--test-limit") o.test_limit = std::stol(value);
      else if (flag == "--min-accuracy") o.min_accuracy = std::stod(value);
      else return false;
      return true;
  });
  if (o.optimizer != "sgd" && o.optimizer != "adam") usage_error("--optimizer is sgd or adam");
  if (o.epochs < 0 || o.batch < 1) usage_error("--epochs must be >= 0 and --batch >= 1");
  if (o.hidden_layers < 1 || o.width < 1) usage_error("--hidden-layers and --width must be >= 1");
  if (o.lr < 0) o.lr = o.optimizer == "adam" ? 2e-3 : (o.loss == mnist::Loss::mse ? 0.01 : 0.05);
  return o;
}

/// The first `limit` rows (all when limit is 0), as new tensors.
template <class T, int R>
fg::Tensor<T, R> first_rows(const fg::Tensor<T, R>& t, index_t limit) {
  if (limit <= 0 || limit >= t.shape(0)) {
    return t;
  }
  return fg::slice(t, 0, 0, limit);
}

/// One line that redraws itself on a terminal; plain lines, about ten per epoch, otherwise.
class Progress {
 public:
  Progress(int epoch, int epochs, index_t batches)
      : epoch_(epoch), epochs_(epochs), batches_(batches), tty_(isatty(fileno(stdout)) != 0) {}
  bool due(index_t done) {
    const auto now = Clock::now();
    if (tty_) {
      return done == batches_ || now - last_ > std::chrono::milliseconds(100);
    }
    return done == batches_ || done * 10 / batches_ != (done - 1) * 10 / batches_;
  }
  void show(index_t done, double samples_per_second, double running_loss) {
    last_ = Clock::now();
    char line[200];
    const int width = 30;
    const int filled = static_cast<int>(width * done / std::max<index_t>(batches_, 1));
    std::snprintf(line, sizeof line, "epoch %d/%d [%s%s] %ld/%ld batches  %8.0f samples/s  loss %.4f",
                  epoch_ + 1, epochs_, std::string(filled, '#').c_str(),
                  std::string(width - filled, '.').c_str(), static_cast<long>(done),
                  static_cast<long>(batches_), samples_per_second, running_loss);
    std::printf(tty_ ? "\r%s\033[K" : "%s\n", line);
    std::fflush(stdout);
  }
  void finish() {
    if (tty_) {
      std::printf("\n");
    }
  }

 private:
  int epoch_, epochs_;
  index_t batches_;
  bool tty_;
  Clock::time_point last_{};
};

struct Evaluation {
  double loss = 0, accuracy = 0;
  std::vector<std::int64_t> confusion;  // [true label][prediction], 10 x 10
};

/// Test loss, accuracy and confusion matrix, in chunks of rows viewed in place (no copies).
Evaluation evaluate(const mnist::Model& model, mnist::Loss kind, const fg::Tensor<float, 2>& x,
                    const fg::Tensor<std::int32_t, 1>& y) {
  Evaluation ev;
  ev.confusion.assign(mnist::classes * mnist::classes, 0);
  const index_t n = x.shape(0), chunk = 2000;
  double loss_sum = 0;
  std::int64_t correct = 0;
  for (index_t start = 0; start < n; start += chunk) {
    const index_t stop = std::min(n, start + chunk);
    const auto xs = fg::slice(x, 0, start, stop);
    const auto ys = fg::slice(y, 0, start, stop);
    const fg::Tensor<float, 2> logits = model.predict(xs);
    mnist::Model::with_loss_of_logits(kind, logits, ys, [&](const auto& loss) { loss_sum += loss.item() * double(stop - start); });
    const auto predicted = fg::argmax(logits, 1).to_vector();
    const auto labels = fg::Tensor<std::int32_t, 1>(ys).to_vector();
    for (std::size_t i = 0; i < labels.size(); ++i) {
      ev.confusion[static_cast<std::size_t>(labels[i] * mnist::classes + predicted[i])] += 1;
      correct += labels[i] == predicted[i];
    }
  }
  ev.loss = loss_sum / double(n);
  ev.accuracy = double(correct) / double(n);
  return ev;
}

void print_confusion(const Evaluation& ev, bool fashion) {
  static const char* fashion_names[] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n%12s", "");
  for (int j = 0; j < mnist::classes; ++j) {
    std::printf("%6d", j);
  }
  std::printf("\n");
  for (int i = 0; i < mnist::classes; ++i) {
    std::printf("%2d %-9s", i, fashion ? fashion_names[i] : "");
    for (int j = 0; j < mnist::classes; ++j) {
      std::printf("%6ld", static_cast<long>(ev.confusion[static_cast<std::size_t>(i * mnist::classes + j)]));
    }
    std::printf("\n");
  }
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
    std::vector<std::filesystem::path> looked;
    std::optional<mnist::Files> files;
    for (const auto& dir : o.data.empty() ? mnist::default_data_dirs() : std::vector<std::filesystem::path>{o.data}) {
      looked.push_back(dir);
      if ((files = mnist::files_in(dir))) {
        break;
      }
    }
    if (!files) {
      std::cerr << "mnist_mlp: no MNIST-format dataset found. Looked for train-images-idx3-ubyte, "
                   "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
                   "(each raw or .gz) in:\n";
      for (const auto& d : looked) {
        std::cerr << "  " << d.string() << "\n";
      }
      std::cerr << "Get Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist`, or put the MNIST "
                   "files into ./data/mnist, or pass --data DIR (or set FUSEGRAD_DATA).\n";
      return 4;
    }
    const auto dir = files->train_images.parent_path();
    const bool fashion = dir.string().find("fashion") != std::string::npos;
    auto train = fg::io::read_idx_dataset(files->train_images, files->train_labels, mnist::classes);
    auto test = fg::io::read_idx_dataset(files->test_images, files->test_labels, mnist::classes);
    // Pixels standardised with the training set's mean and standard deviation (one fused kernel
    // each), as torchvision's Normalize does.
    const float mean = fg::mean(train.images).item();
    const float stddev = std::sqrt(fg::mean(fg::square(train.images - mean)).item());
    const fg::Tensor<float, 2> x_train = (first_rows(train.images, o.train_limit) - mean) / stddev;
    const auto y_train = first_rows(train.labels, o.train_limit);
    const fg::Tensor<float, 2> x_test = (first_rows(test.images, o.test_limit) - mean) / stddev;
    const auto y_test = first_rows(test.labels, o.test_limit);
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
    std::printf("data: %s (%s): %ld training and %ld test images\n", dir.string().c_str(),
                fashion ? "Fashion-MNIST" : "MNIST", static_cast<long>(x_train.shape(0)),
                static_cast<long>(x_test.shape(0)));
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

    std::ofstream csv;
    if (!o.csv.empty()) {
      csv.open(o.csv, std::ios::app);
      if (!csv) {
        throw fg::io_error("--csv", o.csv, "cannot be opened for writing");
      }
      if (csv.tellp() == 0) {
        csv << "epoch,train_loss,test_loss,test_accuracy,epoch_seconds,samples_per_second\n";
      }
    }

    // ---- training ----
    Evaluation ev;
    const int last_epoch = o.stop_after >= 0 ? std::min(o.epochs, o.stop_after) : o.epochs;
    for (int epoch = start_epoch; epoch < last_epoch; ++epoch) {
      if (o.cosine) {
        opt.set_lr(o.lr * 0.5 * (1 + std::cos(M_PI * epoch / o.epochs)));
      }
      loss_sum.fill(0.f);  // in place: the captured step adds into this buffer
      Progress progress(epoch, o.epochs, loader.num_batches());
      const auto t0 = Clock::now();
      index_t done = 0, seen = 0;
      for (const auto& batch : loader.epoch(epoch)) {
        step(batch.x(), batch.y());
        ++done;
        seen += batch.size();
        if (progress.due(done)) {
          const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
          progress.show(done, double(seen) / seconds, double(loss_sum.item()) / double(seen));
        }
      }
      const double train_loss = double(loss_sum.item()) / double(std::max<index_t>(seen, 1));
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      progress.finish();
      ev = evaluate(model, o.loss, x_test, y_test);
      std::printf("epoch %d/%d: train loss %.4f, test loss %.4f, test accuracy %.4f, %.2f s (%.0f samples/s)\n",
                  epoch + 1, o.epochs, train_loss, ev.loss, ev.accuracy, seconds, double(seen) / seconds);
      if (csv.is_open()) {
        csv << epoch + 1 << ',' << train_loss << ',' << ev.loss << ',' << ev.accuracy << ',' << seconds
            << ',' << double(seen) / seconds << '\n' << std::flush;
      }
      if (!o.save.empty()) {
        save(o.save, model, opt, o, epoch + 1);
      }
    }
    if (start_epoch >= last_epoch) {
      ev = evaluate(model, o.loss, x_test, y_test);
    }
    std::printf("\nfinal test accuracy: %.4f\n", ev.accuracy);
    print_confusion(ev, fashion);
    if (o.min_accuracy >= 0 && ev.accuracy < o.min_accuracy) {
      std::fprintf(stderr, "mnist_mlp: test accuracy %.4f is below --min-accuracy %.4f\n", ev.accuracy,
                   o.min_accuracy);
      return 3;
    }
    return 0;
  } catch (const fg::error& e) {
    std::fprintf(stderr, "mnist_mlp: %s\n", e.what());
    return 1;
  }
}
