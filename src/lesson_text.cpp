// "Why sigmoid fails", written from the runs: one list of blocks (headings, paragraphs, a table,
// pictures) rendered as Markdown and as HTML, so the two cannot say different things. Every
// number comes from a report or from the activation registry, none is typed in.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "gradscope/diagnosis.hpp"
#include "gradscope/html.hpp"
#include "gradscope/init.hpp"
#include "gradscope/lesson.hpp"
#include "gradscope/plots.hpp"
#include "text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

struct Block {
  enum Kind { kHeading, kParagraph, kTable, kPicture } kind;
  std::string text;                            // heading, paragraph, picture caption
  std::vector<std::vector<std::string>> rows;  // table: the first row is the header
  std::string file;                            // picture
};

// What the lesson says of one run.
struct Facts {
  std::string activation;
  std::string init;
  double sw2 = 0.0;
  double gain = 0.0;   // mean per-layer factor of the gradient's rms
  double ratio = 0.0;  // log10 first / last
  double predicted = std::nan("");
  double dead = 0.0;  // the largest share of a layer's units dead for the whole batch
  int dead_layer = 0;
  std::int64_t dead_total = 0;
  double last_correlation = 0.0;
  double act_mean_first = 0.0;
  int layers = 0;
  int batch = 0;
  double param = 0.0;
  std::string verdict;
  std::string findings;
};

Facts facts_of(const Report& r) {
  Facts f;
  const LayerReport& first = r.layers.front();
  f.activation = std::string(activation_info(first.activation.kind).name);
  f.param = first.activation.param;
  f.init = std::string(init_info(first.init.kind).name);
  f.sw2 = init_weight_variance(first.init, first.fan_in, first.width) * first.fan_in;
  f.gain = std::pow(10.0, r.summary.mean_log10_gain);
  f.ratio = r.summary.log10_grad_ratio_first_to_last;
  if (first.theory.backward) f.predicted = first.theory.log10_grad_rel_last;
  for (const LayerReport& l : r.layers) {
    if (l.forward.dead_fraction > f.dead) {
      f.dead = l.forward.dead_fraction;
      f.dead_layer = l.index;
    }
  }
  f.dead_total = r.summary.dead_units;
  f.last_correlation = r.layers.back().forward.correlation;
  f.act_mean_first = first.forward.act.mean;
  f.layers = static_cast<int>(r.layers.size());
  f.batch = r.spec.input.batch;
  f.verdict = std::string(verdict_name(r.verdict));
  // The root causes, each with the number of symptoms folded under it.
  for (const Finding& x : r.findings) {
    if (x.severity == Severity::kInfo || !x.cause.empty()) continue;
    f.findings += (f.findings.empty() ? "" : ", ") + x.code;
    if (!x.consequences.empty()) f.findings += " (+" + std::to_string(x.consequences.size()) + ")";
  }
  if (f.findings.empty()) f.findings = "none";
  return f;
}

const Facts* find(const std::vector<Facts>& all, std::string_view activation) {
  for (const Facts& f : all) {
    if (f.activation == activation) return &f;
  }
  return nullptr;
}

std::string pow10(double log10) { return format_magnitude(magnitude_from_log10(log10)); }
std::string pct(double fraction) { return format_percent(fraction) + "%"; }

