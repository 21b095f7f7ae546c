// The coordinate check's tables, as text for a terminal and as Markdown for a review: the check,
// the multipliers, the rows step by step, the depth check, and the verdict naming the worst row.
#include "gradscope/report/coordcheck_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

constexpr std::size_t kMaxColumns = 100;

// ---- A table both writers render: text pads its columns, Markdown pipes them.

struct Table {
  std::vector<std::string> header;
  std::vector<bool> right;  // per column: right-aligned (numbers)
  std::vector<std::vector<std::string>> rows;
  std::size_t shrink = 0;  // the column cut to fit the terminal (the labels)
};

Table table_of(std::vector<std::string> header, std::vector<bool> right) {
  Table t;
  t.header = std::move(header);
  t.right = std::move(right);
  return t;
}

// Code points, which is what a terminal shows of UTF-8 ("±" is one column, two bytes).
std::size_t columns_of(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// The first `n` code points of s (the whole of it when shorter).
std::string_view head_of(std::string_view s, std::size_t n) {
  std::size_t i = 0;
  for (std::size_t seen = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && seen++ == n) break;
  }
  return s.substr(0, i);
}

// At most `n` code points, cut in the middle: a label's op index and its tensor's name at the end
// both stay in sight.
std::string cut_middle(std::string_view s, std::size_t n) {
  const std::size_t have = columns_of(s);
  if (have <= n || n < 5) return std::string(s);
  const std::size_t keep = n - 3;
  const std::size_t front = (keep + 1) / 2;
  const std::size_t back = keep - front;
  std::string_view tail = s;
  tail.remove_prefix(head_of(s, have - back).size());
  return std::string(head_of(s, front)) + "..." + std::string(tail);
}

std::string pad(const std::string& s, std::size_t width, bool right) {
  const std::size_t have = columns_of(s);
  if (have >= width) return s;
  const std::string fill(width - have, ' ');
  return right ? fill + s : s + fill;
}

