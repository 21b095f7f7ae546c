// The rules a config meets beyond one value, as the reader reports them with the file: softmax
// only at the end, the loss against the output, the optimizer's and the diagnosis's values.
#include <gtest/gtest.h>

#include "config_test_support.hpp"

namespace {

using namespace config_test;

// ---------------------------------------------------------------------------------------------
// Softmax

TEST(ConfigSoftmax, AllowedAsTheOutputActivation) {
  const RunSpec spec = parse(R"({"output": {"width": 10, "activation": "softmax"}})");
  ASSERT_TRUE(spec.output.has_value());
  EXPECT_EQ(spec.output->activation.kind, Activation::kSoftmax);
}

TEST(ConfigSoftmax, RejectedInTheStackWithTheReason) {
  const Error e = config_error(R"({"stack": {"activation": "softmax"}})");
  EXPECT_TRUE(Contains(what(e), "cfg.json: stack.activation: "));
  EXPECT_TRUE(Contains(what(e), "normalises across the units of a layer"));
  EXPECT_TRUE(Contains(what(e), "belongs only in \"output\""));
  EXPECT_TRUE(Contains(e.hint(), "output.activation"));
  EXPECT_TRUE(Contains(e.hint(), "relu, leaky_relu"));
  const std::string hidden_list = e.hint().substr(e.hint().find("elementwise activation: "));
  EXPECT_FALSE(Contains(hidden_list, "softmax"));

  const Error object_form = config_error(R"({"stack": {"activation": {"name": "softmax"}}})");
  EXPECT_TRUE(Contains(what(object_form), "stack.activation.name: "));
}

// ---------------------------------------------------------------------------------------------
// "diagnosis"

TEST(ConfigDiagnosis, ThresholdsAreReadCheckedAndWrittenBack) {
  const RunSpec spec = parse(
      R"({"diagnosis": {"gradient_warning_decades": 3, "dead_fraction": 0.5, "deep_layers": 20}})");
  EXPECT_EQ(spec.diagnosis.gradient_warning_decades, 3.0);
  EXPECT_EQ(spec.diagnosis.gradient_error_decades, 4.0);
  EXPECT_EQ(spec.diagnosis.dead_fraction, 0.5);
  EXPECT_EQ(spec.diagnosis.deep_layers, 20);
  // A warning threshold raised above the default error threshold raises that with it.
  EXPECT_EQ(
      parse(R"({"diagnosis": {"gradient_warning_decades": 6}})").diagnosis.gradient_error_decades,
      6.0);
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  EXPECT_EQ(j["diagnosis"]["dead_fraction"], 0.5);
  EXPECT_EQ(j["diagnosis"]["deep_layers"], 20);
  EXPECT_EQ(parse(gradscope::run_spec_to_json(spec)).diagnosis.deep_layers, 20);
}

TEST(ConfigDiagnosis, BadThresholdsNameTheKeyAndTheRule) {
  const auto error_of = [](const std::string& text) {
    try {
      parse(text);
    } catch (const Error& e) {
      return what(e) + " | " + e.hint();
    }
    return std::string("no error");
  };
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"correlation": 1}})"),
                       "diagnosis.correlation: must be between 0 and 1"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"update_ratio_min": -1}})"),
                       "diagnosis.update_ratio_min: must be a positive number"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"gradient_error_decades": 1}})"),
                       "diagnosis.gradient_error_decades: is below"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"deep_layers": 0}})"), "diagnosis.deep_layers"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"dead_fractoin": 0.3}})"),
                       "did you mean \"dead_fraction\"?"));
}

TEST(ConfigDiagnosis, BoundedOutputUnderSoftmaxCrossEntropyIsLeftToTheDiagnosis) {
  // A common mistake the diagnosis names (sigmoid_output_multiclass) rather than a refusal.
  const RunSpec spec = parse(
      R"({"stack": {"depth": 2, "width": 8}, "output": {"width": 4, "activation": "sigmoid"},
          "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(spec.loss.kind, LossKind::kSoftmaxCrossEntropy);
  EXPECT_THROW(parse(R"({"stack": {"depth": 2, "width": 8},
                         "output": {"width": 4, "activation": "relu"},
                         "loss": "softmax_cross_entropy"})"),
               Error);
}

// ---------------------------------------------------------------------------------------------
// "input"

