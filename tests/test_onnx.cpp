// ONNX import: the models in tests/corpus/onnx (written by make_onnx.py with torch.onnx.export)
// become the right ops, widths and weights, and hostile graphs give an Error that says why.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gradscope/engine.hpp"
#include "gradscope/error.hpp"
#include "gradscope/onnx_import.hpp"

namespace gradscope {
namespace {

std::string corpus(const std::string& name) {
  return std::string(GRADSCOPE_SOURCE_DIR) + "/tests/corpus/onnx/" + name;
}

RunSpec defaults() {
  RunSpec spec;
  spec.name = "onnx";
  spec.seed = 7;
  spec.input.batch = 16;
  return spec;
}

// make_onnx.py's formulas for dense layer L (1-based among the model's dense layers).
double expected_weight(int layer, int i, int j, int n_in) {
  return static_cast<double>((i * n_in + j + layer) % 11 - 5) / 16.0;
}
double expected_bias(int layer, int i) {
  return static_cast<double>((i + 2 * layer) % 5 - 2) / 8.0;
}

// Every dense op's W and b equal make_onnx.py's values, exactly: k/16 and k/8 are exact in float.
// Dense layers listed in `no_bias` were exported without a bias: theirs must be zeros.
void expect_formula_weights(const OnnxModel& m, const std::vector<int>& no_bias = {}) {
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  const std::vector<int> widths = op_widths(m.spec, ops);
  ASSERT_EQ(m.weights.weight.size(), ops.size());
  ASSERT_EQ(m.weights.bias.size(), ops.size());
  int layer = 0;
  int n_in = m.spec.input.width;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].kind != OpKind::kDense) {
      EXPECT_EQ(m.weights.weight[k].size(), 0) << "op " << k;
      continue;
    }
    ++layer;
    const Eigen::MatrixXd& W = m.weights.weight[k];
    const Eigen::VectorXd& b = m.weights.bias[k];
    ASSERT_EQ(W.rows(), widths[k]) << "op " << k;
    ASSERT_EQ(W.cols(), n_in) << "op " << k;
    ASSERT_EQ(b.size(), widths[k]) << "op " << k;
    for (int i = 0; i < W.rows(); ++i) {
      for (int j = 0; j < W.cols(); ++j) {
        ASSERT_EQ(W(i, j), expected_weight(layer, i, j, n_in))
            << "op " << k << " W(" << i << ", " << j << ")";
      }
      const bool zero = std::find(no_bias.begin(), no_bias.end(), layer) != no_bias.end();
      ASSERT_EQ(b(i), zero ? 0.0 : expected_bias(layer, i)) << "op " << k << " b(" << i << ")";
    }
    n_in = widths[k];
  }
}

void expect_dense(const OpSpec& op, int width, Activation act) {
  ASSERT_EQ(op.kind, OpKind::kDense);
  EXPECT_EQ(op.dense.width, width);
  EXPECT_EQ(op.dense.activation.kind, act);
}

std::string error_of(const std::string& file) {
  try {
    read_onnx(corpus(file), defaults());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage) << file;
    return e.what();
  }
  ADD_FAILURE() << file << " was accepted";
  return {};
}

TEST(OnnxImport, EveryActivationFollowsItsGemmAndSoftmaxEndsTheNetwork) {
  const OnnxModel m = read_onnx(corpus("activations.onnx"), defaults());
  EXPECT_EQ(m.spec.input.width, 6);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 11u);
  const Activation expected[] = {Activation::kRelu,     Activation::kLeakyRelu, Activation::kElu,
                                 Activation::kSelu,     Activation::kSigmoid,   Activation::kTanh,
                                 Activation::kSoftplus, Activation::kHardTanh,  Activation::kGelu,
                                 Activation::kLinear,   Activation::kSoftmax};
  for (std::size_t k = 0; k < ops.size(); ++k) {
    expect_dense(ops[k], k + 1 == ops.size() ? 4 : 8, expected[k]);
  }
  // The attributes are stored as float: equal to the torch value to float precision.
  EXPECT_FLOAT_EQ(static_cast<float>(ops[1].dense.activation.param), 0.2f);
  EXPECT_FLOAT_EQ(static_cast<float>(ops[2].dense.activation.param), 0.5f);
  expect_formula_weights(m);
}

TEST(OnnxImport, MatMulPlusAddAndGemmWithoutTransposeGiveOutByInWeights) {
  const OnnxModel m = read_onnx(corpus("matmul_gemm.onnx"), defaults());
  EXPECT_EQ(m.spec.input.width, 5);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 2u);
  expect_dense(ops[0], 7, Activation::kTanh);
  expect_dense(ops[1], 3, Activation::kLinear);
  expect_formula_weights(m);
  ASSERT_EQ(m.assignments.size(), 4u);
  EXPECT_EQ(m.assignments[0].tensor, "0.wt");
  EXPECT_EQ(m.assignments[0].role, "weight");
  EXPECT_EQ(m.assignments[0].layer, 1);
  EXPECT_EQ(m.assignments[0].shape, (std::vector<std::int64_t>{5, 7}));
  EXPECT_EQ(m.assignments[1].role, "bias");
  EXPECT_EQ(m.assignments[3].layer, 2);
}