std::string render_text(const Table& t) {
  const std::size_t n = t.header.size();
  std::vector<std::size_t> width(n, 0);
  for (std::size_t c = 0; c < n; ++c) width[c] = columns_of(t.header[c]);
  for (const auto& row : t.rows) {
    for (std::size_t c = 0; c < n && c < row.size(); ++c) {
      width[c] = std::max(width[c], columns_of(row[c]));
    }
  }
  std::size_t total = 2 * (n - 1);
  for (const std::size_t w : width) total += w;
  if (total > kMaxColumns) {
    const std::size_t over = total - kMaxColumns;
    width[t.shrink] = std::max<std::size_t>(width[t.shrink] > over ? width[t.shrink] - over : 0,
                                            columns_of(t.header[t.shrink]));
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t c = 0; c < n; ++c) {
      const std::string cell = c < cells.size() ? cells[c] : std::string();
      const std::string shown = c == t.shrink ? cut_middle(cell, width[c]) : cell;
      if (c > 0) out += "  ";
      out += pad(shown, width[c], t.right[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(t.header);
  for (const auto& row : t.rows) out += line(row);
  return out;
}

std::string render_markdown(const Table& t) {
  std::string out = "|";
  for (const std::string& h : t.header) out += fmt::format(" {} |", markdown_escape(h));
  out += "\n|";
  for (const bool r : t.right) out += r ? "---:|" : ":---|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (std::size_t c = 0; c < t.header.size(); ++c) {
      out += fmt::format(" {} |", markdown_escape(c < row.size() ? row[c] : std::string()));
    }
    out += "\n";
  }
  return out;
}

// ---- Cells and sentences.

double at(const std::vector<double>& v, std::size_t i) {
  return i < v.size() ? v[i] : std::nan("");
}

// A slope with its sign and two decimals ("+0.98", "-0.50", "+0.00"): whether it rises or falls
// is the point.
std::string signed_slope(double s) {
  if (!std::isfinite(s)) return nonfinite_name(s);
  const std::string text = format_fixed(s, 2);
  if (text == "-0.00") return "+0.00";
  return text.front() == '-' ? text : fmt::format("+{}", text);
}

std::string slope_cell(double slope, double spread) {
  if (!std::isfinite(slope)) return nonfinite_name(slope);
  return fmt::format("{} ± {}", signed_slope(slope), format_fixed(spread, 2));
}

// "0" for a single slope, "[-0.5, 0]" for a band.
std::string band_cell(double low, double high) {
  if (low == high) return format_significant(low, 3);
  return fmt::format("[{}, {}]", format_significant(low, 3), format_significant(high, 3));
}

std::string verdict_word(SlopeVerdict v) {
  switch (v) {
    case SlopeVerdict::kGrows:
      return "grows";
    case SlopeVerdict::kShrinks:
      return "shrinks";
    case SlopeVerdict::kFlat:
      break;
  }
  return "is flat";
}

std::string list_of(const std::vector<int>& v) {
  return v.empty() ? std::string("-") : fmt::format("{}", fmt::join(v, ", "));
}

std::string optimizer_text(const TrainSpec& t) {
  std::string out =
      fmt::format("{}, lr {}", train_optimizer_name(t.optimizer), format_shortest(t.learning_rate));
  if (t.optimizer == TrainOptimizer::kSgd) {
    if (t.momentum != 0.0) out += fmt::format(", momentum {}", format_shortest(t.momentum));
    return out;
  }
  out += fmt::format(", betas {}, {}, eps {}", format_shortest(t.beta1), format_shortest(t.beta2),
                     format_shortest(t.eps));
  if (t.optimizer == TrainOptimizer::kAdamW) {
    out += fmt::format(", weight decay {}", format_shortest(t.weight_decay));
  }
  return out;
}

std::string step_title(int step) {
  if (step == 0) return "step 0 (init)";
  return fmt::format("step {} (after {} update{})", step, step, step == 1 ? "" : "s");
}

// Index of the smallest and of the largest value (the first of equals); 0, 0 when empty.
std::pair<std::size_t, std::size_t> extremes(const std::vector<int>& v) {
  if (v.empty()) return {0, 0};
  const auto lo = std::min_element(v.begin(), v.end()) - v.begin();
  const auto hi = std::max_element(v.begin(), v.end()) - v.begin();
  return {static_cast<std::size_t>(lo), static_cast<std::size_t>(hi)};
}

int value_at(const std::vector<int>& v, std::size_t i) { return i < v.size() ? v[i] : 0; }

const CoordRow* worst_row(const CoordCheckResult& r) {
  if (r.worst < 0 || static_cast<std::size_t>(r.worst) >= r.rows.size()) return nullptr;
  return &r.rows[static_cast<std::size_t>(r.worst)];
}

const DepthRow* worst_depth_row(const CoordCheckResult& r) {
  if (r.worst_depth < 0 || static_cast<std::size_t>(r.worst_depth) >= r.depth_rows.size()) {
    return nullptr;
  }
  return &r.depth_rows[static_cast<std::size_t>(r.worst_depth)];
}

std::string expected_phrase(double low, double high, double tolerance) {
  return fmt::format("expected {} ± {}", band_cell(low, high), format_significant(tolerance, 3));
}

// The verdict: one FAIL sentence for the worst width row and one for the worst depth row, or the
// PASS sentence. `label` turns a label into the document's spelling (escaped for Markdown).
template <typename Label>
std::vector<std::string> verdict_sentences(const CoordCheckResult& r, const Label& label) {
  if (r.passed()) return {"PASS: every row is flat within its band"};
  std::vector<std::string> out;
  const double tol = r.spec.tolerance;
  if (const CoordRow* w = worst_row(r)) {
    if (std::isnan(w->slope)) {
      // No slope: a size that is not finite (overflow) or exactly 0 at some width.
      const bool overflow = w->verdict == SlopeVerdict::kGrows;
      out.push_back(fmt::format(
          "FAIL: {} {} at step {} is {} at some width, so it has no slope: {}", label(w->label),
          coord_quantity_name(w->quantity), w->step,
          overflow ? "not finite (inf or NaN)" : "exactly 0",
          overflow ? "the network overflows before it scales; `gradscope run` on the config "
                     "shows where and why"
                   : "a dead or zero layer; `gradscope run` on the config shows which units"));
    } else {
      out.push_back(fmt::format("FAIL: {} {} at step {} {} with slope {} ({})", label(w->label),
                                coord_quantity_name(w->quantity), w->step, verdict_word(w->verdict),
                                signed_slope(w->slope),
                                expected_phrase(w->expected_low, w->expected_high, tol)));
    }
  }
  if (const DepthRow* d = worst_depth_row(r)) {
    const std::string what = fmt::format("{}{} {} against depth at step {}", label(d->label),
                                         d->stream ? " (the final stream)" : "",
                                         coord_quantity_name(d->quantity), d->step);
    if (std::isnan(d->slope)) {
      const bool overflow = d->verdict == SlopeVerdict::kGrows;
      out.push_back(fmt::format(
          "FAIL: {} is {} at some depth, so it has no slope: {}", what,
          overflow ? "not finite (inf or NaN)" : "exactly 0",
          overflow ? "the network overflows as it deepens; `gradscope run` on the config at "
                     "that depth shows where and why"
                   : "a dead or zero layer; `gradscope run` on the config shows which units"));
    } else {
      out.push_back(fmt::format("FAIL: {} {} with slope {} ({})", what, verdict_word(d->verdict),
                                signed_slope(d->slope),
                                expected_phrase(d->expected_low, d->expected_high, tol)));
    }
  }
  if (out.empty()) out.push_back("FAIL: a row is outside its band");
  return out;
}

// "3 of 40 width rows and 1 of 3 depth rows are outside their band".
std::string outside_count(const CoordCheckResult& r) {
  const auto width_out = std::count_if(r.rows.begin(), r.rows.end(), [](const CoordRow& row) {
    return row.verdict != SlopeVerdict::kFlat;
  });
  std::string out = fmt::format("{} of {} width rows", width_out, r.rows.size());
  if (!r.depth_rows.empty()) {
    const auto depth_out =
        std::count_if(r.depth_rows.begin(), r.depth_rows.end(),
                      [](const DepthRow& row) { return row.verdict != SlopeVerdict::kFlat; });
    out += fmt::format(" and {} of {} depth rows", depth_out, r.depth_rows.size());
  }
  return out + " are outside their band";
}

// ---- The tables.

std::vector<std::pair<std::string, std::string>> settings(const CoordCheckResult& r) {
  const CoordCheckSpec& s = r.spec;
  return {
      {"parametrization",
       fmt::format("{}, base width {}, base depth {}", parametrization_name(s.parametrization),
                   r.base_width, r.base_depth)},
      {"widths", list_of(s.widths)},
      {"depths", s.depths.empty() ? "- (no depth check)" : list_of(s.depths)},
      {"seeds", std::to_string(s.seeds)},
      {"optimizer", optimizer_text(s.train)},
      {"steps", fmt::format("{} (measured at init and after each update)", s.train.steps)},
      {"tolerance", fmt::format("a slope within its band ± {} (or twice its seeds' spread) is FLAT",
                                format_significant(s.tolerance, 3))},
  };
}

std::string multipliers_title(const CoordCheckResult& r) {
  return fmt::format("multipliers at width {} (1 at the base width {})", r.multipliers_width,
                     r.base_width);
}

Table multipliers_table(const CoordCheckResult& r) {
  Table t =
      table_of({"tensor", "role", "init std ×", "lr ×", "eps ×"}, {false, false, true, true, true});
  for (const TensorMultipliers& m : r.multipliers) {
    t.rows.push_back({m.name, std::string(tensor_role_name(m.role)),
                      format_significant(m.init_std, 4), format_significant(m.lr, 4),
                      format_significant(m.eps, 4)});
  }
  return t;
}

std::vector<int> steps_of(const CoordCheckResult& r) {
  std::set<int> steps;
  for (const CoordRow& row : r.rows) steps.insert(row.step);
  return {steps.begin(), steps.end()};
}

Table step_table(const CoordCheckResult& r, int step) {
  const auto [lo, hi] = extremes(r.spec.widths);
  Table t =
      table_of({"row", "role", "quantity", fmt::format("l1 w={}", value_at(r.spec.widths, lo)),
                fmt::format("l1 w={}", value_at(r.spec.widths, hi)), "slope ± spread", "expected",
                "verdict"},
               {false, false, false, true, true, true, true, false});
  for (const CoordRow& row : r.rows) {
    if (row.step != step) continue;
    t.rows.push_back({row.label, std::string(tensor_role_name(row.role)),
                      std::string(coord_quantity_name(row.quantity)), format_number(at(row.l1, lo)),
                      format_number(at(row.l1, hi)), slope_cell(row.slope, row.spread),
                      band_cell(row.expected_low, row.expected_high),
                      std::string(slope_verdict_name(row.verdict))});
  }
  return t;
}

std::string depth_title(const CoordCheckResult& r) {
  return fmt::format(
      "depth check at width {}: the last block and what follows it, rms against depth (residual "
      "branches x{} at depth {})",
      r.base_width, format_significant(r.depth_residual_scale, 4),
      r.spec.depths.empty() ? 0 : *std::max_element(r.spec.depths.begin(), r.spec.depths.end()));
}

Table depth_table(const CoordCheckResult& r) {
  const auto [lo, hi] = extremes(r.spec.depths);
  Table t =
      table_of({"op", "quantity", "step", fmt::format("rms L={}", value_at(r.spec.depths, lo)),
                fmt::format("rms L={}", value_at(r.spec.depths, hi)), "slope ± spread", "expected",
                "verdict"},
               {false, false, true, true, true, true, true, false});
  for (const DepthRow& row : r.depth_rows) {
    t.rows.push_back({row.stream ? row.label + " (stream)" : row.label,
                      std::string(coord_quantity_name(row.quantity)), std::to_string(row.step),
                      format_number(at(row.rms, lo)), format_number(at(row.rms, hi)),
                      slope_cell(row.slope, row.spread),
                      band_cell(row.expected_low, row.expected_high),
                      std::string(slope_verdict_name(row.verdict))});
  }
  return t;
}

// Text wrapped at blanks to at most kMaxColumns columns, continuation lines indented two more
// than the first.
std::string wrapped(std::string_view text) {
  if (columns_of(text) <= kMaxColumns) return std::string(text) + "\n";
  const std::size_t indent = std::min(text.find_first_not_of(' '), text.size());
  std::string out;
  std::string line(indent, ' ');
  bool fresh = true;  // no word on the line yet
  std::size_t start = indent;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(start, end - start);
    start = end + 1;
    if (word.empty()) continue;
    if (!fresh && columns_of(line) + 1 + columns_of(word) > kMaxColumns) {
      out += line + "\n";
      line = std::string(indent + 2, ' ');
      fresh = true;
    }
    if (!fresh) line += ' ';
    line += word;
    fresh = false;
  }
  return out + line + "\n";
}

}  // namespace

