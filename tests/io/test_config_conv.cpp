// Convolutional networks in the config: image inputs, conv, pool and flatten items, each key read,
// every refusal with its JSON path, hint and exit code 2, the shapes expand_ops resolves, and the
// resolved config's round trip.
#include <gtest/gtest.h>

#include "config_test_support.hpp"
#include "gradscope/core/validate.hpp"

namespace {

using namespace config_test;
using gradscope::ConvSpec;
using gradscope::ExitCode;
using gradscope::ImageShape;
using gradscope::PoolKind;
using gradscope::PoolSpec;

// A config on an image input of 3 x 8 x 8 (or `input`) with these items.
std::string image_layers(const std::string& items,
                         const std::string& input = R"({"channels": 3, "height": 8, "width": 8})") {
  return R"({"input": )" + input + R"(, "layers": [)" + items + "]}";
}

// The refusal of `text`: exit code 2 (a bad config), its message naming `path` and its hint
// containing `hint`.
void expect_refused(const std::string& text, const std::string& path, const std::string& what_part,
                    const std::string& hint_part) {
  SCOPED_TRACE(text);
  const Error e = config_error(text);
  EXPECT_EQ(e.code(), ExitCode::kUsage);
  EXPECT_TRUE(Contains(what(e), "cfg.json: " + path + ": " + what_part));
  EXPECT_TRUE(Contains(e.hint(), hint_part));
}

void expect_same_conv(const ConvSpec& a, const ConvSpec& b) {
  EXPECT_EQ(a.channels, b.channels);
  EXPECT_EQ(a.kernel_h, b.kernel_h);
  EXPECT_EQ(a.kernel_w, b.kernel_w);
  EXPECT_EQ(a.stride_h, b.stride_h);
  EXPECT_EQ(a.stride_w, b.stride_w);
  EXPECT_EQ(a.pad_h, b.pad_h);
  EXPECT_EQ(a.pad_w, b.pad_w);
  EXPECT_EQ(a.dilation_h, b.dilation_h);
  EXPECT_EQ(a.dilation_w, b.dilation_w);
  EXPECT_EQ(a.groups, b.groups);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.activation.kind, b.activation.kind);
  EXPECT_EQ(a.activation.param, b.activation.param);
  expect_same_init(a.init, b.init);
  EXPECT_EQ(a.bias_init.kind, b.bias_init.kind);
  EXPECT_EQ(a.bias_init.value, b.bias_init.value);
  EXPECT_EQ(a.bias_init.std, b.bias_init.std);
}

void expect_same_pool(const PoolSpec& a, const PoolSpec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.kernel_h, b.kernel_h);
  EXPECT_EQ(a.kernel_w, b.kernel_w);
  EXPECT_EQ(a.stride_h, b.stride_h);
  EXPECT_EQ(a.stride_w, b.stride_w);
  EXPECT_EQ(a.pad_h, b.pad_h);
  EXPECT_EQ(a.pad_w, b.pad_w);
}

// expect_round_trip, and the fields it does not compare: the input image and every conv and
// pool op (compared on the expanded ops, which hold blocks' items too).
void expect_image_round_trip(const RunSpec& spec) {
  expect_round_trip(spec);
  const RunSpec back =
      gradscope::parse_run_spec(gradscope::run_spec_to_json(spec), "<resolved>", "unused");
  EXPECT_EQ(back.input.image, spec.input.image);
  const std::vector<OpSpec> a = gradscope::expand_ops(spec);
  const std::vector<OpSpec> b = gradscope::expand_ops(back);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("op " + std::to_string(i));
    ASSERT_EQ(a[i].kind, b[i].kind);
    EXPECT_EQ(a[i].image, b[i].image);
    if (a[i].kind == OpKind::kConv) expect_same_conv(a[i].conv, b[i].conv);
    if (a[i].kind == OpKind::kPool) expect_same_pool(a[i].pool, b[i].pool);
  }
}

// ---------------------------------------------------------------------------------------------
// Image inputs

TEST(ConfigImage, AnImageInputHoldsItsShapeAndItsFeaturesAsTheWidth) {
  const RunSpec spec =
      parse(image_layers(R"({"flatten": {}}, {"width": 10})",
                         R"({"channels": 3, "height": 32, "width": 16, "batch": 8})"));
  EXPECT_EQ(spec.input.image, (ImageShape{3, 32, 16}));
  EXPECT_EQ(spec.input.width, 3 * 32 * 16);
  EXPECT_EQ(spec.input.batch, 8);
  EXPECT_EQ(spec.input.tokens, 1);
  // A vector input has no image.
  EXPECT_FALSE(parse("{}").input.image.is_image());
  EXPECT_FALSE(parse(R"({"input": {"width": 12}})").input.image.is_image());
}

