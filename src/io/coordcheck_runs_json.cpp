// The coordinate check's kept files (gradscope/io/coordcheck_runs_json.hpp): the plan, the runs'
// traces and the shards' manifests, written and read back to the same doubles.
#include "gradscope/io/coordcheck_runs_json.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/version.hpp"
#include "io/json_read.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::ordered_json;

constexpr int kRunsSchemaVersion = 1;
constexpr const char* kPlanKind = "coordcheck_plan";
constexpr const char* kRunKind = "coordcheck_run";
constexpr const char* kManifestKind = "coordcheck_manifest";
constexpr const char* kHint =
    "this file is one a coordinate check keeps while it runs; run the check again without "
    "--resume to start it over";

// A double that reads back as the same double: a number, or "nan", "inf", "-inf".
Json exact(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

double exact_from(const JsonReader& in, const JsonValue& v, const std::string& path) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  in.fail(path, "must be a number, \"nan\", \"inf\" or \"-inf\", not " + json_type_name(v));
}

Json exact_array(const std::vector<double>& v) {
  Json a = Json::array();
  for (double x : v) a.push_back(exact(x));
  return a;
}

Json exact_table(const std::vector<std::vector<double>>& t) {
  Json a = Json::array();
  for (const std::vector<double>& row : t) a.push_back(exact_array(row));
  return a;
}

std::vector<double> exact_array_from(const JsonReader& in, const JsonValue& a,
                                     const std::string& path) {
  if (!a.is_array()) in.fail(path, "must be an array, not " + json_type_name(a));
  std::vector<double> out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    out.push_back(exact_from(in, a[i], json_element(path, i)));
  }
  return out;
}

std::vector<std::vector<double>> exact_table_from(const JsonReader& in, const JsonValue& object,
                                                  const std::string& path, const char* key) {
  const JsonValue& a = in.array(object, path, key);
  const std::string p = json_child(path, key);
  std::vector<std::vector<double>> out;
  for (std::size_t i = 0; i < a.size(); ++i) {
    out.push_back(exact_array_from(in, a[i], json_element(p, i)));
  }
  return out;
}

// The document's kind and schema version, checked before anything else is read.
void expect_kind(const JsonReader& in, const JsonValue& j, const char* kind, const char* what) {
  const auto k = j.is_object() ? j.find("kind") : j.end();
  if (!j.is_object() || k == j.end() || *k != kind) {
    throw Error(in.source() + ": not " + what,
                "give the files and directories a coordinate check wrote (OUT/NAME-runs)");
  }
  const int version = in.bounded(j, "", "schema_version", 0, 1 << 30);
  if (version != kRunsSchemaVersion) {
    throw Error(in.source() + ": " + what + " of schema version " + std::to_string(version) +
                    ", this gradscope reads " + std::to_string(kRunsSchemaVersion),
                "run the check's shards and the merge with the same gradscope");
  }
}

Json tool_json() { return {{"name", "gradscope"}, {"version", kVersion}}; }

}  // namespace

