// The command line: `gradscope run`, `gradscope list`, `--help` on each, `--version`. Flags become
// config overrides, so one validator checks a file, the defaults and the flags alike.
#include "gradscope/cli/cli.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>

#include "gradscope/app/lesson.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/compare.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/report/compare_text.hpp"
#include "gradscope/report/html.hpp"
#ifdef GRADSCOPE_HAVE_ONNX
#include "gradscope/io/onnx_import.hpp"
#endif
#include "gradscope/app/output.hpp"
#include "gradscope/app/progress.hpp"
#include "gradscope/app/sweep.hpp"
#include "gradscope/app/time_estimate.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/suggest.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "gradscope/io/theory_json.hpp"
#include "gradscope/io/weights.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/report/report_md.hpp"
#include "gradscope/report/report_text.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "gradscope/report/theory_text.hpp"
#include "gradscope/theory/theory_report.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

// Writes a finished result's files all or nothing. If that fails, the work is done: the result
// goes to stdout rather than nowhere (-q or not), and the error says so.
void write_or_print(const std::vector<std::pair<std::filesystem::path, std::string>>& files,
                    const std::function<void()>& print, std::string_view what) {
  try {
    write_files_atomically(files);
  } catch (const Error& e) {
    print();
    throw Error(fmt::format("{}; the {} is printed on stdout instead", e.what(), what), e.hint());
  }
}

constexpr const char* kExitCodes =
    "Exit codes: 0 success; 1 internal error (a bug: please report it); 2 usage or config error,\n"
    "refused run (memory, --max-time) or unwritable output (a finished run's report is then\n"
    "printed on stdout); 3 a finding listed in --fail-on is present (the reports are written all\n"
    "the same), or `compare --fail-on-regression` found a regression. Interrupted (Ctrl-C,\n"
    "SIGTERM), gradscope ends with the signal's status (130, 143) and leaves no temporary file.";

struct RunArgs {
  std::optional<std::string> config;
  std::string out_dir = "reports";
  std::string format = "text";
  bool quiet = false;
  int threads = 0;
  std::string memory_budget;  // --memory-budget SIZE; empty: the machine's available memory
  int max_rows = 40;
  // Flags that map onto config keys; empty when not given.
  std::vector<std::pair<std::string, std::string>> flag_values;  // (flag, value)
  std::vector<std::string> sets;
  std::vector<std::string> thresholds;  // --threshold KEY=VALUE: --set diagnosis.KEY=VALUE
  std::vector<std::string> fail_on;
  bool check_advice = false;
  std::string weights;       // --weights FILE.safetensors
  std::string input;         // --input FILE.npy|.csv
  std::string targets;       // --targets FILE.npy|.csv
  std::string save_weights;  // --save-weights FILE.safetensors
  bool svg = false;          // --svg: the HTML page's charts as OUT/<name>-*.svg
  std::string max_time;      // --max-time DURATION; empty: no limit
};

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

// A flag that sets one config key. `quote`: the value is always a string (so --name 123 is the
// name "123", not a number).
struct KeyFlag {
  const char* flag;
  const char* path;
  const char* help;
  bool quote;
};

constexpr KeyFlag kKeyFlags[] = {
    {"--name", "name", "report name (default: the config's name, its file stem, or 'default')",
     true},
    {"--seed", "seed", "random seed (non-negative integer)", false},
    {"--precision", "precision", "float32 or float64", true},
    {"--loss", "loss",
     "what the backward pass starts from: probe (a random direction, the default), mse, "
     "sigmoid_bce or softmax_cross_entropy",
     false},
    {"--depth", "stack.depth", "number of hidden layers", false},
    {"--width", "stack.width", "units per hidden layer", false},
    {"--activation", "stack.activation",
     "hidden activation, e.g. relu, gelu, sigmoid (see `gradscope list`)", false},
    {"--init", "stack.init", "weight init, e.g. he_normal, xavier_normal, orthogonal", false},
    {"--bias-init", "stack.bias_init", "bias init: zeros, constant, normal, torch_default", false},
    {"--batch", "input.batch", "examples in the batch", false},
    {"--input-width", "input.width", "width of the input (default: the stack's width)", false},
    {"--jacobian", "stats.jacobian_examples",
     "singular values of the input-output Jacobian at N examples (costs 2 n_0 sum n_l n_(l-1) "
     "flops each; refused above 2e11)",
     false},
    {"--saturation-threshold", "stats.saturation_threshold",
     "saturated when |phi'| < this fraction of the activation's largest slope", false},
};

std::string json_quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

void print_error(std::ostream& err, const std::string& what, const std::string& hint) {
  fmt::print(err, "gradscope: error: {}\n", what);
  if (!hint.empty()) fmt::print(err, "  hint: {}\n", hint);
}

