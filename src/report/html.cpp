// The HTML pages: one style sheet, the plots inline, every piece of user text escaped. The
// markup is also well-formed XML (void tags closed, numeric entities), so tests can parse it.
#include "gradscope/report/html.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/report/report_text.hpp"
#include "gradscope/report/svg.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "gradscope/version.hpp"
#include "report/criticality_text.hpp"
#include "report/signal_propagation.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

constexpr std::string_view kStyle = R"(
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222;
       line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.verdict { display: inline-block; padding: 0.15em 0.7em; border-radius: 0.8em; font-weight: bold;
           color: #fff; }
.verdict.healthy { background: #1b7f3b; } .verdict.warning { background: #b86e00; }
.verdict.error { background: #b3261e; }
.sev { font-weight: bold; text-transform: uppercase; font-size: 0.8em; }
.sev.info { color: #0b5394; } .sev.warning { color: #b86e00; } .sev.error { color: #b3261e; }
.finding { margin: 0.8em 0; padding: 0.6em 0.9em; border-left: 4px solid #ccc; background: #fafafa; }
.finding.warning { border-color: #e69f00; } .finding.error { border-color: #d55e00; }
.finding.info { border-color: #56b4e9; }
code { background: #f0f0f0; padding: 0.05em 0.3em; border-radius: 3px; font-size: 0.9em;
       word-break: break-all; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.plot { margin: 0.8em 0; overflow-x: auto; }
.plot svg { display: block; width: 100%; min-width: 540px; height: auto; }
.muted { color: #666; font-size: 0.9em; }
.consequences { margin: 0.4em 0 0 1.2em; }
.consequences .finding { background: #fff; }
.remedy { padding: 0.6em 0.9em; border: 1px solid #1b7f3b; border-radius: 4px; background: #f3faf5; }
.remedy pre { background: #f0f0f0; padding: 0.5em; white-space: pre-wrap; word-break: break-all; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  .plot { overflow: visible; }
  .plot svg { min-width: 0; }
  .plot, tr { break-inside: avoid; }
  h1, h2 { break-after: avoid; }
  .verdict { color: #000; border: 1px solid #000; }
}
)";

std::string verdict_badge(std::string_view verdict) {
  return fmt::format("<span class=\"verdict {0}\">{0}</span>", html_escape(verdict));
}

// A finding; a root's consequences nested inside it, after its advice.
std::string finding_html(const Finding& f, const Report& r) {
  const std::vector<Finding>& all = r.findings;
  std::string out = fmt::format("<div class=\"finding {}\">", severity_name(f.severity));
  out += fmt::format("<span class=\"sev {0}\">{0}</span> <code>{1}</code> {2}<br/>",
                     severity_name(f.severity), html_escape(f.code),
                     f.layer > 0 ? fmt::format("at layer {}", f.layer) : "whole network");
  out += "<p>" + html_escape(f.explanation) + "</p>";
  if (!f.evidence.empty()) {
    out += "<p class=\"muted\">Evidence: ";
    bool first = true;
    for (const Evidence& e : f.evidence) {
      if (!first) out += "; ";
      first = false;
      out += fmt::format("<code>{}</code> = {}", html_escape(e.quantity), format_number(e.value));
      if (e.layer > 0 && e.layer != f.layer) out += fmt::format(" (layer {})", e.layer);
      if (!e.relation.empty()) {
        out +=
            fmt::format(" (threshold {} {})", html_escape(e.relation), format_number(e.threshold));
      }
    }
    out += "</p>";
  }
  const auto advice = [&](const Advice& a, bool rejected) {
    std::string s = "<li>" + std::string(rejected ? "<s>" : "") + html_escape(a.text) +
                    (rejected ? "</s> (tried: it did not help)" : "");
    for (const ConfigChange& c : a.changes)
      s += "<br/><code>" + html_escape(set_argument(c)) + "</code>";
    if (a.check) {
      s += fmt::format("<br/><span class=\"muted\">checked: {} &#8594; {}; {}; after: {}</span>",
                       format_number(a.check->before), format_number(a.check->after),
                       a.check->helped ? "helped" : "did not help",
                       verdict_name(a.check->verdict_after));
    }
    return s + "</li>";
  };
  if (!f.advice.empty() || !f.rejected_advice.empty()) {
    out += "<ul>";
    for (const Advice& a : f.advice) out += advice(a, false);
    for (const Advice& a : f.rejected_advice) out += advice(a, true);
    out += "</ul>";
  }
  if (f.cause.empty() && f.advice.empty() && f.severity != Severity::kInfo) {
    const std::string pieces = remedy_pieces_for(r, f.code);
    if (!pieces.empty()) {
      out += fmt::format(
          "<p class=\"muted\">Fixed by the remedy's piece {} (advice listed once, "
          "above).</p>",
          pieces);
    }
  }
  if (!f.consequences.empty()) {
    out += fmt::format(
        "<p class=\"muted\">Consequences of <code>{}</code> (fixed with it):</p>"
        "<div class=\"consequences\">",
        html_escape(f.code));
    for (const Finding& c : all) {
      if (c.cause == f.code) out += finding_html(c, r);
    }
    out += "</div>";
  }
  return out + "</div>\n";
}

// The one remedy, near the top: its pieces, the --set arguments that apply them all, the check.
std::string remedy_html(const Report& r) {
  const Remedy& remedy = *r.remedy;
  std::string out = fmt::format("<h2>Remedy</h2>\n<div class=\"remedy\"><p><b>{}</b> ({})</p><ol>",
                                html_escape(remedy_headline(remedy, r.findings)),
                                html_escape(remedy_status(remedy)));
  for (const RemedyPiece& p : remedy.pieces) {
    std::string codes;
    for (const std::string& c : p.addresses) {
      codes += (codes.empty() ? "" : ", ") + fmt::format("<code>{}</code>", html_escape(c));
    }
    out += fmt::format("<li>{} (for {})</li>", html_escape(p.text), codes);
  }
  out += "</ol>";
  if (!remedy.changes.empty()) {
    out += remedy.pieces.size() == 1 ? "<p>Apply it with:</p><pre>"
                                     : "<p>Apply them together:</p><pre>";
    for (const ConfigChange& c : remedy.changes) out += html_escape(set_argument(c)) + "\n";
    out += "</pre>";
  }
  if (remedy.check) {
    std::string after;
    for (const std::string& f : remedy.check->findings_after) {
      after += (after.empty() ? "" : ", ") + html_escape(f);
    }
    out += fmt::format("<p class=\"muted\">After it: {}.</p>",
                       after.empty() ? std::string("no findings") : after);
  }
  return out + "</div>\n";
}

std::string plot(std::string_view svg) {
  return "<div class=\"plot\">" + std::string(svg) + "</div>\n";
}

// Sequence inputs: the example correlation gives way to the token statistics (the first 64
// columns it is over are then tokens of a few examples, not examples).
std::string layer_table(const Report& r) {
  const std::vector<bool> show = rows_to_show(r, 200);
  const bool tokens = r.spec.input.tokens > 1;
  const int columns = tokens ? 11 : 10;
  std::string out =
      "<table><tr><th>layer</th><th class=\"l\">kind</th><th>width</th><th class=\"l\">"
      "activation / norm</th><th>act rms</th><th>grad rms</th><th>gain</th><th>dead %</th>"
      "<th>sat %</th>";
  out += tokens ? "<th>tok cos</th><th>tok crms</th></tr>\n" : "<th>correlation</th></tr>\n";
  std::size_t hidden = 0;
  const auto hidden_row = [&] {
    out += fmt::format("<tr><td class=\"l\" colspan=\"{}\">&#8230; {} layers &#8230;</td></tr>\n",
                       columns, hidden);
    hidden = 0;
  };
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    if (!show[i]) {
      ++hidden;
      continue;
    }
    if (hidden > 0) hidden_row();
    const LayerReport& l = r.layers[i];
    out += fmt::format(
        "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        l.index, op_kind_name(l.kind), l.width, html_escape(op_label(l)),
        l.forward.act.finite == 0 ? std::string("n/a") : format_number(l.forward.act.rms),
        magnitude_cell(l.backward.grad_preact_rms), magnitude_cell(l.backward.gain),
        format_percent(l.forward.dead_fraction), sat_cell(l.forward.saturated_fraction));
    if (!tokens) {
      out +=
          fmt::format("<td>{}</td></tr>\n", undefined_or_nonfinite_number(l.forward.correlation));
    } else if (l.forward.has_tokens) {
      out += fmt::format("<td>{}</td><td>{}</td></tr>\n",
                         undefined_or_nonfinite_number(l.forward.token_mean_cosine),
                         format_number(l.forward.token_centered_rms));
    } else {
      out += "<td>-</td><td>-</td></tr>\n";
    }
  }
  if (hidden > 0) hidden_row();
  out += "</table>\n";
  if (tokens) {
    out +=
        "<p class=\"muted\">Tok cos: mean cosine between two tokens' outputs in one example; near "
        "1, the tokens have collapsed into one (rank collapse). Tok crms: rms of each token's "
        "output minus its example's mean token, what tells the tokens apart (compare with act "
        "rms).</p>\n";
  }
  return out;
}

// One row per attention op: its entropy beside a uniform row's, its largest logit, its peaked
// rows.
std::string attention_table(const Report& r) {
  const int tokens = r.spec.input.tokens;
  std::string out = fmt::format(
      "<p>Entropy in nats beside a uniform row's: ln T = ln {} = {} for a full mask; for a causal "
      "one, query t sees t + 1 keys and the uniform entropy is the mean over t of ln(t + 1) = "
      "{}.</p>\n",
      tokens, format_number(uniform_attention_entropy(tokens, false)),
      format_number(uniform_attention_entropy(tokens, true)));
  out +=
      "<table><tr><th>layer</th><th>heads</th><th class=\"l\">mask</th><th>entropy</th>"
      "<th>uniform</th><th>max logit</th><th>peaked %</th></tr>\n";
  for (const LayerReport& l : r.layers) {
    if (l.kind != OpKind::kAttention) continue;
    const ForwardStats& f = l.forward;
    out += fmt::format(
        "<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td></tr>\n",
        l.index, l.attention.heads, l.attention.causal ? "causal" : "full",
        format_number(f.attention_entropy),
        format_number(uniform_attention_entropy(tokens, l.attention.causal)),
        format_number(f.attention_max_logit), format_percent(f.attention_peaked_fraction));
  }
  out +=
      "</table>\n<p class=\"muted\">Entropy: mean over rows (example, head, query) of "
      "&#8722;&#8721; P ln P; far below uniform, queries attend to few keys (entropy collapse). "
      "Near uniform in every op while tok cos nears 1: attention averages the tokens into one "
      "vector (rank collapse). Max logit: the largest scaled logit q&#183;k over unmasked "
      "entries (large: a saturated softmax). Peaked %: rows whose largest weight exceeds "
      "0.99.</p>\n";
  return out;
}

// Every learned tensor, as the text report elides it (first, last, extremes).
std::string parameter_table(const Report& r) {
  const std::vector<ParameterReport>& params = r.parameter_list;
  const std::vector<bool> show = parameters_to_show(r, 200);
  const bool update = std::any_of(params.begin(), params.end(),
                                  [](const ParameterReport& p) { return p.stats.has_update; });
  const int columns = update ? 7 : 6;
  std::string out =
      "<table><tr><th class=\"l\">name</th><th>layer</th><th class=\"l\">shape</th>"
      "<th>norm</th><th>grad norm</th><th>grad/param</th>";
  out += update ? "<th>update</th></tr>\n" : "</tr>\n";
  std::size_t hidden = 0;
  const auto hidden_row = [&] {
    out += fmt::format("<tr><td class=\"l\" colspan=\"{}\">&#8230; {} tensors &#8230;</td></tr>\n",
                       columns, hidden);
    hidden = 0;
  };
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!show[i]) {
      ++hidden;
      continue;
    }
    if (hidden > 0) hidden_row();
    const ParamStats& s = params[i].stats;
    out += fmt::format(
        "<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td class=\"l\">{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td>",
        html_escape(params[i].name), params[i].layer, shape_label(s.shape), format_number(s.norm),
        magnitude_cell(s.grad_norm), param_ratio_cell(grad_to_param(s), s.norm));
    if (update) {
      out += fmt::format("<td>{}</td>", param_ratio_cell(s.update_to_weight, s.norm, s.has_update));
    }
    out += "</tr>\n";
  }
  if (hidden > 0) hidden_row();
  out +=
      "</table>\n<p class=\"muted\">Grad/param: &#8214;&#8706;L/&#8706;p&#8214; / "
      "&#8214;p&#8214;.";
  if (update) {
    out +=
        " Update: &#8214;one optimizer step on p&#8214; / &#8214;p&#8214; (rule of thumb "
        "~1e-3).";
  }
  return out + "</p>\n";
}

}  // namespace

std::string html_escape(std::string_view text) { return xml_escape(text); }

std::string html_page(std::string_view title, std::string_view body) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n<meta "
      "charset=\"utf-8\"/>\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
      "<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n{}"
      "<p class=\"muted\">Written by gradscope {}.</p>\n</body>\n</html>\n",
      html_escape(title), kStyle, body, kVersion);
}

std::string report_to_html(const Report& r) {
  std::string body = fmt::format("<h1>gradscope: {}</h1>\n", html_escape(r.spec.name));
  body += fmt::format(
      "<p>{} &#160; {}</p>\n", verdict_badge(verdict_name(r.verdict)),
      r.findings.empty() ? std::string("no findings") : html_escape(finding_counts(r.findings)));
  const double ratio = r.summary.log10_grad_ratio_first_to_last;
  body += fmt::format(
      "<p>{} layers, {} parameters, {}, batch {}, seed {}, loss {}. {}</p>\n", r.layers.size(),
      group_thousands(r.parameters), precision_name(r.spec.precision), batch_label(r.spec.input),
      r.spec.seed, loss_name(r.spec.loss.kind),
      std::isnan(ratio)
          ? std::string("The first-to-last gradient ratio is undefined: an end has no finite "
                        "gradient, or both are exactly 0.")
          : fmt::format("The first layer's gradient rms is <b>{}</b> times the last layer's "
                        "(log10 {}).",
                        html_escape(format_magnitude(magnitude_from_log10(ratio))),
                        format_log10(ratio)));
  if (r.remedy) body += remedy_html(r);
  body += "<h2>Findings</h2>\n";
  if (r.findings.empty()) body += "<p>None.</p>\n";
  for (const Finding& f : r.findings) {
    if (f.cause.empty()) body += finding_html(f, r);
  }
  const std::vector<std::pair<std::string, const Report*>> runs{{r.spec.name, &r}};
  body += "<h2>Gradient magnitude by layer</h2>\n" + plot(gradient_plot_svg(runs, true));
  body += "<h2>Activations by layer</h2>\n" + plot(activation_histogram_svg(r));
  body += "<h2>Dead and saturated units</h2>\n" + plot(unit_fraction_plot_svg(runs));
  if (r.spec.input.tokens > 1) {
    body += "<h2>Token similarity by layer</h2>\n" + plot(token_cosine_plot_svg(r));
  }
  if (has_attention_ops(r)) {
    body += "<h2>Attention</h2>\n" + plot(attention_entropy_plot_svg(r)) + attention_table(r);
  }
  if (const std::string table = signal_propagation::html_table(r); !table.empty()) {
    body += "<h2>Signal propagation</h2>\n" + plot(signal_propagation::svg(r)) + table;
  }
  if (r.criticality) {
    body += "<h2>Partial Jacobian norm</h2>\n<p>" +
            html_escape(criticality_paragraph(*r.criticality)) + "</p>\n";
    if (r.criticality->measured()) {
      body += "<p>J at layer " + html_escape(criticality_samples(*r.criticality)) + "</p>\n";
    }
  }
  body += "<h2>Layers</h2>\n" + layer_table(r);
  if (shows_parameters(r)) body += "<h2>Parameters</h2>\n" + parameter_table(r);
  return html_page("gradscope: " + r.spec.name, body);
}

std::string sweep_to_html(const SweepResult& s) {
  std::string body = fmt::format("<h1>gradscope sweep: {}</h1>\n", html_escape(s.name));
  body += fmt::format("<p>Config <code>{}</code>; {} points, {} seed{} each.</p>\n",
                      html_escape(s.config), s.points.size(), s.seeds, s.seeds == 1 ? "" : "s");
  body += plot(sweep_gradient_svg(s));
  body +=
      "<table><tr><th>point</th><th class=\"l\">settings</th><th class=\"l\">verdict</th>"
      "<th>log10 grad first / last</th><th class=\"l\">findings (warning or worse)</th></tr>\n";
  for (const SweepPointSummary& p : s.points) {
    std::string codes;
    for (const SweepRun& run : p.runs) {
      for (const SweepFinding& f : run.findings) {
        if (f.severity == "info" || codes.find(f.code) != std::string::npos) continue;
        codes += (codes.empty() ? "" : ", ") + f.code;
      }
    }
    body += fmt::format(
        "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td>"
        "<td class=\"l\">{}</td></tr>\n",
        p.point.index, html_escape(p.point.label), verdict_badge(p.worst_verdict),
        format_log10(p.ratio_mean), html_escape(codes));
  }
  body += "</table>\n";
  return html_page("gradscope sweep: " + s.name, body);
}

std::string comparison_to_html(const Comparison& c) {
  std::string body = fmt::format("<h1>gradscope compare: {} &#8594; {}</h1>\n",
                                 html_escape(c.base_name), html_escape(c.proposed_name));
  body += fmt::format(
      "<p>Verdict {} &#8594; {}{}</p>\n", verdict_badge(c.base_verdict),
      verdict_badge(c.proposed_verdict),
      c.regression ? " &#160; <b>regression</b>" : (c.no_change ? " &#160; no change" : ""));
  if (!c.regression_reasons.empty()) {
    body += "<ul>";
    for (const std::string& reason : c.regression_reasons)
      body += "<li>" + html_escape(reason) + "</li>";
    body += "</ul>\n";
  }
  body += fmt::format("<p>First-to-last gradient ratio: log10 {} &#8594; {}.</p>\n",
                      format_log10(c.base_log10_ratio), format_log10(c.proposed_log10_ratio));
  LineChart chart;
  chart.title = "Gradient rms per layer";
  chart.x_label = "layer (input side first)";
  chart.y_label = "rms of dL/dh";
  chart.log10_y = true;
  Series base, proposed;
  base.label = c.base_name + " (base)";
  base.colour = 0;
  proposed.colour = 1;
  proposed.label = c.proposed_name + " (proposed)";
  for (const LayerDelta& d : c.layers) {
    base.x.push_back(d.index);
    base.y.push_back(d.base_log10_grad);
    proposed.x.push_back(d.index);
    proposed.y.push_back(d.proposed_log10_grad);
  }
  chart.series = {base, proposed};
  body += plot(line_chart_svg(chart));
  const auto changes = [&](const char* title, const std::vector<FindingChange>& list) {
    if (list.empty()) return;
    body += fmt::format("<h2>{}</h2>\n<ul>", title);
    for (const FindingChange& f : list) {
      body += fmt::format("<li><code>{}</code> {} &#8594; {}: {}</li>", html_escape(f.code),
                          f.base_severity.empty() ? "-" : html_escape(f.base_severity),
                          f.proposed_severity.empty() ? "-" : html_escape(f.proposed_severity),
                          html_escape(f.explanation));
    }
    body += "</ul>\n";
  };
  changes("Findings that appeared", c.appeared);
  changes("Findings that disappeared", c.disappeared);
  changes("Findings that changed", c.changed);
  changes("Findings in both, same severity and layer", c.persisted);
  return html_page("gradscope compare: " + c.base_name + " -> " + c.proposed_name, body);
}

}  // namespace gradscope
