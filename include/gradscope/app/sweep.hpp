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

#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/io/config.hpp"

namespace gradscope {

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
// What a sweep keeps of a run (read back with report_from_json): its summary, findings and
// per-layer values as the JSON report states them, the predicted gradients anchored on the
// measured last layer. point, seed_index and file are the caller's to set.
SweepRun sweep_run_from_report(const Report& report);

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
