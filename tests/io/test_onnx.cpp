// ONNX import: the models in tests/corpus/onnx (written by make_onnx.py with torch.onnx.export)
// become the right ops, widths and weights, and hostile graphs give an Error that says why.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradscope/cli/cli.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/validate.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/onnx_import.hpp"
#include "support/paths.hpp"

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

// The comma-separated numbers make_onnx.py stored under `key` in the file's metadata_props.
std::vector<double> metadata_values(const std::string& file, const std::string& key) {
  onnx::ModelProto model;
  std::ifstream in(corpus(file), std::ios::binary);
  if (!model.ParseFromIstream(&in)) {
    ADD_FAILURE() << file << " does not parse";
    return {};
  }
  for (const onnx::StringStringEntryProto& p : model.metadata_props()) {
    if (p.key() != key) continue;
    std::vector<double> values;
    std::stringstream text(p.value());
    for (std::string item; std::getline(text, item, ',');) values.push_back(std::stod(item));
    return values;
  }
  ADD_FAILURE() << file << " has no metadata '" << key << "'";
  return {};
}

// make_onnx.py's silu/mish/gelu_tanh models: Linear(4, 6) + act, LayerNorm(6), act, Linear(6, 2).
// The first activation joins its dense layer; the one after the norm is an op of its own.
void expect_gated_model(const OnnxModel& m, Activation act) {
  EXPECT_EQ(m.spec.input.width, 4);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 4u);
  expect_dense(ops[0], 6, act);
  ASSERT_EQ(ops[1].kind, OpKind::kNorm);
  EXPECT_EQ(ops[1].norm.kind, NormKind::kLayerNorm);
  ASSERT_EQ(ops[2].kind, OpKind::kActivation);
  EXPECT_EQ(ops[2].activation.kind, act);
  expect_dense(ops[3], 2, Activation::kLinear);
  expect_formula_weights(m);
}

// Runs the imported model in float64 on make_onnx.py's batch(4) and compares every op's output
// rms with the one PyTorch computed in float64 and stored in the file (gradscope.act_rms).
void expect_torch_act_rms(const std::string& file, Activation act) {
  SCOPED_TRACE(file);
  constexpr int kExamples = 5;
  RunSpec d = defaults();
  d.precision = Precision::kFloat64;
  d.input.batch = kExamples;
  const OnnxModel m = read_onnx(corpus(file), d);
  expect_gated_model(m, act);
  const int n_in = m.spec.input.width;
  ExternalData data = m.weights;
  Eigen::MatrixXd x(n_in, kExamples);
  for (int a = 0; a < kExamples; ++a) {
    for (int j = 0; j < n_in; ++j) x(j, a) = static_cast<double>((a * n_in + j) % 7 - 3) / 4.0;
  }
  data.input = x;
  RunOptions options;
  options.threads = 1;
  options.external = &data;
  const Report report = run_diagnostic(m.spec, options);
  const std::vector<double> expected = metadata_values(file, "gradscope.act_rms");
  ASSERT_EQ(report.layers.size(), expected.size());
  for (std::size_t k = 0; k < expected.size(); ++k) {
    // float64 on both sides; the file's LayerNorm epsilon is 1e-5 rounded to float (torch's is
    // 1e-5 in double), which moves the rms after the norm by about 2e-11 relative.
    EXPECT_NEAR(report.layers[k].forward.act.rms, expected[k], 1e-10 * expected[k]) << "op " << k;
  }
}

TEST(OnnxImport, SiluAsSigmoidTimesItsInputIsSiluAndRunsAsPyTorchDoes) {
  expect_torch_act_rms("silu.onnx", Activation::kSilu);
}

TEST(OnnxImport, MishAsSoftplusTanhTimesItsInputIsMishAndRunsAsPyTorchDoes) {
  expect_torch_act_rms("mish.onnx", Activation::kMish);
}

TEST(OnnxImport, GeluTanhFormIsGeluTanhWithAndWithoutConstantFolding) {
  expect_torch_act_rms("gelu_tanh.onnx", Activation::kGeluTanh);
  expect_torch_act_rms("gelu_tanh_unfolded.onnx", Activation::kGeluTanh);
}

TEST(OnnxImport, EmbeddingLookupIsRefusedSayingWhatToPassInstead) {
  try {
    read_onnx(corpus("embedding.onnx"), defaults());
    ADD_FAILURE() << "embedding.onnx was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    const std::string what = e.what();
    EXPECT_NE(what.find("node '/emb/Gather' (Gather)"), std::string::npos) << what;
    EXPECT_NE(what.find("'emb.weight'"), std::string::npos) << what;
    EXPECT_NE(what.find("embeddings are not imported"), std::string::npos) << what;
    EXPECT_NE(e.hint().find("--input (a .npy of shape [batch, width], or [batch, tokens, width]"),
              std::string::npos)
        << e.hint();
    EXPECT_NE(e.hint().find("export the model from the embedding output on"), std::string::npos)
        << e.hint();
  }
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

TEST(OnnxImport, NormWithTrainedScaleTakesGammaAndBeta) {
  const OnnxModel m = read_onnx(corpus("layernorm_affine.onnx"), defaults());
  ASSERT_EQ(expand_ops(m.spec)[1].kind, OpKind::kNorm);
  // make_onnx.py fills gamma with 2 and leaves beta 0: gamma as an (n, 1) matrix, beta.
  EXPECT_EQ(m.weights.weight[1], Eigen::MatrixXd::Constant(4, 1, 2.0));
  EXPECT_EQ(m.weights.bias[1], Eigen::VectorXd::Zero(4));
  // The identity affine part leaves both empty (the norm as gradscope generates it).
  const OnnxModel plain = read_onnx(corpus("norms.onnx"), defaults());
  EXPECT_EQ(plain.weights.weight[1].size(), 0);
  EXPECT_EQ(plain.weights.bias[1].size(), 0);
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

// ---------------------------------------------------------------------------------------------
// Hostile graphs that torch cannot export, built here with the protobuf classes.

// A graph from input "x" (batch, width) to output "y"; nodes and initializers are added by hand.
class Graph {
 public:
  explicit Graph(int width = 4) {
    model_.set_ir_version(8);
    model_.add_opset_import()->set_version(17);
    graph_ = model_.mutable_graph();
    graph_->set_name("hostile");
    onnx::ValueInfoProto* x = graph_->add_input();
    x->set_name("x");
    onnx::TypeProto_Tensor* type = x->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    type->mutable_shape()->add_dim()->set_dim_param("batch");
    type->mutable_shape()->add_dim()->set_dim_value(width);
    graph_->add_output()->set_name("y");
  }

  onnx::NodeProto* node(const std::string& op, std::initializer_list<std::string> inputs,
                        std::initializer_list<std::string> outputs, const std::string& name) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const std::string& in : inputs) n->add_input(in);
    for (const std::string& out : outputs) n->add_output(out);
    return n;
  }

  static void float_attribute(onnx::NodeProto* n, const std::string& name, float value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }

  // A float initializer whose raw data holds `values`, whatever `dims` claims.
  onnx::TensorProto* initializer(const std::string& name, std::initializer_list<std::int64_t> dims,
                                 const std::vector<float>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : dims) t->add_dims(d);
    std::string raw(values.size() * sizeof(float), '\0');
    if (!values.empty()) std::memcpy(raw.data(), values.data(), raw.size());
    t->set_raw_data(raw);
    return t;
  }

  // A dense layer y = x W^T + b as nn.Linear exports it (transB = 1), W (n_out, n_in).
  onnx::NodeProto* linear(const std::string& name, const std::string& in, const std::string& out,
                          int n_in, int n_out) {
    initializer(name + ".weight", {n_out, n_in},
                std::vector<float>(static_cast<std::size_t>(n_in * n_out), 0.25f));
    initializer(name + ".bias", {n_out}, std::vector<float>(static_cast<std::size_t>(n_out), 0.f));
    onnx::NodeProto* n = node("Gemm", {in, name + ".weight", name + ".bias"}, {out}, name);
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name("transB");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(1);
    return n;
  }

  // The input as an (N, C, H, W) image, the batch symbolic.
  void image_input(int channels, int height, int width) {
    onnx::TensorShapeProto* shape =
        graph_->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    shape->add_dim()->set_dim_param("batch");
    for (int d : {channels, height, width}) shape->add_dim()->set_dim_value(d);
  }

  static void int_attribute(onnx::NodeProto* n, const std::string& name, std::int64_t value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }

  static void ints_attribute(onnx::NodeProto* n, const std::string& name,
                             std::initializer_list<std::int64_t> values) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (std::int64_t v : values) a->add_ints(v);
  }

  static void string_attribute(onnx::NodeProto* n, const std::string& name,
                               const std::string& value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  }

  // A Conv as nn.Conv2d exports it: weight (c_out, c_in / group, k, k) holding its flat index /
  // 64 (exact in float), bias 1/8 per channel when given, pads p on every side.
  onnx::NodeProto* conv(const std::string& name, const std::string& in, const std::string& out,
                        int c_in, int c_out, int k, int pad, bool bias = true, int group = 1) {
    std::vector<float> w(static_cast<std::size_t>(c_out * c_in / group * k * k));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) / 64.f;
    initializer(name + ".weight", {c_out, c_in / group, k, k}, w);
    onnx::NodeProto* n = bias ? node("Conv", {in, name + ".weight", name + ".bias"}, {out}, name)
                              : node("Conv", {in, name + ".weight"}, {out}, name);
    if (bias) {
      initializer(name + ".bias", {c_out},
                  std::vector<float>(static_cast<std::size_t>(c_out), .125f));
    }
    ints_attribute(n, "kernel_shape", {k, k});
    ints_attribute(n, "pads", {pad, pad, pad, pad});
    ints_attribute(n, "strides", {1, 1});
    ints_attribute(n, "dilations", {1, 1});
    int_attribute(n, "group", group);
    return n;
  }

  // A training-mode BatchNormalization of `channels` (scale 1, bias 0, running statistics 0 and
  // 1), with its running statistics as the unused outputs 1 and 2.
  onnx::NodeProto* batch_norm(const std::string& name, const std::string& in,
                              const std::string& out, int channels, float scale = 1.f) {
    const auto n = static_cast<std::size_t>(channels);
    initializer(name + ".weight", {channels}, std::vector<float>(n, scale));
    initializer(name + ".bias", {channels}, std::vector<float>(n, 0.f));
    initializer(name + ".mean", {channels}, std::vector<float>(n, 0.f));
    initializer(name + ".var", {channels}, std::vector<float>(n, 1.f));
    onnx::NodeProto* b = node("BatchNormalization",
                              {in, name + ".weight", name + ".bias", name + ".mean", name + ".var"},
                              {out, out + ".mean", out + ".var"}, name);
    float_attribute(b, "epsilon", 1e-5f);
    int_attribute(b, "training_mode", 1);
    return b;
  }

  // An int64 initializer (a Pad's pads, a ReduceMean's axes).
  void int64_initializer(const std::string& name, const std::vector<std::int64_t>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<std::int64_t>(values.size()));
    for (std::int64_t v : values) t->add_int64_data(v);
  }

  std::string bytes() const { return model_.SerializeAsString(); }

 private:
  onnx::ModelProto model_;
  onnx::GraphProto* graph_ = nullptr;
};

