// Real models' data: tensors assigned to layers in the state_dict's order, a run's data saved and
// loaded back giving the very same report, and every mismatch an error that names the tensor.
#include <gtest/gtest.h>

#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/io/weights.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

Tensor tensor(std::string name, std::vector<std::int64_t> shape, double fill) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  std::int64_t n = 1;
  for (std::int64_t d : t.shape) n *= d;
  t.values.assign(static_cast<std::size_t>(n), fill);
  return t;
}

RunSpec stack(int depth, int width) {
  RunSpec spec = testing::uniform_stack(Activation::kTanh, Init::kXavierNormal, depth, width, 8, 3);
  spec.precision = Precision::kFloat64;
  return spec;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return std::string(e.what()) + " | " + e.hint();
  }
  return "no error";
}

TEST(Weights, StateDictOrderIsNaturalNotAlphabetical) {
  // 12 layers named as nn.Sequential does with activations between: 0, 2, 4, ..., 22.
  const RunSpec spec = stack(12, 4);
  std::vector<Tensor> tensors;
  for (int i = 11; i >= 0; --i) {  // any order in the file
    tensors.push_back(tensor(std::to_string(2 * i) + ".weight", {4, 4}, i + 1.0));
    tensors.push_back(tensor(std::to_string(2 * i) + ".bias", {4}, -(i + 1.0)));
  }
  const WeightMapping m = map_weights(spec, tensors, "model.safetensors");
  for (int l = 0; l < 12; ++l) {
    EXPECT_EQ(m.data.weight[static_cast<std::size_t>(l)](0, 0), l + 1.0) << l;
    EXPECT_EQ(m.data.bias[static_cast<std::size_t>(l)](0), -(l + 1.0)) << l;
  }
  ASSERT_EQ(m.assignments.size(), 24u);
  EXPECT_EQ(m.assignments[2].tensor, "2.weight");
  EXPECT_EQ(m.assignments[2].layer, 2);
  EXPECT_EQ(m.assignments[3].role, "bias");
}

TEST(Weights, ASavedRunLoadsBackIntoTheSameReport) {
  for (Precision p : {Precision::kFloat64, Precision::kFloat32}) {
    RunSpec spec = stack(5, 16);
    spec.precision = p;
    RunData saved;
    RunOptions save;
    save.save = &saved;
    const Report original = run_diagnostic(spec, save);
    // Through tensors, as --save-weights writes them and --weights/--input read them.
    const std::vector<Tensor> tensors = run_data_tensors(spec, saved);
    std::vector<Tensor> params;
    const Tensor* input = nullptr;
    for (const Tensor& t : tensors) {
      if (t.name.rfind("ops.", 0) == 0) params.push_back(t);
      if (t.name == "input") input = &t;
    }
    ASSERT_NE(input, nullptr);
    WeightMapping m = map_weights(spec, params, "run.safetensors");
    m.data.input = batch_matrix(*input, spec.input.width, "run.safetensors");
    RunOptions load;
    load.external = &m.data;
    const Report loaded = run_diagnostic(spec, load);
    // Same weights and input: byte-identical statistics (the probe is regenerated from the seed).
    EXPECT_EQ(report_to_json(original), report_to_json(loaded)) << precision_name(p);
  }
}

TEST(Weights, ModelWithoutBiasesGetsZeroBiasesAndSaysSo) {
  const RunSpec spec = stack(2, 3);
  const WeightMapping m =
      map_weights(spec, {tensor("fc1.weight", {3, 3}, 0.5), tensor("fc2.weight", {3, 3}, 0.25)},
                  "m.safetensors");
  EXPECT_TRUE(m.data.bias[1].isZero());
  ASSERT_EQ(m.ignored.size(), 2u);
  EXPECT_NE(m.ignored[0].find("fc1.bias: absent"), std::string::npos);
}

TEST(Weights, MismatchesNameTheTensorTheLayerAndBothShapes) {
  const RunSpec spec = stack(2, 3);
  EXPECT_NE(
      error_of([&] {
        map_weights(spec, {tensor("0.weight", {3, 4}, 1), tensor("1.weight", {3, 3}, 1)},
                    "m.safetensors");
      })
          .find("m.safetensors: tensor \"0.weight\" has shape (3, 4), but layer 1 (dense 3 -> "
                "3) needs (3, 3)"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              map_weights(spec, {tensor("0.weight", {3, 3}, 1)}, "m.safetensors");
            }).find("no tensor left for layer 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              map_weights(spec,
                          {tensor("0.weight", {3, 3}, 1), tensor("1.weight", {3, 3}, 1),
                           tensor("2.weight", {3, 3}, 1)},
                          "m.safetensors");
            }).find("1 modules are left over"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              map_weights(spec,
                          {tensor("0.weight", {3, 3}, 1), tensor("0.bias", {4}, 0),
                           tensor("1.weight", {3, 3}, 1)},
                          "m.safetensors");
            }).find("\"0.bias\" has shape (4,)"),
            std::string::npos);
}

