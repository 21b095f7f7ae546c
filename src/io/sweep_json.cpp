// The sweep's JSON: the summary it writes, the manifest each shard leaves beside its runs, and
// whether a run's report is the run of its config.
#include "gradscope/io/sweep_json.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "gradscope/core/error.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/version.hpp"
#include "io/json_read.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::ordered_json;

// Writes a double, or null with "<key>_status" when it is not finite, as the reports do.
void put(Json& obj, const std::string& key, double v) {
  if (std::isfinite(v)) {
    obj[key] = v;
  } else {
    obj[key] = nullptr;
    obj[key + "_status"] = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  }
}

Json number_array(const std::vector<double>& v) {
  Json a = Json::array();
  for (double x : v) a.push_back(std::isfinite(x) ? Json(x) : Json(nullptr));
  return a;
}

constexpr const char* kManifestKind = "gradscope_sweep_shard";

// What to do about a manifest that does not read.
constexpr const char* kManifestHint =
    "the manifest was edited, truncated or written by another tool; run that shard again with "
    "--resume (its finished runs are kept) to rewrite it";

// A whole number in [low, high] at object[key].
// A string, or null for none.
std::optional<std::string> optional_string(const JsonReader& in, const JsonValue& object,
                                           std::string_view path, std::string_view key) {
  if (in.member(object, path, key).is_null()) return std::nullopt;
  return in.string(object, path, key);
}

}  // namespace

bool report_is_run_of(const Report& report, const RunSpec& spec) {
  return run_spec_to_json(report.spec) == run_spec_to_json(spec);
}

std::string sweep_to_json(const SweepResult& r) {
  Json j = Json::object();
  j["schema_version"] = kSchemaVersion;
  j["tool"] = {{"name", "gradscope"}, {"version", kVersion}};
  Json sweep = Json::object();
  sweep["name"] = r.name;
  sweep["config"] = r.config;
  Json axes = Json::array();
  for (const SweepAxis& a : r.axes) {
    axes.push_back({{"key", a.key}, {"path", a.path}, {"values", a.values}});
  }
  sweep["vary"] = std::move(axes);
  sweep["seeds"] = r.seeds;
  sweep["points"] = r.points.size();
  j["sweep"] = std::move(sweep);
  Json points = Json::array();
  for (const SweepPointSummary& p : r.points) {
    Json pj = Json::object();
    pj["index"] = p.point.index;
    pj["label"] = p.point.label;
    Json settings = Json::object();
    for (const auto& [key, value] : p.point.settings) settings[key] = value;
    pj["settings"] = std::move(settings);
    pj["worst_verdict"] = p.worst_verdict;
    Json ratio = Json::object();
    put(ratio, "mean", p.ratio_mean);
    put(ratio, "min", p.ratio_min);
    put(ratio, "max", p.ratio_max);
    pj["log10_grad_ratio_first_to_last"] = std::move(ratio);
    Json runs = Json::array();
    for (const SweepRun& run : p.runs) {
      Json rj = Json::object();
      rj["seed"] = run.seed;
      rj["file"] = run.file;
      rj["verdict"] = run.verdict;
      put(rj, "log10_grad_ratio_first_to_last", run.log10_grad_ratio);
      put(rj, "mean_log10_gain", run.mean_log10_gain);
      rj["dead_units"] = run.dead_units;
      put(rj, "saturated_fraction", run.saturated_fraction);
      rj["nonfinite_layers"] = run.nonfinite_layers;
      Json findings = Json::array();
      for (const SweepFinding& f : run.findings) {
        findings.push_back({{"code", f.code}, {"severity", f.severity}, {"layer", f.layer}});
      }
      rj["findings"] = std::move(findings);
      rj["log10_grad_rms"] = number_array(run.log10_grad);
      runs.push_back(std::move(rj));
    }
    pj["runs"] = std::move(runs);
    points.push_back(std::move(pj));
  }
  j["points"] = std::move(points);
  return j.dump(2) + "\n";
}