// The message of the Error that reading `g` throws (exit code 2); the test fails without one.
std::string error_of(const Graph& g) {
  try {
    (void)parse_onnx(g.bytes(), "hostile.onnx", defaults());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage) << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("hostile.onnx: ", 0), 0u) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "the graph was accepted";
  return {};
}

::testing::AssertionResult Says(const std::string& message,
                                std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    if (message.find(part) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "\"" << message << "\" does not say \"" << part << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(OnnxHostile, TheBuilderMakesAGraphTheImporterReads) {
  Graph g;
  g.linear("fc", "x", "y", 4, 3);
  const OnnxModel m = parse_onnx(g.bytes(), "ok.onnx", defaults());
  ASSERT_EQ(expand_ops(m.spec).size(), 1u);
  EXPECT_EQ(expand_ops(m.spec)[0].dense.width, 3);
}

TEST(OnnxHostile, NodeWithoutAnOutputIsNamed) {
  Graph g;
  g.linear("fc", "x", "y", 4, 3)->clear_output();
  EXPECT_TRUE(Says(error_of(g), {"node 'fc' (Gemm) has no output"}));
}

TEST(OnnxHostile, UnnamedNodeIsNamedByItsOpAndIndex) {
  Graph g;
  g.linear("fc", "x", "h", 4, 3);
  g.node("Relu", {"h"}, {}, "");
  EXPECT_TRUE(Says(error_of(g), {"node #1 (Relu, unnamed) has no output"}));
}

TEST(OnnxHostile, GemmAndMatMulWithOneInputAreNamed) {
  Graph gemm;
  gemm.node("Gemm", {"x"}, {"y"}, "fc");
  EXPECT_TRUE(Says(error_of(gemm), {"node 'fc' (Gemm) has 1 input;", "Gemm takes 2 to 3"}));
  Graph matmul;
  matmul.node("MatMul", {"x"}, {"y"}, "mm");
  EXPECT_TRUE(Says(error_of(matmul), {"node 'mm' (MatMul) has 1 input;", "MatMul takes 2"}));
}

TEST(OnnxHostile, ConstantWithoutAnOutputIsNamed) {
  Graph g;
  onnx::NodeProto* c = g.node("Constant", {}, {}, "const0");
  onnx::AttributeProto* value = c->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_float_data(1.0f);
  g.linear("fc", "x", "y", 4, 3);
  EXPECT_TRUE(Says(error_of(g), {"node 'const0' (Constant) has no output"}));
}

TEST(OnnxHostile, ActivationWithoutAnInputIsNamed) {
  Graph g;
  g.linear("fc", "x", "h", 4, 3);
  g.node("Tanh", {}, {"y"}, "act");
  EXPECT_TRUE(Says(error_of(g), {"node 'act' (Tanh) has 0 inputs; Tanh takes 1"}));
}

TEST(OnnxHostile, AttributeOfTheWrongTypeIsNamed) {
  Graph g;
  g.linear("fc", "x", "h", 4, 3);
  onnx::AttributeProto* alpha = g.node("LeakyRelu", {"h"}, {"y"}, "act")->add_attribute();
  alpha->set_name("alpha");
  alpha->set_type(onnx::AttributeProto::INT);
  alpha->set_i(1);
  EXPECT_TRUE(Says(error_of(g), {"node 'act' (LeakyRelu): attribute 'alpha' is not a float"}));
}

TEST(OnnxHostile, DimensionsWhoseProductWrapsPast2To64AreRefused) {
  // (2^62 + 1) * 4 wraps to 4, which the 4 floats stored would have matched.
  Graph g;
  g.initializer("w", {(std::int64_t{1} << 62) + 1, 4}, {1.f, 2.f, 3.f, 4.f});
  g.node("Gemm", {"x", "w"}, {"y"}, "fc");
  EXPECT_TRUE(Says(error_of(g), {"tensor 'w' read by node 'fc' (Gemm)",
                                 "more elements than 64 bits can count"}));
}

TEST(OnnxHostile, NegativeDimensionsAreRefused) {
  Graph g;
  g.initializer("w", {-1, 4}, {1.f, 2.f, 3.f, 4.f});
  g.node("Gemm", {"x", "w"}, {"y"}, "fc");
  EXPECT_TRUE(
      Says(error_of(g), {"tensor 'w' read by node 'fc' (Gemm)", "negative dimension (-1)"}));
}

TEST(OnnxHostile, DataOfTheWrongSizeIsRefused) {
  Graph g;
  g.initializer("w", {3, 4}, {1.f, 2.f});
  g.node("Gemm", {"x", "w"}, {"y"}, "fc");
  EXPECT_TRUE(
      Says(error_of(g), {"tensor 'w' read by node 'fc' (Gemm) has shape (3, 4)", "holds 8 bytes"}));
}

// out = norm(fc(x)) with scale 1 and bias 0, the norm's epsilon given.
Graph norm_graph(const std::string& op, float eps, const std::string& out = "y") {
  Graph g;
  g.linear("fc", "x", "h", 4, 3);
  g.initializer("scale", {3}, {1.f, 1.f, 1.f});
  g.initializer("shift", {3}, {0.f, 0.f, 0.f});
  onnx::NodeProto* n = op == "BatchNormalization"
                           ? g.node(op, {"h", "scale", "shift", "shift", "scale"}, {out}, "norm")
                           : g.node(op, {"h", "scale", "shift"}, {out}, "norm");
  Graph::float_attribute(n, "epsilon", eps);
  return g;
}

TEST(OnnxHostile, NormEpsilonThatIsNotFiniteAndPositiveIsNamed) {
  for (const char* op : {"LayerNormalization", "BatchNormalization"}) {
    for (const float eps : {-1.0f, 0.0f, std::numeric_limits<float>::quiet_NaN()}) {
      SCOPED_TRACE(std::string(op) + " eps " + std::to_string(eps));
      const std::string e = error_of(norm_graph(op, eps));
      EXPECT_TRUE(Says(e, {"node 'norm' (", op, "): ", "eps is ", "must be a finite number > 0"}));
    }
  }
  // The check is the config reader's rule, not a refusal of every epsilon.
  EXPECT_NO_THROW(
      (void)parse_onnx(norm_graph("LayerNormalization", 1e-5f).bytes(), "ok.onnx", defaults()));
}

TEST(OnnxHostile, ALayerWithoutUnitsIsRefused) {
  // Weights (0, 4) then (3, 0): the first layer has no units and the second takes none.
  Graph g;
  g.initializer("w1", {0, 4}, {});
  g.initializer("w2", {3, 0}, {});
  onnx::NodeProto* fc1 = g.node("Gemm", {"x", "w1"}, {"h"}, "fc1");
  onnx::NodeProto* fc2 = g.node("Gemm", {"h", "w2"}, {"y"}, "fc2");
  for (onnx::NodeProto* n : {fc1, fc2}) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name("transB");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(1);
  }
  EXPECT_TRUE(Says(error_of(g), {"node 'fc1' (Gemm)", "0 units"}));
}

TEST(OnnxHostile, ActivationParametersThatAreNotFiniteAreNamed) {
  // Fused into the dense layer before it: the message names both nodes.
  Graph leaky;
  leaky.linear("fc", "x", "h", 4, 3);
  Graph::float_attribute(leaky.node("LeakyRelu", {"h"}, {"y"}, "act"), "alpha",
                         std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(Says(error_of(leaky), {"node 'fc' (Gemm) with node 'act' (LeakyRelu)",
                                     "leaky_relu slope is NaN", "must be a finite number"}));
  // After a norm: an op of its own, named alone.
  Graph elu = norm_graph("LayerNormalization", 1e-5f, "n");
  Graph::float_attribute(elu.node("Elu", {"n"}, {"y"}, "act"), "alpha",
                         std::numeric_limits<float>::infinity());
  EXPECT_TRUE(
      Says(error_of(elu), {"node 'act' (Elu): elu alpha is inf", "must be a finite number"}));
}

TEST(OnnxHostile, SigmoidTimesAnotherTensorIsNotSilu) {
  // x * sigmoid(h): the Mul reads the graph input, not the Sigmoid's input.
  Graph other;
  other.linear("fc", "x", "h", 4, 4);
  other.node("Sigmoid", {"h"}, {"s"}, "sig");
  other.node("Mul", {"s", "x"}, {"y"}, "gate");
  EXPECT_TRUE(Says(error_of(other), {"unsupported ONNX op 'Mul' at node 'gate' (Mul)", "SiLU"}));
  // h * sigmoid(h) + h: h feeds more than the pattern, so the Mul is not part of an activation.
  Graph shared;
  shared.linear("fc", "x", "h", 4, 4);
  shared.node("Sigmoid", {"h"}, {"s"}, "sig");
  shared.node("Mul", {"h", "s"}, {"g"}, "gate");
  shared.node("Add", {"g", "h"}, {"y"}, "res");
  EXPECT_TRUE(Says(error_of(shared), {"unsupported ONNX op 'Mul' at node 'gate' (Mul)"}));
  // The operands in either order are SiLU.
  Graph swapped;
  swapped.linear("fc", "x", "h", 4, 4);
  swapped.node("Sigmoid", {"h"}, {"s"}, "sig");
  swapped.node("Mul", {"s", "h"}, {"y"}, "gate");
  const std::vector<OpSpec> ops =
      expand_ops(parse_onnx(swapped.bytes(), "ok.onnx", defaults()).spec);
  ASSERT_EQ(ops.size(), 1u);
  expect_dense(ops[0], 4, Activation::kSilu);
}

// GELU's tanh form with the cube as Pow(h, 3) and the constants as initializers; `half` is the
// last factor (0.5 in the real formula).
Graph gelu_tanh_pow_graph(float half) {
  Graph g;
  g.linear("fc", "x", "h", 4, 4);
  g.initializer("three", {}, {3.f});
  g.initializer("cubic", {}, {0.044715f});
  g.initializer("scale", {}, {0.7978846f});
  g.initializer("one", {}, {1.f});
  g.initializer("half", {}, {half});
  g.node("Pow", {"h", "three"}, {"h3"}, "pow");
  g.node("Mul", {"h3", "cubic"}, {"c3"}, "mul_cubic");
  g.node("Add", {"h", "c3"}, {"inner"}, "add_inner");
  g.node("Mul", {"scale", "inner"}, {"u"}, "mul_scale");
  g.node("Tanh", {"u"}, {"t"}, "tanh");
  g.node("Add", {"t", "one"}, {"t1"}, "add_one");
  g.node("Mul", {"h", "t1"}, {"p"}, "mul_x");
  g.node("Mul", {"p", "half"}, {"y"}, "mul_half");
  return g;
}

TEST(OnnxHostile, GeluTanhWithPowIsReadAndAWrongConstantIsNot) {
  const std::vector<OpSpec> ops =
      expand_ops(parse_onnx(gelu_tanh_pow_graph(0.5f).bytes(), "ok.onnx", defaults()).spec);
  ASSERT_EQ(ops.size(), 1u);
  expect_dense(ops[0], 4, Activation::kGeluTanh);
  EXPECT_TRUE(Says(error_of(gelu_tanh_pow_graph(0.6f)), {"unsupported ONNX op 'Pow'"}));
}

TEST(OnnxHostile, GatherFromAnInitializerIsAnEmbeddingAndRefused) {
  Graph g;
  g.initializer("table", {10, 4}, std::vector<float>(40, 0.5f));
  g.node("Gather", {"table", "x"}, {"e"}, "lookup");
  g.linear("fc", "e", "y", 4, 2);
  EXPECT_TRUE(Says(error_of(g), {"node 'lookup' (Gather) looks up rows of the initializer 'table'",
                                 "embeddings are not imported"}));
}

// validate_run_spec holds a RunSpec to the config reader's rules: everything the config reader
// accepts passes it, and a spec built in code that a config could not describe does not.
TEST(SpecValidation, EveryShippedConfigAndTheDefaultPass) {
  EXPECT_FALSE(find_spec_problem(load_run_spec(std::nullopt)));
  int configs = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::string(GRADSCOPE_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const RunSpec spec = load_run_spec(entry.path().string());
    EXPECT_NO_THROW(validate_run_spec(spec));
    ++configs;
  }
  EXPECT_GT(configs, 10);
}

TEST(SpecValidation, ProblemsNameTheOpByItsConfigPath) {
  RunSpec spec = load_run_spec(std::nullopt);
  spec.layers.resize(3);
  spec.layers[0].op.kind = OpKind::kDense;
  spec.layers[0].op.dense.width = 8;
  spec.layers[1].op.kind = OpKind::kNorm;
  spec.layers[1].op.norm.eps = -1;
  spec.layers[2].op.kind = OpKind::kDense;
  spec.layers[2].op.dense.width = 2;
  try {
    validate_run_spec(spec);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "layers[1]: layer_norm eps is -1; it must be a finite number > 0");
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
  spec.layers[1].op.norm.eps = 1e-5;
  EXPECT_NO_THROW(validate_run_spec(spec));
  spec.layers[0].op.dense.activation = {Activation::kSoftmax, 0.0};
  EXPECT_EQ(find_spec_problem(spec)->op, std::optional<std::size_t>(0));
  spec.layers[0].op.dense.activation = {Activation::kElu, std::nan("")};
  EXPECT_NE(find_spec_problem(spec)->what.find("elu alpha is NaN"), std::string::npos);
  spec.layers[0].op.dense.activation = default_spec(Activation::kRelu);
  spec.layers[2].op.dense.width = 0;
  EXPECT_NE(find_spec_problem(spec)->what.find("width 0 is outside [1, 16777216]"),
            std::string::npos);
  spec.layers[2].op.dense.width = 2;
  spec.input.width = 0;
  EXPECT_FALSE(find_spec_problem(spec)->op.has_value());
}

TEST(OnnxHostile, MalformedModelExitsTwoOnTheCommandLine) {
  Graph g;
  g.node("MatMul", {"x"}, {"y"}, "mm");
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("gradscope-onnx-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "broken.onnx").string();
  std::ofstream(path, std::ios::binary) << g.bytes();
  std::ostringstream out, err;
  const int code = run_cli({"run", "--out", (dir / "out").string(), path}, out, err, {});
  std::filesystem::remove_all(dir);
  EXPECT_EQ(code, 2) << err.str();
  EXPECT_NE(err.str().find("node 'mm' (MatMul) has 1 input"), std::string::npos) << err.str();
}

// ---- make_onnx.py's GPT: two pre-norm blocks of nanoGPT's causal self-attention and a GELU MLP,
// a final LayerNorm, over (batch 2, tokens 8, width 16), 2 heads, trained-like gamma and beta.

constexpr int kGptBatch = 2;
constexpr int kGptTokens = 8;
constexpr int kGptWidth = 16;

// gradscope.grad_norms: "name=value,..." in gradscope's parameter order.
std::vector<std::pair<std::string, double>> torch_grad_norms(const std::string& file) {
  onnx::ModelProto model;
  std::ifstream in(corpus(file), std::ios::binary);
  EXPECT_TRUE(model.ParseFromIstream(&in)) << file;
  std::vector<std::pair<std::string, double>> out;
  for (const onnx::StringStringEntryProto& p : model.metadata_props()) {
    if (p.key() != "gradscope.grad_norms") continue;
    std::stringstream text(p.value());
    for (std::string item; std::getline(text, item, ',');) {
      const std::size_t eq = item.find('=');
      out.emplace_back(item.substr(0, eq), std::stod(item.substr(eq + 1)));
    }
  }
  EXPECT_FALSE(out.empty()) << file << " has no gradscope.grad_norms";
  return out;
}

// make_onnx.py's gpt_batch() or gpt_targets(): entry (b, t, j) = ((i % period) - shift) / scale
// with i = (b T + t) d + j, as a (width, batch x tokens) matrix, column b T + t.
Eigen::MatrixXd gpt_tensor(int period, int shift, double scale) {
  Eigen::MatrixXd m(kGptWidth, kGptBatch * kGptTokens);
  for (int c = 0; c < m.cols(); ++c) {
    for (int j = 0; j < kGptWidth; ++j) {
      m(j, c) = static_cast<double>((c * kGptWidth + j) % period - shift) / scale;
    }
  }
  return m;
}

RunSpec gpt_defaults() {
  RunSpec d = defaults();
  d.precision = Precision::kFloat64;
  d.input.batch = kGptBatch;
  d.loss.kind = LossKind::kMse;
  return d;
}

void expect_gpt_structure(const OnnxModel& m, bool causal) {
  EXPECT_EQ(m.spec.input.width, kGptWidth);
  EXPECT_EQ(m.spec.input.tokens, kGptTokens);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  // Per block: residual(ln_1, attention), residual(ln_2, c_fc + gelu, c_proj); then ln_f.
  const OpKind block[] = {OpKind::kResidualBegin, OpKind::kNorm,          OpKind::kAttention,
                          OpKind::kResidualEnd,   OpKind::kResidualBegin, OpKind::kNorm,
                          OpKind::kDense,         OpKind::kDense,         OpKind::kResidualEnd};
  ASSERT_EQ(ops.size(), 2 * std::size(block) + 1);
  for (std::size_t k = 0; k < ops.size(); ++k) {
    const OpKind expected = k + 1 == ops.size() ? OpKind::kNorm : block[k % std::size(block)];
    ASSERT_EQ(ops[k].kind, expected) << "op " << k;
    if (expected == OpKind::kAttention) {
      EXPECT_EQ(ops[k].attention.heads, 2);
      EXPECT_EQ(ops[k].attention.causal, causal);
      EXPECT_EQ(ops[k].attention.scale_kind, AttentionScaleKind::kInvSqrtHead);
      EXPECT_TRUE(ops[k].attention.bias);
      EXPECT_EQ(m.weights.weight[k].rows(), 4 * kGptWidth);
      EXPECT_EQ(m.weights.weight[k].cols(), kGptWidth);
      EXPECT_EQ(m.weights.bias[k].size(), 4 * kGptWidth);
    }
    if (expected == OpKind::kNorm) {
      // Trained-like gamma (n, 1) and beta.
      EXPECT_EQ(m.weights.weight[k].rows(), kGptWidth) << "op " << k;
      EXPECT_EQ(m.weights.weight[k].cols(), 1) << "op " << k;
      EXPECT_EQ(m.weights.bias[k].size(), kGptWidth) << "op " << k;
    }
    if (expected == OpKind::kDense) {
      EXPECT_EQ(ops[k].dense.activation.kind,
                ops[k].dense.width == 4 * kGptWidth ? Activation::kGelu : Activation::kLinear);
    }
  }
}

// Runs the imported GPT in float64 on make_onnx.py's batch and targets under mse and compares the
// gradient norm of every parameter with PyTorch autograd's (c_attn split into q, k, v rows).
void expect_torch_gradients(const std::string& file, bool causal) {
  SCOPED_TRACE(file);
  const OnnxModel m = read_onnx(corpus(file), gpt_defaults());
  expect_gpt_structure(m, causal);
  ExternalData data = m.weights;
  data.input = gpt_tensor(13, 6, 4.0);
  data.targets = LossTargets{gpt_tensor(7, 3, 8.0), {}};
  RunOptions options;
  options.threads = 1;
  options.external = &data;
  const Report report = run_diagnostic(m.spec, options);
  const std::vector<std::pair<std::string, double>> expected = torch_grad_norms(file);
  ASSERT_EQ(report.parameter_list.size(), expected.size());
  for (std::size_t k = 0; k < expected.size(); ++k) {
    const double got = report.parameter_list[k].stats.grad_norm.value;
    if (report.parameter_list[k].stats.role == "key.bias") {
      // dL/dbk is 0 in exact arithmetic (softmax ignores q . bk, the same for every key of a
      // query): both sides hold rounding noise, far below the other gradients (about 1e-2).
      EXPECT_LT(got, 1e-14);
      EXPECT_LT(expected[k].second, 1e-14);
      continue;
    }
    // float64 on both sides; the file's LayerNorm epsilon is 1e-5 rounded to float (torch's is
    // 1e-5 in double), which moves the gradients by about 1e-12 relative.
    EXPECT_NEAR(got, expected[k].second, 1e-9 * expected[k].second)
        << report.parameter_list[k].name << " vs torch's " << expected[k].first;
  }
}

TEST(OnnxGpt, FoldedExportImportsAndItsGradientsMatchPyTorch) {
  expect_torch_gradients("gpt.onnx", true);
}

TEST(OnnxGpt, UnfoldedExportImportsAndItsGradientsMatchPyTorch) {
  expect_torch_gradients("gpt_unfolded.onnx", true);
}

TEST(OnnxGpt, AdditiveCausalMaskIsCausal) {
  expect_torch_gradients("gpt_additive_mask.onnx", true);
}

TEST(OnnxGpt, UnfoldedExportNamesTheStateDictTensors) {
  const OnnxModel m = read_onnx(corpus("gpt_unfolded.onnx"), gpt_defaults());
  const auto find = [&](const std::string& tensor) -> const TensorAssignment* {
    for (const TensorAssignment& a : m.assignments) {
      if (a.tensor == tensor) return &a;
    }
    return nullptr;
  };
  const TensorAssignment* qkv = find("h.0.attn.c_attn.weight");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->role, "query_key_value.weight");
  EXPECT_EQ(qkv->layer, 3);  // residual begin, ln_1, attention
  const TensorAssignment* proj = find("h.1.attn.c_proj.weight");
  ASSERT_NE(proj, nullptr);
  EXPECT_EQ(proj->role, "output.weight");
  const TensorAssignment* gamma = find("ln_f.weight");
  ASSERT_NE(gamma, nullptr);
  EXPECT_EQ(gamma->role, "norm_weight");
}

// gpt.onnx with `edit` applied, read back: the Error's message.
std::string gpt_error(const std::function<void(onnx::GraphProto&)>& edit,
                      const std::string& file = "gpt.onnx") {
  onnx::ModelProto model;
  std::ifstream in(corpus(file), std::ios::binary);
  EXPECT_TRUE(model.ParseFromIstream(&in));
  edit(*model.mutable_graph());
  try {
    (void)parse_onnx(model.SerializeAsString(), "gpt.onnx", gpt_defaults());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    return e.what();
  }
  ADD_FAILURE() << "the edited model was accepted";
  return {};
}

onnx::NodeProto& first_node(onnx::GraphProto& g, const std::string& op) {
  for (onnx::NodeProto& n : *g.mutable_node()) {
    if (n.op_type() == op) return n;
  }
  throw std::runtime_error("no " + op);
}

TEST(OnnxGpt, AMaskThatIsNotCausalIsRefusedNamingItsNode) {
  const std::string e = gpt_error([](onnx::GraphProto& g) {
    const std::string mask = first_node(g, "Where").input(0);
    for (onnx::TensorProto& t : *g.mutable_initializer()) {
      // Query 2 may not see key 1 any more.
      if (t.name() == mask) (*t.mutable_raw_data())[2 * kGptTokens + 1] = 1;
    }
  });
  EXPECT_TRUE(Says(e, {"node '/h.0/attn/Where' (Where)", "must be causal"}));
}

TEST(OnnxGpt, AnotherOpInsideAttentionIsUnsupportedNamingTheNode) {
  const std::string e =
      gpt_error([](onnx::GraphProto& g) { first_node(g, "Softmax").set_op_type("LogSoftmax"); });
  EXPECT_TRUE(Says(e, {"unsupported ONNX op 'LogSoftmax' at node '/h.0/attn/Softmax'",
                       "inside self-attention expected", "nanoGPT's CausalSelfAttention"}));
}

TEST(OnnxGpt, AReshapeToAShapeThatIsNotWholeNumbersIsNamed) {
  const std::string e = gpt_error([](onnx::GraphProto& g) {
    const std::string shape = first_node(g, "Reshape").input(1);
    for (onnx::NodeProto& n : *g.mutable_node()) {
      if (n.op_type() != "Constant" || n.output(0) != shape) continue;
      onnx::TensorProto* t = n.mutable_attribute(0)->mutable_t();
      const float values[] = {2.f, 8.f, 2.5f, std::numeric_limits<float>::quiet_NaN()};
      t->set_data_type(onnx::TensorProto::FLOAT);
      t->set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof values));
    }
  });
  EXPECT_TRUE(Says(e, {"node '/h.0/attn/Reshape' (Reshape)", "not a size"}));
}

