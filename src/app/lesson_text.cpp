// The lessons' pages: one list of blocks (headings, paragraphs, a table, pictures) rendered as
// Markdown and as HTML, so the two cannot say different things, and "Why sigmoid fails" written
// from its runs (the residual lesson's blocks: lesson_residual_text.cpp). Every number comes from
// a report or from the activation registry, none is typed in.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "app/lesson_page.hpp"
#include "gradscope/app/lesson.hpp"
#include "gradscope/core/init.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/report/plots.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

using Block = LessonBlock;

// What the lesson says of one run.
struct Facts {
  std::string label;  // the activation; "gelu (fixed)" for a fix
  std::string activation;
  std::string init;
  double sw2 = 0.0;
  double gain = 0.0;   // geometric mean over the layers of the gain column (rms ratio)
  double ratio = 0.0;  // log10 first / last
  double predicted = std::nan("");
  std::size_t theory_flagged = 0;  // layers measured beyond 3 spreads of the prediction
  double dead = 0.0;               // the largest share of a layer's units dead for the whole batch
  int dead_layer = 0;
  std::int64_t dead_total = 0;
  double last_correlation = 0.0;
  double act_mean_first = 0.0;
  double input_rms = 0.0;
  double act_rms_last = 0.0;
  int layers = 0;
  int width = 0;  // the first hidden layer's
  int batch = 0;
  double param = 0.0;
  std::string verdict;
  std::string findings;
};