TEST(ConfigImage, AnImageInputWorksWithAStackToo) {
  // A stack of dense layers reads the image as its C H W features.
  const RunSpec spec = parse(R"({"input": {"channels": 2, "height": 3, "width": 4},
                                 "stack": {"depth": 2, "width": 5}})");
  EXPECT_EQ(spec.input.width, 24);
  EXPECT_EQ(widths_of(spec), (std::vector<int>{5, 5}));
}

TEST(ConfigImage, EverySizeMustBeGivenAndPositive) {
  const std::string rest = R"(, "layers": [{"flatten": {}}]})";
  expect_refused(R"({"input": {"channels": 3, "width": 8})" + rest, "input", "missing \"height\"",
                 R"("input": {"channels": 3, "height": 32, "width": 32})");
  expect_refused(R"({"input": {"channels": 3, "height": 8})" + rest, "input", "missing \"width\"",
                 "give all three");
  expect_refused(R"({"input": {"channels": 0, "height": 8, "width": 8})" + rest, "input.channels",
                 "expected a positive integer, got 0", "use a whole number from 1");
  expect_refused(R"({"input": {"channels": 3, "height": -2, "width": 8})" + rest, "input.height",
                 "expected a positive integer, got -2", "use a whole number from 1");
  expect_refused(R"({"input": {"channels": 3, "height": 8, "width": 0.5})" + rest, "input.width",
                 "expected a positive integer, got 0.5 (not a whole number)",
                 "use a whole number from 1");
  expect_refused(R"({"input": {"channels": 3, "height": "8", "width": 8})" + rest, "input.height",
                 "expected a positive integer", "remove the quotes: 8");
  // 4096 x 4096 x 2 = 2^25 features, twice the limit.
  expect_refused(R"({"input": {"channels": 2, "height": 4096, "width": 4096})" + rest, "input",
                 "channels x height x width = 33554432 features, more than the 16777216",
                 "lower input.channels, input.height or input.width");
}

TEST(ConfigImage, TokensAndHeightWithoutChannelsAreRefused) {
  expect_refused(R"({"input": {"channels": 3, "height": 8, "width": 8, "tokens": 4},
                     "layers": [{"flatten": {}}]})",
                 "input.tokens", "an image input (\"channels\" is given) takes no \"tokens\"",
                 "remove \"tokens\"");
  expect_refused(R"({"input": {"height": 8, "width": 8}})", "input.height",
                 "\"height\" without \"channels\"", "remove \"height\"");
  const Error typo = config_error(R"({"input": {"channel": 3}})");
  EXPECT_TRUE(Contains(what(typo), "input.channel: unknown key"));
  EXPECT_TRUE(Contains(typo.hint(), "did you mean \"channels\"?"));
}

// ---------------------------------------------------------------------------------------------
// Conv items

TEST(ConfigConv, EveryKeyIsRead) {
  const RunSpec spec = parse(image_layers(
      R"({"conv": {"channels": 6, "kernel": [3, 1], "stride": [2, 1], "padding": [1, 0],
                   "dilation": [1, 2], "groups": 3, "bias": true},
          "activation": {"name": "leaky_relu", "slope": 0.1},
          "init": {"name": "orthogonal", "gain": 1.5}, "bias_init": {"name": "constant", "value": 0.25}})"));
  ASSERT_EQ(spec.layers.size(), 1U);
  EXPECT_EQ(spec.layers[0].path, "layers[0]");
  ASSERT_EQ(spec.layers[0].op.kind, OpKind::kConv);
  const ConvSpec& c = spec.layers[0].op.conv;
  EXPECT_EQ(c.channels, 6);
  EXPECT_EQ(c.kernel_h, 3);
  EXPECT_EQ(c.kernel_w, 1);
  EXPECT_EQ(c.stride_h, 2);
  EXPECT_EQ(c.stride_w, 1);
  EXPECT_EQ(c.pad_h, 1);
  EXPECT_EQ(c.pad_w, 0);
  EXPECT_EQ(c.dilation_h, 1);
  EXPECT_EQ(c.dilation_w, 2);
  EXPECT_EQ(c.groups, 3);
  EXPECT_TRUE(c.bias);
  EXPECT_EQ(c.activation.kind, Activation::kLeakyRelu);
  EXPECT_EQ(c.activation.param, 0.1);
  EXPECT_EQ(c.init.kind, Init::kOrthogonal);
  EXPECT_EQ(c.init.gain, 1.5);
  EXPECT_EQ(c.bias_init.kind, BiasInit::kConstant);
  EXPECT_EQ(c.bias_init.value, 0.25);
}

