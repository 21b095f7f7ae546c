// `gradscope run`: one network built, passed forward and backward, and reported; its flags, the
// files it reads (weights, batch, targets, an ONNX model) and writes, and --fail-on.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "gradscope/app/output.hpp"
#include "gradscope/app/progress.hpp"
#include "gradscope/app/time_estimate.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/suggest.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "gradscope/io/weights.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/version.hpp"
#ifdef GRADSCOPE_HAVE_ONNX
#include "gradscope/io/onnx_import.hpp"
#endif

namespace gradscope {

namespace {

// A batch or targets file by its extension.
Tensor read_batch_file(const std::string& path, const char* flag) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".npy") return read_npy(path);
  if (ext == ".csv") return read_csv(path);
  if (ext == ".safetensors") {
    // A file --save-weights wrote: its "input" batch, or its "targets" / "labels".
    const std::string want = std::string(flag) == "--input" ? "input" : "targets";
    for (Tensor& t : read_safetensors(path)) {
      if (t.name == want || (want == "targets" && t.name == "labels")) return std::move(t);
    }
    throw Error(std::string(flag) + " " + path + ": no tensor named \"" + want + "\"",
                "a file --save-weights wrote holds \"input\" and \"targets\" or \"labels\"");
  }
  throw Error(std::string(flag) + " " + path + ": unknown file type \"" + ext + "\"",
              "give a NumPy .npy file (float32 or float64), a .csv file, or a safetensors file "
              "that --save-weights wrote");
}

// What --fail-on lists: severities (that one or worse) and finding codes. A severity counts the
// root causes, as the verdict does (a consequence is not a separate alarm); a code matches a
// consequence too, since its problem is present all the same.
struct FailOn {
  std::optional<Severity> severity;
  std::vector<std::string> codes;
  bool matches(const Finding& f) const {
    if (severity && f.cause.empty() && f.severity >= *severity) return true;
    return std::find(codes.begin(), codes.end(), f.code) != codes.end();
  }
};

FailOn parse_fail_on(const std::vector<std::string>& items) {
  FailOn out;
  std::vector<std::string_view> names{"info", "warning", "error"};
  for (std::string_view code : finding_names()) names.push_back(code);
  for (const std::string& list : items) {
    std::size_t start = 0;
    while (start <= list.size()) {
      const std::size_t comma = std::min(list.find(',', start), list.size());
      const std::string item = list.substr(start, comma - start);
      start = comma + 1;
      if (item.empty()) continue;
      if (const std::optional<Severity> s = severity_from_name(item)) {
        if (!out.severity || *s < *out.severity) out.severity = s;
      } else if (finding_from_name(item)) {
        out.codes.push_back(item);
      } else {
        const std::optional<std::string> near = closest_name(item, names);
        throw Error("--fail-on: unknown severity or finding code \"" + item + "\"",
                    (near ? "did you mean \"" + *near + "\"? " : std::string()) +
                        "use info, warning or error (that severity or worse), or finding codes "
                        "such as vanishing_gradients; `gradscope list` shows every code");
      }
    }
  }
  return out;
}

// --max-time DURATION in seconds; nothing when not given.
std::optional<double> max_time(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const std::optional<double> seconds = parse_duration(text);
  if (!seconds) {
    throw Error("--max-time: \"" + text + "\" is not a duration",
                "write a duration such as 90s, 10m, 1h30m or 2d (a bare number is seconds)");
  }
  return seconds;
}

// The charts `run --svg` writes, OUT/<name>-<chart>.svg: the HTML page's, in its order.
constexpr const char* kRunCharts[] = {"gradients", "activations", "units"};

std::string human_flops(double flops) {
  if (flops >= 1e15) return fmt::format("{:.3g} PFLOP", flops / 1e15);
  if (flops >= 1e12) return fmt::format("{:.3g} TFLOP", flops / 1e12);
  return fmt::format("{:.3g} GFLOP", flops / 1e9);
}