// The rule lives in core (validate.cpp), which has no JSON library: it writes the numbers as
// JSON does ("1.0" for a whole number, "1e+20"), in the shortest digits that read back.
TEST(ConfigInput, UniformBoundsInTheMessageAreWrittenAsJsonWritesThem) {
  for (const double x : {1.0, -1.0, 0.5, 1e-5, 0.0001, 0.00012, 1e15, 1e16, 123456789.125, 1e20,
                         -2.5e-300, 1.7976931348623157e308, 5e-324, 0.1, 100.0, 1e100}) {
    const std::string number = Json(x).dump();
    SCOPED_TRACE(number);
    const Error e = config_error(R"({"input": {"distribution": "uniform", "low": )" + number +
                                 R"(, "high": )" + number + "}}");
    EXPECT_EQ(what(e),
              "cfg.json: input: low (" + number + ") must be less than high (" + number + ")");
  }
  // nlohmann's dump, which the message used before, can give more digits than the value needs
  // (-0.008468410000000001); the message now shows the number as it was written.
  const Error e = config_error(
      R"({"input": {"distribution": "uniform", "low": -0.00846841, "high": -0.00846841}})");
  EXPECT_EQ(what(e), "cfg.json: input: low (-0.00846841) must be less than high (-0.00846841)");
}

// ---------------------------------------------------------------------------------------------
// "loss"

TEST(ConfigLoss, DefaultsToTheProbeAndTakesANameOrAnObject) {
  EXPECT_EQ(parse("{}").loss.kind, LossKind::kProbe);
  EXPECT_EQ(parse(R"({"loss": "probe"})").loss.kind, LossKind::kProbe);
  EXPECT_EQ(parse(R"({"loss": "mse"})").loss.kind, LossKind::kMse);
  EXPECT_EQ(parse(R"({"loss": {"name": "mse"}})").loss.kind, LossKind::kMse);
  EXPECT_EQ(parse(R"({"output": {"width": 3}, "loss": "sigmoid_bce"})").loss.kind,
            LossKind::kSigmoidBce);
  EXPECT_EQ(parse("{}").loss.classes, 0);
}

TEST(ConfigLoss, SoftmaxCrossEntropyClassesDefaultToTheOutputWidth) {
  const RunSpec stack = parse(R"({"output": {"width": 10}, "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(stack.loss.kind, LossKind::kSoftmaxCrossEntropy);
  EXPECT_EQ(stack.loss.classes, 10);
  EXPECT_EQ(parse(R"({"output": {"width": 10},
                      "loss": {"name": "softmax_cross_entropy", "classes": 10}})")
                .loss.classes,
            10);
  // Without an output layer the stack's last layer is the output (here linear).
  EXPECT_EQ(parse(R"({"stack": {"width": 6, "activation": "linear"},
                      "loss": "softmax_cross_entropy"})")
                .loss.classes,
            6);
  const RunSpec layers = parse(R"({"layers": [{"width": 16}, {"width": 5, "activation": "linear"}],
                                  "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(layers.loss.classes, 5);
  // A network that ends in a norm or a residual addition outputs unbounded values: logits.
  EXPECT_EQ(parse(R"({"layers": [{"width": 4}, {"norm": "layer_norm"}],
                      "loss": "softmax_cross_entropy"})")
                .loss.classes,
            4);
  EXPECT_EQ(parse(R"({"layers": [{"width": 4}, {"residual": true, "block": [{"width": 4}]}],
                      "loss": "softmax_cross_entropy"})")
                .loss.classes,
            4);
}