std::vector<Block> blocks_of(const Lesson& lesson) {
  std::vector<Facts> all;
  for (const Report& r : lesson.runs) all.push_back(facts_of(r));
  std::vector<Block> b;
  const auto heading = [&](std::string t) { b.push_back({Block::kHeading, std::move(t), {}, {}}); };
  const auto para = [&](std::string t) { b.push_back({Block::kParagraph, std::move(t), {}, {}}); };

  const Facts* sig = find(all, "sigmoid");
  const Facts* tanh = find(all, "tanh");
  const Facts* relu = find(all, "relu");
  const Facts* leaky = find(all, "leaky_relu");
  const Facts* gelu = find(all, "gelu");
  const int depth = all.empty() ? 0 : all.front().layers;

  para(fmt::format(
      "The same {}-layer network (width {}, a batch of {} random examples) with five hidden "
      "activations, each with an init that suits it. gradscope passed the batch forward and a "
      "gradient backward through each one and measured, layer by layer, how large the gradient "
      "is. The numbers below come from those runs.",
      depth, lesson.runs.empty() ? 0 : lesson.runs.front().layers.front().width,
      all.empty() ? 0 : all.front().batch));

  heading("What a vanishing gradient is");
  std::string vanish =
      "Training moves every weight a little against the gradient of the loss. The gradient "
      "reaches a layer only by passing back through every layer above it, and each of them "
      "multiplies it by its weights and by the slope of its activation. When that factor is "
      "below 1, the gradient shrinks geometrically with depth, and the first layers, which see "
      "the input, receive almost nothing: they barely learn.";
  if (sig != nullptr) {
    vanish += fmt::format(
        " In the sigmoid network each layer multiplies the gradient's size by {} on average, so "
        "after {} layers the first one receives {} of what the last one gets.",
        format_number(sig->gain), sig->layers, pow10(sig->ratio));
  }
  para(vanish);
  b.push_back({Block::kPicture,
               "Gradient size (rms of dL/dh) per layer, on a log scale; dashed: the mean-field "
               "theory's prediction.",
               {},
               "why-sigmoid-fails-gradients.svg"});

  std::vector<std::vector<std::string>> rows{
      {"activation", "init (sw2)", "gradient factor per layer", "first / last layer",
       "dead units (worst layer)", "verdict", "warnings and errors"}};
  for (const Facts& f : all) {
    rows.push_back(
        {f.activation, fmt::format("{} ({})", f.init, format_number(f.sw2)), format_number(f.gain),
         pow10(f.ratio),
         f.dead_layer > 0 ? fmt::format("{} (layer {})", pct(f.dead), f.dead_layer) : "0%",
         f.verdict, f.findings});
  }
  b.push_back({Block::kTable, "", rows, {}});

  if (sig != nullptr) {
    const double slope = max_slope(default_spec(Activation::kSigmoid));
    heading("Why sigmoid shrinks it");
    para(fmt::format(
        "The sigmoid's slope is at most {} (at 0) and falls towards 0 for large inputs. With "
        "Xavier's weights (sw2 = {}) a layer can at best multiply the gradient by "
        "sqrt(sw2) x {} = {}; measured, it does {} on average, and {} layers of that give {}. "
        "Mean-field theory, which knows nothing of this particular run, predicts {}. Its outputs "
        "are all positive (mean {} after the first layer), so every following layer is pushed "
        "off-centre, and different inputs come out looking alike.",
        format_number(slope), format_number(sig->sw2), format_number(slope),
        format_number(std::sqrt(sig->sw2) * slope), format_number(sig->gain), sig->layers,
        pow10(sig->ratio), std::isnan(sig->predicted) ? "nothing here" : pow10(sig->predicted),
        format_number(sig->act_mean_first)));
  }
  if (tanh != nullptr) {
    heading("tanh: centred, slope 1");
    para(fmt::format(
        "tanh is the sigmoid stretched to (-1, 1) and centred on 0: its slope at 0 is {}, four "
        "times the sigmoid's. With Xavier's weights (sw2 = {}) each layer keeps the gradient "
        "nearly intact (factor {}; first to last {}). It still flattens for large inputs, so it "
        "works in deep stacks only when the init keeps it near the edge of chaos.",
        format_number(max_slope(default_spec(Activation::kTanh))), format_number(tanh->sw2),
        format_number(tanh->gain), pow10(tanh->ratio)));
  }
  if (relu != nullptr) {
    heading("ReLU, and dead units");
    para(fmt::format(
        "ReLU passes the gradient unchanged where a unit is active (slope 1) and blocks it "
        "where it is not (slope 0). With He's weights (sw2 = {}), twice Xavier's, the active "
        "half makes up for the blocked half: factor {}, first to last {}. But a unit whose input "
        "is negative for every example of a batch passes no gradient at all: it is dead for that "
        "batch. Here {} of layer {}'s units are dead for all {} examples ({} dead units in the "
        "network), and the share grows with depth, because the network maps different inputs "
        "ever closer together (mean cosine {} between examples at the last layer).",
        format_number(relu->sw2), format_number(relu->gain), pow10(relu->ratio), pct(relu->dead),
        relu->dead_layer, relu->batch, relu->dead_total, format_number(relu->last_correlation)));
  }
  if (leaky != nullptr) {
    heading("Leaky ReLU: never quite off");
    para(fmt::format(
        "Leaky ReLU keeps a small slope ({}) on the negative side, so no unit is ever cut off "
        "from the gradient: {} dead units here, with the same gradient factor as ReLU ({}).",
        format_number(leaky->param), leaky->dead_total, format_number(leaky->gain)));
  }
  if (gelu != nullptr) {
    heading("GELU: the transformers' choice");
    para(fmt::format(
        "GELU weighs its input by the chance that a standard Gaussian falls below it: x Phi(x). "
        "It is smooth, lets slightly negative inputs through with a small gradient (no dead "
        "units: {} here), and is the activation of the feed-forward layers of BERT and GPT, "
        "where it sits in residual blocks with layer norm. With the weight variance mean-field "
        "theory finds best for it over {} layers (sw2 = {}) the gradient factor is {} and the "
        "first layer gets {} of the last one's gradient.",
        gelu->dead_total, gelu->layers, format_number(gelu->sw2), format_number(gelu->gain),
        pow10(gelu->ratio)));
  }
  b.push_back({Block::kPicture,
               "Dead units (solid) and saturated entries (dashed) per layer, in percent. An entry "
               "is saturated where the slope is under 5% of its largest: for the ReLU family "
               "that is the flat negative side, about half of all entries.",
               {},
               "why-sigmoid-fails-units.svg"});

  heading("What to use where");
  para(
      "Hidden layers: the ReLU family (ReLU, leaky ReLU) or GELU, with an init matched to the "
      "activation (He for ReLU; `gradscope run` computes it for the others and says so in its "
      "mismatched_init finding); deep stacks also want normalization and residual connections. "
      "Outputs: sigmoid for a binary (or multi-label) output, softmax for one of several "
      "classes (or a linear output with a loss that applies it), linear for regression. Sigmoid "
      "and tanh still belong inside gates (LSTMs, gated units), where squashing is the point.");
  para(
      "Reproduce: `gradscope lesson why-sigmoid-fails` runs the configs in "
      "configs/lessons/why-sigmoid-fails/ and writes this page; `gradscope run` on any of them "
      "gives the full per-layer report.");
  return b;
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> lesson_plots(const Lesson& lesson) {
  std::vector<std::pair<std::string, const Report*>> runs;
  for (const Report& r : lesson.runs) {
    runs.emplace_back(std::string(activation_info(r.layers.front().activation.kind).name), &r);
  }
  return {{"why-sigmoid-fails-gradients.svg", gradient_plot_svg(runs, true)},
          {"why-sigmoid-fails-units.svg", unit_fraction_plot_svg(runs)}};
}

std::string lesson_to_markdown(const Lesson& lesson) {
  std::string out = "# Why sigmoid fails in deep networks\n\n";
  for (const Block& b : blocks_of(lesson)) {
    switch (b.kind) {
      case Block::kHeading:
        out += fmt::format("## {}\n\n", b.text);
        break;
      case Block::kParagraph:
        out += fmt::format("{}\n\n", b.text);
        break;
      case Block::kPicture:
        out += fmt::format("![{0}]({1})\n\n*{0}*\n\n", b.text, b.file);
        break;
      case Block::kTable:
        for (std::size_t i = 0; i < b.rows.size(); ++i) {
          out += "|";
          for (const std::string& cell : b.rows[i]) out += fmt::format(" {} |", md_cell(cell));
          out += "\n";
          if (i == 0) {
            out += "|";
            for (std::size_t c = 0; c < b.rows[i].size(); ++c) out += "---|";
            out += "\n";
          }
        }
        out += "\n";
        break;
    }
  }
  return out;
}

std::string lesson_to_html(const Lesson& lesson) {
  const auto plots = lesson_plots(lesson);
  std::string body = "<h1>Why sigmoid fails in deep networks</h1>\n";
  const auto inline_code = [](const std::string& text) {
    // `code` spans of the shared text become <code>.
    std::string out;
    bool open = false;
    for (char c : html_escape(text)) {
      if (c == '`') {
        out += open ? "</code>" : "<code>";
        open = !open;
      } else {
        out += c;
      }
    }
    if (open) out += "</code>";
    return out;
  };
  for (const Block& b : blocks_of(lesson)) {
    switch (b.kind) {
      case Block::kHeading:
        body += fmt::format("<h2>{}</h2>\n", html_escape(b.text));
        break;
      case Block::kParagraph:
        body += fmt::format("<p>{}</p>\n", inline_code(b.text));
        break;
      case Block::kPicture:
        for (const auto& [file, svg] : plots) {
          if (file == b.file) body += fmt::format("<div class=\"plot\">{}</div>\n", svg);
        }
        body += fmt::format("<p class=\"muted\">{}</p>\n", html_escape(b.text));
        break;
      case Block::kTable:
        body += "<table>\n";
        for (std::size_t i = 0; i < b.rows.size(); ++i) {
          body += "<tr>";
          for (const std::string& cell : b.rows[i]) {
            body +=
                fmt::format("<{0} class=\"l\">{1}</{0}>", i == 0 ? "th" : "td", html_escape(cell));
          }
          body += "</tr>\n";
        }
        body += "</table>\n";
        break;
    }
  }
  return html_page("Why sigmoid fails in deep networks", body);
}

}  // namespace gradscope
