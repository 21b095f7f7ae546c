// A dense network in float or double, and its forward and backward passes with every per-layer
// statistic gathered on the way. The backward pass carries the gradient's scale as a power of two
// beside it, so magnitudes far below (or above) the number format stay exact.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "gradscope/activation.hpp"
#include "gradscope/parallel.hpp"
#include "gradscope/report.hpp"
#include "gradscope/spec.hpp"

namespace gradscope {

template <class Scalar>
using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

template <class Scalar>
struct Network {
  int input_width = 0;
  std::vector<LayerSpec> layers;
  std::vector<Mat<Scalar>> weight;  // layer l: (n_l, n_{l-1}), out x in
  std::vector<Vec<Scalar>> bias;    // layer l: (n_l)
  std::vector<double> weight_norm;  // ||W^l||_F of the weights as stored, in double
};

// Generates every layer's parameters from the spec's seed (in parallel over layers; the values do
// not depend on the thread count). Generated in double, rounded once for float networks.
template <class Scalar>
Network<Scalar> build_network(const RunSpec& spec, ThreadPool& pool);

// The input batch (input width, batch) and the backward probe dL/dy at the output (n_L, batch):
// seeded Gaussian (or uniform) noise from their own streams.
template <class Scalar>
Mat<Scalar> make_input(const RunSpec& spec);
template <class Scalar>
Mat<Scalar> make_probe(const RunSpec& spec, int output_width);

struct PassOptions {
  double saturation_threshold = 0.05;  // fraction of the activation's largest slope
  // Tests only: also return every gradient, unscaled, in double (entries below double's range
  // read 0). Costs a full dW product per layer.
  bool keep_gradients = false;
};

struct Gradients {
  std::vector<Eigen::MatrixXd> dweight;  // layer l: (n_l, n_{l-1})
  std::vector<Eigen::VectorXd> dbias;    // layer l: (n_l)
  std::vector<Eigen::MatrixXd> dpreact;  // layer l: dL/dh^l, (n_l, batch)
  Eigen::MatrixXd dinput;                // dL/dx^0, (input width, batch)
};

struct PassResult {
  std::vector<ForwardStats> forward;
  std::vector<BackwardStats> backward;
  Magnitude output_grad_rms;  // rms of the probe
  Gradients gradients;        // empty unless keep_gradients
};

// Loss L = sum over the batch of <probe, y^L>, so dL/dy^L = probe (the cotangent mean-field theory
// assumes). Runs the forward pass, then the backward pass, gathering statistics on the way.
template <class Scalar>
PassResult forward_backward(const Network<Scalar>& net, const Mat<Scalar>& input,
                            const Mat<Scalar>& probe, const PassOptions& options, ThreadPool& pool);

// Rows of a layer handled by one task. Fixed by the shape alone, never by the thread count, so
// every product and every partial sum is the same whatever the number of threads.
inline constexpr int kRowsPerTask = 256;

}  // namespace gradscope
