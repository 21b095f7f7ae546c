// A sweep's grid and results as plain data: the varied keys (axes), the points they span, the
// structural variants (residual, norm), shards, and what a sweep keeps of each run. Running a
// sweep is app/sweep.hpp; its JSON io/sweep_json.hpp; its text and pictures report/sweep_text.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/core/spec.hpp"

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

// The structural keys: "residual" (off | on) and "norm" (none | batch_norm | layer_norm |
// rms_norm). Each sets one aspect of the network and leaves the other as the config has it, so
// that a point is exactly what its label says: "residual=on" alone adds skip connections and no
// norm; "residual=on norm=none" has no norm anywhere.
//   A stack config (which has neither): residual=on makes the first layer map the input to the
//   stack's width and the other depth - 1 layers residual blocks x + F(x); norm=KIND puts a norm
//   after every hidden layer's activation, or, with residual=on, first in every block and once
//   before the output (pre-norm, as the diagnosis's advice builds it).
//   A "layers" config: residual=off takes every block's skip connection away (a post-norm stays,
//   as a norm at the end of each repetition); residual=on keeps its residual blocks (an error
//   when it has none); norm=none removes every norm; norm=KIND makes every norm that kind (an
//   error when it has none).
struct Structure {
  std::optional<bool> residual;  // on or off; none: as the config has it
  bool norm_given = false;       // whether a norm value is given...
  std::optional<NormKind> norm;  // ...and which: none means no norm at all
};
// The spec with that structure: a stack turned into the `layers` form when anything changes, a
// "layers" list rewritten in place. Throws Error when the config cannot take a value (see above).
// The result is not validated: plan_sweep runs it through the config reader.
RunSpec with_structure(const RunSpec& spec, const Structure& structure);

// One point of the grid: a value per axis.
struct SweepPoint {
  int index = 0;
  std::vector<std::pair<std::string, std::string>> settings;  // (key, value) per axis
  std::string label;                                          // "activation=relu depth=10"
};

// Every combination, the first axis varying slowest.
std::vector<SweepPoint> sweep_points(const std::vector<SweepAxis>& axes);

// The most points a sweep runs unless told otherwise (--max-points): a grid is planned, every
// point's config built and validated, before anything runs, so an axis too many would otherwise
// spend minutes planning what would run for years.
inline constexpr std::uint64_t kMaxSweepPoints = 10000;
// How many points `axes` span, counted without overflow: `count` saturates at UINT64_MAX, `text`
// is the exact number with thousands separators ("1,000,000"), `product` its factors
// ("10 x 10 x 10"; empty without axes).
struct SweepGridSize {
  std::uint64_t count = 1;
  std::string text;
  std::string product;
};
SweepGridSize sweep_grid_size(const std::vector<SweepAxis>& axes);

// One slice of a sweep's runs: the runs are numbered 0, 1, ... point-major then seed, as the
// unsharded sweep numbers them, and run k belongs to shard k mod count (round robin, so that a
// slow value of an axis is spread over every shard).
struct SweepShard {
  int index = 0;  // 0 <= index < count
  int count = 1;
};
inline constexpr int kMaxSweepShards = 100000;
// Parses "I/N" (decimal, 0 <= I < N <= kMaxSweepShards). Throws Error (exit code 2) saying what
// to write instead.
SweepShard parse_sweep_shard(const std::string& text);
inline bool sweep_run_in_shard(int run, const SweepShard& shard) {
  return run % shard.count == shard.index;
}
// The shard's directory inside the sweep's directory: "shards/I-of-N", so that every shard of a
// sweep writes to its own place, on one shared file system or on many machines.
std::string sweep_shard_dir(const SweepShard& shard);

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

}  // namespace gradscope