TEST(Weights, NormsTakeTheirAffineParametersAndBatchNormStatisticsAreIgnored) {
  RunSpec spec = stack(1, 3);
  LayerItem dense;
  dense.op.kind = OpKind::kDense;
  dense.op.dense = spec.stack.layer;
  dense.op.dense.width = 3;
  LayerItem norm;
  norm.op.kind = OpKind::kNorm;
  norm.op.norm.kind = NormKind::kBatchNorm;
  spec.layers = {dense, norm, dense};
  std::vector<Tensor> t{tensor("0.weight", {3, 3}, 1),
                        tensor("0.bias", {3}, 0),
                        tensor("1.weight", {3}, 1),
                        tensor("1.bias", {3}, 0),
                        tensor("1.running_mean", {3}, 0.3),
                        tensor("1.running_var", {3}, 2),
                        tensor("1.num_batches_tracked", {}, 7),
                        tensor("2.weight", {3, 3}, 1)};
  const WeightMapping m = map_weights(spec, t, "bn.safetensors");
  EXPECT_EQ(m.ignored.size(), 3u + 1u);  // three running statistics, one absent bias
  // gamma = 1 and beta = 0: the identity map, left out so the norm runs as generated ones do.
  EXPECT_EQ(m.data.weight[1].size(), 0);
  t[2].values[1] = 0.9;   // a trained gamma
  t[3].values[2] = -0.5;  // and beta
  const WeightMapping trained = map_weights(spec, t, "bn.safetensors");
  ASSERT_EQ(trained.data.weight[1].rows(), 3);
  ASSERT_EQ(trained.data.weight[1].cols(), 1);
  EXPECT_EQ(trained.data.weight[1](1, 0), 0.9);
  EXPECT_EQ(trained.data.weight[1](0, 0), 1.0);
  EXPECT_EQ(trained.data.bias[1](2), -0.5);
  // A norm without affine parameters (elementwise_affine=False) takes no module.
  const WeightMapping plain = map_weights(
      spec, {tensor("0.weight", {3, 3}, 1), tensor("2.weight", {3, 3}, 1)}, "bn.safetensors");
  EXPECT_EQ(plain.assignments.size(), 2u);
}

TEST(Weights, IntegerTensorsAreReadAndSetAsideButNeverTakenAsWeights) {
  // A real BatchNorm1d state_dict: num_batches_tracked is an I64 scalar.
  std::string header =
      R"({"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
      R"("w":{"dtype":"I32","shape":[2],"data_offsets":[8,16]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header;
  const unsigned char data[16] = {7, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 3, 0, 0, 0};
  bytes.append(reinterpret_cast<const char*>(data), sizeof data);
  const std::vector<Tensor> t = parse_safetensors(bytes, "bn.safetensors");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].dtype, DType::kI64);
  EXPECT_EQ(t[0].values, (std::vector<double>{7}));
  EXPECT_EQ(t[1].values, (std::vector<double>{-2, 3}));
  Tensor w = tensor("0.weight", {3, 3}, 1);
  w.dtype = DType::kI64;
  EXPECT_NE(error_of([&] {
              map_weights(stack(1, 3), {w}, "int.safetensors");
            }).find("holds integers (I64)"),
            std::string::npos);
}

TEST(Weights, BatchesAndTargetsFromTensors) {
  RunSpec spec = stack(1, 2);
  spec.input.batch = 3;
  Tensor x = tensor("x", {3, 2}, 0);
  for (std::size_t i = 0; i < x.values.size(); ++i) x.values[i] = static_cast<double>(i);
  const Eigen::MatrixXd m = batch_matrix(x, 2, "x.npy");
  EXPECT_EQ(m.rows(), 2);
  EXPECT_EQ(m(1, 2), 5.0);  // example 2, unit 1
  EXPECT_NE(error_of([&] { batch_matrix(x, 4, "x.npy"); }).find("2 values per example"),
            std::string::npos);
  spec.loss.kind = LossKind::kSoftmaxCrossEntropy;
  spec.loss.classes = 2;
  Tensor labels = tensor("y", {3}, 1);
  EXPECT_EQ(targets_from_tensor(labels, spec, 2, "y.npy").labels, (std::vector<int>{1, 1, 1}));
  labels.values[2] = 2;
  EXPECT_NE(error_of([&] { targets_from_tensor(labels, spec, 2, "y.npy"); }).find("label 2 is 2.0"),
            std::string::npos);
}

