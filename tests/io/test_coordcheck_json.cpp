// The coordinate check's JSON: keys in their documented order, every number the struct holds read
// back as the same double, non-finite values as null with their status, and the worst rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordcheck_fixture.hpp"
#include "gradscope/io/coordcheck_json.hpp"
#include "gradscope/version.hpp"

namespace gradscope {
namespace {

using Json = nlohmann::ordered_json;
using testing::flat_coordcheck;
using testing::sp_coordcheck;
using testing::sp_coordcheck_with_depth;

std::vector<std::string> keys_of(const Json& j) {
  std::vector<std::string> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.key());
  return out;
}

// A per-width array as written: each finite entry the same double (exact: the writer prints the
// shortest spelling that reads back), null where it is not finite with its status beside.
void expect_array(const Json& row, const std::string& key, const std::vector<double>& want) {
  const Json& got = row.at(key);
  ASSERT_EQ(got.size(), want.size()) << key;
  bool any_nonfinite = false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::isfinite(want[i])) {
      EXPECT_EQ(got[i].get<double>(), want[i]) << key << "[" << i << "]";
      if (row.contains(key + "_status")) {
        EXPECT_TRUE(row.at(key + "_status")[i].is_null());
      }
    } else {
      any_nonfinite = true;
      EXPECT_TRUE(got[i].is_null()) << key << "[" << i << "]";
      const std::string status = std::isnan(want[i]) ? "nan" : (want[i] > 0 ? "inf" : "-inf");
      EXPECT_EQ(row.at(key + "_status").at(i), status) << key << "[" << i << "]";
    }
  }
  EXPECT_EQ(row.contains(key + "_status"), any_nonfinite) << key;
}

// A scalar as written: the same double, or null followed by "<key>_status".
void expect_number(const Json& obj, const std::string& key, double want) {
  if (std::isfinite(want)) {
    EXPECT_EQ(obj.at(key).get<double>(), want) << key;
    EXPECT_FALSE(obj.contains(key + "_status")) << key;
  } else {
    EXPECT_TRUE(obj.at(key).is_null()) << key;
    EXPECT_EQ(obj.at(key + "_status"), std::isnan(want) ? "nan" : "inf") << key;
  }
}

TEST(CoordcheckJson, TopLevelKeysInOrderAndDepthOnlyWithDepthRows) {
  const Json j = Json::parse(coordcheck_json_text(sp_coordcheck()));
  EXPECT_EQ(keys_of(j), (std::vector<std::string>{"kind", "schema_version", "tool", "name", "check",
                                                  "multipliers", "rows", "verdict"}));
  EXPECT_EQ(j.at("kind"), "coordcheck");
  EXPECT_EQ(j.at("schema_version"), kSchemaVersion);
  EXPECT_EQ(j.at("name"), "mlp3-sp");
  const Json d = Json::parse(coordcheck_json_text(sp_coordcheck_with_depth()));
  EXPECT_EQ(keys_of(d), (std::vector<std::string>{"kind", "schema_version", "tool", "name", "check",
                                                  "multipliers", "rows", "depth", "verdict"}));
}

