// Running a sweep, whole or one shard of it: every point's config is built and validated first,
// then the runs go out to worker threads one run each (a run's own numbers do not depend on
// threads), each report is written the moment it is done, and the summary is built from the files
// on disk, so a resumed sweep, an uninterrupted one and a merge of shards summarise the same bytes.
#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "gradscope/app/output.hpp"
#include "gradscope/app/sweep.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int verdict_rank(const std::string& v) { return v == "error" ? 2 : (v == "warning" ? 1 : 0); }

std::string run_name(int point, int seed_index) {
  std::string p = std::to_string(point);
  p.insert(0, p.size() < 4 ? 4 - p.size() : 0, '0');
  return "p" + p + "-s" + std::to_string(seed_index);
}

RunSpec load_spec(const SweepRequest& req, const std::vector<ConfigOverride>& overrides) {
  if (req.config && req.config_text) {
    // What load_run_spec does with the file's content, without reading the file.
    return parse_run_spec(*req.config_text, *req.config, fs::path(*req.config).stem().string(),
                          overrides);
  }
  return load_run_spec(req.config, overrides);
}

// The request with its config file's text, read once: every point is built from the same bytes,
// and a shard records them for the merge.
SweepRequest with_config_text(const SweepRequest& request) {
  SweepRequest req = request;
  if (req.config && !req.config_text) {
    load_run_spec(req.config, req.overrides);  // the config reader's own errors, if any
    req.config_text = read_file(*req.config);
  }
  return req;
}

// Whether a report file is the run of `spec`; one that does not read as a report is not (resuming
// runs it again).
bool is_run_of(const std::string& text, const fs::path& file, const RunSpec& spec) {
  try {
    return report_is_run_of(report_from_json(text, file.string()), spec);
  } catch (const Error&) {
    return false;
  }
}

// Which of `jobs` are already finished in `dir` (resuming), or an error when the directory holds
// runs and the request does not say --resume.
std::vector<char> finished_runs(const fs::path& dir, const std::vector<const SweepJob*>& jobs,
                                bool resume) {
  std::vector<char> done(jobs.size(), 0);
  if (!fs::exists(dir / "runs")) return done;
  bool any = false;
  for (const auto& e : fs::directory_iterator(dir / "runs")) {
    if (e.path().extension() == ".json") any = true;
  }
  if (any && !resume) {
    throw Error("sweep directory " + (dir / "runs").string() + " already holds runs",
                "pass --resume to continue that sweep (finished runs are kept when their "
                "config matches), or choose another --name or --out");
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const fs::path p = dir / jobs[i]->file;
    if (resume && fs::exists(p) && is_run_of(read_file(p), p, jobs[i]->spec)) done[i] = 1;
  }
  return done;
}