TEST(ConfigConv, DefaultsAreADenseItemsActivationAndInitAndPyTorchsWindow) {
  const RunSpec spec = parse(image_layers(R"({"conv": {"channels": 4, "kernel": 5}})"));
  const ConvSpec& c = spec.layers[0].op.conv;
  EXPECT_EQ(c.kernel_h, 5);
  EXPECT_EQ(c.kernel_w, 5);
  EXPECT_EQ(c.stride_h, 1);
  EXPECT_EQ(c.stride_w, 1);
  EXPECT_EQ(c.pad_h, 0);
  EXPECT_EQ(c.pad_w, 0);
  EXPECT_EQ(c.dilation_h, 1);
  EXPECT_EQ(c.dilation_w, 1);
  EXPECT_EQ(c.groups, 1);
  EXPECT_TRUE(c.bias);
  EXPECT_EQ(c.activation.kind, Activation::kRelu);  // a dense item's default
  EXPECT_EQ(c.init.kind, Init::kHeNormal);
  EXPECT_EQ(c.init.mode, FanMode::kFanIn);
  EXPECT_EQ(c.bias_init.kind, BiasInit::kZeros);
  // As a dense item: torch_default weights bring torch_default biases.
  const RunSpec torch =
      parse(image_layers(R"({"conv": {"channels": 4, "kernel": 3}, "init": "torch_default"})"));
  EXPECT_EQ(torch.layers[0].op.conv.bias_init.kind, BiasInit::kTorchDefault);
  const RunSpec no_bias =
      parse(image_layers(R"({"conv": {"channels": 4, "kernel": 3, "bias": false}})"));
  EXPECT_FALSE(no_bias.layers[0].op.conv.bias);
}

TEST(ConfigConv, ANormMakesConvNormActivationAsADenseItemDoes) {
  const RunSpec before = parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}, "norm": "batch_norm",
          "activation": "relu"})"));
  EXPECT_EQ(op_kinds(before),
            (std::vector<OpKind>{OpKind::kConv, OpKind::kNorm, OpKind::kActivation}));
  EXPECT_EQ(before.layers[0].op.conv.activation.kind, Activation::kLinear);
  EXPECT_EQ(before.layers[1].op.norm.kind, NormKind::kBatchNorm);
  EXPECT_EQ(before.layers[2].op.activation.kind, Activation::kRelu);
  for (const LayerItem& item : before.layers) EXPECT_EQ(item.path, "layers[0]");
  const RunSpec after = parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": 3}, "activation": "tanh", "norm": "batch_norm",
          "norm_position": "after_activation"})"));
  EXPECT_EQ(op_kinds(after), (std::vector<OpKind>{OpKind::kConv, OpKind::kNorm}));
  EXPECT_EQ(after.layers[0].op.conv.activation.kind, Activation::kTanh);
}

