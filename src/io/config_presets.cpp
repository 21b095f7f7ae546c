// Residual presets on block items ("residual": {"preset": "fixup"} or "nf"), resolved when the
// config is read into explicit inits, gains and scales, so that the resolved config states every
// value the run used.
#include <cmath>
#include <string>
#include <vector>

#include "gradscope/theory/gains.hpp"
#include "io/config_detail.hpp"

namespace gradscope::config_detail {

namespace {

// Residual branches in `items`, every repetition counted, nested blocks included.
std::int64_t residual_branches(const std::vector<LayerItem>& items) {
  std::int64_t n = 0;
  for (const LayerItem& item : items) {
    if (item.block.empty()) continue;
    n += item.repeat * ((item.residual ? 1 : 0) + residual_branches(item.block));
  }
  return n;
}

std::string item_path(const LayerItem& item, const std::string& prefix, std::size_t i) {
  return item.path.empty() ? prefix + "[" + std::to_string(i) + "]" : item.path;
}

// Fixup (Zhang, Dauphin & Ma 2019, "Fixup initialization: residual learning without
// normalization"): in a network of L residual branches of m weight layers each, every weight layer
// of a branch has its init's std multiplied by L^(-1/(2m-2)) and the last one starts at zero, so
// that each branch's output starts at 0 and its first SGD step changes the output by O(eta / L).
std::optional<PresetProblem> resolve_fixup(LayerItem& item, const std::string& path,
                                           std::int64_t branches) {
  const std::string preset_path = path + ".residual.preset";
  if (item.post_norm) {
    return PresetProblem{preset_path, "a Fixup block takes no post-norm: Fixup replaces the norms",
                         R"(remove "placement": "post_norm" and its "norm", or the preset)"};
  }
  std::vector<LayerItem*> weights;
  for (std::size_t i = 0; i < item.block.size(); ++i) {
    LayerItem& inner = item.block[i];
    const std::string at = item_path(inner, path + ".block", i);
    if (!inner.block.empty()) {
      return PresetProblem{at, "a Fixup branch holds no nested block",
                           "write the branch's dense or conv items directly in its block"};
    }
    switch (inner.op.kind) {
      case OpKind::kDense:
      case OpKind::kConv:
        weights.push_back(&inner);
        break;
      case OpKind::kNorm:
        return PresetProblem{at,
                             "a norm in a Fixup branch: Fixup trains residual networks without "
                             "normalisation, and its scaling assumes there is none",
                             "remove the norm (or a dense or conv item's \"norm\") from the "
                             "block, or the preset"};
      case OpKind::kAttention:
      case OpKind::kGlu:
        return PresetProblem{at,
                             std::string("a Fixup branch rescales dense and conv layers, not ") +
                                 (inner.op.kind == OpKind::kAttention ? "attention" : "a GLU"),
                             "for transformers use the transformer item's \"scaling\": \"tfixup\""};
      default:
        break;
    }
  }
  const auto m = static_cast<std::int64_t>(weights.size());
  if (m < 2) {
    return PresetProblem{
        preset_path,
        "a Fixup branch needs at least two weight layers, this one has " + std::to_string(m) +
            " (the scale L^(-1/(2m-2)) has no value at m = 1, and its only layer would start at "
            "zero)",
        "give the block two or more dense or conv items (a ResNet basic block has two, a "
        "bottleneck three), or remove the preset"};
  }
  const double factor =
      std::pow(static_cast<double>(branches), -1.0 / (2.0 * static_cast<double>(m) - 2.0));
  for (std::int64_t k = 0; k < m; ++k) {
    OpSpec& op = weights[static_cast<std::size_t>(k)]->op;
    InitSpec& init = op.kind == OpKind::kDense ? op.dense.init : op.conv.init;
    if (k + 1 == m) {
      init = InitSpec{Init::kZeros};
    } else {
      init.gain *= factor;
    }
  }
  return std::nullopt;
}

// An activation whose input scale folds into the next conv's gain: phi(x / beta) = phi(x) / beta.
bool positively_homogeneous(const ActivationSpec& a) {
  return a.kind == Activation::kRelu || a.kind == Activation::kLeakyRelu ||
         a.kind == Activation::kLinear;
}

// NF-ResNets (Brock, De & Smith 2021, "Characterizing signal propagation to close the
// performance gap in unnormalized ResNets"; timm's NormFreeBlock): a pre-activation block
// x -> act -> conv ... whose branch input is x / beta, beta = sqrt(the stream's expected variance),
// whose convs are scaled-weight-standardised with the activation gain gamma = 1 / std(phi(z)),
// z ~ N(0, 1), and whose output is scaled by alpha; the stream's variance then grows by alpha^2 a
// block, from 1 + alpha^2 after a stage's first (transition) block. Since the activations are
// positively homogeneous, 1 / beta and gamma fold into the gain of the conv after the activation.
// A transition block (with a projection) applies its shortcut to act(x) / beta, as timm's: the
// activation moves before the residual and the projection carries gamma / beta too. Each
// repetition has its own beta: the item is unrolled into its repetitions.
std::optional<PresetProblem> resolve_nf(const LayerItem& item, const std::string& path,
                                        double alpha, double& expected_var,
                                        std::vector<LayerItem>& out) {
  const std::string preset_path = path + ".residual.preset";
  if (item.post_norm) {
    return PresetProblem{preset_path, "an nf block takes no post-norm: NF-ResNets have no norms",
                         R"(remove "placement": "post_norm" and its "norm", or the preset)"};
  }
  if (!item.residual->skip_image.is_image()) {
    return PresetProblem{preset_path,
                         "the nf preset is for image ResNets, and this block's input or output "
                         "is not an image",
                         "use it on blocks of conv items between image inputs and outputs"};
  }
  const LayerItem& first = item.block.front();
  if (!first.block.empty() || first.op.kind != OpKind::kActivation ||
      !positively_homogeneous(first.op.activation)) {
    return PresetProblem{
        item_path(first, path + ".block", 0),
        "an nf block opens with a ReLU-family activation (x -> act -> conv ...): only a "
        "positively homogeneous activation (relu, leaky_relu) lets the input scale 1/beta fold "
        "into the next conv's gain",
        R"(start the block with {"activation": "relu"}, or remove the preset)"};
  }
  for (std::size_t k = 1; k < item.block.size(); ++k) {
    const LayerItem& inner = item.block[k];
    const std::string at = item_path(inner, path + ".block", k);
    if (!inner.block.empty()) {
      return PresetProblem{at, "an nf branch holds no nested block",
                           "write the branch's conv and activation items directly"};
    }
    if (inner.op.kind == OpKind::kNorm) {
      return PresetProblem{at, "a norm in an nf branch: NF-ResNets replace the norms",
                           "remove the norm (or a conv item's \"norm\"), or the preset"};
    }
    if (inner.op.kind != OpKind::kConv && inner.op.kind != OpKind::kActivation &&
        inner.op.kind != OpKind::kDropout) {
      return PresetProblem{at,
                           "an nf branch holds conv, activation and dropout items, not a " +
                               std::string(op_kind_name(inner.op.kind)),
                           "keep the branch to convs and their activations"};
    }
    if (inner.op.kind == OpKind::kActivation &&
        activation_info(inner.op.activation.kind).output_only) {
      return PresetProblem{at, "softmax in an nf branch", "use an elementwise activation"};
    }
  }
  const double gamma_first = activation_gain(first.op.activation);
  for (int r = 0; r < item.repeat; ++r) {
    LayerItem rep = item;
    rep.repeat = 1;
    ResidualSpec& res = *rep.residual;
    const double beta = std::sqrt(expected_var);
    const bool transition = r == 0 && res.projection;
    res.scale = alpha;
    double pending = gamma_first / beta;  // gamma and 1/beta of the opening activation
    for (std::size_t k = 1; k < rep.block.size(); ++k) {
      OpSpec& op = rep.block[k].op;
      if (op.kind == OpKind::kActivation) pending = activation_gain(op.activation);
      if (op.kind != OpKind::kConv) continue;
      op.conv.weight_standardization = true;
      op.conv.ws_gain *= pending;
      pending = op.conv.activation.kind == Activation::kLinear
                    ? 1.0
                    : activation_gain(op.conv.activation);
    }
    if (transition) {
      // out = act(x) / beta feeds both paths (timm: shortcut = downsample(out)).
      LayerItem act = rep.block.front();
      if (act.path.empty()) act.path = item_path(act, path + ".block", 0);
      out.push_back(act);
      rep.block.erase(rep.block.begin());
      res.projection_ws = true;
      res.projection_ws_gain = gamma_first / beta;
      res.projection_norm.reset();
      expected_var = 1.0 + alpha * alpha;  // reset after a stage's first block
    } else {
      res.projection = false;  // later repetitions keep the shape
      res.projection_norm.reset();
      expected_var += alpha * alpha;
    }
    out.push_back(std::move(rep));
  }
  return std::nullopt;
}

// Rebuilds `items` with each preset applied (nf unrolls its repetitions); `expected_var` is the
// stream's variance in nf's bookkeeping, carried in network order.
std::optional<PresetProblem> resolve_items(std::vector<LayerItem>& items, const std::string& prefix,
                                           const std::map<std::string, ResidualPreset>& presets,
                                           std::int64_t branches, double& expected_var) {
  std::vector<LayerItem> out;
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    LayerItem item = std::move(items[i]);
    if (item.block.empty()) {
      out.push_back(std::move(item));
      continue;
    }
    const std::string path = item_path(item, prefix, i);
    if (item.path.empty()) item.path = path;  // unrolled repetitions keep their item's path
    const auto it = presets.find(path);
    const bool preset = it != presets.end() && item.residual;
    if (preset && it->second.kind == ResidualPresetKind::kNf) {
      if (auto problem = resolve_nf(item, path, it->second.alpha, expected_var, out)) {
        return problem;
      }
      continue;
    }
    if (auto problem =
            resolve_items(item.block, path + ".block", presets, branches, expected_var)) {
      return problem;
    }
    if (preset && it->second.kind == ResidualPresetKind::kFixup) {
      if (auto problem = resolve_fixup(item, path, branches)) return problem;
    }
    out.push_back(std::move(item));
  }
  items = std::move(out);
  return std::nullopt;
}

}  // namespace

std::optional<PresetProblem> resolve_residual_presets(
    RunSpec& spec, const std::map<std::string, ResidualPreset>& presets) {
  if (presets.empty()) return std::nullopt;
  double expected_var = 1.0;  // nf: the input's variance, as NF-ResNets assume
  return resolve_items(spec.layers, "layers", presets, residual_branches(spec.layers),
                       expected_var);
}

}  // namespace gradscope::config_detail
