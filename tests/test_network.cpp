// The forward and backward passes: every gradient against central differences in double, exact
// cases far beyond the number formats, and bit-identical results for any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "gradscope/network.hpp"
#include "gradscope/rng.hpp"

namespace gradscope {
namespace {

RunSpec small_spec(ActivationSpec act, int depth, int width, int batch, int input_width = 5) {
  RunSpec spec;
  spec.seed = 11;
  spec.precision = Precision::kFloat64;
  spec.input.width = input_width;
  spec.input.batch = batch;
  spec.stack.depth = depth;
  spec.stack.layer.width = width;
  spec.stack.layer.activation = act;
  spec.stack.layer.init.kind = Init::kXavierNormal;
  spec.stack.layer.init.gain = 1.3;  // a little above 1 so that saturating kinds see their tails
  spec.stack.layer.bias.kind = BiasInit::kNormal;
  spec.stack.layer.bias.std = 0.3;
  return spec;
}

// An independent reference: plain loops over the scalar activation functions.
struct Perturbation {
  std::size_t layer;
  Eigen::Index row;
  Eigen::Index col;
  double eps;
};

Eigen::MatrixXd softmax_columns(const Eigen::MatrixXd& h) {
  Eigen::MatrixXd y(h.rows(), h.cols());
  for (Eigen::Index a = 0; a < h.cols(); ++a) {
    const double m = h.col(a).maxCoeff();
    double sum = 0.0;
    for (Eigen::Index i = 0; i < h.rows(); ++i) sum += std::exp(h(i, a) - m);
    for (Eigen::Index i = 0; i < h.rows(); ++i) y(i, a) = std::exp(h(i, a) - m) / sum;
  }
  return y;
}

double reference_loss(const Network<double>& net, const Eigen::MatrixXd& x0,
                      const Eigen::MatrixXd& probe, std::optional<Perturbation> p = {}) {
  Eigen::MatrixXd x = x0;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    Eigen::MatrixXd h = net.weight[l] * x;
    h.colwise() += net.bias[l];
    if (p && p->layer == l) h(p->row, p->col) += p->eps;
    const ActivationSpec& act = net.layers[l].activation;
    if (act.kind == Activation::kSoftmax) {
      x = softmax_columns(h);
    } else {
      x = h.unaryExpr([&](double v) { return activation_value(act, v); });
    }
  }
  return (probe.array() * x.array()).sum();
}

// Fourth-order central difference with step eps: error O(eps^4 f^(5)) + O(1e-16 |f| / eps).
template <class F>
double central(F f, double eps) {
  return (8 * (f(eps) - f(-eps)) - (f(2 * eps) - f(-2 * eps))) / (12 * eps);
}

// |a - b| relative to the size of both, stable near zero.
double rel_err(double a, double b, double floor = 1e-9) {
  return std::abs(a - b) / std::max(std::abs(a) + std::abs(b), floor);
}

// For entries of one gradient: the central difference's rounding error is absolute (about
// 1e-16 |L| / eps), so an entry far smaller than the largest one is judged against that scale.
double entry_err(double a, double b, double largest) { return rel_err(a, b, 1e-3 * largest); }

void check_gradients(const RunSpec& spec) {
  SCOPED_TRACE(std::string(activation_info(spec.stack.layer.activation.kind).name));
  ThreadPool pool(1);
  Network<double> net = build_network<double>(spec, pool);
  const Eigen::MatrixXd x = make_input<double>(spec);
  const Eigen::MatrixXd g = make_probe<double>(spec, net.layers.back().width);
  PassOptions opt;
  opt.keep_gradients = true;
  const PassResult r = forward_backward(net, x, g, opt, pool);
  const double eps = 1e-4;
  // Step 1e-4, fourth order: truncation ~1e-16 |f^(5)|, rounding ~1e-16 |L| / 1e-4 = 1e-12 |L|;
  // the loss sums terms of both signs, which can amplify rounding 100-fold: 1e-7 relative. (A
  // pre-activation within 2e-4 of a kink would show as
  // an error of order 1, not a near miss; these seeds have none.)
  const double tol = 1e-7;

  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l + 1));
    // Weights.
    Eigen::MatrixXd fd_w(net.weight[l].rows(), net.weight[l].cols());
    for (Eigen::Index i = 0; i < fd_w.rows(); ++i) {
      for (Eigen::Index j = 0; j < fd_w.cols(); ++j) {
        fd_w(i, j) = central(
            [&](double e) {
              Network<double> n2 = net;
              n2.weight[l](i, j) += e;
              return reference_loss(n2, x, g);
            },
            eps);
      }
    }
    for (Eigen::Index i = 0; i < fd_w.rows(); ++i) {
      for (Eigen::Index j = 0; j < fd_w.cols(); ++j) {
        EXPECT_LT(entry_err(r.gradients.dweight[l](i, j), fd_w(i, j), fd_w.cwiseAbs().maxCoeff()),
                  tol);
      }
    }
    // Biases.
    Eigen::VectorXd fd_b(net.bias[l].size());
    for (Eigen::Index i = 0; i < fd_b.size(); ++i) {
      fd_b[i] = central(
          [&](double e) {
            Network<double> n2 = net;
            n2.bias[l][i] += e;
            return reference_loss(n2, x, g);
          },
          eps);
    }
    for (Eigen::Index i = 0; i < fd_b.size(); ++i) {
      EXPECT_LT(entry_err(r.gradients.dbias[l][i], fd_b[i], fd_b.cwiseAbs().maxCoeff()), tol) << i;
    }
    // Pre-activations.
    Eigen::MatrixXd fd_h(net.weight[l].rows(), x.cols());
    for (Eigen::Index i = 0; i < fd_h.rows(); ++i) {
      for (Eigen::Index a = 0; a < fd_h.cols(); ++a) {
        fd_h(i, a) = central(
            [&](double e) {
              return reference_loss(net, x, g, Perturbation{l, i, a, e});
            },
            eps);
      }
    }
    for (Eigen::Index i = 0; i < fd_h.rows(); ++i) {
      for (Eigen::Index a = 0; a < fd_h.cols(); ++a) {
        EXPECT_LT(entry_err(r.gradients.dpreact[l](i, a), fd_h(i, a), fd_h.cwiseAbs().maxCoeff()),
                  tol);
      }
    }
    // The reported statistics are the norms of these gradients.
    const BackwardStats& bs = r.backward[l];
    EXPECT_LT(rel_err(bs.grad_weight_norm.value, fd_w.norm()), tol);
    EXPECT_LT(rel_err(bs.grad_bias_norm.value, fd_b.norm()), tol);
    const double rms_h = std::sqrt(fd_h.squaredNorm() / static_cast<double>(fd_h.size()));
    EXPECT_LT(rel_err(bs.grad_preact_rms.value, rms_h), tol);
    EXPECT_NEAR(bs.grad_preact_rms.log10, std::log10(rms_h), 1e-6);
    EXPECT_LT(rel_err(bs.weight_norm, net.weight[l].norm()), 1e-15);
  }
  // The input.
  Eigen::MatrixXd fd_x(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (Eigen::Index a = 0; a < x.cols(); ++a) {
      fd_x(i, a) = central(
          [&](double e) {
            Eigen::MatrixXd x2 = x;
            x2(i, a) += e;
            return reference_loss(net, x2, g);
          },
          eps);
    }
  }
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (Eigen::Index a = 0; a < x.cols(); ++a) {
      EXPECT_LT(entry_err(r.gradients.dinput(i, a), fd_x(i, a), fd_x.cwiseAbs().maxCoeff()), tol);
    }
  }
}