TEST(ConfigConv, ErrorsNameTheKeyAndSayWhatToWrite) {
  expect_refused(image_layers(R"({"conv": {"kernel": 3}})"), "layers[0].conv",
                 "missing \"channels\"", R"("conv": {"channels": 64, "kernel": 3, "padding": 1})");
  expect_refused(image_layers(R"({"conv": {"channels": 4}})"), "layers[0].conv",
                 "missing \"kernel\"", "its kernel size");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernal": 3}})"), "layers[0].conv.kernal",
                 "unknown key", "did you mean \"kernel\"?");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 0}})"), "layers[0].conv.kernel",
                 "expected a positive integer, got 0", "use a whole number from 1");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": [3, 3, 3]}})"),
                 "layers[0].conv.kernel", "expected a number or a pair [height, width]",
                 "\"kernel\": [1, 3] for height and width apart");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": [3, "3"]}})"),
                 "layers[0].conv.kernel[1]", "expected a positive integer", "remove the quotes: 3");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3, "padding": -1}})"),
                 "layers[0].conv.padding", "expected a non-negative integer, got -1",
                 "use a whole number from 0");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3, "stride": 0}})"),
                 "layers[0].conv.stride", "expected a positive integer, got 0",
                 "use a whole number from 1");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3, "dilation": [1, 0]}})"),
                 "layers[0].conv.dilation[1]", "expected a positive integer, got 0",
                 "use a whole number from 1");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3, "bias": "no"}})"),
                 "layers[0].conv.bias", "expected true or false", "write true or false");
  expect_refused(image_layers(R"({"conv": 64})"), "layers[0].conv", "expected an object",
                 R"("conv": {"channels": 64, "kernel": 3, "padding": 1})");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3}, "activation": "relux"})"),
                 "layers[0].activation", "unknown activation \"relux\"", "did you mean");
  // delta_orthogonal is a conv's: on a dense item it is refused, naming the item.
  expect_refused(
      R"({"input": {"width": 8, "batch": 2}, "layers": [{"width": 4, "init": "delta_orthogonal"}]})",
      "layers[0]", "init delta_orthogonal is a convolution's init",
      "put delta_orthogonal on a conv item");
  expect_refused(
      image_layers(
          R"({"conv": {"channels": 4, "kernel": 3, "bias": false}, "bias_init": "zeros"})"),
      "layers[0].bias_init", "a bias_init, but conv.bias is false", "remove \"bias_init\"");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3}, "width": 8})"), "layers[0]",
                 "\"conv\" and \"width\" cannot be in one item",
                 "a convolution's output has \"channels\" (inside \"conv\")");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3}, "dropout": 0.1})"),
                 "layers[0]", "\"conv\" and \"dropout\" cannot be in one item",
                 "write them as separate items");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 3}, "activation": "softmax"})"),
                 "layers[0]", "softmax normalises across the units of a layer, not per pixel",
                 "softmax on a last dense item after a flatten");
}

// ---------------------------------------------------------------------------------------------
// Pool and flatten items

