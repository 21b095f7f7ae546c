// Mean-field predictions for every op of a network, beside what one run measured: the
// pre-activation second moment q, the per-layer gradient factor chi, the gradient's log10 rms
// relative to the last layer, and the correlation between examples; with the spread finite width
// allows and a flag where a measurement falls outside it.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// Predicted value of each of these per op, from the spec alone (no measurement).
struct OpPrediction {
  bool forward = false;            // q, act_second_moment and correlation are predicted
  bool backward = false;           // grad_factor and log10_grad_rel_last are predicted
  std::string reason;              // why something is not predicted ("" when everything is)
  double q = 0.0;                  // E[preact^2] (the measured preact.rms^2)
  double act_second_moment = 0.0;  // E[act^2] (the measured act.rms^2)
  double correlation = 0.0;        // cosine between two examples' output vectors
  // E[g^2] of this op's grad_preact over that of the next reported op (last: over dL/dy):
  // chi^l = sw2 E[phi'^2] (n_{l+1} / n_l) for a dense stack. Its square root is the predicted gain.
  double grad_factor = 0.0;
  double log10_grad_rel_last = 0.0;  // 0.5 log10 E[g_l^2] / E[g_last^2]
  // Expected standard deviations from finite width (Hanin 2018: the log of a squared norm
  // fluctuates with variance about 5 sum 1/n over the layers it passed), plus sampling noise.
  double log_q_spread = 0.0;       // of ln(measured q / predicted q)
  double log10_grad_spread = 0.0;  // of the measured log10_grad_rel_last
};

// One entry per op of expand_ops(spec) (residual begins included, never predicted).
std::vector<OpPrediction> predict_ops(const RunSpec& spec);

// E[(dL/dx^0)^2] per input unit for dL/dy of unit variance: ||J||_F^2 / n_0 for the input-output
// Jacobian J (NaN where the backward prediction stops, e.g. at a softmax).
double predict_input_gradient_second_moment(const RunSpec& spec);

// Fills every reported layer's `theory` from the predictions and its own measurements, and the
// summary's count of flagged layers. `layers` are the report's layers (residual begins skipped).
void attach_predictions(const RunSpec& spec, std::vector<LayerReport>& layers, Summary& summary);

}  // namespace gradscope