// The time the planned run will take: refused when over --max-time, announced on stderr when
// long, and shown as a bar on a terminal. Only the machine's speed is measured, and only for a run
// that might be long; none of it reaches the report, which is the same bytes on every machine.
void check_run_time(const Report& planned, const RunArgs& a, std::optional<double> max_seconds,
                    const CliEnvironment& env, std::ostream& err,
                    std::optional<RunProgress>& progress) {
  const int cores = hardware_threads();
  const int threads = a.threads > 0 ? std::min(a.threads, cores) : cores;
  const RunWork work = estimate_run_work(planned.spec, planned.memory.plan, threads);
  const bool bar = env.stderr_is_terminal && !a.quiet;
  double due = kAnnounceSeconds;
  if (max_seconds) due = std::min(due, *max_seconds);
  if (bar) due = std::min(due, kProgressSeconds);
  const bool measured = !(env.product_flops_per_second > 0);
  if (measured && estimate_seconds(work, kSlowProductFlops) < due) return;
  const double speed =
      measured ? measure_product_speed(planned.spec.precision) : env.product_flops_per_second;
  const double seconds = estimate_seconds(work, speed);
  const std::string basis =
      fmt::format("{} at {}{:.3g} GFLOP/s a thread, {} thread{}", human_flops(work.total()),
                  measured ? "a measured " : "", speed / 1e9, threads, threads == 1 ? "" : "s");
  if (max_seconds && seconds > *max_seconds) {
    throw Error(fmt::format("run refused: estimated to take about {} ({}), more than --max-time {}",
                            format_duration(seconds), basis, a.max_time),
                std::string("reduce stack.depth, stack.width or input.batch, ") +
                    (threads < cores ? "use more --threads, " : "") +
                    "or raise --max-time; the estimate may be off by a factor of two either way");
  }
  if (seconds >= kAnnounceSeconds) {
    fmt::print(err, "gradscope: estimated time: about {} ({})\n", format_duration(seconds), basis);
  }
  if (bar && seconds >= kProgressSeconds) {
    progress.emplace(err, seconds,
                     work.critical_path > 0 ? work.before_pass / work.critical_path : 0.0);
  }
}

// The network a run builds, and what it takes from files instead of generating it.
struct RunInputs {
  RunSpec spec;
  ExternalData external;
  ExternalSources sources;
  bool has_external = false;  // weights, a batch, targets or an ONNX model
};

#ifdef GRADSCOPE_HAVE_ONNX
// The network and weights of an ONNX model. The batch, seed, loss and precision come from the
// flags over the built-in defaults. The loss is checked against the model's own output: read the
// graph once with the default loss, then validate the flags against a stand-in of its output width
// (a linear layer, since the graph's last op is part of the network the loss sees).
RunSpec onnx_spec(const RunArgs& a, const std::vector<ConfigOverride>& overrides, RunInputs& in) {
  std::vector<ConfigOverride> no_loss;
  for (const ConfigOverride& o : overrides) {
    if (o.path.rfind("loss", 0) != 0) no_loss.push_back(o);
  }
  RunSpec defaults = load_run_spec(std::nullopt, no_loss);
  const bool named = std::any_of(a.flag_values.begin(), a.flag_values.end(),
                                 [](const auto& f) { return f.first == "--name"; });
  if (!named) defaults.name = std::filesystem::path(*a.config).stem().string();
  OnnxModel model = read_onnx(*a.config, defaults);
  RunSpec spec = std::move(model.spec);
  const int outputs = op_widths(spec, expand_ops(spec)).back();
  std::vector<ConfigOverride> shaped = overrides;
  shaped.push_back({"stack.depth", "1", *a.config});
  shaped.push_back({"stack.width", std::to_string(outputs), *a.config});
  shaped.push_back({"stack.activation", "linear", *a.config});
  spec.loss = load_run_spec(std::nullopt, shaped).loss;
  in.external.weight = std::move(model.weights.weight);
  in.external.bias = std::move(model.weights.bias);
  in.sources.weights_file = *a.config;
  in.sources.assignments = std::move(model.assignments);
  return spec;
}
#endif

