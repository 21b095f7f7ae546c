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

// Appends the ops of `items`, input side first. Recursive: blocks nest.
void append_ops(const std::vector<LayerItem>& items, std::vector<OpSpec>& ops) {
  for (const LayerItem& item : items) {
    if (item.block.empty()) {
      ops.push_back(item.op);
      continue;
    }
    for (int r = 0; r < item.repeat; ++r) {
      if (item.residual) {
        OpSpec begin;
        begin.kind = OpKind::kResidualBegin;
        begin.residual = *item.residual;
        ops.push_back(begin);
      }
      append_ops(item.block, ops);
      if (item.residual) {
        OpSpec end;
        end.kind = OpKind::kResidualEnd;
        end.residual = *item.residual;
        ops.push_back(end);
        // The config reader allows a post-norm only with a residual: norm(x + scale * F(x)).
        if (item.post_norm) {
          OpSpec norm;
          norm.kind = OpKind::kNorm;
          norm.norm = *item.post_norm;
          ops.push_back(norm);
        }
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
    append_ops(spec.layers, ops);
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
    widths.push_back(width);
  }
  return widths;
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
