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

TEST(Weights, NormsTakeIdentityAffineParametersAndBatchNormStatisticsAreIgnored) {
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
  t[2].values[1] = 0.9;                  // a trained gamma
  EXPECT_NE(error_of([&] { map_weights(spec, t, "bn.safetensors"); }).find("\"1.weight\"[1] is"),
            std::string::npos);
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

}  // namespace
}  // namespace gradscope
