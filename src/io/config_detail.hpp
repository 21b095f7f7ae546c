// What the config reader's files share (config.cpp reads a tree into a RunSpec, config_json.cpp
// turns text and overrides into the tree, config_write.cpp writes a RunSpec back, config_names.cpp
// holds the text helpers and registry views): private to src/io, nlohmann/json stays here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/core/validate.hpp"
#include "gradscope/io/config.hpp"

namespace gradscope::config_detail {

// ordered_json keeps a file's key order (the first unknown key reported is the first one in the
// file) and keeps the order we write keys in (the resolved config reads top to bottom).
using Json = nlohmann::ordered_json;

// The spec's limits (validate.hpp), checked as each value is read so that a message quotes it as
// written; whether a run actually fits in memory is the engine's check.
inline constexpr std::uint64_t kMaxDepth = spec_limits::kMaxDepth;
inline constexpr std::uint64_t kMaxWidth = spec_limits::kMaxWidth;
inline constexpr std::size_t kMaxNameLength = 128;
// Configs are a few hundred bytes; the cap stops `--config /dev/zero` from eating the memory.
inline constexpr std::size_t kMaxConfigBytes = std::size_t{16} << 20;
// A config nests a handful of levels (root, "layers", an item, its "block", ...); 100 leaves
// room for 40-odd nested blocks. The cap keeps the recursive readers and writers of the tree
// (and nlohmann's dump) from running out of stack on a file of 16 MiB of brackets.
inline constexpr std::size_t kMaxNesting = 100;
// No config object has more than a dozen keys. nlohmann's ordered_json finds a key by linear
// search, so the cap also keeps an object of a million keys from costing 10^12 comparisons.
inline constexpr std::size_t kMaxKeys = 64;

inline constexpr std::string_view kDefaultSource = "<default>";
inline constexpr std::string_view kListHint = "`gradscope list` shows them all";
inline constexpr std::string_view kNameRule =
    "a run name becomes a file name: a letter or digit, then letters, digits, '.', '_' or '-' "
    "(at most 128 characters)";
inline constexpr std::string_view kJsonHint =
    "fix the JSON there: keys and strings need double quotes, and JSON allows no comments and no "
    "trailing commas";

inline const std::vector<std::string_view> kTopKeys{"name",      "seed",   "precision", "input",
                                                    "stack",     "output", "layers",    "loss",
                                                    "optimizer", "stats",  "diagnosis"};
inline const std::vector<std::string_view> kInputKeys{
    "width", "batch", "distribution", "mean", "std", "low", "high", "tokens", "channels", "height"};
inline const std::vector<std::string_view> kStackKeys{"depth", "width", "activation", "init",
                                                      "bias_init"};
inline const std::vector<std::string_view> kOutputKeys{"width", "activation", "init", "bias_init"};
inline constexpr std::uint64_t kMaxJacobianExamples = spec_limits::kMaxJacobianExamples;
inline const std::vector<std::string_view> kStatsKeys{"saturation_threshold", "jacobian_examples"};
// The keys of "diagnosis": its thresholds, then deep_layers.
std::vector<std::string_view> diagnosis_keys();
// Every key an item of "layers" may have; which of them an item has says what it is.
inline const std::vector<std::string_view> kItemKeys{
    "width",       "activation", "init",     "bias_init", "norm",      "norm_position",
    "dropout",     "repeat",     "residual", "block",     "attention", "glu",
    "transformer", "conv",       "pool",     "flatten"};
inline const std::vector<std::string_view> kResidualKeys{"scale",     "skip", "projection",
                                                         "placement", "norm", "preset"};
inline const std::vector<std::string_view> kProjectionKeys{"init", "norm"};
inline const std::vector<std::string_view> kAttentionKeys{
    "heads", "causal", "scale", "bias", "output_projection", "init"};
inline const std::vector<std::string_view> kGluKeys{"hidden", "activation", "bias", "init"};
inline const std::vector<std::string_view> kConvKeys{"channels", "kernel", "stride", "padding",
                                                     "dilation", "groups", "bias"};
inline const std::vector<std::string_view> kPoolKeys{"kind", "kernel", "stride", "padding"};
inline const std::vector<std::string_view> kTransformerKeys{
    "blocks", "heads",     "width",  "mlp_ratio", "activation",
    "norm",   "placement", "causal", "init",      "scaling"};
// attention.scale's names, indexed by AttentionScaleKind (kConstant is written as a number).
inline const std::vector<std::string_view> kAttentionScaleNames{"1/sqrt(d_head)", "1/d_head"};
// Indexed by FanMode.
inline const std::vector<std::string_view> kFanModeNames{"fan_in", "fan_out"};
// Where a dense item's norm goes: index 0 is the default.
inline const std::vector<std::string_view> kNormPositionNames{"before_activation",
                                                              "after_activation"};
// Where a residual block's norm goes: index 0 is the default.
inline const std::vector<std::string_view> kPlacementNames{"pre_norm", "post_norm"};
// Config keys whose value is a name or an object {"name": ..., params}: an override of one of
// their parameters turns the string form into the object form.
inline const std::vector<std::string_view> kNamedKeys{
    "activation", "init", "bias_init", "norm", "loss", "optimizer", "projection"};
// Keys whose value `true` stands for an object of defaults: an override of one of their
// parameters turns `true` into that object.
inline const std::vector<std::pair<std::string_view, std::string_view>> kTrueObjectKeys{
    {"residual", "{}"}, {"projection", R"({"name": "orthogonal"})"}};

// ---------------------------------------------------------------------------------------------
// The transformer shorthand (config_transformer.cpp): {"transformer": {...}} read into this, then
// expanded into ordinary items, so a run's spec and its report's config hold the whole network.

// How the blocks' init and residuals are scaled for depth; indexed by kScalingNames.
enum class TransformerScaling : int { kNone, kGpt2, kDeepNorm, kSubLn, kTFixup, kReZero };
inline const std::vector<std::string_view> kScalingNames{"none",  "gpt2",   "deepnorm",
                                                         "subln", "tfixup", "rezero"};

struct TransformerShorthand {
  int blocks = 1;
  int heads = 1;
  int width = 0;   // d, the stream's width
  int hidden = 0;  // the MLP's, round(mlp_ratio * d)
  bool swiglu = false;
  ActivationSpec activation{Activation::kGelu};  // the MLP's, unless swiglu
  NormSpec norm{};
  bool post_norm = false;
  bool causal = true;
  InitSpec init{Init::kXavierNormal};
  TransformerScaling scaling = TransformerScaling::kNone;
  std::string path;  // the item's, given to every item the expansion builds
};

// The constants a scaling sets: the residuals' skip (alpha) and scale, and the factor each
// projection's init gain is multiplied by.
struct ScalingConstants {
  double skip = 1.0;
  double residual_scale = 1.0;
  double query = 1.0, key = 1.0, value = 1.0, output = 1.0;
  double up = 1.0, down = 1.0;  // the MLP's; a GLU's gate takes `up`'s, as its up does
  bool norms = true;            // tfixup and rezero use none
};
ScalingConstants scaling_constants(TransformerScaling scaling, int blocks);

// The ordinary items a transformer item stands for (docs/configuration.md has the expansion).
std::vector<LayerItem> expand_transformer(const TransformerShorthand& t);

// ---------------------------------------------------------------------------------------------
// Residual presets (config_presets.cpp): "residual": {"preset": ...} on a block item, resolved
// after the whole config is read (Fixup needs the network's number of residual branches) into
// the inits and scales it stands for.

enum class ResidualPresetKind : int { kFixup };
inline const std::vector<std::string_view> kResidualPresetNames{"fixup"};

struct ResidualPreset {
  ResidualPresetKind kind = ResidualPresetKind::kFixup;
};

// A preset that cannot apply: the JSON path, what is wrong, what to do.
struct PresetProblem {
  std::string path;
  std::string what;
  std::string hint;
};

// Applies each block item's preset (keyed by the item's path) to the spec's items.
std::optional<PresetProblem> resolve_residual_presets(
    RunSpec& spec, const std::map<std::string, ResidualPreset>& presets);

// ---------------------------------------------------------------------------------------------
// Text helpers (config_names.cpp)

std::string quote(std::string_view s);
std::string join(const std::vector<std::string_view>& items, std::string_view separator = ", ");
// "a", "b" or "c"
std::string join_quoted(const std::vector<std::string_view>& items);
bool contains(const std::vector<std::string_view>& items, std::string_view item);
// A value as it appears in JSON, cut short so that a pasted blob does not flood the message.
// Invalid UTF-8 (possible in override strings) is replaced rather than thrown on.
std::string compact(const Json& v);
std::string type_phrase(const Json& v);  // "a string", "an object", ...
// "got -3" for numbers (the value says what it is), "got \"fifty\" (a string)" otherwise.
std::string got(const Json& v);
std::string child(std::string_view path, std::string_view key);
std::string last_segment(std::string_view path);
// True when `path` is `prefix` or lies inside it.
bool within(std::string_view path, std::string_view prefix);
// "did you mean \"depth\"? ", or nothing when no candidate is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);
// The registries describe parameters as free text ("std", "mode"); the identifiers in it are the
// parameter names.
std::vector<std::string_view> param_names(std::string_view params);
bool valid_name(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Registry views (config_names.cpp)

std::vector<std::string_view> precision_names();
std::vector<std::string_view> distribution_names();
std::vector<std::string_view> norm_names();
std::vector<std::string_view> pool_kind_names();  // indexed by PoolKind
std::vector<std::string_view> loss_names();       // indexed by LossKind
std::vector<std::string_view> optimizer_names();  // indexed by OptimizerKind
// The parameters each optimizer takes, in the order the resolved config writes them.
std::vector<std::string_view> optimizer_params(OptimizerKind kind);
// "leaky_relu (slope) and elu (alpha)": the activations that take a parameter.
std::string activations_with_params();
bool is_any_activation_param(std::string_view key);
std::vector<std::string_view> init_params(const InitInfo& info);
bool is_any_init_param(std::string_view key);
const BiasInitInfo& bias_info(BiasInit kind);
bool is_any_bias_param(std::string_view key);
std::vector<std::string_view> init_names();
std::vector<std::string_view> bias_init_names();
// "orthogonal takes: gain" / "relu takes no parameters".
std::string takes(std::string_view name, const std::vector<std::string_view>& params);

// ---------------------------------------------------------------------------------------------
// Text and overrides -> tree (config_json.cpp)

// Parses config text, rejecting duplicate keys: JSON parsers silently keep the last one, which
// would let `"depth": 50, ..., "depth": 5` run a different network than the reader sees.
Json parse_json_text(std::string_view text, std::string_view source);

// A config path that an override set or an object it created: errors about values at or under
// it name the override's origin ("--depth") instead of the file, since that is where to fix them.
struct Attribution {
  std::string path;
  std::string origin;
};

std::vector<Attribution> apply_overrides(Json& root, const std::vector<ConfigOverride>& overrides);

// The value at a config path ("layers[1].activation") in `root`, or null when it has none.
const Json* at_path(const Json& root, const std::string& path);

}  // namespace gradscope::config_detail
