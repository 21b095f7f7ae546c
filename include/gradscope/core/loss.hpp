// Losses that can drive the backward pass instead of the probe: seeded targets, and the loss value
// with its gradient dL/dy at the network's output, computed stably in double.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// What the output is compared with. mse: values (width, batch), standard normal;
// softmax_cross_entropy: labels (batch), uniform in [0, classes); sigmoid_bce: values
// (width, batch) in {0, 1}, each 1 with probability 1/2; probe: both empty.
struct LossTargets {
  Eigen::MatrixXd values;
  std::vector<int> labels;
};

// Targets from their own random stream, stream_key(seed, 0, StreamPurpose::kTargets), entry k of
// the column-major (width, batch) layout (or label k) from draw k: mse uses fill_normal; labels are
// floor(uniform01 * classes), clamped below classes; bce targets are (uniform01 < 0.5).
// softmax_cross_entropy requires spec.classes == width (gradscope::Error, exit code 1 otherwise).
LossTargets make_targets(const LossSpec& spec, std::uint64_t seed, int width, int batch);

// Returns L (accumulated in double) and writes dy = dL/dy, resized to y's shape. y: (width,
// batch), one column per example; every loss is a mean over the batch B (PyTorch's
// reduction='mean' over examples, not over all width * batch entries):
//   mse:                   L = (1/B) sum_a sum_i (y_ia - t_ia)^2 / 2, dy = (y - t) / B.
//                          The 1/2 makes dy exactly the residual over B; PyTorch's MSELoss has no
//                          1/2 and also divides by the width.
//   softmax_cross_entropy: L = -(1/B) sum_a log softmax(y_a)[c_a] with log-sum-exp about the
//                          column's max, dy = (softmax(y_a) - onehot(c_a)) / B, the label's entry
//                          as -(sum of the other probabilities) so it keeps its precision when
//                          softmax(y_a)[c_a] is near 1.
//   sigmoid_bce (logits):  L = (1/B) sum_a sum_i softplus(y) - t y, as max(y, 0) - t y +
//                          log1p(exp(-|y|)), dy = (sigmoid(y) - t) / B, with 1 - sigmoid(y)
//                          taken as sigmoid(-y).
// Every per-entry formula is evaluated in double and dy rounded once to Scalar, so finite logits
// of any size give a finite gradient (L itself is Inf only beyond double's range).
// probe: gradscope::Error, exit code 1 (the network drives the probe itself). Targets of the wrong
// shape, or a label outside [0, width): gradscope::Error, exit code 1.
template <class Scalar>
double loss_forward_backward(const LossSpec& spec, const Mat<Scalar>& y, const LossTargets& targets,
                             Mat<Scalar>& dy);

}  // namespace gradscope
