// A coordinate check that keeps its runs (app/coordcheck.hpp): the plan written first, each run's
// trace as it finishes, a shard's manifest last; resuming reuses the runs of the same plan, and a
// merge gathers every run of one plan from the shards' directories.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app/coordcheck_detail.hpp"
#include "gradscope/app/coordcheck.hpp"
#include "gradscope/app/output.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/coordcheck_runs_json.hpp"

namespace gradscope {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPlanFile = "coordcheck-plan.json";
constexpr const char* kManifestFile = "coordcheck-manifest.json";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(p.string() + ": cannot be read", "check the file's permissions");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A run file's name: "width-256-seed-1.json", "depth-16-seed-3.json".
bool is_run_file_name(const std::string& n) {
  return (n.rfind("width-", 0) == 0 || n.rfind("depth-", 0) == 0) && n.find("-seed-") != n.npos &&
         n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0;
}

// The ops and tensors a job's trace has, for checking a kept run's shape.
struct TraceShape {
  std::size_t steps = 0;  // rows: t = 0 .. steps
  std::size_t ops = 0;
  std::size_t tensors = 0;
};
TraceShape shape_of(const CoordCheckPlan& plan, const CoordCheckJob& job) {
  const ScaledConfig& c = job.depth ? plan.depth_configs[static_cast<std::size_t>(job.index)]
                                    : plan.width_configs[static_cast<std::size_t>(job.index)];
  return {static_cast<std::size_t>(plan.check.train.steps), expand_ops(c.spec).size(),
          c.tensors.size()};
}

// Why `run` is not the run of `job` under the plan with `digest`; empty when it is.
std::string mismatch(const CoordCheckRunFile& run, const std::string& digest,
                     const CoordCheckJob& job, const TraceShape& shape) {
  if (run.plan != digest) return "it is a run of another check (its plan digest differs)";
  if (run.depth != job.depth || run.value != job.value || run.seed != job.seed) {
    return "it holds the run of " + std::string(run.depth ? "depth " : "width ") +
           std::to_string(run.value) + ", seed " + std::to_string(run.seed + 1);
  }
  const TrainTrace& t = run.trace;
  const auto table_ok = [&](const std::vector<std::vector<double>>& table, std::size_t columns) {
    if (table.size() != shape.steps + 1) return false;
    return std::all_of(table.begin(), table.end(),
                       [&](const std::vector<double>& row) { return row.size() == columns; });
  };
  if (!table_ok(t.out_l1, shape.ops) || !table_ok(t.out_rms, shape.ops) ||
      !table_ok(t.change_l1, shape.ops) || !table_ok(t.change_rms, shape.ops) ||
      !table_ok(t.update_l1, shape.tensors) || !table_ok(t.update_rms, shape.tensors) ||
      t.loss.size() != shape.steps + 1) {
    return "its trace does not have the plan's steps, ops and tensors";
  }
  return {};
}

// The kept run of `job` in `dir`, or none with `why` (missing, unreadable, another check's).
std::optional<TrainTrace> read_run(const fs::path& dir, const CoordCheckPlan& plan,
                                   const std::string& digest, const CoordCheckJob& job,
                                   std::string* why) {
  const fs::path file = dir / job.file;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    if (why) *why = file.string() + " is missing";
    return std::nullopt;
  }
  try {
    CoordCheckRunFile run = coordcheck_run_from_json(read_text(file), file.string());
    const std::string m = mismatch(run, digest, job, shape_of(plan, job));
    if (!m.empty()) {
      if (why) *why = file.string() + ": " + m;
      return std::nullopt;
    }
    return std::move(run.trace);
  } catch (const Error& e) {
    if (why) *why = e.what();
    return std::nullopt;
  }
}

std::string shard_name(const SweepShard& s) {
  return std::to_string(s.index) + "/" + std::to_string(s.count);
}

}  // namespace