std::vector<ConfigOverride> overrides_from(const RunArgs& a) {
  for (const std::string& t : a.thresholds) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("--threshold " + t + ": expected KEY=VALUE",
                  "for example --threshold gradient_warning_decades=3; the README's diagnosis "
                  "section lists the keys");
    }
  }
  std::vector<ConfigOverride> out;
  for (const auto& [flag, value] : a.flag_values) {
    for (const KeyFlag& k : kKeyFlags) {
      if (flag == k.flag) out.push_back({k.path, k.quote ? json_quote(value) : value, flag});
    }
  }
  for (const std::string& s : a.sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("--set " + s + ": expected PATH=VALUE",
                  "for example --set stack.init.gain=0.5 or --set input.distribution=uniform");
    }
    out.push_back({s.substr(0, eq), s.substr(eq + 1), "--set " + s.substr(0, eq)});
  }
  for (const std::string& t : a.thresholds) {
    const auto eq = t.find('=');
    out.push_back(
        {"diagnosis." + t.substr(0, eq), t.substr(eq + 1), "--threshold " + t.substr(0, eq)});
  }
  return out;
}

// --memory-budget SIZE in bytes; 0 (the machine's available memory) when not given.
std::int64_t memory_budget(const std::string& text) {
  if (text.empty()) return 0;
  const std::optional<std::int64_t> bytes = parse_byte_size(text);
  if (!bytes) {
    throw Error("--memory-budget: \"" + text + "\" is not a size",
                "write a size such as 4GiB, 512M or 2GB (K, M, G, T and KiB .. TiB are powers of "
                "1024; KB, MB, GB, TB powers of 1000)");
  }
  return *bytes;
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

int do_run(const RunArgs& a, std::ostream& out, std::ostream& err, const CliEnvironment& env) {
  const FailOn fail_on = parse_fail_on(a.fail_on);
  const std::optional<double> max_seconds = max_time(a.max_time);
  std::vector<ConfigOverride> overrides = overrides_from(a);
  if (a.check_advice && !a.weights.empty()) {
    throw Error("--check-advice with --weights is not supported yet",
                "advice may change the architecture the weights were made for; check advice on "
                "the config alone");
  }
  // Real data: the input file sets the batch and the input width.
  std::optional<Tensor> input_tensor;
  if (!a.input.empty()) {
    input_tensor = read_batch_file(a.input, "--input");
    if (input_tensor->shape.size() == 2) {
      overrides.push_back({"input.batch", std::to_string(input_tensor->shape[0]), "--input"});
      overrides.push_back({"input.width", std::to_string(input_tensor->shape[1]), "--input"});
    }
  }
  const bool onnx = a.config && std::filesystem::path(*a.config).extension() == ".onnx";
  if (onnx && (!a.weights.empty() || a.check_advice)) {
    throw Error(*a.config + ": an ONNX model brings its own weights and architecture",
                "drop --weights and --check-advice for ONNX models");
  }
  ExternalData external;
  ExternalSources sources;
  RunSpec spec = onnx ? RunSpec{} : load_run_spec(a.config, overrides);
  if (onnx) {
#ifdef GRADSCOPE_HAVE_ONNX
    // The batch, seed, loss and precision come from the flags over the built-in defaults. The
    // loss is checked against the model's own output: read the graph once with the default loss,
    // then validate the flags against a stand-in of its output width (a linear layer, since
    // the graph's last op is part of the network the loss sees).
    std::vector<ConfigOverride> no_loss;
    for (const ConfigOverride& o : overrides) {
      if (o.path.rfind("loss", 0) != 0) no_loss.push_back(o);
    }
    RunSpec defaults = load_run_spec(std::nullopt, no_loss);
    const bool named = std::any_of(a.flag_values.begin(), a.flag_values.end(),
                                   [](const auto& f) { return f.first == "--name"; });
    if (!named) defaults.name = std::filesystem::path(*a.config).stem().string();
    OnnxModel model = read_onnx(*a.config, defaults);
    spec = std::move(model.spec);
    const int outputs = op_widths(spec, expand_ops(spec)).back();
    std::vector<ConfigOverride> shaped = overrides;
    shaped.push_back({"stack.depth", "1", *a.config});
    shaped.push_back({"stack.width", std::to_string(outputs), *a.config});
    shaped.push_back({"stack.activation", "linear", *a.config});
    spec.loss = load_run_spec(std::nullopt, shaped).loss;
    external.weight = std::move(model.weights.weight);
    external.bias = std::move(model.weights.bias);
    sources.weights_file = *a.config;
    sources.assignments = std::move(model.assignments);
#else
    throw Error(*a.config + ": this gradscope was built without ONNX support",
                "install Debian's libonnx-dev and libprotobuf-dev and rebuild");
#endif
  }
  if (!a.weights.empty()) {
    WeightMapping mapping = map_weights(spec, read_safetensors(a.weights), a.weights);
    external.weight = std::move(mapping.data.weight);
    external.bias = std::move(mapping.data.bias);
    sources.weights_file = a.weights;
    sources.assignments = std::move(mapping.assignments);
    sources.ignored = std::move(mapping.ignored);
  }
  if (input_tensor) {
    external.input = batch_matrix(*input_tensor, spec.input.width, a.input);
    sources.input_file = a.input;
  }
  if (!a.targets.empty()) {
    const int outputs = op_widths(spec, expand_ops(spec)).back();
    external.targets =
        targets_from_tensor(read_batch_file(a.targets, "--targets"), spec, outputs, a.targets);
    sources.targets_file = a.targets;
  }
  // Every file the run will write, checked before anything is computed: an unwritable --out
  // then costs nothing, however long the run would have been.
  const std::filesystem::path dir(a.out_dir);
  const std::filesystem::path json_path = dir / (spec.name + ".json");
  const std::filesystem::path text_path = dir / (spec.name + ".txt");
  // Files beside the JSON and text reports, named on a terminal after the report.
  std::vector<std::filesystem::path> extra;
  if (a.format == "md") extra.push_back(dir / (spec.name + ".md"));
  if (a.format == "html") extra.push_back(dir / (spec.name + ".html"));
  if (a.svg) {
    for (const char* chart : kRunCharts) extra.push_back(dir / (spec.name + "-" + chart + ".svg"));
  }
  std::vector<std::filesystem::path> paths{json_path, text_path};
  paths.insert(paths.end(), extra.begin(), extra.end());
  if (!a.save_weights.empty()) paths.emplace_back(a.save_weights);
  check_writable(paths);
  // ...and they must fit on its disk: a full disk is refused now, not after the run.
  check_disk_space(dir,
                   estimate_report_file_bytes(spec, {.markdown = a.format == "md",
                                                     .html = a.format == "html",
                                                     .svg = a.svg,
                                                     .max_rows = a.max_rows,
                                                     .save_weights = !a.save_weights.empty()}));

  RunOptions options;
  options.threads = a.threads;
  options.memory_limit_bytes = memory_budget(a.memory_budget);
  const bool has_external = onnx || !a.weights.empty() || input_tensor || !a.targets.empty();
  if (has_external) options.external = &external;
  RunData saved;
  if (!a.save_weights.empty()) options.save = &saved;
  std::optional<RunProgress> progress;
  options.on_planned = [&](const Report& planned) {
    check_run_time(planned, a, max_seconds, env, err, progress);
  };
  options.on_progress = [&](double done) {
    if (progress) progress->update(done);
  };
  Report report = run_diagnostic(spec, options);
  progress.reset();
  if (has_external) report.sources = sources;
  if (a.check_advice) {
    // The advice's runs are each about as long as the first: announced and limited with it.
    RunOptions again = options;
    again.on_planned = nullptr;
    again.on_progress = nullptr;
    // Each advice's edits are applied to the run's own spec (its config and flags, read once).
    check_advice(report, [&](const RunSpec& advised) { return run_diagnostic(advised, again); });
  }

  const std::string json = report_to_json(report);
  const std::string text = report_to_text(report, TextOptions{false, a.max_rows});
  std::vector<std::pair<std::filesystem::path, std::string>> files{{json_path, json},
                                                                   {text_path, text}};
  std::string markdown;
  if (a.format == "md") {
    markdown = report_to_markdown(report);
    files.emplace_back(dir / (spec.name + ".md"), markdown);
  }
  std::string html;
  if (a.format == "html") {
    html = report_to_html(report);
    files.emplace_back(dir / (spec.name + ".html"), html);
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
  // stdout: the JSON when asked for; Markdown or the HTML page when piped (into a file, a pull
  // request's comment); on a terminal, the text report and the files' names, not a page of markup.
  const bool terminal = env.stdout_is_terminal;
  const auto print_report = [&] {
    if (a.format == "json") {
      out << json;
    } else if (a.format == "md" && !terminal) {
      out << markdown;
    } else if (a.format == "html" && !terminal) {
      out << html;
    } else {
      out << (terminal && !env.no_color ? report_to_text(report, TextOptions{true, a.max_rows})
                                        : text);
    }
  };
  write_or_print(files, print_report, "report");
  if (!a.quiet) {
    print_report();
    if (terminal && a.format != "json") {
      for (const std::filesystem::path& p : extra) fmt::print(out, "wrote {}\n", p.string());
    }
  }

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
               failed == 1 ? "" : "s", a.out_dir);
    return static_cast<int>(ExitCode::kFindings);
  }
  return 0;
}

