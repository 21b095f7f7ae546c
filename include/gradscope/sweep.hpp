// Sweeps: one config run at every combination of a few varied keys (and several seeds per point),
// in parallel, each run's report kept on disk so that an interrupted sweep resumes where it
// stopped; then one summary of every point, as JSON, text, Markdown and plots.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/config.hpp"
#include "gradscope/spec.hpp"

namespace gradscope {

// One --vary: a config key (or an alias such as "activation" for stack.activation, or the
// structural keys "residual" and "norm") and the values it takes, each as --set takes it.
struct SweepAxis {
  std::string key;   // as the user wrote it
  std::string path;  // the config path it sets; empty for the structural keys
  std::vector<std::string> values;
};

// Parses "KEY=V1,V2,..." (or "KEY=[JSON array]" when values hold commas). Throws Error.
SweepAxis parse_sweep_axis(const std::string& text);

// The structural keys a stack config can vary: "residual" (off | on: pre-norm residual blocks
// with layer norm, as the diagnosis's advice builds them) and "norm" (none | batch_norm |
// layer_norm | rms_norm after every hidden layer's activation, or in the residual blocks).
struct Structure {
  bool residual = false;
  std::optional<NormKind> norm;
};
// Rewrites a stack spec into the `layers` form with that structure (unchanged when both are off).
// Throws Error when the spec is not a stack config.
RunSpec with_structure(const RunSpec& spec, const Structure& structure);

// One point of the grid: a value per axis.
struct SweepPoint {
  int index = 0;
  std::vector<std::pair<std::string, std::string>> settings;  // (key, value) per axis
  std::string label;                                          // "activation=relu depth=10"
};

// Every combination, the first axis varying slowest.
std::vector<SweepPoint> sweep_points(const std::vector<SweepAxis>& axes);

// What a sweep keeps of one run, read back from its report JSON (so that a resumed sweep and an
// uninterrupted one summarise the very same bytes).
struct SweepFinding {
  std::string code;
  std::string severity;
  int layer = 0;
};
struct SweepRun {
  int point = 0;
  int seed_index = 0;
  std::uint64_t seed = 0;
  std::string file;  // relative to the sweep directory
  std::string verdict;
  double log10_grad_ratio = 0.0;
  double mean_log10_gain = 0.0;
  std::int64_t dead_units = 0;
  double saturated_fraction = 0.0;
  int nonfinite_layers = 0;
  std::vector<SweepFinding> findings;
  std::vector<double> log10_grad;            // per reported layer
  std::vector<double> predicted_log10_grad;  // NaN where the theory has no prediction
  std::vector<double> dead_fraction;
  std::vector<double> saturated_fraction_per_layer;
};

struct SweepPointSummary {
  SweepPoint point;
  std::vector<SweepRun> runs;  // one per seed, in seed order
  // Over the seeds: mean, and the smallest and largest value.
  double ratio_mean = 0.0, ratio_min = 0.0, ratio_max = 0.0;
  std::string worst_verdict;
};

struct SweepResult {
  std::string name;
  std::string config;  // the config file, or "<default>"
  std::vector<SweepAxis> axes;
  int seeds = 1;
  std::vector<SweepPointSummary> points;
};

// ---- The JSON layer (sweep_json.cpp)

// Reads back what a sweep keeps of a run from its report JSON. Throws Error naming `source`.
SweepRun sweep_run_from_report_json(const std::string& text, const std::string& source);
// Whether a report on disk is the run of `spec` (its "config" section equals the spec's resolved
// config): --resume reuses it then, and runs it again otherwise.
bool report_is_run_of(const std::string& report_json, const RunSpec& spec);
std::string sweep_to_json(const SweepResult& result);

// ---- The text layer (sweep_text.cpp)

std::string sweep_to_text(const SweepResult& result);
std::string sweep_to_markdown(const SweepResult& result);
// Gradient rms per layer, one line per point (the mean over seeds, with the seeds' range as a
// band), theory dashed beside it for the first seed.
std::string sweep_gradient_svg(const SweepResult& result);

// ---- The CLI layer (sweep_run.cpp)

struct SweepRequest {
  std::optional<std::string> config;  // none: the built-in default
  std::vector<ConfigOverride> overrides;
  std::vector<SweepAxis> axes;
  int seeds = 1;
  std::string name;  // the sweep's directory under `out_dir`; default: the config's name
  std::string out_dir = "reports";
  bool resume = false;  // reuse finished runs on disk (their config must match)
  int jobs = 0;         // runs at once; 0: one per core
};

// Progress: (runs done, runs in all, label of the run just finished).
using SweepProgress = std::function<void(int, int, const std::string&)>;

// Runs every point and seed (skipping finished ones when resuming), writes each run's report as
// it finishes, then the summary files (sweep.json, .txt, .md, .html, gradients.svg); returns the
// summary. Throws Error before running anything when an axis or a point's config is invalid, or
// when the directory holds another sweep's runs and --resume is not given.
SweepResult run_sweep(const SweepRequest& request, const SweepProgress& progress);

}  // namespace gradscope