CoordCheckOutcome run_coordcheck_kept(const RunSpec& base, const CoordCheckSpec& check,
                                      const CoordCheckRunOptions& options,
                                      const CoordCheckProgress& progress) {
  const CoordCheckPlan plan = plan_coordcheck(base, check);
  const std::string plan_text = coordcheck_plan_json(plan.base, plan.check);
  const std::string digest = coordcheck_plan_digest(plan_text);
  detail::coordcheck_runs_at_once(plan, options.threads);  // refused before anything is written
  const fs::path runs_dir(options.runs_dir);
  const fs::path dir = options.shard ? runs_dir / sweep_shard_dir(*options.shard) : runs_dir;
  const std::string what =
      options.shard ? "coordcheck shard " + shard_name(*options.shard) : "coordcheck";
  const OutputLock lock(dir, what,
                        "wait for it to finish, or give this check another --out; a shard of "
                        "a check runs once at a time");

  std::error_code ec;
  const fs::path plan_file = dir / kPlanFile;
  if (fs::exists(plan_file, ec)) {
    const std::string on_disk = read_text(plan_file);
    if (on_disk != plan_text && options.resume) {
      throw Error(dir.string() +
                      " holds the runs of another check, so --resume cannot reuse them (" +
                      coordcheck_plan_difference(plan_text, on_disk) + ")",
                  "run without --resume to start this check over there, or give it another "
                  "--out");
    }
  }
  // Starting over: the runs kept from an earlier try go first, so that none is mistaken for
  // this one's; a shard's manifest goes too, as the shard is not finished until it is written
  // again.
  if (fs::is_directory(dir, ec)) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n == kManifestFile || (!options.resume && is_run_file_name(n))) {
        fs::remove(e.path(), ec);
      }
    }
  }
  write_files_atomically({{plan_file, plan_text}});

  CoordCheckOutcome outcome;
  outcome.runs_total = static_cast<int>(plan.jobs.size());
  outcome.dir = dir.string();
  std::vector<TrainTrace> traces(plan.jobs.size());
  std::vector<std::size_t> todo;
  std::vector<std::string> files;
  for (std::size_t k = 0; k < plan.jobs.size(); ++k) {
    if (options.shard && !sweep_run_in_shard(static_cast<int>(k), *options.shard)) continue;
    ++outcome.runs;
    files.push_back(plan.jobs[k].file);
    std::optional<TrainTrace> kept;
    if (options.resume) kept = read_run(dir, plan, digest, plan.jobs[k], nullptr);
    if (kept) {
      traces[k] = std::move(*kept);
      ++outcome.reused;
    } else {
      todo.push_back(k);
    }
  }
  int done = outcome.reused;
  detail::run_coordcheck_jobs(plan, todo, options.threads, [&](std::size_t k, TrainTrace t) {
    const CoordCheckJob& job = plan.jobs[k];
    write_files_atomically(
        {{dir / job.file, coordcheck_run_json({digest, job.depth, job.value, job.seed, t})}});
    traces[k] = std::move(t);
    ++done;
    if (progress) progress(done, outcome.runs, job.label());
  });
  if (options.shard) {
    CoordCheckManifest m;
    m.shard = *options.shard;
    m.plan = digest;
    m.command = options.command;
    m.tolerance = check.tolerance;
    m.fail_on = options.fail_on;
    m.runs = files;
    write_files_atomically({{dir / kManifestFile, coordcheck_manifest_json(m)}});
    return outcome;
  }
  outcome.result = coordcheck_result(plan, std::move(traces));
  return outcome;
}

void remove_coordcheck_runs(const std::string& runs_dir) {
  // Only what the unsharded check wrote: a shards/ directory beside it is the shards' (which may
  // still be running), and stays.
  std::error_code ec;
  if (!fs::is_directory(runs_dir, ec)) return;
  for (const auto& e : fs::directory_iterator(runs_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == kPlanFile || is_run_file_name(n)) fs::remove(e.path(), ec);
  }
  fs::remove(runs_dir, ec);  // only when empty
}

bool is_coordcheck_runs_dir(const std::string& d) {
  std::error_code ec;
  const fs::path dir(d);
  if (fs::exists(dir / kPlanFile, ec)) return true;
  if (!fs::is_directory(dir / "shards", ec)) return false;
  for (const auto& e : fs::directory_iterator(dir / "shards", ec)) {
    if (fs::exists(e.path() / kPlanFile, ec)) return true;
  }
  return false;
}

