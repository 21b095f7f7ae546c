// `gradscope compare`: reads two JSON reports, matches their layers by index and their findings by
// code, decides whether the proposed report is a regression, and writes the comparison as JSON.
#include "gradscope/io/compare.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Bumped when a key of the comparison document is added, renamed, removed or changes meaning.
// 2: findings.persisted; "metric" on each side of a finding; a code a report has twice is matched
// at the same layer first.
constexpr int kComparisonVersion = 3;

// `gradscope run` always writes OUT/<name>.json, whatever --format prints; --out names a folder.
constexpr std::string_view kReportHint =
    "compare takes two JSON reports that gradscope run writes: `gradscope run CONFIG --out DIR` "
    "writes DIR/<name>.json (<name>: the config's name, or --name); then `gradscope compare "
    "DIR/BASE.json DIR/PROPOSED.json`";

// ---- Reading a report: every error names the file and the JSON path of the offending value.

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string type_name(const Json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array";
  return "an object";
}

// "file:line:column" of a byte offset, as editors and compilers print it.
std::string at_position(const std::string& file, const std::string& text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

// nlohmann's message without its "[json.exception...] parse error at line 1, column 2: " prefix:
// the position is already in ours.
std::string parse_reason(const std::string& what) {
  const std::size_t column = what.find("column ");
  const std::size_t colon = column == std::string::npos ? what.find(": ") : what.find(": ", column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

Json parse(const std::string& text, const std::string& file) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based position of the character that failed.
    const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    throw Error(at_position(file, text, offset) + ": not JSON: " + parse_reason(e.what()),
                std::string(kReportHint));
  } catch (const Json::exception& e) {
    throw Error(file + ": not JSON: " + e.what(), std::string(kReportHint));
  }
}

struct LayerValues {
  int index = 0;
  std::string kind;
  double log10_grad = 0.0;
  double act_rms = 0.0;
  double dead_fraction = 0.0;
  double saturated_fraction = 0.0;
};

struct FindingValues {
  std::string code;
  std::string severity;
  int layer = 0;
  std::string explanation;
  std::string cause;  // "" for a root
  FindingMetric metric;
};

struct ReportValues {
  std::string name;
  std::string verdict;
  double log10_ratio = 0.0;
  std::vector<int> nonfinite_layers;
  std::vector<LayerValues> layers;
  std::vector<FindingValues> findings;
};

constexpr std::array<std::string_view, 3> kSeverities = {"info", "warning", "error"};
constexpr std::array<std::string_view, 3> kVerdicts = {"healthy", "warning", "error"};

// The rank of `name` in `names` (least serious first), or -1.
int rank_of(std::string_view name, const std::array<std::string_view, 3>& names) {
  const auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

// `text` as one shell word: as it is when it holds nothing a shell interprets, else single-quoted.
std::string shell_word(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) {
    // Spelled out rather than std::isalnum, which follows the locale.
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.' || ch == '/';
  });
  if (plain) return text;
  std::string out = "'";
  for (const char ch : text) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// What to do with a JSON document that is not a report: a config is run first; a comparison
// names its reports; anything else gets kReportHint.
std::string not_a_report_hint(const Json& root, const std::string& file) {
  if (root.contains("comparison_version")) {
    const auto path = [&](const char* key, const char* otherwise) {
      const auto side = root.find(key);
      const bool named = side != root.end() && side->is_object() && side->contains("path") &&
                         (*side)["path"].is_string();
      return named ? shell_word((*side)["path"].get<std::string>()) : std::string(otherwise);
    };
    return "this is a comparison that gradscope compare wrote, not a report; it compared " +
           path("base", "BASE.json") + " with " + path("proposed", "PROPOSED.json");
  }
  // A run config (what `gradscope run` reads) has a stack or a list of layers. The report is
  // named after the config's name, else after the file's stem, as `gradscope run` names it.
  if (root.contains("stack") || root.contains("layers")) {
    const auto name = root.find("name");
    const std::string stem = name != root.end() && name->is_string()
                                 ? name->get<std::string>()
                                 : std::filesystem::path(file).stem().string();
    return "this looks like a config, not a report: `gradscope run " + shell_word(file) +
           " --out reports` writes reports/" + stem + ".json, the report to compare";
  }
  return std::string(kReportHint);
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  ReportValues read(const std::string& text) const {
    const Json root = parse(text, file_);
    if (!root.is_object()) {
      fail("", "not a gradscope report: the document is " + type_name(root) + ", not an object");
    }
    // A report says what it is before anything else is read, so that a config or another tool's
    // JSON gets this message rather than one about a missing key deep inside.
    const auto version = root.find("schema_version");
    const auto tool = root.find("tool");
    if (version == root.end()) {
      throw Error(file_ + ": not a gradscope report: it has no schema_version",
                  not_a_report_hint(root, file_));
    }
    if (tool == root.end() || !tool->is_object() || tool->value("name", Json()) != "gradscope") {
      fail("", "not a gradscope report: its tool.name is not \"gradscope\"");
    }
    if (!version->is_number_integer() || version->get<long long>() != kSchemaVersion) {
      throw Error(file_ + ": schema_version: " + version->dump() + ", but this gradscope reads " +
                      std::to_string(kSchemaVersion),
                  "write both reports with the same gradscope: run the configs again with this "
                  "version (`gradscope run CONFIG --out DIR` writes DIR/<name>.json)");
    }

    ReportValues r;
    const Json& config = member(root, "", "config", Json::value_t::object);
    r.name = member(config, "config", "name", Json::value_t::string).get<std::string>();

    const Json& summary = member(root, "", "summary", Json::value_t::object);
    r.verdict = enum_member(summary, "summary", "verdict", kVerdicts);
    r.log10_ratio = number(summary, "summary", "log10_grad_ratio_first_to_last");
    const Json& nonfinite = member(summary, "summary", "nonfinite_layers", Json::value_t::array);
    for (std::size_t i = 0; i < nonfinite.size(); ++i) {
      r.nonfinite_layers.push_back(
          integer(nonfinite[i], "summary.nonfinite_layers[" + std::to_string(i) + "]"));
    }

    const Json& layers = member(root, "", "layers", Json::value_t::array);
    std::set<int> seen;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const std::string path = "layers[" + std::to_string(i) + "]";
      LayerValues l = layer(layers[i], path);
      if (!seen.insert(l.index).second) {
        fail(child(path, "index"), std::to_string(l.index) + " appears twice");
      }
      r.layers.push_back(std::move(l));
    }
    std::sort(r.layers.begin(), r.layers.end(),
              [](const LayerValues& a, const LayerValues& b) { return a.index < b.index; });

    const Json& findings = member(root, "", "findings", Json::value_t::array);
    for (std::size_t i = 0; i < findings.size(); ++i) {
      r.findings.push_back(finding(findings[i], "findings[" + std::to_string(i) + "]"));
    }
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(file_ + ": " + (path.empty() ? std::string() : path + ": ") + what,
                std::string(kReportHint));
  }

  void expect_object(const Json& j, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected an object, got " + type_name(j));
  }

  const Json& member(const Json& object, const std::string& path, std::string_view key,
                     Json::value_t type) const {
    const auto it = object.find(std::string(key));
    if (it == object.end()) fail(child(path, key), "missing");
    const bool ok = type == Json::value_t::object   ? it->is_object()
                    : type == Json::value_t::array  ? it->is_array()
                    : type == Json::value_t::string ? it->is_string()
                                                    : false;
    if (!ok) {
      const std::string expected = type == Json::value_t::object  ? "an object"
                                   : type == Json::value_t::array ? "an array"
                                                                  : "a string";
      fail(child(path, key), "expected " + expected + ", got " + type_name(*it));
    }
    return *it;
  }

  std::string enum_member(const Json& object, const std::string& path, std::string_view key,
                          const std::array<std::string_view, 3>& names) const {
    std::string value = member(object, path, key, Json::value_t::string).get<std::string>();
    if (rank_of(value, names) < 0) {
      fail(child(path, key), "\"" + value + "\" is not one of " + std::string(names[0]) + ", " +
                                 std::string(names[1]) + ", " + std::string(names[2]));
    }
    return value;
  }

  int integer(const Json& j, const std::string& path) const {
    if (!j.is_number_integer()) fail(path, "expected an integer, got " + type_name(j));
    const long long v = j.get<long long>();
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      fail(path, std::to_string(v) + " is out of range");
    }
    return static_cast<int>(v);
  }

  // A number the run report may have written as null with "<key>_status" (report_json.cpp):
  // back to the value it stands for.
  double number(const Json& object, const std::string& path, std::string_view key) const {
    const auto it = object.find(std::string(key));
    if (it == object.end()) fail(child(path, key), "missing");
    if (it->is_number()) return it->get<double>();
    if (!it->is_null()) fail(child(path, key), "expected a number or null, got " + type_name(*it));
    const std::string status_key = std::string(key) + "_status";
    const auto status = object.find(status_key);
    if (status == object.end() || !status->is_string()) {
      fail(child(path, key), "null without a " + status_key + " saying why");
    }
    const std::string s = status->get<std::string>();
    if (s == "nan" || s == "no_finite_values" || s == "not_applicable") return kNan;
    if (s == "inf" || s == "overflow") return kInf;
    if (s == "-inf") return -kInf;
    if (s == "underflow") return 0.0;
    fail(child(path, status_key), "\"" + s + "\" is not a known status");
  }

  LayerValues layer(const Json& j, const std::string& path) const {
    expect_object(j, path);
    LayerValues l;
    const auto index = j.find("index");
    if (index == j.end()) fail(child(path, "index"), "missing");
    l.index = integer(*index, child(path, "index"));
    l.kind = member(j, path, "kind", Json::value_t::string).get<std::string>();
    const std::string forward_path = child(path, "forward");
    const Json& forward = member(j, path, "forward", Json::value_t::object);
    const Json& act = member(forward, forward_path, "act", Json::value_t::object);
    l.act_rms = number(act, child(forward_path, "act"), "rms");
    l.saturated_fraction = number(act, child(forward_path, "act"), "saturated_fraction");
    l.dead_fraction = number(forward, forward_path, "dead_fraction");
    const std::string backward_path = child(path, "backward");
    const Json& backward = member(j, path, "backward", Json::value_t::object);
    const Json& grad = member(backward, backward_path, "grad_preact", Json::value_t::object);
    l.log10_grad = number(grad, child(backward_path, "grad_preact"), "log10_rms");
    return l;
  }

  FindingValues finding(const Json& j, const std::string& path) const {
    expect_object(j, path);
    FindingValues f;
    f.code = member(j, path, "code", Json::value_t::string).get<std::string>();
    f.severity = enum_member(j, path, "severity", kSeverities);
    const auto layer_it = j.find("layer");
    if (layer_it == j.end()) fail(child(path, "layer"), "missing");
    f.layer = integer(*layer_it, child(path, "layer"));
    f.explanation = member(j, path, "explanation", Json::value_t::string).get<std::string>();
    // "cause" came with schema 6; older reports, and roots, have none.
    if (const auto cause = j.find("cause"); cause != j.end() && !cause->is_null()) {
      if (!cause->is_string()) fail(child(path, "cause"), "a string or null");
      f.cause = cause->get<std::string>();
    }
    f.metric = metric(member(j, path, "evidence", Json::value_t::array), child(path, "evidence"));
    return f;
  }

  // The first evidence with a relation (the tested value), else the first; empty without any.
  FindingMetric metric(const Json& evidence, const std::string& path) const {
    if (evidence.empty()) return {};
    std::size_t chosen = 0;
    for (std::size_t i = evidence.size(); i-- > 0;) {
      const std::string at = path + "[" + std::to_string(i) + "]";
      expect_object(evidence[i], at);
      if (!member(evidence[i], at, "relation", Json::value_t::string).get<std::string>().empty()) {
        chosen = i;
      }
    }
    const Json& e = evidence[chosen];
    const std::string at = path + "[" + std::to_string(chosen) + "]";
    FindingMetric m;
    m.quantity = member(e, at, "quantity", Json::value_t::string).get<std::string>();
    m.value = number(e, at, "value");
    m.relation = member(e, at, "relation", Json::value_t::string).get<std::string>();
    m.threshold = number(e, at, "threshold");
    const auto layer_it = e.find("layer");
    if (layer_it == e.end()) fail(child(at, "layer"), "missing");
    m.layer = integer(*layer_it, child(at, "layer"));
    return m;
  }

  std::string file_;
};

