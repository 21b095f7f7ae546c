// The config reader's and writer's text helpers (quoting, joining, "got ..." phrases, config
// paths, did-you-mean) and the registries' names as lists.
#include <algorithm>

#include "gradscope/core/suggest.hpp"
#include "io/config_detail.hpp"

namespace gradscope::config_detail {

// ---------------------------------------------------------------------------------------------
// Text helpers

std::string quote(std::string_view s) {
  // Appended piece by piece: g++ 12 warns falsely (-Wrestrict, its bug 105651) on "\"" + string.
  std::string out(1, '"');
  out += s;
  out += '"';
  return out;
}

std::string join(const std::vector<std::string_view>& items, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

std::string join_quoted(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " or " : ", ";
    out += quote(items[i]);
  }
  return out;
}

bool contains(const std::vector<std::string_view>& items, std::string_view item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

// A value as it appears in JSON, cut short so that a pasted blob does not flood the message.
// Invalid UTF-8 (possible in override strings) is replaced rather than thrown on.
std::string compact(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  constexpr std::size_t kMaxShown = 60;
  if (s.size() > kMaxShown) {
    std::size_t cut = kMaxShown - 3;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) --cut;
    s = s.substr(0, cut) + "...";
  }
  return s;
}

std::string type_phrase(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "a number";
    default:
      return "nothing";
  }
}

// "got -3" for numbers (the value says what it is), "got \"fifty\" (a string)" otherwise.
std::string got(const Json& v) {
  if (v.is_number() || v.is_null()) return "got " + compact(v);
  return "got " + compact(v) + " (" + type_phrase(v) + ")";
}

std::string child(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

std::string last_segment(std::string_view path) {
  const std::size_t dot = path.rfind('.');
  return std::string(dot == std::string_view::npos ? path : path.substr(dot + 1));
}

// True when `path` is `prefix` or lies inside it.
bool within(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || !path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[';
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  if (const std::optional<std::string> best = closest_name(word, candidates)) {
    return "did you mean " + quote(*best) + "? ";
  }
  return {};
}

// The registries describe parameters as free text ("std", "mode"); the identifiers in it are the
// parameter names.
std::vector<std::string_view> param_names(std::string_view params) {
  std::vector<std::string_view> names;
  std::size_t i = 0;
  const auto is_word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  while (i < params.size()) {
    while (i < params.size() && !is_word(params[i])) ++i;
    const std::size_t start = i;
    while (i < params.size() && is_word(params[i])) ++i;
    if (i > start) names.push_back(params.substr(start, i - start));
  }
  return names;
}

bool valid_name(std::string_view name) {
  const auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (name.empty() || name.size() > kMaxNameLength || !alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

// ---------------------------------------------------------------------------------------------
// Registry views

std::vector<std::string_view> precision_names() {
  return {precision_name(Precision::kFloat32), precision_name(Precision::kFloat64)};
}

std::vector<std::string_view> distribution_names() {
  return {input_distribution_name(InputDistribution::kNormal),
          input_distribution_name(InputDistribution::kUniform)};
}

std::vector<std::string_view> norm_names() {
  std::vector<std::string_view> names;
  for (int k = 0; k < kNormKindCount; ++k) names.push_back(norm_name(static_cast<NormKind>(k)));
  return names;
}

// Indexed by PoolKind.
std::vector<std::string_view> pool_kind_names() {
  return {pool_kind_name(PoolKind::kMax), pool_kind_name(PoolKind::kAverage),
          pool_kind_name(PoolKind::kGlobalAverage)};
}

// Indexed by LossKind.
std::vector<std::string_view> loss_names() {
  return {loss_name(LossKind::kProbe), loss_name(LossKind::kMse),
          loss_name(LossKind::kSoftmaxCrossEntropy), loss_name(LossKind::kSigmoidBce)};
}

// Indexed by OptimizerKind.
std::vector<std::string_view> optimizer_names() {
  return {optimizer_name(OptimizerKind::kNone), optimizer_name(OptimizerKind::kSgd),
          optimizer_name(OptimizerKind::kAdam)};
}

// The parameters each optimizer takes, in the order the resolved config writes them.
std::vector<std::string_view> optimizer_params(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kNone:
      return {};
    case OptimizerKind::kSgd:
      return {"learning_rate", "momentum"};
    case OptimizerKind::kAdam:
      return {"learning_rate", "beta1", "beta2", "eps"};
  }
  return {};
}

// "leaky_relu (slope) and elu (alpha)": the activations that take a parameter.
std::string activations_with_params() {
  std::vector<std::string> parts;
  for (const ActivationInfo& info : activation_table()) {
    if (!info.param_name.empty()) {
      parts.push_back(std::string(info.name) + " (" + std::string(info.param_name) + ")");
    }
  }
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += i + 1 == parts.size() ? " and " : ", ";
    out += parts[i];
  }
  return out;
}

bool is_any_activation_param(std::string_view key) {
  const auto& table = activation_table();
  return std::any_of(table.begin(), table.end(), [&](const ActivationInfo& info) {
    return !info.param_name.empty() && info.param_name == key;
  });
}

std::vector<std::string_view> init_params(const InitInfo& info) {
  std::vector<std::string_view> names{"gain"};
  for (std::string_view p : param_names(info.params)) names.push_back(p);
  return names;
}

bool is_any_init_param(std::string_view key) {
  const auto& table = init_table();
  return std::any_of(table.begin(), table.end(),
                     [&](const InitInfo& info) { return contains(init_params(info), key); });
}

const BiasInitInfo& bias_info(BiasInit kind) {
  return bias_init_table()[static_cast<std::size_t>(kind)];
}

bool is_any_bias_param(std::string_view key) {
  const auto& table = bias_init_table();
  return std::any_of(table.begin(), table.end(), [&](const BiasInitInfo& info) {
    return contains(param_names(info.params), key);
  });
}

std::vector<std::string_view> init_names() {
  std::vector<std::string_view> names;
  for (const InitInfo& info : init_table()) names.push_back(info.name);
  return names;
}

std::vector<std::string_view> bias_init_names() {
  std::vector<std::string_view> names;
  for (const BiasInitInfo& info : bias_init_table()) names.push_back(info.name);
  return names;
}

// "orthogonal takes: gain" / "relu takes no parameters".
std::string takes(std::string_view name, const std::vector<std::string_view>& params) {
  if (params.empty()) return std::string(name) + " takes no parameters";
  return std::string(name) + " takes: " + join(params);
}

std::vector<std::string_view> diagnosis_keys() {
  std::vector<std::string_view> keys;
  for (const DiagnosisThreshold& t : diagnosis_thresholds()) keys.push_back(t.key);
  keys.push_back("deep_layers");
  return keys;
}

}  // namespace gradscope::config_detail
