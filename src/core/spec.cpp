// The validated run description's helpers: the flat op list the engine builds, and the names of
// the small enums (shared by the config reader and the report writers).
#include "gradscope/core/spec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <utility>

#include "gradscope/core/error.hpp"

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

// ---- Validation

using Problem = std::optional<std::pair<std::string, std::string>>;  // what, hint

// "1e-05", "-1", "NaN", "inf": a value as a message shows it.
std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::array<char, 32> buffer{};
  const std::to_chars_result r = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
  return std::string(buffer.data(), r.ptr);
}

const std::string& width_range() {
  static const std::string range = "[1, " + std::to_string(spec_limits::kMaxWidth) + "]";
  return range;
}

bool in_width_range(int w) { return w >= 1 && w <= spec_limits::kMaxWidth; }

Problem check_activation(const ActivationSpec& a) {
  const int kind = static_cast<int>(a.kind);
  if (kind < 0 || kind >= kActivationCount) {
    return std::pair{"an unknown activation (" + std::to_string(kind) + ")",
                     std::string("`gradscope list` shows the activations")};
  }
  const ActivationInfo& info = activation_info(a.kind);
  if (!info.param_name.empty() && !std::isfinite(a.param)) {
    return std::pair{std::string(info.name) + " " + std::string(info.param_name) + " is " +
                         number_text(a.param) + "; it must be a finite number",
                     "the default is " + number_text(info.param_default)};
  }
  return std::nullopt;
}

// The config reader takes every spread and scale of an init as a finite number >= 0.
Problem check_init(const InitSpec& init, std::string_view what) {
  for (const auto& [name, value] :
       {std::pair{"gain", init.gain}, std::pair{"std", init.std}, std::pair{"limit", init.limit},
        std::pair{"weight_var", init.weight_var}}) {
    if (!(std::isfinite(value) && value >= 0)) {
      return std::pair{std::string(what) + " " + name + " is " + number_text(value) +
                           "; it must be a finite number >= 0",
                       std::string("the weights it describes are broken or overflow a double")};
    }
  }
  return std::nullopt;
}

Problem check_layer(const LayerSpec& layer) {
  if (!in_width_range(layer.width)) {
    return std::pair{"width " + std::to_string(layer.width) + " is outside " + width_range(),
                     std::string("a dense layer needs at least one unit")};
  }
  if (Problem p = check_activation(layer.activation)) return p;
  if (Problem p = check_init(layer.init, "init")) return p;
  if (!std::isfinite(layer.bias.value) || !(std::isfinite(layer.bias.std) && layer.bias.std >= 0)) {
    return std::pair{"bias value " + number_text(layer.bias.value) + ", std " +
                         number_text(layer.bias.std) +
                         ": the value must be finite and the std a finite number >= 0",
                     std::string("the biases it describes are broken or overflow a double")};
  }
  return std::nullopt;
}

Problem check_op(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::kDense:
      return check_layer(op.dense);
    case OpKind::kNorm: {
      const int kind = static_cast<int>(op.norm.kind);
      if (kind < 0 || kind >= kNormKindCount) {
        return std::pair{"an unknown norm (" + std::to_string(kind) + ")",
                         std::string("choose batch_norm, layer_norm or rms_norm")};
      }
      if (!(std::isfinite(op.norm.eps) && op.norm.eps > 0)) {
        return std::pair{std::string(norm_name(op.norm.kind)) + " eps is " +
                             number_text(op.norm.eps) + "; it must be a finite number > 0",
                         std::string("it keeps the division by the standard deviation finite; "
                                     "the default is 1e-5")};
      }
      return std::nullopt;
    }
    case OpKind::kActivation:
      return check_activation(op.activation);
    case OpKind::kDropout:
      if (!(op.dropout >= 0 && op.dropout < 1)) {
        return std::pair{"dropout rate " + number_text(op.dropout) + " is outside [0, 1)",
                         std::string("the dropout rate is the probability of zeroing a unit; 0 "
                                     "keeps them all, 1 would zero them all")};
      }
      return std::nullopt;
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      if (!std::isfinite(op.residual.scale)) {
        return std::pair{
            "residual scale is " + number_text(op.residual.scale) + "; it must be a finite number",
            std::string("y = P x + scale * F(x); the default scale is 1")};
      }
      if (op.residual.projection) return check_init(op.residual.projection_init, "projection");
      return std::nullopt;
  }
  return std::pair{"an unknown op kind (" + std::to_string(static_cast<int>(op.kind)) + ")",
                   std::string()};
}