TEST(OnnxGpt, AMaskSliceThatCannotBeEvaluatedLeavesTheMaskUnreadAndSaysSo) {
  // The unfolded export slices the mask from a buffer; axes longer than starts cannot be
  // evaluated, so the Where's mask is not a constant.
  const std::string e = gpt_error(
      [](onnx::GraphProto& g) {
        const onnx::NodeProto& slice = first_node(g, "Slice");
        const std::string axes = slice.input(3);
        for (onnx::NodeProto& n : *g.mutable_node()) {
          if (n.op_type() != "Constant" || n.output(0) != axes) continue;
          onnx::TensorProto* t = n.mutable_attribute(0)->mutable_t();
          const std::int64_t values[] = {2, 3, 0};
          t->clear_dims();
          t->add_dims(3);
          t->set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof values));
        }
      },
      "gpt_unfolded.onnx");
  EXPECT_TRUE(
      Says(e, {"node '/h.0/attn/Where' (Where)", "the mask and its fill value must be constants"}));
}

TEST(OnnxGpt, ACustomScaleIsAConstantScale) {
  onnx::ModelProto model;
  std::ifstream in(corpus("gpt.onnx"), std::ios::binary);
  ASSERT_TRUE(model.ParseFromIstream(&in));
  onnx::GraphProto& g = *model.mutable_graph();
  const std::string c = first_node(g, "Mul").input(1);
  for (onnx::NodeProto& n : *g.mutable_node()) {
    if (n.op_type() != "Constant" || n.output(0) != c) continue;
    onnx::TensorProto* t = n.mutable_attribute(0)->mutable_t();
    const float s = 0.25f;  // 1/sqrt(d_head) is 0.354, 1/d_head 0.125
    t->set_raw_data(std::string(reinterpret_cast<const char*>(&s), sizeof s));
  }
  const OnnxModel m = parse_onnx(model.SerializeAsString(), "gpt.onnx", gpt_defaults());
  const OpSpec& attn = expand_ops(m.spec)[2];
  ASSERT_EQ(attn.kind, OpKind::kAttention);
  EXPECT_EQ(attn.attention.scale_kind, AttentionScaleKind::kConstant);
  EXPECT_EQ(attn.attention.scale, 0.25);
}

