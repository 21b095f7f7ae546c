// Running a sweep: every point's config is built and validated first, then the runs go out to
// worker threads one run each (a run's own numbers do not depend on threads), each report is
// written the moment it is done, and the summary is built from the files on disk, so a resumed
// sweep and an uninterrupted one summarise the same bytes.
#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "gradscope/engine.hpp"
#include "gradscope/error.hpp"
#include "gradscope/html.hpp"
#include "gradscope/output.hpp"
#include "gradscope/report_json.hpp"
#include "gradscope/sweep.hpp"

namespace gradscope {

namespace {

namespace fs = std::filesystem;

struct Job {
  int point = 0;
  int seed_index = 0;
  RunSpec spec;
  std::string file;  // relative to the sweep directory
};

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

}  // namespace

SweepResult run_sweep(const SweepRequest& req, const SweepProgress& progress) {
  if (req.seeds < 1) throw Error("--seeds must be at least 1", "use --seeds 3 for a spread");
  const RunSpec base = load_run_spec(req.config, req.overrides);
  SweepResult result;
  result.name = req.name.empty() ? base.name + "-sweep" : req.name;
  result.config = req.config.value_or("<default>");
  result.axes = req.axes;
  result.seeds = req.seeds;

  // Every run's spec, validated before anything runs.
  const std::vector<SweepPoint> points = sweep_points(req.axes);
  std::vector<Job> jobs;
  for (const SweepPoint& point : points) {
    std::vector<ConfigOverride> overrides = req.overrides;
    Structure structure;
    for (std::size_t a = 0; a < req.axes.size(); ++a) {
      const SweepAxis& axis = req.axes[a];
      const std::string& value = point.settings[a].second;
      if (axis.key == "residual") {
        structure.residual = value == "on";
      } else if (axis.key == "norm") {
        if (value == "batch_norm") structure.norm = NormKind::kBatchNorm;
        if (value == "layer_norm") structure.norm = NormKind::kLayerNorm;
        if (value == "rms_norm") structure.norm = NormKind::kRmsNorm;
      } else {
        overrides.push_back({axis.path, value, "--vary " + axis.key + "=" + value});
      }
    }
    RunSpec spec = with_structure(load_run_spec(req.config, overrides), structure);
    for (int s = 0; s < req.seeds; ++s) {
      Job job;
      job.point = point.index;
      job.seed_index = s;
      job.spec = spec;
      job.spec.seed = spec.seed + static_cast<std::uint64_t>(s);
      job.spec.name = run_name(point.index, s);
      job.file = "runs/" + job.spec.name + ".json";
      jobs.push_back(std::move(job));
    }
  }

  const fs::path dir = fs::path(req.out_dir) / result.name;
  std::vector<char> done(jobs.size(), 0);
  if (fs::exists(dir / "runs")) {
    bool any = false;
    for (const auto& e : fs::directory_iterator(dir / "runs")) {
      if (e.path().extension() == ".json") any = true;
    }
    if (any && !req.resume) {
      throw Error("sweep directory " + (dir / "runs").string() + " already holds runs",
                  "pass --resume to continue that sweep (finished runs are kept when their "
                  "config matches), or choose another --name or --out");
    }
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      const fs::path p = dir / jobs[i].file;
      if (req.resume && fs::exists(p) && report_is_run_of(read_file(p), jobs[i].spec)) done[i] = 1;
    }
  }

  // The runs: one worker per job slot, each taking the next run not yet done.
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
        const Report report = run_diagnostic(jobs[i].spec, options);
        write_files_atomically({{dir / jobs[i].file, report_to_json(report)}});
        const int n = ++finished;
        const std::lock_guard<std::mutex> lock(mutex);
        if (progress) progress(n, total, points[static_cast<std::size_t>(jobs[i].point)].label);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  int workers = req.jobs > 0 ? req.jobs : static_cast<int>(std::thread::hardware_concurrency());
  workers = std::clamp(workers, 1, std::max(1, total));
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);

  // The summary, from the files on disk.
  result.points.resize(points.size());
  for (std::size_t p = 0; p < points.size(); ++p) result.points[p].point = points[p];
  for (const Job& job : jobs) {
    SweepRun run = sweep_run_from_report_json(read_file(dir / job.file), (dir / job.file).string());
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

}  // namespace gradscope