// ---- Comparing.

// Whether two values differ: beyond `tolerance` when both are finite, otherwise when they are not
// the same non-finite value (NaN against NaN is no change).
bool differ(double a, double b, double tolerance) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) != std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a != b;
  return std::abs(a - b) > tolerance;
}

bool layer_changed(const LayerDelta& d) {
  if (d.base_kind != d.proposed_kind) return true;  // also where a side lacks the layer
  const double act_tol =
      kCompareActRmsRelTol * std::max(std::abs(d.base_act_rms), std::abs(d.proposed_act_rms));
  return differ(d.base_log10_grad, d.proposed_log10_grad, kCompareLog10GradTol) ||
         differ(d.base_act_rms, d.proposed_act_rms, act_tol) ||
         differ(d.base_dead_fraction, d.proposed_dead_fraction, kCompareFractionTol) ||
         differ(d.base_saturated_fraction, d.proposed_saturated_fraction, kCompareFractionTol);
}

std::vector<LayerDelta> match_layers(const ReportValues& base, const ReportValues& proposed) {
  std::map<int, LayerDelta> by_index;
  const auto blank = [](int index) {
    LayerDelta d;
    d.index = index;
    d.base_log10_grad = d.proposed_log10_grad = kNan;
    d.base_act_rms = d.proposed_act_rms = kNan;
    d.base_dead_fraction = d.proposed_dead_fraction = kNan;
    d.base_saturated_fraction = d.proposed_saturated_fraction = kNan;
    return d;
  };
  for (const LayerValues& l : base.layers) {
    LayerDelta& d = by_index.try_emplace(l.index, blank(l.index)).first->second;
    d.base_kind = l.kind;
    d.base_log10_grad = l.log10_grad;
    d.base_act_rms = l.act_rms;
    d.base_dead_fraction = l.dead_fraction;
    d.base_saturated_fraction = l.saturated_fraction;
  }
  for (const LayerValues& l : proposed.layers) {
    LayerDelta& d = by_index.try_emplace(l.index, blank(l.index)).first->second;
    d.proposed_kind = l.kind;
    d.proposed_log10_grad = l.log10_grad;
    d.proposed_act_rms = l.act_rms;
    d.proposed_dead_fraction = l.dead_fraction;
    d.proposed_saturated_fraction = l.saturated_fraction;
  }
  std::vector<LayerDelta> out;
  for (auto& [index, d] : by_index) {
    d.changed = layer_changed(d);
    out.push_back(std::move(d));
  }
  return out;
}

