// Reads run configs (JSON text, the built-in default, command-line overrides) into a RunSpec:
// the Reader turns the tree into a spec and checks each value's type and range as it reads it,
// then validate.hpp's rules run on the whole spec and their problems are located in the config.
// Why this file is long: the Reader is one class whose readers share its error attribution; each
// section (names, stack, input, layers with their attention, glu, transformer, conv, pool and
// flatten items, loss, optimizer, stats, diagnosis) is its own member.
#include "gradscope/io/config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include "gradscope/core/error.hpp"
#include "gradscope/core/validate.hpp"
#include "io/config_detail.hpp"

namespace gradscope {
namespace {

using namespace config_detail;

// ---------------------------------------------------------------------------------------------
// Tree -> RunSpec

// A name given as "relu" or as {"name": "relu", ...params}.
struct Named {
  std::string name;
  std::string name_path;  // where the name itself is, for messages
  const Json* object;     // the object form, or null for the string form
};

class Reader {
 public:
  Reader(std::string_view source, std::vector<Attribution> attributions)
      : source_(source), attributions_(std::move(attributions)) {}

  RunSpec run(const Json& root, std::string_view default_name) const {
    check_keys(root, "", kTopKeys);
    RunSpec spec;
    spec.name = read_name(find(root, "name"), default_name);
    if (const Json* seed = find(root, "seed")) {
      spec.seed = read_integer(*seed, "seed", 0, std::numeric_limits<std::uint64_t>::max());
    }
    if (const Json* precision = find(root, "precision")) {
      spec.precision = static_cast<Precision>(
          read_choice(*precision, "precision", "precision", precision_names()));
    }
    // null removes a section, so that an override can drop one a file defines.
    if (const Json* layers = given(root, "layers")) {
      check_layers_alone(root);
      spec.stack = read_stack(nullptr);  // unused, but equal to what a round trip reads
      // The stream's width where an item is read (a transformer item needs it): the input's
      // when given, then each dense item's.
      if (const Json* input = section(root, "input")) {
        if (find(*input, "channels") != nullptr) {
          stream_width_ = read_image(*input).size();
        } else if (const Json* width = find(*input, "width")) {
          stream_width_ = read_count(*width, "input.width", kMaxWidth);
        }
      }
      read_item_list(*layers, "layers", spec.layers);
      spec.input = read_input(section(root, "input"), first_width_);
      resolve_residual_projections(spec);
      if (const std::optional<PresetProblem> problem = resolve_residual_presets(spec, presets_)) {
        fail(problem->path, problem->what, problem->hint);
      }
    } else {
      spec.stack = read_stack(given(root, "stack") == nullptr ? nullptr : section(root, "stack"));
      spec.input = read_input(section(root, "input"), spec.stack.layer.width);
      if (given(root, "output") != nullptr) {
        spec.output = read_output(*section(root, "output"), spec.stack.layer);
      }
    }
    spec.loss = read_loss(find(root, "loss"));
    // Softmax cross-entropy's classes default to the output width, which the rules then check.
    if (spec.loss.kind == LossKind::kSoftmaxCrossEntropy && spec.loss.classes == 0) {
      spec.loss.classes = output_width(spec);
    }
    spec.optimizer = read_optimizer(find(root, "optimizer"));
    spec.stats = read_stats(section(root, "stats"));
    spec.diagnosis = read_diagnosis(section(root, "diagnosis"));
    if (const std::optional<SpecProblem> problem = find_spec_problem(spec)) {
      fail_rule(root, *problem);
    }
    return spec;
  }

 private:
  // The origin of the latest override that set one of `paths` (or an object holding it).
  std::string where(const std::vector<std::string_view>& paths) const {
    for (auto it = attributions_.rbegin(); it != attributions_.rend(); ++it) {
      for (std::string_view path : paths) {
        if (within(path, it->path)) return it->origin;
      }
    }
    return source_;
  }

  [[noreturn]] void fail_across(const std::vector<std::string_view>& involved,
                                const std::string& path, const std::string& what,
                                std::string hint) const {
    std::string message = where(involved) + ": ";
    if (!path.empty()) message += path + ": ";
    throw Error(message + what, std::move(hint));
  }

  [[noreturn]] void fail(const std::string& path, const std::string& what, std::string hint) const {
    fail_across({path}, path, what, std::move(hint));
  }

  // A rule of validate.hpp that the spec read from `root` breaks, located by its config path.
  [[noreturn]] void fail_rule(const Json& root, const SpecProblem& problem) const {
    std::string path = in_shorthand(root, problem.path);
    // The object form {"name": "softmax"} puts the name one level down.
    if (const Json* node = at_path(root, path); problem.at_name && node && node->is_object()) {
      path = child(path, "name");
    }
    std::vector<std::string_view> involved{path};
    involved.insert(involved.end(), problem.also.begin(), problem.also.end());
    fail_across(involved, path, problem.what, problem.hint);
  }

  // A rule's path inside the items a transformer item expanded into ("layers[0].attention.heads")
  // is not in the file: it names the transformer's key of the same name when it has one
  // ("layers[0].transformer.heads"), else the transformer itself.
  static std::string in_shorthand(const Json& root, const std::string& path) {
    if (path.empty() || at_path(root, path) != nullptr) return path;
    std::string prefix = path;
    for (std::size_t cut = prefix.find_last_of(".["); cut != std::string::npos && cut > 0;
         cut = prefix.find_last_of(".[")) {
      prefix.resize(cut);
      const Json* node = at_path(root, prefix);
      if (node == nullptr) continue;
      if (!node->is_object() || !node->contains("transformer")) return path;
      const std::string shorthand = child(prefix, "transformer");
      const Json* object = at_path(root, shorthand);
      const std::string key = last_segment(path);
      const bool named = object != nullptr && object->is_object() && object->contains(key);
      return named ? child(shorthand, key) : shorthand;
    }
    return path;
  }

  static const Json* find(const Json& object, std::string_view key) {
    const auto it = object.find(std::string(key));
    return it == object.end() ? nullptr : &*it;
  }

  // An optional object-valued key; null when absent.
  const Json* section(const Json& parent, std::string_view key) const {
    const Json* v = find(parent, key);
    if (v != nullptr && !v->is_object()) {
      fail(std::string(key), "expected an object {...}, " + got(*v),
           "write it as an object, e.g. \"" + std::string(key) + "\": {...}");
    }
    return v;
  }

  void check_keys(const Json& object, const std::string& path,
                  const std::vector<std::string_view>& valid) const {
    for (const auto& item : object.items()) {
      if (contains(valid, item.key())) continue;
      fail(child(path, item.key()), "unknown key",
           did_you_mean(item.key(), valid) + "valid keys here: " + join(valid));
    }
  }

  // A hint for a value of the wrong type that holds the right thing in quotes ("50").
  static std::string unquote_hint(const Json& v, std::string_view fallback) {
    if (v.is_string()) {
      const Json inner = Json::parse(v.get<std::string>(), nullptr, false);
      if (!inner.is_discarded() && inner.is_number()) return "remove the quotes: " + inner.dump();
    }
    return std::string(fallback);
  }

  // An integer in [min, max]; whole-valued floats (1e3) are accepted, fractions are not.
  std::uint64_t read_integer(const Json& v, const std::string& path, std::uint64_t min,
                             std::uint64_t max) const {
    const std::string expected = min == 0 ? "a non-negative integer" : "a positive integer";
    const std::string field = last_segment(path);
    const std::string range = "use a whole number from " + std::to_string(min) + " to " +
                              std::to_string(max) + " for " + field;
    if (!v.is_number()) fail(path, "expected " + expected + ", " + got(v), unquote_hint(v, range));
    bool below = false;
    bool above = false;
    std::uint64_t value = 0;
    if (v.is_number_unsigned()) {
      value = v.get<std::uint64_t>();
    } else if (v.is_number_integer()) {
      const auto signed_value = v.get<std::int64_t>();
      below = signed_value < 0;
      if (!below) value = static_cast<std::uint64_t>(signed_value);
    } else {
      const double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d)) {
        fail(path, "expected " + expected + ", " + got(v) + " (not a whole number)", range);
      }
      constexpr double kTwoTo64 = 18446744073709551616.0;
      below = d < 0;
      above = d >= kTwoTo64;
      if (!below && !above) value = static_cast<std::uint64_t>(d);
    }
    if (below || (!above && value < min)) {
      fail(path,
           "expected " + expected + ", " + got(v) + "; " + field + " must be at least " +
               std::to_string(min),
           range);
    }
    if (above || value > max) {
      fail(path, compact(v) + " is too large; " + field + " must be at most " + std::to_string(max),
           range);
    }
    return value;
  }