// Runs the jobs not yet done, one worker per job slot each taking the next run, and writes each
// report under `dir` as it finishes.
void run_jobs(const SweepPlan& plan, const std::vector<const SweepJob*>& jobs,
              const std::vector<char>& done, const fs::path& dir, int jobs_wanted,
              std::int64_t memory_budget, const SweepProgress& progress) {
  const int total = static_cast<int>(jobs.size());
  std::atomic<int> finished{static_cast<int>(std::count(done.begin(), done.end(), 1))};
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mutex;
  if (progress) progress(finished.load(), total, "");
  const auto worker = [&] {
    for (;;) {
      if (failed.load()) return;
      const std::size_t i = next.fetch_add(1);
      if (i >= jobs.size()) return;
      if (done[i]) continue;
      try {
        RunOptions options;
        options.threads = 1;
        options.memory_limit_bytes = memory_budget;
        const Report report = run_diagnostic(jobs[i]->spec, options);
        write_files_atomically({{dir / jobs[i]->file, report_to_json(report)}});
        const int n = ++finished;
        const std::lock_guard<std::mutex> lock(mutex);
        if (progress) {
          progress(n, total, plan.points[static_cast<std::size_t>(jobs[i]->point)].label);
        }
      } catch (...) {
        const std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  int workers =
      jobs_wanted > 0 ? jobs_wanted : static_cast<int>(std::thread::hardware_concurrency());
  workers = std::clamp(workers, 1, std::max(1, total));
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    // A run that fails (a full disk, say) stops the sweep; what finished stays for --resume.
    const int kept = finished.load();
    if (kept == 0) throw;
    throw Error(e.what(),
                e.hint() + (e.hint().empty() ? "" : "; ") +
                    "then run the same command with --resume: the " + std::to_string(kept) +
                    " finished run" + (kept == 1 ? " is" : "s are") + " kept",
                e.code());
  }
}

// A point's config: the request's with the point's --vary values, all but axis `skip` when given.
RunSpec point_spec(const SweepRequest& req, const SweepPoint& point,
                   std::optional<std::size_t> skip = std::nullopt) {
  std::vector<ConfigOverride> overrides = req.overrides;
  Structure structure;
  for (std::size_t a = 0; a < req.axes.size(); ++a) {
    if (skip == a) continue;
    const SweepAxis& axis = req.axes[a];
    const std::string& value = point.settings[a].second;
    if (axis.key == "residual") {
      structure.residual = value == "on";
    } else if (axis.key == "norm") {
      structure.norm_given = true;
      structure.norm.reset();
      for (int k = 0; k < kNormKindCount; ++k) {
        if (value == norm_name(static_cast<NormKind>(k))) structure.norm = static_cast<NormKind>(k);
      }
    } else {
      overrides.push_back({axis.path, value, "--vary " + axis.key + "=" + value});
    }
  }
  const RunSpec spec = load_spec(req, overrides);
  if (!structure.residual && !structure.norm_given) return spec;
  // The rewritten network is checked as a config file would be (limits, widths, softmax last).
  return parse_run_spec(run_spec_to_json(with_structure(spec, structure)),
                        "the config of point \"" + point.label + "\"", spec.name);
}

// What a point runs, apart from its name: the resolved config its report records.
std::string resolved_config(RunSpec spec) {
  spec.name.clear();
  return run_spec_to_json(spec, -1);
}

std::string axis_list(const SweepAxis& axis) {
  std::string list;
  for (const std::string& v : axis.values) list += (list.empty() ? "" : ",") + v;
  return "--vary " + axis.key + "=" + list;
}

// The rule plan_sweep's comment states: every --vary value changes the run, so that no point is
// another under a second name.
void check_every_value_changes_the_run(const SweepRequest& req,
                                       const std::vector<SweepPoint>& points,
                                       const std::vector<RunSpec>& specs) {
  const auto target = [](const SweepAxis& axis) {
    return axis.path.empty() ? axis.key : axis.path;
  };
  for (std::size_t a = 0; a < req.axes.size(); ++a) {
    for (std::size_t b = 0; b < a; ++b) {
      if (target(req.axes[a]) != target(req.axes[b])) continue;
      SweepAxis both = req.axes[b];
      for (const std::string& v : req.axes[a].values) {
        if (std::find(both.values.begin(), both.values.end(), v) == both.values.end()) {
          both.values.push_back(v);
        }
      }
      throw Error("--vary " + req.axes[b].key + " and --vary " + req.axes[a].key + " both vary " +
                      target(req.axes[a]) + ": the later would override the earlier at every point",
                  "give all of its values in one --vary, e.g. " + axis_list(both));
    }
  }
  std::map<std::string, std::size_t> seen;  // resolved config -> the first point with it
  for (std::size_t q = 0; q < points.size(); ++q) {
    const auto [it, fresh] = seen.emplace(resolved_config(specs[q]), q);
    if (fresh) continue;
    const SweepPoint& p = points[it->second];
    const SweepPoint& same = points[q];
    std::vector<std::size_t> differ;
    for (std::size_t a = 0; a < req.axes.size(); ++a) {
      if (p.settings[a].second != same.settings[a].second) differ.push_back(a);
    }
    const std::string where =
        "point \"" + same.label + "\" has the same config as point \"" + p.label + "\"";
    if (differ.size() == 1) {
      const SweepAxis& axis = req.axes[differ.front()];
      const std::string& value = same.settings[differ.front()].second;
      const std::string& other = p.settings[differ.front()].second;
      const std::string remove = "remove " + value + " from " + axis_list(axis);
      throw Error("--vary " + axis.key + "=" + value + " changes nothing: " + where +
                      ", so the sweep would run one network twice under two names",
                  remove + ": there it gives what " + other +
                      " gives (the same value spelt another way, like 2 and 2.0, or a key that "
                      "a later --vary replaces)");
    }
    std::string axes;
    for (std::size_t a : differ) {
      axes += (axes.empty() ? "" : " and ") +
              ("--vary " + req.axes[a].key + "=" + same.settings[a].second);
    }
    throw Error(axes + " change nothing together: " + where,
                "these axes undo each other there: drop one of them, or change its values so "
                "that every point is a different network");
  }
  for (std::size_t a = 0; a < req.axes.size(); ++a) {
    const SweepAxis& axis = req.axes[a];
    if (axis.values.size() != 1) continue;
    for (std::size_t q = 0; q < points.size(); ++q) {
      RunSpec without;
      try {
        without = point_spec(req, points[q], a);
      } catch (const Error&) {
        continue;  // not a valid config without the value: the value changes it
      }
      if (resolved_config(without) != resolved_config(specs[q])) continue;
      throw Error("--vary " + axis.key + "=" + axis.values.front() + " changes nothing: point \"" +
                      points[q].label + "\" has the same config without it",
                  "an axis with one value must change the config: give it a value to compare "
                  "with (one equal to the config's own is then the baseline), or drop it");
    }
  }
}

// "FILE: not the run of point 2 seed 0 (activation=relu depth=2): its config differs".
// A run's report as the summary reads it, with what to do when it does not read.
Report read_run(const std::string& text, const fs::path& file) {
  try {
    return report_from_json(text, file.string());
  } catch (const Error& e) {
    throw Error(e.what(),
                "the run was interrupted while being written elsewhere, or the file was edited; "
                "delete it and run the sweep again",
                e.code());
  }
}

std::string not_the_run_of(const fs::path& file, const SweepPlan& plan, const SweepJob& job) {
  return file.string() + ": not the run of point " + std::to_string(job.point) + " seed " +
         std::to_string(job.seed_index) + " (" +
         plan.points[static_cast<std::size_t>(job.point)].label + "): its config differs";
}

std::string with_thousands(std::uint64_t n) {
  std::string digits = std::to_string(n);
  for (std::size_t i = digits.size(); i > 3; i -= 3) digits.insert(i - 3, ",");
  return digits;
}

// A grid beyond the cap is refused from the axes' sizes alone, before any point is built.
void check_grid_size(const SweepRequest& req) {
  const SweepGridSize size = sweep_grid_size(req.axes);
  if (size.count > req.max_points) {
    const bool default_cap = req.max_points == kMaxSweepPoints;
    throw Error("the grid has " + size.text + " points (" + size.product + "), more than the " +
                    with_thousands(req.max_points) +
                    (default_cap ? " a sweep runs" : " --max-points allows"),
                "narrow an axis, or pass --max-points N to confirm (each point runs --seeds "
                "times)");
  }
  // Runs are numbered with an int, point-major then seed.
  const std::uint64_t runs_max = static_cast<std::uint64_t>(std::numeric_limits<int>::max());
  if (size.count > runs_max / static_cast<std::uint64_t>(req.seeds)) {
    throw Error("the grid has " + size.text + " points (" + size.product + "), which at --seeds " +
                    std::to_string(req.seeds) + " is more runs than one sweep can number (" +
                    with_thousands(runs_max) + ")",
                "narrow an axis or use fewer seeds");
  }
}

}  // namespace

SweepPlan plan_sweep(const SweepRequest& req) {
  if (req.seeds < 1) throw Error("--seeds must be at least 1", "use --seeds 3 for a spread");
  check_grid_size(req);
  const RunSpec base = load_spec(req, req.overrides);
  SweepPlan plan;
  plan.name = req.name.empty() ? base.name + "-sweep" : req.name;
  plan.points = sweep_points(req.axes);
  std::vector<RunSpec> specs;
  for (const SweepPoint& point : plan.points) specs.push_back(point_spec(req, point));
  check_every_value_changes_the_run(req, plan.points, specs);
  for (const SweepPoint& point : plan.points) {
    const RunSpec& spec = specs[static_cast<std::size_t>(point.index)];
    for (int s = 0; s < req.seeds; ++s) {
      SweepJob job;
      job.run = static_cast<int>(plan.jobs.size());
      job.point = point.index;
      job.seed_index = s;
      job.spec = spec;
      job.spec.seed = spec.seed + static_cast<std::uint64_t>(s);
      job.spec.name = run_name(point.index, s);
      job.file = "runs/" + job.spec.name + ".json";
      plan.jobs.push_back(std::move(job));
    }
  }
  return plan;
}

SweepRun sweep_run_from_report(const Report& report) {
  SweepRun run;
  const Summary& summary = report.summary;
  run.verdict = std::string(verdict_name(report.verdict));
  run.log10_grad_ratio = summary.log10_grad_ratio_first_to_last;
  run.mean_log10_gain = summary.mean_log10_gain;
  run.dead_units = summary.dead_units;
  run.saturated_fraction = summary.saturated_fraction;
  run.nonfinite_layers = static_cast<int>(summary.nonfinite_layers.size());
  run.seed = report.spec.seed;
  for (const Finding& f : report.findings) {
    run.findings.push_back(SweepFinding{f.code, std::string(severity_name(f.severity)), f.layer});
  }
  for (const LayerReport& l : report.layers) {
    run.log10_grad.push_back(l.backward.grad_preact_rms.log10);
    run.predicted_log10_grad.push_back(l.theory.backward
                                           ? l.theory.log10_grad_rel_last
                                           : std::numeric_limits<double>::quiet_NaN());
    run.dead_fraction.push_back(l.forward.dead_fraction);
    run.saturated_fraction_per_layer.push_back(l.forward.saturated_fraction);
  }
  // The prediction is relative to the last layer: anchor it on the measured last layer.
  if (!run.log10_grad.empty()) {
    const double last = run.log10_grad.back();
    for (double& p : run.predicted_log10_grad) p += last;
  }
  return run;
}

SweepResult write_sweep_summary(const SweepRequest& req, const SweepPlan& plan) {
  const fs::path dir = fs::path(req.out_dir) / plan.name;
  SweepResult result;
  result.name = plan.name;
  result.config = req.config.value_or("<default>");
  result.axes = req.axes;
  result.seeds = req.seeds;
  result.points.resize(plan.points.size());
  for (std::size_t p = 0; p < plan.points.size(); ++p) result.points[p].point = plan.points[p];
  for (const SweepJob& job : plan.jobs) {
    const fs::path file = dir / job.file;
    const Report report = read_run(read_file(file), file);
    SweepRun run = sweep_run_from_report(report);
    // Another process writing into the same directory (a sweep of the same name before locks, a
    // copy by hand) may have put another point's run under this name.
    if (!report_is_run_of(report, job.spec)) {
      throw Error(not_the_run_of(file, plan, job),
                  "another sweep's run, or another point's, was written under its name: run the "
                  "sweep again with --resume (it runs that point again), or remove " +
                      file.string());
    }
    run.point = job.point;
    run.seed_index = job.seed_index;
    run.file = job.file;
    result.points[static_cast<std::size_t>(job.point)].runs.push_back(std::move(run));
  }
  for (SweepPointSummary& p : result.points) {
    double sum = 0.0;
    p.ratio_min = std::numeric_limits<double>::infinity();
    p.ratio_max = -std::numeric_limits<double>::infinity();
    p.worst_verdict = "healthy";
    for (const SweepRun& run : p.runs) {
      sum += run.log10_grad_ratio;
      p.ratio_min = std::min(p.ratio_min, run.log10_grad_ratio);
      p.ratio_max = std::max(p.ratio_max, run.log10_grad_ratio);
      if (verdict_rank(run.verdict) > verdict_rank(p.worst_verdict)) p.worst_verdict = run.verdict;
    }
    p.ratio_mean = sum / static_cast<double>(std::max<std::size_t>(p.runs.size(), 1));
  }
  write_files_atomically({{dir / "sweep.json", sweep_to_json(result)},
                          {dir / "sweep.txt", sweep_to_text(result)},
                          {dir / "sweep.md", sweep_to_markdown(result)},
                          {dir / "gradients.svg", sweep_gradient_svg(result)},
                          {dir / "sweep.html", sweep_to_html(result)}});
  return result;
}

SweepResult run_sweep(const SweepRequest& request, const SweepProgress& progress) {
  const SweepRequest req = with_config_text(request);
  const SweepPlan plan = plan_sweep(req);
  const fs::path dir = fs::path(req.out_dir) / plan.name;
  std::vector<const SweepJob*> jobs;
  for (const SweepJob& job : plan.jobs) jobs.push_back(&job);
  // The runs' reports and the summary go there: checked before the first run.
  check_writable({dir / plan.jobs.front().file, dir / "sweep.json"});
  // One writer in OUT/NAME at a time, and nothing left there by a killed one.
  const OutputLock lock(dir, "sweep", "wait for it, or choose another --out or --name");
  remove_stale_temps(dir);
  remove_stale_temps(dir / "runs");
  run_jobs(plan, jobs, finished_runs(dir, jobs, req.resume), dir, req.jobs, req.memory_budget_bytes,
           progress);
  return write_sweep_summary(req, plan);
}

SweepShardResult run_sweep_shard(const SweepRequest& request, const SweepShard& shard,
                                 const SweepProgress& progress) {
  if (shard.count < 1 || shard.count > kMaxSweepShards || shard.index < 0 ||
      shard.index >= shard.count) {
    throw Error("shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) +
                    ": the index must be from 0 to N-1",
                "shards are numbered from 0: --shard 0/N to --shard N-1/N");
  }
  // Every point is validated in every shard, so a bad axis fails each array task at once.
  const SweepRequest req = with_config_text(request);
  const SweepPlan plan = plan_sweep(req);
  const fs::path dir = fs::path(req.out_dir) / plan.name / sweep_shard_dir(shard);
  std::vector<const SweepJob*> jobs;
  for (const SweepJob& job : plan.jobs) {
    if (sweep_run_in_shard(job.run, shard)) jobs.push_back(&job);
  }
  std::vector<fs::path> targets{dir / "manifest.json"};
  if (!jobs.empty()) targets.push_back(dir / jobs.front()->file);
  check_writable(targets);
  // The shard's own directory only: the other shards write beside it at the same time.
  const OutputLock lock(
      dir, "sweep shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count),
      "wait for it: each shard runs once at a time (the other shards of the "
      "sweep may run meanwhile)");
  remove_stale_temps(dir);
  remove_stale_temps(dir / "runs");
  const std::vector<char> done = finished_runs(dir, jobs, req.resume);
  // A manifest means a finished shard: an earlier one goes before anything runs, so that an
  // interrupted retry is not taken for finished.
  std::error_code ignored;
  fs::remove(dir / "manifest.json", ignored);
  run_jobs(plan, jobs, done, dir, req.jobs, req.memory_budget_bytes, progress);

  SweepManifest manifest;
  manifest.version = kVersion;
  manifest.name = plan.name;
  manifest.config = req.config;
  manifest.config_text = req.config_text;
  manifest.overrides = req.overrides;
  manifest.axes = req.axes;
  manifest.seeds = req.seeds;
  manifest.runs_total = static_cast<int>(plan.jobs.size());
  manifest.shard = shard;
  manifest.out_dir = req.out_dir;
  for (const SweepJob* job : jobs) {
    manifest.runs.push_back({job->run, job->point, job->seed_index, job->file});
  }
  SweepShardResult result;
  result.name = plan.name;
  result.shard = shard;
  result.dir = dir.string();
  result.runs_total = manifest.runs_total;
  result.runs = static_cast<int>(jobs.size());
  result.reused = static_cast<int>(std::count(done.begin(), done.end(), 1));
  result.manifest_json = sweep_manifest_to_json(manifest);
  write_files_atomically({{dir / "manifest.json", result.manifest_json}});
  return result;
}

}  // namespace gradscope
