// validate.hpp's rules on RunSpecs built in code, without JSON: each rule refuses its spec and
// names the config path at fault, and a spec that keeps every rule passes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/validate.hpp"

namespace gradscope {
namespace {

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// The problem `spec` has; the test fails when it has none.
SpecProblem problem_of(const RunSpec& spec) {
  std::optional<SpecProblem> p = find_spec_problem(spec);
  if (!p) {
    ADD_FAILURE() << "the spec passed";
    return {};
  }
  return *p;
}

LayerItem dense(int width, Activation activation = Activation::kRelu) {
  LayerItem item;
  item.op.kind = OpKind::kDense;
  item.op.dense.width = width;
  item.op.dense.activation = default_spec(activation);
  return item;
}

LayerItem op_item(OpKind kind) {
  LayerItem item;
  item.op.kind = kind;
  return item;
}

LayerItem block(std::vector<LayerItem> items, int repeat = 1, bool residual = false) {
  LayerItem item;
  item.block = std::move(items);
  item.repeat = repeat;
  if (residual) item.residual = ResidualSpec{};
  return item;
}

RunSpec with_layers(std::vector<LayerItem> layers, int input_width = 8) {
  RunSpec spec;
  spec.input.width = input_width;
  spec.layers = std::move(layers);
  return spec;
}

TEST(Validate, DefaultSpecAndAPlainLayersSpecPass) {
  EXPECT_FALSE(find_spec_problem(RunSpec{}));
  EXPECT_NO_THROW(validate_run_spec(RunSpec{}));
  EXPECT_FALSE(find_spec_problem(
      with_layers({dense(8), block({op_item(OpKind::kNorm), dense(8)}, 3, true), dense(4)})));
}

TEST(Validate, ThrowsAUsageErrorNamingThePath) {
  RunSpec spec;
  spec.stack.layer.activation = default_spec(Activation::kSoftmax);
  try {
    validate_run_spec(spec);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "stack.activation: softmax normalises across the units of a layer, so it belongs "
              "only in \"output\"");
    EXPECT_TRUE(Contains(e.hint(), "put it in output.activation"));
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
}

TEST(Validate, SoftmaxInTheStackIsAtTheActivationsName) {
  RunSpec spec;
  spec.stack.layer.activation = default_spec(Activation::kSoftmax);
  const SpecProblem p = problem_of(spec);
  EXPECT_EQ(p.path, "stack.activation");
  EXPECT_TRUE(p.at_name);
  EXPECT_EQ(p.op, std::optional<std::size_t>(0));
  // As the output activation it is fine.
  spec.stack.layer.activation = default_spec(Activation::kRelu);
  spec.output = LayerSpec{};
  spec.output->width = 10;
  spec.output->activation = default_spec(Activation::kSoftmax);
  EXPECT_FALSE(find_spec_problem(spec));
}

TEST(Validate, StackDepthAndWidthsAreInRange) {
  RunSpec spec;
  spec.stack.depth = 0;
  EXPECT_EQ(problem_of(spec).path, "stack.depth");
  spec.stack.depth = 3;
  spec.stack.layer.width = 0;
  EXPECT_EQ(problem_of(spec).path, "stack");
  EXPECT_EQ(problem_of(spec).what, "width 0 is outside [1, 16777216]");
  spec.stack.layer.width = 8;
  spec.output = LayerSpec{};
  spec.output->width = spec_limits::kMaxWidth + 1;
  EXPECT_EQ(problem_of(spec).path, "output");
  EXPECT_EQ(problem_of(spec).op, std::optional<std::size_t>(3));
}

TEST(Validate, SoftmaxBeforeTheLastOpSaysWhatFollowsIt) {
  const SpecProblem followed = problem_of(with_layers({dense(8, Activation::kSoftmax), dense(4)}));
  EXPECT_EQ(followed.path, "layers[0].activation");
  EXPECT_EQ(followed.what,
            "softmax may only be the network's very last op, but layers[1] follows it");
  EXPECT_EQ(followed.op, std::optional<std::size_t>(0));

  const SpecProblem repeated =
      problem_of(with_layers({block({dense(8, Activation::kSoftmax)}, 2)}));
  EXPECT_EQ(repeated.path, "layers[0].block[0].activation");
  EXPECT_TRUE(Contains(repeated.what, "but layers[0] repeats it 2 times"));

  LayerItem activation = op_item(OpKind::kActivation);
  activation.op.activation = default_spec(Activation::kSoftmax);
  const SpecProblem residual = problem_of(with_layers({block({dense(8), activation}, 1, true)}));
  EXPECT_EQ(residual.path, "layers[0].block[1].activation");
  EXPECT_TRUE(Contains(residual.what, "the residual addition of layers[0] follows it"));
  EXPECT_EQ(residual.op, std::optional<std::size_t>(2));  // after the residual begin and the dense

  EXPECT_FALSE(find_spec_problem(with_layers({dense(8), dense(4, Activation::kSoftmax)})));
}

TEST(Validate, ItemsThatCameFromAConfigKeepTheirPath) {
  RunSpec spec = with_layers({dense(8, Activation::kSoftmax), dense(4)});
  spec.layers[0].path = "layers[5]";
  spec.layers[1].path = "layers[6]";
  EXPECT_EQ(problem_of(spec).path, "layers[5].activation");
  EXPECT_TRUE(Contains(problem_of(spec).what, "but layers[6] follows it"));
  // Two items with one path are one config item: a dense layer and its norm.
  spec.layers[1] = op_item(OpKind::kNorm);
  spec.layers[1].path = "layers[5]";
  EXPECT_TRUE(Contains(problem_of(spec).what, "but its norm follows it"));
}

TEST(Validate, ResidualWithoutAProjectionKeepsTheWidth) {
  const SpecProblem p = problem_of(with_layers({dense(512), block({dense(2048)}, 4, true)}));
  EXPECT_EQ(p.path, "layers[1].residual");
  EXPECT_EQ(p.what,
            "the block's input is 512 wide but its output is 2048 wide, so the skip path cannot be "
            "added to it");
  EXPECT_EQ(p.also, std::vector<std::string>{"layers[1]"});
  EXPECT_EQ(p.op, std::optional<std::size_t>(1));  // the residual begin

  RunSpec projected = with_layers({dense(512), block({dense(2048)}, 4, true)});
  projected.layers[1].residual->projection = true;
  EXPECT_FALSE(find_spec_problem(projected));

  // Fine in the first repetition of the enclosing block, wrong from its second on.
  const SpecProblem second =
      problem_of(with_layers({dense(8), block({block({dense(8)}, 1, true), dense(16)}, 3)}));
  EXPECT_EQ(second.path, "layers[1].block[0].residual");
  EXPECT_TRUE(Contains(second.what, "(in the second repetition of layers[1]"));
}

TEST(Validate, OpCountIsLimitedWithoutExpanding) {
  const SpecProblem nested =
      problem_of(with_layers({block({block({dense(3)}, 1000)}, spec_limits::kMaxDepth)}));
  EXPECT_EQ(nested.path, "layers[0].repeat");
  EXPECT_EQ(nested.what,
            "this block expands to 1000000000 ops (1000000 x 1000), more than the 2000000 a "
            "network may have");
  EXPECT_FALSE(nested.op);
  const SpecProblem sum =
      problem_of(with_layers({block({dense(3), dense(3)}, spec_limits::kMaxDepth), dense(3)}));
  EXPECT_EQ(sum.path, "layers");
  EXPECT_TRUE(Contains(sum.what, "2000001 ops"));
  EXPECT_FALSE(
      find_spec_problem(with_layers({block({dense(3), dense(3)}, spec_limits::kMaxDepth)})));
}

TEST(Validate, BlocksAreShapedAsAConfigWritesThem) {
  LayerItem repeated = dense(8);
  repeated.repeat = 2;
  EXPECT_EQ(problem_of(with_layers({repeated})).path, "layers[0]");
  EXPECT_EQ(problem_of(with_layers({block({dense(8)}, 0)})).path, "layers[0].repeat");
  LayerItem post_norm = block({dense(8)});
  post_norm.post_norm = NormSpec{};
  EXPECT_TRUE(
      Contains(problem_of(with_layers({post_norm})).what, "a post-norm without a residual"));
}

TEST(Validate, EveryOpsOwnValuesAreNamedByItsItem) {
  LayerItem norm = op_item(OpKind::kNorm);
  norm.op.norm.eps = -1;
  const SpecProblem eps = problem_of(with_layers({dense(8), norm}));
  EXPECT_EQ(eps.path, "layers[1]");
  EXPECT_EQ(eps.what, "layer_norm eps is -1; it must be a finite number > 0");
  EXPECT_EQ(eps.op, std::optional<std::size_t>(1));

  LayerItem dropout = op_item(OpKind::kDropout);
  dropout.op.dropout = 1;
  EXPECT_EQ(problem_of(with_layers({dense(8), dropout})).what, "dropout rate 1 is outside [0, 1)");
  EXPECT_FALSE(find_spec_problem(with_layers({dense(8, Activation::kElu)})));
  LayerItem elu = dense(8, Activation::kElu);
  elu.op.dense.activation.param = std::nan("");
  EXPECT_TRUE(Contains(problem_of(with_layers({elu})).what, "elu alpha is NaN"));
  // A block's own values: its residual, and its post-norm after the first repetition's addition.
  LayerItem post = block({dense(8)}, 2, true);
  post.post_norm = NormSpec{NormKind::kLayerNorm, 0.0};
  const SpecProblem post_eps = problem_of(with_layers({dense(8), post}));
  EXPECT_EQ(post_eps.path, "layers[1]");
  EXPECT_EQ(post_eps.op, std::optional<std::size_t>(4));  // dense, begin, dense, end, norm
  LayerItem scale = block({dense(8)}, 1, true);
  scale.residual->scale = std::numeric_limits<double>::infinity();
  EXPECT_EQ(problem_of(with_layers({dense(8), scale})).what,
            "residual scale is inf; it must be a finite number");
  EXPECT_EQ(problem_of(with_layers({dense(8), scale})).op, std::optional<std::size_t>(1));
  LayerItem gain = dense(8);
  gain.op.dense.init.gain = -1;
  EXPECT_TRUE(Contains(problem_of(with_layers({gain})).what, "init gain is -1"));
}

TEST(Validate, InputWidthBatchAndDistribution) {
  RunSpec spec;
  spec.input.batch = 0;
  EXPECT_EQ(problem_of(spec).path, "input");
  EXPECT_EQ(problem_of(spec).what, "batch 0 is outside [1, 16777216]");
  spec.input.batch = 4;
  spec.input.distribution = InputDistribution::kUniform;
  spec.input.low = 1;
  spec.input.high = 1;
  const SpecProblem p = problem_of(spec);
  EXPECT_EQ(p.path, "input");
  EXPECT_EQ(p.what, "low (1.0) must be less than high (1.0)");
  EXPECT_EQ(p.also, (std::vector<std::string>{"input.low", "input.high"}));
  // The normal distribution does not use low and high.
  spec.input.distribution = InputDistribution::kNormal;
  EXPECT_FALSE(find_spec_problem(spec));
}

TEST(Validate, LossAgainstTheOutput) {
  RunSpec spec;
  spec.output = LayerSpec{};
  spec.output->width = 1;
  spec.output->activation = default_spec(Activation::kLinear);
  spec.loss.kind = LossKind::kSoftmaxCrossEntropy;
  spec.loss.classes = 1;
  EXPECT_EQ(problem_of(spec).path, "loss");
  spec.output->width = 10;
  spec.loss.classes = 5;
  EXPECT_EQ(problem_of(spec).path, "loss.classes");
  EXPECT_EQ(problem_of(spec).what, "classes is 5 but the network has 10 output units");
  spec.loss.classes = 10;
  EXPECT_FALSE(find_spec_problem(spec));

  spec.output->activation = default_spec(Activation::kSoftmax);
  const SpecProblem logits = problem_of(spec);
  EXPECT_EQ(logits.path, "output.activation");
  EXPECT_EQ(logits.what,
            "the network ends in softmax, but loss \"softmax_cross_entropy\" takes logits");
  EXPECT_EQ(logits.also, std::vector<std::string>{"loss"});
  // A bounded output is the diagnosis's to name, not a refusal.
  spec.output->activation = default_spec(Activation::kSigmoid);
  EXPECT_FALSE(find_spec_problem(spec));

  // Dropout after the output does not hide it.
  RunSpec layers = with_layers({dense(3, Activation::kSigmoid), op_item(OpKind::kDropout)});
  layers.loss.kind = LossKind::kSigmoidBce;
  EXPECT_EQ(problem_of(layers).path, "layers[0].activation");
}

TEST(Validate, OptimizerStatsAndDiagnosisValues) {
  RunSpec spec;
  spec.optimizer.learning_rate = 0;
  EXPECT_EQ(problem_of(spec).path, "optimizer.learning_rate");
  spec.optimizer = {};
  spec.optimizer.beta2 = 1;
  EXPECT_EQ(problem_of(spec).path, "optimizer.beta2");
  spec.optimizer = {};
  spec.stats.saturation_threshold = 1;
  EXPECT_EQ(problem_of(spec).path, "stats.saturation_threshold");
  spec.stats = {};
  spec.stats.jacobian_examples = spec_limits::kMaxJacobianExamples + 1;
  EXPECT_EQ(problem_of(spec).path, "stats.jacobian_examples");
  spec.stats = {};
  spec.diagnosis.correlation = 1;
  EXPECT_EQ(problem_of(spec).path, "diagnosis.correlation");
  spec.diagnosis = {};
  spec.diagnosis.deep_layers = 0;
  EXPECT_EQ(problem_of(spec).path, "diagnosis.deep_layers");
  spec.diagnosis = {};
  spec.diagnosis.gradient_error_decades = 1;
  EXPECT_EQ(problem_of(spec).path, "diagnosis.gradient_error_decades");
  EXPECT_EQ(problem_of(spec).what, "is below diagnosis.gradient_warning_decades");
  spec.diagnosis = {};
  spec.diagnosis.update_ratio_max = spec.diagnosis.update_ratio_min;
  EXPECT_EQ(problem_of(spec).path, "diagnosis.update_ratio_max");
}

TEST(Validate, OutputWidthIsTheLastDenseOpsOrTheInputs) {
  RunSpec spec;
  EXPECT_EQ(output_width(spec), spec.stack.layer.width);
  spec.output = LayerSpec{};
  spec.output->width = 3;
  EXPECT_EQ(output_width(spec), 3);
  EXPECT_EQ(output_width(with_layers({dense(5), block({dense(7)}, 2), op_item(OpKind::kNorm)})), 7);
  EXPECT_EQ(output_width(with_layers({op_item(OpKind::kNorm)}, 6)), 6);
}

}  // namespace
}  // namespace gradscope
