// What the text report's sections share (private to src/report/): the 120-column geometry, the
// colours, fitting and wrapping text, the rows both tables show, and each section's block.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/report.hpp"

namespace gradscope::report_text_detail {

inline constexpr std::size_t kLineWidth = 120;

// Table columns: widths in characters, one space between columns, two before the bar. Columns are
// as narrow as their headers allow; the measured and predicted log10 grad rms share a group header
// on a line of its own, so each needs only the width of its values.
inline constexpr int kLayerW = 5;
inline constexpr int kWidthW = 6;
inline constexpr int kActW = 10;      // the longest registry name, leaky_relu
inline constexpr int kActWideW = 14;  // with ops of other kinds: act:leaky_relu, residual x0.5
inline constexpr int kActRmsW = 9;
inline constexpr int kZeroW = 6;
inline constexpr int kDeadW = 5;
inline constexpr int kSatW = 5;
inline constexpr int kCorrW = 5;    // "-0.25"
inline constexpr int kLogW = 8;     // "measured"; values to "-9999.99" (fewer decimals beyond)
inline constexpr int kTheoryW = 7;  // "-999.99" (fewer decimals beyond)
inline constexpr int kGainW = 9;
inline constexpr int kUpdW = 5;  // log10 update / weight, one decimal: "-12.3"
inline constexpr int kBarW = 26;
inline constexpr int kNoteW = 10;
// Sequence inputs (tokens > 1): the corr column gives way to the token statistics, under a group
// header "tokens" of their own, and the theory column to them too (the mean-field prediction stays
// in the bar as its '|').
inline constexpr int kTokCosW = 5;   // "-0.25", as corr
inline constexpr int kTokCrmsW = 8;  // three significant digits: "1.23e-05"
// Every column up to the bar but the kind column and the optional upd/w column.
inline constexpr int kFixedCoreW = kLayerW + 1 + kWidthW + 1 + 1 + kActRmsW + 1 + kZeroW + 1 +
                                   kDeadW + 1 + kSatW + 1 + kCorrW + 1 + kLogW + 1 + kTheoryW + 1 +
                                   kGainW + 2;
// The bar gives way to the extra columns; below this it would no longer show a slope (and the
// widest stand-in, "(zero)", must fit).
inline constexpr int kMinBarW = 12;
static_assert(kFixedCoreW + kActWideW + 1 + kUpdW + kMinBarW + 1 + kNoteW <=
                  static_cast<int>(kLineWidth),
              "the widest table (wide kind column and upd/w) must fit 120 columns");
static_assert(kFixedCoreW + kActW + 20 + 1 + kNoteW <= static_cast<int>(kLineWidth),
              "a dense-only table must keep a bar of 20 characters");
// The sequence layout: kFixedCoreW with the corr and theory columns traded for the two token ones.
inline constexpr int kFixedTokensW =
    kFixedCoreW - (kCorrW + 1) - (kTheoryW + 1) + (kTokCosW + 1) + (kTokCrmsW + 1);
inline constexpr int kMinTokensBarW = kMinBarW - 1;  // one cell given to the token columns
static_assert(kFixedTokensW + kActWideW + 1 + kUpdW + kMinTokensBarW + 1 + kNoteW <=
                  static_cast<int>(kLineWidth),
              "the widest sequence table (wide kind column and upd/w) must fit 120 columns");

inline constexpr std::string_view kRed = "\x1b[31m";
inline constexpr std::string_view kYellow = "\x1b[33m";
inline constexpr std::string_view kBold = "\x1b[1m";
inline constexpr std::string_view kDim = "\x1b[2m";
inline constexpr std::string_view kReset = "\x1b[0m";

struct Painter {
  bool color = false;
  // Wraps already padded text, so colour never changes a column's width.
  std::string operator()(std::string_view text, std::string_view code) const {
    if (!color || code.empty() || text.empty()) return std::string(text);
    return fmt::format("{}{}{}", code, text, kReset);
  }
};

// Display columns of UTF-8 text: one per code point (run names may hold non-ASCII).
std::size_t display_width(std::string_view s);

// Cuts `s` to at most `width` display columns, ending in "..." when cut.
std::string fit(std::string_view s, std::size_t width);

// A user-supplied name must not carry control characters (an ESC would be an injected colour).
std::string sanitize(std::string_view s);

// Keeps a table cell within its column whatever the value.
std::string cell(std::string s, int width);

// The median; of an even count, the mean of the middle two. NaN for none.
double median(std::vector<double> v);

void append_line(std::string& out, std::string_view line);

// Greedy word wrap into lines of at most `width` display columns; a word longer than a line is cut
// across lines.
std::vector<std::string> wrap(std::string_view text, std::size_t width);

// `text` wrapped within 120 columns: the first line after `first`, the others after `rest` (plain
// indents; `first` no wider than `rest`).
void append_wrapped(std::string& out, std::string_view first, std::string_view rest,
                    std::string_view text);

// Why a layer is worth keeping through elision.
struct RowFlag {
  std::string_view note;   // shown at the end of the row; empty when nothing is remarkable
  double score = 0.0;      // > 0 for a sharp change; larger is sharper
  bool mandatory = false;  // first, last, first non-finite
  bool nonfinite = false;  // any NaN/Inf in the layer's statistics (shown red)
};

// The elision rule's flags per layer, and the rows it keeps (see report_text_table.cpp).
std::vector<RowFlag> flag_rows(const std::vector<LayerReport>& layers, const Summary& summary);
std::vector<bool> select_rows(const std::vector<RowFlag>& flags, int max_rows);

// The rows both tables show: the same layers, elided the same way.
struct RowSelection {
  std::vector<RowFlag> flags;
  std::vector<bool> keep;
};

// One line per kept layer (from `row(i)`) and one "... N layers elided ..." line per gap.
// `noun` names what a row is ("layer", "parameter").
template <typename RowFn>
void append_rows(std::string& out, const std::vector<bool>& keep, const Painter& paint,
                 const RowFn& row, std::string_view noun = "layer") {
  std::size_t elided = 0;
  const auto flush_elided = [&] {
    if (elided == 0) return;
    append_line(
        out,
        paint(fmt::format("  ... {} {}{} elided ...", elided, noun, elided == 1 ? "" : "s"), kDim));
    elided = 0;
  };
  for (std::size_t i = 0; i < keep.size(); ++i) {
    if (!keep[i]) {
      ++elided;
      continue;
    }
    flush_elided();
    append_line(out, row(i));
  }
  flush_elided();
}

// The report's sections, in the order report_to_text puts them after the header.
// report_text_diagnosis.cpp: what to change, first.
std::string remedy_block(const Report& r, const Painter& paint);
// report_text_table.cpp: the per-layer table.
std::string table_block(const Report& r, const RowSelection& rows, const Painter& paint);
// report_text_summary.cpp: the theory table, the summary, the Jacobian.
std::string theory_table_block(const Report& r, const RowSelection& rows, const Painter& paint);
std::string summary_block(const Report& r, const Painter& paint);
std::string jacobian_block(const JacobianStats& j);
// The partial Jacobian norm: the law it follows with depth and a few of its values.
std::string criticality_block(const CriticalityStats& c);
// report_text_sequence.cpp: the attention ops and the per-parameter table, for networks with
// attention or GLU ops or loaded weights (empty otherwise).
std::string attention_block(const Report& r, int max_rows, const Painter& paint);
std::string parameters_block(const Report& r, int max_rows, const Painter& paint);
// Image networks: the signal-propagation table (signal_propagation.cpp); empty without images.
std::string signal_propagation_block(const Report& r, int max_rows, const Painter& paint);
// report_text_diagnosis.cpp: the verdict and the findings, last.
std::string diagnosis_block(const Report& r, const Painter& paint);

}  // namespace gradscope::report_text_detail