  int read_count(const Json& v, const std::string& path, std::uint64_t max) const {
    return static_cast<int>(read_integer(v, path, 1, max));
  }

  double read_number(const Json& v, const std::string& path) const {
    if (!v.is_number()) {
      fail(path, "expected a number, " + got(v), unquote_hint(v, "write a number, e.g. 0.5"));
    }
    const double d = v.get<double>();
    if (!std::isfinite(d))
      fail(path, "expected a finite number, " + got(v), "write a finite number");
    return d;
  }

  double read_nonnegative(const Json& v, const std::string& path) const {
    const double d = read_number(v, path);
    if (d < 0) {
      fail(path, "must be at least 0, " + got(v), "use a number >= 0 for " + last_segment(path));
    }
    return d;
  }

  std::string read_string(const Json& v, const std::string& path,
                          const std::string& expected) const {
    if (!v.is_string()) {
      std::string hint = "write it in double quotes";
      if (v.is_number() || v.is_boolean()) {
        hint += ", e.g. \"" + compact(v) + "\" (on a command line, quote the quotes: '\"" +
                compact(v) + "\"')";
      }
      fail(path, "expected " + expected + ", " + got(v), hint);
    }
    return v.get<std::string>();
  }

  // The index of the option named by `v`.
  std::size_t read_choice(const Json& v, const std::string& path, std::string_view what,
                          const std::vector<std::string_view>& options) const {
    const std::string s = read_string(v, path, "one of " + join_quoted(options));
    for (std::size_t i = 0; i < options.size(); ++i) {
      if (options[i] == s) return i;
    }
    fail(path, "unknown " + std::string(what) + " " + quote(s),
         did_you_mean(s, options) + "choose one of: " + join(options));
  }

  std::string read_name(const Json* v, std::string_view default_name) const {
    if (v != nullptr) {
      std::string name = read_string(*v, "name", "a string");
      if (!valid_name(name))
        fail("name", quote(name) + " is not a valid run name", std::string(kNameRule));
      return name;
    }
    if (!valid_name(default_name)) {
      fail("", "the run name defaults to " + quote(default_name) + ", which is not a valid name",
           "add a \"name\" to the config; " + std::string(kNameRule));
    }
    return std::string(default_name);
  }

  Named read_named(const Json& v, const std::string& path, std::string_view what,
                   std::string_view example) const {
    if (v.is_string()) return Named{v.get<std::string>(), path, nullptr};
    if (v.is_object()) {
      const Json* name = find(v, "name");
      if (name == nullptr) fail(path, "missing \"name\"", "write e.g. " + std::string(example));
      const std::string name_path = child(path, "name");
      return Named{read_string(*name, name_path, "a string"), name_path, &v};
    }
    fail(path, "expected " + std::string(what) + " name or an object {\"name\": ...}, " + got(v),
         "write e.g. " + std::string(example));
  }

  // A parameter key that this kind does not take: say which it does take, or suggest a spelling.
  [[noreturn]] void reject_param(const std::string& key_path, std::string_view key,
                                 std::string_view name, bool known_elsewhere,
                                 const std::vector<std::string_view>& params,
                                 std::string extra_hint = {}) const {
    if (known_elsewhere) {
      const std::string what = params.empty() ? std::string(name) + " takes no parameters"
                                              : std::string(name) + " does not take " + quote(key);
      fail(key_path, what,
           (params.empty() ? "remove " + quote(key) : takes(name, params)) + extra_hint);
    }
    std::vector<std::string_view> valid{"name"};
    valid.insert(valid.end(), params.begin(), params.end());
    fail(key_path, "unknown key",
         did_you_mean(key, valid) + "valid keys here: " + join(valid) + extra_hint);
  }

  ActivationSpec read_activation(const Json& v, const std::string& path) const {
    const Named named =
        read_named(v, path, "an activation", R"("tanh" or {"name": "leaky_relu", "slope": 0.2})");
    const std::optional<Activation> kind = activation_from_name(named.name);
    if (!kind) {
      fail(named.name_path, "unknown activation " + quote(named.name),
           did_you_mean(named.name, activation_names_and_aliases()) + std::string(kListHint));
    }
    const ActivationInfo& info = activation_info(*kind);
    ActivationSpec spec = default_spec(*kind);
    if (named.object == nullptr) return spec;
    std::vector<std::string_view> params;
    if (!info.param_name.empty()) params.push_back(info.param_name);
    for (const auto& item : named.object->items()) {
      const std::string& key = item.key();
      if (key == "name") continue;
      const std::string key_path = child(path, key);
      if (contains(params, key)) {
        spec.param = read_number(item.value(), key_path);
        continue;
      }
      reject_param(key_path, key, info.name, is_any_activation_param(key), params,
                   params.empty() && is_any_activation_param(key)
                       ? "; only " + activations_with_params() + " take one"
                       : std::string());
    }
    return spec;
  }

  InitSpec read_init(const Json& v, const std::string& path) const {
    const Named named =
        read_named(v, path, "an init", R"("xavier_normal" or {"name": "orthogonal", "gain": 0.5})");
    const std::optional<Init> kind = init_from_name(named.name);
    if (!kind) {
      fail(named.name_path, "unknown init " + quote(named.name),
           did_you_mean(named.name, init_names()) + std::string(kListHint));
    }
    InitSpec spec;
    spec.kind = *kind;
    if (named.object == nullptr) return spec;
    const InitInfo& info = init_info(*kind);
    const std::vector<std::string_view> params = init_params(info);
    for (const auto& item : named.object->items()) {
      const std::string& key = item.key();
      if (key == "name") continue;
      const std::string key_path = child(path, key);
      if (!contains(params, key)) {
        reject_param(key_path, key, info.name, is_any_init_param(key), params);
      }
      const Json& value = item.value();
      if (key == "gain") {
        spec.gain = read_nonnegative(value, key_path);
      } else if (key == "std") {
        spec.std = read_nonnegative(value, key_path);
      } else if (key == "limit") {
        spec.limit = read_nonnegative(value, key_path);
      } else if (key == "weight_var") {
        spec.weight_var = read_nonnegative(value, key_path);
      } else if (key == "mode") {
        spec.mode = static_cast<FanMode>(read_choice(value, key_path, "mode", kFanModeNames));
      } else {
        throw Error("init parameter " + quote(key) + " of " + std::string(info.name) +
                        " has no reader in config.cpp",
                    {}, ExitCode::kInternal);
      }
    }
    return spec;
  }

  BiasInitSpec read_bias(const Json& v, const std::string& path) const {
    const Named named =
        read_named(v, path, "a bias_init", R"("zeros" or {"name": "constant", "value": 0.1})");
    const std::optional<BiasInit> kind = bias_init_from_name(named.name);
    if (!kind) {
      fail(named.name_path, "unknown bias_init " + quote(named.name),
           did_you_mean(named.name, bias_init_names()) + std::string(kListHint));
    }
    BiasInitSpec spec;
    spec.kind = *kind;
    if (named.object == nullptr) return spec;
    const BiasInitInfo& info = bias_info(*kind);
    const std::vector<std::string_view> params = param_names(info.params);
    for (const auto& item : named.object->items()) {
      const std::string& key = item.key();
      if (key == "name") continue;
      const std::string key_path = child(path, key);
      if (!contains(params, key)) {
        reject_param(key_path, key, info.name, is_any_bias_param(key), params);
      }
      if (key == "value") {
        spec.value = read_number(item.value(), key_path);
      } else if (key == "std") {
        spec.std = read_nonnegative(item.value(), key_path);
      } else {
        throw Error("bias_init parameter " + quote(key) + " of " + std::string(info.name) +
                        " has no reader in config.cpp",
                    {}, ExitCode::kInternal);
      }
    }
    return spec;
  }

