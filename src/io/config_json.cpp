// Config text -> JSON tree: syntax errors located by line and column, duplicate keys and
// runaway nesting refused before a tree is built, then command-line overrides applied to the tree.
#include <algorithm>
#include <set>

#include "gradscope/core/error.hpp"
#include "io/config_detail.hpp"
#include "io/json_read.hpp"

namespace gradscope::config_detail {
namespace {

// ---------------------------------------------------------------------------------------------
// JSON text -> tree

// What a first pass over JSON text can find before a tree is built.
struct JsonProblem {
  enum Kind : int { kDuplicateKey, kTooDeep, kTooManyKeys } kind;
  std::string path;  // as child() spells paths: "layers[0].block"
};

// A pass over JSON text that builds nothing and stops at the first duplicate key (when they are
// refused), at nesting deeper than kMaxNesting or at an object of more than kMaxKeys keys; a
// syntax error is left for Json::parse to report. A parser callback could check the same while
// building the tree, but nlohmann's callback parser rescans an object or array after each child
// object it ends, which makes a "layers" list of n items cost n^2 (160,000 {} took 8 minutes in
// an unoptimised build).
class JsonChecker final : public nlohmann::json_sax<Json> {
 public:
  explicit JsonChecker(bool refuse_duplicate_keys) : refuse_duplicates_(refuse_duplicate_keys) {}

  std::optional<JsonProblem> problem() && { return std::move(problem_); }

  bool null() override { return element(); }
  bool boolean(bool /*value*/) override { return element(); }
  bool number_integer(number_integer_t /*value*/) override { return element(); }
  bool number_unsigned(number_unsigned_t /*value*/) override { return element(); }
  bool number_float(number_float_t /*value*/, const string_t& /*text*/) override {
    return element();
  }
  bool string(string_t& /*value*/) override { return element(); }
  bool binary(binary_t& /*value*/) override { return element(); }
  bool start_object(std::size_t /*elements*/) override { return open(true); }
  bool start_array(std::size_t /*elements*/) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& key) override {
    Frame& top = frames_.back();
    if (++top.count > kMaxKeys) return stop(JsonProblem::kTooManyKeys);
    top.key = key;
    if (refuse_duplicates_ && !top.keys.insert(key).second) {
      return stop(JsonProblem::kDuplicateKey);
    }
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const Json::exception& /*error*/) override {
    return false;
  }

 private:
  struct Frame {
    // ".key" or "[i]": where this object or array sits in its parent. Only the segment is kept,
    // not the whole path, so that memory grows with the text and not with depth times length.
    std::string segment;
    bool is_object = false;
    std::set<std::string, std::less<>> keys{};
    std::string key{};
    std::size_t count = 0;  // an array's elements or an object's keys, so far
  };

  bool element() {
    if (!frames_.empty() && !frames_.back().is_object) ++frames_.back().count;
    return true;
  }

  bool open(bool is_object) {
    if (frames_.size() >= kMaxNesting) return stop(JsonProblem::kTooDeep);
    std::string segment;
    if (!frames_.empty()) {
      Frame& top = frames_.back();
      // Appended piece by piece: g++ 12 warns falsely (-Wrestrict, its bug 105651) on "[" + string.
      segment = top.is_object ? "." : "[";
      segment += top.is_object ? top.key : std::to_string(top.count++) + "]";
    }
    frames_.push_back(Frame{std::move(segment), is_object});
    return true;
  }

  bool close() {
    frames_.pop_back();
    return true;
  }

  // The path of the innermost object or array, and with `key`, of its member `key`.
  std::string path_here(bool with_key) const {
    std::string path;
    for (const Frame& f : frames_) path += f.segment;
    if (with_key && !frames_.empty() && frames_.back().is_object) path += "." + frames_.back().key;
    return path.starts_with('.') ? path.substr(1) : path;
  }

  bool stop(JsonProblem::Kind kind) {
    problem_ = JsonProblem{kind, path_here(kind != JsonProblem::kTooManyKeys)};
    return false;
  }

