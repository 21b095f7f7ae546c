// The files a coordinate check keeps: every double reads back as the same bits (a resumed or
// merged check must give the bytes of an uninterrupted one), the plan reads back as the plan it
// was written from, and a damaged file is refused naming the file and the JSON path.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/coordcheck_runs_json.hpp"

namespace gradscope {
namespace {

std::uint64_t bits(double v) { return std::bit_cast<std::uint64_t>(v); }

TEST(CoordCheckRunsJson, EveryDoubleOfATraceReadsBackAsTheSameBits) {
  CoordCheckRunFile run;
  run.plan = "0123456789abcdef";
  run.depth = true;
  run.value = 16;
  run.seed = 2;
  const double specials[] = {0.0,
                             -0.0,
                             std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::denorm_min(),
                             std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::min(),
                             0.1,
                             1.0 / 3.0};
  std::mt19937_64 rng(5);
  std::vector<double> row(std::begin(specials), std::end(specials));
  // Random bit patterns: every exponent and mantissa (NaNs aside, whose payload is not kept).
  while (row.size() < 2000) {
    const double v = std::bit_cast<double>(rng());
    if (!std::isnan(v)) row.push_back(v);
  }
  run.trace.out_l1 = {row, row};
  run.trace.out_rms = {row};
  run.trace.change_l1 = {{}, row};
  run.trace.change_rms = {row, {}};
  run.trace.update_l1 = {{std::numeric_limits<double>::quiet_NaN()}, {2.5}};
  run.trace.update_rms = {{1.0}, {2.0}};
  run.trace.loss = {0.5, std::numeric_limits<double>::infinity()};
  const std::string text = coordcheck_run_json(run);
  const CoordCheckRunFile back = coordcheck_run_from_json(text, "run.json");
  EXPECT_EQ(back.plan, run.plan);
  EXPECT_TRUE(back.depth);
  EXPECT_EQ(back.value, 16);
  EXPECT_EQ(back.seed, 2);
  ASSERT_EQ(back.trace.out_l1.size(), 2u);
  ASSERT_EQ(back.trace.out_l1[1].size(), row.size());
  for (std::size_t i = 0; i < row.size(); ++i) {
    if (std::isnan(row[i])) {
      EXPECT_TRUE(std::isnan(back.trace.out_l1[1][i]));
    } else {
      EXPECT_EQ(bits(back.trace.out_l1[1][i]), bits(row[i])) << i << ": " << row[i];
    }
  }
  EXPECT_TRUE(back.trace.change_l1[0].empty());
  EXPECT_TRUE(std::isnan(back.trace.update_l1[0][0]));
  EXPECT_EQ(back.trace.loss[1], std::numeric_limits<double>::infinity());
  // Written again, the same bytes.
  EXPECT_EQ(coordcheck_run_json(back), text);
}

TEST(CoordCheckRunsJson, ThePlanReadsBackAsThePlanItWasWrittenFrom) {
  RunSpec base = load_run_spec(std::nullopt);
  base.name = "a-plan";
  CoordCheckSpec check;
  check.widths = {64, 128, 256};
  check.depths = {2, 4};
  check.seeds = 3;
  check.parametrization = Parametrization::kCompleteP;
  check.base_width = 64;
  check.train.optimizer = TrainOptimizer::kAdamW;
  check.train.learning_rate = 0.003;
  check.train.weight_decay = 0.1;
  check.train.steps = 4;
  const std::string text = coordcheck_plan_json(base, check);
  const CoordCheckRunsPlan back = coordcheck_plan_from_json(text, "plan.json");
  EXPECT_EQ(back.base.name, "a-plan");
  EXPECT_EQ(back.check.widths, check.widths);
  EXPECT_EQ(back.check.depths, check.depths);
  EXPECT_EQ(back.check.parametrization, Parametrization::kCompleteP);
  EXPECT_EQ(back.check.train.optimizer, TrainOptimizer::kAdamW);
  EXPECT_EQ(back.check.train.learning_rate, 0.003);
  EXPECT_EQ(coordcheck_plan_json(back.base, back.check), text);
  EXPECT_EQ(coordcheck_plan_digest(text).size(), 16u);
  EXPECT_NE(coordcheck_plan_digest(text), coordcheck_plan_digest(text + " "));
  // The difference names the first key that differs, with both values.
  CoordCheckSpec other = check;
  other.train.learning_rate = 0.01;
  EXPECT_EQ(coordcheck_plan_difference(coordcheck_plan_json(base, other), text),
            "check.optimizer.learning_rate: 0.01 here, 0.003 in the other");
  EXPECT_EQ(coordcheck_plan_difference(text, text), "");
}

TEST(CoordCheckRunsJson, ADamagedFileIsRefusedNamingTheFileAndThePath) {
  const auto refusal = [](const std::string& text) {
    try {
      coordcheck_run_from_json(text, "kept/width-64-seed-1.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refusal("{\"kind\": \"coordcheck_run\"").find("kept/width-64-seed-1.json:1:"),
            std::string::npos);
  EXPECT_NE(refusal("{\"kind\": \"report\"}").find("not a coordinate check's run"),
            std::string::npos);
  const std::string good =
      "{\"kind\":\"coordcheck_run\",\"schema_version\":1,\"plan\":\"x\",\"axis\":\"width\","
      "\"value\":64,\"seed\":1,\"trace\":{\"out_l1\":[[1,\"wat\"]],\"out_rms\":[],"
      "\"change_l1\":[],\"change_rms\":[],\"update_l1\":[],\"update_rms\":[],\"loss\":[]}}";
  const std::string why = refusal(good);
  EXPECT_NE(why.find("trace.out_l1[0][1]"), std::string::npos) << why;
  EXPECT_NE(why.find("\"nan\""), std::string::npos) << why;
  CoordCheckManifest m;
  m.shard = {1, 4};
  m.plan = "x";
  m.command = "gradscope coordcheck c.json --widths 64,128";
  m.fail_on = "grows";
  m.runs = {"width-64-seed-2.json"};
  const CoordCheckManifest back = coordcheck_manifest_from_json(coordcheck_manifest_json(m), "m");
  EXPECT_EQ(back.shard.index, 1);
  EXPECT_EQ(back.shard.count, 4);
  EXPECT_EQ(back.command, m.command);
  EXPECT_EQ(back.fail_on, "grows");
  EXPECT_EQ(back.runs, m.runs);
}

}  // namespace
}  // namespace gradscope
