// A few optimizer steps on one batch, for coordinate checks: every op's output, its change since
// init, and every parameter tensor's update, measured at each step.
#pragma once

#include <vector>

#include "gradscope/core/coordcheck.hpp"
#include "gradscope/core/parallel.hpp"

namespace gradscope {

// Per step t = 0 (init) .. steps: [t][op] for outputs (NaN for residual-begin markers), [t][tensor]
// for updates, the tensors of ScaledConfig::tensors in order (t = 0: NaN, nothing moved yet).
// l1 = mean |x|, rms = sqrt(mean x^2) over every entry, in double.
struct TrainTrace {
  std::vector<std::vector<double>> out_l1, out_rms;        // the op's output at step t
  std::vector<std::vector<double>> change_l1, change_rms;  // its output at t minus at init
  std::vector<std::vector<double>> update_l1, update_rms;  // W_t - W_(t-1), as stored
  std::vector<double> loss;                                // per step
};

// Builds the network of config.spec (its seed, precision, loss), then for t = 0 .. train.steps
// runs the forward and backward passes on the same batch and, after each but the last, applies
// the optimizer with each tensor's learning-rate and epsilon multipliers. Norm gains and biases
// are trained from 1 and 0. The same bits whatever the thread count.
TrainTrace train_trace(const ScaledConfig& config, const TrainSpec& train, ThreadPool& pool);

}  // namespace gradscope