std::string coordcheck_plan_json(const RunSpec& base, const CoordCheckSpec& s) {
  Json j = Json::object();
  j["kind"] = kPlanKind;
  j["schema_version"] = kRunsSchemaVersion;
  j["tool"] = tool_json();
  j["config"] = Json::parse(run_spec_to_json(base));
  Json c = Json::object();
  c["widths"] = s.widths;
  c["depths"] = s.depths;
  c["seeds"] = s.seeds;
  c["parametrization"] = std::string(parametrization_name(s.parametrization));
  c["base_width"] = s.base_width;
  c["base_depth"] = s.base_depth;
  Json o = Json::object();
  o["name"] = std::string(train_optimizer_name(s.train.optimizer));
  o["learning_rate"] = exact(s.train.learning_rate);
  o["momentum"] = exact(s.train.momentum);
  o["beta1"] = exact(s.train.beta1);
  o["beta2"] = exact(s.train.beta2);
  o["eps"] = exact(s.train.eps);
  o["weight_decay"] = exact(s.train.weight_decay);
  c["optimizer"] = std::move(o);
  c["steps"] = s.train.steps;
  j["check"] = std::move(c);
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

CoordCheckRunsPlan coordcheck_plan_from_json(const std::string& text, const std::string& source) {
  const JsonReader in(source, kHint);
  const JsonValue j = in.parse(text);
  expect_kind(in, j, kPlanKind, "a coordinate check's plan");
  CoordCheckRunsPlan p;
  const JsonValue& config = in.object(j, "", "config");
  p.base = parse_run_spec(config.dump(), source + ": config", "coordcheck");
  const JsonValue& c = in.object(j, "", "check");
  CoordCheckSpec& s = p.check;
  s.widths = in.integers(c, "check", "widths");
  s.depths = in.integers(c, "check", "depths");
  s.seeds = in.bounded(c, "check", "seeds", 1, 1 << 20);
  const std::string param = in.string(c, "check", "parametrization");
  const std::optional<Parametrization> pz = parametrization_from_name(param);
  if (!pz) in.fail("check.parametrization", "\"" + param + "\" is not a parametrization");
  s.parametrization = *pz;
  s.base_width = in.bounded(c, "check", "base_width", 0, 1 << 24);
  s.base_depth = in.bounded(c, "check", "base_depth", 0, 1 << 24);
  const JsonValue& o = in.object(c, "check", "optimizer");
  const std::string name = in.string(o, "check.optimizer", "name");
  const std::optional<TrainOptimizer> opt = train_optimizer_from_name(name);
  if (!opt) in.fail("check.optimizer.name", "\"" + name + "\" is not an optimizer");
  s.train.optimizer = *opt;
  const auto num = [&](const char* key) {
    return exact_from(in, in.member(o, "check.optimizer", key), json_child("check.optimizer", key));
  };
  s.train.learning_rate = num("learning_rate");
  s.train.momentum = num("momentum");
  s.train.beta1 = num("beta1");
  s.train.beta2 = num("beta2");
  s.train.eps = num("eps");
  s.train.weight_decay = num("weight_decay");
  s.train.steps = in.bounded(c, "check", "steps", 1, 1 << 20);
  return p;
}

namespace {

// The first path where a and b differ (in a's key order, then b's extra keys), or empty.
std::string first_difference(const Json& a, const Json& b, const std::string& path, const Json** da,
                             const Json** db) {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const auto other = b.find(it.key());
      if (other == b.end()) {
        *da = &it.value();
        *db = nullptr;
        return json_child(path, it.key());
      }
      std::string d = first_difference(it.value(), *other, json_child(path, it.key()), da, db);
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (a.find(it.key()) == a.end()) {
        *da = nullptr;
        *db = &it.value();
        return json_child(path, it.key());
      }
    }
    return {};
  }
  if (a != b) {
    *da = &a;
    *db = &b;
    return path.empty() ? "the plan" : path;
  }
  return {};
}

}  // namespace

std::string coordcheck_plan_difference(const std::string& here, const std::string& other) {
  if (here == other) return {};
  const Json a = Json::parse(here, nullptr, false);
  const Json b = Json::parse(other, nullptr, false);
  if (a.is_discarded() || b.is_discarded()) return "the file (it is not JSON)";
  const Json* da = nullptr;
  const Json* db = nullptr;
  const std::string path = first_difference(a, b, "", &da, &db);
  if (path.empty()) return {};
  const auto shown = [](const Json* v) {
    if (v == nullptr) return std::string("absent");
    std::string s = v->dump(-1, ' ', false, Json::error_handler_t::replace);
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
  };
  return path + ": " + shown(da) + " here, " + shown(db) + " in the other";
}

std::string coordcheck_plan_digest(const std::string& plan_text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const unsigned char ch : plan_text) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  static const char* hex = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = hex[h & 15];
  return out;
}