// A dense 5 -> 8, attention over 8 (two heads, with biases), a GLU 8 -> 12 -> 8 (no biases), for
// sequences of 3 tokens; built in code, as the op kinds are all this file needs.
RunSpec sequence_spec() {
  RunSpec spec = stack(1, 8);
  spec.input.width = 5;
  spec.input.batch = 2;
  spec.input.tokens = 3;
  LayerItem dense;
  dense.op.kind = OpKind::kDense;
  dense.op.dense = spec.stack.layer;
  LayerItem attention;
  attention.op.kind = OpKind::kAttention;
  attention.op.attention.heads = 2;
  attention.op.attention.bias = true;
  LayerItem glu;
  glu.op.kind = OpKind::kGlu;
  glu.op.glu.hidden = 12;
  spec.layers = {dense, attention, glu};
  return spec;
}

// Every entry distinct, so that a row or a block in the wrong place shows.
Eigen::MatrixXd distinct(Eigen::Index rows, Eigen::Index cols, double offset) {
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i) {
    for (Eigen::Index j = 0; j < cols; ++j) {
      m(i, j) = offset + 100.0 * static_cast<double>(i) + static_cast<double>(j);
    }
  }
  return m;
}

RunData sequence_data() {
  RunData d;
  d.weight = {distinct(8, 5, 0.5), distinct(32, 8, 0.25), distinct(36, 8, 0.125)};
  d.bias = {distinct(8, 1, 7), distinct(32, 1, 9), Eigen::VectorXd()};
  d.input = distinct(5, 6, 0.75);
  return d;
}

// A 2-D tensor's values as the (rows, cols) matrix they are, row-major.
Eigen::MatrixXd matrix_of_values(const Tensor& t) {
  Eigen::MatrixXd m(t.shape[0], t.shape[1]);
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      m(i, j) = t.values[static_cast<std::size_t>(i * m.cols() + j)];
    }
  }
  return m;
}

const Tensor* named(const std::vector<Tensor>& tensors, const std::string& name) {
  for (const Tensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

TEST(WeightsSequence, AttentionAndGluSaveAsPyTorchModulesAndLoadBackStacked) {
  const RunSpec spec = sequence_spec();
  const RunData data = sequence_data();
  const std::vector<Tensor> tensors = run_data_tensors(spec, data);
  std::vector<std::string> names;
  for (const Tensor& t : tensors) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "ops.0.weight", "ops.0.bias", "ops.1.query.weight", "ops.1.query.bias",
                       "ops.1.key.weight", "ops.1.key.bias", "ops.1.value.weight",
                       "ops.1.value.bias", "ops.1.output.weight", "ops.1.output.bias",
                       "ops.2.gate.weight", "ops.2.up.weight", "ops.2.down.weight", "input"}));
  const Tensor* key = named(tensors, "ops.1.key.weight");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->shape, (std::vector<std::int64_t>{8, 8}));
  EXPECT_EQ(key->values[1], data.weight[1](8, 1));  // Wk is rows 8..15 of [Wq; Wk; Wv; Wo]
  const Tensor* output_bias = named(tensors, "ops.1.output.bias");
  ASSERT_NE(output_bias, nullptr);
  EXPECT_EQ(output_bias->shape, (std::vector<std::int64_t>{8}));
  EXPECT_EQ(output_bias->values[0], data.bias[1](24));
  const Tensor* down = named(tensors, "ops.2.down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<std::int64_t>{8, 12}));
  EXPECT_EQ(down->values[1 * 12 + 5], data.weight[2](24 + 5, 1));  // W2 (i, j) = W2^T (j, i)
  EXPECT_EQ(named(tensors, "ops.2.up.weight")->shape, (std::vector<std::int64_t>{12, 8}));
  const Tensor* input = named(tensors, "input");
  ASSERT_NE(input, nullptr);
  EXPECT_EQ(input->shape, (std::vector<std::int64_t>{2, 3, 5}));

  std::vector<Tensor> params(tensors.begin(), tensors.end() - 1);
  const WeightMapping m = map_weights(spec, params, "run.safetensors");
  EXPECT_EQ(m.data.weight[1], data.weight[1]);
  EXPECT_EQ(m.data.bias[1], data.bias[1]);
  EXPECT_EQ(m.data.weight[2], data.weight[2]);
  EXPECT_EQ(m.data.bias[2].size(), 0);
  EXPECT_TRUE(m.ignored.empty());
  ASSERT_EQ(m.assignments.size(), 2U + 8U + 3U);
  EXPECT_EQ(m.assignments[2].tensor, "ops.1.query.weight");
  EXPECT_EQ(m.assignments[2].role, "query.weight");
  EXPECT_EQ(m.assignments[2].layer, 2);
  EXPECT_EQ(m.assignments[12].role, "down.weight");
  EXPECT_EQ(m.assignments[12].shape, (std::vector<std::int64_t>{8, 12}));
  EXPECT_EQ(batch_matrix(*input, 5, "run.safetensors", 3), data.input);
}

