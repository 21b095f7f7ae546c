// A dense network in float or double, and its forward and backward passes with every per-layer
// statistic gathered on the way. The backward pass carries the gradient's scale as a power of two
// beside it, so magnitudes far below (or above) the number format stay exact.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/loss.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

template <class Scalar>
using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

template <class Scalar>
struct Network {
  int input_width = 0;
  int tokens = 1;            // per example: the batch's columns are examples x tokens
  std::vector<OpSpec> ops;   // the flattened architecture (expand_ops)
  std::vector<int> widths;   // the width each op outputs
  std::vector<int> partner;  // residual begin <-> end: the index of the other; else -1
  // dense: W (n_out, n_in); residual end: P when projected; attention: [Wq; Wk; Wv; Wo] by rows
  // (4d, d), (3d, d) without Wo; GLU: [W1; W3; W2^T] by rows (3 hidden, d).
  std::vector<Mat<Scalar>> weight;
  // dense: b (n_out); attention: [bq; bk; bv; bo] and GLU: [b1; b3; b2] when they have biases.
  std::vector<Vec<Scalar>> bias;
  std::vector<double> weight_norm;  // ||W||_F of the weights as stored, in double; regenerated: 0
  std::uint64_t seed = 0;           // the weights' streams, for weights drawn again
  // Generated weights are not stored: weight[l] stays empty for them, and the passes draw them
  // again from the seed when they need them (weights put into weight[l] are used as stored).
  bool regenerate = false;
};

// Generates every op's parameters from the spec's seed (in parallel over ops; the values do not
// depend on the thread count). Generated in double, rounded once for float networks. With
// WeightStorage::kRegenerated only the biases are stored; the weights are drawn when needed.
template <class Scalar>
Network<Scalar> build_network(const RunSpec& spec, ThreadPool& pool,
                              WeightStorage storage = WeightStorage::kKept);

// Draws the generated weights of op l (a dense W, or a residual projection P) into w: the very
// values build_network stores for it, whatever the thread count. Returns weight_frobenius(w).
template <class Scalar>
double generate_weight(const Network<Scalar>& net, std::size_t l, Mat<Scalar>& w, ThreadPool& pool);

// The weights of op l: the stored ones, or drawn into `scratch` when the network regenerates them.
template <class Scalar>
const Mat<Scalar>& weight_of(const Network<Scalar>& net, std::size_t l, Mat<Scalar>& scratch,
                             ThreadPool& pool);

// ||W||_F in double: squares summed in blocks of 32 columns, the blocks' sums added in order.
template <class Scalar>
double weight_frobenius(const Mat<Scalar>& w);

// The input batch (input width, batch) and the backward probe dL/dy at the output (n_out, batch):
// seeded Gaussian (or uniform) noise from their own streams.
template <class Scalar>
Mat<Scalar> make_input(const RunSpec& spec);
template <class Scalar>
Mat<Scalar> make_probe(const RunSpec& spec, int output_width);

struct PassOptions {
  double saturation_threshold = 0.05;    // fraction of the activation's largest slope
  std::uint64_t seed = 0;                // for dropout masks
  LossSpec loss{};                       // kProbe: the probe argument is dL/dy
  const LossTargets* targets = nullptr;  // the other losses' targets
  OptimizerSpec optimizer{};
  // 0: every op's output (and what its backward needs) is kept from the forward pass. k > 0: only
  // checkpoints are kept, at the start of every segment of k ops and at residual skips open
  // across it; each segment is computed again from its checkpoint in the backward pass. The
  // results are bit-identical either way.
  int checkpoint_every = 0;
  // With checkpoints: the ops from this index on are kept from the forward pass instead of being
  // computed again (clamped to the last segment's start, its default when negative).
  std::int64_t kept_from = -1;
  // Tests only: also return every gradient, unscaled, in double (entries below double's range
  // read 0). Costs a full dW product per layer.
  bool keep_gradients = false;
  // Also return every op's output, in double (training: the coordinate check measures them).
  bool keep_outputs = false;
  // With keep_gradients: dense dL/dW from a product in the network's precision (training), not
  // in double (the tests' exact reference).
  bool gradients_in_precision = false;
  // Called after each op's forward, recomputation and backward step with the share of the pass's
  // work done so far (0 to 1; a dense op weighs its products, any other op its entries), from the
  // calling thread. For a progress bar: it changes nothing in the results.
  std::function<void(double)> on_progress;
};

struct Gradients {
  std::vector<Eigen::MatrixXd> dweight;  // per op: dense dL/dW (n_out, n_in); else empty
  std::vector<Eigen::VectorXd> dbias;    // per op: dense dL/db; else empty
  std::vector<Eigen::MatrixXd> dpreact;  // per op: the gradient its grad_preact statistic is of
  Eigen::MatrixXd dinput;                // dL/dx^0, (input width, batch)
};

struct PassResult {
  // Per op; entries of residual-begin markers are left empty.
  std::vector<ForwardStats> forward;
  std::vector<BackwardStats> backward;
  Magnitude output_grad_rms;  // rms of dL/dy at the output (the probe, or the loss gradient)
  double loss = 0.0;          // the loss; for the probe, sum over the batch of <probe, y>
  MomentStats input;          // the input batch's moments, as measured
  Gradients gradients;        // empty unless keep_gradients
  // Per op, its output (width, batch) in double, unless keep_outputs is off; residual-begin
  // markers' entries are empty.
  std::vector<Eigen::MatrixXd> outputs;
};

// Runs the forward pass, then the backward pass from dL/dy (the probe, or the loss's gradient),
// gathering statistics on the way.
template <class Scalar>
PassResult forward_backward(const Network<Scalar>& net, const Mat<Scalar>& input,
                            const Mat<Scalar>& probe, const PassOptions& options, ThreadPool& pool);

// Rows of a layer handled by one task. Fixed by the shape alone, never by the thread count, so
// every product and every partial sum is the same whatever the number of threads.
inline constexpr int kRowsPerTask = 256;

// Examples whose pairwise cosines give the measured correlation (all pairs of the first 64: the
// mean of 2016 cosines, enough for two digits, at a cost of 64^2 x width per layer).
inline constexpr int kCorrelationExamples = 64;

}  // namespace gradscope