TEST(ConfigLoss, ClassesMustEqualTheOutputWidth) {
  const Error e = config_error(
      R"({"output": {"width": 10}, "loss": {"name": "softmax_cross_entropy", "classes": 5}})");
  EXPECT_EQ(what(e), "cfg.json: loss.classes: classes is 5 but the network has 10 output units");
  EXPECT_TRUE(Contains(e.hint(), "set \"classes\": 10 or leave it out"));
  EXPECT_TRUE(Contains(
      what(config_error(
          R"({"output": {"width": 3}, "loss": {"name": "softmax_cross_entropy", "classes": 0}})")),
      "loss.classes: expected a positive integer"));

  const Error one = config_error(R"({"output": {"width": 1}, "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(what(one),
            "cfg.json: loss: softmax_cross_entropy needs at least 2 output units, the network "
            "has 1");
  EXPECT_TRUE(Contains(one.hint(), "\"sigmoid_bce\""));
}

TEST(ConfigLoss, LossesOnLogitsRefuseASquashedOutput) {
  const Error softmax = config_error(
      R"({"output": {"width": 10, "activation": "softmax"}, "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(what(softmax),
            "cfg.json: output.activation: the network ends in softmax, but loss "
            "\"softmax_cross_entropy\" takes logits");
  EXPECT_TRUE(Contains(softmax.hint(), "the loss applies softmax itself; use a linear output"));

  const Error layers = config_error(
      R"({"layers": [{"width": 8}, {"width": 3, "activation": "softmax"}], "loss": "softmax_cross_entropy"})");
  EXPECT_TRUE(
      Contains(what(layers), "cfg.json: layers[1].activation: the network ends in softmax"));
  EXPECT_TRUE(Contains(layers.hint(), "the loss applies softmax itself; use a linear output"));

  const Error sigmoid = config_error(
      R"({"layers": [{"width": 8}, {"width": 3, "activation": "sigmoid"}], "loss": "sigmoid_bce"})");
  EXPECT_EQ(what(sigmoid),
            "cfg.json: layers[1].activation: the network ends in sigmoid, but loss "
            "\"sigmoid_bce\" takes logits");
  EXPECT_TRUE(Contains(sigmoid.hint(), "the loss applies sigmoid itself; use a linear output"));

  // Dropout after the output does not hide it.
  EXPECT_TRUE(Contains(
      what(config_error(R"({"layers": [{"width": 3, "activation": "sigmoid"}, {"dropout": 0.1}],
                            "loss": "sigmoid_bce"})")),
      "layers[0].activation: the network ends in sigmoid"));
  // The stack's own relu: the hint shows how to add a linear output layer.
  const Error stack = config_error(R"({"loss": "softmax_cross_entropy"})");
  EXPECT_TRUE(Contains(what(stack), "cfg.json: stack.activation: the network ends in relu"));
  EXPECT_TRUE(Contains(stack.hint(), "\"output\": {\"width\": 10}"));

  // The error is where the override put the loss, when that is what changed.
  EXPECT_TRUE(Contains(what(config_error(R"({"output": {"width": 4, "activation": "softmax"}})",
                                         {{"loss", "softmax_cross_entropy", "--set loss"}})),
                       "--set loss: output.activation: the network ends in softmax"));
}

TEST(ConfigLoss, OtherLossesTakeAnyOutput) {
  // Multi-label: one sigmoid per unit, any number of units.
  EXPECT_EQ(parse(R"({"output": {"width": 7}, "loss": "sigmoid_bce"})").loss.kind,
            LossKind::kSigmoidBce);
  EXPECT_EQ(parse(R"({"output": {"width": 1}, "loss": "sigmoid_bce"})").loss.kind,
            LossKind::kSigmoidBce);
  EXPECT_EQ(parse(R"({"output": {"width": 4, "activation": "softmax"}, "loss": "mse"})").loss.kind,
            LossKind::kMse);
  EXPECT_EQ(parse(R"({"output": {"width": 4, "activation": "softmax"}})").loss.kind,
            LossKind::kProbe);
}

TEST(ConfigLoss, UnknownNamesAndParameters) {
  const Error name = config_error(R"({"loss": "mes"})");
  EXPECT_EQ(what(name), "cfg.json: loss: unknown loss \"mes\"");
  EXPECT_EQ(name.hint(),
            "did you mean \"mse\"? choose one of: probe, mse, softmax_cross_entropy, sigmoid_bce");
  EXPECT_TRUE(Contains(what(config_error(R"({"loss": {"name": "crossentropy"}})")),
                       "loss.name: unknown loss \"crossentropy\""));

  const Error classes = config_error(R"({"loss": {"name": "mse", "classes": 3}})");
  EXPECT_EQ(what(classes), "cfg.json: loss.classes: mse takes no parameters");
  EXPECT_TRUE(Contains(classes.hint(), "only softmax_cross_entropy takes \"classes\""));

  const Error typo = config_error(
      R"({"output": {"width": 3}, "loss": {"name": "softmax_cross_entropy", "clases": 3}})");
  EXPECT_EQ(what(typo), "cfg.json: loss.clases: unknown key");
  EXPECT_TRUE(Contains(typo.hint(), "did you mean \"classes\"?"));

  EXPECT_TRUE(
      Contains(what(config_error(R"({"loss": 3})")), "loss: expected a loss name or an object"));
  EXPECT_TRUE(
      Contains(what(config_error(R"({"loss": {"classes": 3}})")), "loss: missing \"name\""));
}

// ---------------------------------------------------------------------------------------------
// "optimizer"

TEST(ConfigOptimizer, DefaultsToNoneAndReadsEveryParameter) {
  EXPECT_EQ(parse("{}").optimizer.kind, OptimizerKind::kNone);
  EXPECT_EQ(parse(R"({"optimizer": "none"})").optimizer.kind, OptimizerKind::kNone);

  const gradscope::OptimizerSpec defaults{};
  const gradscope::OptimizerSpec sgd =
      parse(R"({"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.5}})").optimizer;
  EXPECT_EQ(sgd.kind, OptimizerKind::kSgd);
  EXPECT_EQ(sgd.learning_rate, 0.01);
  EXPECT_EQ(sgd.momentum, 0.5);
  const gradscope::OptimizerSpec plain_sgd = parse(R"({"optimizer": "sgd"})").optimizer;
  EXPECT_EQ(plain_sgd.learning_rate, defaults.learning_rate);
  EXPECT_EQ(plain_sgd.momentum, defaults.momentum);
  EXPECT_EQ(parse(R"({"optimizer": {"name": "sgd", "momentum": 0}})").optimizer.momentum, 0.0);

  const gradscope::OptimizerSpec adam = parse(R"({"optimizer": {"name": "adam",
      "learning_rate": 3e-4, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}})")
                                            .optimizer;
  EXPECT_EQ(adam.kind, OptimizerKind::kAdam);
  EXPECT_EQ(adam.learning_rate, 3e-4);
  EXPECT_EQ(adam.beta1, 0.8);
  EXPECT_EQ(adam.beta2, 0.99);
  EXPECT_EQ(adam.eps, 1e-6);
  const gradscope::OptimizerSpec plain_adam = parse(R"({"optimizer": {"name": "adam"}})").optimizer;
  EXPECT_EQ(plain_adam.learning_rate, defaults.learning_rate);
  EXPECT_EQ(plain_adam.beta1, defaults.beta1);
  EXPECT_EQ(plain_adam.beta2, defaults.beta2);
  EXPECT_EQ(plain_adam.eps, defaults.eps);
}