TEST(WeightsSequence, ProjectionsAreMatchedByTheirPyTorchNamesOrTakenInOrder) {
  const RunSpec spec = sequence_spec();
  std::vector<Tensor> t{tensor("layers.0.weight", {8, 5}, 1), tensor("layers.0.bias", {8}, 0)};
  const std::vector<std::pair<std::string, double>> attention{
      {"q_proj", 1}, {"k_proj", 2}, {"v_proj", 3}, {"out_proj", 4}};
  for (const auto& [name, fill] : attention) {
    t.push_back(tensor("layers.1." + name + ".weight", {8, 8}, fill));
  }
  t.push_back(tensor("layers.2.gate_proj.weight", {12, 8}, 5));
  t.push_back(tensor("layers.2.up_proj.weight", {12, 8}, 6));
  t.push_back(tensor("layers.2.down_proj.weight", {8, 12}, 7));
  const WeightMapping m = map_weights(spec, t, "hf.safetensors");
  // Sorted, k_proj and out_proj come first; the names put them back in place.
  for (Eigen::Index block = 0; block < 4; ++block) {
    EXPECT_EQ(m.data.weight[1](8 * block, 0), static_cast<double>(block) + 1.0) << block;
  }
  EXPECT_TRUE(m.data.bias[1].isZero());  // the config has biases, the file none
  EXPECT_EQ(m.data.bias[1].size(), 32);
  EXPECT_EQ(m.ignored.size(), 4U);
  EXPECT_EQ(m.data.weight[2](0, 0), 5.0);
  EXPECT_EQ(m.data.weight[2](12, 0), 6.0);
  EXPECT_EQ(m.data.weight[2](24, 0), 7.0);

  // Modules with other names are taken in the state_dict's order.
  std::vector<Tensor> plain{tensor("0.weight", {8, 5}, 1)};
  for (int i = 0; i < 4; ++i)
    plain.push_back(tensor("1." + std::to_string(i) + ".weight", {8, 8}, i));
  for (int i = 0; i < 2; ++i)
    plain.push_back(tensor("2." + std::to_string(i) + ".weight", {12, 8}, 10 + i));
  plain.push_back(tensor("2.2.weight", {8, 12}, 12));
  const WeightMapping in_order = map_weights(spec, plain, "seq.safetensors");
  EXPECT_EQ(in_order.data.weight[1](16, 0), 2.0);  // the third module is the value
  EXPECT_EQ(in_order.data.weight[2](30, 0), 12.0);
}

// nn.TransformerEncoderLayer's attention (nn.MultiheadAttention) keeps Wq, Wk, Wv stacked as
// in_proj_weight (3d, d) with in_proj_bias (3d), then out_proj.
TEST(WeightsSequence, MultiheadAttentionsPackedInProjectionIsSplitInOrder) {
  const RunSpec spec = sequence_spec();
  Tensor in_proj = tensor("enc.self_attn.in_proj_weight", {24, 8}, 0);
  Tensor in_bias = tensor("enc.self_attn.in_proj_bias", {24}, 0);
  for (std::size_t i = 0; i < in_proj.values.size(); ++i)
    in_proj.values[i] = static_cast<double>(i);
  for (std::size_t i = 0; i < in_bias.values.size(); ++i)
    in_bias.values[i] = -static_cast<double>(i);
  const std::vector<Tensor> t{tensor("enc.a.weight", {8, 5}, 1),
                              in_bias,
                              in_proj,
                              tensor("enc.self_attn.out_proj.weight", {8, 8}, 4),
                              tensor("enc.self_attn.out_proj.bias", {8}, 0.5),
                              tensor("enc.z.0.weight", {12, 8}, 5),
                              tensor("enc.z.1.weight", {12, 8}, 6),
                              tensor("enc.z.2.weight", {8, 12}, 7)};
  const WeightMapping m = map_weights(spec, t, "torch.safetensors");
  EXPECT_EQ(m.data.weight[1].topRows(24), matrix_of_values(in_proj));
  EXPECT_EQ(m.data.weight[1](24, 0), 4.0);
  EXPECT_EQ(m.data.bias[1](9), -9.0);  // the key's second bias
  EXPECT_EQ(m.data.bias[1](24), 0.5);
  // The dense module has no bias (zeros, listed as ignored), so the attention's come second.
  EXPECT_EQ(m.assignments[1].role, "in_proj.weight");
  EXPECT_EQ(m.assignments[2].role, "in_proj.bias");
  EXPECT_EQ(m.assignments[3].role, "output.weight");

  std::vector<Tensor> bad = t;
  bad[2].shape = {16, 12};
  EXPECT_NE(error_of([&] { map_weights(spec, bad, "torch.safetensors"); })
                .find("tensor \"enc.self_attn.in_proj_weight\" has shape (16, 12), but layer 2 "
                      "(attention of width 8, 2 heads)'s packed query, key and value need (24, 8)"),
            std::string::npos);
}

