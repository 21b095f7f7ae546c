// The validated description of a run: what the config file and flags resolve to. Plain data; the
// config reader (config.hpp) builds it, validate.hpp holds its rules, the engine trusts it.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/init.hpp"

namespace gradscope {

enum class Precision : int { kFloat32, kFloat64 };
enum class InputDistribution : int { kNormal, kUniform };

// An image's shape, NCHW without the N: channels 0 is no image (a vector of features).
struct ImageShape {
  int channels = 0;
  int height = 0;
  int width = 0;
  bool is_image() const { return channels > 0; }
  int size() const { return channels * height * width; }  // the features: C H W
  bool operator==(const ImageShape&) const = default;
};

struct InputSpec {
  // Features per example (per token): for images, channels x height x width (the config's
  // "width" is then the image's; `image` holds the three).
  int width = 256;
  int batch = 256;
  InputDistribution distribution = InputDistribution::kNormal;
  double mean = 0.0;  // normal
  double std = 1.0;   // normal
  double low = -1.0;  // uniform
  double high = 1.0;  // uniform
  // Tokens per example: the batch is `batch` sequences of `tokens` vectors, held as batch x tokens
  // columns, example-major (column b * tokens + t). Every op but attention acts per token; 1 is a
  // batch of vectors.
  int tokens = 1;
  ImageShape image;  // channels 0: vectors
};
// The batch's columns: batch x tokens.
inline int input_columns(const InputSpec& in) { return in.batch * in.tokens; }

// One dense layer: h = W x + b, y = phi(h).
struct LayerSpec {
  int width = 256;
  ActivationSpec activation{};
  InitSpec init{};
  BiasInitSpec bias{};
};

// `depth` identical hidden layers.
struct StackSpec {
  int depth = 50;
  LayerSpec layer{};
};

// ---- Architectures beyond a uniform stack (the config's "layers" list).

enum class NormKind : int { kBatchNorm, kLayerNorm, kRmsNorm };
inline constexpr int kNormKindCount = 3;

// Normalisation in training mode, gamma = 1 and beta = 0 (their gradients are still reported).
// batch_norm: per unit over the batch; layer_norm and rms_norm: per example over the units.
struct NormSpec {
  NormKind kind = NormKind::kLayerNorm;
  double eps = 1e-5;
};

// y = skip * P x + scale * F(x) around a block F; P is the identity, or a projection when the block
// changes the width. skip != 1 is DeepNorm's alpha. On vectors P is a fixed (never learned) random
// matrix; on images (the block maps an image to an image) it is learned, as torchvision ResNet's
// downsample: a 1x1 convolution with stride in_H / out_H and no bias, then projection_norm (batch
// norm per channel by default, training mode, gamma 1 and beta 0).
struct ResidualSpec {
  double scale = 1.0;
  bool projection = false;
  InitSpec projection_init{Init::kOrthogonal, 1.0, 1.0, 1.0, FanMode::kFanIn, 1.0};
  double skip = 1.0;
  std::optional<NormSpec> projection_norm{};  // learned (image) projections only
  // Whether the config stated the projection's init and norm; resolve_residual_projections fills
  // in the stream's defaults for those it left out (images: he_normal fan_out and batch_norm;
  // vectors: orthogonal and none) and sets both true. Specs built in code state both.
  bool projection_init_given = true;
  bool projection_norm_given = true;
  // The skip path's image when the block maps an image to an image (its projection is then the
  // learned 1x1 convolution); channels 0 otherwise. Resolved by expand_ops on every residual end,
  // and on the config's items by resolve_residual_projections.
  ImageShape skip_image{};
  bool conv_projection() const { return projection && skip_image.is_image(); }
};

// The query-key scale of attention: logits = scale * q . k.
enum class AttentionScaleKind : int { kInvSqrtHead, kInvHead, kConstant };

// Multi-head self-attention over the tokens of each example, width d = the input's:
// q, k, v = Wq x + bq, Wk x + bk, Wv x + bv; per head, P = softmax(scale * q k^T) over the keys
// (causal: key t' <= query t only); o = P v, the heads concatenated; y = Wo o + bo. Weights are
// (d, d) each, PyTorch's (out, in) layout.
struct AttentionSpec {
  int heads = 1;
  bool causal = true;
  AttentionScaleKind scale_kind = AttentionScaleKind::kInvSqrtHead;
  double scale = 0.0;  // kConstant's value
  bool bias = false;   // bq, bk, bv, bo (zeros when generated)
  // false: y = o, the heads concatenated, and no Wo (Sub-LN puts a norm and a dense after it).
  bool output_projection = true;
  // query, key, value, output.
  std::array<InitSpec, 4> init{InitSpec{Init::kXavierUniform}, InitSpec{Init::kXavierUniform},
                               InitSpec{Init::kXavierUniform}, InitSpec{Init::kXavierUniform}};
};
inline constexpr std::array<std::string_view, 4> kAttentionProjections = {"query", "key", "value",
                                                                          "output"};
// The scale the logits are multiplied by, for heads of d_head features.
double attention_scale(const AttentionSpec& a, int width);

// A gated MLP (GLU family; SwiGLU with silu): y = W2 (phi(W1 x + b1) * (W3 x + b3)) + b2, hidden
// width `hidden`, output the input's width. W1 (gate) and W3 (up) are (hidden, d), W2 (down) is
// (d, hidden).
struct GluSpec {
  int hidden = 0;
  ActivationSpec activation{Activation::kSilu};
  bool bias = false;
  // gate, up, down.
  std::array<InitSpec, 3> init{InitSpec{Init::kXavierUniform}, InitSpec{Init::kXavierUniform},
                               InitSpec{Init::kXavierUniform}};
};
inline constexpr std::array<std::string_view, 3> kGluProjections = {"gate", "up", "down"};

// A 2-D convolution (torch.nn.Conv2d): h = conv(x, W) + b, y = phi(h), on images held as columns
// of C H W features in NCHW order (row = (c H + h) W + w). W is (channels, C_in / groups, kernel_h,
// kernel_w), stored as a (channels, C_in / groups kernel_h kernel_w) matrix. Its fans are
// PyTorch's: fan_in = C_in / groups kernel_h kernel_w, fan_out = channels kernel_h kernel_w. A
// 1-D convolution is height 1.
struct ConvSpec {
  int channels = 0;  // C_out
  int kernel_h = 3;
  int kernel_w = 3;
  int stride_h = 1;
  int stride_w = 1;
  int pad_h = 0;
  int pad_w = 0;
  int dilation_h = 1;
  int dilation_w = 1;
  int groups = 1;
  bool bias = true;
  ActivationSpec activation{Activation::kLinear};
  InitSpec init{};
  BiasInitSpec bias_init{};
  ImageShape in;  // the input's shape, resolved by expand_ops
  int out_h() const;
  int out_w() const;
  ImageShape out() const { return {channels, out_h(), out_w()}; }
  int fan_in() const { return in.channels / std::max(groups, 1) * kernel_h * kernel_w; }
  int fan_out() const { return channels * kernel_h * kernel_w; }
};

// Pooling (torch.nn.MaxPool2d, AvgPool2d with count_include_pad, AdaptiveAvgPool2d(1)): per
// channel over a window; global average pooling leaves one value per channel (C x 1 x 1).
enum class PoolKind : int { kMax, kAverage, kGlobalAverage };
struct PoolSpec {
  PoolKind kind = PoolKind::kMax;
  int kernel_h = 2;
  int kernel_w = 2;
  int stride_h = 2;  // the config's default is the kernel, as PyTorch's
  int stride_w = 2;
  int pad_h = 0;
  int pad_w = 0;
  ImageShape in;  // resolved by expand_ops
  ImageShape out() const;
};

// One step of the flattened architecture.
enum class OpKind : int {
  kDense,          // h = W x + b, y = phi(h)
  kNorm,           // y = norm(x)
  kActivation,     // y = phi(x), no weights
  kDropout,        // y = mask * x / (1 - p), training mode, seeded
  kResidualBegin,  // remembers x for the skip path; not reported
  kResidualEnd,    // y = skip * P x_skip + scale * x
  kAttention,      // multi-head self-attention over each example's tokens
  kGlu,            // gated MLP
  kConv,           // 2-D convolution, y = phi(conv(x) + b)
  kPool,           // max, average or global average pooling
  kFlatten,        // an image's C H W features as a vector: no change of the values
};

struct OpSpec {
  OpKind kind = OpKind::kDense;
  LayerSpec dense{};            // kDense
  NormSpec norm{};              // kNorm
  ActivationSpec activation{};  // kActivation
  double dropout = 0.0;         // kDropout: the rate p in [0, 1)
  ResidualSpec residual{};      // kResidualBegin and kResidualEnd
  AttentionSpec attention{};    // kAttention
  GluSpec glu{};                // kGlu
  ConvSpec conv{};              // kConv
  PoolSpec pool{};              // kPool
  // The op's output as an image (channels 0: a vector), resolved by expand_ops: a batch norm of
  // an image normalises per channel over the batch and the positions.
  ImageShape image;
};

// An item of "layers": one op, or a block of items repeated `repeat` times, each repetition
// optionally wrapped in a residual connection, optionally followed by a norm (post-norm:
// norm(x + scale * F(x))).
struct LayerItem {
  OpSpec op{};                   // when block is empty
  std::vector<LayerItem> block;  // non-empty: a block
  int repeat = 1;
  std::optional<ResidualSpec> residual;
  std::optional<NormSpec> post_norm;  // only with a residual
  // The config path of the item this came from ("layers[1].block[0]"), for advice that names
  // config keys; empty when the item was built in code. A dense item with a "norm" expands to
  // several items that share its path.
  std::string path;
};

// ---- What drives the backward pass.

enum class LossKind : int {
  kProbe,                // dL/dy = a seeded standard-Gaussian probe (the mean-field cotangent)
  kMse,                  // L = (1/B) sum_a ||y_a - t_a||^2 / 2, seeded Gaussian targets
  kSoftmaxCrossEntropy,  // L = -(1/B) sum_a log softmax(y_a)[c_a], seeded labels
  kSigmoidBce,           // L = -(1/B) sum_a sum_i t log s + (1 - t) log(1 - s), s = sigmoid(y)
};

struct LossSpec {
  LossKind kind = LossKind::kProbe;
  int classes = 0;  // softmax_cross_entropy: labels in [0, classes); must equal the output width
};

enum class OptimizerKind : int { kNone, kSgd, kAdam };

// One optimizer step from zero state, for the update-to-weight ratio ||dW_step||_F / ||W||_F.
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::kNone;
  double learning_rate = 1e-3;
  double momentum = 0.9;  // sgd (a first step from zero momentum moves by lr * grad)
  double beta1 = 0.9;     // adam
  double beta2 = 0.999;   // adam
  double eps = 1e-8;      // adam
};