// The spec from the config (or ONNX model) and the flags, and the weights, batch and targets
// files read and checked against it. A batch file sets input.batch and input.width, which are
// added to `overrides`.
RunInputs resolve_inputs(const RunArgs& a, std::vector<ConfigOverride>& overrides) {
  if (a.check_advice && !a.weights.empty()) {
    throw Error("--check-advice with --weights is not supported yet",
                "advice may change the architecture the weights were made for; check advice on "
                "the config alone");
  }
  // Real data: the input file sets the batch and the input width.
  std::optional<Tensor> input_tensor;
  if (!a.input.empty()) {
    input_tensor = read_batch_file(a.input, "--input");
    // [batch, width], or [batch, tokens, width] for a sequence model: the tokens stay the
    // config's, so a file of another length is an error that names both (batch_matrix).
    const std::size_t rank = input_tensor->shape.size();
    if (rank == 2 || rank == 3) {
      overrides.push_back({"input.batch", std::to_string(input_tensor->shape[0]), "--input"});
      overrides.push_back(
          {"input.width", std::to_string(input_tensor->shape[rank - 1]), "--input"});
    }
  }
  const bool onnx = a.config && std::filesystem::path(*a.config).extension() == ".onnx";
  if (onnx && (!a.weights.empty() || a.check_advice)) {
    throw Error(*a.config + ": an ONNX model brings its own weights and architecture",
                "drop --weights and --check-advice for ONNX models");
  }
  RunInputs in;
  in.spec = onnx ? RunSpec{} : load_run_spec(a.config, overrides);
  if (onnx) {
#ifdef GRADSCOPE_HAVE_ONNX
    in.spec = onnx_spec(a, overrides, in);
#else
    throw Error(*a.config + ": this gradscope was built without ONNX support",
                "install Debian's libonnx-dev and libprotobuf-dev and rebuild");
#endif
  }
  const RunSpec& spec = in.spec;
  if (!a.weights.empty()) {
    WeightMapping mapping = map_weights(spec, read_safetensors(a.weights), a.weights);
    in.external.weight = std::move(mapping.data.weight);
    in.external.bias = std::move(mapping.data.bias);
    in.sources.weights_file = a.weights;
    in.sources.assignments = std::move(mapping.assignments);
    in.sources.ignored = std::move(mapping.ignored);
  }
  if (input_tensor) {
    in.external.input = batch_matrix(*input_tensor, spec.input.width, a.input, spec.input.tokens);
    in.sources.input_file = a.input;
  }
  if (!a.targets.empty()) {
    const int outputs = op_widths(spec, expand_ops(spec)).back();
    in.external.targets =
        targets_from_tensor(read_batch_file(a.targets, "--targets"), spec, outputs, a.targets);
    in.sources.targets_file = a.targets;
  }
  in.has_external = onnx || !a.weights.empty() || input_tensor || !a.targets.empty();
  return in;
}

// The reports a run writes, OUT/<name> plus the format's extension: the JSON and the text always,
// and the Markdown report or the HTML page when --format asks for one.
std::vector<Format> report_formats(Format asked) {
  std::vector<Format> formats{Format::kJson, Format::kText};
  if (asked == Format::kMarkdown || asked == Format::kHtml) formats.push_back(asked);
  return formats;
}

// The run itself, with its time estimate and progress bar, and with --check-advice the advice's
// runs, each about as long as the first: announced and limited with it.
Report run_report(const RunArgs& a, RunInputs& in, std::optional<double> max_seconds,
                  const CliEnvironment& env, std::ostream& err, RunData& saved) {
  RunOptions options;
  options.threads = a.threads;
  options.memory_limit_bytes = memory_budget(a.memory_budget);
  if (in.has_external) options.external = &in.external;
  if (!a.save_weights.empty()) options.save = &saved;
  std::optional<RunProgress> progress;
  options.on_planned = [&](const Report& planned) {
    check_run_time(planned, a, max_seconds, env, err, progress);
  };
  options.on_progress = [&](double done) {
    if (progress) progress->update(done);
  };
  Report report = run_diagnostic(in.spec, options);
  progress.reset();
  if (in.has_external) report.sources = in.sources;
  if (a.check_advice) {
    RunOptions again = options;
    again.on_planned = nullptr;
    again.on_progress = nullptr;
    // Each advice's edits are applied to the run's own spec (its config and flags, read once).
    check_advice(report, [&](const RunSpec& advised) { return run_diagnostic(advised, again); });
  }
  return report;
}