TEST(CoordcheckJson, CheckAndOptimizerAreTheSpecs) {
  CoordCheckResult r = sp_coordcheck_with_depth();
  r.spec.train.optimizer = TrainOptimizer::kAdamW;
  r.spec.train.learning_rate = 3e-4;
  r.spec.train.beta2 = 0.95;
  r.spec.train.eps = 1e-12;
  r.spec.train.weight_decay = 0.01;
  r.spec.tolerance = 0.15;
  const Json c = Json::parse(coordcheck_json_text(r)).at("check");
  EXPECT_EQ(keys_of(c),
            (std::vector<std::string>{"widths", "depths", "seeds", "parametrization", "base_width",
                                      "base_depth", "optimizer", "steps", "tolerance"}));
  EXPECT_EQ(c.at("widths").get<std::vector<int>>(), r.spec.widths);
  EXPECT_EQ(c.at("depths").get<std::vector<int>>(), r.spec.depths);
  EXPECT_EQ(c.at("seeds"), 4);
  EXPECT_EQ(c.at("parametrization"), "sp");
  EXPECT_EQ(c.at("base_width"), 64);  // the resolved base, not the request's 0
  EXPECT_EQ(c.at("base_depth"), 3);
  EXPECT_EQ(c.at("steps"), 2);
  EXPECT_EQ(c.at("tolerance").get<double>(), 0.15);
  const Json& o = c.at("optimizer");
  EXPECT_EQ(keys_of(o), (std::vector<std::string>{"name", "learning_rate", "momentum", "beta1",
                                                  "beta2", "eps", "weight_decay"}));
  EXPECT_EQ(o.at("name"), "adamw");
  EXPECT_EQ(o.at("learning_rate").get<double>(), 3e-4);
  EXPECT_EQ(o.at("momentum").get<double>(), 0.9);
  EXPECT_EQ(o.at("beta1").get<double>(), 0.9);
  EXPECT_EQ(o.at("beta2").get<double>(), 0.95);
  EXPECT_EQ(o.at("eps").get<double>(), 1e-12);
  EXPECT_EQ(o.at("weight_decay").get<double>(), 0.01);
}

TEST(CoordcheckJson, MultipliersReadBackExactly) {
  CoordCheckResult r = sp_coordcheck();
  r.spec.parametrization = Parametrization::kCompleteP;
  // muP's table at 16 times the base width: hidden init 1/sqrt(16), readout 1/16, Adam eps 1/16.
  r.multipliers[2].init_std = 0.25;
  r.multipliers[4].init_std = 0.0625;
  r.multipliers[4].lr = 1.0 / 16.0;
  r.multipliers[2].eps = 1.0 / 3.0;  // a value with no short decimal spelling
  const Json j = Json::parse(coordcheck_json_text(r));
  EXPECT_EQ(j.at("check").at("parametrization"), "completep");
  const Json& m = j.at("multipliers");
  EXPECT_EQ(m.at("width"), 1024);
  ASSERT_EQ(m.at("tensors").size(), r.multipliers.size());
  for (std::size_t i = 0; i < r.multipliers.size(); ++i) {
    const Json& t = m.at("tensors")[i];
    const TensorMultipliers& want = r.multipliers[i];
    EXPECT_EQ(keys_of(t),
              (std::vector<std::string>{"op", "name", "role", "init_std", "lr", "eps"}));
    EXPECT_EQ(t.at("op"), want.op);
    EXPECT_EQ(t.at("name"), want.name);
    EXPECT_EQ(t.at("role"), tensor_role_name(want.role));
    EXPECT_EQ(t.at("init_std").get<double>(), want.init_std);
    EXPECT_EQ(t.at("lr").get<double>(), want.lr);
    EXPECT_EQ(t.at("eps").get<double>(), want.eps);
  }
  EXPECT_EQ(m.at("tensors")[1].at("role"), "vector");
  EXPECT_EQ(m.at("tensors")[4].at("role"), "output");
}

