// tests/test_train.cpp — the MNIST example's training step: what one step launches, that a
// compiled step computes what the plain one does, that training is reproducible bit for bit, and
// that it learns. (The example itself is run by CTest: train_subset_cpu, train_resume.)
#include <fusegrad/fusegrad.hpp>

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "../examples/mnist_mlp.hpp"
#include "support/catch.hpp"
#include "support/reference.hpp"

namespace test_train {
namespace fg = fusegrad;
using fg::index_t;

/// A synthetic 10-class problem of MNIST's shapes: each class a noisy prototype image.
struct Synthetic {
  fg::Tensor<float, 2> x;
  fg::Tensor<std::int32_t, 1> y;
  explicit Synthetic(index_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> prototypes(mnist::classes * mnist::pixels), xs(static_cast<std::size_t>(n * mnist::pixels));
    std::vector<std::int32_t> ys(static_cast<std::size_t>(n));
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (auto& p : prototypes) {
      p = u(rng);
    }
    for (index_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::int32_t>(rng() % mnist::classes);
      ys[static_cast<std::size_t>(i)] = c;
      for (index_t j = 0; j < mnist::pixels; ++j) {
        xs[static_cast<std::size_t>(i * mnist::pixels + j)] =
            0.5f * prototypes[static_cast<std::size_t>(c * mnist::pixels + j)] + 0.5f * u(rng);
      }
    }
    x = fg::from_host<float>({n, mnist::pixels}, std::span<const float>(xs));
    y = fg::from_host<std::int32_t>({n}, std::span<const std::int32_t>(ys));
  }
};

template <class T, int R>
std::vector<T> host(const fg::Tensor<T, R>& t) {
  return t.to_vector();
}

/// Trains `epochs` epochs with the example's step (compiled or not); returns the per-epoch losses.
std::vector<float> train(mnist::Model& model, const Synthetic& data, int epochs, bool compiled,
                         const std::string& optimizer = "adam", mnist::Loss loss = mnist::Loss::cross_entropy,
                         index_t batch = 64) {
  // The example's default learning rates (examples/mnist_mlp.cpp).
  const double lr = optimizer == "adam" ? 2e-3 : (loss == mnist::Loss::mse ? 0.01 : 0.05);
  mnist::Optimizer opt(model, optimizer, lr);
  fg::data::Loader loader(data.x, data.y, {.batch = batch, .shuffle = true, .seed = 7});
  fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
  auto step = fg::compile_step([&](const fg::Tensor<float, 2>& x, const fg::Tensor<std::int32_t, 1>& y) {
    mnist::train_step(model, opt, loss, x, y, loss_sum);
  });
  std::vector<float> losses;
  for (int e = 0; e < epochs; ++e) {
    loss_sum.fill(0.f);  // in place: the captured step keeps adding into this buffer
    for (const auto& batch : loader.epoch(e)) {
      if (compiled) {
        step(batch.x(), batch.y());
      } else {
        mnist::train_step(model, opt, loss, batch.x(), batch.y(), loss_sum);
      }
    }
    losses.push_back(loss_sum.item() / static_cast<float>(data.x.shape(0)));
  }
  return losses;
}

TEST_CASE("train: one uncaptured training step launches 14 kernels, 5 of them GEMMs", "[train][fusion]") {
  const Synthetic data(256, 1);
  mnist::Model model(3);
  mnist::Optimizer opt(model, "adam", 1e-3);
  fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
  const auto x = fg::slice(data.x, 0, 0, 128);
  const fg::Tensor<float, 2> xb = x;
  const fg::Tensor<std::int32_t, 1> yb = fg::slice(data.y, 0, 0, 128);
  mnist::train_step(model, opt, mnist::Loss::cross_entropy, xb, yb, loss_sum);  // warm
  fgtest::LaunchCounter count;
  mnist::train_step(model, opt, mnist::Loss::cross_entropy, xb, yb, loss_sum);
  // value_and_grad: 2 + 3 GEMMs and 7 element-wise/reduction kernels; Adam over all four tensors:
  // 1; the loss added to the running sum: 1.
  CHECK(count.gemms() == 5);
  CHECK(count.launches() == 14);
  count.restart();
  mnist::train_step(model, opt, mnist::Loss::mse, xb, yb, loss_sum);
  CHECK(count.gemms() == 5);
  CHECK(count.launches() == 15);  // the row sum of the squared error saves its gradient: +1
}

TEST_CASE("train: a compiled step computes exactly what the plain step does", "[train]") {
  const Synthetic data(300, 2);  // 4 full batches of 64 and a partial one of 44
  mnist::Model a(5), b(5);
  const auto la = train(a, data, 2, false);
  const auto lb = train(b, data, 2, true);
  CHECK(la == lb);
  CHECK(host(a.fc1.W) == host(b.fc1.W));
  CHECK(host(a.fc2.b) == host(b.fc2.b));
}

TEST_CASE("train: the same seed gives the same losses and weights, bit for bit", "[train]") {
  const Synthetic data(500, 3);
  for (const char* optimizer : {"adam", "sgd"}) {
    INFO(optimizer);
    mnist::Model a(11), b(11);
    const auto la = train(a, data, 2, true, optimizer);
    const auto lb = train(b, data, 2, true, optimizer);
    CHECK(la == lb);
    CHECK(host(a.fc1.W) == host(b.fc1.W));
    mnist::Model c(12);
    CHECK(train(c, data, 2, true, optimizer) != la);  // another seed: another run
  }
}

#if defined(FG_BACKEND_HOST)
TEST_CASE("train: losses and weights are bit-identical with 1, 2 and 3 threads, idle or loaded", "[train][threads]") {
  // Batches of 256: the element-wise kernels, reductions and GEMMs of a step all run split over
  // the threads (each partition decision is made per thread count).
  const Synthetic data(1100, 4);
  const int before = fg::backend::num_threads();
  std::vector<float> first_losses, first_w;
  for (const bool loaded : {false, true}) {
    std::atomic<bool> stop{false};
    std::thread neighbour;
    if (loaded) {  // another program wanting a core for the whole run
      neighbour = std::thread([&stop] {
        volatile std::uint64_t x = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          x = x + 1;
        }
      });
    }
    for (const int threads : {1, 2, 3}) {
      INFO("threads " << threads << (loaded ? ", loaded" : ", idle"));
      fg::backend::set_num_threads(threads);
      mnist::Model model(21);
      const auto losses = train(model, data, 2, false, "adam", mnist::Loss::cross_entropy, 256);
      if (first_losses.empty()) {
        first_losses = losses;
        first_w = host(model.fc1.W);
        continue;
      }
      CHECK(losses == first_losses);
      CHECK(host(model.fc1.W) == first_w);
    }
    stop = true;
    if (neighbour.joinable()) {
      neighbour.join();
    }
  }
  fg::backend::set_num_threads(before);
}
#endif