// ---------------------------------------------------------------------------------------------
// Image networks: Conv, BatchNormalization per channel, poolings, Flatten, residual Adds.

OnnxModel parse(const Graph& g) { return parse_onnx(g.bytes(), "images.onnx", defaults()); }

// x (2, 6, 6) -> Conv 3x3 pad 1 (+bias) -> Relu -> MaxPool 2 -> Flatten -> Gemm (4).
Graph vgg_graph() {
  Graph g;
  g.image_input(2, 6, 6);
  g.conv("c1", "x", "h", 2, 3, 3, 1);
  g.node("Relu", {"h"}, {"a"}, "relu");
  onnx::NodeProto* pool = g.node("MaxPool", {"a"}, {"p"}, "pool");
  Graph::ints_attribute(pool, "kernel_shape", {2, 2});
  Graph::ints_attribute(pool, "strides", {2, 2});
  Graph::ints_attribute(pool, "pads", {0, 0, 0, 0});
  Graph::int_attribute(pool, "ceil_mode", 0);
  g.node("Flatten", {"p"}, {"f"}, "flat");
  g.linear("fc", "f", "y", 27, 4);
  return g;
}

TEST(OnnxImages, ConvReluMaxPoolFlattenGemmBecomeTheirOpsOnTheInputImage) {
  const OnnxModel m = parse(vgg_graph());
  EXPECT_EQ(m.spec.input.image, (ImageShape{2, 6, 6}));
  EXPECT_EQ(m.spec.input.width, 72);
  EXPECT_EQ(m.spec.input.batch, 16);  // from the defaults, as for every ONNX model
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 4u);
  ASSERT_EQ(ops[0].kind, OpKind::kConv);
  const ConvSpec& c = ops[0].conv;
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(c.kernel_h, 3);
  EXPECT_EQ(c.kernel_w, 3);
  EXPECT_EQ(c.pad_h, 1);
  EXPECT_EQ(c.stride_h, 1);
  EXPECT_EQ(c.groups, 1);
  EXPECT_TRUE(c.bias);
  EXPECT_EQ(c.activation.kind, Activation::kRelu);  // the Relu right after joins the conv
  EXPECT_EQ(ops[0].image, (ImageShape{3, 6, 6}));
  ASSERT_EQ(ops[1].kind, OpKind::kPool);
  EXPECT_EQ(ops[1].pool.kind, PoolKind::kMax);
  EXPECT_EQ(ops[1].image, (ImageShape{3, 3, 3}));
  EXPECT_EQ(ops[2].kind, OpKind::kFlatten);
  expect_dense(ops[3], 4, Activation::kLinear);
  // The weight (3, 2, 3, 3) is the conv op's (3, 18) matrix in the same order: W(o, (c kh + i) kw
  // + j) = w[o][c][i][j], which holds its flat index / 64.
  const Eigen::MatrixXd& W = m.weights.weight[0];
  ASSERT_EQ(W.rows(), 3);
  ASSERT_EQ(W.cols(), 18);
  for (int o = 0; o < 3; ++o) {
    for (int k = 0; k < 18; ++k) ASSERT_EQ(W(o, k), (o * 18 + k) / 64.0) << o << ", " << k;
  }
  EXPECT_EQ(m.weights.bias[0], Eigen::VectorXd::Constant(3, 0.125));
  EXPECT_EQ(m.weights.weight[1].size(), 0);
  ASSERT_EQ(m.assignments.size(), 4u);
  EXPECT_EQ(m.assignments[0].tensor, "c1.weight");
  EXPECT_EQ(m.assignments[0].shape, (std::vector<std::int64_t>{3, 2, 3, 3}));
  EXPECT_EQ(m.assignments[2].layer, 4);
  // The init describes the measured variance over fan_in = C_in kh kw = 18.
  EXPECT_EQ(c.init.kind, Init::kVariance);
  EXPECT_NEAR(c.init.weight_var, W.squaredNorm() / W.size() * 18, 1e-12);
}