struct SweepArgs {
  std::optional<std::string> config;
  std::string out_dir = "reports";
  std::string name;
  std::string format = "text";
  std::vector<std::string> vary;
  std::vector<std::string> sets;
  std::vector<std::string> thresholds;
  int seeds = 1;
  int jobs = 0;
  std::string memory_budget;
  bool resume = false;
  bool quiet = false;
  std::optional<std::string> shard;  // "I/N"
  std::uint64_t max_points = kMaxSweepPoints;
};

// As `run` prints: Markdown when piped, the text summary and the file's name on a terminal.
void print_sweep(const SweepResult& result, const std::string& format, bool quiet,
                 const std::string& out_dir, std::ostream& out, const CliEnvironment& env) {
  if (quiet) return;
  if (format == "json") {
    out << sweep_to_json(result);
  } else if (format == "md" && !env.stdout_is_terminal) {
    out << sweep_to_markdown(result);
  } else {
    out << sweep_to_text(result);
    if (format == "md") {
      fmt::print(out, "wrote {}\n",
                 (std::filesystem::path(out_dir) / result.name / "sweep.md").string());
    }
  }
}

int do_sweep(const SweepArgs& a, std::ostream& out, std::ostream& err, const CliEnvironment& env) {
  RunArgs as_run;
  as_run.sets = a.sets;
  as_run.thresholds = a.thresholds;
  SweepRequest request;
  request.config = a.config;
  request.overrides = overrides_from(as_run);
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
      if (a.format == "json") {
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

struct MergeArgs {
  std::vector<std::string> dirs;
  std::string out_dir = "reports";
  std::string name;
  std::string format = "text";
  bool quiet = false;
};

int do_merge(const MergeArgs& a, std::ostream& out, const CliEnvironment& env) {
  SweepMergeRequest request;
  // Without a directory, the shards are looked for where the merge writes: the --out the shards
  // were run with.
  request.dirs = a.dirs.empty() ? std::vector<std::string>{a.out_dir} : a.dirs;
  request.out_dir = a.out_dir;
  request.name = a.name;
  print_sweep(merge_sweep_shards(request), a.format, a.quiet, a.out_dir, out, env);
  return 0;
}

struct CompareArgs {
  std::string base;
  std::string proposed;
  std::string out_dir = "reports";
  std::string name;
  std::string format = "text";
  bool fail_on_regression = false;
  bool quiet = false;
};

std::string read_report_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(path + ": no such file", "give the path of a JSON report that gradscope run wrote");
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  if (!in.good() && !in.eof()) throw Error(path + ": cannot be read", "check its permissions");
  return s.str();
}

int do_compare(const CompareArgs& a, std::ostream& out, std::ostream& err,
               const CliEnvironment& env) {
  const Comparison c =
      compare_reports(read_report_file(a.base), read_report_file(a.proposed), a.base, a.proposed);
  const std::string name =
      a.name.empty() ? "compare-" + c.base_name + "-vs-" + c.proposed_name : a.name;
  const std::filesystem::path dir(a.out_dir);
  const std::string text = comparison_to_text(c);
  const std::string markdown = comparison_to_markdown(c);
  const std::string json = comparison_to_json(c);
  std::vector<std::pair<std::filesystem::path, std::string>> files{{dir / (name + ".txt"), text},
                                                                   {dir / (name + ".md"), markdown},
                                                                   {dir / (name + ".json"), json}};
  std::string html;
  if (a.format == "html") {
    html = comparison_to_html(c);
    files.emplace_back(dir / (name + ".html"), html);
  }
  // As `run` prints: the asked-for format when piped, the text and the page's name on a terminal.
  const bool terminal = env.stdout_is_terminal;
  const auto print_comparison = [&] {
    if (a.format == "json") {
      out << json;
    } else if (a.format == "md" && !terminal) {
      out << markdown;
    } else if (a.format == "html" && !terminal) {
      out << html;
    } else {
      out << text;
    }
  };
  write_or_print(files, print_comparison, "comparison");
  if (!a.quiet) {
    print_comparison();
    if (terminal && (a.format == "md" || a.format == "html")) {
      fmt::print(out, "wrote {}\n", (dir / (name + "." + a.format)).string());
    }
  }
  if (a.fail_on_regression && c.regression) {
    for (const std::string& reason : c.regression_reasons) {
      fmt::print(err, "gradscope: regression: {}\n", reason);
    }
    return static_cast<int>(ExitCode::kFindings);
  }
  return 0;
}

struct LessonArgs {
  std::string name;
  std::string configs;
  std::string out_dir = "reports";
  int threads = 0;
};

int do_lesson(const LessonArgs& a, std::ostream& out) {
  // Without --configs, the ones built into the binary: the lesson runs from any directory. An
  // unknown lesson is refused here, naming the ones built in.
  const std::vector<LessonConfig> configs = lesson_configs(a.name, a.configs);
  const std::filesystem::path dir(a.out_dir);
  check_writable({dir / (a.name + ".html"), dir / (a.name + ".md")});
  const Lesson lesson = run_lesson(a.name, configs, a.threads);
  std::vector<std::pair<std::filesystem::path, std::string>> files{
      {dir / (a.name + ".html"), lesson_to_html(lesson)},
      {dir / (a.name + ".md"), lesson_to_markdown(lesson)}};
  for (const auto& [file, svg] : lesson_plots(lesson)) files.emplace_back(dir / file, svg);
  write_files_atomically(files);
  for (const auto& [path, content] : files) fmt::print(out, "wrote {}\n", path.string());
  return 0;
}

struct TheoryArgs {
  std::string activation;
  std::optional<double> param;
  TheoryQuery query;
  bool json = false;
  std::string svg;  // write the phase diagram there (with --grid)
};

int do_theory(const TheoryArgs& a, std::ostream& out) {
  const std::optional<Activation> kind = activation_from_name(a.activation);
  if (!kind) {
    const std::optional<std::string> near =
        closest_name(a.activation, activation_names_and_aliases());
    throw Error("--activation: unknown activation \"" + a.activation + "\"",
                (near ? "did you mean \"" + *near + "\"? " : std::string()) +
                    "`gradscope list` shows them all");
  }
  TheoryQuery q = a.query;
  q.activation = default_spec(*kind);
  if (a.param) {
    if (activation_info(*kind).param_name.empty()) {
      throw Error("--activation-param: " + a.activation + " takes no parameter",
                  "only leaky_relu (slope) and elu (alpha) take one");
    }
    q.activation.param = *a.param;
  }
  if (!a.svg.empty() && !q.grid) {
    throw Error("--svg needs --grid", "the phase diagram is drawn from the grid over sb2");
  }
  const TheoryReport r = compute_theory(q);
  if (!a.svg.empty())
    write_files_atomically({{std::filesystem::path(a.svg), phase_diagram_svg(r)}});
  out << (a.json ? theory_to_json(r) : theory_to_text(r));
  return 0;
}

void print_list(std::ostream& out) {
  fmt::print(out, "Activations (stack.activation, output.activation):\n");
  for (const ActivationInfo& a : activation_table()) {
    std::string name(a.name);
    if (!a.param_name.empty()) name += fmt::format(" ({}={})", a.param_name, a.param_default);
    fmt::print(out, "  {:<24} {}\n", name, a.description);
  }
  fmt::print(out, "  (swish is an alias of silu; softmax is for the output layer only)\n\n");
  fmt::print(out, "Weight inits (stack.init; every init also takes gain):\n");
  for (const InitInfo& i : init_table()) {
    std::string name(i.name);
    if (!i.params.empty()) name += fmt::format(" ({})", i.params);
    fmt::print(out, "  {:<24} {}\n", name, i.description);
    if (!i.citation.empty()) fmt::print(out, "  {:<24} [{}]\n", "", i.citation);
  }
  fmt::print(out, "\nBias inits (stack.bias_init):\n");
  for (const BiasInitInfo& b : bias_init_table()) {
    std::string name(b.name);
    if (!b.params.empty()) name += fmt::format(" ({})", b.params);
    fmt::print(out, "  {:<24} {}\n", name, b.description);
  }
  fmt::print(out, "\nFinding codes (for --fail-on; severities: info, warning, error):\n");
  for (const FindingInfo& f : finding_table()) {
    fmt::print(out, "  {:<30} {}\n", f.name, f.description);
  }
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
            const CliEnvironment& env) {
  CLI::App app{"gradscope: diagnose vanishing and exploding gradients in deep networks",
               "gradscope"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", std::string("gradscope ") + kVersion);
  app.require_subcommand(1);

  RunArgs run_args;
  std::vector<std::string> flag_storage(std::size(kKeyFlags));
  CLI::App* run = app.add_subcommand(
      "run",
      "Build the network a config describes, pass a batch forward and a probe backward, and report "
      "per-layer statistics and a diagnosis: findings with evidence and advice, and a verdict "
      "(stdout, and OUT/<name>.json and OUT/<name>.txt). Flags override the config file; without "
      "a file the built-in default is used.");
  run->footer(kExitCodes);
  run->add_option("config", run_args.config,
                  "config file (JSON), or an ONNX model (.onnx: architecture and weights; the "
                  "flags set batch, seed, loss, precision); omit for the built-in default");
  run->add_option("-o,--out", run_args.out_dir, "directory for <name>.json and <name>.txt")
      ->capture_default_str();
  for (std::size_t i = 0; i < std::size(kKeyFlags); ++i) {
    run->add_option(kKeyFlags[i].flag, flag_storage[i],
                    std::string(kKeyFlags[i].help) + " [config: " + kKeyFlags[i].path + "]");
  }
  run->add_option("--set", run_args.sets,
                  "set any config key, PATH=VALUE (VALUE is JSON or a bare string), e.g. "
                  "--set stack.init.gain=0.5 or --set layers[1].repeat=48; applied after the named "
                  "flags, in order");
  run->add_option(
      "--memory-budget", run_args.memory_budget,
      "the memory one run may use (4GiB, 512M, 2GB; default: what the machine has available): the "
      "cheapest plan that fits is chosen, keeping weights and activations or drawing weights "
      "again and recomputing checkpointed segments; the numbers are the same under every plan");
  run->add_option("--threads", run_args.threads,
                  "worker threads, 0 = one per core (results do not depend on it)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  run->add_option("--format", run_args.format,
                  "text, json, md or html: md also writes OUT/<name>.md, a Markdown report for a "
                  "pull request, and html OUT/<name>.html, one self-contained page with the plots. "
                  "stdout gets that format when piped; on a terminal, md and html print the text "
                  "report and the file's name")
      ->check(CLI::IsMember({"text", "json", "md", "html"}))
      ->capture_default_str();
  run->add_flag("--svg", run_args.svg,
                "also write the HTML page's charts, OUT/<name>-gradients.svg, -activations.svg "
                "and -units.svg");
  run->add_option("--max-time", run_args.max_time,
                  "refuse (exit 2) before running when the run is estimated to take longer, e.g. "
                  "90s, 10m, 1h30m. The estimate, from the run's flops and this machine's measured "
                  "speed, is printed on stderr before any run longer than 5 s");
  run->add_option("--fail-on", run_args.fail_on,
                  "exit with code 3 when a finding is present whose severity is listed (info, "
                  "warning, error: that one or worse) or whose code is listed; comma-separated, "
                  "e.g. --fail-on error,dead_units. One line per finding on stderr")
      ->delimiter(',');
  run->add_option(
      "--weights", run_args.weights,
      "take the weights from a safetensors file (as torch's save_file(model.state_dict()) "
      "writes it), in the state_dict's order, instead of generating them");
  run->add_option("--input", run_args.input,
                  "take the input batch from a .npy (float32/float64, shape [batch, width]) or "
                  ".csv file; it sets input.batch and input.width");
  run->add_option("--targets", run_args.targets,
                  "targets for the loss from a .npy or .csv file: (batch, outputs) for mse and "
                  "sigmoid_bce, (batch) class indices for softmax_cross_entropy");
  run->add_option("--save-weights", run_args.save_weights,
                  "write the run's exact weights, input and probe/targets to this safetensors file "
                  "(names ops.K.weight, ops.K.bias, input, probe/targets/labels; the config in its "
                  "metadata), to reproduce the report in PyTorch (scripts/torch_crosscheck.py)");
  run->add_flag("--check-advice", run_args.check_advice,
                "re-run the network with each advice applied, report its effect, and drop advice "
                "that does not help");
  run->add_option("--threshold", run_args.thresholds,
                  "set a diagnosis threshold, KEY=VALUE, e.g. --threshold dead_fraction=0.5 (same "
                  "as --set diagnosis.KEY=VALUE; docs/diagnosis.md lists the keys and defaults)");
  run->add_option("--max-rows", run_args.max_rows, "text report: elide the middle of deeper stacks")
      ->check(CLI::Range(4, 1000000))
      ->capture_default_str();
  run->add_flag("-q,--quiet", run_args.quiet, "print nothing on stdout (files are still written)");

  CLI::App* list =
      app.add_subcommand("list",
                         "Name every activation, weight init, bias init and finding code, one line "
                         "each");
  list->footer(kExitCodes);

  SweepArgs sweep_args;
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "Run a config at every combination of the --vary values (and --seeds seeds per point), in "
      "parallel; write each run's report under OUT/NAME/runs/ as it finishes, then "
      "OUT/NAME/sweep.json, sweep.txt, sweep.md and gradients.svg. An interrupted sweep resumes "
      "with --resume; a second sweep into OUT/NAME while one runs is refused. A grid of more "
      "than 10,000 points needs --max-points. --shard I/N runs one slice of a sweep, for a batch "
      "system; `gradscope merge` combines the slices.");
  sweep->footer(kExitCodes);
  sweep->add_option("config", sweep_args.config,
                    "config file (JSON); omit for the built-in default");
  sweep
      ->add_option("--vary", sweep_args.vary,
                   "KEY=V1,V2,...: a config key (any PATH, or activation, depth, width, init, "
                   "bias_init, gain, batch, seed, precision, loss, optimizer, learning_rate) or "
                   "residual=off,on or norm=none,batch_norm,layer_norm,rms_norm (each sets only "
                   "its own part; on a layers config they remove or retype its blocks and norms); "
                   "values as --set takes them, and each must change the run; repeat for more "
                   "axes (the first varies slowest)")
      ->required();
  sweep->add_option("--seeds", sweep_args.seeds, "seeds per point (seed, seed + 1, ...)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  sweep->add_option("-o,--out", sweep_args.out_dir, "directory the sweep's directory goes in")
      ->capture_default_str();
  sweep->add_option("--name", sweep_args.name, "the sweep's directory name (default: NAME-sweep)");
  sweep->add_option(
      "--memory-budget", sweep_args.memory_budget,
      "the memory one run may use (4GiB, 512M, 2GB; default: what the machine has available): the "
      "cheapest plan that fits is chosen, keeping weights and activations or drawing weights "
      "again and recomputing checkpointed segments; the numbers are the same under every plan");
  sweep
      ->add_option("--jobs", sweep_args.jobs,
                   "runs at once, 0 = one per core (results do not "
                   "depend on it)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  sweep
      ->add_option("--max-points", sweep_args.max_points,
                   "the most points the grid may have (the product of the --vary counts); a "
                   "larger grid is refused before anything is planned")
      ->check(CLI::Range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()))
      ->capture_default_str();
  sweep->add_flag("--resume", sweep_args.resume,
                  "keep the finished runs of an interrupted sweep (when their config matches) and "
                  "run the rest");
  sweep->add_option("--set", sweep_args.sets, "set any config key for every run, PATH=VALUE");
  sweep->add_option("--threshold", sweep_args.thresholds, "a diagnosis threshold, KEY=VALUE");
  sweep
      ->add_option("--format", sweep_args.format,
                   "text, json or md on stdout (every one is written to the sweep's directory); "
                   "md prints the text summary on a terminal")
      ->check(CLI::IsMember({"text", "json", "md"}))
      ->capture_default_str();
  sweep->add_option(
      "--shard", sweep_args.shard,
      "I/N: run only the I-th of N slices (0 <= I < N; run k of the sweep, numbered point by "
      "point then seed, goes to shard k mod N), into OUT/NAME/shards/I-of-N/ with a manifest and "
      "no summary; every point is still validated first. One shard per batch-system array task "
      "(Slurm: --array=0-(N-1), --shard $SLURM_ARRAY_TASK_ID/N), then `gradscope merge "
      "OUT/NAME`. --resume works per shard; --format json prints the manifest");
  sweep->add_flag("-q,--quiet", sweep_args.quiet,
                  "print nothing on stdout (files are still written)");

  MergeArgs merge_args;
  CLI::App* merge = app.add_subcommand(
      "merge",
      "Combine the shards of a sweep (`gradscope sweep ... --shard I/N`) into the sweep's "
      "directory: check that the shards describe one sweep (config, --vary, --set, --seeds, N), "
      "that each shard 0..N-1 is there once and that every run is present, parses and is the run "
      "of its config; then write OUT/NAME/runs/, sweep.json, sweep.txt, sweep.md, sweep.html and "
      "gradients.svg byte for byte as the unsharded sweep would, and print the summary. Errors "
      "name the shard and print the command that repairs it.");
  merge->footer(kExitCodes);
  merge->add_option("dirs", merge_args.dirs,
                    "shard directories (OUT/NAME/shards/I-of-N, from one machine or copied from "
                    "many), the sweep's directory OUT/NAME whose shards/ holds them all, or OUT "
                    "itself when it holds one sweep's; default: the --out directory");
  merge->add_option("-o,--out", merge_args.out_dir, "directory the sweep's directory goes in")
      ->capture_default_str();
  merge->add_option("--name", merge_args.name,
                    "the sweep's directory name (default: the name the shards were run with)");
  merge
      ->add_option("--format", merge_args.format,
                   "text, json or md on stdout (every one is written to the sweep's directory); "
                   "md prints the text summary on a terminal")
      ->check(CLI::IsMember({"text", "json", "md"}))
      ->capture_default_str();
  merge->add_flag("-q,--quiet", merge_args.quiet,
                  "print nothing on stdout (files are still written)");

  CompareArgs compare_args;
  CLI::App* compare = app.add_subcommand(
      "compare",
      "What changed between two JSON reports (a base and a proposed network): verdicts, the "
      "gradient ratio, findings that appeared, disappeared or changed, and the layers whose "
      "statistics moved. Prints it and writes OUT/NAME.txt, .md and .json.");
  compare->footer(kExitCodes);
  compare->add_option("base", compare_args.base, "the base report (JSON)")->required();
  compare->add_option("proposed", compare_args.proposed, "the proposed report (JSON)")->required();
  compare->add_option("-o,--out", compare_args.out_dir, "directory for the comparison's files")
      ->capture_default_str();
  compare->add_option("--name", compare_args.name,
                      "file name stem (default: compare-BASE-vs-PROPOSED, the runs' names)");
  compare
      ->add_option("--format", compare_args.format,
                   "text, json, md or html (html also writes OUT/NAME.html); stdout gets that "
                   "format when piped; on a terminal, md and html print the text and the file's "
                   "name")
      ->check(CLI::IsMember({"text", "json", "md", "html"}))
      ->capture_default_str();
  compare->add_flag("--fail-on-regression", compare_args.fail_on_regression,
                    "exit with code 3 when the proposed network is worse: a worse verdict, a new "
                    "or more severe warning or error, the gradient ratio grown by more than a "
                    "decade, or new non-finite layers");
  compare->add_flag("-q,--quiet", compare_args.quiet, "print nothing on stdout");

  LessonArgs lesson_args;
  CLI::App* lesson = app.add_subcommand(
      "lesson",
      "Run a lesson's committed configs side by side and write OUT/NAME.html and OUT/NAME.md: "
      "pictures and a plain-words explanation for learners, every number from the runs. "
      "Lessons: why-sigmoid-fails.");
  lesson->footer(kExitCodes);
  lesson->add_option("name", lesson_args.name, "the lesson")->required();
  lesson->add_option("--configs", lesson_args.configs,
                     "run the *.json configs of this directory instead of the ones built into "
                     "gradscope (from configs/lessons/NAME)");
  lesson->add_option("-o,--out", lesson_args.out_dir, "directory for the lesson's files")
      ->capture_default_str();
  lesson->add_option("--threads", lesson_args.threads, "worker threads, 0 = one per core")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();

  TheoryArgs theory_args;
  CLI::App* theory = app.add_subcommand(
      "theory",
      "Mean-field theory of one activation at a weight variance sw2 and bias variance sb2: the "
      "fixed point q*, chi1, the depth scales xi_q and xi_c, the correlation fixed point, the edge "
      "of chaos, and the sw2 that preserves the input's second moment; --grid for the phase "
      "diagram over sb2.");
  theory->footer(kExitCodes);
  theory->add_option("--activation", theory_args.activation, "the activation, e.g. tanh, relu")
      ->required();
  theory->add_option("--activation-param", theory_args.param,
                     "leaky_relu's slope or elu's alpha (default: the registry's)");
  theory
      ->add_option("--weight-var", theory_args.query.sw2,
                   "sw2: the weight variance times fan-in (He: 2, LeCun/Xavier: 1)")
      ->capture_default_str();
  theory->add_option("--bias-var", theory_args.query.sb2, "sb2: the bias variance")
      ->capture_default_str();
  theory
      ->add_option("--input-second-moment", theory_args.query.q0,
                   "the input's E[x^2] per unit, for the moment-preserving sw2 and the start of "
                   "the length map")
      ->capture_default_str();
  theory->add_flag("--json", theory_args.json, "print JSON instead of text");
  theory->add_flag("--grid", theory_args.query.grid, "also the phase diagram over a range of sb2");
  theory->add_option("--svg", theory_args.svg,
                     "with --grid: write the order-to-chaos phase diagram to this SVG file");
  theory->add_option("--grid-min", theory_args.query.grid_sb2_min, "smallest sb2 of the grid")
      ->capture_default_str();
  theory->add_option("--grid-max", theory_args.query.grid_sb2_max, "largest sb2 of the grid")
      ->capture_default_str();
  theory->add_option("--grid-points", theory_args.query.grid_points, "rows of the grid")
      ->capture_default_str();

  std::vector<std::string> argv_storage;
  argv_storage.reserve(args.size() + 1);
  argv_storage.emplace_back("gradscope");
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const std::string& s : argv_storage) argv.push_back(s.c_str());

  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    // The help of the subcommand the arguments were for: the first word that is not an option.
    std::string help = "`gradscope --help`";
    for (const std::string& word : args) {
      if (word.empty() || word.front() == '-') continue;
      for (const CLI::App* sub : app.get_subcommands({})) {
        if (sub->get_name() == word) help = "`gradscope " + word + " --help`";
      }
      break;
    }
    print_error(err, e.what(), "run " + help);
    return static_cast<int>(ExitCode::kUsage);
  }

  try {
    if (list->parsed()) {
      print_list(out);
      return 0;
    }
    if (theory->parsed()) return do_theory(theory_args, out);
    if (sweep->parsed()) return do_sweep(sweep_args, out, err, env);
    if (merge->parsed()) return do_merge(merge_args, out, env);
    if (compare->parsed()) return do_compare(compare_args, out, err, env);
    if (lesson->parsed()) return do_lesson(lesson_args, out);
    for (std::size_t i = 0; i < std::size(kKeyFlags); ++i) {
      if (run->count(kKeyFlags[i].flag) > 0) {
        run_args.flag_values.emplace_back(kKeyFlags[i].flag, flag_storage[i]);
      }
    }
    return do_run(run_args, out, err, env);
  } catch (const Error& e) {
    print_error(err, e.what(), e.hint());
    return static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    print_error(err, "out of memory", "reduce stack.depth, stack.width or input.batch");
    return static_cast<int>(ExitCode::kInternal);
  } catch (const std::exception& e) {
    print_error(err, std::string("internal error: ") + e.what(),
                "this is a bug in gradscope; please report it with the config that caused it");
    return static_cast<int>(ExitCode::kInternal);
  }
}

}  // namespace gradscope
