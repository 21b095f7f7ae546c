// Coordinate checks: the same network at several widths (and depths), trained a few steps on one
// batch, every op's output, its change since init and every weight's update measured at each
// step; the slope of each against log2(width) (and log2(depth)) is fitted over the seeds and
// compared with the slope the parametrization should give. The types of the check and its result,
// the parametrizations (sp, mup, depth_mup, completep) as per-tensor multipliers, and the fits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/spec.hpp"

namespace gradscope {

// How init, learning rates, the attention scale and the residual branches change with width and
// depth. sp: the config as written. mup: Tensor Programs V's table (per role, relative to the
// base width). depth_mup: mup and residual branches scaled by (L / L_base)^(-1/2). completep: mup
// and (L / L_base)^(-1), with the learning-rate and Adam-epsilon adjustments of Dey et al. 2025.
enum class Parametrization : int { kSp, kMup, kDepthMup, kCompleteP };
inline constexpr int kParametrizationCount = 4;
std::string_view parametrization_name(Parametrization p);
std::optional<Parametrization> parametrization_from_name(std::string_view name);
// The depth exponent alpha of the branch multiplier (L / L_base)^(-alpha): 0, 0, 1/2, 1.
double depth_alpha(Parametrization p);

// What a tensor is to μP: input (its fan-in stays fixed as the width grows), hidden (both fans
// grow), output (its fan-out stays fixed), vector (biases, norm gains: one fan grows).
enum class TensorRole : int { kInput, kHidden, kOutput, kVector };
std::string_view tensor_role_name(TensorRole r);

// The optimizer a coordinate check trains with (PyTorch's semantics). sgd: v = momentum v + g,
// W -= lr v (momentum 0: plain SGD). adam: bias-corrected moments, W -= lr m^ / (sqrt(v^) + eps).
// adamw: adam, and first W -= lr * weight_decay * W.
enum class TrainOptimizer : int { kSgd, kAdam, kAdamW };
std::string_view train_optimizer_name(TrainOptimizer o);
std::optional<TrainOptimizer> train_optimizer_from_name(std::string_view name);

struct TrainSpec {
  TrainOptimizer optimizer = TrainOptimizer::kSgd;
  double learning_rate = 0.1;
  double momentum = 0.0;  // sgd
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // adamw
  int steps = 3;              // updates after init: measurements at t = 0 (init) .. steps
};

// One parameter tensor's multipliers at one width and depth (1 at the base width and depth).
struct TensorMultipliers {
  int op = 0;        // 0-based op index of expand_ops
  std::string name;  // "ops.3.weight", "ops.1.query.weight", "ops.3.bias"
  TensorRole role = TensorRole::kHidden;
  double init_std = 1.0;  // multiplies the init's standard deviation (weights only)
  double lr = 1.0;        // multiplies the learning rate
  double eps = 1.0;       // multiplies Adam's epsilon
};

// A config resolved at one width and depth under a parametrization: the spec to build (widths
// scaled, depth set, inits, attention scales and residual branch scales rewritten) and the
// per-tensor learning-rate and epsilon multipliers the training applies.
struct ScaledConfig {
  RunSpec spec;
  int width = 0;
  int depth = 0;
  double width_mult = 1.0;  // width / base width
  double depth_mult = 1.0;  // depth / base depth
  std::vector<TensorMultipliers> tensors;
  double residual_scale = 1.0;  // the branch multiplier it set (L / L_base)^(-alpha)
};

// What a coordinate check measures, per op and step: the op's output (size), its change since
// init (change), and per parameter tensor the step's update W_t - W_(t-1) (update).
enum class CoordQuantity : int { kSize, kChange, kUpdate };
std::string_view coord_quantity_name(CoordQuantity q);

// Above, below or within the expected slope's band.
enum class SlopeVerdict : int { kFlat, kGrows, kShrinks };
std::string_view slope_verdict_name(SlopeVerdict v);

// One row of the width check: a layer (an op's output, or a parameter tensor for updates), one
// quantity and one step, at every width; l1 = mean |x|, rms = sqrt(mean x^2), each the mean over
// seeds of the seed's value.
struct CoordRow {
  int op = 0;         // 0-based op index at the base depth
  std::string label;  // "ops.3 dense", or the tensor's name for updates
  TensorRole role = TensorRole::kHidden;
  CoordQuantity quantity = CoordQuantity::kSize;
  int step = 0;
  std::vector<double> l1;   // per width
  std::vector<double> rms;  // per width
  // Least-squares slope of log2(l1) against log2(width) for each seed; the row's slope is their
  // mean, the spread their standard deviation (0 with one seed).
  double slope = 0.0;
  double spread = 0.0;
  double expected_low = 0.0;  // the band the parametrization should give
  double expected_high = 0.0;
  SlopeVerdict verdict = SlopeVerdict::kFlat;
};

// One row of the depth check, at the base width: an op of the last repeated block or after it
// (the final residual stream, a final norm, the readout), its size or its change since init, at
// one step, against depth. Ops are matched across depths by their place counted from the end.
struct DepthRow {
  int op = 0;           // 0-based op index at the width check's depth (its rows' numbering)
  std::string label;    // "ops.19 residual_end", as the width rows name the op
  bool stream = false;  // the final residual stream: the last residual sum's output
  CoordQuantity quantity = CoordQuantity::kSize;  // size or change (no updates against depth)
  int step = 0;
  std::vector<double> l1;   // per depth
  std::vector<double> rms;  // per depth
  double slope = 0.0;       // of log2(rms) against log2(depth), mean over seeds
  double spread = 0.0;
  double expected_low = 0.0;
  double expected_high = 0.0;
  SlopeVerdict verdict = SlopeVerdict::kFlat;
};

struct CoordCheckSpec {
  std::vector<int> widths;  // model widths; the config's own is the base unless base_width is set
  std::vector<int> depths;  // empty: the config's depth only (no depth check)
  int seeds = 4;
  Parametrization parametrization = Parametrization::kSp;
  int base_width = 0;  // 0: the config's width
  int base_depth = 0;  // 0: the config's depth
  TrainSpec train{};
  // A slope within expected +- tolerance (and the seeds' spread) is FLAT.
  double tolerance = 0.1;
};

struct CoordCheckResult {
  std::string name;  // the config's name
  CoordCheckSpec spec;
  int base_width = 0;
  int base_depth = 0;
  std::vector<TensorMultipliers> multipliers;  // resolved at the largest width (and base depth)
  int multipliers_width = 0;
  std::vector<CoordRow> rows;         // width check, op order, then quantity, then step
  std::vector<DepthRow> depth_rows;   // empty without --depths; op order, quantity, step
  double depth_residual_scale = 1.0;  // at the largest depth
  // The row farthest outside its band (index into rows; -1: every row is FLAT).
  int worst = -1;
  int worst_depth = -1;  // into depth_rows
  bool passed() const { return worst < 0 && worst_depth < 0; }
};

// ---- Scaling a config

// The model width a check scales: the first dense item's width when the network reads its input
// through a dense layer (the input's width is the data's and stays), else the input's width (a
// residual stream: the input is scaled with it).
int config_model_width(const RunSpec& spec);
// The depth a check varies: stack.depth, or the repeat count of the one item of "layers" that
// repeats (a transformer's blocks); 0 when the config has none (no depth check possible).
int config_depth(const RunSpec& spec);

// The config at `width` and `depth` under the check's parametrization, base_width and base_depth
// being where every multiplier is 1. Every hidden width is scaled by width / base_width (rounded;
// a dense readout at the end of "layers", or the stack's output layer, keeps its width), attention
// keeps its heads. Throws gradscope::Error naming the config key when the network cannot be scaled
// so (a width that heads do not divide, a depth without a repeated block).
ScaledConfig scale_config(const RunSpec& base, const CoordCheckSpec& check, int base_width,
                          int base_depth, int width, int depth);

// Least-squares slope of y against x (both already in log2), and whether it is defined (two or
// more distinct x, every y finite).
std::optional<double> fit_slope(const std::vector<double>& x, const std::vector<double>& y);

// The verdict for a slope with its seeds' spread against the band [low, high] widened by the
// tolerance: FLAT when slope - max(tolerance, 2 spread) <= high and slope + ... >= low.
SlopeVerdict judge_slope(double slope, double spread, double low, double high, double tolerance);

}  // namespace gradscope
