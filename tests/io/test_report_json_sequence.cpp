// The JSON report's sequence-model keys: attention and glu layers with their settings, the token
// and attention statistics, per-tensor parameter statistics (per layer and the top-level list),
// validated against schema/report.schema.json and read back byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/report_json.hpp"
#include "json_schema.hpp"
#include "report_fixtures.hpp"
#include "support/paths.hpp"

namespace gradscope {
namespace {

using Json = nlohmann::ordered_json;
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ParamStats param(const std::string& role, std::vector<std::int64_t> shape, double norm,
                 double log10_grad, bool update) {
  ParamStats p;
  p.role = role;
  p.shape = std::move(shape);
  p.norm = norm;
  p.grad_norm = magnitude_from_log10(log10_grad);
  p.has_update = update;
  if (update) p.update_to_weight = magnitude_from_log10(-3.25);
  return p;
}

// A residual attention block (skip 1.5, two heads, biases) then a GLU over 3 tokens of width 8,
// as the engine would report it with Adam.
Report sequence_report() {
  Report r;
  r.spec = parse_run_spec(R"({
    "name": "sequence", "seed": 2, "input": {"width": 8, "batch": 4, "tokens": 3},
    "layers": [
      {"residual": {"skip": 1.5}, "block": [{"attention": {"heads": 2, "bias": true}}]},
      {"glu": {"hidden": 16}}
    ],
    "optimizer": "adam"
  })",
                          "sequence.json", "sequence");
  testing::set_sample_input(r);
  const int columns = 12;
  LayerReport attention = testing::make_layer(2, 8, 8, Activation::kLinear, -1.0, -0.9, columns);
  attention.kind = OpKind::kAttention;
  attention.forward.has_tokens = true;
  attention.forward.token_mean_cosine = 0.375;
  attention.forward.token_centered_rms = 0.8125;
  attention.forward.has_attention = true;
  attention.forward.attention_entropy = 0.6931471805599453;
  attention.forward.attention_max_logit = kNan;  // written as null with status "nan"
  attention.forward.attention_peaked_fraction = 0.125;
  for (const char* role : {"query", "key", "value", "output"}) {
    attention.backward.params.push_back(
        param(std::string(role) + ".weight", {8, 8}, 2.5, -1.5, true));
    attention.backward.params.push_back(param(std::string(role) + ".bias", {8}, 0.0, -2.0, true));
  }
  // A gradient without a finite entry: no_finite_values, as for the layer's own norms.
  attention.backward.params[2].grad_norm = {kNan, kNan};
  attention.backward.params[2].grad_nonfinite = 64;
  attention.backward.has_update = true;
  attention.backward.update_to_weight = magnitude_from_log10(-3.0);

  LayerReport residual = testing::make_layer(3, 8, 8, Activation::kLinear, -0.9, -0.8, columns);
  residual.kind = OpKind::kResidualEnd;
  residual.backward.has_weights = false;
  residual.residual.skip = 1.5;
  residual.forward.has_tokens = true;
  residual.forward.token_mean_cosine = 0.5;
  residual.forward.token_centered_rms = 1.25;

  LayerReport glu = testing::make_layer(4, 8, 8, Activation::kLinear, -0.8, -0.7, columns);
  glu.kind = OpKind::kGlu;
  glu.backward.params = {param("gate.weight", {16, 8}, 4.0, -1.25, true),
                         param("up.weight", {16, 8}, 4.0, -1.0, true),
                         param("down.weight", {8, 16}, 4.0, -0.75, true)};
  r.layers = {attention, residual, glu};
  for (const LayerReport& l : r.layers) {
    for (const ParamStats& p : l.backward.params) {
      const int op = l.index - 1;  // ops.K counts the residual begin
      r.parameter_list.push_back({"ops." + std::to_string(op) + "." + p.role, l.index, p});
    }
  }
  return r;
}

TEST(ReportJsonSequence, ValidatesAgainstTheSchema) {
  const Json schema =
      Json::parse(read_file(std::string(GRADSCOPE_SOURCE_DIR) + "/schema/report.schema.json"));
  const Json doc = Json::parse(report_to_json(sequence_report()));
  std::string errors;
  for (const std::string& e : testing::SchemaValidator<Json>(schema).validate(doc)) {
    errors += e + "\n";
  }
  EXPECT_TRUE(errors.empty()) << errors;
}

