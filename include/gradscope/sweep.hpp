// Sweeps: one config run at every combination of a few varied keys (and several seeds per point),
// in parallel, each run's report kept on disk so that an interrupted sweep resumes where it
// stopped; then one summary of every point, as JSON, text, Markdown and plots. A sweep also runs
// as N shards (on a batch system's array tasks) that `merge` combines into the very same summary.
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

// ---- The JSON layer (sweep_json.cpp)

// Reads back what a sweep keeps of a run from its report JSON. Throws Error naming `source`.
SweepRun sweep_run_from_report_json(const std::string& text, const std::string& source);
// Whether a report on disk is the run of `spec` (its "config" section equals the spec's resolved
// config): --resume reuses it then, and runs it again otherwise.
bool report_is_run_of(const std::string& report_json, const RunSpec& spec);
std::string sweep_to_json(const SweepResult& result);

// What a shard writes beside its runs (OUT/NAME/shards/I-of-N/manifest.json) once all of them are
// done: the resolved request, enough to check that shards belong together and to rebuild every
// run's config without the config file, and the runs it owns.
struct SweepManifestRun {
  int run = 0;  // the run's number in the whole sweep
  int point = 0;
  int seed_index = 0;
  std::string file;  // relative to the shard's directory, as in the sweep's: runs/pNNNN-sS.json
};
struct SweepManifest {
  std::string version;                     // the gradscope that wrote it
  std::string name;                        // the sweep's name
  std::optional<std::string> config;       // the config file as given; none: the built-in default
  std::optional<std::string> config_text;  // its content when read from a file
  std::vector<ConfigOverride> overrides;   // --set and --threshold, in order
  std::vector<SweepAxis> axes;
  int seeds = 1;
  int runs_total = 0;  // runs in the whole sweep
  SweepShard shard;
  std::string out_dir;  // where the shard was written (only to print commands in hints)
  std::vector<SweepManifestRun> runs;
};
std::string sweep_manifest_to_json(const SweepManifest& manifest);
// Throws Error naming `source` and the JSON path of what is missing or malformed.
SweepManifest sweep_manifest_from_json(const std::string& text, const std::string& source);

// ---- The text layer (sweep_text.cpp)

std::string sweep_to_text(const SweepResult& result);
std::string sweep_to_markdown(const SweepResult& result);
// Gradient rms per layer, one line per point (the mean over seeds, with the seeds' range as a
// band), theory dashed beside it for the first seed.
std::string sweep_gradient_svg(const SweepResult& result);

// ---- The CLI layer (sweep_run.cpp)

struct SweepRequest {
  std::optional<std::string> config;  // none: the built-in default
  // The config's content; none: read from the file `config` (a merge rebuilds the runs' configs
  // from the text the shards recorded, so the file need not exist where the merge runs).
  std::optional<std::string> config_text;
  std::vector<ConfigOverride> overrides;
  std::vector<SweepAxis> axes;
  int seeds = 1;
  std::string name;  // the sweep's directory under `out_dir`; default: the config's name
  std::string out_dir = "reports";
  bool resume = false;  // reuse finished runs on disk (their config must match)
  int jobs = 0;         // runs at once; 0: one per core
  // The memory each run may use (RunOptions::memory_limit_bytes); it picks a run's memory plan,
  // which changes no statistic.
  std::int64_t memory_budget_bytes = 0;
  // The most points the grid may have (--max-points); plan_sweep refuses a larger one first.
  std::uint64_t max_points = kMaxSweepPoints;
};

// Progress: (runs done, runs in all, label of the run just finished).
using SweepProgress = std::function<void(int, int, const std::string&)>;

// Runs every point and seed (skipping finished ones when resuming), writes each run's report as
// it finishes, then the summary files (sweep.json, .txt, .md, .html, gradients.svg); returns the
// summary. Throws Error before running anything when an axis or a point's config is invalid, when
// the directory holds another sweep's runs and --resume is not given, or when another live
// process writes OUT/NAME (the sweep holds an OutputLock on it while it runs: a second sweep of
// the same name is refused, naming the first one's pid; a killed sweep's lock is taken over).
SweepResult run_sweep(const SweepRequest& request, const SweepProgress& progress);

// One run of a sweep, its config resolved and validated.
struct SweepJob {
  int run = 0;  // its number: point-major, then seed
  int point = 0;
  int seed_index = 0;
  RunSpec spec;
  std::string file;  // "runs/p0003-s1.json", relative to the sweep's (or the shard's) directory
};
struct SweepPlan {
  std::string name;  // the request's name, or the config's name + "-sweep"
  std::vector<SweepPoint> points;
  std::vector<SweepJob> jobs;  // every run of the sweep, in run order
};
// Builds and validates every point's config. Throws Error before anything runs when the request,
// an axis or a point's config is invalid, when the grid has more than request.max_points points
// (checked first, from the axes' sizes alone), or when a --vary value changes nothing. The rule,
// with a point's config compared as its report records it (the resolved config, name aside):
//  - no two points of the grid have the same config, so two values of one axis differ at every
//    point (a value equal to the config's own is fine: it is the baseline the others vary from);
//  - an axis with one value changes the config at every point (else it only relabels the run);
//  - a key is varied by one --vary only (a second would override the first at every point).
// The error names the axis and the value, and says what to remove.
SweepPlan plan_sweep(const SweepRequest& request);
// Reads every run of `plan` back from OUT/NAME/runs/ (OUT: request.out_dir, NAME: plan.name) and
// writes the summary files beside them: sweep.json, .txt, .md, .html and gradients.svg. Both a
// sweep and a merge of its shards end here, which is why their summaries are the same bytes.
// Throws Error naming the file and the point when a run file is not the run of its point (another
// sweep's, written into the same directory), and writes no summary then.
SweepResult write_sweep_summary(const SweepRequest& request, const SweepPlan& plan);

// What one shard did.
struct SweepShardResult {
  std::string name;  // the sweep's
  SweepShard shard;
  std::string dir;  // the shard's directory: OUT/NAME/shards/I-of-N
  int runs_total = 0;
  int runs = 0;    // the shard's
  int reused = 0;  // of those, kept from an earlier try (--resume)
  std::string manifest_json;
};
// Validates every point (like run_sweep), runs the shard's slice of the runs into its directory
// (resuming like run_sweep), and writes its manifest last, so that a manifest means a finished
// shard. Writes no summary: `merge` does. A shard with no runs writes a manifest listing none.
// The shard holds an OutputLock on its own directory only, so the shards of a sweep run at once
// (on one machine or many sharing a file system), and one shard run twice at once is refused.
SweepShardResult run_sweep_shard(const SweepRequest& request, const SweepShard& shard,
                                 const SweepProgress& progress);

struct SweepMergeRequest {
  // Shard directories (OUT/NAME/shards/I-of-N), or sweep directories whose shards/ holds them.
  std::vector<std::string> dirs;
  std::string out_dir = "reports";
  std::string name;  // default: the shards' sweep name
};
// Checks that the shards describe one sweep, that each shard 0..N-1 is there once, and that every
// run is present, parses and is the run of its config; copies the runs to OUT/NAME/runs/ and
// writes the summary exactly as the unsharded sweep would, holding OUT/NAME's OutputLock as a
// sweep does. Throws Error naming the directory or file and what is missing or inconsistent, with
// the command that repairs it.
SweepResult merge_sweep_shards(const SweepMergeRequest& request);

}  // namespace gradscope