// One line on stderr per finding --fail-on lists, and the exit code: kFindings when there is one.
int report_fail_on(const Report& report, const FailOn& fail_on, const std::string& out_dir,
                   std::ostream& err) {
  int failed = 0;
  for (const Finding& f : report.findings) {
    if (!fail_on.matches(f)) continue;
    ++failed;
    std::string where = f.layer > 0 ? fmt::format("at layer {}", f.layer) : "in the whole network";
    std::string evidence;
    if (!f.evidence.empty()) {
      const Evidence& e = f.evidence.front();
      evidence = fmt::format(": {} = {:.4g}", e.quantity, e.value);
      if (!e.relation.empty()) evidence += fmt::format(" {} {:.4g}", e.relation, e.threshold);
    }
    const std::string root =
        f.cause.empty() ? std::string() : " (a consequence of " + f.cause + ")";
    fmt::print(err, "gradscope: {} {} {}{}{}\n", severity_name(f.severity), f.code, where, evidence,
               root);
  }
  if (failed > 0) {
    fmt::print(err, "gradscope: {} finding{} listed in --fail-on; reports in {}\n", failed,
               failed == 1 ? "" : "s", out_dir);
    return static_cast<int>(ExitCode::kFindings);
  }
  return 0;
}

// What a run writes, in the order check_writable saw the paths: the reports in `formats`, the
// charts with --svg, and the weights with --save-weights.
std::vector<std::pair<std::filesystem::path, std::string>> run_files(
    const RunArgs& a, const RunSpec& spec, const std::vector<Format>& formats, const Report& report,
    const RunData& saved) {
  const std::filesystem::path dir(a.out_dir);
  std::vector<std::pair<std::filesystem::path, std::string>> files;
  for (Format f : formats) {
    files.emplace_back(dir / file_name(spec.name, f),
                       write_document(f, report, TextOptions{false, a.max_rows}));
  }
  if (a.svg) {
    // The charts of the HTML page, each on its own.
    const std::vector<std::pair<std::string, const Report*>> runs{{spec.name, &report}};
    const std::string charts[] = {gradient_plot_svg(runs, true), activation_histogram_svg(report),
                                  unit_fraction_plot_svg(runs)};
    static_assert(std::size(charts) == std::size(kRunCharts));
    for (std::size_t i = 0; i < std::size(kRunCharts); ++i) {
      files.emplace_back(dir / (spec.name + "-" + kRunCharts[i] + ".svg"), charts[i]);
    }
  }
  if (!a.save_weights.empty()) {
    files.emplace_back(
        a.save_weights,
        safetensors_bytes(
            run_data_tensors(spec, saved),
            spec.precision == Precision::kFloat32 ? DType::kF32 : DType::kF64,
            {{"gradscope_config", run_spec_to_json(spec)}, {"gradscope_version", kVersion}}));
  }
  return files;
}

}  // namespace

