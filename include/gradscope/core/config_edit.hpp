// A change to a run's config as a typed value: what the diagnosis advises (and --check-advice
// applies to a RunSpec), apart from the `--set PATH=VALUE` text it is spelled as for the user.
#pragma once

#include <array>
#include <string>
#include <variant>
#include <vector>

#include "gradscope/core/spec.hpp"

namespace gradscope {

// `layer` names the layers an edit changes by their config path, as op_config_paths gives it:
// "stack", "output", or an item of "layers" ("layers[1].block[0]", LayerItem::path).

// The activation of the layers at `layer`.
struct ActivationEdit {
  std::string layer;
  ActivationSpec activation{};
};

// The weight init of the layers at `layer`. Spelled by name alone (a variance init with its
// weight_var), or with every parameter when `all_parameters` (a parameter reset from the value the
// config spelled out, such as a gain).
struct InitEdit {
  std::string layer;
  InitSpec init{};
  bool all_parameters = false;
};

// The bias init of the layers at `layer`.
struct BiasEdit {
  std::string layer;
  BiasInitSpec bias{};
};

// The kind of the norm ops at `layer` (with the default eps).
struct NormEdit {
  std::string layer;
  NormKind norm = NormKind::kLayerNorm;
};

// The whole "layers" list; each item's path is its position, as the config reader gives it.
struct LayersEdit {
  std::vector<LayerItem> items;
};

// A section dropped (`--set stack=null`).
enum class ConfigSection : int { kStack, kOutput };
struct RemoveEdit {
  ConfigSection section = ConfigSection::kStack;
};

// A number at one of the config keys the diagnosis sets.
enum class NumberKey : int { kInputMean, kInputStd, kLearningRate };
struct NumberEdit {
  NumberKey key = NumberKey::kInputMean;
  double value = 0.0;
};

struct InputDistributionEdit {
  InputDistribution distribution = InputDistribution::kNormal;
};

// The whole optimizer section.
struct OptimizerEdit {
  OptimizerSpec optimizer{};
};

// The attention ops of an `attention` item at `layer`: the default 1/sqrt(d_head) scale.
struct AttentionScaleEdit {
  std::string layer;
};

// The attention ops of an `attention` item at `layer`: the inits of its four projections.
struct AttentionInitEdit {
  std::string layer;
  std::array<InitSpec, 4> init{};  // query, key, value, output
};

// A key of the `transformer` item at `layer` ("layers[1]"). The spec holds the shorthand expanded
// (every item carrying that path), so applying the edit rewrites those items as the reader would
// expand the shorthand with the new value: pre_norm from post_norm, gpt2 from no scaling.
enum class TransformerKey : int { kPlacementPreNorm, kScalingGpt2 };
struct TransformerEdit {
  std::string layer;
  TransformerKey key = TransformerKey::kPlacementPreNorm;
};

// The branch scale of the residual item at `layer` (every repetition of it): y = x + scale F(x).
struct ResidualScaleEdit {
  std::string layer;
  double scale = 1.0;
};

using ConfigEdit =
    std::variant<ActivationEdit, InitEdit, BiasEdit, NormEdit, LayersEdit, RemoveEdit, NumberEdit,
                 InputDistributionEdit, OptimizerEdit, AttentionScaleEdit, AttentionInitEdit,
                 TransformerEdit, ResidualScaleEdit>;

}  // namespace gradscope