std::vector<ActivationSpec> hidden_activations() {
  std::vector<ActivationSpec> out;
  for (const ActivationInfo& info : activation_table()) {
    if (info.output_only) continue;
    out.push_back(default_spec(info.kind));
  }
  out.push_back({Activation::kLeakyRelu, 0.2});
  out.push_back({Activation::kElu, 0.5});
  return out;
}

TEST(NetworkGradients, EveryActivationMatchesCentralDifferencesWithGramNorms) {
  // batch 3 < widths: the weight-gradient norm comes from the Gram matrices.
  for (const ActivationSpec& act : hidden_activations()) check_gradients(small_spec(act, 3, 4, 3));
}

TEST(NetworkGradients, EveryActivationMatchesCentralDifferencesWithExplicitWeightGradient) {
  // batch 9 > widths: the weight gradient is formed explicitly.
  for (const ActivationSpec& act : hidden_activations()) check_gradients(small_spec(act, 2, 4, 9));
}

TEST(NetworkGradients, SoftmaxOutputLayerMatchesCentralDifferences) {
  RunSpec spec = small_spec({Activation::kTanh, 0}, 2, 4, 3);
  LayerSpec out;
  out.width = 6;
  out.activation = {Activation::kSoftmax, 0};
  out.init.kind = Init::kXavierNormal;
  spec.output = out;
  check_gradients(spec);
}