struct StatsSpec {
  // An entry is saturated when |phi'(h)| < saturation_threshold * max |phi'|.
  double saturation_threshold = 0.05;
  // Examples whose input-output Jacobian spectrum is computed (0: none; see jacobian.hpp).
  int jacobian_examples = 0;
};

// The diagnosis's thresholds (the config's "diagnosis" section). The README gives the
// measurements each default was chosen from.
struct DiagnosisSpec {
  // |log10 rms(dL/dh) first layer / last layer|: a warning from this many decades, an error from
  // the second.
  double gradient_warning_decades = 2.0;
  double gradient_error_decades = 4.0;
  // |log10 rms(y_l) / rms(input)| of any layer, likewise.
  double activation_warning_decades = 2.0;
  double activation_error_decades = 4.0;
  // A layer whose share of units dead for the whole batch reaches this is a warning.
  double dead_fraction = 0.25;
  // A sigmoid/tanh-like layer whose share of saturated entries reaches this is a warning.
  double saturated_fraction = 0.2;
  // Mean cosine between examples' outputs at or above this (and above the input's) is a warning.
  double correlation = 0.98;
  // The optimizer's first step: ||update|| / ||W|| outside [min, max] in any dense layer.
  double update_ratio_min = 1e-6;
  double update_ratio_max = 0.1;
  // Dense layers from which a stack counts as deep (the common-mistake rules).
  int deep_layers = 10;
  // An init whose sw2 is off from the activation's signal-preserving sw2 by this factor or more
  // is mismatched.
  double init_mismatch_factor = 1.5;
  // Sequences (docs/diagnosis.md says where each default comes from). Mean cosine between the
  // tokens of an example at the output at or above this (and above the input's): rank collapse.
  double token_cosine = 0.9;
  // An attention op whose mean entropy is at most this fraction of the uniform rows' entropy has
  // collapsed onto single keys; one within this fraction of it at every attention op is uniform.
  double attention_entropy_fraction = 0.2;
  double attention_uniform_fraction = 0.99;
  // The largest scaled query-key logit of an attention op at or above this saturates its softmax.
  double attention_max_logit = 50.0;
  // A post-norm residual stack: rms of the branch gradient at the last block over the first's.
  double postnorm_gradient_ratio = 2.0;
  // A pre-norm residual stack: rms of the stream at its last residual over its first's.
  double residual_growth = 5.0;
  // A residual network whose partial Jacobian norm grows exponentially with depth: J at the last
  // layer on the stream over J at the first (apjn.hpp). Branches scaled by 1/sqrt(L) reach e^2.
  double partial_jacobian_growth = 100.0;
};

