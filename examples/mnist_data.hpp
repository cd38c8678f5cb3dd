// examples/mnist_data.hpp — what the MNIST-format examples (mnist_mlp, mnist_cnn) and their
// benchmarks share: where the dataset is looked for, loading and standardising it, the progress
// line, the test metrics with their confusion matrix, and the per-epoch CSV file.
#pragma once

#include <unistd.h>

#include <fusegrad/fusegrad.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace mnist {

namespace fg = fusegrad;
using fg::index_t;
using Clock = std::chrono::steady_clock;

inline constexpr index_t pixels = 784;
inline constexpr index_t classes = 10;

/// The four IDX files of an MNIST-format dataset, raw or gzipped.
struct Files {
  std::filesystem::path train_images, train_labels, test_images, test_labels;
};

/// `dir/stem` or `dir/stem.gz`, whichever exists.
inline std::optional<std::filesystem::path> find_file(const std::filesystem::path& dir, const std::string& stem) {
  for (const std::string& name : {stem, stem + ".gz"}) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / name, ec)) {
      return dir / name;
    }
  }
  return std::nullopt;
}

/// The dataset files in `dir`, if all four are there.
inline std::optional<Files> files_in(const std::filesystem::path& dir) {
  auto a = find_file(dir, "train-images-idx3-ubyte");
  auto b = find_file(dir, "train-labels-idx1-ubyte");
  auto c = find_file(dir, "t10k-images-idx3-ubyte");
  auto d = find_file(dir, "t10k-labels-idx1-ubyte");
  if (a && b && c && d) {
    return Files{*a, *b, *c, *d};
  }
  return std::nullopt;
}

/// Where the example looks when no --data is given, in order.
inline std::vector<std::filesystem::path> default_data_dirs() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("FUSEGRAD_DATA"); env != nullptr && *env != '\0') {
    dirs.emplace_back(env);
  }
  dirs.emplace_back("./data/mnist");
  dirs.emplace_back("/usr/share/datasets/fashion-mnist");
  return dirs;
}

/// The first `limit` rows (all when limit is 0), as new tensors.
template <class T, int R>
fg::Tensor<T, R> first_rows(const fg::Tensor<T, R>& t, index_t limit) {
  if (limit <= 0 || limit >= t.shape(0)) {
    return t;
  }
  return fg::slice(t, 0, 0, limit);
}

/// The dataset, pixels standardised with the training set's mean and standard deviation (as
/// torchvision's Normalize), images as rows of 784.
struct Data {
  std::filesystem::path dir;
  bool fashion = false;  // Fashion-MNIST (the class names are known)
  fg::Tensor<float, 2> x_train, x_test;            // (N, 784)
  fg::Tensor<std::int32_t, 1> y_train, y_test;     // (N)
};

