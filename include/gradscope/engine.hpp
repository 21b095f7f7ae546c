// The whole diagnostic of one run: check the memory it needs, build the network, run the passes,
// assemble the report.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <optional>
#include <vector>

#include "gradscope/loss.hpp"
#include "gradscope/report.hpp"
#include "gradscope/spec.hpp"

namespace gradscope {

// Data from files instead of the seeded generators (--weights, --input, --targets), in double;
// each entry empty or absent means "generate as usual". Indexed by op of expand_ops(spec).
struct ExternalData {
  std::vector<Eigen::MatrixXd> weight;   // dense: W (n_out, n_in); projected residual end: P
  std::vector<Eigen::VectorXd> bias;     // dense: b (n_out)
  std::optional<Eigen::MatrixXd> input;  // (input width, batch)
  std::optional<LossTargets> targets;    // for mse, sigmoid_bce, softmax_cross_entropy
};

// What a run used, in double, for --save-weights: every parameter, the input, and what drove the
// backward pass. Indexed by op like ExternalData.
struct RunData {
  std::vector<Eigen::MatrixXd> weight;
  std::vector<Eigen::VectorXd> bias;
  Eigen::MatrixXd input;  // (input width, batch)
  Eigen::MatrixXd probe;  // (output width, batch) for the probe loss; else empty
  LossTargets targets;    // for the other losses
};

struct RunOptions {
  int threads = 0;                      // 0: one per hardware core; results do not depend on it
  std::int64_t memory_limit_bytes = 0;  // 0: the machine's available memory
  const ExternalData* external = nullptr;
  RunData* save = nullptr;  // filled with what the run used when set
};

// What the run will allocate: weights in the network's precision, the activations and
// derivatives the backward pass keeps, and the pass's own buffers.
MemoryEstimate estimate_memory(const RunSpec& spec);

// MemAvailable from the kernel (or physical memory when that is unknown); -1 if unknown.
std::int64_t available_memory_bytes();

// Throws gradscope::Error (exit code 2) before allocating anything when the estimate exceeds the
// limit.
Report run_diagnostic(const RunSpec& spec, const RunOptions& options = {});

}  // namespace gradscope
