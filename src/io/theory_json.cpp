// The JSON of `gradscope theory --json`: the mean-field numbers of one (activation, sw2, sb2),
// and the phase diagram the plotting code draws. Infinite depth scales (on the critical line) are
// written as null with "_status": "inf", as in the run reports; c* at q* = 0 as null with
// "undefined".
#include "gradscope/io/theory_json.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

#include "gradscope/version.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::ordered_json;

void put(Json& obj, const std::string& key, double v) {
  if (std::isfinite(v)) {
    obj[key] = v;
    return;
  }
  obj[key] = nullptr;
  obj[key + "_status"] = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

Json critical_json(const Critical& c) {
  Json j;
  j["exists"] = c.exists;
  if (c.exists) {
    put(j, "sw2", c.sw2);
    put(j, "q_star", c.q_star);
    j["q_star_unique"] = c.q_star_unique;
  }
  j["reason"] = c.reason;
  return j;
}

}  // namespace

std::string theory_to_json(const TheoryReport& r) {
  Json j;
  j["schema_version"] = kSchemaVersion;
  j["tool"] = {{"name", "gradscope"}, {"version", kVersion}};
  Json query;
  query["activation"] = std::string(activation_info(r.query.activation.kind).name);
  if (!activation_info(r.query.activation.kind).param_name.empty()) {
    query[std::string(activation_info(r.query.activation.kind).param_name)] =
        r.query.activation.param;
  }
  put(query, "sw2", r.query.sw2);
  put(query, "sb2", r.query.sb2);
  put(query, "q0", r.query.q0);
  j["query"] = query;
  Json fp;
  fp["exists"] = r.fixed_point.exists;
  if (r.fixed_point.exists) {
    put(fp, "q_star", r.fixed_point.q);
    fp["unique"] = r.fixed_point.unique;
  }
  fp["reason"] = r.fixed_point.reason;
  j["fixed_point"] = fp;
  j["phase"] = std::string(phase_name(r.phase));
  if (r.has_scales) {
    Json s;
    put(s, "chi1", r.scales.chi1);
    put(s, "chi_q", r.scales.chi_q);
    put(s, "xi_c", r.scales.xi_c);
    put(s, "xi_q", r.scales.xi_q);
    if (r.has_c_star) {
      put(s, "c_star", r.c_star);
      s["c_star_unique"] = r.c_star_unique;
    } else {
      // q* = 0: two signals shrinking to zero have no correlation.
      s["c_star"] = nullptr;
      s["c_star_status"] = "undefined";
    }
    j["at_fixed_point"] = s;
  }
  j["critical"] = critical_json(r.critical);
  Json p;
  p["exists"] = r.preserving.exists;
  if (r.preserving.exists) put(p, "sw2", r.preserving.sw2);
  if (!r.preserving.reason.empty()) p["reason"] = r.preserving.reason;
  j["second_moment_preserving"] = p;
  if (!r.grid.empty()) {
    Json rows = Json::array();
    for (const PhasePoint& point : r.grid) {
      Json row;
      put(row, "sb2", point.sb2);
      row["critical"] = critical_json(point.critical);
      Json samples = Json::array();
      for (const PhaseSample& s : point.samples) {
        Json sample;
        put(sample, "sw2", s.sw2);
        sample["phase"] = std::string(phase_name(s.phase));
        if (s.phase != Phase::kUnbounded) {
          put(sample, "q_star", s.q_star);
          put(sample, "chi1", s.chi1);
        }
        samples.push_back(sample);
      }
      row["samples"] = samples;
      rows.push_back(row);
    }
    j["grid"] = rows;
  }
  return j.dump(2) + "\n";
}

}  // namespace gradscope