std::string sweep_manifest_to_json(const SweepManifest& m) {
  Json j = Json::object();
  j["schema_version"] = kSchemaVersion;
  j["kind"] = kManifestKind;
  j["tool"] = {{"name", "gradscope"}, {"version", m.version}};
  Json sweep = Json::object();
  sweep["name"] = m.name;
  sweep["config"] = m.config ? Json(*m.config) : Json(nullptr);
  sweep["config_text"] = m.config_text ? Json(*m.config_text) : Json(nullptr);
  Json overrides = Json::array();
  for (const ConfigOverride& o : m.overrides) {
    overrides.push_back({{"path", o.path}, {"value", o.value}, {"origin", o.origin}});
  }
  sweep["overrides"] = std::move(overrides);
  Json axes = Json::array();
  for (const SweepAxis& a : m.axes) {
    axes.push_back({{"key", a.key}, {"path", a.path}, {"values", a.values}});
  }
  sweep["vary"] = std::move(axes);
  sweep["seeds"] = m.seeds;
  sweep["runs"] = m.runs_total;
  j["sweep"] = std::move(sweep);
  j["shard"] = {{"index", m.shard.index}, {"count", m.shard.count}};
  j["out"] = m.out_dir;
  Json runs = Json::array();
  for (const SweepManifestRun& r : m.runs) {
    runs.push_back(
        {{"run", r.run}, {"point", r.point}, {"seed_index", r.seed_index}, {"file", r.file}});
  }
  j["runs"] = std::move(runs);
  return j.dump(2) + "\n";
}

SweepManifest sweep_manifest_from_json(const std::string& text, const std::string& source) {
  const JsonReader in(source, kManifestHint);
  const JsonValue j = in.parse(text);
  const auto kind = j.is_object() ? j.find("kind") : j.end();
  if (!j.is_object() || kind == j.end() || *kind != kManifestKind) {
    throw Error(source + ": not a gradscope sweep shard manifest",
                "give the directories that `gradscope sweep ... --shard I/N` wrote "
                "(OUT/NAME/shards/I-of-N), or their sweep directory OUT/NAME");
  }
  const int version = in.bounded(j, "", "schema_version", 0, 1 << 30);
  if (version != kSchemaVersion) {
    throw Error(source + ": a shard manifest of schema version " + std::to_string(version) +
                    ", this gradscope reads " + std::to_string(kSchemaVersion),
                "run the shards and the merge with the same gradscope");
  }
  SweepManifest m;
  m.version = in.string(in.object(j, "", "tool"), "tool", "version");
  const JsonValue& sweep = in.object(j, "", "sweep");
  m.name = in.string(sweep, "sweep", "name");
  m.config = optional_string(in, sweep, "sweep", "config");
  m.config_text = optional_string(in, sweep, "sweep", "config_text");
  const JsonValue& overrides = in.array(sweep, "sweep", "overrides");
  for (std::size_t i = 0; i < overrides.size(); ++i) {
    const std::string path = json_element("sweep.overrides", i);
    in.expect_object(overrides[i], path);
    m.overrides.push_back({in.string(overrides[i], path, "path"),
                           in.string(overrides[i], path, "value"),
                           in.string(overrides[i], path, "origin")});
  }
  const JsonValue& axes = in.array(sweep, "sweep", "vary");
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const std::string path = json_element("sweep.vary", i);
    in.expect_object(axes[i], path);
    SweepAxis axis;
    axis.key = in.string(axes[i], path, "key");
    axis.path = in.string(axes[i], path, "path");
    axis.values = in.strings(axes[i], path, "values");
    m.axes.push_back(std::move(axis));
  }
  m.seeds = in.bounded(sweep, "sweep", "seeds", 1, 1 << 30);
  m.runs_total = in.bounded(sweep, "sweep", "runs", 0, 1 << 30);
  const JsonValue& shard = in.object(j, "", "shard");
  m.shard.count = in.bounded(shard, "shard", "count", 1, kMaxSweepShards);
  m.shard.index = in.bounded(shard, "shard", "index", 0, m.shard.count - 1);
  m.out_dir = in.string(j, "", "out");
  const JsonValue& runs = in.array(j, "", "runs");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string path = json_element("runs", i);
    in.expect_object(runs[i], path);
    SweepManifestRun r;
    r.run = in.bounded(runs[i], path, "run", 0, 1 << 30);
    r.point = in.bounded(runs[i], path, "point", 0, 1 << 30);
    r.seed_index = in.bounded(runs[i], path, "seed_index", 0, 1 << 30);
    r.file = in.string(runs[i], path, "file");
    m.runs.push_back(std::move(r));
  }
  return m;
}

}  // namespace gradscope