TEST_CASE("train: the MLP learns a separable problem with either loss and optimizer", "[train]") {
  const Synthetic data(1000, 4);
  for (const auto loss : {mnist::Loss::cross_entropy, mnist::Loss::mse}) {
    for (const char* optimizer : {"adam", "sgd"}) {
      INFO(optimizer << (loss == mnist::Loss::mse ? " mse" : " ce"));
      mnist::Model model(21);
      const auto losses = train(model, data, 4, true, optimizer, loss);
      CHECK(losses.back() < 0.5f * losses.front());
      const float acc = fg::nn::accuracy(model.logits(data.x), data.y).item();
      CHECK(acc > 0.95f);
    }
  }
}

TEST_CASE("train: a residual MLP whose depth is a run-time number", "[train][var]") {
  const Synthetic data(600, 5);
  for (const int depth : {2, 5}) {  // one compiled block statement, any number of instances
    INFO("hidden layers " << depth);
    mnist::Model a(31, depth, 48), b(31, depth, 48);
    CHECK(a.hidden_layers() == depth);
    CHECK(fg::nn::parameter_names(a).size() == static_cast<std::size_t>(4 + 2 * (depth - 1)));
    CHECK(fg::nn::parameter_names(a)[2] == "blocks.0.fc.weight");
    const auto la = train(a, data, 3, false);
    const auto lb = train(b, data, 3, true);
    CHECK(la == lb);  // the compiled step computes what the plain one does
    CHECK(host(a.blocks.back().fc.W) == host(b.blocks.back().fc.W));
    CHECK(la.back() < 0.5f * la.front());
    const float acc = fg::nn::accuracy(a.predict(data.x), data.y).item();
    CHECK(acc > 0.85f);
  }
}

TEST_CASE("train: the deep model's step launches one more GEMM pair and a few kernels per block", "[train][var][fusion]") {
  const Synthetic data(128, 6);
  const fg::Tensor<float, 2> xb = data.x;
  const fg::Tensor<std::int32_t, 1> yb = data.y;
  fg::Tensor<float, 0> loss_sum = fg::zeros<float>(fg::Shape<0>{});
  std::int64_t launches[2] = {}, gemms[2] = {};
  for (int k = 0; k < 2; ++k) {
    mnist::Model model(3, 3 + k, 32);  // 2 and 3 residual blocks
    mnist::Optimizer opt(model, "adam", 1e-3);
    mnist::train_step(model, opt, mnist::Loss::cross_entropy, xb, yb, loss_sum);  // warm
    fgtest::LaunchCounter count;
    mnist::train_step(model, opt, mnist::Loss::cross_entropy, xb, yb, loss_sum);
    launches[k] = count.launches();
    gemms[k] = count.gemms();
  }
  // A block h' = h + s relu(h W + b): forward GEMM + 1 kernel; backward: the residual path's
  // gradient copied to h (1), the branch's gradient (1), the bias sum (1), the dW GEMM, and the dh
  // GEMM, which adds itself onto the residual path's gradient (beta = 1).
  CHECK(gemms[1] - gemms[0] == 3);
  CHECK(launches[1] - launches[0] == 7);
}

TEST_CASE("train: accuracy counts rows whose largest logit is the label", "[train][nn]") {
  const auto z = fgtest::tensor_from<float, 2>(fg::Shape<2>({4, 3}), {0, 1, 2, 5, 1, 0, 0, 3, 3, 1, 1, 1});
  const auto y = fgtest::tensor_from<std::int32_t, 1>(fg::Shape<1>({4}), {2, 0, 2, 0});
  CHECK(fg::nn::accuracy(z, y).item() == 0.75f);  // ties go to the first largest: row 2 predicts 1
}

TEST_CASE("train: initialisers have the documented bounds and are reproducible", "[train][nn]") {
  const auto w = fg::nn::kaiming_uniform<float>({784, 128}, 9);
  const auto v = host(w);
  const float bound = std::sqrt(6.f / 784.f);
  float lo = 1, hi = -1;
  for (float e : v) {
    lo = std::min(lo, e);
    hi = std::max(hi, e);
  }
  CHECK(lo >= -bound);
  CHECK(hi < bound);
  CHECK(hi > 0.95f * bound);
  CHECK(lo < -0.95f * bound);
  CHECK(host(fg::nn::kaiming_uniform<float>({784, 128}, 9)) == v);
  const auto x = host(fg::nn::xavier_uniform<float>({128, 10}, 9));
  for (float e : x) {
    CHECK(std::abs(e) < std::sqrt(6.f / 138.f));
  }
}

}  // namespace test_train