/// Finds the dataset in `dir` (or, when empty, in default_data_dirs()) and loads the first
/// train_limit / test_limit images (all when 0). When none is found, prints where it looked and how
/// to get one, prefixed by `program`, and returns nothing (the examples then exit with 4).
inline std::optional<Data> load_data(const std::string& dir, index_t train_limit, index_t test_limit,
                                     const char* program) {
  std::vector<std::filesystem::path> looked;
  std::optional<Files> files;
  for (const auto& d : dir.empty() ? default_data_dirs() : std::vector<std::filesystem::path>{dir}) {
    looked.push_back(d);
    if ((files = files_in(d))) {
      break;
    }
  }
  if (!files) {
    std::cerr << program << ": no MNIST-format dataset found. Looked for train-images-idx3-ubyte, "
                 "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
                 "(each raw or .gz) in:\n";
    for (const auto& d : looked) {
      std::cerr << "  " << d.string() << "\n";
    }
    std::cerr << "Get Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist`, or put the MNIST "
                 "files into ./data/mnist, or pass --data DIR (or set FUSEGRAD_DATA).\n";
    return std::nullopt;
  }
  Data data;
  data.dir = files->train_images.parent_path();
  data.fashion = data.dir.string().find("fashion") != std::string::npos;
  auto train = fg::io::read_idx_dataset(files->train_images, files->train_labels, classes);
  auto test = fg::io::read_idx_dataset(files->test_images, files->test_labels, classes);
  // One fused kernel each.
  const float mean = fg::mean(train.images).item();
  const float stddev = std::sqrt(fg::mean(fg::square(train.images - mean)).item());
  data.x_train = (first_rows(train.images, train_limit) - mean) / stddev;
  data.y_train = first_rows(train.labels, train_limit);
  data.x_test = (first_rows(test.images, test_limit) - mean) / stddev;
  data.y_test = first_rows(test.labels, test_limit);
  std::printf("data: %s (%s): %ld training and %ld test images\n", data.dir.string().c_str(),
              data.fashion ? "Fashion-MNIST" : "MNIST", static_cast<long>(data.x_train.shape(0)),
              static_cast<long>(data.x_test.shape(0)));
  return data;
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

/// Test metrics: mean loss, accuracy, and the confusion matrix.
struct Evaluation {
  double loss = 0, accuracy = 0;
  std::vector<std::int64_t> confusion = std::vector<std::int64_t>(classes * classes, 0);  // [true][predicted]
  std::int64_t seen = 0, correct = 0;
  double loss_sum = 0;

  /// Adds a chunk: its logits (B, 10), labels (B) and mean loss.
  template <class Labels>
  void add(const fg::Tensor<float, 2>& logits, const Labels& labels, double mean_loss) {
    const auto predicted = fg::argmax(logits, 1).to_vector();
    const auto truth = fg::Tensor<std::int32_t, 1>(labels).to_vector();
    for (std::size_t i = 0; i < truth.size(); ++i) {
      confusion[static_cast<std::size_t>(truth[i] * classes + predicted[i])] += 1;
      correct += truth[i] == predicted[i];
    }
    seen += static_cast<std::int64_t>(truth.size());
    loss_sum += mean_loss * static_cast<double>(truth.size());
    loss = loss_sum / static_cast<double>(std::max<std::int64_t>(seen, 1));
    accuracy = static_cast<double>(correct) / static_cast<double>(std::max<std::int64_t>(seen, 1));
  }
};

inline void print_confusion(const Evaluation& ev, bool fashion) {
  static const char* fashion_names[] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n%12s", "");
  for (int j = 0; j < classes; ++j) {
    std::printf("%6d", j);
  }
  std::printf("\n");
  for (int i = 0; i < classes; ++i) {
    std::printf("%2d %-9s", i, fashion ? fashion_names[i] : "");
    for (int j = 0; j < classes; ++j) {
      std::printf("%6ld", static_cast<long>(ev.confusion[static_cast<std::size_t>(i * classes + j)]));
    }
    std::printf("\n");
  }
}

/// The per-epoch CSV file, appended to (with a header when new); not open when `path` is empty.
inline std::ofstream open_csv(const std::string& path) {
  std::ofstream csv;
  if (!path.empty()) {
    csv.open(path, std::ios::app);
    if (!csv) {
      throw fg::io_error("--csv", path, "cannot be opened for writing");
    }
    if (csv.tellp() == 0) {
      csv << "epoch,train_loss,test_loss,test_accuracy,epoch_seconds,samples_per_second\n";
    }
  }
  return csv;
}

/// The flags both examples take (each adds its own).
struct TrainOptions {
  std::string data;
  int epochs = 10;
  index_t batch = 128;
  double lr = -1;      // default per optimizer
  bool cosine = true;  // the learning rate of epoch e: lr · ½ (1 + cos(π e / epochs))
  std::string optimizer = "adam";
  std::uint64_t seed = 1;
  std::string save, resume, csv;
  int stop_after = -1;  // stop after this many epochs (as if interrupted), keeping the schedule
  index_t train_limit = 0, test_limit = 0;
  double min_accuracy = -1;

  /// Takes `--flag value` when it is one of the shared flags; false otherwise.
  bool parse(const std::string& flag, const std::string& value) {
    if (flag == "--data") data = value;
    else if (flag == "--epochs") epochs = std::stoi(value);
    else if (flag == "--batch") batch = std::stol(value);
    else if (flag == "--lr") lr = std::stod(value);
    else if (flag == "--optimizer") optimizer = value;
    else if (flag == "--seed") seed = std::stoull(value);
    else if (flag == "--schedule" && (value == "cosine" || value == "constant")) cosine = value == "cosine";
    else if (flag == "--save") save = value;
    else if (flag == "--resume") resume = value;
    else if (flag == "--csv") csv = value;
    else if (flag == "--stop-after") stop_after = std::stoi(value);
    else if (flag == "--train-limit") train_limit = std::stol(value);
    else if (flag == "--test-limit") test_limit = std::stol(value);
    else if (flag == "--min-accuracy") min_accuracy = std::stod(value);
    else return false;
    return true;
  }
};

/// The epochs from `start` on: the learning rate schedule, the steps through `loader` with the
/// progress line, then `evaluate()` (an Evaluation), the epoch's line, the CSV row and
/// `save(epochs_done)` when --save is given. Returns the last evaluation (evaluate() once more when
/// no epoch ran).
template <class Opt, class Loader, class Step, class Evaluate, class Save>
Evaluation train_epochs(const TrainOptions& o, int start, Opt& opt, Loader& loader, Step& step,
                        fg::Tensor<float, 0>& loss_sum, Evaluate&& evaluate, Save&& save) {
  std::ofstream csv = open_csv(o.csv);
  Evaluation ev;
  const int last_epoch = o.stop_after >= 0 ? std::min(o.epochs, o.stop_after) : o.epochs;
  for (int epoch = start; epoch < last_epoch; ++epoch) {
    if (o.cosine) {
      opt.set_lr(o.lr * 0.5 * (1 + std::cos(M_PI * epoch / o.epochs)));
    }
    loss_sum.fill(0.f);  // in place: a captured step adds into this buffer
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
    ev = evaluate();
    std::printf("epoch %d/%d: train loss %.4f, test loss %.4f, test accuracy %.4f, %.2f s (%.0f samples/s)\n",
                epoch + 1, o.epochs, train_loss, ev.loss, ev.accuracy, seconds, double(seen) / seconds);
    if (csv.is_open()) {
      csv << epoch + 1 << ',' << train_loss << ',' << ev.loss << ',' << ev.accuracy << ',' << seconds << ','
          << double(seen) / seconds << '\n'
          << std::flush;
    }
    if (!o.save.empty()) {
      save(epoch + 1);
    }
  }
  if (start >= last_epoch) {
    ev = evaluate();
  }
  return ev;
}

/// The end of both examples: the final accuracy, the confusion matrix, and exit code 3 below
/// --min-accuracy (0 otherwise).
inline int finish(const Evaluation& ev, bool fashion, double min_accuracy, const char* program) {
  std::printf("\nfinal test accuracy: %.4f\n", ev.accuracy);
  print_confusion(ev, fashion);
  if (min_accuracy >= 0 && ev.accuracy < min_accuracy) {
    std::fprintf(stderr, "%s: test accuracy %.4f is below --min-accuracy %.4f\n", program, ev.accuracy, min_accuracy);
    return 3;
  }
  return 0;
}

}  // namespace mnist