// Findings matched by code. The diagnosis writes one finding per code, at the first layer where
// the problem shows, so a finding whose layer moved is the same problem starting elsewhere: it is
// matched, and listed as changed. A report may hold a code twice (compare reads any report): those
// pair at the same layer first, then the rest in the order of the reports.
void match_findings(const ReportValues& base, const ReportValues& proposed, Comparison& c) {
  constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> partner(proposed.findings.size(), kNone);  // index into base.findings
  std::vector<bool> taken(base.findings.size(), false);
  for (const bool same_layer_only : {true, false}) {
    for (std::size_t p = 0; p < proposed.findings.size(); ++p) {
      if (partner[p] != kNone) continue;
      const FindingValues& pf = proposed.findings[p];
      for (std::size_t b = 0; b < base.findings.size(); ++b) {
        const FindingValues& bf = base.findings[b];
        if (taken[b] || bf.code != pf.code || (same_layer_only && bf.layer != pf.layer)) continue;
        partner[p] = b;
        taken[b] = true;
        break;
      }
    }
  }
  for (std::size_t p = 0; p < proposed.findings.size(); ++p) {
    const FindingValues& pf = proposed.findings[p];
    FindingChange change;
    change.code = pf.code;
    change.proposed_severity = pf.severity;
    change.proposed_layer = pf.layer;
    change.explanation = pf.explanation;
    change.cause = pf.cause;
    change.proposed_metric = pf.metric;
    if (partner[p] == kNone) {
      c.appeared.push_back(std::move(change));
      continue;
    }
    const FindingValues& bf = base.findings[partner[p]];
    change.base_severity = bf.severity;
    change.base_layer = bf.layer;
    change.base_metric = bf.metric;
    const bool same = bf.severity == pf.severity && bf.layer == pf.layer;
    (same ? c.persisted : c.changed).push_back(std::move(change));
  }
  for (std::size_t b = 0; b < base.findings.size(); ++b) {
    if (taken[b]) continue;
    const FindingValues& bf = base.findings[b];
    FindingChange change;
    change.code = bf.code;
    change.base_severity = bf.severity;
    change.base_layer = bf.layer;
    change.explanation = bf.explanation;
    change.cause = bf.cause;
    change.base_metric = bf.metric;
    c.disappeared.push_back(std::move(change));
  }
}