Facts facts_of(const Report& r) {
  Facts f;
  const LayerReport& first = r.layers.front();
  f.activation = std::string(activation_info(first.activation.kind).name);
  f.label = f.activation;
  f.param = first.activation.param;
  f.init = std::string(init_info(first.init.kind).name);
  f.sw2 = init_weight_variance(first.init, first.fan_in, first.width) * first.fan_in;
  f.gain = std::pow(10.0, r.summary.mean_log10_gain);
  f.ratio = r.summary.log10_grad_ratio_first_to_last;
  if (first.theory.backward) f.predicted = first.theory.log10_grad_rel_last;
  f.theory_flagged = r.summary.theory_flagged_layers.size();
  for (const LayerReport& l : r.layers) {
    if (l.forward.dead_fraction > f.dead) {
      f.dead = l.forward.dead_fraction;
      f.dead_layer = l.index;
    }
  }
  f.dead_total = r.summary.dead_units;
  f.last_correlation = r.layers.back().forward.correlation;
  f.act_mean_first = first.forward.act.mean;
  f.input_rms = r.input.rms;
  f.act_rms_last = r.layers.back().forward.act.rms;
  f.layers = static_cast<int>(r.layers.size());
  f.width = first.width;
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

// A mean gain as the table gives it, then the same as a factor per layer, so that the two read
// alike: "the mean gain per layer is 0.235 (the gradient's rms shrinks 4.26x per layer)".
std::string gain_words(double gain) {
  const std::string g = fmt::format("the mean gain per layer is {}", format_number(gain));
  if (!std::isfinite(gain) || gain <= 0.0) return g;
  // The factor with the table's three digits; at that precision 1 is "the same size".
  const std::string times = format_number(gain < 1.0 ? 1.0 / gain : gain);
  if (times == "1") return g + " (the gradient's rms keeps its size from layer to layer)";
  return fmt::format("{} (the gradient's rms {} {}x per layer)", g,
                     gain < 1.0 ? "shrinks" : "grows", times);
}

std::string number_word(std::size_t n) {
  constexpr std::array<const char*, 11> kWords = {"no",  "one",   "two",   "three", "four", "five",
                                                  "six", "seven", "eight", "nine",  "ten"};
  return n < kWords.size() ? kWords[n] : std::to_string(n);
}

std::string changes_text(const std::vector<ConfigChange>& changes) {
  std::string out;
  for (const ConfigChange& c : changes) out += (out.empty() ? "`" : " `") + set_argument(c) + "`";
  return out;
}

// The page as it is written: its blocks, one step a section, and the runs (and fixes) they are
// written from.
class Page {
 public:
  explicit Page(const Lesson& l) : lesson(l) {
    for (const Report& r : lesson.runs) all.push_back(facts_of(r));
    // The fixes' facts, beside the runs they fix.
    for (const LessonFix& x : lesson.fixes) {
      fixed.push_back(facts_of(x.report));
      fixed.back().label += " (fixed)";
    }
  }
  Page(const Page&) = delete;  // fix_of compares addresses in `all`
  Page& operator=(const Page&) = delete;

  void intro_section();        // what the runs are, what a vanishing gradient is
  void table_section();        // one row per run, its fix beside it
  void activation_sections();  // sigmoid, tanh, ReLU, leaky ReLU
  void gelu_section();         // GELU and its init
  void closing_section();      // what to use where, how to reproduce
  std::vector<Block> take() { return std::move(b); }

 private:
  std::pair<const LessonFix*, const Facts*> fix_of(const Facts* run) const {
    for (std::size_t i = 0; i < lesson.fixes.size(); ++i) {
      if (run == &all[lesson.fixes[i].run]) return {&lesson.fixes[i], &fixed[i]};
    }
    return {nullptr, nullptr};
  }
  void heading(std::string t) { b.push_back({Block::kHeading, std::move(t), {}, {}}); }
  void para(std::string t) { b.push_back({Block::kParagraph, std::move(t), {}, {}}); }
  void quote(std::string t) { b.push_back({Block::kQuote, std::move(t), {}, {}}); }
  void gelu_fix(const Facts* gelu, bool he);  // the diagnosis's fix, applied and run again

  const Lesson& lesson;
  std::vector<Facts> all;
  std::vector<Facts> fixed;
  std::vector<Block> b;
};

void Page::intro_section() {
  const Facts* sig = find(all, "sigmoid");
  const int depth = all.empty() ? 0 : all.front().layers;

  std::string intro = fmt::format(
      "The same {}-layer network (width {}, a batch of {} random examples) with {} hidden "
      "activations, each with the init one would reach for. gradscope passed the batch forward "
      "and a gradient backward through each one and measured, layer by layer, how large the "
      "gradient is. The numbers below come from those runs.",
      depth, lesson.runs.empty() ? 0 : lesson.runs.front().layers.front().width,
      all.empty() ? 0 : all.front().batch, number_word(all.size()));
  if (!lesson.fixes.empty()) {
    intro +=
        " Where gradscope's diagnosis blames the init alone, its own fix was applied and run "
        "too.";
  }
  para(intro);

  heading("What a vanishing gradient is");
  std::string vanish =
      "Training moves every weight a little against the gradient of the loss. The gradient "
      "reaches a layer only by passing back through every layer above it, and each of them "
      "multiplies it by its weights and by the slope of its activation. When that factor is "
      "below 1, the gradient shrinks geometrically with depth, and the first layers, which see "
      "the input, receive almost nothing: they barely learn.";
  if (sig != nullptr) {
    vanish += fmt::format(
        " In the sigmoid network {}, so after {} layers the first one receives {} of what the "
        "last one gets.",
        gain_words(sig->gain), sig->layers, pow10(sig->ratio));
  }
  para(vanish);
  b.push_back({Block::kPicture,
               "Gradient size (rms of dL/dh) per layer, on a log scale; dashed: the mean-field "
               "theory's prediction.",
               {},
               "why-sigmoid-fails-gradients.svg"});
}

void Page::table_section() {
  std::vector<std::vector<std::string>> rows{{"activation", "init (sw2)", "gain per layer",
                                              "first / last layer", "dead units (worst layer)",
                                              "verdict", "warnings and errors"}};
  const auto row = [&](const Facts& f) {
    rows.push_back(
        {f.label, fmt::format("{} ({})", f.init, format_number(f.sw2)), format_number(f.gain),
         pow10(f.ratio),
         f.dead_layer > 0 ? fmt::format("{} (layer {})", pct(f.dead), f.dead_layer) : "0%",
         f.verdict, f.findings});
  };
  for (const Facts& f : all) {
    row(f);
    if (const Facts* x = fix_of(&f).second; x != nullptr) row(*x);
  }
  b.push_back({Block::kTable, "", rows, {}});
  para(
      "gain: the rms of a layer's gradient over the next layer's, as in the gain column of "
      "`gradscope run`, averaged over the layers (geometric mean). Below 1 the gradient shrinks "
      "on its way back to the input: with a gain of 0.5 its rms halves at every layer. first / "
      "last layer: the rms of the first layer's gradient over the last one's.");
}

void Page::activation_sections() {
  const Facts* sig = find(all, "sigmoid");
  const Facts* tanh = find(all, "tanh");
  const Facts* relu = find(all, "relu");
  const Facts* leaky = find(all, "leaky_relu");
  if (sig != nullptr) {
    const double slope = max_slope(default_spec(Activation::kSigmoid));
    heading("Why sigmoid shrinks it");
    para(fmt::format(
        "The sigmoid's slope is at most {} (at 0) and falls towards 0 for large inputs. With "
        "Xavier's weights (sw2 = {}) a layer's gain is at best sqrt(sw2) x {} = {}; measured, it "
        "is {} on average, and {} layers of that give {}. Mean-field theory, which knows nothing "
        "of this particular run, predicts {}. Its outputs are all positive (mean {} after the "
        "first layer), so every following layer is pushed off-centre, and different inputs come "
        "out looking alike.",
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
        "nearly intact (gain {} per layer; first to last {}). It still flattens for large "
        "inputs, so it works in deep stacks only when the init keeps it near the edge of chaos.",
        format_number(max_slope(default_spec(Activation::kTanh))), format_number(tanh->sw2),
        format_number(tanh->gain), pow10(tanh->ratio)));
  }
  if (relu != nullptr) {
    heading("ReLU, and dead units");
    para(fmt::format(
        "ReLU passes the gradient unchanged where a unit is active (slope 1) and blocks it "
        "where it is not (slope 0). With He's weights (sw2 = {}), twice Xavier's, the active "
        "half makes up for the blocked half: gain {} per layer, first to last {}. But a unit "
        "whose input is negative for every example of a batch passes no gradient at all: it is "
        "dead for that batch. Here {} of layer {}'s units are dead for all {} examples ({} dead "
        "units in the network), and the share grows with depth, because the network maps "
        "different inputs ever closer together (mean cosine {} between examples at the last "
        "layer).",
        format_number(relu->sw2), format_number(relu->gain), pow10(relu->ratio), pct(relu->dead),
        relu->dead_layer, relu->batch, relu->dead_total, format_number(relu->last_correlation)));
  }
  if (leaky != nullptr) {
    heading("Leaky ReLU: never quite off");
    para(fmt::format(
        "Leaky ReLU keeps a small slope ({}) on the negative side, so no unit is ever cut off "
        "from the gradient: {} dead units here, with the same gain as ReLU ({} per layer).",
        format_number(leaky->param), leaky->dead_total, format_number(leaky->gain)));
  }
}

void Page::gelu_section() {
  const Facts* gelu = find(all, "gelu");
  if (gelu == nullptr) return;
  heading("GELU: the transformers' choice, and its init");
  para(fmt::format(
      "GELU weighs its input by the chance that a standard Gaussian falls below it: x Phi(x). "
      "It is smooth, lets slightly negative inputs through with a small gradient (no dead "
      "units: {} here), and is the activation of the feed-forward layers of BERT and GPT, "
      "where it sits in residual blocks with layer norm.",
      gelu->dead_total));
  const bool he = gelu->init.rfind("he_", 0) == 0;
  para(fmt::format(
      "{} {} (sw2 = {}). Measured over {} layers: the activations' rms goes from {} at the "
      "input to {} at layer {}, {}, and the first layer receives {} of the last one's "
      "gradient. Verdict: {} ({}).",
      he ? "It looks like a smooth ReLU, so the init a student picks for it is ReLU's:"
         : "Its init here:",
      gelu->init, format_number(gelu->sw2), gelu->layers, format_number(gelu->input_rms),
      format_number(gelu->act_rms_last), gelu->layers, gain_words(gelu->gain), pow10(gelu->ratio),
      gelu->verdict, gelu->findings));
  gelu_fix(gelu, he);
}

void Page::gelu_fix(const Facts* gelu, bool he) {
  if (const auto [fix, after] = fix_of(gelu); fix != nullptr) {
    const ActivationSpec spec = lesson.runs[fix->run].layers.front().activation;
    const std::string why =
        he ? fmt::format(
                 "GELU is not ReLU. Near 0 it is close to a straight line of slope {}, so "
                 "He's sw2 = {}, which makes up for ReLU cutting off half of its inputs, does "
                 "not quite make up for GELU: each layer passes on a little less signal than "
                 "it receives, and {} layers compound it. ",
                 format_number(activation_derivative(spec, 0.0)), format_number(gelu->sw2),
                 gelu->layers)
           : std::string();
    para(why + "gradscope's diagnosis of that run says what to do instead:");
    for (const std::string& advice : fix->advice) quote(advice);
    para(fmt::format(
        "Applied ({}) and run again: sw2 = {}, the activations' rms at layer {} is {}, {}, and "
        "the first layer receives {} of the last one's gradient. Verdict: {} ({}).",
        changes_text(fix->changes), format_number(after->sw2), after->layers,
        format_number(after->act_rms_last), gain_words(after->gain), pow10(after->ratio),
        after->verdict, after->findings));
    // Where theory and measurement part (the run report's "theory dev" flag), the page says
    // so rather than leave a learner to find the mismatch: the re-run is the proof.
    if (std::isfinite(after->predicted) && after->theory_flagged > 0) {
      para(fmt::format(
          "Mean-field theory predicted {} for that ratio; the network measures {}, and the "
          "run report flags {} of its {} layers as measured beyond the theory's expected "
          "spread. The theory describes infinitely wide layers; near the weight variance where "
          "the signal neither shrinks nor grows, which is where the fix moves to, a real layer "
          "of {} units can drift from it, and the drift compounds over the layers. The theory "
          "finds the neighbourhood of a good init; the re-run's measurement is what shows "
          "the fix works.",
          pow10(after->predicted), pow10(after->ratio), after->theory_flagged, after->layers,
          after->width));
    }
  }
}

void Page::closing_section() {
  b.push_back({Block::kPicture,
               "Dead units (solid) and saturated entries (dashed) per layer, in percent. An entry "
               "is saturated where the slope is under 5% of its largest: for the ReLU family "
               "that is the flat negative side, about half of all entries.",
               {},
               "why-sigmoid-fails-units.svg"});

  heading("What to use where");
  para(
      "Hidden layers: the ReLU family (ReLU, leaky ReLU) or GELU, with an init matched to the "
      "activation (He for ReLU; for the others `gradscope run` works out the weight variance "
      "that suits them and gives it in its advice, as it did for GELU above); deep stacks also "
      "want normalization and residual connections. Outputs: sigmoid for a binary (or "
      "multi-label) output, softmax for one of several classes (or a linear output with a loss "
      "that applies it), linear for regression. Sigmoid and tanh still belong inside gates "
      "(LSTMs, gated units), where squashing is the point.");
  para(
      "Reproduce: `gradscope lesson why-sigmoid-fails` runs the lesson's configs, built into "
      "gradscope from configs/lessons/why-sigmoid-fails/, and the fixes its diagnosis finds, and "
      "writes this page; `gradscope run` on any of those files gives the full per-layer report, "
      "and `--check-advice` re-runs its advice to prove it.");
}

std::vector<Block> blocks_of(const Lesson& lesson) {
  if (lesson.name == kResidualLesson) return residual_lesson_blocks(lesson);
  if (lesson.name == kResnetLesson) return resnet_lesson_blocks(lesson);
  Page page(lesson);
  page.intro_section();
  page.table_section();
  page.activation_sections();
  page.gelu_section();
  page.closing_section();
  return page.take();
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

constexpr std::string_view kSigmoidTitle = "Why sigmoid fails in deep networks";

std::string_view title_of(const Lesson& lesson) {
  if (lesson.name == kResnetLesson) return kResnetLessonTitle;
  return lesson.name == kResidualLesson ? kResidualLessonTitle : kSigmoidTitle;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> lesson_plots(const Lesson& lesson) {
  if (lesson.name == kResidualLesson) return residual_lesson_plots(lesson);
  if (lesson.name == kResnetLesson) return resnet_lesson_plots(lesson);
  // The runs in order, each fix right after the run it fixes, as in the table.
  const auto name_of = [](const Report& r) {
    return std::string(activation_info(r.layers.front().activation.kind).name);
  };
  std::vector<std::pair<std::string, const Report*>> runs;
  for (std::size_t i = 0; i < lesson.runs.size(); ++i) {
    runs.emplace_back(name_of(lesson.runs[i]), &lesson.runs[i]);
    for (const LessonFix& x : lesson.fixes) {
      if (x.run == i) runs.emplace_back(name_of(x.report) + " (fixed)", &x.report);
    }
  }
  return {{"why-sigmoid-fails-gradients.svg", gradient_plot_svg(runs, true)},
          {"why-sigmoid-fails-units.svg", unit_fraction_plot_svg(runs)}};
}

std::string lesson_to_markdown(const Lesson& lesson) {
  std::string out = fmt::format("# {}\n\n", title_of(lesson));
  for (const Block& b : blocks_of(lesson)) {
    switch (b.kind) {
      case Block::kHeading:
        out += fmt::format("## {}\n\n", b.text);
        break;
      case Block::kParagraph:
        out += fmt::format("{}\n\n", b.text);
        break;
      case Block::kQuote:
        out += fmt::format("> {}\n\n", b.text);
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
  std::string body = fmt::format("<h1>{}</h1>\n", html_escape(std::string(title_of(lesson))));
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
      case Block::kQuote:
        body += fmt::format("<blockquote><p>{}</p></blockquote>\n", inline_code(b.text));
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
  return html_page(std::string(title_of(lesson)), body);
}

}  // namespace gradscope
