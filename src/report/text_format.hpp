// Formatting shared by the text, Markdown, SVG and HTML writers (private to src/report/): the
// report's spelling of numbers (through core/number_format.hpp, as every layer spells them),
// magnitudes rebuilt from their log10 beyond double's range, and escaping for each format.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/number_format.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope::text_format {

// A value without a number: "n/a" where it is undefined (NaN: no finite value to take it from),
// "inf" or "-inf" where it is infinite. Readers never meet a bare "nan".
inline std::string nonfinite_name(double v) { return nonfinite_word(v); }

// Three significant digits; "n/a", "inf", "-inf" otherwise.
inline std::string format_number(double v) {
  if (!std::isfinite(v)) return nonfinite_name(v);
  return format_significant(v, 3);
}

// A Magnitude with three significant digits. Beyond double's range (and in the subnormal range,
// where the value has lost digits) it is rebuilt from its log10: 10^-600.5 -> "3.16e-601".
inline std::string format_magnitude(const Magnitude& m) {
  if (std::isnan(m.log10) || std::isnan(m.value)) return "n/a";
  if (std::isinf(m.log10)) return m.log10 > 0 ? "inf" : "0";
  if (std::isnormal(m.value)) return format_significant(m.value, 3);
  return format_pow10(m.log10, 2);
}

// log10 values with two decimals, "-inf" for an exact zero.
inline std::string format_log10(double v) {
  if (!std::isfinite(v)) return nonfinite_name(v);
  return format_fixed(v, 2);
}

// A table cell without a value: "n/a" where it is undefined (no finite value: a layer past a
// forward overflow), "inf" or "-inf" where it is.
inline std::string undefined_or_nonfinite(double v) {
  return std::isnan(v) ? "n/a" : nonfinite_name(v);
}

inline std::string undefined_or_nonfinite_number(double v) {
  return std::isnan(v) ? "n/a" : format_number(v);
}

inline std::string magnitude_cell(const Magnitude& m) {
  return std::isnan(m.log10) ? "n/a" : format_magnitude(m);
}

// A fraction as a percentage with one decimal (no % sign).
inline std::string format_percent(double fraction) {
  if (!std::isfinite(fraction)) return nonfinite_name(fraction);
  return format_fixed(100.0 * fraction, 1);
}

// Saturation is not defined for the relu family, norms and the other ops without a flat tail.
inline std::string sat_cell(double fraction) {
  return std::isnan(fraction) ? "-" : format_percent(fraction);
}

inline std::string group_thousands(std::int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// "4", or "4 x 16 tokens" for a batch of sequences: the headers' batch.
inline std::string batch_label(const InputSpec& input) {
  if (input.tokens <= 1) return std::to_string(input.batch);
  return fmt::format("{} x {} tokens", input.batch, input.tokens);
}

// ---- Sequence models: what the reports of tokens, attention and parameters share.

// The entropy of a uniform attention row, the value attention_entropy starts near: ln T without a
// mask; with a causal one, query t (0-based) sees t + 1 keys, and the mean over the T queries of
// ln(t + 1) is ln(T!) / T.
inline double uniform_attention_entropy(int tokens, bool causal) {
  if (tokens < 1) return std::nan("");
  const double t = static_cast<double>(tokens);
  return causal ? std::lgamma(t + 1.0) / t : std::log(t);
}

inline bool has_attention_ops(const Report& r) {
  return std::any_of(r.layers.begin(), r.layers.end(),
                     [](const LayerReport& l) { return l.kind == OpKind::kAttention; });
}

// Whether the reports list every learned tensor on its own: where a network has tensors of
// different roles in one op (attention, GLU) or weights loaded from a file, whose names the user
// knows. A stack of dense layers has one weight and one bias a layer, already in its table.
inline bool shows_parameters(const Report& r) {
  if (r.parameter_list.empty()) return false;
  return r.sources.has_value() ||
         std::any_of(r.layers.begin(), r.layers.end(), [](const LayerReport& l) {
           return l.kind == OpKind::kAttention || l.kind == OpKind::kGlu;
         });
}

// "(256, 64)", PyTorch's spelling of a shape.
inline std::string shape_label(const std::vector<std::int64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape.front());
  return fmt::format("({})", fmt::join(shape, ", "));
}