bool same_architecture(const ReportValues& base, const ReportValues& proposed) {
  if (base.layers.size() != proposed.layers.size()) return false;
  for (std::size_t i = 0; i < base.layers.size(); ++i) {
    if (base.layers[i].index != proposed.layers[i].index ||
        base.layers[i].kind != proposed.layers[i].kind) {
      return false;
    }
  }
  return true;
}

// Two decimals through std::to_chars: the same text in every locale, without fmt in this layer.
std::string fixed2(double v) {
  std::array<char, 64> buf{};
  const auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, 2);
  if (ec != std::errc()) return "?";
  return std::string(buf.data(), end);
}

std::string where(int layer) {
  return layer == 0 ? std::string("in the whole network") : "at layer " + std::to_string(layer);
}

// "3, 7-9, 12": sorted indices with runs collapsed.
std::string index_ranges(std::vector<int> indices) {
  std::sort(indices.begin(), indices.end());
  std::string out;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(indices[i]);
    if (j > i) {
      // Appended in two steps: `"-" + std::to_string(...)` trips g++ 12's false -Wrestrict.
      out += '-';
      out += std::to_string(indices[j]);
    }
    i = j + 1;
  }
  return out;
}

// The criteria documented at Comparison::regression, and nothing else.
void judge(Comparison& c) {
  const int base_verdict = rank_of(c.base_verdict, kVerdicts);
  const int proposed_verdict = rank_of(c.proposed_verdict, kVerdicts);
  if (proposed_verdict > base_verdict) {
    c.regression_reasons.push_back("the verdict got worse: " + c.base_verdict + " -> " +
                                   c.proposed_verdict);
  }
  for (const FindingChange& f : c.appeared) {
    if (rank_of(f.proposed_severity, kSeverities) < rank_of("warning", kSeverities)) continue;
    c.regression_reasons.push_back(
        std::string(f.proposed_severity == "error" ? "an error" : "a warning") +
        " appeared: " + f.code + " " + where(f.proposed_layer) +
        (f.cause.empty() ? "" : " (a consequence of " + f.cause + ")"));
  }
  for (const FindingChange& f : c.changed) {
    if (rank_of(f.proposed_severity, kSeverities) <= rank_of(f.base_severity, kSeverities)) {
      continue;
    }
    c.regression_reasons.push_back(f.code + " got more severe: " + f.base_severity + " -> " +
                                   f.proposed_severity);
  }
  // NaN compares false here: a ratio that became NaN comes with non-finite layers, caught below.
  const double growth = std::abs(c.proposed_log10_ratio) - std::abs(c.base_log10_ratio);
  if (growth > kRegressionRatioDecades) {
    c.regression_reasons.push_back("the first-to-last gradient ratio moved " + fixed2(growth) +
                                   " decades further from 1: log10 " + fixed2(c.base_log10_ratio) +
                                   " -> " + fixed2(c.proposed_log10_ratio));
  }
  std::vector<int> new_nonfinite;
  for (const int l : c.proposed_nonfinite_layers) {
    if (std::find(c.base_nonfinite_layers.begin(), c.base_nonfinite_layers.end(), l) ==
        c.base_nonfinite_layers.end()) {
      new_nonfinite.push_back(l);
    }
  }
  if (!new_nonfinite.empty()) {
    c.regression_reasons.push_back(std::string("non-finite values appeared at layer") +
                                   (new_nonfinite.size() == 1 ? " " : "s ") +
                                   index_ranges(new_nonfinite));
  }
  c.regression = !c.regression_reasons.empty();
}

