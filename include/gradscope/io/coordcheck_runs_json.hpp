// The files a coordinate check keeps while it runs (resume, shards, merge), as JSON:
//  - the plan, coordcheck-plan.json: what decides every run's numbers (the resolved config and
//    the check's widths, depths, seeds, parametrization, base sizes, optimizer and steps);
//  - one file per finished run: its trace, and the plan's digest so that a run of another check
//    is never taken for one of this check;
//  - a shard's manifest, written last: the shard, its runs, and what the merge needs besides the
//    numbers (the tolerance, --fail-on, and the command that runs a missing shard).
// Every number is written so that reading it gives back the same double: finite values as JSON
// numbers (shortest round-trip form), and "nan", "inf", "-inf" as strings.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/coordcheck.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/engine/train.hpp"

namespace gradscope {

// The part of a check that decides the runs' numbers (the tolerance does not: it is the
// manifest's).
struct CoordCheckRunsPlan {
  RunSpec base;
  CoordCheckSpec check;
};
// {"kind": "coordcheck_plan", "schema_version", "tool" {name, version}, "config" {the resolved
// config}, "check" {widths, depths, seeds, parametrization, base_width, base_depth, optimizer
// {name, learning_rate, momentum, beta1, beta2, eps, weight_decay}, steps}}.
std::string coordcheck_plan_json(const RunSpec& base, const CoordCheckSpec& check);
// Throws Error naming `source` and the JSON path of what is missing or malformed.
CoordCheckRunsPlan coordcheck_plan_from_json(const std::string& text, const std::string& source);
// Where two plans first differ: "check.widths: [64, 256] here, [64, 128] in the other", or
// "config.activation: ..." (a JSON path, and each side's value); empty when they are the same.
// Text that does not parse as JSON differs at "the file" itself.
std::string coordcheck_plan_difference(const std::string& here, const std::string& other);
// The plan's digest: FNV-1a 64 of its text, as 16 hex digits.
std::string coordcheck_plan_digest(const std::string& plan_text);

// One finished run.
struct CoordCheckRunFile {
  std::string plan;    // the plan's digest
  bool depth = false;  // a run of the depth check
  int value = 0;       // its width (or depth)
  int seed = 0;        // 0-based
  TrainTrace trace;
};
// {"kind": "coordcheck_run", "schema_version", "plan", "axis": "width"|"depth", "value", "seed"
// (1-based), "trace" {out_l1, out_rms, change_l1, change_rms, update_l1, update_rms: [step][i],
// loss: [step]}}.
std::string coordcheck_run_json(const CoordCheckRunFile& run);
// Throws Error naming `source` and the JSON path.
CoordCheckRunFile coordcheck_run_from_json(const std::string& text, const std::string& source);

// A finished shard.
struct CoordCheckManifest {
  std::string version;  // the gradscope that wrote it
  SweepShard shard;
  std::string plan;     // the plan's digest
  std::string command;  // the check's command line without --shard and --resume
  double tolerance = 0.1;
  std::string fail_on;            // "", "any", "grows", "shrinks"
  std::vector<std::string> runs;  // its run files, relative to the shard's directory
};
std::string coordcheck_manifest_json(const CoordCheckManifest& manifest);
CoordCheckManifest coordcheck_manifest_from_json(const std::string& text,
                                                 const std::string& source);

}  // namespace gradscope
