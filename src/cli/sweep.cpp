// `gradscope sweep`: a config run at every combination of --vary values, or one shard of it, and
// the sweep's summary on stdout (merge.cpp prints a merged sweep the same way).
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cstdint>
#include <filesystem>
#include <limits>

#include "cli/commands.hpp"
#include "gradscope/app/progress.hpp"

namespace gradscope {

// One statement per flag, in --help's order: long because the flags are many, not because it
// branches.
CLI::App* add_sweep(CLI::App& app, SweepArgs& args) {
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "Run a config at every combination of the --vary values (and --seeds seeds per point), in "
      "parallel; write each run's report under OUT/NAME/runs/ as it finishes, then "
      "OUT/NAME/sweep.json, sweep.txt, sweep.md and gradients.svg. An interrupted sweep resumes "
      "with --resume; a second sweep into OUT/NAME while one runs is refused. A grid of more "
      "than 10,000 points needs --max-points. --shard I/N runs one slice of a sweep, for a batch "
      "system; `gradscope merge` combines the slices.");
  sweep->add_option("config", args.config, "config file (JSON); omit for the built-in default");
  sweep
      ->add_option("--vary", args.vary,
                   "KEY=V1,V2,...: a config key (any PATH, or activation, depth, width, init, "
                   "bias_init, gain, batch, seed, precision, loss, optimizer, learning_rate) or "
                   "residual=off,on or norm=none,batch_norm,layer_norm,rms_norm (each sets only "
                   "its own part; on a layers config they remove or retype its blocks and norms); "
                   "values as --set takes them, and each must change the run; repeat for more "
                   "axes (the first varies slowest)")
      ->required();
  sweep->add_option("--seeds", args.seeds, "seeds per point (seed, seed + 1, ...)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  sweep->add_option("-o,--out", args.out_dir, "directory the sweep's directory goes in")
      ->capture_default_str();
  sweep->add_option("--name", args.name, "the sweep's directory name (default: NAME-sweep)");
  sweep->add_option(
      "--memory-budget", args.memory_budget,
      "the memory one run may use (4GiB, 512M, 2GB; default: what the machine has available): the "
      "cheapest plan that fits is chosen, keeping weights and activations or drawing weights "
      "again and recomputing checkpointed segments; the numbers are the same under every plan");
  sweep
      ->add_option("--jobs", args.jobs,
                   "runs at once, 0 = one per core (results do not "
                   "depend on it)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  sweep
      ->add_option("--max-points", args.max_points,
                   "the most points the grid may have (the product of the --vary counts); a "
                   "larger grid is refused before anything is planned")
      ->check(CLI::Range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()))
      ->capture_default_str();
  sweep->add_flag("--resume", args.resume,
                  "keep the finished runs of an interrupted sweep (when their config matches) and "
                  "run the rest");
  sweep->add_option("--set", args.sets, "set any config key for every run, PATH=VALUE");
  sweep->add_option("--threshold", args.thresholds, "a diagnosis threshold, KEY=VALUE");
  sweep
      ->add_option("--format", args.format,
                   "text, json or md on stdout (every one is written to the sweep's directory); "
                   "md prints the text summary on a terminal")
      ->check(CLI::IsMember({"text", "json", "md"}))
      ->capture_default_str();
  sweep->add_option(
      "--shard", args.shard,
      "I/N: run only the I-th of N slices (0 <= I < N; run k of the sweep, numbered point by "
      "point then seed, goes to shard k mod N), into OUT/NAME/shards/I-of-N/ with a manifest and "
      "no summary; every point is still validated first. One shard per batch-system array task "
      "(Slurm: --array=0-(N-1), --shard $SLURM_ARRAY_TASK_ID/N), then `gradscope merge "
      "OUT/NAME`. --resume works per shard; --format json prints the manifest");
  sweep->add_flag("-q,--quiet", args.quiet, "print nothing on stdout (files are still written)");
  return sweep;
}

void print_sweep(const SweepResult& result, const std::string& format, bool quiet,
                 const std::string& out_dir, std::ostream& out, const CliEnvironment& env) {
  if (quiet) return;
  const Format asked = format_from_name(format);
  const Format shown = stdout_format(asked, env.stdout_is_terminal);
  out << write_document(shown, result);
  if (asked == Format::kMarkdown && shown == Format::kText) {
    fmt::print(out, "wrote {}\n",
               (std::filesystem::path(out_dir) / result.name / file_name("sweep", asked)).string());
  }
}

int do_sweep(const SweepArgs& a, std::ostream& out, std::ostream& err, const CliEnvironment& env) {
  SweepRequest request;
  request.config = a.config;
  request.overrides = overrides_from({}, a.sets, a.thresholds);
  for (const std::string& v : a.vary) request.axes.push_back(parse_sweep_axis(v));
  request.seeds = a.seeds;
  request.name = a.name;
  request.out_dir = a.out_dir;
  request.resume = a.resume;
  request.jobs = a.jobs;
  request.memory_budget_bytes = memory_budget(a.memory_budget);
  request.max_points = a.max_points;
  SweepProgress progress;
  if (env.stderr_is_terminal) {
    progress = [&err](int done, int total, const std::string& label) {
      draw_sweep_progress(err, done, total, label);
    };
  }
  if (a.shard) {
    const SweepShardResult r = run_sweep_shard(request, parse_sweep_shard(*a.shard), progress);
    if (!a.quiet) {
      if (format_from_name(a.format) == Format::kJson) {
        out << r.manifest_json;
      } else {
        const std::filesystem::path sweep_dir = std::filesystem::path(a.out_dir) / r.name;
        fmt::print(out, "gradscope sweep {}: shard {}/{} done, {} of the sweep's {} runs", r.name,
                   r.shard.index, r.shard.count, r.runs, r.runs_total);
        if (r.reused > 0) fmt::print(out, " ({} kept from an earlier try)", r.reused);
        fmt::print(out, "\n  wrote {}\n  when every shard is done: gradscope merge {}{}\n",
                   (std::filesystem::path(r.dir) / "manifest.json").string(), sweep_dir.string(),
                   a.out_dir == "reports" ? "" : " --out " + a.out_dir);
      }
    }
    return 0;
  }
  print_sweep(run_sweep(request, progress), a.format, a.quiet, a.out_dir, out, env);
  return 0;
}

}  // namespace gradscope
