// delta_orthogonal (Xiao et al. 2018): the kernel is an orthogonal matrix at its centre tap and 0
// elsewhere, and a deep tanh CNN so initialised keeps every singular value of its input-output
// Jacobian near 1, where the same CNN with Gaussian weights of the same variance does not.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <cmath>

#include "gradscope/core/network.hpp"
#include "gradscope/theory/apjn.hpp"

namespace gradscope {
namespace {

LayerItem conv_item(int channels, Init init) {
  LayerItem c;
  c.op.kind = OpKind::kConv;
  c.op.conv.channels = channels;
  c.op.conv.kernel_h = c.op.conv.kernel_w = 3;
  c.op.conv.pad_h = c.op.conv.pad_w = 1;
  c.op.conv.bias = false;
  c.op.conv.activation = default_spec(Activation::kTanh);
  c.op.conv.init.kind = init;
  return c;
}

RunSpec tanh_cnn(int depth, Init init) {
  RunSpec spec;
  spec.seed = 9;
  spec.precision = Precision::kFloat64;
  spec.input.image = {4, 5, 5};
  spec.input.width = spec.input.image.size();
  spec.input.batch = 1;
  // A small input: tanh's q* = 0 fixed point at sw2 = 1 is the critical point.
  spec.input.std = 0.01;
  spec.layers.assign(static_cast<std::size_t>(depth), conv_item(4, init));
  return spec;
}

TEST(DeltaOrthogonal, TheKernelIsAnOrthogonalMatrixAtItsCentreTapAndZeroElsewhere) {
  RunSpec spec = tanh_cnn(1, Init::kDeltaOrthogonal);
  spec.layers[0].op.conv.channels = 6;  // C_out > C_in: orthonormal columns
  spec.layers[0].op.conv.init.gain = 1.5;
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Eigen::MatrixXd& w = net.weight[0];  // (6, 4 * 3 * 3)
  ASSERT_EQ(w.rows(), 6);
  ASSERT_EQ(w.cols(), 36);
  Eigen::MatrixXd centre(6, 4);
  for (int ci = 0; ci < 4; ++ci) {
    for (int tap = 0; tap < 9; ++tap) {
      const Eigen::Index col = ci * 9 + tap;
      if (tap == 4) {
        centre.col(ci) = w.col(col);
      } else {
        EXPECT_EQ(w.col(col).norm(), 0.0) << ci << " " << tap;
      }
    }
  }
  // Q^T Q = gain^2 I to rounding (a Householder QR in double: 1e-14).
  EXPECT_LT((centre.transpose() * centre - 2.25 * Eigen::MatrixXd::Identity(4, 4)).norm(), 1e-13);
}

// The singular values of the input-output Jacobian of a depth-L tanh CNN at one example.
Eigen::VectorXd jacobian_singular_values(const RunSpec& spec) {
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Mat<double> x = make_input<double>(spec);
  const Eigen::Index n = x.rows();
  // Tangent k of the one example: the k-th unit vector, so the last op's tangents are J.
  const Mat<double> identity = Mat<double>::Identity(n, n);
  const std::vector<Eigen::MatrixXd> t = forward_tangents(spec, net, x, identity, pool);
  return Eigen::JacobiSVD<Eigen::MatrixXd>(t.back()).singularValues();
}

TEST(DeltaOrthogonal, ADeepTanhCnnKeepsItsJacobiansSingularValuesNearOne) {
  // 32 layers of 4 channels on a 5 x 5 image: 100 singular values. Delta-orthogonal maps each
  // position orthogonally and tanh'(h) ~ 1 near 0, so all stay within 10% of 1 (measured 0.980
  // to 0.99987); lecun_normal has the same weight variance, 1 / fan_in, but mixes neighbouring
  // positions at random: measured 3e-18 to 0.50, 17 decades.
  const Eigen::VectorXd delta = jacobian_singular_values(tanh_cnn(32, Init::kDeltaOrthogonal));
  EXPECT_GT(delta.minCoeff(), 0.9) << delta.minCoeff() << " " << delta.maxCoeff();
  EXPECT_LT(delta.maxCoeff(), 1.1);
  const Eigen::VectorXd gauss = jacobian_singular_values(tanh_cnn(32, Init::kLecunNormal));
  EXPECT_GT(gauss.maxCoeff() / gauss.minCoeff(), 1e6)
      << gauss.maxCoeff() << " / " << gauss.minCoeff();
}

}  // namespace
}  // namespace gradscope
