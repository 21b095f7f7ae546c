// The validated run description's helpers: the flat op list the engine builds, and the names of
// the small enums (shared by the config reader and the report writers).
#include "gradscope/core/spec.hpp"

#include <algorithm>
#include <cmath>

namespace gradscope {
namespace {

OpSpec dense_op(const LayerSpec& layer) {
  OpSpec op;
  op.kind = OpKind::kDense;
  op.dense = layer;
  return op;
}

// The op's output image: a convolution's and a pooling's own, a dense layer's and a flatten's
// none, the others their input's.
ImageShape resolve_image(OpSpec& op, const ImageShape& in) {
  switch (op.kind) {
    case OpKind::kConv:
      op.conv.in = in;
      return op.conv.out();
    case OpKind::kPool:
      op.pool.in = in;
      return op.pool.out();
    case OpKind::kDense:
    case OpKind::kFlatten:
      return {};
    case OpKind::kNorm:
    case OpKind::kActivation:
    case OpKind::kDropout:
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
    case OpKind::kAttention:
    case OpKind::kGlu:
      break;
  }
  return in;
}

// Appends the ops of `items`, input side first, each with its image shape resolved from `image`
// (the shape entering the items; left as the shape leaving them). Recursive: blocks nest.
void append_ops(const std::vector<LayerItem>& items, std::vector<OpSpec>& ops, ImageShape& image) {
  const auto push = [&](OpSpec op) {
    image = resolve_image(op, image);
    op.image = image;
    ops.push_back(std::move(op));
  };
  for (const LayerItem& item : items) {
    if (item.block.empty()) {
      push(item.op);
      continue;
    }
    for (int r = 0; r < item.repeat; ++r) {
      const ImageShape skip_image = image;
      if (item.residual) {
        OpSpec begin;
        begin.kind = OpKind::kResidualBegin;
        begin.residual = *item.residual;
        push(begin);
      }
      append_ops(item.block, ops, image);
      if (item.residual) {
        // The sum has the branch's shape (a projection maps the skip to it).
        OpSpec end;
        end.kind = OpKind::kResidualEnd;
        end.residual = *item.residual;
        if (skip_image.is_image() && image.is_image()) end.residual.skip_image = skip_image;
        push(end);
        // The config reader allows a post-norm only with a residual: norm(x + scale * F(x)).
        if (item.post_norm) {
          OpSpec norm;
          norm.kind = OpKind::kNorm;
          norm.norm = *item.post_norm;
          push(norm);
        }
      }
    }
  }
}

// Walks the items as append_ops does, choosing each projection's defaults by the shapes around its
// block (the first repetition's: a later one that differs is refused by validate's stream walk).
void resolve_projections(std::vector<LayerItem>& items, ImageShape& image) {
  for (LayerItem& item : items) {
    if (item.block.empty()) {
      OpSpec op = item.op;
      image = resolve_image(op, image);
      continue;
    }
    for (int r = 0; r < item.repeat; ++r) {
      const ImageShape skip_image = image;
      resolve_projections(item.block, image);
      if (r > 0 || !item.residual) continue;
      ResidualSpec& res = *item.residual;
      const bool learned = skip_image.is_image() && image.is_image();
      res.skip_image = learned ? skip_image : ImageShape{};
      if (!res.projection) continue;
      if (!res.projection_init_given) {
        // torchvision's ResNet draws every conv, the downsample's included, with
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"); the fixed vector projection is an
        // orthogonal map, which keeps the skip path's norm.
        res.projection_init =
            learned ? InitSpec{Init::kHeNormal, 1.0, 1.0, 1.0, FanMode::kFanOut, 1.0}
                    : InitSpec{Init::kOrthogonal, 1.0, 1.0, 1.0, FanMode::kFanIn, 1.0};
        res.projection_init_given = true;
      }
      if (!res.projection_norm_given) {
        if (learned) res.projection_norm = NormSpec{NormKind::kBatchNorm, 1e-5};
        res.projection_norm_given = true;
      }
    }
  }
}

// Mirrors append_ops, one path per op.
void append_paths(const std::vector<LayerItem>& items, const std::string& prefix,
                  std::vector<std::string>& paths) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    const std::string path = item.path.empty() ? prefix + "[" + std::to_string(i) + "]" : item.path;
    if (item.block.empty()) {
      paths.push_back(path);
      continue;
    }
    for (int r = 0; r < item.repeat; ++r) {
      if (item.residual) paths.push_back(path);
      append_paths(item.block, path + ".block", paths);
      if (item.residual) {
        paths.push_back(path);
        if (item.post_norm) paths.push_back(path);
      }
    }
  }
}

}  // namespace

std::vector<std::string> op_config_paths(const RunSpec& spec) {
  std::vector<std::string> paths;
  if (!spec.layers.empty()) {
    append_paths(spec.layers, "layers", paths);
    return paths;
  }
  paths.assign(static_cast<std::size_t>(std::max(spec.stack.depth, 0)), "stack");
  if (spec.output) paths.emplace_back("output");
  return paths;
}