// ||dL/dp|| / ||p||: how far one plain gradient step of size 1 moves the tensor, relative to it.
// Undefined (NaN) for a tensor that is 0, a bias at its zero init: nothing to be relative to.
inline Magnitude grad_to_param(const ParamStats& p) {
  if (p.norm == 0.0) return magnitude_from_log10(std::nan(""));
  return magnitude_ratio(p.grad_norm, magnitude_from_scaled(p.norm, 0));
}

// A ratio to a tensor's norm in scientific notation, to read its decade at a glance; "-" for a
// tensor that is 0 (no ratio), blank without one (no optimizer step).
inline std::string param_ratio_cell(const Magnitude& m, double norm, bool present = true) {
  if (!present) return "";
  if (norm == 0.0) return "-";
  if (std::isnormal(m.value)) return fmt::format("{:.2e}", m.value);
  return std::isnan(m.log10) ? "n/a" : format_magnitude(m);
}

// ---- Text that must not change a document's structure.

// Markdown punctuation that can start emphasis, code, a link or image, a table cell, math, a
// mention or an issue reference mid-line, backslash-escaped; HTML's three as entities, so no name
// can open a tag. Line breaks and other control characters become blanks: a newline would end a
// table row or a heading. Every line a writer emits starts with its own markup, so the
// characters that matter only at the start of a line (#, -, +, >, digits) need nothing more.
inline std::string markdown_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += ' ';
      continue;
    }
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '|':
      case '~':
      case '$':
      case '@':
      case '#':
      case '!':
        out += '\\';
        out += c;
        break;
      default:
        out += c;
    }
  }
  return out;
}

// An inline Markdown code span holding `text` verbatim: the fence is one backtick longer than the
// longest run inside, and blanks pad a text that starts or ends with a backtick (CommonMark 6.1).
inline std::string markdown_code(std::string_view text) {
  std::string body;
  std::size_t run = 0;
  std::size_t longest = 0;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    body += (u < 0x20 || u == 0x7F) ? ' ' : c;
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(longest + 1, '`');
  const bool pad = !body.empty() && (body.front() == '`' || body.back() == '`');
  return pad ? fence + " " + body + " " + fence : fence + body + fence;
}

// XML's (and HTML's) five special characters as entities; control characters (not allowed in
// XML 1.0, and a newline would be collapsed anyway) as blanks.
inline std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += ' ';
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// What the op is, in a few characters: the tables' kind column, the plots' row labels.
inline std::string op_label(const LayerReport& l) {
  switch (l.kind) {
    case OpKind::kDense:
      return std::string(activation_info(l.activation.kind).name);
    case OpKind::kActivation:
      return fmt::format("act:{}", activation_info(l.activation.kind).name);
    case OpKind::kNorm:
      return std::string(norm_name(l.norm.kind));
    case OpKind::kDropout:
      return fmt::format("dropout {:g}", l.dropout);
    case OpKind::kAttention:
      return fmt::format("attn {}h{}", l.attention.heads, l.attention.causal ? " causal" : "");
    case OpKind::kGlu:
      return fmt::format("glu:{}", activation_info(l.glu.activation.kind).name);
    case OpKind::kConv:
      return fmt::format("conv{}x{}{}:{}", l.conv.kernel_h, l.conv.kernel_w,
                         l.conv.stride_h > 1 ? "/" + std::to_string(l.conv.stride_h) : "",
                         activation_info(l.activation.kind).name);
    case OpKind::kPool:
      return l.pool.kind == PoolKind::kGlobalAverage
                 ? std::string("gap")
                 : fmt::format("{}pool{}", l.pool.kind == PoolKind::kMax ? "max" : "avg",
                               l.pool.kernel_h);
    case OpKind::kFlatten:
      return "flatten";
    case OpKind::kResidualBegin:  // not reported: its block is reported at its end
    case OpKind::kResidualEnd:
      break;
  }
  const ResidualSpec& res = l.residual;
  if (res.scale == 1.0) return res.projection ? "residual+proj" : "residual";
  // Both at once do not fit as "residual x0.5+proj": the scale is the number to keep.
  if (res.projection) return fmt::format("res x{:g}+proj", res.scale);
  return fmt::format("residual x{:g}", res.scale);
}