TEST(OnnxImport, NormsWithIdentityAffineBecomeNormOpsAndLaterActivationsTheirOwnOps) {
  const OnnxModel m = read_onnx(corpus("norms.onnx"), defaults());
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 7u);
  expect_dense(ops[0], 6, Activation::kLinear);
  ASSERT_EQ(ops[1].kind, OpKind::kNorm);
  EXPECT_EQ(ops[1].norm.kind, NormKind::kBatchNorm);
  // epsilon is a float attribute: 1e-5 to float precision.
  EXPECT_FLOAT_EQ(static_cast<float>(ops[1].norm.eps), 1e-5f);
  ASSERT_EQ(ops[2].kind, OpKind::kActivation);
  EXPECT_EQ(ops[2].activation.kind, Activation::kRelu);
  expect_dense(ops[3], 6, Activation::kLinear);
  ASSERT_EQ(ops[4].kind, OpKind::kNorm);
  EXPECT_EQ(ops[4].norm.kind, NormKind::kLayerNorm);
  ASSERT_EQ(ops[5].kind, OpKind::kActivation);
  EXPECT_EQ(ops[5].activation.kind, Activation::kTanh);
  expect_dense(ops[6], 2, Activation::kLinear);
  expect_formula_weights(m);
  int norm_params = 0;
  for (const TensorAssignment& a : m.assignments) {
    if (a.role == "norm_weight" || a.role == "norm_bias") {
      ++norm_params;
      EXPECT_TRUE(a.layer == 2 || a.layer == 5) << a.tensor;
    }
  }
  EXPECT_EQ(norm_params, 4);
}

TEST(OnnxImport, ResidualAddsBecomeResidualBlocksAroundTheirBranch) {
  const OnnxModel m = read_onnx(corpus("residual_mlp.onnx"), defaults());
  ASSERT_EQ(m.spec.layers.size(), 4u);
  EXPECT_TRUE(m.spec.layers[1].residual.has_value());
  EXPECT_EQ(m.spec.layers[1].block.size(), 2u);
  EXPECT_TRUE(m.spec.layers[2].residual.has_value());
  EXPECT_EQ(m.spec.layers[2].block.size(), 3u);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  const std::vector<OpKind> kinds = {
      OpKind::kDense,       OpKind::kResidualBegin, OpKind::kDense, OpKind::kDense,
      OpKind::kResidualEnd, OpKind::kResidualBegin, OpKind::kNorm,  OpKind::kDense,
      OpKind::kDense,       OpKind::kResidualEnd,   OpKind::kDense};
  ASSERT_EQ(ops.size(), kinds.size());
  for (std::size_t k = 0; k < ops.size(); ++k) EXPECT_EQ(ops[k].kind, kinds[k]) << "op " << k;
  expect_dense(ops[0], 8, Activation::kRelu);
  expect_dense(ops[2], 8, Activation::kRelu);
  expect_dense(ops[3], 8, Activation::kLinear);
  expect_dense(ops[7], 8, Activation::kGelu);
  expect_dense(ops[10], 3, Activation::kLinear);
  EXPECT_DOUBLE_EQ(ops[4].residual.scale, 1.0);
  EXPECT_FALSE(ops[4].residual.projection);
  expect_formula_weights(m);
}

TEST(OnnxImport, DropoutTakesItsRatioAndIdentityIsSkipped) {
  const OnnxModel m = read_onnx(corpus("dropout.onnx"), defaults());
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 3u);
  expect_dense(ops[0], 5, Activation::kRelu);
  ASSERT_EQ(ops[1].kind, OpKind::kDropout);
  EXPECT_DOUBLE_EQ(ops[1].dropout, 0.25);
  expect_dense(ops[2], 2, Activation::kLinear);
  expect_formula_weights(m);
}

TEST(OnnxImport, BareMatMulHasZeroBiasGeluAfterANormIsAnOpAndResidualsNest) {
  const OnnxModel m = read_onnx(corpus("nested_no_bias.onnx"), defaults());
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  const std::vector<OpKind> kinds = {
      OpKind::kDense, OpKind::kNorm,          OpKind::kActivation, OpKind::kResidualBegin,
      OpKind::kDense, OpKind::kResidualBegin, OpKind::kDense,      OpKind::kResidualEnd,
      OpKind::kDense, OpKind::kResidualEnd,   OpKind::kDense};
  ASSERT_EQ(ops.size(), kinds.size());
  for (std::size_t k = 0; k < ops.size(); ++k) EXPECT_EQ(ops[k].kind, kinds[k]) << "op " << k;
  expect_dense(ops[0], 6, Activation::kLinear);
  EXPECT_EQ(ops[2].activation.kind, Activation::kGelu);
  expect_dense(ops[4], 6, Activation::kRelu);
  expect_dense(ops[6], 6, Activation::kTanh);
  expect_dense(ops[8], 6, Activation::kLinear);
  expect_dense(ops[10], 2, Activation::kLinear);
  ASSERT_EQ(m.spec.layers.size(), 5u);
  ASSERT_EQ(m.spec.layers[3].block.size(), 3u);
  EXPECT_TRUE(m.spec.layers[3].block[1].residual.has_value());
  EXPECT_EQ(ops[0].dense.bias.kind, BiasInit::kZeros);
  expect_formula_weights(m, {1});
}