TEST(OnnxImages, StridesDilationsGroupsAndNoBiasAreRead) {
  Graph g;
  g.image_input(4, 9, 9);
  onnx::NodeProto* c = g.conv("c", "x", "y", 4, 6, 3, 2, /*bias=*/false, /*group=*/2);
  c->mutable_attribute(2)->set_ints(0, 2);  // strides (2, 1)
  c->mutable_attribute(3)->set_ints(1, 2);  // dilations (1, 2)
  const OnnxModel m = parse(g);
  const ConvSpec& conv = expand_ops(m.spec)[0].conv;
  EXPECT_EQ(conv.stride_h, 2);
  EXPECT_EQ(conv.stride_w, 1);
  EXPECT_EQ(conv.dilation_h, 1);
  EXPECT_EQ(conv.dilation_w, 2);
  EXPECT_EQ(conv.groups, 2);
  EXPECT_FALSE(conv.bias);
  EXPECT_EQ(m.weights.bias[0].size(), 0);
  EXPECT_EQ(m.weights.weight[0].cols(), 2 * 3 * 3);
  // (9 + 4 - 3) / 2 + 1 = 6 rows, (9 + 4 - 5) / 1 + 1 = 9 columns.
  EXPECT_EQ(expand_ops(m.spec)[0].image, (ImageShape{6, 6, 9}));
}