// ---- The diagnosis's counts, the same words in every writer.

// "info" is a mass noun: "2 info", not "2 infos".
inline std::string severity_count(std::int64_t n, Severity s) {
  static constexpr std::string_view kNames[] = {"info", "warning", "error"};
  const std::string_view name = kNames[static_cast<int>(s)];
  return fmt::format("{} {}{}", n, name, n != 1 && s != Severity::kInfo ? "s" : "");
}

// The root findings per severity, worst first, then the consequences folded under them: "1 error,
// 2 warnings; 4 consequences". Empty without findings.
inline std::string finding_counts(const std::vector<Finding>& findings) {
  std::vector<std::string> parts;
  for (const Severity s : {Severity::kError, Severity::kWarning, Severity::kInfo}) {
    const auto n = std::count_if(findings.begin(), findings.end(), [&](const Finding& f) {
      return f.cause.empty() && f.severity == s;
    });
    if (n > 0) parts.push_back(severity_count(n, s));
  }
  std::string out = fmt::format("{}", fmt::join(parts, ", "));
  const auto folded = std::count_if(findings.begin(), findings.end(),
                                    [](const Finding& f) { return !f.cause.empty(); });
  if (folded > 0) out += fmt::format("; {} consequence{}", folded, folded == 1 ? "" : "s");
  return out;
}

// The 1-based numbers of the remedy's pieces that address a root finding ("2" or "1 and 2");
// empty when none does. A root whose fix is listed under an earlier root points there.
inline std::string remedy_pieces_for(const Report& r, const std::string& code) {
  std::vector<std::string> numbers;
  if (!r.remedy) return "";
  for (std::size_t k = 0; k < r.remedy->pieces.size(); ++k) {
    const std::vector<std::string>& a = r.remedy->pieces[k].addresses;
    if (std::find(a.begin(), a.end(), code) != a.end()) numbers.push_back(std::to_string(k + 1));
  }
  return fmt::format("{}", fmt::join(numbers, " and "));
}

// What the remedy is for: "2 changes for 1 error and 1 warning".
inline std::string remedy_headline(const Remedy& remedy, const std::vector<Finding>& findings) {
  int errors = 0, warnings = 0;
  for (const std::string& code : remedy.addresses) {
    for (const Finding& f : findings) {
      if (f.code != code || !f.cause.empty()) continue;
      errors += f.severity == Severity::kError ? 1 : 0;
      warnings += f.severity == Severity::kWarning ? 1 : 0;
    }
  }
  std::vector<std::string> aims;
  if (errors > 0) aims.push_back(severity_count(errors, Severity::kError));
  if (warnings > 0) aims.push_back(severity_count(warnings, Severity::kWarning));
  const std::size_t n = remedy.pieces.size();
  if (n == 0) {
    return remedy.check ? "no change proven to help: no combination of the fixes left fewer alarms"
                        : "no known fix";
  }
  std::string out = fmt::format("{} change{}", n, n == 1 ? "" : "s");
  if (!aims.empty()) out += fmt::format(" for {}", fmt::join(aims, " and "));
  return out;
}

// The check's outcome in a few words: "checked: error -> healthy" or "proposed, not re-run".
inline std::string remedy_status(const Remedy& remedy) {
  if (!remedy.check) return "proposed; --check-advice re-runs it to prove it";
  static constexpr std::string_view kVerdicts[] = {"healthy", "warning", "error"};
  return fmt::format("checked by re-running: {} -> {}",
                     kVerdicts[static_cast<int>(remedy.check->verdict_before)],
                     kVerdicts[static_cast<int>(remedy.check->verdict_after)]);
}

}  // namespace gradscope::text_format
