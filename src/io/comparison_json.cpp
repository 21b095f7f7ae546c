// `gradscope compare`'s JSON document: everything in a Comparison (app/compare.hpp computes it),
// in a fixed key order, with non-finite numbers as null and a "<key>_status" as in the run report.
#include "gradscope/io/comparison_json.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradscope/version.hpp"

namespace gradscope {

namespace {

using OrderedJson = nlohmann::ordered_json;

// Bumped when a key of the comparison document is added, renamed, removed or changes meaning.
// 2: findings.persisted; "metric" on each side of a finding; a code a report has twice is matched
// at the same layer first.
constexpr int kComparisonVersion = 3;

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