  bool refuse_duplicates_;
  std::vector<Frame> frames_;
  std::optional<JsonProblem> problem_;
};

std::optional<JsonProblem> check_json(std::string_view text, bool refuse_duplicate_keys) {
  JsonChecker checker(refuse_duplicate_keys);
  Json::sax_parse(text.begin(), text.end(), &checker);
  return std::move(checker).problem();
}

// The message for a problem the first pass found, after "where: ".
std::string json_problem_text(const JsonProblem& problem) {
  const std::string where = problem.path.empty() ? std::string() : problem.path + ": ";
  switch (problem.kind) {
    case JsonProblem::kDuplicateKey:
      return where + "duplicate key";
    case JsonProblem::kTooDeep:
      return where + "nested deeper than " + std::to_string(kMaxNesting) + " levels";
    case JsonProblem::kTooManyKeys:
      return where + "an object of more than " + std::to_string(kMaxKeys) + " keys";
  }
  return where + "invalid";
}

std::string json_problem_hint(const JsonProblem& problem) {
  switch (problem.kind) {
    case JsonProblem::kDuplicateKey:
      return "a key may appear only once in an object; remove one of the two";
    case JsonProblem::kTooDeep:
      return "a config nests a few levels deep; check that its brackets are balanced";
    case JsonProblem::kTooManyKeys:
      return "no config object has more than a dozen keys (the README lists them); check that "
             "this is a gradscope config";
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Overrides

// One step of an override path: a key of an object, or an index into an array the config has.
struct PathStep {
  std::string key;  // empty for an index
  std::size_t index = 0;
  bool is_index() const { return key.empty(); }
};

// "layers[1].block[0].width" -> layers, [1], block, [0], width; nullopt when malformed.
std::optional<std::vector<PathStep>> parse_override_path(std::string_view path) {
  std::vector<PathStep> steps;
  std::size_t i = 0;
  while (true) {
    const std::size_t start = i;
    while (i < path.size() && path[i] != '.' && path[i] != '[' && path[i] != ']') ++i;
    if (i == start) return std::nullopt;
    steps.push_back(PathStep{std::string(path.substr(start, i - start))});
    while (i < path.size() && path[i] == '[') {
      const std::size_t digits = ++i;
      std::size_t index = 0;
      // Nine digits keep the index far inside std::size_t; no config has a billion items.
      while (i < path.size() && path[i] >= '0' && path[i] <= '9' && i - digits < 9) {
        index = index * 10 + static_cast<std::size_t>(path[i] - '0');
        ++i;
      }
      if (i == digits || i >= path.size() || path[i] != ']') return std::nullopt;
      ++i;
      steps.push_back(PathStep{{}, index});
    }
    if (i == path.size()) return steps;
    if (path[i] != '.') return std::nullopt;
    ++i;
  }
}

std::string step_path(const std::string& path, const PathStep& step) {
  if (step.is_index()) return path + "[" + std::to_string(step.index) + "]";
  return child(path, step.key);
}

// The value of an override: JSON when it parses as JSON, else the text as a string. It lands
// inside the config, so it is held to a config's limits on nesting and keys.
Json override_value(const ConfigOverride& o) {
  std::optional<JsonProblem> problem = check_json(o.value, false);
  if (problem && Json::accept(o.value)) {
    problem->path.clear();  // a path inside the value would read as a config path
    throw Error(o.origin + ": " + o.path + ": " + json_problem_text(*problem),
                json_problem_hint(*problem));
  }
  if (problem) return Json(o.value);
  Json value = Json::parse(o.value, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return Json(o.value);
  return value;
}

// The element `step` names inside `node`, which must be an array when the step is an index.
Json& index_into(Json& node, const PathStep& step, const std::string& path,
                 const ConfigOverride& o) {
  if (step.index >= node.size()) {
    const std::string parent = path.substr(0, path.rfind('['));
    throw Error(o.origin + ": " + o.path + ": index " + std::to_string(step.index) +
                    " is out of range: " + parent + " has " + std::to_string(node.size()) +
                    (node.size() == 1 ? " item" : " items"),
                node.empty() ? "set " + parent + " to a whole array instead"
                             : "indices start at 0: use 0 to " + std::to_string(node.size() - 1) +
                                   ", or set " + parent + " to a whole array");
  }
  return node[step.index];
}

}  // namespace

// Parses config text, rejecting duplicate keys: JSON parsers silently keep the last one, which
// would let `"depth": 50, ..., "depth": 5` run a different network than the reader sees.
Json parse_json_text(std::string_view text, std::string_view source) {
  if (const std::optional<JsonProblem> problem = check_json(text, true)) {
    throw Error(std::string(source) + ": " + json_problem_text(*problem),
                json_problem_hint(*problem));
  }
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based position of the character that failed (size + 1 at end of input).
    const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    throw Error(
        json_text_position(source, text, offset) + ": invalid JSON: " + json_parse_reason(e.what()),
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
      if (found != std::string_view::npos) where = json_text_position(source, text, found);
      literal = " (" + literal + ")";
    }
    throw Error(where + ": invalid JSON: number too large" + literal,
                "numbers must fit in a double (below about 1.8e308)");
  } catch (const Json::exception& e) {
    throw Error(std::string(source) + ": invalid JSON: " + e.what(), std::string(kJsonHint));
  }
}

// The value at a config path ("layers[1].activation") in `root`, or null when it has none.
const Json* at_path(const Json& root, const std::string& path) {
  const std::optional<std::vector<PathStep>> steps = parse_override_path(path);
  if (!steps) return nullptr;
  const Json* node = &root;
  for (const PathStep& step : *steps) {
    if (step.is_index()) {
      if (!node->is_array() || step.index >= node->size()) return nullptr;
      node = &(*node)[step.index];
    } else {
      if (!node->is_object()) return nullptr;
      const auto it = node->find(step.key);
      if (it == node->end()) return nullptr;
      node = &*it;
    }
  }
  return node;
}

std::vector<Attribution> apply_overrides(Json& root, const std::vector<ConfigOverride>& overrides) {
  std::vector<Attribution> attributions;
  for (const ConfigOverride& o : overrides) {
    const std::optional<std::vector<PathStep>> steps = parse_override_path(o.path);
    if (!steps) {
      throw Error(o.origin + ": invalid config path " + quote(o.path),
                  "write keys joined by dots, with array indices in brackets, e.g. stack.depth, "
                  "stack.init.gain or layers[1].repeat");
    }
    // Each step may create an object: the cap keeps the tree as shallow as a config must be.
    if (steps->size() > kMaxNesting) {
      throw Error(o.origin + ": config path " + quote(o.path.substr(0, 60)) + "... has " +
                      std::to_string(steps->size()) + " steps, more than the " +
                      std::to_string(kMaxNesting) + " levels a config may nest",
                  "set the value at a shorter path, e.g. stack.init.gain");
    }
    Json* node = &root;
    std::string path;
    for (std::size_t i = 0; i + 1 < steps->size(); ++i) {
      const PathStep& step = (*steps)[i];
      const PathStep& next_step = (*steps)[i + 1];
      path = step_path(path, step);
      Json& next = step.is_index() ? index_into(*node, step, path, o) : (*node)[step.key];
      const auto true_object =
          std::find_if(kTrueObjectKeys.begin(), kTrueObjectKeys.end(),
                       [&](const auto& entry) { return entry.first == step.key; });
      if (next_step.is_index()) {
        if (!next.is_array()) {
          throw Error(o.origin + ": " + o.path + ": cannot set it: " + path + " is " +
                          (next.is_null() ? std::string("not in the config") : type_phrase(next)) +
                          ", not an array",
                      "an index reaches into an array the config has; set " + path +
                          " to a whole array instead");
        }
      } else if (next.is_null()) {
        next = Json::object();
        attributions.push_back({path, o.origin});
      } else if (next.is_string() && i + 2 == steps->size() && contains(kNamedKeys, step.key)) {
        next = Json::object({{"name", next.get<std::string>()}});
      } else if (next.is_boolean() && next.get<bool>() && true_object != kTrueObjectKeys.end()) {
        next = Json::parse(true_object->second);
      } else if (!next.is_object()) {
        throw Error(o.origin + ": " + o.path + ": cannot set it: " + path + " is " +
                        type_phrase(next) + " (" + compact(next) + "), not an object",
                    "set " + path + " itself instead");
      }
      node = &next;
    }
    const PathStep& last = steps->back();
    const std::string last_path = step_path(path, last);
    Json& target = last.is_index() ? index_into(*node, last, last_path, o) : (*node)[last.key];
    target = override_value(o);
    attributions.push_back({last_path, o.origin});
  }
  return attributions;
}

}  // namespace gradscope::config_detail