TEST(WeightsSequence, MismatchesNameTheTensorAndTheProjection) {
  const RunSpec spec = sequence_spec();
  std::vector<Tensor> t{tensor("0.weight", {8, 5}, 1)};
  for (const char* name : {"query", "key", "value", "output"}) {
    t.push_back(tensor(std::string("1.") + name + ".weight", {8, 8}, 1));
  }
  for (const char* name : {"gate", "up"}) {
    t.push_back(tensor(std::string("2.") + name + ".weight", {12, 8}, 1));
  }
  t.push_back(tensor("2.down.weight", {8, 12}, 1));
  EXPECT_NO_THROW(map_weights(spec, t, "m.safetensors"));

  std::vector<Tensor> bad = t;
  bad[1].shape = {8, 4};
  bad[1].values.resize(32);
  EXPECT_NE(error_of([&] { map_weights(spec, bad, "m.safetensors"); })
                .find("m.safetensors: tensor \"1.query.weight\" has shape (8, 4), but layer 2 "
                      "(attention of width 8, 2 heads)'s query projection needs (8, 8)"),
            std::string::npos);
  bad = t;
  bad[7] = tensor("2.down.weight", {12, 8}, 1);
  EXPECT_NE(error_of([&] { map_weights(spec, bad, "m.safetensors"); })
                .find("\"2.down.weight\" has shape (12, 8), but layer 3 (glu 8 -> 12 -> 8)'s "
                      "down projection needs (8, 12)"),
            std::string::npos);
  bad = t;
  bad.push_back(tensor("2.gate.bias", {12}, 0));
  EXPECT_NE(error_of([&] { map_weights(spec, bad, "m.safetensors"); })
                .find("\"2.gate.bias\" has shape (12,), but layer 3 (glu 8 -> 12 -> 8)'s gate "
                      "projection has no bias in the config | set \"bias\": true"),
            std::string::npos);
  bad = t;
  bad.pop_back();
  EXPECT_NE(error_of([&] { map_weights(spec, bad, "m.safetensors"); })
                .find("no tensors left for layer 3 (glu 8 -> 12 -> 8), which takes 3 weight "
                      "matrices"),
            std::string::npos);
}

TEST(WeightsSequence, SequenceBatchesAreExampleMajorAndTheirTokensChecked) {
  Tensor x = tensor("x", {2, 3, 4}, 0);
  for (std::size_t i = 0; i < x.values.size(); ++i) x.values[i] = static_cast<double>(i);
  const Eigen::MatrixXd m = batch_matrix(x, 4, "x.npy", 3);
  ASSERT_EQ(m.rows(), 4);
  ASSERT_EQ(m.cols(), 6);
  EXPECT_EQ(m(2, 1 * 3 + 2), x.values[(1 * 3 + 2) * 4 + 2]);  // example 1, token 2, unit 2
  EXPECT_NE(error_of([&] { batch_matrix(x, 4, "x.npy", 5); })
                .find("x.npy: 3 tokens per example, but the config's input.tokens is 5 | set "
                      "\"input\": {\"tokens\": 3}"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              batch_matrix(x, 4, "x.npy");
            }).find("3 tokens per example, but the config's input.tokens is 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              batch_matrix(x, 5, "x.npy", 3);
            }).find("4 values per token, but the network's input width is 5"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              batch_matrix(tensor("x", {6, 4}, 0), 4, "x.npy", 3);
            }).find("shape (6, 4), but the config's sequences are (examples, 3, 4)"),
            std::string::npos);
}

}  // namespace
}  // namespace gradscope