struct RunSpec {
  std::string name = "default";
  std::uint64_t seed = 0;
  Precision precision = Precision::kFloat32;
  InputSpec input{};
  StackSpec stack{};
  std::optional<LayerSpec> output;  // an optional final layer (the only place softmax may go)
  // When non-empty, the architecture is this list and `stack`/`output` are not used.
  std::vector<LayerItem> layers;
  LossSpec loss{};
  OptimizerSpec optimizer{};
  StatsSpec stats{};
  DiagnosisSpec diagnosis{};
};

// The architecture as a flat list of ops, input side first: from `layers` when given (each
// residual repetition wrapped in kResidualBegin/kResidualEnd, a post-norm after its end), else the
// stack's dense layers then the output layer. Op i (0-based) is numbered i + 1 in reports and in
// the random streams, so a stack config numbers its layers exactly as before.
std::vector<OpSpec> expand_ops(const RunSpec& spec);
// The width each op outputs, given the input width.
std::vector<int> op_widths(const RunSpec& spec, const std::vector<OpSpec>& ops);

// For each op of expand_ops, the config path of the item that describes it: "stack", "output",
// "layers[0]", "layers[1].block[2]" (LayerItem::path, or its position when that is empty);
// residual begins, ends and post-norms name their block.
std::vector<std::string> op_config_paths(const RunSpec& spec);

// Fills in each residual projection's init and norm that the config left to the stream
// (ResidualSpec::projection_init_given): a block that maps an image to an image gets torchvision's
// he_normal fan_out and a batch norm, any other the fixed orthogonal projection.
void resolve_residual_projections(RunSpec& spec);

// The layers in order, input side first: the stack's `depth` layers, then the output layer.
std::vector<LayerSpec> expand_layers(const RunSpec& spec);

// The rules a spec keeps (find_spec_problem, validate_run_spec) are in validate.hpp.

std::string_view precision_name(Precision p);
std::string_view norm_name(NormKind k);            // "batch_norm", "layer_norm", "rms_norm"
std::string_view pool_kind_name(PoolKind k);       // "max", "average", "global_average"
std::string_view op_kind_name(OpKind k);           // "dense", "norm", "activation", "dropout", ...
std::string_view loss_name(LossKind k);            // "probe", "mse", "softmax_cross_entropy", ...
std::string_view optimizer_name(OptimizerKind k);  // "none", "sgd", "adam"
std::string_view input_distribution_name(InputDistribution d);

}  // namespace gradscope
