// `gradscope compare`: what changed between two JSON reports, written as text, Markdown and JSON
// (and an HTML page on request), printed, and --fail-on-regression.
#include "gradscope/app/compare.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/comparison_json.hpp"

namespace gradscope {

namespace {

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

}  // namespace

CLI::App* add_compare(CLI::App& app, CompareArgs& args) {
  CLI::App* compare = app.add_subcommand(
      "compare",
      "What changed between two JSON reports (a base and a proposed network): verdicts, the "
      "gradient ratio, findings that appeared, disappeared or changed, and the layers whose "
      "statistics moved. Prints it and writes OUT/NAME.txt, .md and .json.");
  compare->add_option("base", args.base, "the base report (JSON)")->required();
  compare->add_option("proposed", args.proposed, "the proposed report (JSON)")->required();
  compare->add_option("-o,--out", args.out_dir, "directory for the comparison's files")
      ->capture_default_str();
  compare->add_option("--name", args.name,
                      "file name stem (default: compare-BASE-vs-PROPOSED, the runs' names)");
  compare
      ->add_option("--format", args.format,
                   "text, json, md or html (html also writes OUT/NAME.html); stdout gets that "
                   "format when piped; on a terminal, md and html print the text and the file's "
                   "name")
      ->check(CLI::IsMember({"text", "json", "md", "html"}))
      ->capture_default_str();
  compare->add_flag("--fail-on-regression", args.fail_on_regression,
                    "exit with code 3 when the proposed network is worse: a worse verdict, a new "
                    "or more severe warning or error, the gradient ratio grown by more than a "
                    "decade, or new non-finite layers");
  compare->add_flag("-q,--quiet", args.quiet, "print nothing on stdout");
  return compare;
}

int do_compare(const CompareArgs& a, std::ostream& out, std::ostream& err,
               const CliEnvironment& env) {
  const Comparison c = compare_report_json(read_report_file(a.base), read_report_file(a.proposed),
                                           a.base, a.proposed);
  const std::string name =
      a.name.empty() ? "compare-" + c.base_name + "-vs-" + c.proposed_name : a.name;
  const std::filesystem::path dir(a.out_dir);
  // The text, Markdown and JSON always; the HTML page when --format asks for it.
  const Format format = format_from_name(a.format);
  std::vector<Format> formats{Format::kText, Format::kMarkdown, Format::kJson};
  if (format == Format::kHtml) formats.push_back(format);
  std::vector<std::pair<std::filesystem::path, std::string>> files;
  for (Format f : formats) files.emplace_back(dir / file_name(name, f), write_document(f, c));
  // As `run` prints: the asked-for format when piped, the text and the page's name on a terminal.
  const bool terminal = env.stdout_is_terminal;
  const Format shown = stdout_format(format, terminal);
  const std::size_t shown_file =
      static_cast<std::size_t>(std::find(formats.begin(), formats.end(), shown) - formats.begin());
  const auto print_comparison = [&] { out << files[shown_file].second; };
  write_or_print(files, print_comparison, "comparison");
  if (!a.quiet) {
    print_comparison();
    if (terminal && (format == Format::kMarkdown || format == Format::kHtml)) {
      fmt::print(out, "wrote {}\n", (dir / file_name(name, format)).string());
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

}  // namespace gradscope