TEST(NetworkGradients, UnequalWidthsMatchCentralDifferences) {
  RunSpec spec = small_spec({Activation::kGelu, 0}, 2, 7, 4, 3);
  LayerSpec out;
  out.width = 2;
  out.activation = {Activation::kSigmoid, 0};
  spec.output = out;
  check_gradients(spec);
}

RunSpec linear_orthogonal(double gain, int depth, Precision p) {
  RunSpec spec;
  spec.seed = 3;
  spec.precision = p;
  spec.input.width = 16;
  spec.input.batch = 4;
  spec.stack.depth = depth;
  spec.stack.layer.width = 16;
  spec.stack.layer.activation = {Activation::kLinear, 0};
  spec.stack.layer.init.kind = Init::kOrthogonal;
  spec.stack.layer.init.gain = gain;
  spec.stack.layer.bias.kind = BiasInit::kZeros;
  return spec;
}

template <class Scalar>
PassResult run_pass(const RunSpec& spec, int threads) {
  ThreadPool pool(threads);
  const Network<Scalar> net = build_network<Scalar>(spec, pool);
  PassOptions opt;
  opt.saturation_threshold = spec.stats.saturation_threshold;
  return forward_backward(net, make_input<Scalar>(spec),
                          make_probe<Scalar>(spec, net.layers.back().width), opt, pool);
}

TEST(NetworkExact, LinearOrthogonalStackScalesGradientByGainPerLayerFarBelowDoubleRange) {
  // Each W = c Q with Q orthogonal, so dL/dh^{l-1} = c Q^T dL/dh^l keeps its norm times c, and the
  // first-to-last ratio is c^(L-1) = 0.5^1999 ~ 1e-602, far below double's 1e-308.
  const int depth = 2000;
  const double gain = 0.5;
  const double expected = (depth - 1) * std::log10(gain);
  {
    const PassResult r = run_pass<double>(linear_orthogonal(gain, depth, Precision::kFloat64), 1);
    const double ratio =
        r.backward.front().grad_preact_rms.log10 - r.backward.back().grad_preact_rms.log10;
    // Double: each layer's orthogonality error ~1e-15, summed over 2000 layers in log10 terms.
    EXPECT_NEAR(ratio, expected, 1e-9);
    EXPECT_EQ(r.backward.front().grad_preact_rms.value, 0.0);  // below double: carried by log10
    EXPECT_TRUE(std::isfinite(r.backward.front().grad_preact_rms.log10));
  }
  {
    const PassResult r = run_pass<float>(linear_orthogonal(gain, depth, Precision::kFloat32), 2);
    const double ratio =
        r.backward.front().grad_preact_rms.log10 - r.backward.back().grad_preact_rms.log10;
    // Float: rounding the orthogonal matrices to float moves each singular value by ~1e-7; over
    // 2000 layers the log10 ratio may drift by ~2000 * 1e-7 / ln(10) ~ 1e-4.
    EXPECT_NEAR(ratio, expected, 1e-3);
    for (std::size_t l = 0; l + 1 < r.backward.size(); ++l) {
      const BackwardStats& b = r.backward[l];
      EXPECT_EQ(b.nonfinite, 0);
      EXPECT_TRUE(std::isfinite(b.grad_preact_rms.log10));
      EXPECT_NEAR(b.gain.log10, std::log10(gain), 1e-5);  // per-layer float rounding, see above
    }
    // The last layer's gain is over the probe itself: a linear output passes it unchanged.
    EXPECT_NEAR(r.backward.back().gain.log10, 0.0, 1e-12);
  }
}