TEST(ConfigPool, EveryKeyIsReadAndTheStrideDefaultsToTheKernel) {
  const RunSpec spec = parse(image_layers(
      R"({"pool": {"kind": "max", "kernel": 3}},
         {"pool": {"kind": "average", "kernel": [2, 1], "stride": 1, "padding": [1, 0]}},
         {"pool": {"kind": "global_average"}})"));
  ASSERT_EQ(spec.layers.size(), 3U);
  const PoolSpec& max = spec.layers[0].op.pool;
  EXPECT_EQ(spec.layers[0].op.kind, OpKind::kPool);
  EXPECT_EQ(max.kind, PoolKind::kMax);
  EXPECT_EQ(max.kernel_h, 3);
  EXPECT_EQ(max.kernel_w, 3);
  EXPECT_EQ(max.stride_h, 3);
  EXPECT_EQ(max.stride_w, 3);
  EXPECT_EQ(max.pad_h, 0);
  EXPECT_EQ(max.pad_w, 0);
  const PoolSpec& average = spec.layers[1].op.pool;
  EXPECT_EQ(average.kind, PoolKind::kAverage);
  EXPECT_EQ(average.kernel_h, 2);
  EXPECT_EQ(average.kernel_w, 1);
  EXPECT_EQ(average.stride_h, 1);
  EXPECT_EQ(average.stride_w, 1);
  EXPECT_EQ(average.pad_h, 1);
  EXPECT_EQ(average.pad_w, 0);
  EXPECT_EQ(spec.layers[2].op.pool.kind, PoolKind::kGlobalAverage);
  EXPECT_EQ(spec.layers[2].path, "layers[2]");
}

TEST(ConfigPool, ErrorsNameTheKeyAndSayWhatToWrite) {
  expect_refused(image_layers(R"({"pool": {"kernel": 2}})"), "layers[0].pool", "missing \"kind\"",
                 R"("max", "average" or "global_average")");
  expect_refused(image_layers(R"({"pool": {"kind": "avarage", "kernel": 2}})"),
                 "layers[0].pool.kind", "unknown pool kind \"avarage\"",
                 "did you mean \"average\"?");
  expect_refused(image_layers(R"({"pool": {"kind": "average"}})"), "layers[0].pool",
                 "missing \"kernel\"", "the stride defaults to the kernel");
  expect_refused(image_layers(R"({"pool": {"kind": "global_average", "kernel": 2}})"),
                 "layers[0].pool.kernel", "global_average pooling takes no \"kernel\"",
                 "\"kind\": \"average\"");
  expect_refused(image_layers(R"({"pool": {"kind": "max", "kernel": 2, "size": 2}})"),
                 "layers[0].pool.size", "unknown key",
                 "valid keys here: kind, kernel, stride, padding");
  expect_refused(image_layers(R"({"pool": {"kind": "max", "kernel": 2}, "activation": "relu"})"),
                 "layers[0]", "\"pool\" and \"activation\" cannot be in one item",
                 "\"pool\" makes it a pooling");
}

TEST(ConfigFlatten, TheOneFormIsAnEmptyObject) {
  const RunSpec spec = parse(image_layers(R"({"flatten": {}}, {"width": 10})"));
  EXPECT_EQ(spec.layers[0].op.kind, OpKind::kFlatten);
  expect_refused(image_layers(R"({"flatten": true})"), "layers[0].flatten",
                 "expected {}, got true (a boolean)", R"(write "flatten": {})");
  expect_refused(image_layers(R"({"flatten": {"start_dim": 1}})"), "layers[0].flatten.start_dim",
                 "unknown key", "it takes no keys");
}

// ---------------------------------------------------------------------------------------------
// Shapes: expand_ops and op_widths, and the rules checked against them

TEST(ConfigConvShapes, ASmallConvNetResolvesEveryImageAndWidth) {
  // 3x8x8 -> conv 4 ch, k3, p1 (8x8) -> relu -> max pool 2 (4x4) -> flatten (64) -> dense 10.
  const RunSpec spec = parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "linear"},
         {"activation": "relu"}, {"pool": {"kind": "max", "kernel": 2}}, {"flatten": {}},
         {"width": 10, "activation": "linear"})"));
  const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
  EXPECT_EQ(kinds_of(ops), (std::vector<OpKind>{OpKind::kConv, OpKind::kActivation, OpKind::kPool,
                                                OpKind::kFlatten, OpKind::kDense}));
  EXPECT_EQ(ops[0].conv.in, (ImageShape{3, 8, 8}));
  EXPECT_EQ(ops[0].image, (ImageShape{4, 8, 8}));
  EXPECT_EQ(ops[1].image, (ImageShape{4, 8, 8}));
  EXPECT_EQ(ops[2].pool.in, (ImageShape{4, 8, 8}));
  EXPECT_EQ(ops[2].image, (ImageShape{4, 4, 4}));
  EXPECT_FALSE(ops[3].image.is_image());
  EXPECT_FALSE(ops[4].image.is_image());
  EXPECT_EQ(gradscope::op_widths(spec, ops), (std::vector<int>{256, 256, 64, 64, 10}));
  EXPECT_EQ(gradscope::output_width(spec), 10);
  EXPECT_EQ(
      gradscope::op_config_paths(spec),
      (std::vector<std::string>{"layers[0]", "layers[1]", "layers[2]", "layers[3]", "layers[4]"}));
}

TEST(ConfigConvShapes, StridesDilationsAndGlobalPoolingFollowPyTorchsFormula) {
  // out = floor((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1, torch.nn.Conv2d's:
  // height (9 + 2 - 2 * 2 - 1) / 2 + 1 = 4, width (9 + 0 - 1 * 0 - 1) / 3 + 1 = 3.
  const RunSpec spec = parse(image_layers(
      R"({"conv": {"channels": 6, "kernel": [3, 1], "stride": [2, 3], "padding": [1, 0],
                   "dilation": 2, "groups": 3}},
         {"pool": {"kind": "average", "kernel": 2, "stride": 1, "padding": 1}},
         {"pool": {"kind": "global_average"}}, {"flatten": {}})",
      R"({"channels": 3, "height": 9, "width": 9})"));
  const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
  EXPECT_EQ(ops[0].image, (ImageShape{6, 4, 3}));
  EXPECT_EQ(ops[1].image, (ImageShape{6, 5, 4}));  // (4 + 2 - 2) / 1 + 1, (3 + 2 - 2) / 1 + 1
  EXPECT_EQ(ops[2].image, (ImageShape{6, 1, 1}));
  EXPECT_EQ(gradscope::op_widths(spec, ops), (std::vector<int>{72, 120, 6, 6}));
  // The network ends in a flatten of the pooled channels: the output is 6 wide.
  EXPECT_EQ(gradscope::output_width(spec), 6);
}

