// A coordinate check's result built by hand, as standard parametrization gives it for a three-layer
// MLP: every size flat but the readout's, which grows as sqrt(width) once trained, and its change
// after one step, which grows as the width. Shared by the JSON, text and chart writers' tests.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "gradscope/core/coordcheck.hpp"

namespace gradscope::testing {

// size(w) = base * (w / 64)^slope, times a small wobble so that the numbers are not round and
// must be written with all their digits to read back.
inline std::vector<double> sizes(const std::vector<int>& widths, double base, double slope) {
  std::vector<double> out;
  for (std::size_t i = 0; i < widths.size(); ++i) {
    const double wobble = 1.0 + 0.01 * std::sin(1.7 * static_cast<double>(i) + base);
    out.push_back(base * std::pow(widths[i] / 64.0, slope) * wobble);
  }
  return out;
}

inline CoordRow coord_row(int op, const std::string& label, TensorRole role, CoordQuantity q,
                          int step, const std::vector<int>& widths, double base, double slope) {
  CoordRow row;
  row.op = op;
  row.label = label;
  row.role = role;
  row.quantity = q;
  row.step = step;
  row.l1 = sizes(widths, base, slope);
  row.rms = sizes(widths, base * 1.2533141373155003, slope);  // rms / l1 of a Gaussian
  row.slope = slope + 0.003 * base;
  row.spread = 0.011 + 0.001 * op;
  row.expected_low = 0.0;
  row.expected_high = 0.0;
  row.verdict = slope > 0.2 ? SlopeVerdict::kGrows : SlopeVerdict::kFlat;
  return row;
}

// Widths 64..1024, 2 steps, SGD with momentum; rows in op order, then quantity, then step. The
// readout's size at step 2 overflowed at width 1024 (l1 NaN, rms inf), so its slope is undefined.
// The worst row is the readout's change at step 1 (slope 1).
inline CoordCheckResult sp_coordcheck() {
  CoordCheckResult r;
  r.name = "mlp3-sp";
  r.spec.widths = {64, 128, 256, 512, 1024};
  r.spec.seeds = 4;
  r.spec.parametrization = Parametrization::kSp;
  r.spec.train.optimizer = TrainOptimizer::kSgd;
  r.spec.train.learning_rate = 0.1;
  r.spec.train.momentum = 0.9;
  r.spec.train.steps = 2;
  r.spec.tolerance = 0.1;
  r.base_width = 64;
  r.base_depth = 3;
  r.multipliers_width = 1024;
  const std::vector<std::string> ops = {"ops.0 dense", "ops.1 dense", "ops.2 dense"};
  const TensorRole roles[] = {TensorRole::kInput, TensorRole::kHidden, TensorRole::kOutput};
  for (int op = 0; op < 3; ++op) {
    for (const char* tensor : {"weight", "bias"}) {
      TensorMultipliers m;
      m.op = op;
      m.name = "ops." + std::to_string(op) + "." + tensor;
      m.role = std::string(tensor) == "bias" ? TensorRole::kVector : roles[op];
      r.multipliers.push_back(m);
    }
  }
  const std::vector<int>& w = r.spec.widths;
  for (int op = 0; op < 3; ++op) {
    const auto i = static_cast<std::size_t>(op);
    const bool readout = op == 2;
    for (int step = 0; step <= 2; ++step) {
      r.rows.push_back(coord_row(op, ops[i], roles[i], CoordQuantity::kSize, step, w,
                                 0.79 + 0.1 * op, readout && step > 0 ? 0.5 : 0.0));
    }
    for (int step = 1; step <= 2; ++step) {
      r.rows.push_back(coord_row(op, ops[i], roles[i], CoordQuantity::kChange, step, w,
                                 0.031 * step + 0.01 * op, readout && step == 1 ? 1.0 : 0.0));
    }
    for (int step = 1; step <= 2; ++step) {
      r.rows.push_back(coord_row(op, "ops." + std::to_string(op) + ".weight", roles[i],
                                 CoordQuantity::kUpdate, step, w, 0.0021 * step, 0.0));
    }
  }
  // The readout's size at step 2 (op 2's third row): overflowed at the largest width.
  CoordRow& overflowed = r.rows[16];
  overflowed.l1.back() = std::nan("");
  overflowed.rms.back() = INFINITY;
  overflowed.slope = std::nan("");
  overflowed.spread = std::nan("");
  r.worst = 17;  // op 2's change at step 1
  return r;
}

// The same check over depths 2, 4, 8 as well: the final stream grows as sqrt(depth) (SP scales no
// branch), worst at step 2.
inline CoordCheckResult sp_coordcheck_with_depth() {
  CoordCheckResult r = sp_coordcheck();
  r.spec.depths = {2, 4, 8};
  r.depth_residual_scale = 1.0;
  for (int step = 0; step <= 2; ++step) {
    DepthRow d;
    d.op = 3;
    d.label = "ops.3 residual";
    d.stream = true;
    d.step = step;
    d.l1 = {0.8 + 0.01 * step, 1.13 + 0.01 * step, 1.6 + 0.01 * step};
    d.rms = {1.0 + 0.02 * step, 1.4142 + 0.02 * step, 2.0 + 0.02 * step};
    d.slope = 0.49 + 0.01 * step;
    d.spread = 0.02;
    d.verdict = SlopeVerdict::kGrows;
    r.depth_rows.push_back(d);
  }
  r.worst_depth = 2;
  return r;
}

// Every row flat: what a parametrization that works gives.
inline CoordCheckResult flat_coordcheck() {
  CoordCheckResult r = sp_coordcheck();
  r.spec.parametrization = Parametrization::kMup;
  for (CoordRow& row : r.rows) {
    row.slope = 0.01;
    row.verdict = SlopeVerdict::kFlat;
  }
  r.worst = -1;
  return r;
}

}  // namespace gradscope::testing