// One statement per flag, in --help's order: long because run has many flags, not because it
// branches.
CLI::App* add_run(CLI::App& app, RunArgs& args) {
  // What CLI11 parses the named flags into, one string each; the callback, which runs once the
  // command line is parsed, keeps the ones given, and keeps the strings alive with the app.
  const std::span<const KeyFlag> flags = key_flags();
  auto text = std::make_shared<std::vector<std::string>>(flags.size());
  CLI::App* run = app.add_subcommand(
      "run",
      "Build the network a config describes, pass a batch forward and a probe backward, and report "
      "per-layer statistics and a diagnosis: findings with evidence and advice, and a verdict "
      "(stdout, and OUT/<name>.json and OUT/<name>.txt). Flags override the config file; without "
      "a file the built-in default is used.");
  run->add_option("config", args.config,
                  "config file (JSON), or an ONNX model (.onnx: architecture and weights; the "
                  "flags set batch, seed, loss, precision); omit for the built-in default");
  run->add_option("-o,--out", args.out_dir, "directory for <name>.json and <name>.txt")
      ->capture_default_str();
  for (std::size_t i = 0; i < flags.size(); ++i) {
    run->add_option(flags[i].flag, (*text)[i],
                    std::string(flags[i].help) + " [config: " + flags[i].path + "]");
  }
  run->add_option("--set", args.sets,
                  "set any config key, PATH=VALUE (VALUE is JSON or a bare string), e.g. "
                  "--set stack.init.gain=0.5 or --set layers[1].repeat=48; applied after the named "
                  "flags, in order");
  run->add_option(
      "--memory-budget", args.memory_budget,
      "the memory one run may use (4GiB, 512M, 2GB; default: what the machine has available): the "
      "cheapest plan that fits is chosen, keeping weights and activations or drawing weights "
      "again and recomputing checkpointed segments; the numbers are the same under every plan");
  run->add_option("--threads", args.threads,
                  "worker threads, 0 = one per core (results do not depend on it)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  run->add_option("--format", args.format,
                  "text, json, md or html: md also writes OUT/<name>.md, a Markdown report for a "
                  "pull request, and html OUT/<name>.html, one self-contained page with the plots. "
                  "stdout gets that format when piped; on a terminal, md and html print the text "
                  "report and the file's name")
      ->check(CLI::IsMember({"text", "json", "md", "html"}))
      ->capture_default_str();
  run->add_flag("--svg", args.svg,
                "also write the HTML page's charts, OUT/<name>-gradients.svg, -activations.svg "
                "and -units.svg");
  run->add_option("--max-time", args.max_time,
                  "refuse (exit 2) before running when the run is estimated to take longer, e.g. "
                  "90s, 10m, 1h30m. The estimate, from the run's flops and this machine's measured "
                  "speed, is printed on stderr before any run longer than 5 s");
  run->add_option("--fail-on", args.fail_on,
                  "exit with code 3 when a finding is present whose severity is listed (info, "
                  "warning, error: that one or worse) or whose code is listed; comma-separated, "
                  "e.g. --fail-on error,dead_units. One line per finding on stderr")
      ->delimiter(',');
  run->add_option(
      "--weights", args.weights,
      "take the weights from a safetensors file (as torch's save_file(model.state_dict()) "
      "writes it), in the state_dict's order, instead of generating them");
  run->add_option("--input", args.input,
                  "take the input batch from a .npy (float32/float64, shape [batch, width], or "
                  "[batch, tokens, width] for a sequence model) or .csv file; it sets input.batch "
                  "and input.width");
  run->add_option("--targets", args.targets,
                  "targets for the loss from a .npy or .csv file: (batch, outputs) for mse and "
                  "sigmoid_bce, (batch) class indices for softmax_cross_entropy");
  run->add_option("--save-weights", args.save_weights,
                  "write the run's exact weights, input and probe/targets to this safetensors file "
                  "(names ops.K.weight, ops.K.bias, input, probe/targets/labels; the config in its "
                  "metadata), to reproduce the report in PyTorch (scripts/torch_crosscheck.py)");
  run->add_flag("--check-advice", args.check_advice,
                "re-run the network with each advice applied, report its effect, and drop advice "
                "that does not help");
  run->add_option("--threshold", args.thresholds,
                  "set a diagnosis threshold, KEY=VALUE, e.g. --threshold dead_fraction=0.5 (same "
                  "as --set diagnosis.KEY=VALUE; docs/diagnosis.md lists the keys and defaults)");
  run->add_option("--max-rows", args.max_rows, "text report: elide the middle of deeper stacks")
      ->check(CLI::Range(4, 1000000))
      ->capture_default_str();
  run->add_flag("-q,--quiet", args.quiet, "print nothing on stdout (files are still written)");
  run->callback([run, text, flags, &args] {
    for (std::size_t i = 0; i < flags.size(); ++i) {
      if (run->count(flags[i].flag) > 0) args.flag_values.emplace_back(flags[i].flag, (*text)[i]);
    }
  });
  return run;
}