  // Reads the keys a layer may have into `layer`, which holds the defaults.
  void read_layer_keys(const Json& object, const std::string& path, LayerSpec& layer) const {
    if (const Json* width = find(object, "width")) {
      layer.width = read_count(*width, child(path, "width"), kMaxWidth);
    }
    if (const Json* activation = find(object, "activation")) {
      layer.activation = read_activation(*activation, child(path, "activation"));
    }
    if (const Json* init = find(object, "init")) layer.init = read_init(*init, child(path, "init"));
    if (const Json* bias = find(object, "bias_init")) {
      layer.bias = read_bias(*bias, child(path, "bias_init"));
    }
  }

  StackSpec read_stack(const Json* object) const {
    StackSpec stack;
    stack.layer.activation = default_spec(Activation::kRelu);
    if (object == nullptr) return stack;
    check_keys(*object, "stack", kStackKeys);
    if (const Json* depth = find(*object, "depth")) {
      stack.depth = read_count(*depth, "stack.depth", kMaxDepth);
    }
    read_layer_keys(*object, "stack", stack.layer);
    // As PyTorch's nn.Linear: its weight scheme comes with its own bias scheme.
    if (find(*object, "bias_init") == nullptr) {
      stack.layer.bias = BiasInitSpec{};
      if (stack.layer.init.kind == Init::kTorchDefault)
        stack.layer.bias.kind = BiasInit::kTorchDefault;
    }
    return stack;
  }

  LayerSpec read_output(const Json& object, const LayerSpec& stack_layer) const {
    check_keys(object, "output", kOutputKeys);
    if (find(object, "width") == nullptr) {
      fail("output", "missing \"width\"",
           "the output layer needs a width, e.g. \"output\": {\"width\": 10, \"activation\": "
           "\"softmax\"}");
    }
    LayerSpec layer = stack_layer;  // init and bias_init default to the stack's
    layer.activation = default_spec(Activation::kLinear);
    read_layer_keys(object, "output", layer);
    // An output layer that names torch_default gets its bias too, as the stack does.
    if (find(object, "bias_init") == nullptr && find(object, "init") != nullptr) {
      layer.bias = BiasInitSpec{};
      if (layer.init.kind == Init::kTorchDefault) layer.bias.kind = BiasInit::kTorchDefault;
    }
    return layer;
  }

  // An image input: "channels", "height" and "width", all required once "channels" is given.
  ImageShape read_image(const Json& object) const {
    check_keys(object, "input", kInputKeys);
    const std::string example = R"("input": {"channels": 3, "height": 32, "width": 32})";
    ImageShape image;
    image.channels = read_count(object.at("channels"), "input.channels", kMaxWidth);
    for (const auto& [key, field] :
         {std::pair{"height", &ImageShape::height}, std::pair{"width", &ImageShape::width}}) {
      const Json* v = find(object, key);
      if (v == nullptr) {
        fail_across({"input", "input.channels"}, "input",
                    "missing \"" + std::string(key) +
                        "\": an image input (\"channels\" is given) needs its height and width",
                    "give all three, e.g. " + example +
                        "; without \"channels\" the input is a vector of \"width\" features");
      }
      image.*field = read_count(*v, child("input", key), kMaxWidth);
    }
    const std::int64_t features = std::int64_t{image.channels} * image.height * image.width;
    if (features > static_cast<std::int64_t>(kMaxWidth)) {
      fail_across({"input.channels", "input.height", "input.width"}, "input",
                  "channels x height x width = " + std::to_string(features) +
                      " features, more than the " + std::to_string(kMaxWidth) +
                      " an example may have",
                  "lower input.channels, input.height or input.width");
    }
    if (find(object, "tokens") != nullptr) {
      fail_across({"input.tokens", "input.channels"}, "input.tokens",
                  "an image input (\"channels\" is given) takes no \"tokens\"",
                  "an example is one image of channels x height x width: remove \"tokens\", or "
                  "remove \"channels\" and \"height\" for sequences of vectors");
    }
    return image;
  }

  // `default_width` is the stack's width, or the first dense item's; none when "layers" has no
  // dense item, and then the input width must be given (an image input gives it).
  InputSpec read_input(const Json* object, std::optional<int> default_width) const {
    InputSpec input;
    if (object != nullptr) check_keys(*object, "input", kInputKeys);
    const bool image = object != nullptr && find(*object, "channels") != nullptr;
    if (object != nullptr && !image && find(*object, "height") != nullptr) {
      fail("input.height", "\"height\" without \"channels\"",
           "an image input gives all three, e.g. \"input\": {\"channels\": 3, \"height\": 32, "
           "\"width\": 32}; a vector input gives only \"width\": remove \"height\"");
    }
    const Json* width = object == nullptr ? nullptr : find(*object, "width");
    if (image) {
      input.image = read_image(*object);
      input.width = input.image.size();
    } else if (width != nullptr) {
      input.width = read_count(*width, "input.width", kMaxWidth);
    } else if (default_width) {
      input.width = *default_width;
    } else {
      fail_across({"input", "layers"}, "input.width",
                  "missing: \"layers\" has no dense item whose width it could default to",
                  "give the input's width, e.g. \"input\": {\"width\": 256}");
    }
    if (object == nullptr) return input;
    if (const Json* batch = find(*object, "batch")) {
      input.batch = read_count(*batch, "input.batch", kMaxWidth);
    }
    if (const Json* tokens = find(*object, "tokens")) {
      input.tokens = read_count(*tokens, "input.tokens", kMaxWidth);
    }
    const Json* distribution = find(*object, "distribution");
    if (distribution != nullptr) {
      input.distribution = static_cast<InputDistribution>(
          read_choice(*distribution, "input.distribution", "distribution", distribution_names()));
    }
    const bool normal = input.distribution == InputDistribution::kNormal;
    const std::vector<std::string_view> own = normal ? std::vector<std::string_view>{"mean", "std"}
                                                     : std::vector<std::string_view>{"low", "high"};
    const std::vector<std::string_view> other = normal
                                                    ? std::vector<std::string_view>{"low", "high"}
                                                    : std::vector<std::string_view>{"mean", "std"};
    const std::string this_name(input_distribution_name(input.distribution));
    const std::string other_name(
        input_distribution_name(normal ? InputDistribution::kUniform : InputDistribution::kNormal));
    for (std::string_view key : other) {
      if (find(*object, key) == nullptr) continue;
      fail_across({child("input", key), "input.distribution"}, child("input", key),
                  quote(key) + " belongs to the " + other_name +
                      " distribution, but input.distribution is " + quote(this_name) +
                      (distribution == nullptr ? " (the default)" : ""),
                  "set \"distribution\": " + quote(other_name) + " or remove " + quote(key) + "; " +
                      this_name + " takes " + join(own, " and "));
    }
    if (normal) {
      if (const Json* mean = find(*object, "mean")) input.mean = read_number(*mean, "input.mean");
      if (const Json* sd = find(*object, "std")) input.std = read_nonnegative(*sd, "input.std");
    } else {
      if (const Json* low = find(*object, "low")) input.low = read_number(*low, "input.low");
      if (const Json* high = find(*object, "high")) input.high = read_number(*high, "input.high");
    }
    return input;
  }

  StatsSpec read_stats(const Json* object) const {
    StatsSpec stats;
    if (object == nullptr) return stats;
    check_keys(*object, "stats", kStatsKeys);
    if (const Json* t = find(*object, "saturation_threshold")) {
      const std::string path = "stats.saturation_threshold";
      stats.saturation_threshold = read_number(*t, path);
      if (!(stats.saturation_threshold > 0 && stats.saturation_threshold < 1)) {
        fail(path, "must be between 0 and 1 (both excluded), " + got(*t),
             "an entry counts as saturated when |phi'(h)| < threshold * max |phi'|; the default "
             "is 0.05");
      }
    }
    if (const Json* j = find(*object, "jacobian_examples")) {
      stats.jacobian_examples =
          static_cast<int>(read_integer(*j, "stats.jacobian_examples", 0, kMaxJacobianExamples));
    }
    return stats;
  }

