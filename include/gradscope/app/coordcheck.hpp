// `gradscope coordcheck`: the config at every width (and depth) of the check, under its
// parametrization, trained a few steps over several seeds; the sizes gathered into rows, each
// row's slope fitted and judged against the band the parametrization should give. A check is many
// small runs: each finished run can be kept on disk so that an interrupted check resumes, and the
// runs can be split into shards (one per batch-system array task) that `gradscope merge` combines
// into the very result the unsharded check gives.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/core/coordcheck.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/engine/train.hpp"

namespace gradscope {

// Progress: (runs done, runs in all, "width 256, seed 2").
using CoordCheckProgress = std::function<void(int, int, const std::string&)>;

// One run of a check: one config (a width of the width check, or a depth of the depth check)
// trained under one seed.
struct CoordCheckJob {
  bool depth = false;  // a run of the depth check (at the base width), else of the width check
  int index = 0;       // into the plan's widths (or depths)
  int value = 0;       // the width (or depth)
  int seed = 0;        // 0-based: the config's seed + seed
  std::string file;    // where a kept run goes: "width-256-seed-1.json" (seed 1-based)
  std::string label() const;  // "width 256, seed 2"
};

// A check resolved before anything runs: every config built and validated, the runs in order
// (every width's seeds, then every depth's).
struct CoordCheckPlan {
  RunSpec base;
  CoordCheckSpec check;  // widths and depths sorted, each value once
  int base_width = 0;    // resolved: the check's, else the config's
  int base_depth = 0;
  int width_depth = 1;                      // the depth the width check runs at
  std::vector<ScaledConfig> width_configs;  // per width, seed 0's
  std::vector<ScaledConfig> depth_configs;  // per depth, at the base width
  std::vector<CoordCheckJob> jobs;
  // Memory the largest run needs: its network as `run` holds it, Adam's two moments, the weight
  // gradients in double, and every op's output at init and now in double.
  std::int64_t largest_run_bytes = 0;
};

// Throws gradscope::Error (exit code 2) when the check is malformed: fewer than two distinct
// widths (or depths), a width or depth below 1, --depths on a config with no repeated block,
// widths the attention heads do not divide, no seeds or steps.
CoordCheckPlan plan_coordcheck(const RunSpec& base, const CoordCheckSpec& check);

// One run, on `pool` (its result does not depend on the pool's threads).
TrainTrace run_coordcheck_job(const CoordCheckPlan& plan, const CoordCheckJob& job,
                              ThreadPool& pool);

// The rows, fits, verdicts and worst rows from every job's trace, in the plan's job order.
CoordCheckResult coordcheck_result(const CoordCheckPlan& plan, std::vector<TrainTrace> traces);

// Runs the check in memory (nothing kept on disk). The width check runs at the config's depth,
// the depth check at the base width. Throws as plan_coordcheck does, and when the largest run
// does not fit the memory the machine has available.
CoordCheckResult run_coordcheck(const RunSpec& base, const CoordCheckSpec& check, int threads,
                                const CoordCheckProgress& progress = nullptr);

// ---- Keeping runs on disk: resume, shards, merge

// A check that keeps its runs. In `runs_dir` (OUT/NAME-PARAM-coordcheck-runs) it writes
// coordcheck-plan.json first (the resolved config and the check: what a run must match to be
// reused), then each run's trace as it finishes (width-256-seed-1.json, written whole or not at
// all). A shard writes into runs_dir/shards/I-of-N/ instead, and coordcheck-manifest.json there
// last, so that a manifest means a finished shard.
struct CoordCheckRunOptions {
  int threads = 0;  // 0: one per core
  std::string runs_dir;
  bool resume = false;  // reuse the runs on disk whose plan is this check's
  std::optional<SweepShard> shard;
  // The check's command line without --shard and --resume: the shards' manifests record it, so
  // that a merge missing a shard prints the command that runs it.
  std::string command;
  std::string fail_on;  // recorded in a shard's manifest, for the merge's exit code
};

struct CoordCheckOutcome {
  std::optional<CoordCheckResult> result;  // none for a shard: `merge` makes it
  int runs_total = 0;                      // runs in the whole check
  int runs = 0;                            // this invocation's (a shard's slice)
  int reused = 0;                          // of those, kept from an earlier try
  std::string dir;                         // where the runs went
};

// Plans the check, then runs every job of it (or of the shard) that is not on disk already
// (--resume), each kept as it finishes. Unsharded, it returns the result; the caller removes
// runs_dir once the result is written (remove_coordcheck_runs). Throws Error before running when
// runs_dir holds another check's runs and resume is set (naming what differs), when another live
// gradscope writes the same directory, or as run_coordcheck does.
CoordCheckOutcome run_coordcheck_kept(const RunSpec& base, const CoordCheckSpec& check,
                                      const CoordCheckRunOptions& options,
                                      const CoordCheckProgress& progress = nullptr);

// Removes a finished check's runs directory (its plan, runs and the shards/ it holds).
void remove_coordcheck_runs(const std::string& runs_dir);

// Whether `dir` holds a coordinate check's kept runs: a shard directory, or a runs directory
// (with a plan, or with shards/).
bool is_coordcheck_runs_dir(const std::string& dir);

struct CoordCheckMerged {
  CoordCheckResult result;
  std::string fail_on;  // the shards' --fail-on ("" when none asked for it)
};
// Gathers every run of one check from `dirs` (shard directories, or runs directories whose
// shards/ holds them, e.g. copied from several machines) and computes the result exactly as the
// unsharded check does. Throws Error naming the directory or file when the plans differ, a run
// file is not a run of the plan, or a run is missing (with the command that runs its shard).
CoordCheckMerged merge_coordcheck(const std::vector<std::string>& dirs);

}  // namespace gradscope