TEST(NetworkExact, ZeroWeightsWithNegativeBiasKillEveryReluUnit) {
  RunSpec spec = small_spec({Activation::kRelu, 0}, 4, 20, 8);
  spec.stack.layer.init.kind = Init::kZeros;
  spec.stack.layer.bias.kind = BiasInit::kConstant;
  spec.stack.layer.bias.value = -0.5;
  const PassResult r = run_pass<double>(spec, 1);
  for (const ForwardStats& f : r.forward) {
    EXPECT_EQ(f.dead_units, 20);
    EXPECT_DOUBLE_EQ(f.dead_fraction, 1.0);
    EXPECT_DOUBLE_EQ(f.zero_fraction, 1.0);
    EXPECT_DOUBLE_EQ(f.preact.mean, -0.5);
    EXPECT_DOUBLE_EQ(f.preact.std, 0.0);
  }
  for (const BackwardStats& b : r.backward) EXPECT_EQ(b.grad_weight_norm.value, 0.0);
}

TEST(NetworkStatistics, ReluWithHeInitKeepsPreactivationSecondMomentAcrossDepth) {
  // q^l = sw2 E[relu(h)^2] = 2 * q^{l-1} / 2: constant at q^1 = 2 E[x^2] = 2 for N(0,1) inputs.
  RunSpec spec;
  spec.seed = 5;
  spec.precision = Precision::kFloat64;
  spec.input.width = 512;
  spec.input.batch = 128;
  spec.stack.depth = 20;
  spec.stack.layer.width = 512;
  spec.stack.layer.activation = {Activation::kRelu, 0};
  spec.stack.layer.init.kind = Init::kHeNormal;
  const PassResult r = run_pass<double>(spec, 2);
  for (std::size_t l = 0; l < r.forward.size(); ++l) {
    const double q = r.forward[l].preact.rms * r.forward[l].preact.rms;
    // Finite width: log q drifts like a random walk with variance ~ 5 sum(1/n) (Hanin 2018),
    // sqrt(5 * 20 / 512) ~ 0.44 at most here; at one seed we allow a factor 1.6 either way.
    EXPECT_LT(std::abs(std::log(q / 2.0)), std::log(1.6)) << "layer " << l + 1 << " q=" << q;
  }
}

TEST(NetworkStatistics, DeepSigmoidGradientIsExactInFloat32FarBelowItsRange) {
  // 200 sigmoid layers shrink the gradient to ~1e-120 at the first layer: below float32's 1e-38.
  // Float32 and float64 runs of the same (rounded) weights must agree on every log10 magnitude.
  RunSpec spec;
  spec.seed = 9;
  spec.input.width = 64;
  spec.input.batch = 32;
  spec.stack.depth = 200;
  spec.stack.layer.width = 64;
  spec.stack.layer.activation = {Activation::kSigmoid, 0};
  spec.stack.layer.init.kind = Init::kXavierNormal;
  spec.precision = Precision::kFloat32;
  const PassResult f = run_pass<float>(spec, 2);
  spec.precision = Precision::kFloat64;
  const PassResult d = run_pass<double>(spec, 2);
  EXPECT_LT(d.backward.front().grad_preact_rms.log10, -60.0);
  for (std::size_t l = 0; l < f.backward.size(); ++l) {
    // Float rounding of weights and activations: ~1e-7 relative per layer, not compounding much
    // in an ordered (contracting) network; 1e-3 in log10 is a 0.2% difference.
    EXPECT_NEAR(f.backward[l].grad_preact_rms.log10, d.backward[l].grad_preact_rms.log10, 1e-3);
    EXPECT_NEAR(f.backward[l].grad_weight_norm.log10, d.backward[l].grad_weight_norm.log10, 1e-3);
    EXPECT_EQ(f.backward[l].nonfinite, 0);
  }
}

