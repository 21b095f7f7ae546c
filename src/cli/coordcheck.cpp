// `gradscope coordcheck`: a config at several widths (and depths) under a parametrization, trained
// a few steps; the rows, their slopes and verdicts as text, JSON and Markdown, and the charts.
#include "gradscope/app/coordcheck.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <malloc.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "gradscope/app/output.hpp"
#include "gradscope/core/coordcheck.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/suggest.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/coordcheck_json.hpp"
#include "gradscope/report/coordcheck_svg.hpp"
#include "gradscope/report/coordcheck_text.hpp"

namespace gradscope {

namespace {

// "64,128,256" as sizes; the flag's name in every error.
std::vector<int> parse_sizes(const std::string& text, const char* flag) {
  std::vector<int> out;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t end = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, end - begin);
    int v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || v < 1) {
      throw Error(std::string(flag) + ": \"" + item + "\" is not a positive whole number",
                  std::string("give sizes separated by commas, e.g. ") + flag + " 64,128,256,512");
    }
    out.push_back(v);
    begin = end + 1;
  }
  return out;
}

// The training: the flags, else the config's optimizer (sgd when it names none).
TrainSpec train_spec(const CoordCheckArgs& a, const RunSpec& spec) {
  TrainSpec t;
  t.steps = a.steps;
  const OptimizerSpec& o = spec.optimizer;
  if (o.kind == OptimizerKind::kAdam) {
    t.optimizer = TrainOptimizer::kAdam;
    t.learning_rate = o.learning_rate;
    t.beta1 = o.beta1;
    t.beta2 = o.beta2;
    t.eps = o.eps;
  } else if (o.kind == OptimizerKind::kSgd) {
    t.optimizer = TrainOptimizer::kSgd;
    t.learning_rate = o.learning_rate;
    t.momentum = o.momentum;
  }
  if (!a.optimizer.empty()) {
    const std::optional<TrainOptimizer> kind = train_optimizer_from_name(a.optimizer);
    if (!kind) {
      throw Error("--optimizer: unknown optimizer \"" + a.optimizer + "\"",
                  "choose sgd, adam or adamw");
    }
    t.optimizer = *kind;
  }
  if (a.lr) t.learning_rate = *a.lr;
  if (a.momentum) t.momentum = *a.momentum;
  if (a.weight_decay) t.weight_decay = *a.weight_decay;
  if (!(t.learning_rate > 0.0)) {
    throw Error("--lr: the learning rate must be positive", "e.g. --lr 0.01");
  }
  return t;
}

}  // namespace

