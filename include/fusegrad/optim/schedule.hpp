// fusegrad/optim/schedule.hpp — learning-rate schedules: functions of the step, applied with
// `opt.set_lr(schedule(step))` between steps.
//
//   WarmupCosine{lr, min_lr, warmup, decay_steps}(t) for step t = 0, 1, ...:
//     t <  warmup:        lr · (t + 1) / (warmup + 1)                        linear warm-up
//     t >  decay_steps:   min_lr
//     otherwise:          min_lr + ½ (1 + cos(π r)) (lr − min_lr),  r = (t − warmup) / (decay_steps − warmup)
//
// The same function as nanoGPT's get_lr(), so a run can be compared step for step with it.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "fusegrad/core/error.hpp"

namespace fusegrad::optim {

/// Linear warm-up, then cosine decay from lr to min_lr over [warmup, decay_steps], then min_lr.
/// Example: `optim::WarmupCosine sched{.lr = 1e-3, .min_lr = 1e-4, .warmup = 100, .decay_steps = 2000};
///           for (int t = 0; t < 2000; ++t) { opt.set_lr(sched(t)); ... opt.step(grads); }`
struct WarmupCosine {
  double lr = 1e-3;
  double min_lr = 1e-4;
  std::int64_t warmup = 0;
  std::int64_t decay_steps = 1;

  /// The learning rate of step t (t >= 0). Throws fusegrad::error on an inconsistent schedule.
  double operator()(std::int64_t t) const {
    if (!(lr >= 0) || !(min_lr >= 0) || warmup < 0 || decay_steps < warmup || t < 0) {
      throw error("WarmupCosine: needs lr >= 0, min_lr >= 0, 0 <= warmup <= decay_steps and a step "
                  ">= 0; got lr " + std::to_string(lr) + ", min_lr " + std::to_string(min_lr) +
                  ", warmup " + std::to_string(warmup) + ", decay_steps " + std::to_string(decay_steps) +
                  ", step " + std::to_string(t));
    }
    if (t < warmup) {
      return lr * static_cast<double>(t + 1) / static_cast<double>(warmup + 1);
    }
    if (t > decay_steps || decay_steps == warmup) {
      return min_lr;
    }
    const double r = static_cast<double>(t - warmup) / static_cast<double>(decay_steps - warmup);
    return min_lr + 0.5 * (1 + std::cos(3.14159265358979323846 * r)) * (lr - min_lr);
  }
};

}  // namespace fusegrad::optim
