// The forward and backward passes: every gradient against central differences in double, exact
// cases far beyond the number formats, and bit-identical results for any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "gradscope/core/loss.hpp"
#include "gradscope/core/network.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/stats.hpp"

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

// An independent reference: plain loops over the scalar functions and textbook formulas.
struct Perturbation {
  std::size_t op;
  Eigen::Index row;
  Eigen::Index col;
  double eps;
};

// A norm, activation or dropout op reports dL/d(its input). When it opens a residual branch its
// input is the block's input, which the skip reads too: the total is perturbed where the block
// starts (the first begin of the run of begins before the op). npos for any other op.
constexpr std::size_t kNoBegin = static_cast<std::size_t>(-1);
std::size_t branch_input_begin(const std::vector<OpSpec>& ops, std::size_t o) {
  const OpKind k = ops[o].kind;
  if (k != OpKind::kNorm && k != OpKind::kActivation && k != OpKind::kDropout) return kNoBegin;
  if (o == 0 || ops[o - 1].kind != OpKind::kResidualBegin) return kNoBegin;
  std::size_t b = o - 1;
  while (b > 0 && ops[b - 1].kind == OpKind::kResidualBegin) --b;
  return b;
}

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

// Normalises each column (per_example) or each row of x: (x - mean) / sqrt(var + eps), or
// x / sqrt(mean square + eps) for rms_norm.
Eigen::MatrixXd reference_norm(const NormSpec& n, const Eigen::MatrixXd& x) {
  const bool rows = n.kind == NormKind::kBatchNorm;
  Eigen::MatrixXd t = rows ? Eigen::MatrixXd(x.transpose()) : x;
  for (Eigen::Index a = 0; a < t.cols(); ++a) {
    const double mean = n.kind == NormKind::kRmsNorm ? 0.0 : t.col(a).mean();
    const double var = (t.col(a).array() - mean).square().mean();
    t.col(a) = (t.col(a).array() - mean) / std::sqrt(var + n.eps);
  }
  return rows ? Eigen::MatrixXd(t.transpose()) : t;
}

double reference_loss_value(const LossSpec& loss, const Eigen::MatrixXd& y,
                            const Eigen::MatrixXd& probe, const LossTargets& t) {
  const double batch = static_cast<double>(y.cols());
  switch (loss.kind) {
    case LossKind::kProbe:
      return (probe.array() * y.array()).sum();
    case LossKind::kMse:
      return 0.5 * (y - t.values).squaredNorm() / batch;
    case LossKind::kSoftmaxCrossEntropy: {
      double sum = 0.0;
      for (Eigen::Index a = 0; a < y.cols(); ++a) {
        sum -= std::log(softmax_columns(y.col(a))(t.labels[static_cast<std::size_t>(a)], 0));
      }
      return sum / batch;
    }
    case LossKind::kSigmoidBce: {
      double sum = 0.0;
      for (Eigen::Index a = 0; a < y.cols(); ++a) {
        for (Eigen::Index i = 0; i < y.rows(); ++i) {
          const double s = 1.0 / (1.0 + std::exp(-y(i, a)));
          const double target = t.values(i, a);
          sum -= target * std::log(s) + (1 - target) * std::log(1 - s);
        }
      }
      return sum / batch;
    }
  }
  return 0.0;
}

struct Reference {
  const Network<double>& net;
  std::uint64_t seed;
  LossSpec loss;
  const Eigen::MatrixXd& probe;
  const LossTargets& targets;

