// The subcommands of the command line, one file each (run.cpp, list.cpp, sweep.cpp, ...): each
// has its options struct, add_X (declares it and its flags on the app) and do_X (runs it).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/app/sweep.hpp"
#include "gradscope/cli/cli.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/report/writer.hpp"
#include "gradscope/theory/theory_report.hpp"

// do_X rather than run_X: the app layer already has run_sweep and run_lesson, which the commands
// call. Every do_X returns the exit code, or throws Error (run_cli maps it to its code).
namespace gradscope {

// ---- What several subcommands share (common.cpp)

// A flag that sets one config key (--depth for stack.depth, ...): run's named flags.
struct KeyFlag {
  const char* flag;
  const char* path;
  const char* help;
  bool quote;  // the value is always a string (so --name 123 is the name "123", not a number)
};
std::span<const KeyFlag> key_flags();

// The config overrides of named flags (flag, value), --set PATH=VALUE and --threshold KEY=VALUE,
// in that order. Throws Error for a --set or --threshold without '='.
std::vector<ConfigOverride> overrides_from(
    const std::vector<std::pair<std::string, std::string>>& flag_values,
    const std::vector<std::string>& sets, const std::vector<std::string>& thresholds);

// --memory-budget SIZE in bytes; 0 (the machine's available memory) when not given.
std::int64_t memory_budget(const std::string& text);

// What stdout gets for --format: that format when piped (into a file, a pull request's comment),
// and JSON always; on a terminal the text, not a page of markup.
Format stdout_format(Format asked, bool stdout_is_terminal);

// Writes a finished result's files all or nothing. If that fails, the work is done: the result
// goes to stdout rather than nowhere (-q or not), and the error says so.
void write_or_print(const std::vector<std::pair<std::filesystem::path, std::string>>& files,
                    const std::function<void()>& print, std::string_view what);

// ---- gradscope run (run.cpp)

struct RunArgs {
  std::optional<std::string> config;
  std::string out_dir = "reports";
  std::string format = "text";
  bool quiet = false;
  int threads = 0;
  std::string memory_budget;  // --memory-budget SIZE; empty: the machine's available memory
  int max_rows = 40;
  // The key_flags() given, in key_flags()'s order; filled when the command line is parsed.
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
CLI::App* add_run(CLI::App& app, RunArgs& args);
int do_run(const RunArgs& a, std::ostream& out, std::ostream& err, const CliEnvironment& env);

// ---- gradscope list (list.cpp)

CLI::App* add_list(CLI::App& app);
int do_list(std::ostream& out);

// ---- gradscope sweep (sweep.cpp) and gradscope merge (merge.cpp)

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
CLI::App* add_sweep(CLI::App& app, SweepArgs& args);
int do_sweep(const SweepArgs& a, std::ostream& out, std::ostream& err, const CliEnvironment& env);

// A sweep's summary on stdout, as `run` prints: --format's document when piped, on a terminal the
// text summary (and the Markdown file's name for md). Nothing when quiet. Merge prints the same.
void print_sweep(const SweepResult& result, const std::string& format, bool quiet,
                 const std::string& out_dir, std::ostream& out, const CliEnvironment& env);

struct MergeArgs {
  std::vector<std::string> dirs;
  std::string out_dir = "reports";
  std::string name;
  std::string format = "text";
  bool quiet = false;
};
CLI::App* add_merge(CLI::App& app, MergeArgs& args);
int do_merge(const MergeArgs& a, std::ostream& out, const CliEnvironment& env);

// ---- gradscope compare (compare.cpp)

struct CompareArgs {
  std::string base;
  std::string proposed;
  std::string out_dir = "reports";
  std::string name;
  std::string format = "text";
  bool fail_on_regression = false;
  bool quiet = false;
};
CLI::App* add_compare(CLI::App& app, CompareArgs& args);
int do_compare(const CompareArgs& a, std::ostream& out, std::ostream& err,
               const CliEnvironment& env);

// ---- gradscope lesson (lesson.cpp)

struct LessonArgs {
  std::string name;
  std::string configs;
  std::string out_dir = "reports";
  int threads = 0;
};
CLI::App* add_lesson(CLI::App& app, LessonArgs& args);
int do_lesson(const LessonArgs& a, std::ostream& out);

// ---- gradscope theory (theory.cpp)

struct TheoryArgs {
  std::string activation;
  std::optional<double> param;
  TheoryQuery query;
  bool json = false;
  std::string svg;  // write the phase diagram there (with --grid)
};
CLI::App* add_theory(CLI::App& app, TheoryArgs& args);
int do_theory(const TheoryArgs& a, std::ostream& out);

// ---- gradscope coordcheck (coordcheck.cpp)

struct CoordCheckArgs {
  std::optional<std::string> config;
  std::string widths;  // "64,128,256"
  std::string depths;
  int steps = 3;
  int seeds = 4;
  std::string param = "sp";
  std::string optimizer;  // empty: the config's (sgd when it names none)
  std::optional<double> lr;
  std::optional<double> momentum;
  std::optional<double> weight_decay;
  int base_width = 0;
  int base_depth = 0;
  double tolerance = 0.1;
  std::vector<std::string> sets;
  std::string out_dir = "reports";
  std::string format = "text";
  std::string fail_on;  // empty, "any", "grows" or "shrinks"
  bool quiet = false;
  int threads = 0;
  bool resume = false;
  std::optional<std::string> shard;  // "I/N"
};
CLI::App* add_coordcheck(CLI::App& app, CoordCheckArgs& args);
int do_coordcheck(const CoordCheckArgs& a, std::ostream& out, std::ostream& err,
                  const CliEnvironment& env);
// A merged coordinate check (`gradscope merge` of its shards): its files written and its summary
// printed as `coordcheck` writes and prints them; exit 3 when the shards' --fail-on says so.
int do_coordcheck_merge(const MergeArgs& a, const std::vector<std::string>& dirs, std::ostream& out,
                        const CliEnvironment& env);

}  // namespace gradscope