  DiagnosisSpec read_diagnosis(const Json* object) const {
    DiagnosisSpec d;
    if (object == nullptr) return d;
    check_keys(*object, "diagnosis", diagnosis_keys());
    for (const DiagnosisThreshold& k : diagnosis_thresholds()) {
      const Json* v = find(*object, k.key);
      if (v == nullptr) continue;
      const std::string path = "diagnosis." + std::string(k.key);
      const double x = read_number(*v, path);
      if (k.fraction ? !(x > 0 && x < 1) : !(x > 0 && std::isfinite(x))) {
        fail(path,
             std::string(k.fraction ? "must be between 0 and 1 (both excluded), "
                                    : "must be a positive number, ") +
                 got(*v),
             "the README's diagnosis section gives each threshold's meaning and default");
      }
      d.*k.member = x;
    }
    if (const Json* v = find(*object, "deep_layers")) {
      d.deep_layers = static_cast<int>(read_integer(*v, "diagnosis.deep_layers", 1, kMaxDepth));
    }
    // A warning threshold raised above the default error threshold raises that with it.
    if (find(*object, "gradient_error_decades") == nullptr) {
      d.gradient_error_decades = std::max(d.gradient_error_decades, d.gradient_warning_decades);
    }
    if (find(*object, "activation_error_decades") == nullptr) {
      d.activation_error_decades =
          std::max(d.activation_error_decades, d.activation_warning_decades);
    }
    return d;
  }

  // ---- "layers"

  enum class ItemKind : int {
    kDense,
    kNorm,
    kActivation,
    kDropout,
    kBlock,
    kAttention,
    kGlu,
    kTransformer,
    kConv,
    kPool,
    kFlatten
  };

