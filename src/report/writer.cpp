// The writer registry: one table of formats, with a writer per document kind in each row, so that
// a format is added in one place and the callers choose a writer by looking it up, not by
// if-chains.
#include "gradscope/report/writer.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/suggest.hpp"
#include "gradscope/io/comparison_json.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/io/theory_json.hpp"
#include "gradscope/report/compare_text.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/report/report_md.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "gradscope/report/theory_text.hpp"

namespace gradscope {

namespace {

// A row: the format, and its writer for each kind of document (nullptr: the kind has none in
// it). One table with a column per kind, rather than a table per kind, because a format's name
// and extension are the same whatever the document (`--format md` and ".md" mean one thing for a
// run, a sweep and a comparison), and one screen then shows which documents come in which
// formats. A new format or kind cannot be added without deciding every cell.
struct Writers {
  FormatInfo info;
  std::string (*report)(const Report&, const TextOptions&);
  std::string (*sweep)(const SweepResult&);
  std::string (*comparison)(const Comparison&);
  std::string (*theory)(const TheoryReport&);
};

// The JSON writers are io's (the layer below, where nlohmann/json lives); the others this layer's.
constexpr std::array<Writers, kFormatCount> kWriters = {{
    {{Format::kText, "text", ".txt"},
     [](const Report& r, const TextOptions& text) { return report_to_text(r, text); },
     &sweep_to_text,
     &comparison_to_text,
     &theory_to_text},
    {{Format::kJson, "json", ".json"},
     [](const Report& r, const TextOptions&) { return report_to_json(r); },
     &sweep_to_json,
     &comparison_to_json,
     &theory_to_json},
    // --max-rows is the text report's: a pull request's Markdown shows up to its own 200 rows.
    {{Format::kMarkdown, "md", ".md"},
     [](const Report& r, const TextOptions&) { return report_to_markdown(r); },
     &sweep_to_markdown,
     &comparison_to_markdown,
     nullptr},
    {{Format::kHtml, "html", ".html"},
     [](const Report& r, const TextOptions&) { return report_to_html(r); },
     &sweep_to_html,
     &comparison_to_html,
     nullptr},
    // A run's charts are three SVG files, not one document: `run --svg` writes them itself.
    {{Format::kSvg, "svg", ".svg"}, nullptr, &sweep_gradient_svg, nullptr, &phase_diagram_svg},
}};

// A missing row would be value-initialised as kText, so checking every index catches it.
constexpr bool table_is_indexed_by_format() {
  for (int i = 0; i < kFormatCount; ++i) {
    if (static_cast<int>(kWriters[static_cast<std::size_t>(i)].info.format) != i) return false;
  }
  return true;
}
static_assert(kWriters.size() == kFormatCount);
static_assert(static_cast<int>(Format::kSvg) + 1 == kFormatCount,
              "kFormatCount must follow the last enumerator");
static_assert(table_is_indexed_by_format(), "kWriters must list every format in enum order");

constexpr std::array<FormatInfo, kFormatCount> infos_of(
    const std::array<Writers, kFormatCount>& writers) {
  std::array<FormatInfo, kFormatCount> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = writers[i].info;
  return out;
}
constexpr std::array<FormatInfo, kFormatCount> kFormats = infos_of(kWriters);

const Writers& row(Format format) { return kWriters[static_cast<std::size_t>(format)]; }

template <class Writer>
Writer checked(Writer writer, Format format, const char* kind) {
  if (writer == nullptr) {
    throw contract_error(std::string(kind) + " has no " + std::string(format_info(format).name) +
                         " writer");
  }
  return writer;
}

}  // namespace

const std::array<FormatInfo, kFormatCount>& format_table() { return kFormats; }

const FormatInfo& format_info(Format format) { return kFormats[static_cast<std::size_t>(format)]; }

Format format_from_name(std::string_view name) {
  std::vector<std::string_view> names;
  for (const FormatInfo& info : kFormats) {
    if (info.name == name) return info.format;
    names.push_back(info.name);
  }
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) {
    list += i == 0 ? "" : (i + 1 == names.size() ? " and " : ", ");
    list += names[i];
  }
  const std::optional<std::string> near = closest_name(name, names);
  throw Error(
      "unknown format \"" + std::string(name) + "\"",
      (near ? "did you mean \"" + *near + "\"? " : std::string()) + "the formats are " + list);
}

std::string file_name(std::string_view stem, Format format) {
  return std::string(stem) + std::string(format_info(format).extension);
}

bool writes_report(Format format) { return row(format).report != nullptr; }
bool writes_sweep(Format format) { return row(format).sweep != nullptr; }
bool writes_comparison(Format format) { return row(format).comparison != nullptr; }
bool writes_theory(Format format) { return row(format).theory != nullptr; }

std::string write_document(Format format, const Report& report, const TextOptions& text) {
  return checked(row(format).report, format, "a run's report")(report, text);
}

std::string write_document(Format format, const SweepResult& sweep) {
  return checked(row(format).sweep, format, "a sweep")(sweep);
}

std::string write_document(Format format, const Comparison& comparison) {
  return checked(row(format).comparison, format, "a comparison")(comparison);
}

std::string write_document(Format format, const TheoryReport& theory) {
  return checked(row(format).theory, format, "a theory report")(theory);
}

}  // namespace gradscope
