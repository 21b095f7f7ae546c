// The writers behind one registry: each output format's name and file extension, and which writer
// turns each kind of document (a run's report, a sweep, a comparison, a theory) into its bytes.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "gradscope/core/comparison.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/report/report_text.hpp"
#include "gradscope/theory/theory_report.hpp"

namespace gradscope {

enum class Format : int {
  kText,
  kJson,
  kMarkdown,
  kHtml,
  kSvg,
};
inline constexpr int kFormatCount = 5;

struct FormatInfo {
  Format format;
  std::string_view name;       // as --format spells it: "text", "json", "md", "html", "svg"
  std::string_view extension;  // of its files, with the dot: ".txt", ".json", ".md", ...
};

// The registry, indexed by static_cast<int>(Format).
const std::array<FormatInfo, kFormatCount>& format_table();
const FormatInfo& format_info(Format format);

// Looks a format up by its name. Throws Error naming the valid ones when there is no such format.
Format format_from_name(std::string_view name);

// STEM plus the format's extension: file_name("deep", Format::kMarkdown) is "deep.md".
std::string file_name(std::string_view stem, Format format);

// Whether a document kind comes in a format: a run's report has no single SVG (its charts are
// three, see plots.hpp), a comparison neither, and a theory no Markdown or HTML.
bool writes_report(Format format);
bool writes_sweep(Format format);
bool writes_comparison(Format format);
bool writes_theory(Format format);

// The document in a format, exactly the bytes its writer gives (report_to_json, sweep_to_text,
// ...). `text` is the text report's options; Markdown elides at its own MarkdownOptions default,
// the JSON and HTML never. Throws gradscope::Error (exit code 1) for a format the kind has no
// writer for (see writes_*): a bug in the caller, not a user's mistake.
std::string write_document(Format format, const Report& report, const TextOptions& text = {});
std::string write_document(Format format, const SweepResult& sweep);
std::string write_document(Format format, const Comparison& comparison);
std::string write_document(Format format, const TheoryReport& theory);

}  // namespace gradscope