TEST(OnnxImages, BatchNormOfAnImageIsPerChannelAndItsRunningStatisticsAreSetAside) {
  Graph g;
  g.image_input(2, 4, 4);
  g.conv("c", "x", "h", 2, 3, 3, 1, false);
  g.batch_norm("bn", "h", "n", 3);
  g.node("Relu", {"n"}, {"y"}, "relu");
  const OnnxModel m = parse(g);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].conv.activation.kind, Activation::kLinear);  // the norm follows, not the Relu
  ASSERT_EQ(ops[1].kind, OpKind::kNorm);
  EXPECT_EQ(ops[1].norm.kind, NormKind::kBatchNorm);
  EXPECT_EQ(ops[1].image, (ImageShape{3, 4, 4}));  // per channel over (N, H, W)
  EXPECT_EQ(m.weights.weight[1].size(), 0);        // scale 1, bias 0: the generated norm
  EXPECT_EQ(ops[2].kind, OpKind::kActivation);
}

TEST(OnnxImages, TrainedBatchNormOfAnImageIsRefusedSayingWhatToExport) {
  Graph g;
  g.image_input(2, 4, 4);
  g.conv("c", "x", "h", 2, 3, 3, 1, false);
  g.batch_norm("bn", "h", "y", 3, 0.5f);
  EXPECT_TRUE(Says(error_of(g),
                   {"node 'bn' (BatchNormalization)", "scale 1 and bias 0", "trained values"}));
}

// x (3, 6, 6) -> `op` -> y, with the attributes `set` gives it.
Graph pool_graph(const std::string& op, const std::function<void(onnx::NodeProto*)>& set) {
  Graph g;
  g.image_input(3, 6, 6);
  onnx::NodeProto* n = g.node(op, {"x"}, {"y"}, "pool");
  Graph::ints_attribute(n, "kernel_shape", {3, 3});
  Graph::ints_attribute(n, "strides", {2, 2});
  set(n);
  return g;
}

TEST(OnnxImages, PoolingsTakeKernelStridesAndPads) {
  const OnnxModel max = parse(pool_graph("MaxPool", [](onnx::NodeProto* n) {
    Graph::ints_attribute(n, "pads", {1, 1, 1, 1});
  }));
  const PoolSpec& p = expand_ops(max.spec)[0].pool;
  EXPECT_EQ(p.kind, PoolKind::kMax);
  EXPECT_EQ(p.kernel_h, 3);
  EXPECT_EQ(p.stride_w, 2);
  EXPECT_EQ(p.pad_h, 1);
  EXPECT_EQ(expand_ops(max.spec)[0].image, (ImageShape{3, 3, 3}));
  // An AveragePool with pads counts the padded zeros only with count_include_pad = 1.
  const OnnxModel avg = parse(pool_graph("AveragePool", [](onnx::NodeProto* n) {
    Graph::ints_attribute(n, "pads", {1, 1, 1, 1});
    Graph::int_attribute(n, "count_include_pad", 1);
  }));
  EXPECT_EQ(expand_ops(avg.spec)[0].pool.kind, PoolKind::kAverage);
  EXPECT_EQ(expand_ops(avg.spec)[0].pool.pad_w, 1);
}

TEST(OnnxImages, PoolingsGradscopeCannotComputeAreRefusedNamingTheAttribute) {
  const auto refused = [](const std::string& op, std::function<void(onnx::NodeProto*)> set,
                          std::initializer_list<const char*> says) {
    SCOPED_TRACE(op);
    EXPECT_TRUE(Says(error_of(pool_graph(op, set)), says));
  };
  refused("MaxPool", [](onnx::NodeProto* n) { Graph::int_attribute(n, "ceil_mode", 1); },
          {"node 'pool' (MaxPool)", "ceil_mode = 1"});
  refused("MaxPool",
          [](onnx::NodeProto* n) {
            Graph::ints_attribute(n, "dilations", {2, 2});
          },
          {"node 'pool' (MaxPool)", "dilations [2, 2]"});
  refused("AveragePool",
          [](onnx::NodeProto* n) {
            Graph::ints_attribute(n, "pads", {1, 1, 1, 1});
          },
          {"node 'pool' (AveragePool)", "count_include_pad = 0"});
  refused("AveragePool",
          [](onnx::NodeProto* n) {
            Graph::ints_attribute(n, "pads", {0, 0, 1, 1});
          },
          {"node 'pool' (AveragePool)", "asymmetric padding, pads [0, 0, 1, 1]"});
  refused("MaxPool",
          [](onnx::NodeProto* n) { Graph::string_attribute(n, "auto_pad", "SAME_UPPER"); },
          {"node 'pool' (MaxPool)", "auto_pad SAME_UPPER"});
  refused(
      "MaxPool",
      [](onnx::NodeProto* n) { n->mutable_attribute(0)->set_ints(0, 9); },  // kernel 9 on 6 rows
      {"node 'pool' (MaxPool)", "does not fit"});
}

