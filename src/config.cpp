// Reads run configs (JSON text, the built-in default, command-line overrides) into a validated
// RunSpec and writes a RunSpec back as resolved JSON. With report_json.cpp, the only nlohmann user.
#include "gradscope/config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "gradscope/error.hpp"
#include "gradscope/suggest.hpp"

namespace gradscope {
namespace {

// ordered_json keeps a file's key order (the first unknown key reported is the first one in the
// file) and keeps the order we write keys in (the resolved config reads top to bottom).
using Json = nlohmann::ordered_json;

constexpr std::uint64_t kMaxDepth = 1'000'000;
// Widths and batch: 2^24 keeps every index and element count far inside 64 bits; whether a run
// actually fits in memory is the engine's check.
constexpr std::uint64_t kMaxWidth = 16'777'216;
constexpr std::size_t kMaxNameLength = 128;
// Configs are a few hundred bytes; the cap stops `--config /dev/zero` from eating the memory.
constexpr std::size_t kMaxConfigBytes = std::size_t{16} << 20;

constexpr std::string_view kDefaultSource = "<default>";
constexpr std::string_view kListHint = "`gradscope list` shows them all";
constexpr std::string_view kNameRule =
    "a run name becomes a file name: a letter or digit, then letters, digits, '.', '_' or '-' "
    "(at most 128 characters)";
constexpr std::string_view kJsonHint =
    "fix the JSON there: keys and strings need double quotes, and JSON allows no comments and no "
    "trailing commas";

const std::vector<std::string_view> kTopKeys{"name",  "seed",   "precision", "input",
                                             "stack", "output", "stats"};
const std::vector<std::string_view> kInputKeys{"width", "batch", "distribution", "mean",
                                               "std",   "low",   "high"};
const std::vector<std::string_view> kStackKeys{"depth", "width", "activation", "init", "bias_init"};
const std::vector<std::string_view> kOutputKeys{"width", "activation", "init", "bias_init"};
const std::vector<std::string_view> kStatsKeys{"saturation_threshold"};
// Indexed by FanMode.
const std::vector<std::string_view> kFanModeNames{"fan_in", "fan_out"};
// Config keys whose value is a name or an object {"name": ..., params}: an override of one of
// their parameters turns the string form into the object form.
const std::vector<std::string_view> kNamedKeys{"activation", "init", "bias_init"};

// ---------------------------------------------------------------------------------------------
// Text helpers

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string join(const std::vector<std::string_view>& items, std::string_view separator = ", ") {
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

std::vector<std::string_view> hidden_activation_names() {
  std::vector<std::string_view> names;
  for (const ActivationInfo& info : activation_table()) {
    if (!info.output_only) names.push_back(info.name);
  }
  return names;
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

// ---------------------------------------------------------------------------------------------
// JSON text -> tree

struct TextPosition {
  std::size_t line;
  std::size_t column;
};

// 1-based line and column of byte `offset`; columns count UTF-8 characters, as editors do.
TextPosition position_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  TextPosition pos{1, 1};
  for (std::size_t i = 0; i < offset; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else if ((c & 0xC0U) != 0x80U) {
      ++pos.column;
    }
  }
  return pos;
}

std::string at_position(std::string_view source, std::string_view text, std::size_t offset) {
  const TextPosition pos = position_of(text, offset);
  return std::string(source) + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

// nlohmann's message is "[json.exception.parse_error.101] parse error at line 3, column 7:
// <reason>"; the position is recomputed by us, so keep only the reason.
std::string parse_reason(const std::string& what) {
  const std::size_t start = what.find("parse error");
  const std::size_t colon = what.find(": ", start == std::string::npos ? 0 : start);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

// Parses config text, rejecting duplicate keys: JSON parsers silently keep the last one, which
// would let `"depth": 50, ..., "depth": 5` run a different network than the reader sees.
Json parse_json_text(std::string_view text, std::string_view source) {
  struct Frame {
    std::string path;
    bool is_object = false;
    std::set<std::string, std::less<>> keys{};
    std::string key{};
    std::size_t count = 0;  // elements seen so far, in an array
  };
  std::vector<Frame> frames;
  const auto next_path = [&frames]() -> std::string {
    if (frames.empty()) return {};
    Frame& top = frames.back();
    if (top.is_object) return child(top.path, top.key);
    return top.path + "[" + std::to_string(top.count++) + "]";
  };
  const Json::parser_callback_t track = [&](int /*depth*/, Json::parse_event_t event,
                                            Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start: {
        std::string path = next_path();
        frames.push_back(Frame{std::move(path), event == Json::parse_event_t::object_start});
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        frames.pop_back();
        break;
      case Json::parse_event_t::key: {
        Frame& top = frames.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second) {
          throw Error(std::string(source) + ": " + child(top.path, top.key) + ": duplicate key",
                      "a key may appear only once in an object; remove one of the two");
        }
        break;
      }
      case Json::parse_event_t::value:
        if (!frames.empty() && !frames.back().is_object) ++frames.back().count;
        break;
    }
    return true;
  };

  try {
    return Json::parse(text.begin(), text.end(), track);
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based position of the character that failed (size + 1 at end of input).
    const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    throw Error(at_position(source, text, offset) + ": invalid JSON: " + parse_reason(e.what()),
                std::string(kJsonHint));
  } catch (const Json::out_of_range& e) {
    // A number too large for a double ("1e999"). nlohmann gives no position: find the literal,
    // which its message quotes.
    const std::string what = e.what();
    const std::size_t open = what.find('\'');
    const std::size_t close = what.rfind('\'');
    std::string where(source);
    std::string literal;
    if (open != std::string::npos && close > open) {
      literal = what.substr(open + 1, close - open - 1);
      const std::size_t found = text.find(literal);
      if (found != std::string_view::npos) where = at_position(source, text, found);
      literal = " (" + literal + ")";
    }
    throw Error(where + ": invalid JSON: number too large" + literal,
                "numbers must fit in a double (below about 1.8e308)");
  } catch (const Json::exception& e) {
    throw Error(std::string(source) + ": invalid JSON: " + e.what(), std::string(kJsonHint));
  }
}

// ---------------------------------------------------------------------------------------------
// Overrides

// A config path that an override set or an object it created: errors about values at or under
// it name the override's origin ("--depth") instead of the file, since that is where to fix them.
struct Attribution {
  std::string path;
  std::string origin;
};

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> segments;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    segments.emplace_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return segments;
}

Json override_value(const std::string& text) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Json(text);
  return value;
}

std::vector<Attribution> apply_overrides(Json& root, const std::vector<ConfigOverride>& overrides) {
  std::vector<Attribution> attributions;
  for (const ConfigOverride& o : overrides) {
    const std::vector<std::string> segments = split_path(o.path);
    if (std::any_of(segments.begin(), segments.end(),
                    [](const std::string& s) { return s.empty(); })) {
      throw Error(o.origin + ": invalid config path " + quote(o.path),
                  "write keys joined by dots, e.g. stack.depth or stack.init.gain");
    }
    Json* node = &root;
    std::string path;
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
      path = child(path, segments[i]);
      Json& next = (*node)[segments[i]];
      if (next.is_null()) {
        next = Json::object();
        attributions.push_back({path, o.origin});
      } else if (next.is_string() && i + 2 == segments.size() &&
                 contains(kNamedKeys, segments[i])) {
        next = Json::object({{"name", next.get<std::string>()}});
      } else if (!next.is_object()) {
        throw Error(o.origin + ": " + o.path + ": cannot set it: " + path + " is " +
                        type_phrase(next) + " (" + compact(next) + "), not an object",
                    "set " + path + " itself instead");
      }
      node = &next;
    }
    (*node)[segments.back()] = override_value(o.value);
    attributions.push_back({o.path, o.origin});
  }
  return attributions;
}

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
    spec.stack = read_stack(section(root, "stack"));
    spec.input = read_input(section(root, "input"), spec.stack.layer.width);
    const Json* output = find(root, "output");
    // null removes the output layer, so that an override can drop one a file defines.
    if (output != nullptr && !output->is_null()) {
      spec.output = read_output(*section(root, "output"), spec.stack.layer);
    }
    spec.stats = read_stats(section(root, "stats"));
    return spec;
  }

 private:
  // The origin of the latest override that set one of `paths` (or an object holding it).
  std::string where(std::initializer_list<std::string_view> paths) const {
    for (auto it = attributions_.rbegin(); it != attributions_.rend(); ++it) {
      for (std::string_view path : paths) {
        if (within(path, it->path)) return it->origin;
      }
    }
    return source_;
  }

  [[noreturn]] void fail_across(std::initializer_list<std::string_view> involved,
                                const std::string& path, const std::string& what,
                                std::string hint) const {
    std::string message = where(involved) + ": ";
    if (!path.empty()) message += path + ": ";
    throw Error(message + what, std::move(hint));
  }

  [[noreturn]] void fail(const std::string& path, const std::string& what, std::string hint) const {
    fail_across({path}, path, what, std::move(hint));
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

  ActivationSpec read_activation(const Json& v, const std::string& path, bool hidden) const {
    const Named named =
        read_named(v, path, "an activation", R"("tanh" or {"name": "leaky_relu", "slope": 0.2})");
    const std::optional<Activation> kind = activation_from_name(named.name);
    if (!kind) {
      fail(named.name_path, "unknown activation " + quote(named.name),
           did_you_mean(named.name, activation_names_and_aliases()) + std::string(kListHint));
    }
    const ActivationInfo& info = activation_info(*kind);
    if (hidden && info.output_only) {
      fail(named.name_path,
           std::string(info.name) +
               " normalises across the units of a layer, so it belongs only in \"output\"",
           "put it in output.activation, e.g. \"output\": {\"width\": 10, \"activation\": \"" +
               std::string(info.name) + "\"}; hidden layers take an elementwise activation: " +
               join(hidden_activation_names()));
    }
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
  void read_layer_keys(const Json& object, const std::string& path, bool hidden,
                       LayerSpec& layer) const {
    if (const Json* width = find(object, "width")) {
      layer.width = read_count(*width, child(path, "width"), kMaxWidth);
    }
    if (const Json* activation = find(object, "activation")) {
      layer.activation = read_activation(*activation, child(path, "activation"), hidden);
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
    read_layer_keys(*object, "stack", /*hidden=*/true, stack.layer);
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
    read_layer_keys(object, "output", /*hidden=*/false, layer);
    // An output layer that names torch_default gets its bias too, as the stack does.
    if (find(object, "bias_init") == nullptr && find(object, "init") != nullptr) {
      layer.bias = BiasInitSpec{};
      if (layer.init.kind == Init::kTorchDefault) layer.bias.kind = BiasInit::kTorchDefault;
    }
    return layer;
  }

  InputSpec read_input(const Json* object, int stack_width) const {
    InputSpec input;
    input.width = stack_width;
    if (object == nullptr) return input;
    check_keys(*object, "input", kInputKeys);
    if (const Json* width = find(*object, "width")) {
      input.width = read_count(*width, "input.width", kMaxWidth);
    }
    if (const Json* batch = find(*object, "batch")) {
      input.batch = read_count(*batch, "input.batch", kMaxWidth);
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
      if (!(input.low < input.high)) {
        fail_across({"input.low", "input.high"}, "input",
                    "low (" + Json(input.low).dump() + ") must be less than high (" +
                        Json(input.high).dump() + ")",
                    "the uniform distribution draws from [low, high); the default is -1 to 1");
      }
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
    return stats;
  }

  std::string source_;
  std::vector<Attribution> attributions_;
};

// ---------------------------------------------------------------------------------------------
// RunSpec -> tree

Json activation_json(const ActivationSpec& spec) {
  const ActivationInfo& info = activation_info(spec.kind);
  if (info.param_name.empty()) return Json(std::string(info.name));
  Json j = Json::object();
  j["name"] = std::string(info.name);
  j[std::string(info.param_name)] = spec.param;
  return j;
}

Json init_json(const InitSpec& spec) {
  const InitInfo& info = init_info(spec.kind);
  Json j = Json::object();
  j["name"] = std::string(info.name);
  for (std::string_view param : init_params(info)) {
    const std::string key(param);
    if (key == "gain") {
      j[key] = spec.gain;
    } else if (key == "std") {
      j[key] = spec.std;
    } else if (key == "limit") {
      j[key] = spec.limit;
    } else if (key == "weight_var") {
      j[key] = spec.weight_var;
    } else if (key == "mode") {
      j[key] = std::string(kFanModeNames[static_cast<std::size_t>(spec.mode)]);
    } else {
      throw Error("init parameter " + quote(key) + " has no writer in config.cpp", {},
                  ExitCode::kInternal);
    }
  }
  return j;
}

Json bias_json(const BiasInitSpec& spec) {
  const BiasInitInfo& info = bias_info(spec.kind);
  Json j = Json::object();
  j["name"] = std::string(info.name);
  for (std::string_view param : param_names(info.params)) {
    const std::string key(param);
    if (key == "value") {
      j[key] = spec.value;
    } else if (key == "std") {
      j[key] = spec.std;
    } else {
      throw Error("bias_init parameter " + quote(key) + " has no writer in config.cpp", {},
                  ExitCode::kInternal);
    }
  }
  return j;
}

void put_layer(Json& j, const LayerSpec& layer) {
  j["width"] = layer.width;
  j["activation"] = activation_json(layer.activation);
  j["init"] = init_json(layer.init);
  j["bias_init"] = bias_json(layer.bias);
}

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

std::string run_spec_to_json(const RunSpec& spec, int indent) {
  Json j = Json::object();
  j["name"] = spec.name;
  j["seed"] = spec.seed;
  j["precision"] = std::string(precision_name(spec.precision));

  Json input = Json::object();
  input["width"] = spec.input.width;
  input["batch"] = spec.input.batch;
  input["distribution"] = std::string(input_distribution_name(spec.input.distribution));
  if (spec.input.distribution == InputDistribution::kNormal) {
    input["mean"] = spec.input.mean;
    input["std"] = spec.input.std;
  } else {
    input["low"] = spec.input.low;
    input["high"] = spec.input.high;
  }
  j["input"] = std::move(input);

  Json stack = Json::object();
  stack["depth"] = spec.stack.depth;
  put_layer(stack, spec.stack.layer);
  j["stack"] = std::move(stack);

  if (spec.output) {
    Json output = Json::object();
    put_layer(output, *spec.output);
    j["output"] = std::move(output);
  }

  Json stats = Json::object();
  stats["saturation_threshold"] = spec.stats.saturation_threshold;
  j["stats"] = std::move(stats);
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace gradscope