TEST(ReportJsonSequence, LayersCarryTheirSettingsAndStatistics) {
  const Json doc = Json::parse(report_to_json(sequence_report()));
  const Json& attention = doc["layers"][0];
  EXPECT_EQ(attention["kind"], "attention");
  EXPECT_EQ(attention["attention"]["heads"], 2);
  EXPECT_EQ(attention["attention"]["causal"], true);
  EXPECT_EQ(attention["attention"]["scale_kind"], "1/sqrt(d_head)");
  EXPECT_EQ(attention["attention"]["scale"], 0.5);  // 1/sqrt(8 / 2), exact
  EXPECT_EQ(attention["attention"]["bias"], true);
  const Json& forward = attention["forward"];
  EXPECT_EQ(forward["tokens"]["mean_cosine"], 0.375);
  EXPECT_EQ(forward["tokens"]["centered_rms"], 0.8125);
  EXPECT_EQ(forward["attention"]["entropy"], 0.6931471805599453);
  EXPECT_TRUE(forward["attention"]["max_logit"].is_null());
  EXPECT_EQ(forward["attention"]["max_logit_status"], "nan");
  EXPECT_EQ(forward["attention"]["peaked_fraction"], 0.125);
  const Json& params = attention["backward"]["parameters"];
  ASSERT_EQ(params.size(), 8U);
  EXPECT_EQ(params[0]["role"], "query.weight");
  EXPECT_EQ(params[0]["shape"], Json::array({8, 8}));
  EXPECT_EQ(params[0]["log10_grad_norm"], -1.5);
  EXPECT_EQ(params[0]["log10_update_to_weight"], -3.25);
  EXPECT_EQ(params[2]["grad_norm_status"], "no_finite_values");
  EXPECT_EQ(params[2]["grad_nonfinite"], 64);

  EXPECT_EQ(doc["layers"][1]["residual"]["skip"], 1.5);
  EXPECT_FALSE(doc["layers"][1]["forward"].contains("attention"));
  EXPECT_FALSE(doc["layers"][1]["backward"].contains("parameters"));
  EXPECT_EQ(doc["layers"][2]["glu"]["hidden"], 16);
  EXPECT_EQ(doc["layers"][2]["glu"]["activation"], "silu");
  EXPECT_FALSE(doc["layers"][2]["forward"].contains("tokens"));

  const Json& list = doc["parameters"];
  ASSERT_EQ(list.size(), 11U);
  EXPECT_EQ(list[0]["name"], "ops.1.query.weight");
  EXPECT_EQ(list[0]["layer"], 2);
  EXPECT_EQ(list[10]["name"], "ops.3.down.weight");
  EXPECT_EQ(list[10]["shape"], Json::array({8, 16}));
}

TEST(ReportJsonSequence, ReadsBackIntoTheSameStructsAndBytes) {
  const Report r = sequence_report();
  const std::string json = report_to_json(r);
  const Report back = report_from_json(json, "sequence.json");
  EXPECT_EQ(report_to_json(back), json);
  ASSERT_EQ(back.layers.size(), 3U);
  EXPECT_EQ(back.spec.input.tokens, 3);
  const LayerReport& a = back.layers[0];
  EXPECT_EQ(a.kind, OpKind::kAttention);
  EXPECT_TRUE(a.forward.has_tokens);
  EXPECT_EQ(a.forward.token_mean_cosine, 0.375);
  EXPECT_TRUE(a.forward.has_attention);
  EXPECT_TRUE(std::isnan(a.forward.attention_max_logit));
  ASSERT_EQ(a.backward.params.size(), 8U);
  EXPECT_EQ(a.backward.params[1].role, "query.bias");
  EXPECT_EQ(a.backward.params[1].shape, (std::vector<std::int64_t>{8}));
  EXPECT_TRUE(a.backward.params[1].has_update);
  EXPECT_TRUE(std::isnan(a.backward.params[2].grad_norm.log10));
  EXPECT_EQ(back.layers[1].residual.skip, 1.5);
  EXPECT_EQ(back.layers[2].kind, OpKind::kGlu);
  EXPECT_FALSE(back.layers[2].forward.has_tokens);
  ASSERT_EQ(back.parameter_list.size(), r.parameter_list.size());
  EXPECT_EQ(back.parameter_list[2].name, "ops.1.key.weight");
  EXPECT_EQ(back.parameter_list[2].stats.grad_nonfinite, 64);
}

}  // namespace
}  // namespace gradscope