  // The value of an optional key, with null counting as absent.
  static const Json* given(const Json& object, std::string_view key) {
    const Json* v = find(object, key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }

  // Whether an override set `path`, something inside it, or an object holding it.
  bool overridden(std::string_view path) const {
    return std::any_of(attributions_.begin(), attributions_.end(), [&](const Attribution& a) {
      return within(a.path, path) || within(path, a.path);
    });
  }

  void check_layers_alone(const Json& root) const {
    for (std::string_view key : {std::string_view("stack"), std::string_view("output")}) {
      if (given(root, key) == nullptr) continue;
      // The built-in config spells out the default stack; it is a default, not a choice, so
      // `--set layers=[...]` on it replaces it rather than conflicting with it.
      if (key == "stack" && source_ == kDefaultSource && !overridden(key)) continue;
      fail_across({"layers", key}, std::string(key),
                  quote(key) + " cannot be used together with \"layers\"",
                  "use one: \"layers\" describes the whole network, \"stack\" and \"output\" a "
                  "uniform stack of dense layers; remove " +
                      quote(key) + " (flags such as --depth and --width set stack keys; --set " +
                      std::string(key) + "=null removes a file's)");
    }
  }

  static std::string item_forms() {
    return R"(an item is a dense layer {"width": 256, "activation": "relu"}, a norm )"
           R"({"norm": "layer_norm"}, an activation {"activation": "gelu"}, a dropout )"
           R"({"dropout": 0.1}, an attention {"attention": {"heads": 4}}, a gated MLP )"
           R"({"glu": {"hidden": 1024}}, a transformer {"transformer": {"blocks": 6}}, a )"
           R"(convolution {"conv": {"channels": 64, "kernel": 3}, "activation": "relu"}, a )"
           R"(pooling {"pool": {"kind": "max", "kernel": 2}}, a flatten {"flatten": {}}, or a )"
           R"(block {"repeat": 4, "residual": {"scale": 1}, "block": [items...]})";
  }

  void read_item_list(const Json& v, const std::string& path, std::vector<LayerItem>& items) const {
    const bool top = path == "layers";
    if (!v.is_array()) {
      fail(path, "expected an array [...] of items, " + got(v),
           top ? item_forms() + "; \"layers\" lists them in order"
               : item_forms() + "; \"block\" lists them in order");
    }
    if (v.empty()) {
      if (top) {
        fail(path, "empty: a network needs at least one item",
             "list the network's layers, e.g. \"layers\": [{\"width\": 256}], or remove "
             "\"layers\" to use \"stack\"");
      }
      fail(path, "empty: a block needs at least one item",
           "give the block its items, e.g. \"block\": [{\"width\": 256}], or remove the block");
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
      read_item(v[i], path + "[" + std::to_string(i) + "]", items);
    }
  }

  static ItemKind kind_of_key(std::string_view key) {
    if (key == "norm") return ItemKind::kNorm;
    if (key == "activation") return ItemKind::kActivation;
    if (key == "dropout") return ItemKind::kDropout;
    if (key == "block" || key == "repeat" || key == "residual") return ItemKind::kBlock;
    if (key == "attention") return ItemKind::kAttention;
    if (key == "glu") return ItemKind::kGlu;
    if (key == "transformer") return ItemKind::kTransformer;
    if (key == "conv") return ItemKind::kConv;
    if (key == "pool") return ItemKind::kPool;
    if (key == "flatten") return ItemKind::kFlatten;
    return ItemKind::kDense;  // width, init, bias_init, norm_position
  }

  static std::string_view kind_phrase(ItemKind kind) {
    switch (kind) {
      case ItemKind::kDense:
        return "a dense layer";
      case ItemKind::kNorm:
        return "a norm layer";
      case ItemKind::kActivation:
        return "an activation layer";
      case ItemKind::kDropout:
        return "a dropout layer";
      case ItemKind::kBlock:
        return "a block";
      case ItemKind::kAttention:
        return "an attention layer";
      case ItemKind::kGlu:
        return "a gated MLP";
      case ItemKind::kTransformer:
        return "a transformer";
      case ItemKind::kConv:
        return "a convolution";
      case ItemKind::kPool:
        return "a pooling";
      case ItemKind::kFlatten:
        return "a flatten";
    }
    return "an item";
  }

  // What an item is, from its keys; keys of two kinds are an error.
  ItemKind item_kind(const Json& v, const std::string& path) const {
    // A convolution takes a dense layer's keys but its width: "activation", "init", "bias_init",
    // "norm" and "norm_position" beside "conv" are the convolution's.
    const bool conv = find(v, "conv") != nullptr;
    bool dense = false;
    for (const auto& item : v.items()) dense = dense || kind_of_key(item.key()) == ItemKind::kDense;
    // The first key of each kind, in the item's order; a dense layer's own "activation" and
    // "norm" are part of it.
    std::vector<std::pair<std::string, ItemKind>> kinds;
    for (const auto& item : v.items()) {
      ItemKind kind = kind_of_key(item.key());
      const bool shared = kind == ItemKind::kActivation || kind == ItemKind::kNorm ||
                          (kind == ItemKind::kDense && item.key() != "width");
      if (conv && shared) {
        kind = ItemKind::kConv;
      } else if (dense && (kind == ItemKind::kActivation || kind == ItemKind::kNorm)) {
        kind = ItemKind::kDense;
      }
      const bool seen =
          std::any_of(kinds.begin(), kinds.end(), [&](const auto& k) { return k.second == kind; });
      if (!seen) kinds.emplace_back(item.key(), kind);
    }
    if (kinds.size() == 1) return kinds.front().second;
    const auto& [first_key, first] = kinds[0];
    const auto& [second_key, second] = kinds[1];
    std::string hint = quote(first_key) + " makes it " + std::string(kind_phrase(first)) + " and " +
                       quote(second_key) + " " + std::string(kind_phrase(second)) +
                       ": write them as separate items, in the order they apply";
    if ((first == ItemKind::kNorm && second == ItemKind::kActivation) ||
        (first == ItemKind::kActivation && second == ItemKind::kNorm)) {
      hint += R"(; a dense layer with a norm needs its "width": {"width": 256, "norm": ...})";
    }
    if ((first == ItemKind::kConv && first_key == "conv" && second_key == "width") ||
        (second == ItemKind::kConv && second_key == "conv" && first_key == "width")) {
      hint += R"(; a convolution's output has "channels" (inside "conv") and the image size its )"
              R"(kernel, stride and padding give: remove "width")";
    }
    fail(path, quote(first_key) + " and " + quote(second_key) + " cannot be in one item", hint);
  }

  void read_item(const Json& v, const std::string& path, std::vector<LayerItem>& items) const {
    if (!v.is_object()) fail(path, "expected an item {...}, " + got(v), item_forms());
    if (v.empty()) fail(path, "an empty item", item_forms());
    check_keys(v, path, kItemKeys);
    LayerItem item;
    switch (item_kind(v, path)) {
      case ItemKind::kDense:
        read_dense_item(v, path, items);
        return;
      case ItemKind::kNorm:
        item.op.kind = OpKind::kNorm;
        item.op.norm = read_norm(v.at("norm"), child(path, "norm"));
        break;
      case ItemKind::kActivation:
        item.op.kind = OpKind::kActivation;
        item.op.activation = read_activation(v.at("activation"), child(path, "activation"));
        break;
      case ItemKind::kDropout: {
        item.op.kind = OpKind::kDropout;
        const std::string rate_path = child(path, "dropout");
        item.op.dropout = read_number(v.at("dropout"), rate_path);
        if (!(item.op.dropout >= 0 && item.op.dropout < 1)) {
          fail(rate_path, "must be in [0, 1), " + got(v.at("dropout")),
               "the dropout rate is the probability of zeroing a unit; 0 keeps them all, 1 "
               "would zero them all");
        }
        break;
      }
      case ItemKind::kBlock: {
        read_block_item(v, path, item);
        break;
      }
      case ItemKind::kAttention:
        item.op.kind = OpKind::kAttention;
        item.op.attention = read_attention(v.at("attention"), child(path, "attention"));
        break;
      case ItemKind::kGlu:
        item.op.kind = OpKind::kGlu;
        item.op.glu = read_glu(v.at("glu"), child(path, "glu"));
        break;
      case ItemKind::kTransformer:
        read_transformer_item(v.at("transformer"), path, items);
        return;
      case ItemKind::kConv:
        read_conv_item(v, path, items);
        return;
      case ItemKind::kPool:
        item.op.kind = OpKind::kPool;
        item.op.pool = read_pool(v.at("pool"), child(path, "pool"));
        stream_width_.reset();
        after_image_op_ = true;
        break;
      case ItemKind::kFlatten:
        item.op.kind = OpKind::kFlatten;
        read_flatten(v.at("flatten"), child(path, "flatten"));
        break;
    }
    item.path = path;
    items.push_back(std::move(item));
  }

  // A dense item; with a "norm" it is sugar for two or three ops (see the README):
  // before_activation: dense (linear), norm, activation (left out when linear);
  // after_activation: dense (with its activation), norm.
  void read_dense_item(const Json& v, const std::string& path,
                       std::vector<LayerItem>& items) const {
    if (find(v, "width") == nullptr) {
      fail(path, "missing \"width\"",
           R"(a dense item needs a width, e.g. {"width": 512, "activation": "gelu"})");
    }
    LayerSpec layer;
    layer.activation = default_spec(Activation::kRelu);
    read_layer_keys(v, path, layer);
    stream_width_ = layer.width;
    if (!first_width_) first_width_ = layer.width;
    // As in the stack: torch_default weights bring torch_default biases.
    if (find(v, "bias_init") == nullptr) {
      layer.bias = BiasInitSpec{};
      if (layer.init.kind == Init::kTorchDefault) layer.bias.kind = BiasInit::kTorchDefault;
    }
    OpSpec dense;
    dense.kind = OpKind::kDense;
    dense.dense = layer;
    push_with_norm(v, path, dense, items);
  }

  // The activation a dense or convolution op applies.
  static ActivationSpec& activation_of(OpSpec& op) {
    return op.kind == OpKind::kConv ? op.conv.activation : op.dense.activation;
  }

  // Pushes a dense or convolution op, with the item's "norm" when it has one:
  // before_activation: the op (linear), norm, activation (left out when linear);
  // after_activation: the op (with its activation), norm.
  void push_with_norm(const Json& v, const std::string& path, OpSpec op,
                      std::vector<LayerItem>& items) const {
    const Json* norm = find(v, "norm");
    const Json* position = find(v, "norm_position");
    if (position != nullptr && norm == nullptr) {
      fail(child(path, "norm_position"), "\"norm_position\" without a \"norm\"",
           "add the norm, e.g. \"norm\": \"batch_norm\", or remove \"norm_position\"");
    }
    const auto push = [&](const OpSpec& o) {
      LayerItem item;
      item.op = o;
      item.path = path;
      items.push_back(std::move(item));
    };
    if (norm == nullptr) {
      push(op);
      return;
    }
    OpSpec norm_op;
    norm_op.kind = OpKind::kNorm;
    norm_op.norm = read_norm(*norm, child(path, "norm"));
    const bool after = position != nullptr && read_choice(*position, child(path, "norm_position"),
                                                          "norm_position", kNormPositionNames) == 1;
    if (after) {
      push(op);
      push(norm_op);
      return;
    }
    const ActivationSpec activation = activation_of(op);
    activation_of(op) = default_spec(Activation::kLinear);
    push(op);
    push(norm_op);
    if (activation.kind != Activation::kLinear) {
      OpSpec activation_op;
      activation_op.kind = OpKind::kActivation;
      activation_op.activation = activation;
      push(activation_op);
    }
  }

  // {"conv": {...}, "activation": ..., "init": ..., "bias_init": ..., "norm": ...}: the keys
  // beside "conv" as a dense item has them, with its defaults (relu, he_normal, zeros).
  // An "init" of "delta_orthogonal" (Xiao et al. 2018) is a conv item's only (validate.cpp).
  void read_conv_item(const Json& v, const std::string& path, std::vector<LayerItem>& items) const {
    OpSpec op;
    op.kind = OpKind::kConv;
    op.conv = read_conv(v.at("conv"), child(path, "conv"));
    LayerSpec layer;  // the dense item's reading of the shared keys
    layer.activation = default_spec(Activation::kRelu);
    read_layer_keys(v, path, layer);
    op.conv.activation = layer.activation;
    op.conv.init = layer.init;
    const Json* bias_init = find(v, "bias_init");
    if (bias_init != nullptr && !op.conv.bias) {
      fail_across({child(path, "bias_init"), child(path, "conv.bias")}, child(path, "bias_init"),
                  "a bias_init, but conv.bias is false",
                  "remove \"bias_init\", or set conv.bias to true to give the convolution a bias");
    }
    op.conv.bias_init = layer.bias;
    // As a dense item: torch_default weights bring torch_default biases.
    if (bias_init == nullptr) {
      op.conv.bias_init = BiasInitSpec{};
      if (op.conv.init.kind == Init::kTorchDefault) {
        op.conv.bias_init.kind = BiasInit::kTorchDefault;
      }
    }
    stream_width_.reset();
    after_image_op_ = true;
    push_with_norm(v, path, op, items);
  }

  // A size of a window given as one number for both sides or as [height, width], each in
  // [min, kMaxWidth].
  std::pair<int, int> read_pair(const Json& v, const std::string& path, std::uint64_t min) const {
    if (v.is_number()) {
      const int n = static_cast<int>(read_integer(v, path, min, kMaxWidth));
      return {n, n};
    }
    const std::string key = last_segment(path);
    if (!v.is_array() || v.size() != 2) {
      fail(path, "expected a number or a pair [height, width], " + got(v),
           "write e.g. \"" + key + "\": " + (min == 0 ? "1" : "3") + " for both sides, or \"" +
               key + "\": [1, " + (min == 0 ? "2" : "3") + "] for height and width apart");
    }
    return {static_cast<int>(read_integer(v[0], path + "[0]", min, kMaxWidth)),
            static_cast<int>(read_integer(v[1], path + "[1]", min, kMaxWidth))};
  }

  ConvSpec read_conv(const Json& v, const std::string& path) const {
    expect_object(v, path, R"("conv": {"channels": 64, "kernel": 3, "padding": 1})");
    check_keys(v, path, kConvKeys);
    ConvSpec c;
    for (std::string_view key : {"channels", "kernel"}) {
      if (find(v, key) == nullptr) {
        fail(path, "missing " + quote(key),
             R"(a convolution needs its output channels and its kernel size, e.g. "conv": )"
             R"({"channels": 64, "kernel": 3, "padding": 1})");
      }
    }
    c.channels = read_count(v.at("channels"), child(path, "channels"), kMaxWidth);
    std::tie(c.kernel_h, c.kernel_w) = read_pair(v.at("kernel"), child(path, "kernel"), 1);
    if (const Json* stride = find(v, "stride")) {
      std::tie(c.stride_h, c.stride_w) = read_pair(*stride, child(path, "stride"), 1);
    }
    if (const Json* padding = find(v, "padding")) {
      std::tie(c.pad_h, c.pad_w) = read_pair(*padding, child(path, "padding"), 0);
    }
    if (const Json* dilation = find(v, "dilation")) {
      std::tie(c.dilation_h, c.dilation_w) = read_pair(*dilation, child(path, "dilation"), 1);
    }
    if (const Json* groups = find(v, "groups")) {
      c.groups = read_count(*groups, child(path, "groups"), kMaxWidth);
    }
    if (const Json* bias = find(v, "bias")) c.bias = read_bool(*bias, child(path, "bias"));
    return c;
  }

  // {"kind": ..., "kernel": ..., "stride": ..., "padding": ...}; the stride defaults to the
  // kernel, as PyTorch's; global average pooling takes no window.
  PoolSpec read_pool(const Json& v, const std::string& path) const {
    expect_object(v, path, R"("pool": {"kind": "max", "kernel": 2})");
    check_keys(v, path, kPoolKeys);
    PoolSpec p;
    const Json* kind = find(v, "kind");
    if (kind == nullptr) {
      fail(path, "missing \"kind\"",
           "say which pooling: " + join_quoted(pool_kind_names()) +
               R"(, e.g. "pool": {"kind": "max", "kernel": 2})");
    }
    p.kind = static_cast<PoolKind>(
        read_choice(*kind, child(path, "kind"), "pool kind", pool_kind_names()));
    if (p.kind == PoolKind::kGlobalAverage) {
      for (std::string_view key : {"kernel", "stride", "padding"}) {
        if (find(v, key) == nullptr) continue;
        fail(child(path, key), "global_average pooling takes no " + quote(key),
             "it averages each channel over the whole image (C x 1 x 1): remove " + quote(key) +
                 R"(, or use "kind": "average" for a window)");
      }
      return p;
    }
    const Json* kernel = find(v, "kernel");
    if (kernel == nullptr) {
      fail(path, "missing \"kernel\"",
           R"(max and average pooling need a window, e.g. "pool": {"kind": "max", "kernel": 2} )"
           R"((the stride defaults to the kernel))");
    }
    std::tie(p.kernel_h, p.kernel_w) = read_pair(*kernel, child(path, "kernel"), 1);
    p.stride_h = p.kernel_h;
    p.stride_w = p.kernel_w;
    if (const Json* stride = find(v, "stride")) {
      std::tie(p.stride_h, p.stride_w) = read_pair(*stride, child(path, "stride"), 1);
    }
    if (const Json* padding = find(v, "padding")) {
      std::tie(p.pad_h, p.pad_w) = read_pair(*padding, child(path, "padding"), 0);
    }
    return p;
  }

  // "flatten": {}, the one form: it takes no keys.
  void read_flatten(const Json& v, const std::string& path) const {
    const std::string hint =
        R"(write "flatten": {}: it takes no keys (an image's C H W features become a vector, )"
        R"(unchanged))";
    if (!v.is_object()) fail(path, "expected {}, " + got(v), hint);
    if (!v.empty()) fail(child(path, v.items().begin().key()), "unknown key", hint);
  }

  void read_block_item(const Json& v, const std::string& path, LayerItem& item) const {
    const Json* block = find(v, "block");
    if (block == nullptr) {
      fail(path, "missing \"block\"",
           "\"repeat\" and \"residual\" belong to a block: add \"block\": [items...] with the "
           "items to repeat");
    }
    if (const Json* repeat = find(v, "repeat")) {
      item.repeat = read_count(*repeat, child(path, "repeat"), kMaxDepth);
    }
    if (const Json* residual = find(v, "residual")) {
      read_residual(*residual, child(path, "residual"), item);
    }
    read_item_list(*block, child(path, "block"), item.block);
  }

  void read_residual(const Json& v, const std::string& path, LayerItem& item) const {
    if (v.is_boolean()) {
      if (v.get<bool>()) item.residual = ResidualSpec{};
      return;
    }
    if (!v.is_object()) {
      fail(path, "expected true, false or an object {...}, " + got(v),
           R"(write e.g. "residual": {"scale": 0.5}, or "residual": true for the defaults)");
    }
    check_keys(v, path, kResidualKeys);
    ResidualSpec residual;
    if (const Json* preset = find(v, "preset")) {
      // Resolved once the whole network is read (resolve_residual_presets); keyed by the item.
      ResidualPreset p;
      p.kind = static_cast<ResidualPresetKind>(
          read_choice(*preset, child(path, "preset"), "preset", kResidualPresetNames));
      presets_[path.substr(0, path.size() - std::string_view(".residual").size())] = p;
    }
    if (const Json* scale = find(v, "scale"))
      residual.scale = read_number(*scale, child(path, "scale"));
    if (const Json* skip = find(v, "skip")) residual.skip = read_number(*skip, child(path, "skip"));
    if (const Json* projection = find(v, "projection")) {
      const std::string projection_path = child(path, "projection");
      // What the config leaves out, the stream decides (resolve_residual_projections).
      residual.projection_init_given = false;
      residual.projection_norm_given = false;
      if (projection->is_boolean()) {
        residual.projection = projection->get<bool>();
      } else if (projection->is_object() &&
                 (projection->contains("init") || projection->contains("norm"))) {
        // {"init": ..., "norm": ...}: the learned projection of an image stream.
        check_keys(*projection, projection_path, kProjectionKeys);
        residual.projection = true;
        if (const Json* init = find(*projection, "init")) {
          residual.projection_init = read_init(*init, child(projection_path, "init"));
          residual.projection_init_given = true;
        }
        if (const Json* norm = find(*projection, "norm")) {
          residual.projection_norm_given = true;
          const bool none = (norm->is_boolean() && !norm->get<bool>()) ||
                            (norm->is_string() && norm->get<std::string>() == "none");
          if (!none) residual.projection_norm = read_norm(*norm, child(projection_path, "norm"));
        }
      } else if (projection->is_string() || projection->is_object()) {
        residual.projection = true;
        residual.projection_init = read_init(*projection, projection_path);
        residual.projection_init_given = true;
      } else {
        fail(projection_path,
             "expected true, false, an init or {\"init\": ..., \"norm\": ...}, " + got(*projection),
             R"(write "projection": true for the stream's default (vectors: a fixed orthogonal )"
             R"(map; images: a learned 1x1 conv with batch norm), an init such as )"
             R"({"name": "orthogonal", "gain": 0.5}, or for images {"init": "he_normal", )"
             R"("norm": "batch_norm"})");
      }
    }
    const Json* placement = find(v, "placement");
    const bool post = placement != nullptr && read_choice(*placement, child(path, "placement"),
                                                          "placement", kPlacementNames) == 1;
    const Json* norm = find(v, "norm");
    if (post) {
      if (norm == nullptr) {
        fail(child(path, "placement"), "\"post_norm\" needs a \"norm\" to apply after the addition",
             R"(add it beside "placement", e.g. "norm": "layer_norm": post-norm computes )"
             R"(norm(x + scale * F(x)))");
      }
      item.post_norm = read_norm(*norm, child(path, "norm"));
    } else if (norm != nullptr) {
      fail(child(path, "norm"),
           std::string("a pre-norm residual") + (placement == nullptr ? " (the default)" : "") +
               " takes no \"norm\": its norms go inside the block",
           R"(put the norm first in the block: "block": [{"norm": "layer_norm"}, ...]; for )"
           R"(norm(x + scale * F(x)) after the addition, set "placement": "post_norm")");
    }
    item.residual = residual;
  }

  NormSpec read_norm(const Json& v, const std::string& path) const {
    const Named named =
        read_named(v, path, "a norm", R"("layer_norm" or {"name": "batch_norm", "eps": 1e-5})");
    const std::vector<std::string_view> names = norm_names();
    const auto it = std::find(names.begin(), names.end(), named.name);
    if (it == names.end()) {
      fail(named.name_path, "unknown norm " + quote(named.name),
           did_you_mean(named.name, names) + "choose one of: " + join(names));
    }
    NormSpec spec;
    spec.kind = static_cast<NormKind>(it - names.begin());
    if (named.object == nullptr) return spec;
    for (const auto& item : named.object->items()) {
      const std::string& key = item.key();
      if (key == "name") continue;
      const std::string key_path = child(path, key);
      if (key != "eps") reject_param(key_path, key, named.name, false, {"eps"});
      spec.eps = read_positive(
          item.value(), key_path,
          "it keeps the division by the standard deviation finite; the default is 1e-5");
    }
    return spec;
  }

  bool read_bool(const Json& v, const std::string& path) const {
    if (!v.is_boolean()) {
      fail(path, "expected true or false, " + got(v),
           unquote_hint(v, "write true or false, without quotes"));
    }
    return v.get<bool>();
  }

  // A projection init of an op with several weights: one init for all of them ("xavier_normal",
  // {"name": ...}), or an object naming some of them ({"query": ..., "output": ...}); the
  // projections it leaves out keep `inits`' defaults.
  template <std::size_t N>
  void read_projection_inits(const Json& v, const std::string& path,
                             const std::array<std::string_view, N>& names,
                             std::array<InitSpec, N>& inits) const {
    const std::vector<std::string_view> keys(names.begin(), names.end());
    const std::string example = "\"init\": \"xavier_normal\" for every projection, or {\"" +
                                std::string(names.back()) + "\": {\"name\": \"xavier_normal\", " +
                                "\"gain\": 0.5}} for some (keys: " + join(keys) + ")";
    if (v.is_string() || (v.is_object() && find(v, "name") != nullptr)) {
      inits.fill(read_init(v, path));
      return;
    }
    if (!v.is_object()) fail(path, "expected an init or an object of inits, " + got(v), example);
    for (const auto& item : v.items()) {
      const auto it = std::find(names.begin(), names.end(), item.key());
      if (it == names.end()) {
        fail(child(path, item.key()), "unknown key",
             did_you_mean(item.key(), keys) + "valid keys here: " + join(keys) +
                 " (or give one init with a \"name\" for all of them)");
      }
      inits[static_cast<std::size_t>(it - names.begin())] =
          read_init(item.value(), child(path, item.key()));
    }
  }

  const Json& expect_object(const Json& v, const std::string& path,
                            std::string_view example) const {
    if (!v.is_object()) {
      fail(path, "expected an object {...}, " + got(v), "write e.g. " + std::string(example));
    }
    return v;
  }

  AttentionSpec read_attention(const Json& v, const std::string& path) const {
    expect_object(v, path,
                  R"("attention": {"heads": 4, "causal": true}, or "attention": {} for the )"
                  R"(defaults)");
    check_keys(v, path, kAttentionKeys);
    AttentionSpec a;
    if (const Json* heads = find(v, "heads")) {
      a.heads = read_count(*heads, child(path, "heads"), kMaxWidth);
    }
    if (const Json* causal = find(v, "causal"))
      a.causal = read_bool(*causal, child(path, "causal"));
    if (const Json* scale = find(v, "scale")) {
      const std::string scale_path = child(path, "scale");
      if (scale->is_number()) {
        a.scale_kind = AttentionScaleKind::kConstant;
        a.scale = read_positive(*scale, scale_path,
                                "the logits are scale * q.k; the default is 1/sqrt(d_head)");
      } else if (scale->is_string()) {
        a.scale_kind = static_cast<AttentionScaleKind>(
            read_choice(*scale, scale_path, "attention scale", kAttentionScaleNames));
      } else {
        fail(scale_path, "expected \"1/sqrt(d_head)\", \"1/d_head\" or a number, " + got(*scale),
             "the logits are scale * q.k: \"1/sqrt(d_head)\" (the default), \"1/d_head\" "
             "(muP) or a positive number");
      }
    }
    if (const Json* bias = find(v, "bias")) a.bias = read_bool(*bias, child(path, "bias"));
    if (const Json* projection = find(v, "output_projection")) {
      a.output_projection = read_bool(*projection, child(path, "output_projection"));
    }
    if (const Json* init = find(v, "init")) {
      read_projection_inits(*init, child(path, "init"), kAttentionProjections, a.init);
    }
    return a;
  }

  GluSpec read_glu(const Json& v, const std::string& path) const {
    expect_object(v, path, R"("glu": {"hidden": 1024, "activation": "silu"})");
    check_keys(v, path, kGluKeys);
    GluSpec g;
    const Json* hidden = find(v, "hidden");
    if (hidden == nullptr) {
      fail(path, "missing \"hidden\"",
           R"(a gated MLP needs its hidden width, e.g. "glu": {"hidden": 1024})");
    }
    g.hidden = read_count(*hidden, child(path, "hidden"), kMaxWidth);
    if (const Json* activation = find(v, "activation")) {
      g.activation = read_activation(*activation, child(path, "activation"));
    }
    if (const Json* bias = find(v, "bias")) g.bias = read_bool(*bias, child(path, "bias"));
    if (const Json* init = find(v, "init")) {
      read_projection_inits(*init, child(path, "init"), kGluProjections, g.init);
    }
    return g;
  }

  // {"transformer": {...}}: read, checked, and expanded into ordinary items (see
  // config_transformer.cpp), each carrying this item's path.
  void read_transformer_item(const Json& v, const std::string& item_path,
                             std::vector<LayerItem>& items) const {
    const std::string path = child(item_path, "transformer");
    expect_object(v, path, R"("transformer": {"blocks": 6, "heads": 8})");
    check_keys(v, path, kTransformerKeys);
    TransformerShorthand t;
    t.path = item_path;
    const Json* blocks = find(v, "blocks");
    if (blocks == nullptr) {
      fail(path, "missing \"blocks\"",
           R"(say how many blocks (attention + MLP) to stack, e.g. "transformer": {"blocks": 6})");
    }
    t.blocks = read_count(*blocks, child(path, "blocks"), kMaxDepth);
    if (const Json* heads = find(v, "heads")) {
      t.heads = read_count(*heads, child(path, "heads"), kMaxWidth);
    }
    const Json* width = find(v, "width");
    const std::optional<int> given_width =
        width == nullptr ? std::nullopt
                         : std::optional<int>(read_count(*width, child(path, "width"), kMaxWidth));
    if (stream_width_) {
      if (given_width && *given_width != *stream_width_) {
        fail(child(path, "width"),
             std::to_string(*given_width) + ", but the stream is " +
                 std::to_string(*stream_width_) + " wide here",
             "a transformer keeps its input's width: put a dense item before it, e.g. "
             "{\"width\": " +
                 std::to_string(*given_width) +
                 ", \"activation\": \"linear\"}, or remove \"width\"");
      }
      t.width = *stream_width_;
    } else if (given_width) {
      t.width = *given_width;
    } else if (after_image_op_) {
      fail(path,
           "missing \"width\": the stream's width after a conv or pool item is not known here",
           "give the transformer a \"width\": the features arriving there");
    } else {
      fail(path, "missing \"width\": nothing before it gives the stream's width",
           "give the transformer a \"width\", or the input one: \"input\": {\"width\": 512}");
    }
    double ratio = 4.0;
    if (const Json* r = find(v, "mlp_ratio")) {
      ratio = read_positive(*r, child(path, "mlp_ratio"),
                            "the MLP's hidden width is mlp_ratio * width; the default is 4");
    }
    const double hidden = std::round(ratio * t.width);
    if (!(hidden >= 1 && hidden <= static_cast<double>(kMaxWidth))) {
      fail(child(path, "mlp_ratio"),
           "gives a hidden width of " + compact(Json(hidden)) + " (mlp_ratio * " +
               std::to_string(t.width) + ", rounded)",
           "the hidden width must be from 1 to " + std::to_string(kMaxWidth));
    }
    t.hidden = static_cast<int>(hidden);
    const Json* activation = find(v, "activation");
    if (activation != nullptr) {
      if (activation->is_string() && activation->get<std::string>() == "swiglu") {
        t.swiglu = true;
      } else {
        t.activation = read_activation(*activation, child(path, "activation"));
      }
    }
    const Json* norm = find(v, "norm");
    if (norm != nullptr) {
      t.norm = read_norm(*norm, child(path, "norm"));
      if (t.norm.kind == NormKind::kBatchNorm) {
        fail(child(path, "norm"), "a transformer normalises each token, not each unit",
             "use \"layer_norm\" (the default) or \"rms_norm\"");
      }
    }
    const Json* placement = find(v, "placement");
    std::optional<bool> post;
    if (placement != nullptr) {
      post = read_choice(*placement, child(path, "placement"), "placement", kPlacementNames) == 1;
    }
    if (const Json* causal = find(v, "causal"))
      t.causal = read_bool(*causal, child(path, "causal"));
    if (const Json* init = find(v, "init")) t.init = read_init(*init, child(path, "init"));
    if (const Json* scaling = find(v, "scaling")) {
      t.scaling = static_cast<TransformerScaling>(
          read_choice(*scaling, child(path, "scaling"), "scaling", kScalingNames));
    }
    const std::string scaling_name(kScalingNames[static_cast<std::size_t>(t.scaling)]);
    switch (t.scaling) {
      case TransformerScaling::kDeepNorm:
        if (post && !*post) {
          fail(child(path, "placement"), "deepnorm is a post-norm scaling",
               "remove \"placement\" (deepnorm puts the norm after each residual addition) or "
               "choose another scaling for pre_norm");
        }
        post = true;
        break;
      case TransformerScaling::kSubLn:
        if (post && *post) {
          fail(child(path, "placement"), "subln is a pre-norm scaling",
               "remove \"placement\" or set it to \"pre_norm\"");
        }
        if (t.swiglu) {
          fail(child(path, "activation"), "subln does not support a swiglu MLP here",
               "choose gelu, gelu_tanh, relu or silu, or another scaling");
        }
        break;
      case TransformerScaling::kTFixup:
      case TransformerScaling::kReZero:
        if (post && *post) {
          fail(child(path, "placement"), scaling_name + " uses no norms, so no post_norm",
               "remove \"placement\"");
        }
        if (norm != nullptr) {
          fail(child(path, "norm"), scaling_name + " uses no norms",
               "remove \"norm\", or choose a scaling with norms (none, gpt2, deepnorm, subln)");
        }
        break;
      case TransformerScaling::kNone:
      case TransformerScaling::kGpt2:
        break;
    }
    t.post_norm = post.value_or(false);
    std::vector<LayerItem> expanded = expand_transformer(t);
    items.insert(items.end(), std::make_move_iterator(expanded.begin()),
                 std::make_move_iterator(expanded.end()));
    stream_width_ = t.width;
    if (!first_width_) first_width_ = t.width;
  }

  // ---- "loss" and "optimizer"

  // The loss as written: classes are 0 unless given (run() defaults them to the output width).
  LossSpec read_loss(const Json* v) const {
    LossSpec loss;
    if (v == nullptr) return loss;
    const Named named = read_named(*v, "loss", "a loss",
                                   R"("mse" or {"name": "softmax_cross_entropy", "classes": 10})");
    const std::vector<std::string_view> names = loss_names();
    const auto it = std::find(names.begin(), names.end(), named.name);
    if (it == names.end()) {
      fail(named.name_path, "unknown loss " + quote(named.name),
           did_you_mean(named.name, names) + "choose one of: " + join(names));
    }
    loss.kind = static_cast<LossKind>(it - names.begin());
    const bool softmax_ce = loss.kind == LossKind::kSoftmaxCrossEntropy;
    const std::vector<std::string_view> params =
        softmax_ce ? std::vector<std::string_view>{"classes"} : std::vector<std::string_view>{};
    if (named.object == nullptr) return loss;
    for (const auto& item : named.object->items()) {
      const std::string& key = item.key();
      if (key == "name") continue;
      const std::string key_path = child("loss", key);
      if (!contains(params, key)) {
        reject_param(
            key_path, key, named.name, key == "classes", params,
            key == "classes" ? "; only softmax_cross_entropy takes \"classes\"" : std::string());
      }
      loss.classes = read_count(item.value(), key_path, kMaxWidth);
    }
    return loss;
  }

  OptimizerSpec read_optimizer(const Json* v) const {
    OptimizerSpec optimizer;
    if (v == nullptr) return optimizer;
    const Named named = read_named(*v, "optimizer", "an optimizer",
                                   R"("none" or {"name": "adam", "learning_rate": 1e-3})");
    const std::vector<std::string_view> names = optimizer_names();
    const auto it = std::find(names.begin(), names.end(), named.name);
    if (it == names.end()) {
      fail(named.name_path, "unknown optimizer " + quote(named.name),
           did_you_mean(named.name, names) + "choose one of: " + join(names));
    }
    optimizer.kind = static_cast<OptimizerKind>(it - names.begin());
    if (named.object == nullptr) return optimizer;
    const std::vector<std::string_view> params = optimizer_params(optimizer.kind);
    const std::vector<std::string_view> all = optimizer_params(OptimizerKind::kAdam);
    for (const auto& item : named.object->items()) {
      const std::string& key = item.key();
      if (key == "name") continue;
      const std::string key_path = child("optimizer", key);
      const bool known = contains(all, key) || key == "momentum";
      if (!contains(params, key)) reject_param(key_path, key, named.name, known, params);
      const Json& value = item.value();
      if (key == "learning_rate") {
        optimizer.learning_rate = read_positive(value, key_path, "the default is 0.001");
      } else if (key == "momentum") {
        optimizer.momentum = read_fraction(value, key_path, "0.9 is usual");
      } else if (key == "beta1") {
        optimizer.beta1 = read_fraction(value, key_path, "the default is 0.9");
      } else if (key == "beta2") {
        optimizer.beta2 = read_fraction(value, key_path, "the default is 0.999");
      } else if (key == "eps") {
        optimizer.eps = read_positive(value, key_path, "the default is 1e-8");
      } else {
        throw Error("optimizer parameter " + quote(key) + " has no reader in config.cpp", {},
                    ExitCode::kInternal);
      }
    }
    return optimizer;
  }

  double read_positive(const Json& v, const std::string& path, std::string_view why) const {
    const double d = read_number(v, path);
    if (!(d > 0)) {
      fail(path, "must be greater than 0, " + got(v),
           "use a number > 0 for " + last_segment(path) + "; " + std::string(why));
    }
    return d;
  }

  // A number in [0, 1): a decay rate, where 1 would never forget.
  double read_fraction(const Json& v, const std::string& path, std::string_view why) const {
    const double d = read_number(v, path);
    if (!(d >= 0 && d < 1)) {
      fail(path, "must be in [0, 1), " + got(v),
           "use a number from 0 up to, not including, 1 for " + last_segment(path) + "; " +
               std::string(why));
    }
    return d;
  }

  std::string source_;
  std::vector<Attribution> attributions_;
  // Read-time state of "layers" (a Reader reads one config): the stream's width at the item
  // being read, and the width the input defaults to (the first dense item's, or the first
  // transformer's when it comes first).
  mutable std::optional<int> stream_width_;
  mutable std::optional<int> first_width_;
  // A conv or pool item came before: the stream's width is then unknown at read time.
  mutable bool after_image_op_ = false;
  // The residual presets of block items, by the item's path, resolved after the whole config.
  mutable std::map<std::string, ResidualPreset> presets_;
};

std::string read_file(const std::string& path) {
  errno = 0;
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  const auto cannot_read = [&](int err) {
    return Error("cannot read config " + path + ": " + std::strerror(err),
                 "check the path and that the file is readable");
  };
  if (!file) throw cannot_read(errno);
  std::string text;
  std::array<char, 65536> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    text.append(buffer.data(), n);
    if (text.size() > kMaxConfigBytes) {
      throw Error("cannot read config " + path + ": larger than 16 MiB",
                  "a config is a small JSON file; check that this is the right path");
    }
  }
  // fread on a directory fails with EISDIR; errno still holds it here.
  if (std::ferror(file.get()) != 0) throw cannot_read(errno);
  return text;
}

}  // namespace