TEST(ConfigConvShapes, AnImageNetworkMayEndInAConvolutionOrAPooling) {
  const RunSpec conv = parse(image_layers(R"({"conv": {"channels": 2, "kernel": 3}})"));
  EXPECT_EQ(gradscope::output_width(conv), 2 * 6 * 6);
  // softmax_cross_entropy's classes default to the output width, the conv's C H W.
  const RunSpec pooled = parse(R"({"input": {"channels": 3, "height": 8, "width": 8},
      "layers": [{"conv": {"channels": 10, "kernel": 1}, "activation": "linear"},
                 {"pool": {"kind": "global_average"}}],
      "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(pooled.loss.classes, 10);
}

TEST(ConfigConvShapes, ABatchNormAndAResidualOnAnImageAreFine) {
  const RunSpec spec = parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}},
         {"repeat": 3, "residual": true,
          "block": [{"conv": {"channels": 4, "kernel": 3, "padding": 1}, "norm": "batch_norm"},
                    {"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "linear"},
                    {"dropout": 0.1}]},
         {"norm": "layer_norm"}, {"pool": {"kind": "global_average"}}, {"flatten": {}},
         {"width": 10, "activation": "linear"})"));
  const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
  ASSERT_EQ(ops.size(), 1U + 3U * 7U + 4U);
  for (std::size_t i = 0; i + 3 < ops.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(ops[i].image, (ImageShape{4, 8, 8}));
  }
}

TEST(ConfigConvShapes, AnImageOpOnAVectorIsRefusedNamingTheItem) {
  // No image at the input.
  expect_refused(R"({"input": {"width": 64}, "layers": [{"conv": {"channels": 4, "kernel": 3}}]})",
                 "layers[0]", "a convolution needs an image, but its input here is a vector of 64",
                 "give the input \"channels\" and \"height\"");
  expect_refused(R"({"input": {"width": 64}, "layers": [{"pool": {"kind": "max", "kernel": 2}}]})",
                 "layers[0]", "a pooling needs an image", "give the input \"channels\"");
  expect_refused(R"({"input": {"width": 64}, "layers": [{"flatten": {}}, {"width": 2}]})",
                 "layers[0]", "a flatten needs an image", "give the input \"channels\"");
  // The image was made a vector before it.
  expect_refused(image_layers(R"({"flatten": {}}, {"conv": {"channels": 4, "kernel": 1}})"),
                 "layers[1]", "a convolution needs an image, but its input here is a vector of 192",
                 "move it before the flatten or dense item");
  expect_refused(image_layers(R"({"width": 16}, {"pool": {"kind": "global_average"}})"),
                 "layers[1]", "a pooling needs an image", "move it before the flatten or dense");
  expect_refused(image_layers(R"({"block": [{"flatten": {}}], "repeat": 2})"), "layers[0].block[0]",
                 "a flatten needs an image, but its input here is a vector of 192 features (in the "
                 "second repetition of layers[0]",
                 "move it before");
}

TEST(ConfigConvShapes, AttentionAndAGluOnAnImageAreRefused) {
  expect_refused(image_layers(R"({"attention": {"heads": 1}})"), "layers[0].attention",
                 "an attention on a 3 x 8 x 8 image: it acts on vectors",
                 "put a flatten before it");
  expect_refused(image_layers(R"({"glu": {"hidden": 8}})"), "layers[0].glu",
                 "a gated MLP on a 3 x 8 x 8 image", "put a flatten before it");
  // After a flatten they are vectors' ops again.
  const RunSpec spec = parse(
      image_layers(R"({"flatten": {}}, {"attention": {"heads": 3}}, {"glu": {"hidden": 8}})"));
  EXPECT_EQ(widths_of(spec), (std::vector<int>{192, 192, 192}));
}

TEST(ConfigConvShapes, GroupsMustDivideBothChannelCounts) {
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 1, "groups": 2}})"),
                 "layers[0].conv.groups",
                 "2 groups do not divide both the input's 3 channels and the output's 4",
                 "choose groups dividing both");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 1, "groups": 3}})"),
                 "layers[0].conv.groups", "3 groups do not divide both", "(1 is an ordinary");
  // Depthwise: groups = in channels = out channels.
  EXPECT_EQ(parse(image_layers(R"({"conv": {"channels": 3, "kernel": 3, "groups": 3}})"))
                .layers[0]
                .op.conv.groups,
            3);
}