std::vector<OpSpec> expand_ops(const RunSpec& spec) {
  std::vector<OpSpec> ops;
  if (!spec.layers.empty()) {
    ImageShape image = spec.input.image;
    append_ops(spec.layers, ops, image);
    return ops;
  }
  for (const LayerSpec& layer : expand_layers(spec)) ops.push_back(dense_op(layer));
  return ops;
}

std::vector<int> op_widths(const RunSpec& spec, const std::vector<OpSpec>& ops) {
  std::vector<int> widths;
  widths.reserve(ops.size());
  int width = spec.input.width;
  for (const OpSpec& op : ops) {
    // Only a dense op changes the width (attention and a GLU output their input's). A residual end
    // outputs P skip + scale * F(x): the projection P maps the skip path to the branch's width, and
    // without one the config reader has checked that the two widths agree, so the end keeps the
    // branch's width, its input.
    if (op.kind == OpKind::kDense) width = op.dense.width;
    if (op.kind == OpKind::kConv || op.kind == OpKind::kPool) width = op.image.size();
    widths.push_back(width);
  }
  return widths;
}

namespace {

// out = floor((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1, as torch.nn.Conv2d and
// MaxPool2d; 0 or less when the window does not fit (validate refuses it).
int conv_out(int in, int kernel, int stride, int pad, int dilation) {
  const int span = dilation * (kernel - 1) + 1;
  const int room = in + 2 * pad - span;
  return room < 0 || stride < 1 ? 0 : room / stride + 1;
}

}  // namespace

int ConvSpec::out_h() const { return conv_out(in.height, kernel_h, stride_h, pad_h, dilation_h); }
int ConvSpec::out_w() const { return conv_out(in.width, kernel_w, stride_w, pad_w, dilation_w); }

ImageShape PoolSpec::out() const {
  if (kind == PoolKind::kGlobalAverage) return {in.channels, 1, 1};
  return {in.channels, conv_out(in.height, kernel_h, stride_h, pad_h, 1),
          conv_out(in.width, kernel_w, stride_w, pad_w, 1)};
}

double attention_scale(const AttentionSpec& a, int width) {
  const double d_head = static_cast<double>(width) / static_cast<double>(std::max(a.heads, 1));
  switch (a.scale_kind) {
    case AttentionScaleKind::kInvSqrtHead:
      return 1.0 / std::sqrt(d_head);
    case AttentionScaleKind::kInvHead:
      return 1.0 / d_head;
    case AttentionScaleKind::kConstant:
      return a.scale;
  }
  return a.scale;
}

void resolve_residual_projections(RunSpec& spec) {
  ImageShape image = spec.input.image;
  resolve_projections(spec.layers, image);
}

std::vector<LayerSpec> expand_layers(const RunSpec& spec) {
  std::vector<LayerSpec> layers(static_cast<std::size_t>(std::max(spec.stack.depth, 0)),
                                spec.stack.layer);
  if (spec.output) layers.push_back(*spec.output);
  return layers;
}

std::string_view precision_name(Precision p) {
  // No default label: -Wswitch then flags a new enumerator that has no name here.
  switch (p) {
    case Precision::kFloat32:
      return "float32";
    case Precision::kFloat64:
      return "float64";
  }
  return "invalid";
}

std::string_view norm_name(NormKind k) {
  switch (k) {
    case NormKind::kBatchNorm:
      return "batch_norm";
    case NormKind::kLayerNorm:
      return "layer_norm";
    case NormKind::kRmsNorm:
      return "rms_norm";
  }
  return "invalid";
}

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kDense:
      return "dense";
    case OpKind::kNorm:
      return "norm";
    case OpKind::kActivation:
      return "activation";
    case OpKind::kDropout:
      return "dropout";
    case OpKind::kResidualBegin:
      return "residual_begin";
    case OpKind::kResidualEnd:
      return "residual_end";
    case OpKind::kAttention:
      return "attention";
    case OpKind::kGlu:
      return "glu";
    case OpKind::kConv:
      return "conv";
    case OpKind::kPool:
      return "pool";
    case OpKind::kFlatten:
      return "flatten";
  }
  return "invalid";
}

std::string_view pool_kind_name(PoolKind k) {
  switch (k) {
    case PoolKind::kMax:
      return "max";
    case PoolKind::kAverage:
      return "average";
    case PoolKind::kGlobalAverage:
      return "global_average";
  }
  return "invalid";
}

std::string_view loss_name(LossKind k) {
  switch (k) {
    case LossKind::kProbe:
      return "probe";
    case LossKind::kMse:
      return "mse";
    case LossKind::kSoftmaxCrossEntropy:
      return "softmax_cross_entropy";
    case LossKind::kSigmoidBce:
      return "sigmoid_bce";
  }
  return "invalid";
}

std::string_view optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kNone:
      return "none";
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
  }
  return "invalid";
}

std::string_view input_distribution_name(InputDistribution d) {
  switch (d) {
    case InputDistribution::kNormal:
      return "normal";
    case InputDistribution::kUniform:
      return "uniform";
  }
  return "invalid";
}

}  // namespace gradscope