TEST(CoordcheckJson, RowsReadBackExactlyWithNonFiniteSizesAsNullAndStatus) {
  const CoordCheckResult r = sp_coordcheck();
  const Json rows = Json::parse(coordcheck_json_text(r)).at("rows");
  ASSERT_EQ(rows.size(), r.rows.size());
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    SCOPED_TRACE("row " + std::to_string(i));
    const Json& j = rows[i];
    const CoordRow& want = r.rows[i];
    EXPECT_EQ(j.at("op"), want.op);
    EXPECT_EQ(j.at("label"), want.label);
    EXPECT_EQ(j.at("role"), tensor_role_name(want.role));
    EXPECT_EQ(j.at("quantity"), coord_quantity_name(want.quantity));
    EXPECT_EQ(j.at("step"), want.step);
    expect_array(j, "l1", want.l1);
    expect_array(j, "rms", want.rms);
    expect_number(j, "slope", want.slope);
    expect_number(j, "spread", want.spread);
    expect_array(j, "expected", {want.expected_low, want.expected_high});
    EXPECT_EQ(j.at("verdict"), slope_verdict_name(want.verdict));
  }
  // The overflowed row, spelled out: NaN l1 and infinite rms at the largest width.
  const Json& o = rows[16];
  EXPECT_EQ(o.at("label"), "ops.2 dense");
  EXPECT_TRUE(o.at("l1")[4].is_null());
  EXPECT_EQ(o.at("l1_status"), Json::parse(R"([null, null, null, null, "nan"])"));
  EXPECT_EQ(o.at("rms_status")[4], "inf");
  EXPECT_TRUE(o.at("slope").is_null());
  EXPECT_EQ(o.at("slope_status"), "nan");
  EXPECT_EQ(rows[15].at("verdict"), "GROWS");
  EXPECT_EQ(rows[0].at("verdict"), "FLAT");
  EXPECT_EQ(keys_of(rows[0]),
            (std::vector<std::string>{"op", "label", "role", "quantity", "step", "l1", "rms",
                                      "slope", "spread", "expected", "verdict"}));
}

TEST(CoordcheckJson, VerdictNamesTheWorstRows) {
  const CoordCheckResult r = sp_coordcheck_with_depth();
  const Json j = Json::parse(coordcheck_json_text(r));
  const Json& v = j.at("verdict");
  EXPECT_EQ(v.at("passed"), false);
  const Json& w = v.at("worst");
  EXPECT_EQ(w.at("row"), 17);
  EXPECT_EQ(w.at("label"), "ops.2 dense");
  EXPECT_EQ(w.at("quantity"), "change");
  EXPECT_EQ(w.at("step"), 1);
  EXPECT_EQ(w.at("slope").get<double>(), r.rows[17].slope);
  EXPECT_EQ(w.at("expected"), Json::parse("[0.0, 0.0]"));
  EXPECT_EQ(w.at("verdict"), "GROWS");
  const Json& d = v.at("worst_depth");
  EXPECT_EQ(d.at("row"), 2);
  EXPECT_EQ(d.at("label"), "ops.3 residual");
  EXPECT_EQ(d.at("quantity"), "size");
  EXPECT_EQ(d.at("step"), 2);
  EXPECT_EQ(d.at("slope").get<double>(), r.depth_rows[2].slope);

  const Json& depth = j.at("depth");
  EXPECT_EQ(depth.at("residual_scale").get<double>(), 1.0);
  ASSERT_EQ(depth.at("rows").size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const Json& row = depth.at("rows")[i];
    EXPECT_EQ(keys_of(row),
              (std::vector<std::string>{"op", "label", "stream", "quantity", "step", "l1", "rms",
                                        "slope", "spread", "expected", "verdict"}));
    EXPECT_EQ(row.at("label"), "ops.3 residual");
    EXPECT_EQ(row.at("stream"), true);
    EXPECT_EQ(row.at("quantity"), "size");
    expect_array(row, "l1", r.depth_rows[i].l1);
    expect_array(row, "rms", r.depth_rows[i].rms);
    expect_number(row, "slope", r.depth_rows[i].slope);
  }

  const Json pass = Json::parse(coordcheck_json_text(flat_coordcheck())).at("verdict");
  EXPECT_EQ(pass.at("passed"), true);
  EXPECT_TRUE(pass.at("worst").is_null());
  EXPECT_TRUE(pass.at("worst_depth").is_null());
}

TEST(CoordcheckJson, SameResultSameBytes) {
  const std::string a = coordcheck_json_text(sp_coordcheck_with_depth());
  EXPECT_EQ(a, coordcheck_json_text(sp_coordcheck_with_depth()));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.back(), '\n');
  EXPECT_EQ(a.find("NaN"), std::string::npos);  // JSON has no NaN: never written bare
  EXPECT_EQ(a.find("Infinity"), std::string::npos);
}

}  // namespace
}  // namespace gradscope