std::string default_config_text() {
  // Keys whose defaults depend on others are left out, so that overrides move them together:
  // input.width follows stack.width, mean/std belong to the normal distribution only, and
  // bias_init follows init (torch_default brings its own bias).
  return R"({
  "name": "default",
  "seed": 0,
  "precision": "float32",
  "input": {"batch": 256, "distribution": "normal"},
  "stack": {"depth": 50, "width": 256, "activation": "relu", "init": "he_normal"},
  "stats": {"saturation_threshold": 0.05}
}
)";
}

RunSpec parse_run_spec(std::string_view text, std::string_view source,
                       std::string_view default_name,
                       const std::vector<ConfigOverride>& overrides) {
  Json root = parse_json_text(text, source);
  if (!root.is_object()) {
    throw Error(std::string(source) + ": the config must be a JSON object {...}, " + got(root),
                R"(a config looks like {"stack": {"depth": 20, "activation": "tanh"}})");
  }
  std::vector<Attribution> attributions = apply_overrides(root, overrides);
  return Reader(source, std::move(attributions)).run(root, default_name);
}

RunSpec load_run_spec(const std::optional<std::string>& path,
                      const std::vector<ConfigOverride>& overrides) {
  if (!path || path->empty()) {
    return parse_run_spec(default_config_text(), kDefaultSource, "default", overrides);
  }
  const std::string text = read_file(*path);
  return parse_run_spec(text, *path, std::filesystem::path(*path).stem().string(), overrides);
}

}  // namespace gradscope
