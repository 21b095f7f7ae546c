// The coordinate check's JSON writer: the check, the multipliers, the rows and their verdicts, in
// the key order gradscope/io/coordcheck_json.hpp documents, numbers written as the reports write
// them.
#include "gradscope/io/coordcheck_json.hpp"

#include <cmath>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradscope/version.hpp"
#include "io/coordcheck_json_detail.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::ordered_json;

// "nan", "inf", "-inf" for a value JSON cannot hold; empty for a finite one.
const char* status_of(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return "";
}

// A double as the reports write it: the value, or null followed by "<key>_status".
void put(Json& obj, const std::string& key, double v) {
  if (std::isfinite(v)) {
    obj[key] = v;
  } else {
    obj[key] = nullptr;
    obj[key + "_status"] = status_of(v);
  }
}

// An array of doubles: null where an entry is not finite, and then "<key>_status" beside it with
// each entry's status (null for the finite ones), so no value silently turns into null.
void put_array(Json& obj, const std::string& key, const std::vector<double>& v) {
  Json values = Json::array();
  Json statuses = Json::array();
  bool any = false;
  for (const double x : v) {
    if (std::isfinite(x)) {
      values.push_back(x);
      statuses.push_back(nullptr);
    } else {
      values.push_back(nullptr);
      statuses.push_back(status_of(x));
      any = true;
    }
  }
  obj[key] = std::move(values);
  if (any) obj[key + "_status"] = std::move(statuses);
}

Json optimizer_json(const TrainSpec& t) {
  Json j = Json::object();
  j["name"] = std::string(train_optimizer_name(t.optimizer));
  put(j, "learning_rate", t.learning_rate);
  put(j, "momentum", t.momentum);
  put(j, "beta1", t.beta1);
  put(j, "beta2", t.beta2);
  put(j, "eps", t.eps);
  put(j, "weight_decay", t.weight_decay);
  return j;
}

Json check_json(const CoordCheckResult& r) {
  const CoordCheckSpec& s = r.spec;
  Json j = Json::object();
  j["widths"] = s.widths;
  j["depths"] = s.depths;
  j["seeds"] = s.seeds;
  j["parametrization"] = std::string(parametrization_name(s.parametrization));
  j["base_width"] = r.base_width;
  j["base_depth"] = r.base_depth;
  j["optimizer"] = optimizer_json(s.train);
  j["steps"] = s.train.steps;
  put(j, "tolerance", s.tolerance);
  return j;
}

Json multipliers_json(const CoordCheckResult& r) {
  Json tensors = Json::array();
  for (const TensorMultipliers& t : r.multipliers) {
    Json tj = Json::object();
    tj["op"] = t.op;
    tj["name"] = t.name;
    tj["role"] = std::string(tensor_role_name(t.role));
    put(tj, "init_std", t.init_std);
    put(tj, "lr", t.lr);
    put(tj, "eps", t.eps);
    tensors.push_back(std::move(tj));
  }
  Json j = Json::object();
  j["width"] = r.multipliers_width;
  j["tensors"] = std::move(tensors);
  return j;
}

// The fit and its judgement, shared by width and depth rows.
void put_fit(Json& j, double slope, double spread, double low, double high, SlopeVerdict v) {
  put(j, "slope", slope);
  put(j, "spread", spread);
  put_array(j, "expected", {low, high});
  j["verdict"] = std::string(slope_verdict_name(v));
}

Json row_json(const CoordRow& row) {
  Json j = Json::object();
  j["op"] = row.op;
  j["label"] = row.label;
  j["role"] = std::string(tensor_role_name(row.role));
  j["quantity"] = std::string(coord_quantity_name(row.quantity));
  j["step"] = row.step;
  put_array(j, "l1", row.l1);
  put_array(j, "rms", row.rms);
  put_fit(j, row.slope, row.spread, row.expected_low, row.expected_high, row.verdict);
  return j;
}

Json depth_row_json(const DepthRow& row) {
  Json j = Json::object();
  j["op"] = row.op;
  j["label"] = row.label;
  j["stream"] = row.stream;
  j["quantity"] = std::string(coord_quantity_name(row.quantity));
  j["step"] = row.step;
  put_array(j, "l1", row.l1);
  put_array(j, "rms", row.rms);
  put_fit(j, row.slope, row.spread, row.expected_low, row.expected_high, row.verdict);
  return j;
}

// The worst rows: what a script needs to say why the check failed without walking the rows.
// An index out of range (a result built inconsistently) is written as no worst row.
Json verdict_json(const CoordCheckResult& r) {
  Json j = Json::object();
  j["passed"] = r.passed();
  if (r.worst >= 0 && static_cast<std::size_t>(r.worst) < r.rows.size()) {
    const CoordRow& w = r.rows[static_cast<std::size_t>(r.worst)];
    Json wj = Json::object();
    wj["row"] = r.worst;
    wj["op"] = w.op;
    wj["label"] = w.label;
    wj["role"] = std::string(tensor_role_name(w.role));
    wj["quantity"] = std::string(coord_quantity_name(w.quantity));
    wj["step"] = w.step;
    put_fit(wj, w.slope, w.spread, w.expected_low, w.expected_high, w.verdict);
    j["worst"] = std::move(wj);
  } else {
    j["worst"] = nullptr;
  }
  if (r.worst_depth >= 0 && static_cast<std::size_t>(r.worst_depth) < r.depth_rows.size()) {
    const DepthRow& w = r.depth_rows[static_cast<std::size_t>(r.worst_depth)];
    Json wj = Json::object();
    wj["row"] = r.worst_depth;
    wj["op"] = w.op;
    wj["label"] = w.label;
    wj["stream"] = w.stream;
    wj["quantity"] = std::string(coord_quantity_name(w.quantity));
    wj["step"] = w.step;
    put_fit(wj, w.slope, w.spread, w.expected_low, w.expected_high, w.verdict);
    j["worst_depth"] = std::move(wj);
  } else {
    j["worst_depth"] = nullptr;
  }
  return j;
}

}  // namespace

nlohmann::ordered_json coordcheck_to_json(const CoordCheckResult& r) {
  Json j = Json::object();
  j["kind"] = "coordcheck";
  j["schema_version"] = kSchemaVersion;
  j["tool"] = {{"name", "gradscope"}, {"version", kVersion}};
  j["name"] = r.name;
  j["check"] = check_json(r);
  j["multipliers"] = multipliers_json(r);
  Json rows = Json::array();
  for (const CoordRow& row : r.rows) rows.push_back(row_json(row));
  j["rows"] = std::move(rows);
  if (!r.depth_rows.empty()) {
    Json depth = Json::object();
    put(depth, "residual_scale", r.depth_residual_scale);
    Json drows = Json::array();
    for (const DepthRow& row : r.depth_rows) drows.push_back(depth_row_json(row));
    depth["rows"] = std::move(drows);
    j["depth"] = std::move(depth);
  }
  j["verdict"] = verdict_json(r);
  return j;
}

std::string coordcheck_json_text(const CoordCheckResult& r) {
  // replace: a label with invalid UTF-8 (a name from a weights file) must not throw mid-write.
  return coordcheck_to_json(r).dump(2, ' ', false,
                                    nlohmann::ordered_json::error_handler_t::replace) +
         "\n";
}

}  // namespace gradscope