  double operator()(const Eigen::MatrixXd& x0, std::optional<Perturbation> p = {},
                    const Network<double>* other = nullptr) const {
    const Network<double>& n = other ? *other : net;
    Eigen::MatrixXd x = x0;
    std::vector<Eigen::MatrixXd> skips;
    for (std::size_t l = 0; l < n.ops.size(); ++l) {
      const OpSpec& op = n.ops[l];
      const bool at_block_input = p && branch_input_begin(n.ops, p->op) != kNoBegin;
      auto perturb = [&](Eigen::MatrixXd& m) {
        if (p && p->op == l && !at_block_input) m(p->row, p->col) += p->eps;
      };
      switch (op.kind) {
        case OpKind::kDense:
        case OpKind::kActivation: {
          Eigen::MatrixXd h = x;
          if (op.kind == OpKind::kDense) {
            h = n.weight[l] * x;
            h.colwise() += n.bias[l];
          }
          perturb(h);
          const ActivationSpec& act =
              op.kind == OpKind::kDense ? op.dense.activation : op.activation;
          x = act.kind == Activation::kSoftmax ? softmax_columns(h)
                                               : Eigen::MatrixXd(h.unaryExpr([&](double v) {
                                                   return activation_value(act, v);
                                                 }));
          break;
        }
        case OpKind::kAttention:  // the per-op kernels are checked in test_ops
        case OpKind::kGlu:
        case OpKind::kConv:
        case OpKind::kPool:
        case OpKind::kFlatten:
          ADD_FAILURE() << "this reference covers dense-family networks only";
          break;
        case OpKind::kNorm:
          perturb(x);
          x = reference_norm(op.norm, x);
          break;
        case OpKind::kDropout: {
          perturb(x);
          const std::uint64_t key = stream_key(seed, l + 1, StreamPurpose::kDropout);
          for (Eigen::Index a = 0; a < x.cols(); ++a) {
            for (Eigen::Index i = 0; i < x.rows(); ++i) {
              const auto k = static_cast<std::uint64_t>(a * x.rows() + i);
              x(i, a) = uniform01(key, k) >= op.dropout ? x(i, a) / (1.0 - op.dropout) : 0.0;
            }
          }
          break;
        }
        case OpKind::kResidualBegin:
          if (at_block_input && branch_input_begin(n.ops, p->op) == l) x(p->row, p->col) += p->eps;
          skips.push_back(x);
          break;
        case OpKind::kResidualEnd: {
          perturb(x);
          const Eigen::MatrixXd skip =
              op.residual.projection ? Eigen::MatrixXd(n.weight[l] * skips.back()) : skips.back();
          skips.pop_back();
          x = skip + op.residual.scale * x;
          break;
        }
      }
    }
    return reference_loss_value(loss, x, probe, targets);
  }
};

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
// 1e-16 sum|terms of L| / eps ~ 1e-11 here), so an entry far smaller than the largest one, or
// than 1e-3 (a gradient that is zero in exact arithmetic, like a bias before batch norm), is
// judged against that scale: 1e-7 of 1e-3 is 1e-10, above the rounding noise.
constexpr double kAbsFloor = 1e-3;
double entry_err(double a, double b, double largest) {
  return rel_err(a, b, std::max(1e-3 * largest, kAbsFloor));
}

void expect_matrix_near(const Eigen::MatrixXd& got, const Eigen::MatrixXd& fd, double tol) {
  ASSERT_EQ(got.rows(), fd.rows());
  ASSERT_EQ(got.cols(), fd.cols());
  const double largest = fd.cwiseAbs().maxCoeff();
  for (Eigen::Index i = 0; i < fd.rows(); ++i) {
    for (Eigen::Index j = 0; j < fd.cols(); ++j) {
      EXPECT_LT(entry_err(got(i, j), fd(i, j), largest), tol) << "(" << i << ", " << j << ")";
    }
  }
}