int do_run(const RunArgs& a, std::ostream& out, std::ostream& err, const CliEnvironment& env) {
  const FailOn fail_on = parse_fail_on(a.fail_on);
  const std::optional<double> max_seconds = max_time(a.max_time);
  std::vector<ConfigOverride> overrides = overrides_from(a.flag_values, a.sets, a.thresholds);
  RunInputs in = resolve_inputs(a, overrides);
  const RunSpec& spec = in.spec;
  // Every file the run will write, checked before anything is computed: an unwritable --out
  // then costs nothing, however long the run would have been.
  const Format format = format_from_name(a.format);
  const std::vector<Format> formats = report_formats(format);
  const std::filesystem::path dir(a.out_dir);
  std::vector<std::filesystem::path> paths;
  // Files beside the JSON and text reports, named on a terminal after the report.
  std::vector<std::filesystem::path> extra;
  for (Format f : formats) {
    (f == Format::kJson || f == Format::kText ? paths : extra)
        .push_back(dir / file_name(spec.name, f));
  }
  if (a.svg) {
    for (const char* chart : kRunCharts) extra.push_back(dir / (spec.name + "-" + chart + ".svg"));
  }
  paths.insert(paths.end(), extra.begin(), extra.end());
  if (!a.save_weights.empty()) paths.emplace_back(a.save_weights);
  // A report written over a file the run reads would lose it: a config whose name is its file's
  // stem, run with --out its own directory, would be replaced by its JSON report.
  const std::pair<const char*, std::string> read_files[] = {{"config", a.config.value_or("")},
                                                            {"--weights file", a.weights},
                                                            {"--input file", a.input},
                                                            {"--targets file", a.targets}};
  for (const auto& [what, file] : read_files) {
    std::error_code ec;
    if (file.empty() || !std::filesystem::exists(file, ec)) continue;
    for (const std::filesystem::path& p : paths) {
      if (std::filesystem::exists(p, ec) && std::filesystem::equivalent(p, file, ec)) {
        throw Error(p.string() + ": the run would write its report over the " + what + " it reads",
                    "give --out another directory, or the run another name (--set name=NAME)");
      }
    }
  }
  check_writable(paths);
  // ...and they must fit on its disk: a full disk is refused now, not after the run.
  check_disk_space(dir,
                   estimate_report_file_bytes(spec, {.markdown = format == Format::kMarkdown,
                                                     .html = format == Format::kHtml,
                                                     .svg = a.svg,
                                                     .max_rows = a.max_rows,
                                                     .save_weights = !a.save_weights.empty()}));

  RunData saved;
  const Report report = run_report(a, in, max_seconds, env, err, saved);

  const std::vector<std::pair<std::filesystem::path, std::string>> files =
      run_files(a, spec, formats, report, saved);
  // stdout: the JSON when asked for; Markdown or the HTML page when piped; on a terminal, the
  // text report (in colour unless NO_COLOR) and the files' names, not a page of markup.
  const bool terminal = env.stdout_is_terminal;
  const Format shown = stdout_format(format, terminal);
  const std::size_t shown_file =
      static_cast<std::size_t>(std::find(formats.begin(), formats.end(), shown) - formats.begin());
  const auto print_report = [&] {
    if (shown == Format::kText && terminal && !env.no_color) {
      out << write_document(Format::kText, report, TextOptions{true, a.max_rows});
    } else {
      out << files[shown_file].second;
    }
  };
  write_or_print(files, print_report, "report");
  if (!a.quiet) {
    print_report();
    if (terminal && format != Format::kJson) {
      for (const std::filesystem::path& p : extra) fmt::print(out, "wrote {}\n", p.string());
    }
  }
  return report_fail_on(report, fail_on, a.out_dir, err);
}

}  // namespace gradscope