bool is_softmax(const OpSpec& op) {
  return (op.kind == OpKind::kDense && op.dense.activation.kind == Activation::kSoftmax) ||
         (op.kind == OpKind::kActivation && op.activation.kind == Activation::kSoftmax);
}

std::uint64_t count_ops(const std::vector<LayerItem>& items);

// The ops `item` expands to, capped at kMaxOps + 1 so that nested repeats cannot overflow.
std::uint64_t count_item(const LayerItem& item) {
  constexpr std::uint64_t kCap = spec_limits::kMaxOps + 1;
  if (item.block.empty()) return 1;
  const std::uint64_t per_repeat = count_ops(item.block) + (item.residual ? 2U : 0U) +
                                   (item.residual && item.post_norm ? 1U : 0U);
  return std::min(kCap, per_repeat * static_cast<std::uint64_t>(std::max(item.repeat, 0)));
}

std::uint64_t count_ops(const std::vector<LayerItem>& items) {
  std::uint64_t count = 0;
  for (const LayerItem& item : items) {
    count = std::min(spec_limits::kMaxOps + 1, count + count_item(item));
  }
  return count;
}

// The shape of the items (repeats, where a post-norm or residual may stand), with `first_op` the
// index of the first op they expand to. Assumes count_ops is within the cap.
std::optional<SpecProblem> check_items(const std::vector<LayerItem>& items, std::size_t first_op) {
  std::size_t op = first_op;
  for (const LayerItem& item : items) {
    if (item.block.empty()) {
      if (item.residual || item.post_norm || item.repeat != 1) {
        return SpecProblem{op, "a repeat, residual or post-norm on a single op, not a block",
                           "put the op in a block to repeat it or wrap it in a residual"};
      }
      ++op;
      continue;
    }
    if (item.repeat < 1 || item.repeat > spec_limits::kMaxDepth) {
      return SpecProblem{op,
                         "repeat " + std::to_string(item.repeat) + " is outside [1, " +
                             std::to_string(spec_limits::kMaxDepth) + "]",
                         "a block runs at least once"};
    }
    if (item.post_norm && !item.residual) {
      return SpecProblem{op, "a post-norm without a residual",
                         "a post-norm computes norm(x + scale * F(x)): give the block a residual"};
    }
    const std::size_t inner = op + (item.residual ? 1U : 0U);
    if (std::optional<SpecProblem> p = check_items(item.block, inner)) return p;
    op += static_cast<std::size_t>(count_item(item));
  }
  return std::nullopt;
}