void check_gradients(const RunSpec& spec) {
  ThreadPool pool(1);
  Network<double> net = build_network<double>(spec, pool);
  const Eigen::MatrixXd x = make_input<double>(spec);
  const Eigen::MatrixXd g = make_probe<double>(spec, net.widths.back());
  const LossTargets targets =
      spec.loss.kind == LossKind::kProbe
          ? LossTargets{}
          : make_targets(spec.loss, spec.seed, net.widths.back(), spec.input.batch);
  PassOptions opt;
  opt.keep_gradients = true;
  opt.seed = spec.seed;
  opt.loss = spec.loss;
  opt.targets = &targets;
  const PassResult r = forward_backward(net, x, g, opt, pool);
  const Reference loss{net, spec.seed, spec.loss, g, targets};
  EXPECT_LT(rel_err(r.loss, loss(x)), 1e-12);  // the same sum, accumulated in another order
  const double eps = 2e-5;
  // Step 2e-5, fourth order: truncation ~1e-19 |f^(5)| (batch norm over 4 examples curves
  // sharply: 1e-4 was not enough there), rounding ~1e-16 |L| / 2e-5 = 5e-12 |L|;
  // the loss sums terms of both signs, which can amplify rounding 100-fold: 1e-7 relative. (A
  // pre-activation within 4e-5 of a kink would show as an error of order 1, not a near miss;
  // these seeds have none.)
  const double tol = 1e-7;

  for (std::size_t l = 0; l < net.ops.size(); ++l) {
    const OpSpec& op = net.ops[l];
    if (op.kind == OpKind::kResidualBegin) continue;
    SCOPED_TRACE("op " + std::to_string(l + 1) + " (" + std::string(op_kind_name(op.kind)) + ")");
    const BackwardStats& bs = r.backward[l];
    if (op.kind == OpKind::kDense) {
      Eigen::MatrixXd fd_w(net.weight[l].rows(), net.weight[l].cols());
      for (Eigen::Index i = 0; i < fd_w.rows(); ++i) {
        for (Eigen::Index j = 0; j < fd_w.cols(); ++j) {
          fd_w(i, j) = central(
              [&](double e) {
                Network<double> n2 = net;
                n2.weight[l](i, j) += e;
                return loss(x, {}, &n2);
              },
              eps);
        }
      }
      expect_matrix_near(r.gradients.dweight[l], fd_w, tol);
      Eigen::VectorXd fd_b(net.bias[l].size());
      for (Eigen::Index i = 0; i < fd_b.size(); ++i) {
        fd_b[i] = central(
            [&](double e) {
              Network<double> n2 = net;
              n2.bias[l][i] += e;
              return loss(x, {}, &n2);
            },
            eps);
      }
      expect_matrix_near(r.gradients.dbias[l], fd_b, tol);
      // The reported statistics are the norms of these gradients.
      EXPECT_LT(rel_err(bs.grad_weight_norm.value, fd_w.norm(), kAbsFloor), tol);
      EXPECT_LT(rel_err(bs.grad_bias_norm.value, fd_b.norm(), kAbsFloor), tol);
      EXPECT_LT(rel_err(bs.weight_norm, net.weight[l].norm()), 1e-15);
    }
    // The gradient at the op's pre-activation (dense: h; others: their input; residual: F).
    const Eigen::Index rows = op.kind == OpKind::kDense || op.kind == OpKind::kActivation
                                  ? net.widths[l]
                                  : (l == 0 ? x.rows() : r.gradients.dpreact[l].rows());
    Eigen::MatrixXd fd_h(rows, x.cols());
    for (Eigen::Index i = 0; i < fd_h.rows(); ++i) {
      for (Eigen::Index a = 0; a < fd_h.cols(); ++a) {
        fd_h(i, a) = central([&](double e) { return loss(x, Perturbation{l, i, a, e}); }, eps);
      }
    }
    expect_matrix_near(r.gradients.dpreact[l], fd_h, tol);
    const double rms_h = std::sqrt(fd_h.squaredNorm() / static_cast<double>(fd_h.size()));
    EXPECT_LT(rel_err(bs.grad_preact_rms.value, rms_h, kAbsFloor), tol);
    if (rms_h > kAbsFloor) {
      EXPECT_NEAR(bs.grad_preact_rms.log10, std::log10(rms_h), 1e-6);
    }
  }
  // The input.
  Eigen::MatrixXd fd_x(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (Eigen::Index a = 0; a < x.cols(); ++a) {
      fd_x(i, a) = central(
          [&](double e) {
            Eigen::MatrixXd x2 = x;
            x2(i, a) += e;
            return loss(x2);
          },
          eps);
    }
  }
  expect_matrix_near(r.gradients.dinput, fd_x, tol);
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
  for (const ActivationSpec& act : hidden_activations()) {
    SCOPED_TRACE(std::string(activation_info(act.kind).name));
    check_gradients(small_spec(act, 3, 4, 3));
  }
}