TEST(ConfigConvShapes, TheDilatedKernelMustFitThePaddedInput) {
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": 9}})"), "layers[0].conv.kernel",
                 "the kernel spans 9, more than the padded input's height 8 (8 + 2 x padding 0) "
                 "of 3 x 8 x 8",
                 "lower the kernel, add padding");
  expect_refused(image_layers(R"({"conv": {"channels": 4, "kernel": [1, 3], "dilation": 4}})"),
                 "layers[0].conv.kernel",
                 "the kernel spans 9 (dilation 4 x (kernel 3 - 1) + 1), more than the padded "
                 "input's width 8",
                 "lower the kernel or the dilation");
  // Padding makes it fit: 9 <= 8 + 2.
  EXPECT_EQ(gradscope::expand_ops(
                parse(image_layers(R"({"conv": {"channels": 4, "kernel": 9, "padding": 1}})")))[0]
                .image,
            (ImageShape{4, 2, 2}));
  // A repeated strided block shrinks the image until it no longer fits: 8 -> 4 -> 2 -> 1.
  expect_refused(
      image_layers(R"({"repeat": 4, "block": [{"pool": {"kind": "max", "kernel": 2}}]})"),
      "layers[0].block[0].pool.kernel",
      "the kernel spans 2, more than the padded input's height 1 (1 + 2 x padding 0) "
      "of 3 x 1 x 1 (in repetition 4 of layers[0]",
      "move the item before the pooling or stride that shrank the image");
  EXPECT_EQ(widths_of(parse(image_layers(
                R"({"repeat": 3, "block": [{"pool": {"kind": "max", "kernel": 2}}]})"))),
            (std::vector<int>{48, 12, 3}));
}

TEST(ConfigConvShapes, PoolPaddingIsAtMostHalfTheKernelAsInPyTorch) {
  expect_refused(image_layers(R"({"pool": {"kind": "max", "kernel": 3, "padding": 2}})"),
                 "layers[0].pool.padding", "padding 2 is more than half the kernel 3",
                 "at most kernel / 2 (rounded down), here 1");
  expect_refused(
      image_layers(R"({"pool": {"kind": "average", "kernel": [2, 3], "padding": [0, 2]}})"),
      "layers[0].pool.padding", "padding 2 is more than half the kernel 3", "here 1");
  // kernel 2, padding 1: allowed, as nn.MaxPool2d(2, padding=1).
  EXPECT_EQ(gradscope::expand_ops(
                parse(image_layers(R"({"pool": {"kind": "max", "kernel": 2, "padding": 1}})")))[0]
                .image,
            (ImageShape{3, 5, 5}));
}

TEST(ConfigConvShapes, AnImageBeyondTheFeatureLimitIsRefused) {
  expect_refused(image_layers(R"({"conv": {"channels": 1048576, "kernel": 1}})"), "layers[0]",
                 "outputs 1048576 x 8 x 8 = 67108864 features, more than the 16777216",
                 "lower its channels");
}

TEST(ConfigConvShapes, AResidualBlockMustKeepTheImagesShapeUnlessItProjects) {
  expect_refused(
      image_layers(
          R"({"residual": true, "block": [{"conv": {"channels": 4, "kernel": 3, "padding": 1}}]})"),
      "layers[0].residual",
      "the block's input is a 3 x 8 x 8 image but its output is a 4 x 8 x 8 image, so the skip "
      "path cannot be added to it",
      "make the block end as a 3 x 8 x 8 image");
  // The same features in another shape do not line up channel by channel either.
  expect_refused(image_layers(R"({"residual": true,
          "block": [{"conv": {"channels": 12, "kernel": 2, "stride": 2}}]})",
                              R"({"channels": 3, "height": 8, "width": 8})"),
                 "layers[0].residual",
                 "the block's input is a 3 x 8 x 8 image but its output is a 12 x 4 x 4 image",
                 "\"projection\": true");
  EXPECT_EQ(parse(image_layers(R"({"residual": {"projection": true},
          "block": [{"conv": {"channels": 4, "kernel": 3, "padding": 1}}]})"))
                .layers[0]
                .residual->projection,
            true);
}

TEST(ConfigConvShapes, RulesOnACodeBuiltSpecGiveTheSameMessages) {
  RunSpec spec;
  spec.input.image = {3, 8, 8};
  spec.input.width = 192;
  LayerItem conv;
  conv.op.kind = OpKind::kConv;
  conv.op.conv.channels = 4;
  conv.op.conv.groups = 2;
  spec.layers.push_back(conv);
  const std::optional<gradscope::SpecProblem> problem = gradscope::find_spec_problem(spec);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->path, "layers[0].conv.groups");
  EXPECT_EQ(problem->op, std::optional<std::size_t>(0));
  spec.layers[0].op.conv.groups = 1;
  EXPECT_FALSE(gradscope::find_spec_problem(spec).has_value());
  // An image whose width is not its C H W is refused.
  spec.input.width = 191;
  ASSERT_TRUE(gradscope::find_spec_problem(spec).has_value());
  EXPECT_EQ(gradscope::find_spec_problem(spec)->path, "input");
  EXPECT_TRUE(Contains(gradscope::find_spec_problem(spec)->what,
                       "width 191 is not the image's 3 x 8 x 8 = 192 features"));
  spec.input.width = 192;
  spec.layers[0].op.conv.kernel_h = 0;
  EXPECT_TRUE(
      Contains(gradscope::find_spec_problem(spec)->what, "conv kernel 0 is outside [1, 16777216]"));
}