std::optional<SpecProblem> check_input(const InputSpec& input) {
  const auto problem = [](std::string what, std::string hint) {
    return SpecProblem{std::nullopt, "input: " + std::move(what), std::move(hint)};
  };
  if (!in_width_range(input.width)) {
    return problem("width " + std::to_string(input.width) + " is outside " + width_range(),
                   "the input needs at least one feature");
  }
  if (!in_width_range(input.batch)) {
    return problem("batch " + std::to_string(input.batch) + " is outside " + width_range(),
                   "use a batch of at least one example");
  }
  if (!std::isfinite(input.mean) || !(std::isfinite(input.std) && input.std >= 0)) {
    return problem("the normal distribution needs a finite mean and a finite std >= 0",
                   "the defaults are mean 0, std 1");
  }
  if (!std::isfinite(input.low) || !std::isfinite(input.high) || !(input.low < input.high)) {
    return problem("the uniform distribution needs finite low < high", "the default is -1 to 1");
  }
  return std::nullopt;
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

std::optional<SpecProblem> find_spec_problem(const RunSpec& spec) {
  if (std::optional<SpecProblem> p = check_input(spec.input)) return p;
  const auto at = [](std::size_t op, Problem p) {
    return SpecProblem{op, std::move(p->first), std::move(p->second)};
  };
  int output_width = spec.input.width;
  if (spec.layers.empty()) {
    // A stack is not expanded: its million layers are one LayerSpec.
    if (spec.stack.depth < 1 || spec.stack.depth > spec_limits::kMaxDepth) {
      return SpecProblem{0,
                         "stack depth " + std::to_string(spec.stack.depth) + " is outside [1, " +
                             std::to_string(spec_limits::kMaxDepth) + "]",
                         "a stack has at least one layer"};
    }
    if (Problem p = check_layer(spec.stack.layer)) return at(0, std::move(p));
    if (activation_info(spec.stack.layer.activation.kind).output_only) {
      return SpecProblem{0, "softmax in a hidden layer",
                         "softmax normalises across the units of a layer: put it in the output "
                         "layer only"};
    }
    output_width = spec.stack.layer.width;
    if (spec.output) {
      const auto op = static_cast<std::size_t>(spec.stack.depth);
      if (Problem p = check_layer(*spec.output)) return at(op, std::move(p));
      output_width = spec.output->width;
    }
  } else {
    if (count_ops(spec.layers) > spec_limits::kMaxOps) {
      return SpecProblem{
          std::nullopt,
          "the network expands to more than " + std::to_string(spec_limits::kMaxOps) + " ops",
          "lower the blocks' repeats"};
    }
    if (std::optional<SpecProblem> p = check_items(spec.layers, 0)) return p;
    const std::vector<OpSpec> ops = expand_ops(spec);
    std::vector<int> skip_widths;  // the widths at the open residual begins
    int width = spec.input.width;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const OpSpec& op = ops[i];
      if (Problem p = check_op(op)) return at(i, std::move(p));
      if (is_softmax(op) && i + 1 != ops.size()) {
        return SpecProblem{i, "softmax may only be the network's very last op",
                           "softmax normalises across the units of a layer, which inside the "
                           "network couples every unit to every other; use an elementwise "
                           "activation here"};
      }
      if (op.kind == OpKind::kDense) width = op.dense.width;
      if (op.kind == OpKind::kResidualBegin) skip_widths.push_back(width);
      if (op.kind == OpKind::kResidualEnd && !skip_widths.empty()) {
        const int skip = skip_widths.back();
        skip_widths.pop_back();
        if (!op.residual.projection && skip != width) {
          return SpecProblem{i,
                             "the residual adds a " + std::to_string(skip) + "-wide input to a " +
                                 std::to_string(width) + "-wide output",
                             "a residual connection needs the same width on both paths, or a "
                             "projection"};
        }
      }
    }
    output_width = width;
  }
  if (spec.loss.kind == LossKind::kSoftmaxCrossEntropy &&
      (output_width < 2 || spec.loss.classes != output_width)) {
    return SpecProblem{std::nullopt,
                       "loss: softmax_cross_entropy over " + std::to_string(spec.loss.classes) +
                           " classes needs that many output units (at least 2); the network "
                           "has " +
                           std::to_string(output_width),
                       "with one output use sigmoid_bce or mse"};
  }
  return std::nullopt;
}

void validate_run_spec(const RunSpec& spec) {
  const std::optional<SpecProblem> p = find_spec_problem(spec);
  if (!p) return;
  std::string where = "config";
  if (p->op) {
    const std::vector<std::string> paths = op_config_paths(spec);
    if (*p->op < paths.size()) where = paths[*p->op];
  }
  throw Error(where + ": " + p->what, p->hint);
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
    // Only a dense op changes the width. A residual end outputs P skip + scale * F(x): the
    // projection P maps the skip path to the branch's width, and without one the config reader
    // has checked that the two widths agree, so the end keeps the branch's width, its input.
    if (op.kind == OpKind::kDense) width = op.dense.width;
    widths.push_back(width);
  }
  return widths;
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