CoordCheckMerged merge_coordcheck(const std::vector<std::string>& dirs) {
  // Every directory holding a plan: those named, and the shards under them.
  std::vector<fs::path> found;
  std::set<fs::path> seen;
  std::error_code ec;
  const auto add = [&](const fs::path& d) {
    const fs::path c = fs::weakly_canonical(d, ec);
    if (seen.insert(ec ? d : c).second) found.push_back(d);
  };
  for (const std::string& d : dirs) {
    const fs::path dir(d);
    if (!fs::is_directory(dir, ec)) {
      throw Error(d + ": no such directory",
                  "give the runs directory a sharded coordinate check wrote "
                  "(OUT/NAME-PARAM-coordcheck-runs), or its shards' directories");
    }
    if (fs::exists(dir / kPlanFile, ec)) add(dir);
    if (fs::is_directory(dir / "shards", ec)) {
      std::vector<fs::path> subs;
      for (const auto& e : fs::directory_iterator(dir / "shards", ec)) {
        if (fs::exists(e.path() / kPlanFile, ec)) subs.push_back(e.path());
      }
      std::sort(subs.begin(), subs.end());
      for (const fs::path& s : subs) add(s);
    }
  }
  if (found.empty()) {
    throw Error("no coordinate check's runs in " + (dirs.empty() ? std::string("?") : dirs[0]),
                "give the directory `gradscope coordcheck ... --shard I/N` printed");
  }
  // One plan for all.
  const std::string plan_text = read_text(found.front() / kPlanFile);
  for (const fs::path& d : found) {
    const std::string t = read_text(d / kPlanFile);
    if (t != plan_text) {
      throw Error(d.string() + " holds the runs of another check than " + found.front().string() +
                      " (" + coordcheck_plan_difference(t, plan_text) + ")",
                  "merge the shards of one check at a time");
    }
  }
  const CoordCheckRunsPlan stored =
      coordcheck_plan_from_json(plan_text, (found.front() / kPlanFile).string());
  const std::string digest = coordcheck_plan_digest(plan_text);
  // The manifests: the finished shards, what the verdicts need, and how to run a missing shard.
  std::vector<CoordCheckManifest> manifests;
  for (const fs::path& d : found) {
    if (fs::exists(d / kManifestFile, ec)) {
      const fs::path f = d / kManifestFile;
      manifests.push_back(coordcheck_manifest_from_json(read_text(f), f.string()));
      if (manifests.back().plan != digest) {
        throw Error(f.string() + ": the manifest of another check's shard",
                    "run that shard again with this check's command");
      }
    }
  }
  if (manifests.empty()) {
    throw Error("no shard of the check in " + found.front().string() + " has finished (none has " +
                    kManifestFile + ")",
                "run the shards to the end first (`gradscope coordcheck ... --shard I/N`), or "
                "finish the check unsharded with --resume");
  }
  const CoordCheckManifest& first = manifests.front();
  for (const CoordCheckManifest& m : manifests) {
    if (m.tolerance != first.tolerance || m.fail_on != first.fail_on ||
        m.shard.count != first.shard.count) {
      throw Error("the shards were run with different --tolerance, --fail-on or shard counts",
                  "run every shard with the same flags");
    }
  }
  CoordCheckSpec check = stored.check;
  check.tolerance = first.tolerance;
  const CoordCheckPlan plan = plan_coordcheck(stored.base, check);
  if (coordcheck_plan_json(plan.base, plan.check) != plan_text) {
    throw Error(found.front().string() +
                    ": the plan was written by another gradscope, whose runs "
                    "this one would not reproduce",
                "run the shards and the merge with the same gradscope");
  }
  std::set<int> finished;
  for (const CoordCheckManifest& m : manifests) finished.insert(m.shard.index);
  std::vector<TrainTrace> traces(plan.jobs.size());
  for (std::size_t k = 0; k < plan.jobs.size(); ++k) {
    std::string why;  // a file there that is not the run (missing files say nothing)
    std::optional<TrainTrace> t;
    for (const fs::path& d : found) {
      std::string w;
      t = read_run(d, plan, digest, plan.jobs[k], &w);
      if (t) break;
      if (w.find(" is missing") == std::string::npos) why = w;
    }
    if (!t) {
      const SweepShard shard{static_cast<int>(k) % first.shard.count, first.shard.count};
      const std::string state = !why.empty() ? why
                                : finished.count(shard.index) > 0
                                    ? "shard " + shard_name(shard) + " finished, but its " +
                                          plan.jobs[k].file + " is not in the directories given"
                                    : "shard " + shard_name(shard) + " has not finished (no " +
                                          kManifestFile + " of it in the directories given)";
      throw Error("the run of " + plan.jobs[k].label() + " is missing: " + state,
                  "run shard " + shard_name(shard) + " again (its finished runs are kept): " +
                      first.command + " --shard " + shard_name(shard) + " --resume");
    }
    traces[k] = std::move(*t);
  }
  return {coordcheck_result(plan, std::move(traces)), first.fail_on};
}

}  // namespace gradscope