// One statement per flag, in --help's order.
CLI::App* add_coordcheck(CLI::App& app, CoordCheckArgs& args) {
  CLI::App* cc = app.add_subcommand(
      "coordcheck",
      "Coordinate check: the config at every --widths value (every hidden width scaled together; "
      "the config's own width is the base) and --depths value, under a parametrization (sp, mup, "
      "depth_mup, completep), trained --steps steps on one batch over --seeds seeds. Per layer "
      "and step: the size of its output, of its change since init and of each weight's update; "
      "the slope of each against width (and depth) on log-log axes, judged FLAT, GROWS or SHRINKS "
      "against what the parametrization should give. Writes OUT/NAME-coordcheck.json, .txt, .md "
      "and charts; --fail-on makes a failed check exit 3. Finished runs are kept in "
      "OUT/NAME-PARAM-coordcheck-runs until the result is written, so --resume continues an "
      "interrupted check; --shard splits it for a batch system.");
  cc->add_option("config", args.config, "config file (JSON); omit for the built-in default");
  cc->add_option("--widths", args.widths, "model widths, e.g. 64,128,256,512,1024")->required();
  cc->add_option("--depths", args.depths,
                 "depths (the repeated block's count, or stack.depth), e.g. 4,8,16,32");
  cc->add_option("--steps", args.steps, "optimizer steps after init")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cc->add_option("--seeds", args.seeds, "seeds per width (seed, seed + 1, ...)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cc->add_option("--param", args.param,
                 "parametrization: sp (the config as written), mup, depth_mup, completep")
      ->capture_default_str();
  cc->add_option("--optimizer", args.optimizer,
                 "sgd, adam or adamw (default: the config's optimizer, else sgd)");
  cc->add_option("--lr", args.lr, "the base learning rate (default: the config's, else 0.1)");
  cc->add_option("--momentum", args.momentum, "sgd's momentum (default: the config's, else 0)");
  cc->add_option("--weight-decay", args.weight_decay, "adamw's decoupled weight decay");
  cc->add_option("--base-width", args.base_width,
                 "the width where every multiplier is 1 (default: the config's)")
      ->check(CLI::Range(1, 1 << 24));
  cc->add_option("--base-depth", args.base_depth,
                 "the depth where every multiplier is 1 (default: the config's)")
      ->check(CLI::Range(1, 1 << 24));
  cc->add_option("--tolerance", args.tolerance,
                 "a slope within the expected band +- this (or twice the seeds' spread) is FLAT")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  cc->add_option("--set", args.sets, "PATH=VALUE: override a config key (repeatable)");
  cc->add_option("-o,--out", args.out_dir, "directory for the files")->capture_default_str();
  cc->add_option("--format", args.format, "what stdout gets when piped: text, md or json")
      ->check(CLI::IsMember({"text", "md", "json"}))
      ->capture_default_str();
  cc->add_option("--fail-on", args.fail_on,
                 "exit 3 when a row is outside its band: any, grows or shrinks")
      ->check(CLI::IsMember({"any", "grows", "shrinks"}));
  cc->add_flag("-q,--quiet", args.quiet, "print nothing on stdout");
  cc->add_flag("--resume", args.resume,
               "keep the finished runs of an interrupted check (OUT/NAME-PARAM-coordcheck-runs, "
               "when they are runs of the same config and flags) and run the rest");
  cc->add_option(
      "--shard", args.shard,
      "I/N: run only the I-th of N slices of the runs (run k, numbered width by width then "
      "seed, then the depths, goes to shard k mod N) into OUT/NAME-PARAM-coordcheck-runs/"
      "shards/I-of-N/, and no result; `gradscope merge` of that directory then writes the "
      "result, the same bytes as the unsharded check. Slurm: --array=0-(N-1), --shard "
      "$SLURM_ARRAY_TASK_ID/N. --resume works per shard");
  cc->add_option("--threads", args.threads,
                 "threads, 0 = one per core (results do not depend on it)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  return cc;
}

namespace {

// The files a check writes into `out_dir`: NAME-PARAM-coordcheck.json, .txt, .md, a size chart
// per step, a change chart per step after init, and the depth chart.
std::vector<std::filesystem::path> output_paths(const std::string& name, const std::string& param,
                                                int steps, bool depth, const std::string& out_dir) {
  const std::filesystem::path dir(out_dir);
  const std::string stem = name + "-" + param + "-coordcheck";
  std::vector<std::filesystem::path> paths = {dir / (stem + ".json"), dir / (stem + ".txt"),
                                              dir / (stem + ".md")};
  for (int t = 0; t <= steps; ++t) {
    paths.push_back(dir / (stem + "-size-step" + std::to_string(t) + ".svg"));
    if (t > 0) paths.push_back(dir / (stem + "-change-step" + std::to_string(t) + ".svg"));
  }
  if (depth) paths.push_back(dir / (stem + "-depth.svg"));
  return paths;
}

std::vector<std::filesystem::path> output_paths(const CoordCheckResult& r,
                                                const std::string& out_dir) {
  return output_paths(r.name, std::string(parametrization_name(r.spec.parametrization)),
                      r.spec.train.steps, !r.spec.depths.empty(), out_dir);
}

// Writes the result's files (all or none), prints it, and returns the exit code --fail-on asks
// for.
int write_and_print(const CoordCheckResult& r, const std::string& out_dir,
                    const std::string& format, bool quiet, const std::string& fail_on,
                    std::ostream& out, const CliEnvironment& env) {
  const std::vector<std::filesystem::path> paths = output_paths(r, out_dir);
  const std::string text = coordcheck_text(r);
  const std::string markdown = coordcheck_markdown(r);
  const std::string json = coordcheck_json_text(r);
  std::vector<std::pair<std::filesystem::path, std::string>> files = {
      {paths[0], json}, {paths[1], text}, {paths[2], markdown}};
  std::size_t k = 3;
  for (int t = 0; t <= r.spec.train.steps; ++t) {
    files.emplace_back(paths[k++], coordcheck_width_chart_svg(r, t));
    if (t > 0) files.emplace_back(paths[k++], coordcheck_change_chart_svg(r, t));
  }
  if (!r.spec.depths.empty()) files.emplace_back(paths[k++], coordcheck_depth_chart_svg(r));
  const std::string& shown = format == "json" ? json : format == "md" ? markdown : text;
  write_or_print(
      files, [&] { out << shown; }, "coordinate check");
  if (!quiet) out << (env.stdout_is_terminal ? text : shown);

  bool failed = false;
  if (!fail_on.empty()) {
    auto listed = [&](SlopeVerdict v) {
      return (v == SlopeVerdict::kGrows && fail_on != "shrinks") ||
             (v == SlopeVerdict::kShrinks && fail_on != "grows");
    };
    for (const CoordRow& row : r.rows) failed = failed || listed(row.verdict);
    for (const DepthRow& row : r.depth_rows) failed = failed || listed(row.verdict);
  }
  return failed ? static_cast<int>(ExitCode::kFindings) : 0;
}

// The check's command line as a shard records it (for the merge's hints): every flag that
// decides the runs, their verdicts and where they go; not --shard, --resume or how it prints.
std::string check_command(const CoordCheckArgs& a) {
  std::string c = "gradscope coordcheck";
  if (a.config) c += " " + shell_word(*a.config);
  c += " --widths " + shell_word(a.widths);
  if (!a.depths.empty()) c += " --depths " + shell_word(a.depths);
  c += " --steps " + std::to_string(a.steps) + " --seeds " + std::to_string(a.seeds);
  c += " --param " + shell_word(a.param);
  if (!a.optimizer.empty()) c += " --optimizer " + shell_word(a.optimizer);
  const auto number = [](double v) { return shell_word(fmt::format("{}", v)); };
  if (a.lr) c += " --lr " + number(*a.lr);
  if (a.momentum) c += " --momentum " + number(*a.momentum);
  if (a.weight_decay) c += " --weight-decay " + number(*a.weight_decay);
  if (a.base_width > 0) c += " --base-width " + std::to_string(a.base_width);
  if (a.base_depth > 0) c += " --base-depth " + std::to_string(a.base_depth);
  if (a.tolerance != 0.1) c += " --tolerance " + number(a.tolerance);
  for (const std::string& s : a.sets) c += " --set " + shell_word(s);
  if (!a.fail_on.empty()) c += " --fail-on " + a.fail_on;
  if (a.out_dir != "reports") c += " --out " + shell_word(a.out_dir);
  return c;
}

}  // namespace

int do_coordcheck(const CoordCheckArgs& a, std::ostream& out, std::ostream& err,
                  const CliEnvironment& env) {
  const RunSpec spec = load_run_spec(a.config, overrides_from({}, a.sets, {}));
  CoordCheckSpec check;
  check.widths = parse_sizes(a.widths, "--widths");
  if (!a.depths.empty()) check.depths = parse_sizes(a.depths, "--depths");
  check.seeds = a.seeds;
  const std::optional<Parametrization> param = parametrization_from_name(a.param);
  if (!param) {
    const std::optional<std::string> near =
        closest_name(a.param, {"sp", "mup", "depth_mup", "completep"});
    throw Error("--param: unknown parametrization \"" + a.param + "\"",
                (near ? "did you mean \"" + *near + "\"? " : std::string()) +
                    "choose sp, mup, depth_mup or completep");
  }
  check.parametrization = *param;
  check.base_width = a.base_width;
  check.base_depth = a.base_depth;
  check.tolerance = a.tolerance;
  check.train = train_spec(a, spec);

  // Where the files go, checked before the runs: the results (not a shard's: the merge writes
  // them), and the runs kept on the way, in OUT/NAME-PARAM-coordcheck-runs.
  const std::filesystem::path runs_dir =
      std::filesystem::path(a.out_dir) / (spec.name + "-" + a.param + "-coordcheck-runs");
  CoordCheckRunOptions options;
  options.threads = a.threads;
  options.runs_dir = runs_dir.string();
  options.resume = a.resume;
  if (a.shard) options.shard = parse_sweep_shard(*a.shard);
  options.command = check_command(a);
  options.fail_on = a.fail_on;
  std::vector<std::filesystem::path> paths =
      options.shard
          ? std::vector<std::filesystem::path>{}
          : output_paths(spec.name, a.param, check.train.steps, !check.depths.empty(), a.out_dir);
  paths.push_back(runs_dir / "coordcheck-plan.json");
  check_writable(paths);

  // A check runs many passes over the same shapes: freed buffers stay in the heap for the next
  // pass instead of going back to the kernel and faulting in again (glibc gives blocks past
  // 32 MiB back at once by default).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  const bool progress = env.stderr_is_terminal && !a.quiet;
  const CoordCheckOutcome outcome =
      run_coordcheck_kept(spec, check, options, [&](int done, int total, const std::string& what) {
        if (progress) err << "\rcoordcheck: " << done << "/" << total << " (" << what << ")   ";
      });
  if (progress) err << "\n";
  if (outcome.reused > 0 && !a.quiet) {
    fmt::print(err, "coordcheck: {} of the {} runs kept from an earlier try\n", outcome.reused,
               outcome.runs);
  }
  if (!outcome.result) {
    if (!a.quiet) {
      const SweepShard& s = *options.shard;
      fmt::print(out, "gradscope coordcheck {}: shard {}/{} done, {} of the check's {} runs",
                 spec.name, s.index, s.count, outcome.runs, outcome.runs_total);
      if (outcome.reused > 0) fmt::print(out, " ({} kept from an earlier try)", outcome.reused);
      fmt::print(out, "\n  wrote {}\n  when every shard is done: gradscope merge {}{}\n",
                 (std::filesystem::path(outcome.dir) / "coordcheck-manifest.json").string(),
                 shell_word(runs_dir.string()),
                 a.out_dir == "reports" ? "" : " --out " + shell_word(a.out_dir));
    }
    return 0;
  }
  const int code =
      write_and_print(*outcome.result, a.out_dir, a.format, a.quiet, a.fail_on, out, env);
  // The results hold everything the runs did: the kept runs have served their purpose.
  remove_coordcheck_runs(runs_dir.string());
  return code;
}

int do_coordcheck_merge(const MergeArgs& a, const std::vector<std::string>& dirs, std::ostream& out,
                        const CliEnvironment& env) {
  const CoordCheckMerged merged = merge_coordcheck(dirs);
  check_writable(output_paths(merged.result, a.out_dir));
  return write_and_print(merged.result, a.out_dir, a.format, a.quiet, merged.fail_on, out, env);
}

}  // namespace gradscope
