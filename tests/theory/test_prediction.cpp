// Mean-field predictions per layer: closed forms for ReLU and linear stacks, the arc-cosine
// kernel for correlations, "no prediction" where the theory stops, and wide networks measured
// within the stated spread of the prediction for every activation of the registry.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "gradscope/engine/engine.hpp"
#include "gradscope/theory/prediction.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

RunSpec stack(Activation act, Init init, int depth, int width, int batch, std::uint64_t seed = 1) {
  return testing::uniform_stack(act, init, depth, width, batch, seed);
}

TEST(Prediction, ReluWithHeInitKeepsQAndHasChiOneExactly) {
  // q^1 = sw2 E[x^2] = 2 for N(0, 1) inputs; then q = 2 E_q[relu^2] = q; chi = 2 * 1/2 = 1.
  const std::vector<OpPrediction> p =
      predict_ops(stack(Activation::kRelu, Init::kHeNormal, 20, 64, 8));
  for (std::size_t l = 0; l < p.size(); ++l) {
    ASSERT_TRUE(p[l].forward && p[l].backward) << p[l].reason;
    // The Gaussian integrals are accurate to ~1e-13 relative (theory.hpp).
    EXPECT_NEAR(p[l].q, 2.0, 1e-11) << l;
    EXPECT_NEAR(p[l].act_second_moment, 1.0, 1e-11) << l;
    if (l + 1 < p.size()) {
      EXPECT_NEAR(p[l].grad_factor, 1.0, 1e-11) << l;
    }
    EXPECT_NEAR(p[l].log10_grad_rel_last, 0.0, 1e-11) << l;
  }
  // The last layer's factor is over dL/dy: E[relu'^2] = 1/2.
  EXPECT_NEAR(p.back().grad_factor, 0.5, 1e-12);
}

TEST(Prediction, LinearStackScalesQAndGradientsBySw2PerLayer) {
  RunSpec spec = stack(Activation::kLinear, Init::kVariance, 10, 32, 8);
  spec.stack.layer.init.weight_var = 1.5;
  const std::vector<OpPrediction> p = predict_ops(spec);
  for (std::size_t l = 0; l < p.size(); ++l) {
    EXPECT_NEAR(p[l].q / std::pow(1.5, static_cast<double>(l + 1)), 1.0, 1e-12);
    // g_l = W^T g_{l+1}: E[g^2] grows by sw2 per layer towards the input.
    EXPECT_NEAR(p[l].log10_grad_rel_last,
                0.5 * static_cast<double>(p.size() - 1 - l) * std::log10(1.5), 1e-12);
  }
}

TEST(Prediction, UnequalWidthsMultiplyChiByTheWidthRatio) {
  RunSpec spec = stack(Activation::kRelu, Init::kHeNormal, 2, 64, 8);
  LayerSpec out;
  out.width = 16;
  out.activation = default_spec(Activation::kRelu);
  out.init.kind = Init::kHeNormal;
  spec.output = out;
  const std::vector<OpPrediction> p = predict_ops(spec);
  // Layer 2 (width 64) below the output (width 16): chi = sw2 E[relu'^2] * 16 / 64.
  EXPECT_NEAR(p[1].grad_factor, 2.0 * 0.5 * 16.0 / 64.0, 1e-12);
}

TEST(Prediction, ReluCorrelationsFollowTheArcCosineKernel) {
  // Cho & Saul 2009: for a centred Gaussian pair with correlation c, the cosine of their ReLUs is
  // k(c) = (sqrt(1 - c^2) + (pi - acos c) c) / pi, and with zero biases c of the next layer is it.
  const std::vector<OpPrediction> p =
      predict_ops(stack(Activation::kRelu, Init::kHeNormal, 30, 64, 8));
  double c = 0.0;  // independent zero-mean inputs
  for (const OpPrediction& l : p) {
    c = (std::sqrt(1 - c * c) + (std::numbers::pi - std::acos(c)) * c) / std::numbers::pi;
    // The pair quadrature uses fixed 24-point panels: ~1e-9 absolute on these smooth pieces.
    EXPECT_NEAR(l.correlation, c, 1e-8);
  }
  EXPECT_GT(p.back().correlation, 0.97);  // deep ReLU maps every input to nearly one direction
}