TEST(OnnxImages, ConvsGradscopeCannotComputeAreRefusedNamingTheAttribute) {
  const auto refused = [](const std::function<void(Graph&, onnx::NodeProto*)>& set,
                          std::initializer_list<const char*> says) {
    Graph g;
    g.image_input(2, 6, 6);
    set(g, g.conv("c", "x", "y", 2, 3, 3, 1));
    EXPECT_TRUE(Says(error_of(g), says));
  };
  refused([](Graph&, onnx::NodeProto* n) { n->mutable_attribute(1)->set_ints(2, 0); },
          {"node 'c' (Conv)", "asymmetric padding, pads [1, 1, 0, 1]"});
  refused([](Graph&, onnx::NodeProto* n) { Graph::string_attribute(n, "auto_pad", "SAME_LOWER"); },
          {"node 'c' (Conv)", "auto_pad SAME_LOWER"});
  refused([](Graph&, onnx::NodeProto* n) { n->mutable_attribute(4)->set_i(2); },
          {"node 'c' (Conv)", "group 2", "does not fit the 2 input channels"});
  // A Conv1d's weight (C_out, C_in, k) on this image.
  refused(
      [](Graph& g, onnx::NodeProto* n) {
        g.initializer("w1", {3, 2, 3}, std::vector<float>(18, 0.f));
        n->set_input(1, "w1");
      },
      {"node 'c' (Conv)", "2-D convolutions"});
  // A window past the padded image, its dilation times its kernel past an int's range.
  refused(
      [](Graph&, onnx::NodeProto* n) {
        n->mutable_attribute(3)->set_ints(0, 16777216);  // dilations
      },
      {"node 'c' (Conv)", "window (33554433 pixels", "does not fit the 2 x 6 x 6 image"});
  // A Conv on a vector input.
  Graph flat;
  flat.conv("c", "x", "y", 2, 3, 3, 1);
  EXPECT_TRUE(Says(error_of(flat), {"node 'c' (Conv)", "needs an (N, C, H, W) image"}));
}

TEST(OnnxImages, TorchsAvgPoolPadBecomesThePoolingsPaddingAndAZeroPadIsNothing) {
  // AvgPool2d(3, 2, padding=1) at opset 17: Pad(pads [0 0 1 1 0 0 1 1]) then AveragePool.
  const auto graph = [](std::vector<std::int64_t> pads, const std::string& after) {
    Graph g;
    g.image_input(3, 6, 6);
    g.int64_initializer("pads", pads);
    onnx::NodeProto* pad = g.node("Pad", {"x", "pads"}, {"padded"}, "pad");
    Graph::string_attribute(pad, "mode", "constant");
    onnx::NodeProto* n = g.node(after, {"padded"}, {"y"}, "pool");
    Graph::ints_attribute(n, "kernel_shape", {3, 3});
    Graph::ints_attribute(n, "strides", {2, 2});
    return g;
  };
  const OnnxModel m = parse(graph({0, 0, 1, 1, 0, 0, 1, 1}, "AveragePool"));
  std::vector<OpSpec> ops = expand_ops(m.spec);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].pool.kind, PoolKind::kAverage);
  EXPECT_EQ(ops[0].pool.pad_h, 1);
  EXPECT_EQ(ops[0].image, (ImageShape{3, 3, 3}));
  ops = expand_ops(parse(graph({0, 0, 0, 0, 0, 0, 0, 0}, "AveragePool")).spec);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].pool.pad_h, 0);
  EXPECT_TRUE(Says(error_of(graph({0, 0, 1, 1, 0, 0, 1, 1}, "MaxPool")),
                   {"node 'pad' (Pad)", "only as the padding of the AveragePool"}));
  EXPECT_TRUE(Says(error_of(graph({0, 0, 1, 0, 0, 0, 2, 0}, "AveragePool")),
                   {"node 'pad' (Pad)", "asymmetric padding (height 1 before, 2 after"}));
  EXPECT_TRUE(Says(error_of(graph({0, 1, 0, 0, 0, 1, 0, 0}, "AveragePool")),
                   {"node 'pad' (Pad)", "batch or channel axis"}));
}

TEST(OnnxImages, GlobalAveragePoolAndReduceMeanOverHeightAndWidthArePoolings) {
  const auto graph = [](const std::string& op, std::function<void(onnx::NodeProto*)> set) {
    Graph g;
    g.image_input(3, 4, 5);
    set(g.node(op, {"x"}, {"y"}, "gap"));
    return g;
  };
  std::vector<OpSpec> ops =
      expand_ops(parse(graph("GlobalAveragePool", [](onnx::NodeProto*) {})).spec);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].pool.kind, PoolKind::kGlobalAverage);
  EXPECT_EQ(ops[0].image, (ImageShape{3, 1, 1}));
  ops = expand_ops(parse(graph("ReduceMean", [](onnx::NodeProto* n) {
                     Graph::ints_attribute(n, "axes", {-1, 2});
                   })).spec);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].pool.kind, PoolKind::kGlobalAverage);
  // Without keepdims the (N, C) result is a vector: a flatten follows.
  ops = expand_ops(parse(graph("ReduceMean", [](onnx::NodeProto* n) {
                     Graph::ints_attribute(n, "axes", {2, 3});
                     Graph::int_attribute(n, "keepdims", 0);
                   })).spec);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[1].kind, OpKind::kFlatten);
  EXPECT_TRUE(
      Says(error_of(graph("ReduceMean",
                          [](onnx::NodeProto* n) { Graph::ints_attribute(n, "axes", {1}); })),
           {"node 'gap' (ReduceMean)", "axes 2 and 3"}));
}

TEST(OnnxImages, FlattenOtherThanFromAxisOneAndGemmOnAnImageAreRefused) {
  Graph g;
  g.image_input(2, 3, 3);
  Graph::int_attribute(g.node("Flatten", {"x"}, {"y"}, "flat"), "axis", 2);
  EXPECT_TRUE(Says(error_of(g), {"node 'flat' (Flatten)", "from axis 1"}));
  Graph gemm;
  gemm.image_input(2, 3, 3);
  gemm.linear("fc", "x", "y", 18, 4);
  EXPECT_TRUE(Says(error_of(gemm), {"node 'fc' (Gemm)", "a 2 x 3 x 3 image", "Flatten"}));
}

// x -> c1 -> bn1 -> relu -> c2 -> bn2 -> Add(x or a skip path) -> relu: a ResNet BasicBlock.
// With `skip_first`, the skip path's nodes come before the block's in the file.
Graph block_graph(bool downsample, bool skip_first = false) {
  Graph g;
  g.image_input(2, 4, 4);
  if (downsample && skip_first) {
    g.conv("down", "x", "d", 2, 2, 1, 0, false);
    g.batch_norm("down_bn", "d", "s", 2);
  }
  g.conv("c1", "x", "h1", 2, 2, 3, 1, false);
  g.batch_norm("bn1", "h1", "n1", 2);
  g.node("Relu", {"n1"}, {"a1"}, "relu1");
  g.conv("c2", "a1", "h2", 2, 2, 3, 1, false);
  g.batch_norm("bn2", "h2", "n2", 2);
  if (downsample && !skip_first) {
    g.conv("down", "x", "d", 2, 2, 1, 0, false);
    g.batch_norm("down_bn", "d", "s", 2);
  }
  g.node("Add", {"n2", downsample ? "s" : "x"}, {"sum"}, "add");
  g.node("Relu", {"sum"}, {"y"}, "relu2");
  return g;
}

TEST(OnnxImages, AResidualAddOfImagesIsAResidualBlock) {
  const OnnxModel m = parse(block_graph(false));
  ASSERT_EQ(m.spec.layers.size(), 2u);
  EXPECT_EQ(m.spec.layers[0].block.size(), 5u);
  ASSERT_TRUE(m.spec.layers[0].residual);
  EXPECT_FALSE(m.spec.layers[0].residual->projection);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  EXPECT_EQ(ops[6].kind, OpKind::kResidualEnd);
  EXPECT_EQ(ops[6].image, (ImageShape{2, 4, 4}));
}

