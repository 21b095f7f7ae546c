// The whole diagnostic of one run: check the memory it needs, build the network, run the passes,
// assemble the report.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/loss.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/engine/memory.hpp"

namespace gradscope {

// Data from files instead of the seeded generators (--weights, --input, --targets), in double;
// each entry empty or absent means "generate as usual". Indexed by op of expand_ops(spec).
// An input is counted twice in double against the memory limit: this matrix, and the values as
// read from the file, which the command line keeps beside it (estimate_kept_memory).
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
  int threads = 0;  // 0: one per hardware core; results do not depend on it
  // The memory the run may use: the cheapest plan whose expected peak fits is chosen. 0: the
  // machine's available memory; -1: no limit (everything in memory).
  std::int64_t memory_limit_bytes = 0;
  const ExternalData* external = nullptr;
  RunData* save = nullptr;  // filled with what the run used when set
  // Tests and benchmarks: this plan instead of the chosen one (its peak is estimated again).
  std::optional<MemoryPlan> plan = std::nullopt;
  // Called once the memory plan is chosen, before anything is allocated, with the report so far
  // (the spec, the memory estimate and plan, the parameter count): the command line estimates the
  // time there, and may throw gradscope::Error to refuse the run. Changes nothing in the report.
  std::function<void(const Report&)> on_planned = nullptr;
  // Called during the pass with the share of its work done (PassOptions::on_progress).
  std::function<void(double)> on_progress = nullptr;
};

// A plan the planner considered: its expected peak and its extra cost, in flop-equivalents
// beyond the all-in-memory plan (drawing weights again, computing segments again).
struct MemoryPlanOption {
  MemoryPlan plan;
  double extra_flops = 0;
};

// Every plan considered for a run, cheapest first. `all` is estimate_memory(spec); `loaded`
// marks the ops whose weights come from a file (they are always kept). With `room` (bytes for
// data; negative: unknown), checkpointed plans also try keeping a longer tail of ops from the
// forward pass, to compute less again.
std::vector<MemoryPlanOption> memory_plan_options(const RunSpec& spec, const MemoryEstimate& all,
                                                  const std::vector<bool>& loaded,
                                                  double room = -1);

// The plan with these weights and segment length (0: none), computing the first
// `recomputed_ops` ops again (negative: all but the last segment), with its expected peak.
MemoryPlan plan_with(const RunSpec& spec, const MemoryEstimate& all,
                     const std::vector<bool>& loaded, WeightStorage weights, int checkpoint_every,
                     std::int64_t recomputed_ops = -1);

// The cheapest plan whose expected peak plus `kept` (what every plan keeps besides: statistics
// and reports, input copies), grown by `slack` (the allocator's share beyond the live data), plus
// `overhead_bytes` (the workers' scratch and the process itself), fits the budget (<= 0: no
// limit). Throws gradscope::Error (exit code 2) when even the leanest plan does not, naming the
// part that dominates.
MemoryPlan choose_memory_plan(const RunSpec& spec, const MemoryEstimate& all,
                              const std::vector<bool>& loaded, std::int64_t budget_bytes,
                              std::int64_t overhead_bytes, double slack = 0.0,
                              const KeptEstimate& kept = {});

// "4GiB", "512M", "1.5G", "2GB", "1000000": bytes (K, M, G, T and KiB.. TiB are powers of 1024;
// KB, MB, GB, TB powers of 1000; case-insensitive). Nothing when the text is not a size.
std::optional<std::int64_t> parse_byte_size(std::string_view text);

// What the run will allocate: weights in the network's precision, the activations and
// derivatives the backward pass keeps, and the pass's own buffers.
MemoryEstimate estimate_memory(const RunSpec& spec);

// What a run computes under a memory plan, in flop-equivalents: a multiply-add is 2 flops, and
// the rest (drawing weights, element-wise work and statistics, each reported layer's share of the
// report) is priced as the matrix products it takes as long as on one core. The command line turns
// it into seconds with the machine's measured speed; it never enters a report.
struct RunWork {
  double products = 0;     // forward, backward and weight-gradient products, computed again too
  double draws = 0;        // drawing the weights (again, for a plan that does not keep them)
  double elementwise = 0;  // activations, norms, statistics and histograms: per entry of each op
  double jacobian = 0;     // --jacobian's products
  double per_layer = 0;    // each reported layer's analysis and report
  // All of it on `threads` workers: each op's share over the threads its tasks can keep busy
  // (its rows in blocks of kRowsPerTask, its weights drawn 32 columns a task). Equals total()
  // on one thread.
  double critical_path = 0;
  // The part of critical_path before the pass starts: kept weights, drawn when the network is
  // built. A progress bar gives it its share before the pass reports its own progress.
  double before_pass = 0;
  double total() const { return products + draws + elementwise + jacobian + per_layer; }
};

// Flop-equivalents of the work beside the products, measured with the release build against
// 60 GFLOP/s of products on one core: 9 ns per entry of an op's output (activation, statistics,
// histogram, backward), 0.13 ms per reported layer (its predictions and its share of the report).
// A draw is priced as the memory planner prices it.
inline constexpr double kElementwiseFlopsPerEntry = 540.0;
inline constexpr double kFlopsPerReportedLayer = 7.8e6;

// The work of `spec` under `plan` on `threads` worker threads (<= 0: one per core). Counted
// without expanding a stack, like the memory estimate.
RunWork estimate_run_work(const RunSpec& spec, const MemoryPlan& plan, int threads);

// MemAvailable from the kernel (or physical memory when that is unknown); -1 if unknown.
std::int64_t available_memory_bytes();

// Throws gradscope::Error (exit code 2) before allocating anything when the estimate exceeds the
// limit.
Report run_diagnostic(const RunSpec& spec, const RunOptions& options = {});

}  // namespace gradscope