std::string coordcheck_text(const CoordCheckResult& r) {
  std::string out = wrapped(fmt::format("gradscope coordcheck: {}", r.name));
  for (const auto& [key, value] : settings(r)) {
    out += wrapped(fmt::format("  {:<16} {}", key, value));
  }
  out += fmt::format("\n{}", wrapped(multipliers_title(r)));
  out += r.multipliers.empty() ? "(no parameter tensors)\n" : render_text(multipliers_table(r));
  for (const int step : steps_of(r)) {
    out += fmt::format("\n{}\n{}", step_title(step), render_text(step_table(r, step)));
  }
  if (!r.depth_rows.empty()) {
    out += fmt::format("\n{}{}", wrapped(depth_title(r)), render_text(depth_table(r)));
  }
  out += "\n";
  for (const std::string& s : verdict_sentences(r, [](const std::string& l) { return l; })) {
    out += wrapped(s);
  }
  if (!r.passed()) out += wrapped(outside_count(r));
  return out;
}

std::string coordcheck_markdown(const CoordCheckResult& r) {
  std::string out = fmt::format("# gradscope coordcheck: {}\n\n", markdown_escape(r.name));
  for (const std::string& s :
       verdict_sentences(r, [](const std::string& l) { return markdown_escape(l); })) {
    // "FAIL: ..." -> "**FAIL**: ...": the outcome first, in bold.
    const std::size_t colon = s.find(':');
    out += fmt::format("**{}**{}\n\n", s.substr(0, colon), s.substr(colon));
  }
  if (!r.passed()) out += outside_count(r) + ".\n\n";
  Table check = table_of({"setting", "value"}, {false, false});
  for (const auto& [key, value] : settings(r)) check.rows.push_back({key, value});
  out += fmt::format("## Check\n\n{}", render_markdown(check));
  out += fmt::format("\n## {}\n\n", markdown_escape(multipliers_title(r)));
  out += r.multipliers.empty() ? "No parameter tensors.\n" : render_markdown(multipliers_table(r));
  for (const int step : steps_of(r)) {
    out += fmt::format("\n## {}\n\n{}", step_title(step), render_markdown(step_table(r, step)));
  }
  if (!r.depth_rows.empty()) {
    out += fmt::format("\n## {}\n\n{}", markdown_escape(depth_title(r)),
                       render_markdown(depth_table(r)));
  }
  return out;
}

}  // namespace gradscope
