// The sweep's JSON: the summary it writes, the manifest each shard leaves beside its runs, and
// whether a run's report is the run of its config.
#include <cmath>
#include <nlohmann/json.hpp>

#include "gradscope/io/config.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/version.hpp"

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

// Reads manifests strictly: every error names the file and the JSON path.
class ManifestReader {
 public:
  explicit ManifestReader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(source_ + ": " + path + " " + what,
                "the manifest was edited, truncated or written by another tool; run that shard "
                "again with --resume (its finished runs are kept) to rewrite it");
  }
  const Json& at(const Json& obj, const std::string& key, const std::string& path) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(path + key, "is missing");
    return *it;
  }
  std::string string(const Json& obj, const std::string& key, const std::string& path) const {
    const Json& v = at(obj, key, path);
    if (!v.is_string()) fail(path + key, "must be a string");
    return v.get<std::string>();
  }
  std::optional<std::string> optional_string(const Json& obj, const std::string& key,
                                             const std::string& path) const {
    const Json& v = at(obj, key, path);
    if (v.is_null()) return std::nullopt;
    if (!v.is_string()) fail(path + key, "must be a string or null");
    return v.get<std::string>();
  }
  int integer(const Json& obj, const std::string& key, const std::string& path, int low,
              int high) const {
    const Json& v = at(obj, key, path);
    if (!v.is_number_integer() || v.get<std::int64_t>() < low || v.get<std::int64_t>() > high) {
      fail(path + key,
           "must be a whole number from " + std::to_string(low) + " to " + std::to_string(high));
    }
    return v.get<int>();
  }
  const Json& array(const Json& obj, const std::string& key, const std::string& path) const {
    const Json& v = at(obj, key, path);
    if (!v.is_array()) fail(path + key, "must be an array");
    return v;
  }
  const Json& object(const Json& obj, const std::string& key, const std::string& path) const {
    const Json& v = at(obj, key, path);
    if (!v.is_object()) fail(path + key, "must be an object");
    return v;
  }

 private:
  std::string source_;
};

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
  const ManifestReader in(source);
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(source + ": not valid JSON",
                "the manifest was truncated or edited; run that shard again with --resume (its "
                "finished runs are kept) to rewrite it");
  }
  const auto kind = j.find("kind");
  if (kind == j.end() || *kind != kManifestKind) {
    throw Error(source + ": not a gradscope sweep shard manifest",
                "give the directories that `gradscope sweep ... --shard I/N` wrote "
                "(OUT/NAME/shards/I-of-N), or their sweep directory OUT/NAME");
  }
  if (in.integer(j, "schema_version", "", 0, 1 << 30) != kSchemaVersion) {
    throw Error(source + ": a shard manifest of schema version " +
                    std::to_string(j.at("schema_version").get<int>()) + ", this gradscope reads " +
                    std::to_string(kSchemaVersion),
                "run the shards and the merge with the same gradscope");
  }
  SweepManifest m;
  m.version = in.string(in.object(j, "tool", ""), "version", "tool.");
  const Json& sweep = in.object(j, "sweep", "");
  m.name = in.string(sweep, "name", "sweep.");
  m.config = in.optional_string(sweep, "config", "sweep.");
  m.config_text = in.optional_string(sweep, "config_text", "sweep.");
  const Json& overrides = in.array(sweep, "overrides", "sweep.");
  for (std::size_t i = 0; i < overrides.size(); ++i) {
    const std::string path = "sweep.overrides[" + std::to_string(i) + "].";
    if (!overrides[i].is_object()) in.fail(path, "must be an object");
    m.overrides.push_back({in.string(overrides[i], "path", path),
                           in.string(overrides[i], "value", path),
                           in.string(overrides[i], "origin", path)});
  }
  const Json& axes = in.array(sweep, "vary", "sweep.");
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const std::string path = "sweep.vary[" + std::to_string(i) + "].";
    if (!axes[i].is_object()) in.fail(path, "must be an object");
    SweepAxis axis;
    axis.key = in.string(axes[i], "key", path);
    axis.path = in.string(axes[i], "path", path);
    const Json& values = in.array(axes[i], "values", path);
    for (const Json& v : values) {
      if (!v.is_string()) in.fail(path + "values", "must hold strings");
      axis.values.push_back(v.get<std::string>());
    }
    m.axes.push_back(std::move(axis));
  }
  m.seeds = in.integer(sweep, "seeds", "sweep.", 1, 1 << 30);
  m.runs_total = in.integer(sweep, "runs", "sweep.", 0, 1 << 30);
  const Json& shard = in.object(j, "shard", "");
  m.shard.count = in.integer(shard, "count", "shard.", 1, kMaxSweepShards);
  m.shard.index = in.integer(shard, "index", "shard.", 0, m.shard.count - 1);
  m.out_dir = in.string(j, "out", "");
  const Json& runs = in.array(j, "runs", "");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string path = "runs[" + std::to_string(i) + "].";
    if (!runs[i].is_object()) in.fail(path, "must be an object");
    SweepManifestRun r;
    r.run = in.integer(runs[i], "run", path, 0, 1 << 30);
    r.point = in.integer(runs[i], "point", path, 0, 1 << 30);
    r.seed_index = in.integer(runs[i], "seed_index", path, 0, 1 << 30);
    r.file = in.string(runs[i], "file", path);
    m.runs.push_back(std::move(r));
  }
  return m;
}

}  // namespace gradscope