TEST(Prediction, NoPredictionPastASoftmaxAndNeverAMadeUpNumber) {
  RunSpec spec = stack(Activation::kTanh, Init::kXavierNormal, 3, 16, 8);
  LayerSpec out;
  out.width = 5;
  out.activation = default_spec(Activation::kSoftmax);
  spec.output = out;
  const std::vector<OpPrediction> p = predict_ops(spec);
  EXPECT_TRUE(p[0].forward);
  EXPECT_FALSE(p.back().forward);
  EXPECT_NE(p.back().reason.find("softmax"), std::string::npos) << p.back().reason;
  EXPECT_FALSE(p.back().backward);
  EXPECT_FALSE(p[0].backward);  // the gradient chain starts at the softmax, which is unknown
}

TEST(Prediction, ANormOpeningAPreNormBranchPredictsTheTotalGradientOfTheBlockInput) {
  // x -> [x + dense(LN(x))] x 3: the norm's grad_preact is dL/dx, the skip's share included, so
  // its prediction is the stream's gradient, the one the previous block's end passes on (scale 1),
  // and a wide network measures it within the stated spread.
  RunSpec spec;
  spec.seed = 3;
  spec.input.width = 256;
  spec.input.batch = 64;
  const LayerItem first = testing::dense_item(256, Activation::kGelu);
  spec.layers = {first,
                 testing::residual_block(3, {testing::norm_item(NormKind::kLayerNorm), first})};
  const std::vector<OpPrediction> p = predict_ops(spec);
  const std::vector<OpSpec> ops = expand_ops(spec);
  int checked = 0;
  for (std::size_t l = 2; l < ops.size(); ++l) {
    if (ops[l].kind != OpKind::kNorm || ops[l - 1].kind != OpKind::kResidualBegin) continue;
    if (ops[l - 2].kind != OpKind::kResidualEnd) continue;
    ASSERT_TRUE(p[l].backward && p[l - 2].backward);
    EXPECT_NEAR(p[l].log10_grad_rel_last, p[l - 2].log10_grad_rel_last, 1e-12) << l;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
  const Report r = run_diagnostic(spec);
  EXPECT_TRUE(r.summary.theory_flagged_layers.empty());
}

TEST(Prediction, WideNetworksAreMeasuredWithinTheStatedSpreadForEveryActivation) {
  // Width 1024, a few seeds: mean-field theory is exact as width grows, and the spread allows for
  // the finite-width fluctuations. Each activation gets the init that suits it, at moderate depth.
  for (const ActivationInfo& info : activation_table()) {
    if (info.output_only) continue;
    const Activation a = info.kind;
    const bool rectifier = a == Activation::kRelu || a == Activation::kLeakyRelu ||
                           a == Activation::kGelu || a == Activation::kSilu ||
                           a == Activation::kMish;
    const Init init = a == Activation::kSelu ? Init::kLecunNormal
                      : rectifier            ? Init::kHeNormal
                                             : Init::kXavierNormal;
    for (std::uint64_t seed : {1u, 2u, 3u}) {
      SCOPED_TRACE(std::string(info.name) + " seed " + std::to_string(seed));
      const Report r = run_diagnostic(stack(a, init, 6, 1024, 64, seed));
      EXPECT_TRUE(r.summary.theory_flagged_layers.empty());
      for (const LayerReport& l : r.layers) {
        ASSERT_TRUE(l.theory.forward && l.theory.backward) << l.theory.reason;
        EXPECT_LT(std::abs(l.theory.log_q_deviation), 3 * l.theory.log_q_spread) << l.index;
        EXPECT_LT(std::abs(l.theory.log10_grad_deviation), 3 * l.theory.log10_grad_spread)
            << l.index;
        // Correlations between examples: two digits from 2016 pairs (see kCorrelationExamples).
        EXPECT_NEAR(l.forward.correlation, l.theory.correlation, 0.05) << l.index;
      }
    }
  }
}

}  // namespace
}  // namespace gradscope