// ---------------------------------------------------------------------------------------------
// The resolved config

TEST(ConfigConvResolved, ImageInputsAndConvItemsAreWrittenWithEveryDefault) {
  using Keys = std::vector<std::string>;
  const Json j = Json::parse(gradscope::run_spec_to_json(parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": [3, 1]}},
         {"conv": {"channels": 4, "kernel": 1, "bias": false}},
         {"pool": {"kind": "max", "kernel": 2}}, {"pool": {"kind": "global_average"}},
         {"flatten": {}})"))));
  EXPECT_EQ(keys_of(j["input"]),
            (Keys{"channels", "height", "width", "batch", "distribution", "mean", "std"}));
  EXPECT_EQ(j["input"]["width"], 8);
  const Json& layers = j["layers"];
  EXPECT_EQ(keys_of(layers[0]), (Keys{"conv", "activation", "init", "bias_init"}));
  EXPECT_EQ(layers[0]["conv"],
            Json::parse(R"({"channels": 4, "kernel": [3, 1], "stride": 1, "padding": 0,
                            "dilation": 1, "groups": 1, "bias": true})"));
  EXPECT_EQ(layers[0]["activation"], "relu");
  EXPECT_EQ(keys_of(layers[1]), (Keys{"conv", "activation", "init"}));
  EXPECT_EQ(layers[2], Json::parse(R"({"pool": {"kind": "max", "kernel": 2, "stride": 2,
                                                "padding": 0}})"));
  EXPECT_EQ(layers[3], Json::parse(R"({"pool": {"kind": "global_average"}})"));
  EXPECT_EQ(layers[4], Json::parse(R"({"flatten": {}})"));
}

TEST(ConfigConvResolved, ConvNetsRoundTrip) {
  expect_image_round_trip(parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "linear"},
         {"activation": "relu"}, {"pool": {"kind": "max", "kernel": 2}}, {"flatten": {}},
         {"width": 10, "activation": "linear"})")));
  // delta_orthogonal, a conv's init, with its gain.
  const RunSpec delta = parse(image_layers(
      R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "tanh",
          "init": {"name": "delta_orthogonal", "gain": 1.2}}, {"flatten": {}})"));
  EXPECT_EQ(delta.layers[0].op.conv.init.kind, Init::kDeltaOrthogonal);
  expect_image_round_trip(delta);
  expect_image_round_trip(parse(R"({
    "name": "every-conv-key", "seed": 5, "precision": "float64",
    "input": {"channels": 6, "height": 9, "width": 7, "batch": 3, "distribution": "uniform",
              "low": -0.5, "high": 2},
    "layers": [
      {"conv": {"channels": 12, "kernel": [3, 1], "stride": [2, 1], "padding": [1, 0],
                "dilation": [1, 3], "groups": 3, "bias": true},
       "activation": {"name": "elu", "alpha": 0.30000000000000004},
       "init": {"name": "he_uniform", "gain": 1.5, "mode": "fan_out"},
       "bias_init": {"name": "normal", "std": 0.1}},
      {"conv": {"channels": 12, "kernel": 1, "bias": false}, "init": "torch_default",
       "norm": "batch_norm"},
      {"repeat": 2, "residual": {"scale": 0.5},
       "block": [{"conv": {"channels": 12, "kernel": 3, "padding": 1}, "norm": "batch_norm",
                  "norm_position": "after_activation"}]},
      {"pool": {"kind": "average", "kernel": [3, 2], "stride": [1, 2], "padding": [1, 0]}},
      {"pool": {"kind": "max", "kernel": 2, "padding": 1}},
      {"pool": {"kind": "global_average"}},
      {"flatten": {}},
      {"width": 5, "activation": "linear"}],
    "loss": "softmax_cross_entropy"})"));
}

}  // namespace
