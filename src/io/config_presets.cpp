// Residual presets on block items ("residual": {"preset": "fixup"}), resolved when the config is
// read into explicit inits, so that the resolved config states every value the run used.
#include <cmath>
#include <string>
#include <vector>

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

std::optional<PresetProblem> resolve_items(std::vector<LayerItem>& items, const std::string& prefix,
                                           const std::map<std::string, ResidualPreset>& presets,
                                           std::int64_t branches) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    LayerItem& item = items[i];
    if (item.block.empty()) continue;
    const std::string path = item_path(item, prefix, i);
    if (auto problem = resolve_items(item.block, path + ".block", presets, branches)) {
      return problem;
    }
    const auto it = presets.find(path);
    if (it == presets.end() || !item.residual) continue;
    if (it->second.kind == ResidualPresetKind::kFixup) {
      if (auto problem = resolve_fixup(item, path, branches)) return problem;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<PresetProblem> resolve_residual_presets(
    RunSpec& spec, const std::map<std::string, ResidualPreset>& presets) {
  if (presets.empty()) return std::nullopt;
  return resolve_items(spec.layers, "layers", presets, residual_branches(spec.layers));
}

}  // namespace gradscope::config_detail
