// The text report's remedy (what to change, first) and diagnosis (the verdict and each finding
// with its evidence and advice, last).

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/report_text.hpp"
#include "report/report_text_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope::report_text_detail {

namespace {

using namespace text_format;

std::string_view severity_color(Severity s) {
  switch (s) {
    case Severity::kError:
      return kRed;
    case Severity::kWarning:
      return kYellow;
    case Severity::kInfo:
      break;
  }
  return kDim;
}

// "log10_grad_ratio_first_to_last = -3 (threshold <= -2)"; context evidence (a NaN threshold)
// has no threshold to show.
std::string evidence_text(const Evidence& e, int finding_layer) {
  std::string out = e.quantity;
  if (e.layer != 0 && e.layer != finding_layer) out += fmt::format(" at layer {}", e.layer);
  out += " = " + format_number(e.value);
  if (!std::isnan(e.threshold)) {
    out += fmt::format(" (threshold {} {})", e.relation, format_number(e.threshold));
  }
  return out;
}

std::string check_text(const AdviceCheck& c) {
  const std::string after = c.findings_after.empty()
                                ? "no findings"
                                : fmt::format("{}", fmt::join(c.findings_after, ", "));
  return fmt::format("checked: {} {} -> {}; {}; after: {} ({})", c.metric, format_number(c.before),
                     format_number(c.after), c.helped ? "helped" : "did not help",
                     verdict_name(c.verdict_after), after);
}

// One advice: its sentence after `marker`, then one line per change and the check, under it.
void append_advice(std::string& out, std::string_view marker, const Advice& a) {
  constexpr std::string_view kIndent = "    ";
  const std::string first = std::string(kIndent) + std::string(marker);
  const std::string under = std::string(kIndent) + std::string(display_width(marker), ' ');
  append_wrapped(out, first, under, a.text);
  for (const ConfigChange& c : a.changes) {
    append_wrapped(out, under, under + "  ", set_argument(c));
  }
  if (a.check) append_wrapped(out, under, under + "  ", check_text(*a.check));
}

// One finding at `indent`: its head, explanation, evidence and advice.
void append_finding(std::string& out, const Finding& f, const Painter& paint,
                    const std::string& indent, const Report& r) {
  const std::string tag = fmt::format("[{}]", severity_name(f.severity));
  const std::string where =
      f.layer == 0 ? std::string("(whole network)") : fmt::format("at layer {}", f.layer);
  const std::string head = fmt::format(" {} {}", sanitize(f.code), where);
  // The tag is painted after the line is fitted, so colour never counts towards the width.
  append_line(out, indent + paint(tag, severity_color(f.severity)) +
                       fit(head, kLineWidth - indent.size() - display_width(tag)));
  const std::string body = indent + "  ";
  append_wrapped(out, body, body, f.explanation);
  for (const Evidence& e : f.evidence) {
    append_wrapped(out, body, body + "  ", evidence_text(e, f.layer));
  }
  for (const Advice& a : f.advice) append_advice(out, "-> ", a);
  if (f.cause.empty() && f.advice.empty() && f.severity != Severity::kInfo) {
    const std::string pieces = remedy_pieces_for(r, f.code);
    if (!pieces.empty()) {
      append_line(
          out, body + "-> fixed by the remedy's piece " + pieces + " (advice listed once, above)");
    }
  }
  if (!f.rejected_advice.empty()) {
    append_line(out, body + "tried and rejected (the check showed no improvement):");
    for (const Advice& a : f.rejected_advice) append_advice(out, "x  ", a);
  }
}

}  // namespace

std::string diagnosis_block(const Report& r, const Painter& paint) {
  std::string out;
  std::string verdict = fmt::format("Verdict: {}", verdict_name(r.verdict));
  if (!r.findings.empty()) verdict += fmt::format(" ({})", finding_counts(r.findings));
  append_line(out, paint(verdict, kBold));
  if (r.findings.empty()) {
    append_line(out, "Findings: none");
    return out;
  }
  append_line(out, paint("Findings", kBold));
  for (const Finding& f : r.findings) {
    if (!f.cause.empty()) continue;
    append_finding(out, f, paint, "  ", r);
    if (f.consequences.empty()) continue;
    append_line(out, fmt::format("    consequences of {} (fixed with it):", sanitize(f.code)));
    for (const Finding& c : r.findings) {
      if (c.cause == f.code) append_finding(out, c, paint, "      ", r);
    }
  }
  return out;
}

// The one remedy, at the top: its pieces, the --set arguments that apply them all, and the check.
std::string remedy_block(const Report& r, const Painter& paint) {
  std::string out;
  if (!r.remedy) return out;
  const Remedy& remedy = *r.remedy;
  append_line(out, paint(fit(fmt::format("Remedy: {} ({})", remedy_headline(remedy, r.findings),
                                         remedy_status(remedy)),
                             kLineWidth),
                         kBold));
  for (std::size_t k = 0; k < remedy.pieces.size(); ++k) {
    const RemedyPiece& p = remedy.pieces[k];
    const std::string first = fmt::format("  {}. ", k + 1);
    append_wrapped(out, first, std::string(first.size(), ' '),
                   fmt::format("{} (for {})", p.text, fmt::join(p.addresses, ", ")));
  }
  if (!remedy.changes.empty()) {
    append_line(out,
                remedy.pieces.size() == 1 ? "  apply it with:" : "  apply them together with:");
    for (const ConfigChange& c : remedy.changes) {
      append_wrapped(out, "    ", "      ", set_argument(c));
    }
  }
  if (!remedy.not_addressed.empty()) {
    append_wrapped(out, "  ", "    ",
                   fmt::format("not addressed: {} (gradscope knows no fix for it, or none that "
                               "composes with the pieces chosen)",
                               fmt::join(remedy.not_addressed, ", ")));
  }
  if (remedy.check) {
    const RemedyCheck& c = *remedy.check;
    append_wrapped(
        out, "  ", "    ",
        fmt::format("after it: {}", c.findings_after.empty()
                                        ? std::string("no findings")
                                        : fmt::format("{}", fmt::join(c.findings_after, ", "))));
    for (const std::string& d : c.dropped) {
      append_wrapped(out, "  ", "    ", "dropped (the rest did as well without it): " + d);
    }
    for (const std::string& a : c.added) {
      append_wrapped(out, "  ", "    ",
                     "added (the re-run's own diagnosis, and it fixed more): " + a);
    }
  }
  return out;
}

}  // namespace gradscope::report_text_detail