TEST(NetworkGradients, EveryActivationMatchesCentralDifferencesWithExplicitWeightGradient) {
  // batch 9 > widths: the weight gradient is formed explicitly.
  for (const ActivationSpec& act : hidden_activations()) {
    SCOPED_TRACE(std::string(activation_info(act.kind).name));
    check_gradients(small_spec(act, 2, 4, 9));
  }
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

// ---- Architectures from "layers": norms, dropout, residual blocks, losses.

LayerItem dense(int width, ActivationSpec act, Init init = Init::kXavierNormal) {
  LayerItem item;
  item.op.kind = OpKind::kDense;
  item.op.dense.width = width;
  item.op.dense.activation = act;
  item.op.dense.init.kind = init;
  item.op.dense.init.gain = 1.2;
  item.op.dense.bias.kind = BiasInit::kNormal;
  item.op.dense.bias.std = 0.2;
  return item;
}

LayerItem norm(NormKind kind) {
  LayerItem item;
  item.op.kind = OpKind::kNorm;
  item.op.norm.kind = kind;
  return item;
}

LayerItem activation(ActivationSpec act) {
  LayerItem item;
  item.op.kind = OpKind::kActivation;
  item.op.activation = act;
  return item;
}

LayerItem dropout(double p) {
  LayerItem item;
  item.op.kind = OpKind::kDropout;
  item.op.dropout = p;
  return item;
}

LayerItem residual(std::vector<LayerItem> block, int repeat, double scale, bool projection = false,
                   std::optional<NormSpec> post_norm = {}) {
  LayerItem item;
  item.block = std::move(block);
  item.repeat = repeat;
  ResidualSpec r;
  r.scale = scale;
  r.projection = projection;
  item.residual = r;
  item.post_norm = post_norm;
  return item;
}

RunSpec layers_spec(std::vector<LayerItem> layers, int input_width = 5, int batch = 4) {
  RunSpec spec;
  spec.seed = 13;
  spec.precision = Precision::kFloat64;
  spec.input.width = input_width;
  spec.input.batch = batch;
  spec.layers = std::move(layers);
  return spec;
}

const ActivationSpec kTanh{Activation::kTanh, 0};
const ActivationSpec kLinear{Activation::kLinear, 0};
const ActivationSpec kRelu{Activation::kRelu, 0};
const ActivationSpec kGelu{Activation::kGelu, 0};

TEST(ArchitectureGradients, EachNormBeforeAndAfterTheActivationMatchesCentralDifferences) {
  for (NormKind k : {NormKind::kBatchNorm, NormKind::kLayerNorm, NormKind::kRmsNorm}) {
    SCOPED_TRACE(std::string(norm_name(k)));
    // Before: dense (linear) -> norm -> activation; after: dense (gelu) -> norm.
    check_gradients(layers_spec({dense(6, kLinear), norm(k), activation(kTanh), dense(6, kGelu),
                                 norm(k), dense(3, kTanh)}));
  }
}

TEST(ArchitectureGradients, DropoutMatchesCentralDifferences) {
  check_gradients(layers_spec(
      {dense(8, kRelu), dropout(0.3), dense(4, kTanh), dropout(0.5), dense(3, kLinear)}));
}

TEST(ArchitectureGradients, PreNormResidualBlockWithEveryActivationMatchesCentralDifferences) {
  for (const ActivationSpec& act : hidden_activations()) {
    SCOPED_TRACE(std::string(activation_info(act.kind).name));
    check_gradients(layers_spec(
        {dense(6, act),
         residual({norm(NormKind::kLayerNorm), dense(7, act), dense(6, kLinear)}, 2, 0.7),
         dense(3, kLinear)}));
  }
}

TEST(ArchitectureGradients, ProjectedPostNormAndNestedResidualsMatchCentralDifferences) {
  // A block that changes the width (6 -> 4) through a fixed projection, followed by a norm of
  // the sum; and a residual block nested in another, with batch norm inside.
  check_gradients(layers_spec(
      {dense(6, kTanh),
       residual({dense(5, kGelu), dense(4, kLinear)}, 1, 0.5, true,
                NormSpec{NormKind::kLayerNorm, 1e-5}),
       residual({dense(4, kRelu), residual({norm(NormKind::kBatchNorm), dense(4, kTanh)}, 2, 1.0)},
                1, 0.9),
       dense(2, kLinear)}));
}

TEST(ArchitectureGradients, EveryLossMatchesCentralDifferences) {
  for (LossKind kind : {LossKind::kMse, LossKind::kSoftmaxCrossEntropy, LossKind::kSigmoidBce}) {
    SCOPED_TRACE(std::string(loss_name(kind)));
    RunSpec spec = layers_spec({dense(6, kTanh), dense(5, kGelu), dense(4, kLinear)});
    spec.loss.kind = kind;
    spec.loss.classes = kind == LossKind::kSoftmaxCrossEntropy ? 4 : 0;
    check_gradients(spec);
  }
}

TEST(ArchitectureExact, ResidualWithScaleZeroIsTheIdentityAndPassesGradientsUnchanged) {
  RunSpec spec = layers_spec({residual({dense(5, kTanh), dense(5, kGelu)}, 3, 0.0)}, 5, 6);
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Eigen::MatrixXd x = make_input<double>(spec);
  const Eigen::MatrixXd g = make_probe<double>(spec, 5);
  PassOptions opt;
  opt.keep_gradients = true;
  const PassResult r = forward_backward(net, x, g, opt, pool);
  EXPECT_EQ(r.gradients.dinput, g);  // exactly: the skip path adds the branch's exact zero
  EXPECT_DOUBLE_EQ(r.loss, (g.array() * x.array()).sum());
  for (std::size_t l = 0; l < net.ops.size(); ++l) {
    if (net.ops[l].kind == OpKind::kDense) {
      EXPECT_EQ(r.backward[l].grad_weight_norm.value, 0.0);
    }
  }
}

TEST(ArchitectureExact, NormOutputsHaveMeanZeroAndUnitVariance) {
  // A shifted, scaled input: the norm must still produce mean 0 and variance v / (v + eps) ~ 1.
  for (NormKind k : {NormKind::kBatchNorm, NormKind::kLayerNorm}) {
    RunSpec spec = layers_spec({dense(64, kRelu), norm(k)}, 32, 128);
    spec.input.mean = 3.0;
    spec.input.std = 5.0;
    ThreadPool pool(2);
    const PassResult r = [&] {
      const Network<double> net = build_network<double>(spec, pool);
      return forward_backward(net, make_input<double>(spec), make_probe<double>(spec, 64),
                              PassOptions{}, pool);
    }();
    const MomentStats& y = r.forward[1].act;
    // Over all entries: mean exactly 0 up to rounding; variance 1 - eps / (v + eps) per group.
    EXPECT_NEAR(y.mean, 0.0, 1e-12);
    EXPECT_NEAR(y.std, 1.0, 1e-4);
  }
}

template <class Scalar>
PassResult run_pass(const RunSpec& spec, int threads);

TEST(ArchitectureStatistics, BatchNormStopsTheSignalShrinkingInADeepReluXavierStack) {
  // ReLU with Xavier (sw2 = 1) halves the second moment per layer: after 30 layers the signal is
  // 2^-15 of its start. Batch norm before each ReLU resets the scale every layer.
  RunSpec plain;
  plain.seed = 2;
  plain.input.width = 256;
  plain.input.batch = 128;
  plain.stack.depth = 30;
  plain.stack.layer.width = 256;
  plain.stack.layer.activation = kRelu;
  plain.stack.layer.init.kind = Init::kXavierNormal;
  const PassResult p = run_pass<float>(plain, 2);
  const double plain_ratio = p.forward.back().act.rms / p.forward.front().act.rms;
  EXPECT_LT(plain_ratio, 1e-3);  // 2^-14.5 ~ 4e-5 expected; finite width moves it little

  std::vector<LayerItem> items;
  LayerItem block;
  block.block = {dense(256, kLinear, Init::kXavierNormal), norm(NormKind::kBatchNorm),
                 activation(kRelu)};
  block.repeat = 30;
  items.push_back(block);
  RunSpec bn = layers_spec(items, 256, 128);
  bn.precision = Precision::kFloat32;
  const PassResult b = run_pass<float>(bn, 2);
  const std::vector<OpSpec> ops = expand_ops(bn);
  std::vector<double> relu_rms;  // the ReLU outputs, one per block
  for (std::size_t l = 0; l < ops.size(); ++l) {
    if (ops[l].kind == OpKind::kActivation) relu_rms.push_back(b.forward[l].act.rms);
  }
  ASSERT_EQ(relu_rms.size(), 30u);
  // After batch norm each ReLU output has rms sqrt(1/2) in expectation, at every depth; a 128-
  // example batch estimates it to a few percent.
  EXPECT_NEAR(relu_rms.back() / relu_rms.front(), 1.0, 0.05);
  EXPECT_NEAR(relu_rms.back(), std::sqrt(0.5), 0.05);
}

TEST(ArchitectureStatistics, ResidualConnectionsKeepTheGradientWherePlainSigmoidStacksLoseIt) {
  // Plain sigmoid: each layer multiplies the gradient by ~0.24 (slope <= 1/4). With the identity
  // path y = x + F(x) the Jacobian is I + J_F: the gradient no longer shrinks geometrically.
  std::vector<LayerItem> plain_items, res_items;
  for (int i = 0; i < 20; ++i) plain_items.push_back(dense(128, {Activation::kSigmoid, 0}));
  res_items.push_back(dense(128, {Activation::kSigmoid, 0}));
  res_items.push_back(residual({dense(128, {Activation::kSigmoid, 0})}, 19, 1.0));
  RunSpec plain = layers_spec(plain_items, 128, 64);
  RunSpec res = layers_spec(res_items, 128, 64);
  plain.precision = res.precision = Precision::kFloat32;
  // First dense layer against the last one: dL/dh^1 over dL/dh^L.
  auto ratio = [](const RunSpec& spec) {
    const PassResult r = run_pass<float>(spec, 2);
    const std::vector<OpSpec> ops = expand_ops(spec);
    std::vector<double> logs;
    for (std::size_t l = 0; l < ops.size(); ++l) {
      if (ops[l].kind == OpKind::kDense) logs.push_back(r.backward[l].grad_preact_rms.log10);
    }
    return logs.front() - logs.back();
  };
  const double plain_ratio = ratio(plain);
  const double res_ratio = ratio(res);
  EXPECT_LT(plain_ratio, -10.0);  // 19 layers of ~0.24: about -11.8
  EXPECT_GT(res_ratio, -1.0);     // the identity path carries the gradient through
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
                          make_probe<Scalar>(spec, net.widths.back()), opt, pool);
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
      EXPECT_EQ(a.forward[l].act_histogram, b.forward[l].act_histogram);
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

TEST(NetworkDeterminism, EveryLayerKindIsBitIdenticalForOneAndThreeThreads) {
  // Widths above kRowsPerTask and a batch above kColumnsPerTask, so every kind is cut in pieces.
  RunSpec spec = layers_spec(
      {dense(300, kGelu), norm(NormKind::kBatchNorm),
       residual({norm(NormKind::kLayerNorm), dense(520, kRelu), dropout(0.2), dense(300, kLinear)},
                2, 0.5),
       norm(NormKind::kRmsNorm), dense(10, kLinear)},
      260, 70);
  spec.loss.kind = LossKind::kSoftmaxCrossEntropy;
  spec.loss.classes = 10;
  spec.optimizer.kind = OptimizerKind::kAdam;
  for (Precision p : {Precision::kFloat32, Precision::kFloat64}) {
    spec.precision = p;
    auto run = [&](int threads) {
      ThreadPool pool(threads);
      PassOptions opt;
      opt.seed = spec.seed;
      opt.loss = spec.loss;
      opt.optimizer = spec.optimizer;
      const LossTargets t = make_targets(spec.loss, spec.seed, 10, spec.input.batch);
      opt.targets = &t;
      if (p == Precision::kFloat32) {
        const Network<float> net = build_network<float>(spec, pool);
        return forward_backward(net, make_input<float>(spec), Mat<float>(), opt, pool);
      }
      const Network<double> net = build_network<double>(spec, pool);
      return forward_backward(net, make_input<double>(spec), Mat<double>(), opt, pool);
    };
    const PassResult a = run(1);
    const PassResult b = run(3);
    EXPECT_TRUE(same_bits(a.loss, b.loss));
    for (std::size_t l = 0; l < a.forward.size(); ++l) {
      expect_identical(a.forward[l].preact, b.forward[l].preact);
      expect_identical(a.forward[l].act, b.forward[l].act);
      EXPECT_EQ(a.forward[l].act_histogram, b.forward[l].act_histogram);
      EXPECT_TRUE(
          same_bits(a.backward[l].grad_preact_rms.log10, b.backward[l].grad_preact_rms.log10));
      EXPECT_TRUE(
          same_bits(a.backward[l].grad_weight_norm.log10, b.backward[l].grad_weight_norm.log10));
      EXPECT_TRUE(
          same_bits(a.backward[l].update_to_weight.log10, b.backward[l].update_to_weight.log10));
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

// ---- Activation histograms

std::int64_t total(const std::vector<std::int64_t>& counts) {
  std::int64_t sum = 0;
  for (std::int64_t c : counts) sum += c;
  return sum;
}

// An op of every reported kind, outputs of 76800 entries or more: each cut into several tasks.
RunSpec every_kind_spec(Precision p) {
  RunSpec spec =
      layers_spec({dense(300, kGelu), norm(NormKind::kBatchNorm),
                   residual({norm(NormKind::kLayerNorm), dense(300, kRelu), dropout(0.2)}, 2, 0.5),
                   activation(kTanh), dense(300, kLinear)},
                  260, 256);
  spec.precision = p;
  return spec;
}

TEST(ActHistogram, EveryReportedOpCountsEachFiniteOutputEntryOnceWithMinAndMaxInTheEndBins) {
  for (Precision p : {Precision::kFloat32, Precision::kFloat64}) {
    SCOPED_TRACE(std::string(precision_name(p)));
    const RunSpec spec = every_kind_spec(p);
    const std::vector<OpSpec> ops = expand_ops(spec);
    const PassResult r =
        p == Precision::kFloat32 ? run_pass<float>(spec, 2) : run_pass<double>(spec, 2);
    for (std::size_t l = 0; l < ops.size(); ++l) {
      const ForwardStats& f = r.forward[l];
      if (ops[l].kind == OpKind::kResidualBegin) {
        EXPECT_TRUE(f.act_histogram.empty());
        continue;
      }
      SCOPED_TRACE("op " + std::to_string(l + 1) + " (" + std::string(op_kind_name(ops[l].kind)) +
                   ")");
      ASSERT_EQ(f.act_histogram.size(), static_cast<std::size_t>(kActHistogramBins));
      EXPECT_EQ(total(f.act_histogram), f.act.finite);
      EXPECT_EQ(f.act.finite, 300 * 256);
      EXPECT_LT(f.act.min, f.act.max);
      EXPECT_GE(f.act_histogram.front(), 1);  // the minimum
      EXPECT_GE(f.act_histogram.back(), 1);   // the maximum
      if (ops[l].kind == OpKind::kDense && ops[l].dense.activation.kind == Activation::kRelu) {
        // ReLU's zeros are its minimum, all in the first bin.
        EXPECT_EQ(f.act.min, 0.0);
        const auto zeros = static_cast<std::int64_t>(std::llround(f.zero_fraction * 300 * 256));
        EXPECT_GE(f.act_histogram.front(), zeros);
        EXPECT_GT(zeros, 0);
      }
    }
  }
}

TEST(ActHistogram, BinsEachOpsOutputAsADirectComputationDoes) {
  // tanh then linear: y1 = tanh(W1 x + b1), y2 = W2 y1 + b2, recomputed here in double.
  const RunSpec spec = layers_spec({dense(7, kTanh), dense(5, kLinear)}, 6, 9);
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Eigen::MatrixXd x = make_input<double>(spec);
  const PassResult r = forward_backward(net, x, make_probe<double>(spec, 5), PassOptions{}, pool);
  Eigen::MatrixXd h1 = net.weight[0] * x;
  h1.colwise() += net.bias[0];
  const Eigen::MatrixXd y1 = h1.array().tanh().matrix();
  Eigen::MatrixXd y2 = net.weight[1] * y1;
  y2.colwise() += net.bias[1];
  const Eigen::MatrixXd* y[] = {&y1, &y2};
  for (std::size_t l = 0; l < 2; ++l) {
    const MomentStats& act = r.forward[l].act;
    // The same products in another order: equal to ~1e-15 relative.
    EXPECT_NEAR(act.min, y[l]->minCoeff(), 1e-14);
    EXPECT_NEAR(act.max, y[l]->maxCoeff(), 1e-14);
    std::vector<std::int64_t> expected(kActHistogramBins, 0);
    for (const double v : y[l]->reshaped()) {
      const double u = (v - act.min) / (act.max - act.min) * kActHistogramBins;
      // Rounding could move a value within ~1e-14 of an interior edge; this seed has none.
      const double nearest = std::round(u);
      ASSERT_FALSE(nearest > 0 && nearest < kActHistogramBins && std::abs(u - nearest) < 1e-9);
      const double bin = std::clamp(std::floor(u), 0.0, kActHistogramBins - 1.0);
      ++expected[static_cast<std::size_t>(bin)];
    }
    EXPECT_EQ(r.forward[l].act_histogram, expected) << "op " << l + 1;
  }
}

TEST(ActHistogram, IsIdenticalForOneAndThreeThreadsWhenOpsAreCutIntoSeveralTasks) {
  for (Precision p : {Precision::kFloat32, Precision::kFloat64}) {
    const RunSpec spec = every_kind_spec(p);
    const PassResult a =
        p == Precision::kFloat32 ? run_pass<float>(spec, 1) : run_pass<double>(spec, 1);
    const PassResult b =
        p == Precision::kFloat32 ? run_pass<float>(spec, 3) : run_pass<double>(spec, 3);
    ASSERT_EQ(a.forward.size(), b.forward.size());
    for (std::size_t l = 0; l < a.forward.size(); ++l) {
      EXPECT_EQ(a.forward[l].act_histogram, b.forward[l].act_histogram) << "op " << l + 1;
    }
  }
}

TEST(ActHistogram, CountsOnlyFiniteEntriesAndIsEmptyWhenThereAreNone) {
  // The overflowing linear stack above: finite layers, then a mix, then only Inf and NaN.
  RunSpec spec;
  spec.seed = 1;
  spec.precision = Precision::kFloat32;
  spec.input.width = 32;
  spec.input.batch = 8;
  spec.stack.depth = 40;
  spec.stack.layer.width = 32;
  spec.stack.layer.activation = {Activation::kLinear, 0};
  spec.stack.layer.init.kind = Init::kNormal;
  spec.stack.layer.init.std = 10.0;
  const PassResult r = run_pass<float>(spec, 2);
  int mixed = 0;
  for (std::size_t l = 0; l < r.forward.size(); ++l) {
    const ForwardStats& f = r.forward[l];
    if (f.act.finite == 0) {
      EXPECT_TRUE(f.act_histogram.empty()) << "layer " << l + 1;
      continue;
    }
    mixed += f.act.nonfinite > 0;
    ASSERT_EQ(f.act_histogram.size(), static_cast<std::size_t>(kActHistogramBins));
    EXPECT_EQ(total(f.act_histogram), f.act.finite) << "layer " << l + 1;
  }
  EXPECT_EQ(r.forward.back().act.finite, 0);
  EXPECT_GT(mixed, 0) << "no layer with both finite and non-finite entries: change the spec";
}

}  // namespace
}  // namespace gradscope