TEST(NetworkStatistics, ForwardOverflowIsCountedAndLaterLayersStillReported) {
  RunSpec spec;
  spec.seed = 1;
  spec.precision = Precision::kFloat32;
  spec.input.width = 32;
  spec.input.batch = 8;
  spec.stack.depth = 40;
  spec.stack.layer.width = 32;
  spec.stack.layer.activation = {Activation::kLinear, 0};
  spec.stack.layer.init.kind = Init::kNormal;
  spec.stack.layer.init.std =
      10.0;  // each layer multiplies the signal by ~57: overflow by layer ~22
  const PassResult r = run_pass<float>(spec, 2);
  ASSERT_EQ(r.forward.size(), 40u);
  EXPECT_EQ(r.forward.front().nonfinite, 0);
  EXPECT_GT(r.forward.back().nonfinite, 0);
  EXPECT_EQ(r.forward.back().act.finite + r.forward.back().act.nonfinite, 32 * 8);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_identical(const MomentStats& a, const MomentStats& b) {
  EXPECT_TRUE(same_bits(a.mean, b.mean));
  EXPECT_TRUE(same_bits(a.std, b.std));
  EXPECT_TRUE(same_bits(a.rms, b.rms));
  EXPECT_TRUE(same_bits(a.min, b.min));
  EXPECT_TRUE(same_bits(a.max, b.max));
}

TEST(NetworkDeterminism, ResultsAreBitIdenticalForOneAndThreeThreads) {
  // Widths above kRowsPerTask so that layers are cut into several tasks.
  for (Precision p : {Precision::kFloat32, Precision::kFloat64}) {
    RunSpec spec = small_spec({Activation::kGelu, 0}, 6, 300, 40, 260);
    spec.precision = p;
    const PassResult a =
        p == Precision::kFloat32 ? run_pass<float>(spec, 1) : run_pass<double>(spec, 1);
    const PassResult b =
        p == Precision::kFloat32 ? run_pass<float>(spec, 3) : run_pass<double>(spec, 3);
    for (std::size_t l = 0; l < a.forward.size(); ++l) {
      expect_identical(a.forward[l].preact, b.forward[l].preact);
      expect_identical(a.forward[l].act, b.forward[l].act);
      EXPECT_EQ(a.forward[l].dead_units, b.forward[l].dead_units);
      EXPECT_TRUE(same_bits(a.forward[l].saturated_fraction, b.forward[l].saturated_fraction));
      EXPECT_TRUE(
          same_bits(a.backward[l].grad_preact_rms.log10, b.backward[l].grad_preact_rms.log10));
      EXPECT_TRUE(
          same_bits(a.backward[l].grad_weight_norm.log10, b.backward[l].grad_weight_norm.log10));
      EXPECT_TRUE(
          same_bits(a.backward[l].grad_bias_norm.log10, b.backward[l].grad_bias_norm.log10));
    }
  }
}

TEST(NetworkBuild, LayerWeightsDependOnlyOnSeedIndexAndShape) {
  RunSpec a = small_spec({Activation::kTanh, 0}, 3, 6, 2);
  RunSpec b = a;
  b.stack.depth = 5;  // more layers after: the first three are unchanged
  ThreadPool pool(2);
  const Network<double> na = build_network<double>(a, pool);
  const Network<double> nb = build_network<double>(b, pool);
  for (std::size_t l = 0; l < 3; ++l) {
    EXPECT_EQ(na.weight[l], nb.weight[l]);
    EXPECT_EQ(na.bias[l], nb.bias[l]);
  }
  b.seed = a.seed + 1;
  const Network<double> nc = build_network<double>(b, pool);
  EXPECT_NE(na.weight[0], nc.weight[0]);
}

TEST(NetworkBuild, Float32WeightsAreTheFloat64WeightsRounded) {
  RunSpec spec = small_spec({Activation::kRelu, 0}, 2, 6, 2);
  ThreadPool pool(1);
  const Network<double> d = build_network<double>(spec, pool);
  const Network<float> f = build_network<float>(spec, pool);
  EXPECT_EQ(f.weight[1], d.weight[1].cast<float>());
}

}  // namespace
}  // namespace gradscope