std::string coordcheck_run_json(const CoordCheckRunFile& r) {
  Json j = Json::object();
  j["kind"] = kRunKind;
  j["schema_version"] = kRunsSchemaVersion;
  j["plan"] = r.plan;
  j["axis"] = r.depth ? "depth" : "width";
  j["value"] = r.value;
  j["seed"] = r.seed + 1;
  Json t = Json::object();
  t["out_l1"] = exact_table(r.trace.out_l1);
  t["out_rms"] = exact_table(r.trace.out_rms);
  t["change_l1"] = exact_table(r.trace.change_l1);
  t["change_rms"] = exact_table(r.trace.change_rms);
  t["update_l1"] = exact_table(r.trace.update_l1);
  t["update_rms"] = exact_table(r.trace.update_rms);
  t["loss"] = exact_array(r.trace.loss);
  j["trace"] = std::move(t);
  return j.dump() + "\n";
}

CoordCheckRunFile coordcheck_run_from_json(const std::string& text, const std::string& source) {
  const JsonReader in(source, kHint);
  const JsonValue j = in.parse(text);
  expect_kind(in, j, kRunKind, "a coordinate check's run");
  CoordCheckRunFile r;
  r.plan = in.string(j, "", "plan");
  const std::size_t axis = in.choice(j, "", "axis", {"width", "depth"});
  r.depth = axis == 1;
  r.value = in.bounded(j, "", "value", 1, 1 << 24);
  r.seed = in.bounded(j, "", "seed", 1, 1 << 20) - 1;
  const JsonValue& t = in.object(j, "", "trace");
  r.trace.out_l1 = exact_table_from(in, t, "trace", "out_l1");
  r.trace.out_rms = exact_table_from(in, t, "trace", "out_rms");
  r.trace.change_l1 = exact_table_from(in, t, "trace", "change_l1");
  r.trace.change_rms = exact_table_from(in, t, "trace", "change_rms");
  r.trace.update_l1 = exact_table_from(in, t, "trace", "update_l1");
  r.trace.update_rms = exact_table_from(in, t, "trace", "update_rms");
  r.trace.loss = exact_array_from(in, in.array(t, "trace", "loss"), "trace.loss");
  return r;
}

std::string coordcheck_manifest_json(const CoordCheckManifest& m) {
  Json j = Json::object();
  j["kind"] = kManifestKind;
  j["schema_version"] = kRunsSchemaVersion;
  j["tool"] = tool_json();
  j["shard"] = {{"index", m.shard.index}, {"count", m.shard.count}};
  j["plan"] = m.plan;
  j["command"] = m.command;
  j["tolerance"] = exact(m.tolerance);
  j["fail_on"] = m.fail_on;
  j["runs"] = m.runs;
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

CoordCheckManifest coordcheck_manifest_from_json(const std::string& text,
                                                 const std::string& source) {
  const JsonReader in(source, kHint);
  const JsonValue j = in.parse(text);
  expect_kind(in, j, kManifestKind, "a coordinate check's shard manifest");
  CoordCheckManifest m;
  m.version = in.string(in.object(j, "", "tool"), "tool", "version");
  const JsonValue& shard = in.object(j, "", "shard");
  m.shard.count = in.bounded(shard, "shard", "count", 1, kMaxSweepShards);
  m.shard.index = in.bounded(shard, "shard", "index", 0, m.shard.count - 1);
  m.plan = in.string(j, "", "plan");
  m.command = in.string(j, "", "command");
  m.tolerance = exact_from(in, in.member(j, "", "tolerance"), "tolerance");
  m.fail_on = in.string(j, "", "fail_on");
  if (!m.fail_on.empty() && m.fail_on != "any" && m.fail_on != "grows" && m.fail_on != "shrinks") {
    in.fail("fail_on", "must be \"\", \"any\", \"grows\" or \"shrinks\"");
  }
  m.runs = in.strings(j, "", "runs");
  return m;
}

}  // namespace gradscope
