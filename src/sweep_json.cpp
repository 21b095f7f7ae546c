// The sweep's JSON: what it reads back from each run's report, and the summary it writes.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "gradscope/config.hpp"
#include "gradscope/error.hpp"
#include "gradscope/sweep.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::ordered_json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A number as report_json.cpp writes it: a value, or null with "<key>_status" saying why.
double read_number(const Json& obj, const std::string& key) {
  const auto it = obj.find(key);
  if (it == obj.end()) return kNaN;
  if (it->is_number()) return it->get<double>();
  const auto status = obj.find(key + "_status");
  if (status != obj.end() && status->is_string()) {
    const std::string s = status->get<std::string>();
    if (s == "inf" || s == "overflow") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  return kNaN;
}

const Json& member(const Json& obj, const std::string& key, const std::string& source,
                   const std::string& path) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    throw Error(source + ": " + path + key + " is missing",
                "the file is not a complete gradscope report; delete it and run the sweep again");
  }
  return *it;
}

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

}  // namespace

SweepRun sweep_run_from_report_json(const std::string& text, const std::string& source) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(source + ": not valid JSON",
                "the run was interrupted while being written elsewhere, or the file was edited; "
                "delete it and run the sweep again");
  }
  const auto version = j.find("schema_version");
  if (version == j.end() || !version->is_number_integer() ||
      version->get<int>() != kSchemaVersion) {
    throw Error(
        source + ": not a gradscope report of schema version " + std::to_string(kSchemaVersion),
        "delete it and run the sweep again");
  }
  SweepRun run;
  const Json& summary = member(j, "summary", source, "");
  run.verdict = member(summary, "verdict", source, "summary.").get<std::string>();
  run.log10_grad_ratio = read_number(summary, "log10_grad_ratio_first_to_last");
  run.mean_log10_gain = read_number(summary, "mean_log10_gain");
  run.dead_units = member(summary, "dead_units", source, "summary.").get<std::int64_t>();
  run.saturated_fraction = read_number(summary, "saturated_fraction");
  run.nonfinite_layers =
      static_cast<int>(member(summary, "nonfinite_layers", source, "summary.").size());
  run.seed =
      member(member(j, "config", source, ""), "seed", source, "config.").get<std::uint64_t>();
  for (const Json& f : member(j, "findings", source, "")) {
    run.findings.push_back(SweepFinding{f.at("code").get<std::string>(),
                                        f.at("severity").get<std::string>(),
                                        f.at("layer").get<int>()});
  }
  for (const Json& l : member(j, "layers", source, "")) {
    const Json& backward = l.at("backward");
    run.log10_grad.push_back(read_number(backward.at("grad_preact"), "log10_rms"));
    const Json& theory = l.at("theory");
    run.predicted_log10_grad.push_back(
        theory.value("backward", false) ? read_number(theory, "log10_grad_rel_last") : kNaN);
    const Json& forward = l.at("forward");
    run.dead_fraction.push_back(read_number(forward, "dead_fraction"));
    run.saturated_fraction_per_layer.push_back(
        read_number(forward.at("act"), "saturated_fraction"));
  }
  // The prediction is relative to the last layer: anchor it on the measured last layer.
  if (!run.log10_grad.empty()) {
    const double last = run.log10_grad.back();
    for (double& p : run.predicted_log10_grad) p += last;
  }
  return run;
}

bool report_is_run_of(const std::string& report_json, const RunSpec& spec) {
  const Json j = Json::parse(report_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("config")) return false;
  const auto version = j.find("schema_version");
  if (version == j.end() || !version->is_number_integer() ||
      version->get<int>() != kSchemaVersion) {
    return false;
  }
  return j.at("config") == Json::parse(run_spec_to_json(spec));
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

}  // namespace gradscope