TEST(OnnxImages, ASkipPathThroughAOneByOneConvAndBatchNormIsTheLearnedProjection) {
  for (const bool skip_first : {false, true}) {
    SCOPED_TRACE(skip_first ? "skip path first" : "skip path after the block");
    const OnnxModel m = parse(block_graph(true, skip_first));
    ASSERT_EQ(m.spec.layers.size(), 2u);
    ASSERT_TRUE(m.spec.layers[0].residual);
    const ResidualSpec& r = *m.spec.layers[0].residual;
    EXPECT_TRUE(r.projection);
    ASSERT_TRUE(r.projection_norm);
    EXPECT_EQ(r.projection_norm->kind, NormKind::kBatchNorm);
    EXPECT_FLOAT_EQ(static_cast<float>(r.projection_norm->eps), 1e-5f);
    EXPECT_EQ(r.projection_init.kind, Init::kVariance);
    const std::vector<OpSpec> ops = expand_ops(m.spec);
    ASSERT_EQ(ops.size(), 8u);
    ASSERT_EQ(ops[6].kind, OpKind::kResidualEnd);
    EXPECT_TRUE(ops[6].residual.conv_projection());
    EXPECT_EQ(ops[6].residual.skip_image, (ImageShape{2, 4, 4}));
    // The 1x1 conv's weight (2, 2, 1, 1) as the end's (C_out, C_in) matrix: its flat index / 64.
    const Eigen::MatrixXd& P = m.weights.weight[6];
    ASSERT_EQ(P.rows(), 2);
    ASSERT_EQ(P.cols(), 2);
    for (int o = 0; o < 2; ++o) {
      for (int i = 0; i < 2; ++i) EXPECT_EQ(P(o, i), (o * 2 + i) / 64.0);
    }
    EXPECT_EQ(m.weights.bias[6].size(), 0);
    std::vector<std::string> roles;
    for (const TensorAssignment& a : m.assignments) {
      if (a.layer == 7) roles.push_back(a.tensor + " " + a.role);
    }
    EXPECT_EQ(roles, (std::vector<std::string>{"down.weight projection.weight",
                                               "down_bn.weight projection_norm.weight",
                                               "down_bn.bias projection_norm.bias"}));
  }
}

// x (2, H, H) -> conv 3x3 stride 2 pad 1 (3 channels) -> Add with a 1x1 conv of x, stride
// `skip_stride`, with a bias when asked.
Graph strided_block(int size, int skip_stride, bool skip_bias = false) {
  Graph g;
  g.image_input(2, size, size);
  onnx::NodeProto* c = g.conv("c", "x", "h", 2, 3, 3, 1);
  c->mutable_attribute(2)->set_ints(0, 2);
  c->mutable_attribute(2)->set_ints(1, 2);
  onnx::NodeProto* d = g.conv("down", "x", "s", 2, 3, 1, 0, skip_bias);
  d->mutable_attribute(2)->set_ints(0, skip_stride);
  d->mutable_attribute(2)->set_ints(1, skip_stride);
  g.node("Add", {"h", "s"}, {"y"}, "add");
  return g;
}

TEST(OnnxImages, AStridedSkipPathWithoutBatchNormIsAProjectionWithoutNorm) {
  const OnnxModel m = parse(strided_block(4, 2));
  ASSERT_EQ(m.spec.layers.size(), 1u);
  const ResidualSpec& r = *m.spec.layers[0].residual;
  EXPECT_TRUE(r.projection);
  EXPECT_FALSE(r.projection_norm);
  const std::vector<OpSpec> ops = expand_ops(m.spec);
  EXPECT_EQ(ops.back().image, (ImageShape{3, 2, 2}));
  EXPECT_EQ(ops.back().residual.skip_image, (ImageShape{2, 4, 4}));
  EXPECT_EQ(m.weights.weight.back().rows(), 3);
  EXPECT_EQ(m.weights.weight.back().cols(), 2);
}

TEST(OnnxImages, SkipPathsTheProjectionCannotExpressAreRefusedSayingWhy) {
  // An eval-mode export: the downsample's batch norm folded into the conv as a bias.
  EXPECT_TRUE(Says(error_of(strided_block(4, 2, true)),
                   {"node 'down' (Conv)", "has a bias", "eval-mode export"}));
  // A stride that leaves the skip another shape than the block's.
  EXPECT_TRUE(Says(error_of(strided_block(4, 1)),
                   {"node 'add' (Add)", "gives a 3 x 4 x 4 image, the block a 3 x 2 x 2 image"}));
  // 5 rows to 3 both ways, but 3 does not divide 5: gradscope's projection strides by in / out.
  EXPECT_TRUE(Says(error_of(strided_block(5, 2)),
                   {"node 'down' (Conv)", "stride must divide the image exactly"}));
  // A trained batch norm on the skip path.
  Graph trained;
  trained.image_input(2, 4, 4);
  trained.conv("c1", "x", "h1", 2, 2, 3, 1, false);
  trained.conv("down", "x", "d", 2, 2, 1, 0, false);
  trained.batch_norm("down_bn", "d", "s", 2, 0.5f);
  trained.node("Add", {"h1", "s"}, {"y"}, "add");
  EXPECT_TRUE(Says(error_of(trained), {"node 'down_bn' (BatchNormalization)", "trained values"}));
}

TEST(OnnxImages, AResidualAddOfImagesOfAnotherShapeIsRefused) {
  // The block's convs output 3 channels; the skip has 2.
  Graph g;
  g.image_input(2, 4, 4);
  g.conv("c1", "x", "h1", 2, 3, 3, 1);
  g.node("Add", {"h1", "x"}, {"y"}, "add");
  EXPECT_TRUE(
      Says(error_of(g), {"node 'add' (Add)", "adds 'x' (a 2 x 4 x 4 image) to a 3 x 4 x 4 image"}));
}

TEST(OnnxImages, AnImageInputOfTooManyFeaturesIsRefused) {
  Graph g;
  g.image_input(4096, 4096, 4096);
  g.node("Relu", {"x"}, {"y"}, "relu");
  EXPECT_TRUE(Says(error_of(g), {"input 'x'", "4096 x 4096 x 4096 image", "at most"}));
}

TEST(OnnxImages, AReshapeToBatchByFeaturesAndTorchsViewPatternAreFlattens) {
  // x.view(4, -1) and x.reshape(-1, C H W) with a fixed batch: a Reshape to a constant.
  for (const std::vector<std::int64_t>& shape :
       {std::vector<std::int64_t>{4, -1}, {-1, 18}, {0, 18}}) {
    Graph g;
    g.image_input(2, 3, 3);
    g.int64_initializer("shape", shape);
    g.node("Reshape", {"x", "shape"}, {"f"}, "view");
    g.linear("fc", "f", "y", 18, 2);
    const std::vector<OpSpec> ops = expand_ops(parse(g).spec);
    ASSERT_EQ(ops.size(), 2u);
    EXPECT_EQ(ops[0].kind, OpKind::kFlatten);
  }
  Graph wrong;
  wrong.image_input(2, 3, 3);
  wrong.int64_initializer("shape", {4, 2, 9});
  wrong.node("Reshape", {"x", "shape"}, {"y"}, "view");
  EXPECT_TRUE(Says(error_of(wrong), {"node 'view' (Reshape)", "a 2 x 3 x 3 image",
                                     "flatten to (batch, 18), not (4, 2, 9)"}));
  // With a dynamic batch: Shape, Gather 0, Unsqueeze, Concat with [-1], Reshape.
  const auto dynamic = [](std::int64_t index) {
    Graph g;
    g.image_input(2, 3, 3);
    g.int64_initializer("zero", {index});
    g.int64_initializer("axes", {0});
    g.int64_initializer("rest", {-1});
    g.node("Shape", {"x"}, {"s"}, "shape");
    g.node("Gather", {"s", "zero"}, {"n"}, "gather");
    g.node("Unsqueeze", {"n", "axes"}, {"n1"}, "unsqueeze");
    Graph::int_attribute(g.node("Concat", {"n1", "rest"}, {"target"}, "concat"), "axis", 0);
    g.node("Reshape", {"x", "target"}, {"f"}, "view");
    g.linear("fc", "f", "y", 18, 2);
    return g;
  };
  const std::vector<OpSpec> ops = expand_ops(parse(dynamic(0)).spec);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].kind, OpKind::kFlatten);
  EXPECT_TRUE(Says(error_of(dynamic(1)), {"node 'shape' (Shape)", "x.view(x.size(0), -1)"}));
}

TEST(OnnxImages, AOneByOneConvAndBatchNormAddedToTheirOwnInputAreABranchNotASkipPath) {
  // y = BN(Conv1x1(x)) + x: the conv is the block, the skip the identity.
  Graph g;
  g.image_input(2, 4, 4);
  g.conv("c", "x", "h", 2, 2, 1, 0, false);
  g.batch_norm("bn", "h", "n", 2);
  g.node("Add", {"n", "x"}, {"y"}, "add");
  const OnnxModel m = parse(g);
  ASSERT_EQ(m.spec.layers.size(), 1u);
  EXPECT_EQ(m.spec.layers[0].block.size(), 2u);
  EXPECT_FALSE(m.spec.layers[0].residual->projection);
}

}  // namespace
}  // namespace gradscope
