// A sweep's JSON both ways: its summary, a shard's manifest, and whether a run's report is the
// run of its config.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/io/config.hpp"

namespace gradscope {

// Whether a report (read back with report_from_json) is the run of `spec`: its resolved config is
// the spec's. --resume reuses a report on disk then, and runs it again otherwise.
bool report_is_run_of(const Report& report, const RunSpec& spec);
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

}  // namespace gradscope