TEST(ConfigOptimizer, RangesAndParametersEachOptimizerTakes) {
  const Error lr = config_error(R"({"optimizer": {"name": "sgd", "learning_rate": 0}})");
  EXPECT_EQ(what(lr), "cfg.json: optimizer.learning_rate: must be greater than 0, got 0");
  EXPECT_TRUE(
      Contains(what(config_error(R"({"optimizer": {"name": "adam", "learning_rate": -1}})")),
               "optimizer.learning_rate: must be greater than 0, got -1"));
  const Error momentum = config_error(R"({"optimizer": {"name": "sgd", "momentum": 1}})");
  EXPECT_EQ(what(momentum), "cfg.json: optimizer.momentum: must be in [0, 1), got 1");
  EXPECT_TRUE(Contains(what(config_error(R"({"optimizer": {"name": "adam", "beta1": -0.1}})")),
                       "optimizer.beta1: must be in [0, 1), got -0.1"));
  EXPECT_TRUE(Contains(what(config_error(R"({"optimizer": {"name": "adam", "beta2": 1}})")),
                       "optimizer.beta2: must be in [0, 1), got 1"));
  EXPECT_TRUE(Contains(what(config_error(R"({"optimizer": {"name": "adam", "eps": 0}})")),
                       "optimizer.eps: must be greater than 0, got 0"));

  const Error beta = config_error(R"({"optimizer": {"name": "sgd", "beta1": 0.9}})");
  EXPECT_EQ(what(beta), "cfg.json: optimizer.beta1: sgd does not take \"beta1\"");
  EXPECT_EQ(beta.hint(), "sgd takes: learning_rate, momentum");
  const Error adam_momentum = config_error(R"({"optimizer": {"name": "adam", "momentum": 0.9}})");
  EXPECT_EQ(what(adam_momentum), "cfg.json: optimizer.momentum: adam does not take \"momentum\"");
  const Error none = config_error(R"({"optimizer": {"name": "none", "learning_rate": 0.1}})");
  EXPECT_EQ(what(none), "cfg.json: optimizer.learning_rate: none takes no parameters");

  const Error name = config_error(R"({"optimizer": "adma"})");
  EXPECT_EQ(what(name), "cfg.json: optimizer: unknown optimizer \"adma\"");
  EXPECT_EQ(name.hint(), "did you mean \"adam\"? choose one of: none, sgd, adam");
  const Error typo = config_error(R"({"optimizer": {"name": "sgd", "learning_rat": 0.1}})");
  EXPECT_EQ(what(typo), "cfg.json: optimizer.learning_rat: unknown key");
  EXPECT_TRUE(Contains(typo.hint(), "did you mean \"learning_rate\"?"));
}

}  // namespace
