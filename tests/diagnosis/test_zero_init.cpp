// Zero-initialised residual branches (Fixup's last layer): their exactly-zero activations and
// gradients at initialisation are the design, and the diagnosis must not call them a collapse, a
// vanishing gradient or dead units; the same zeros outside a residual branch still are findings.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"

namespace gradscope {
namespace {

std::set<std::string> warning_codes(const Report& r) {
  std::set<std::string> out;
  for (const Finding& f : r.findings) {
    if (f.severity != Severity::kInfo) out.insert(f.code);
  }
  return out;
}

// A norm-free image ResNet of 8 basic blocks on 3 x 8 x 8, with `residual`; dense head.
std::string resnet(const std::string& residual, const std::string& last_init = "") {
  return R"({"name": "fixup", "seed": 3, "precision": "float64",
    "input": {"channels": 3, "height": 8, "width": 8, "batch": 16},
    "layers": [{"conv": {"channels": 4, "kernel": 3, "padding": 1}},
      {"repeat": 8, "residual": )" +
         residual + R"(, "block": [
         {"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "relu"},
         {"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "linear")" +
         last_init + R"(}]},
      {"activation": "relu"},
      {"pool": {"kind": "global_average"}}, {"flatten": {}},
      {"width": 3, "activation": "linear"}],
    "loss": "softmax_cross_entropy"})";
}

TEST(ZeroInitBranches, AFixupResnetsZeroBranchesAreNotVanishingCollapsedOrDead) {
  const Report r =
      run_diagnostic(parse_run_spec(resnet(R"({"preset": "fixup"})"), "fixup.json", "fixup", {}));
  // The measurements are what the design says: each branch's inner conv passes back exactly 0,
  // and its zero conv outputs exactly 0 ...
  int zero_gradients = 0;
  int zero_outputs = 0;
  for (const LayerReport& l : r.layers) {
    zero_gradients += l.backward.grad_preact_rms.value == 0.0 ? 1 : 0;
    zero_outputs += l.forward.act.rms == 0.0 ? 1 : 0;
  }
  EXPECT_EQ(zero_gradients, 8);  // the first conv of each of the 8 branches
  EXPECT_EQ(zero_outputs, 8);    // the zero conv of each branch
  // ... and none of it is a finding.
  const std::set<std::string> codes = warning_codes(r);
  EXPECT_EQ(codes.count("vanishing_gradients"), 0U);
  EXPECT_EQ(codes.count("collapsing_activations"), 0U);
  EXPECT_EQ(codes.count("dead_units"), 0U);
}

TEST(ZeroInitBranches, TheSameZerosOutsideAResidualBranchAreStillFindings) {
  // The zero conv on the main path (no residual around it): nothing reaches the head.
  const Report r = run_diagnostic(
      parse_run_spec(resnet("false", R"(, "init": "zeros")"), "plain.json", "plain", {}));
  const std::set<std::string> codes = warning_codes(r);
  EXPECT_EQ(codes.count("collapsing_activations"), 1U);
  EXPECT_EQ(codes.count("vanishing_gradients"), 1U);
}

}  // namespace
}  // namespace gradscope