TEST(OnnxImport, DefaultsSupplyNameSeedBatchAndLoss) {
  RunSpec d = defaults();
  d.loss.kind = LossKind::kMse;
  const OnnxModel m = read_onnx(corpus("matmul_gemm.onnx"), d);
  EXPECT_EQ(m.spec.name, "onnx");
  EXPECT_EQ(m.spec.seed, 7u);
  EXPECT_EQ(m.spec.input.batch, 16);
  EXPECT_EQ(m.spec.loss.kind, LossKind::kMse);
}

TEST(OnnxImport, DenseInitDescribesTheMeasuredWeightVariance) {
  const OnnxModel m = read_onnx(corpus("matmul_gemm.onnx"), defaults());
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  const Eigen::MatrixXd& W = m.weights.weight[0];
  ASSERT_EQ(ops[0].dense.init.kind, Init::kVariance);
  // The same sum in the same order as the importer: equal up to rounding.
  EXPECT_NEAR(ops[0].dense.init.weight_var,
              W.squaredNorm() / static_cast<double>(W.size()) * static_cast<double>(W.cols()),
              1e-12);
}

TEST(OnnxImport, ImportedResidualMlpRunsThroughTheEngine) {
  const OnnxModel m = read_onnx(corpus("residual_mlp.onnx"), defaults());
  RunOptions options;
  options.threads = 1;
  options.external = &m.weights;
  RunData used;
  options.save = &used;
  run_diagnostic(m.spec, options);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].kind != OpKind::kDense) continue;
    // float32 network: the exported values are exact in float, so they come back unchanged.
    EXPECT_EQ(used.weight[k], m.weights.weight[k]) << "op " << k;
    EXPECT_EQ(used.bias[k], m.weights.bias[k]) << "op " << k;
  }
}

TEST(OnnxImport, UnsupportedOpIsNamedWithItsNodeAndTheSupportedList) {
  const std::string e = error_of("unsupported_op.onnx");
  EXPECT_NE(e.find("unsupported ONNX op 'HardSwish'"), std::string::npos) << e;
  EXPECT_NE(e.find("/1/HardSwish"), std::string::npos) << e;
  EXPECT_NE(e.find("supported: Gemm"), std::string::npos) << e;
  EXPECT_NE(e.find("LayerNormalization"), std::string::npos) << e;
}

TEST(OnnxImport, CycleIsRefusedNamingItsNodes) {
  const std::string e = error_of("cycle.onnx");
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
  EXPECT_NE(e.find("/1/Relu"), std::string::npos) << e;
  EXPECT_NE(e.find("/2/Tanh"), std::string::npos) << e;
}

TEST(OnnxImport, MissingInitializerIsRefusedNamingTheTensor) {
  const std::string e = error_of("missing_initializer.onnx");
  EXPECT_NE(e.find("missing initializer"), std::string::npos) << e;
  EXPECT_NE(e.find("'0.weight'"), std::string::npos) << e;
}

TEST(OnnxImport, NanWeightIsRefusedNamingTheTensor) {
  const std::string e = error_of("nan_weight.onnx");
  EXPECT_NE(e.find("'2.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("NaN"), std::string::npos) << e;
}

TEST(OnnxImport, MoreThanOneGraphInputIsRefused) {
  const std::string e = error_of("two_inputs.onnx");
  EXPECT_NE(e.find("2 inputs"), std::string::npos) << e;
}

TEST(OnnxImport, NormWithTrainedScaleIsRefused) {
  const std::string e = error_of("layernorm_affine.onnx");
  EXPECT_NE(e.find("must be all ones"), std::string::npos) << e;
}

TEST(OnnxImport, SoftmaxBeforeTheLastOpIsRefused) {
  const std::string e = error_of("softmax_hidden.onnx");
  EXPECT_NE(e.find("'Softmax'"), std::string::npos) << e;
  EXPECT_NE(e.find("last op"), std::string::npos) << e;
}

TEST(OnnxImport, ClipOtherThanMinusOneToOneIsRefused) {
  const std::string e = error_of("clip_range.onnx");
  EXPECT_NE(e.find("'Clip'"), std::string::npos) << e;
  EXPECT_NE(e.find("hard_tanh"), std::string::npos) << e;
}

TEST(OnnxImport, MissingOrGarbageFileIsAnError) {
  EXPECT_NE(error_of("no_such_file.onnx").find("cannot open"), std::string::npos);
  EXPECT_NE(error_of("make_onnx.py").find("not an ONNX model"), std::string::npos);
}

}  // namespace
}  // namespace gradscope
