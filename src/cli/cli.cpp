// The command line: `gradscope run`, `list`, `sweep`, `merge`, `compare`, `lesson`, `theory`,
// `coordcheck`,
// `--help` on each, `--version`. This file builds the app from the subcommands (one file each,
// commands.hpp), parses, dispatches, and maps exceptions to exit codes.
#include "gradscope/cli/cli.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

constexpr const char* kExitCodes =
    "Exit codes: 0 success; 1 internal error (a bug: please report it); 2 usage or config error,\n"
    "refused run (memory, --max-time) or unwritable output (a finished run's report is then\n"
    "printed on stdout); 3 a finding listed in --fail-on is present (the reports are written all\n"
    "the same), or `compare --fail-on-regression` found a regression. Interrupted (Ctrl-C,\n"
    "SIGTERM), gradscope ends with the signal's status (130, 143) and leaves no temporary file.";

void print_error(std::ostream& err, const std::string& what, const std::string& hint) {
  fmt::print(err, "gradscope: error: {}\n", what);
  if (!hint.empty()) fmt::print(err, "  hint: {}\n", hint);
}

// Parses the arguments into the app's options. An exit code when that ends the command: --help,
// --version, or a usage error (printed, with the help to read).
std::optional<int> parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out,
                         std::ostream& err) {
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
  return std::nullopt;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
            const CliEnvironment& env) {
  CLI::App app{"gradscope: diagnose vanishing and exploding gradients in deep networks",
               "gradscope"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", std::string("gradscope ") + kVersion);
  app.require_subcommand(1);

  // In --help's order. Exactly one is parsed (require_subcommand), and it runs.
  RunArgs run_args;
  SweepArgs sweep_args;
  MergeArgs merge_args;
  CompareArgs compare_args;
  LessonArgs lesson_args;
  TheoryArgs theory_args;
  CoordCheckArgs coordcheck_args;
  const std::pair<CLI::App*, std::function<int()>> commands[] = {
      {add_run(app, run_args), [&] { return do_run(run_args, out, err, env); }},
      {add_list(app), [&] { return do_list(out); }},
      {add_sweep(app, sweep_args), [&] { return do_sweep(sweep_args, out, err, env); }},
      {add_merge(app, merge_args), [&] { return do_merge(merge_args, out, env); }},
      {add_compare(app, compare_args), [&] { return do_compare(compare_args, out, err, env); }},
      {add_lesson(app, lesson_args), [&] { return do_lesson(lesson_args, out); }},
      {add_theory(app, theory_args), [&] { return do_theory(theory_args, out); }},
      {add_coordcheck(app, coordcheck_args),
       [&] { return do_coordcheck(coordcheck_args, out, err, env); }},
  };
  for (const auto& command : commands) command.first->footer(kExitCodes);

  if (const std::optional<int> code = parse(app, args, out, err)) return *code;

  try {
    for (const auto& [command, run] : commands) {
      if (command->parsed()) return run();
    }
    throw contract_error("no subcommand was parsed");
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