// ---- Writing: every number through put(), as in report_json.cpp.

void put(OrderedJson& obj, const std::string& key, double v) {
  if (std::isfinite(v)) {
    obj[key] = v;
    return;
  }
  obj[key] = nullptr;
  obj[key + "_status"] = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

OrderedJson side_json(const std::string& name, const std::string& path, const std::string& verdict,
                      double log10_ratio, int layer_count, const std::vector<int>& nonfinite) {
  OrderedJson j = OrderedJson::object();
  j["name"] = name;
  j["path"] = path;
  j["verdict"] = verdict;
  put(j, "log10_grad_ratio_first_to_last", log10_ratio);
  j["layers"] = layer_count;
  j["nonfinite_layers"] = nonfinite;
  return j;
}

// One side of a layer; null where the report lacks it.
OrderedJson layer_side_json(const std::string& kind, double log10_grad, double act_rms,
                            double dead_fraction, double saturated_fraction) {
  if (kind.empty()) return nullptr;
  OrderedJson j = OrderedJson::object();
  j["kind"] = kind;
  put(j, "log10_grad_rms", log10_grad);
  put(j, "act_rms", act_rms);
  put(j, "dead_fraction", dead_fraction);
  put(j, "saturated_fraction", saturated_fraction);
  return j;
}

OrderedJson metric_json(const FindingMetric& m) {
  if (m.quantity.empty()) return nullptr;
  OrderedJson j = OrderedJson::object();
  j["quantity"] = m.quantity;
  put(j, "value", m.value);
  j["relation"] = m.relation;
  put(j, "threshold", m.threshold);
  j["layer"] = m.layer;
  return j;
}

OrderedJson finding_side_json(const std::string& severity, int layer, const FindingMetric& m) {
  if (severity.empty()) return nullptr;
  OrderedJson j = OrderedJson::object();
  j["severity"] = severity;
  j["layer"] = layer;
  j["metric"] = metric_json(m);
  return j;
}

OrderedJson findings_json(const std::vector<FindingChange>& changes) {
  OrderedJson out = OrderedJson::array();
  for (const FindingChange& f : changes) {
    OrderedJson j = OrderedJson::object();
    j["code"] = f.code;
    j["base"] = finding_side_json(f.base_severity, f.base_layer, f.base_metric);
    j["proposed"] = finding_side_json(f.proposed_severity, f.proposed_layer, f.proposed_metric);
    j["explanation"] = f.explanation;
    if (f.cause.empty()) {
      j["cause"] = nullptr;
    } else {
      j["cause"] = f.cause;
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

Comparison compare_reports(const std::string& base_json, const std::string& proposed_json,
                           const std::string& base_path, const std::string& proposed_path) {
  const ReportValues base = Reader(base_path).read(base_json);
  const ReportValues proposed = Reader(proposed_path).read(proposed_json);

  Comparison c;
  c.base_name = base.name;
  c.proposed_name = proposed.name;
  c.base_path = base_path;
  c.proposed_path = proposed_path;
  c.base_verdict = base.verdict;
  c.proposed_verdict = proposed.verdict;
  c.base_log10_ratio = base.log10_ratio;
  c.proposed_log10_ratio = proposed.log10_ratio;
  c.base_layer_count = static_cast<int>(base.layers.size());
  c.proposed_layer_count = static_cast<int>(proposed.layers.size());
  c.base_nonfinite_layers = base.nonfinite_layers;
  c.proposed_nonfinite_layers = proposed.nonfinite_layers;
  std::sort(c.base_nonfinite_layers.begin(), c.base_nonfinite_layers.end());
  std::sort(c.proposed_nonfinite_layers.begin(), c.proposed_nonfinite_layers.end());
  c.layers = match_layers(base, proposed);
  match_findings(base, proposed, c);
  c.same_architecture = same_architecture(base, proposed);
  judge(c);
  c.no_change =
      c.same_architecture && c.base_verdict == c.proposed_verdict && c.appeared.empty() &&
      c.disappeared.empty() && c.changed.empty() &&
      c.base_nonfinite_layers == c.proposed_nonfinite_layers &&
      !differ(c.base_log10_ratio, c.proposed_log10_ratio, kCompareLog10GradTol) &&
      std::none_of(c.layers.begin(), c.layers.end(), [](const LayerDelta& d) { return d.changed; });
  return c;
}

std::string comparison_to_json(const Comparison& c) {
  OrderedJson doc = OrderedJson::object();
  doc["comparison_version"] = kComparisonVersion;
  doc["tool"] = OrderedJson{{"name", "gradscope"}, {"version", kVersion}};
  // First after the header: the answers a CI gate reads.
  doc["regression"] = c.regression;
  doc["regression_reasons"] = c.regression_reasons;
  doc["no_change"] = c.no_change;
  doc["same_architecture"] = c.same_architecture;
  doc["base"] = side_json(c.base_name, c.base_path, c.base_verdict, c.base_log10_ratio,
                          c.base_layer_count, c.base_nonfinite_layers);
  doc["proposed"] =
      side_json(c.proposed_name, c.proposed_path, c.proposed_verdict, c.proposed_log10_ratio,
                c.proposed_layer_count, c.proposed_nonfinite_layers);
  OrderedJson findings = OrderedJson::object();
  findings["appeared"] = findings_json(c.appeared);
  findings["disappeared"] = findings_json(c.disappeared);
  findings["changed"] = findings_json(c.changed);
  findings["persisted"] = findings_json(c.persisted);
  doc["findings"] = std::move(findings);
  OrderedJson layers = OrderedJson::array();
  for (const LayerDelta& d : c.layers) {
    OrderedJson j = OrderedJson::object();
    j["index"] = d.index;
    j["changed"] = d.changed;
    j["base"] = layer_side_json(d.base_kind, d.base_log10_grad, d.base_act_rms,
                                d.base_dead_fraction, d.base_saturated_fraction);
    j["proposed"] = layer_side_json(d.proposed_kind, d.proposed_log10_grad, d.proposed_act_rms,
                                    d.proposed_dead_fraction, d.proposed_saturated_fraction);
    layers.push_back(std::move(j));
  }
  doc["layers"] = std::move(layers);
  // Replace rather than throw on invalid UTF-8 in a name or path: the comparison must be written.
  return doc.dump(2, ' ', false, OrderedJson::error_handler_t::replace) + "\n";
}

}  // namespace gradscope
