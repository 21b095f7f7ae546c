// "Why transformers need residuals and norms", written from the runs: the same transformer
// without skips (its tokens collapse onto one vector), post-norm, pre-norm and DeepNorm. Every
// number comes from a report (its statistics, or the spec the run resolved), none is typed in.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "app/lesson_page.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/plots.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

enum class Design { kNoSkips, kPostNorm, kPreNorm, kDeepNorm };

// Whether any residual item of the (expanded) config normalises after its addition.
bool has_post_norm(const std::vector<LayerItem>& items) {
  return std::any_of(items.begin(), items.end(), [](const LayerItem& i) {
    return (i.residual && i.post_norm) || has_post_norm(i.block);
  });
}

// What the lesson says of one run.
struct Facts {
  Design design = Design::kNoSkips;
  std::string label;
  int blocks = 0;  // attention ops
  int width = 0;
  int heads = 0;
  int tokens = 0;
  int batch = 0;
  int layers = 0;
  double cos_first = std::nan("");  // the tokens' mean cosine after the first attention op
  double cos_last = 0.0;            // ... at the last layer
  double centered_last = 0.0;       // the tokens' rms about their sequence's mean, last layer
  double rms_last = 0.0;
  double input_rms = 0.0;
  double stream_first = std::nan("");  // act rms at the first and last residual ends
  double stream_last = std::nan("");
  double ratio = 0.0;  // log10 rms(dL/dh) first / last
  double gain = 0.0;
  double skip = 1.0;        // the residuals' skip factor (DeepNorm's alpha)
  double value_gain = 1.0;  // the value projection's init gain (DeepNorm's beta)
  std::string verdict;
  std::string findings;
};

Facts facts_of(const Report& r) {
  Facts f;
  const std::vector<LayerReport>& layers = r.layers;
  int residuals = 0;
  for (const LayerReport& l : layers) {
    if (l.kind == OpKind::kAttention) {
      if (f.blocks == 0) {
        f.cos_first = l.forward.token_mean_cosine;
        f.heads = l.attention.heads;
        f.value_gain = l.attention.init[2].gain;
      }
      ++f.blocks;
    }
    if (l.kind == OpKind::kResidualEnd) {
      if (residuals == 0) {
        f.stream_first = l.forward.act.rms;
        f.skip = l.residual.skip;
      }
      f.stream_last = l.forward.act.rms;
      ++residuals;
    }
  }
  if (residuals == 0) {
    f.design = Design::kNoSkips;
    f.label = "no skips";
  } else if (!has_post_norm(r.spec.layers)) {
    f.design = Design::kPreNorm;
    f.label = "pre-norm";
  } else if (f.skip != 1.0) {
    f.design = Design::kDeepNorm;
    f.label = "DeepNorm";
  } else {
    f.design = Design::kPostNorm;
    f.label = "post-norm";
  }
  f.width = r.spec.input.width;
  f.tokens = r.spec.input.tokens;
  f.batch = r.spec.input.batch;
  f.layers = static_cast<int>(layers.size());
  f.cos_last = layers.back().forward.token_mean_cosine;
  f.centered_last = layers.back().forward.token_centered_rms;
  f.rms_last = layers.back().forward.act.rms;
  f.input_rms = r.input.rms;
  f.ratio = r.summary.log10_grad_ratio_first_to_last;
  f.gain = std::pow(10.0, r.summary.mean_log10_gain);
  f.verdict = std::string(verdict_name(r.verdict));
  for (const Finding& x : r.findings) {
    if (x.severity == Severity::kInfo || !x.cause.empty()) continue;
    f.findings += (f.findings.empty() ? "" : ", ") + x.code;
    if (!x.consequences.empty()) f.findings += " (+" + std::to_string(x.consequences.size()) + ")";
  }
  if (f.findings.empty()) f.findings = "none";
  return f;
}

const Facts* find(const std::vector<Facts>& all, Design design) {
  for (const Facts& f : all) {
    if (f.design == design) return &f;
  }
  return nullptr;
}

std::string pow10(double log10) { return format_magnitude(magnitude_from_log10(log10)); }
std::string num(double v) { return std::isnan(v) ? "n/a" : format_number(v); }

std::string joined(const std::vector<Facts>& all) {
  std::string out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    out += (i == 0 ? "" : (i + 1 == all.size() ? " and " : ", ")) + all[i].label;
  }
  return out;
}

class Page {
 public:
  explicit Page(const Lesson& lesson) {
    for (const Report& r : lesson.runs) all.push_back(facts_of(r));
  }

  void intro() {
    if (all.empty()) return;
    const Facts& f = all.front();
    para(fmt::format(
        "The same {}-block transformer (width {}, {} heads, {} tokens per sequence, a batch of {} "
        "sequences), built {} ways: {}. gradscope passed the batch forward and a gradient "
        "backward through each one and measured, at every op, how alike the tokens of a "
        "sequence are (their mean cosine: 1 when every token is the same vector), how much they "
        "still differ (their rms about the sequence's mean token) and how large the gradient "
        "is. The numbers below come from those runs.",
        f.blocks, f.width, f.heads, f.tokens, f.batch, all.size(), joined(all)));
    std::vector<std::vector<std::string>> rows{
        {"design", "token cosine, first attention", "token cosine, last layer",
         "tokens' spread, last layer", "rms, last layer", "first / last layer gradient", "verdict",
         "warnings and errors"}};
    for (const Facts& x : all) {
      rows.push_back({x.label, num(x.cos_first), num(x.cos_last), num(x.centered_last),
                      num(x.rms_last), pow10(x.ratio), x.verdict, x.findings});
    }
    b.push_back({LessonBlock::kTable, "", rows, {}});
    para(
        "token cosine: the mean cosine between the tokens of a sequence, averaged over the "
        "batch. tokens' spread: the rms of each token minus its sequence's mean token. first / "
        "last layer gradient: the rms of the first op's gradient over the last one's.");
    b.push_back({LessonBlock::kPicture,
                 "Gradient size (rms of dL/dh) per op, on a log scale; the bold lines join the "
                 "residual ends (one point per sublayer).",
                 {},
                 std::string(kResidualLesson) + "-gradients.svg"});
  }

  void no_skips() {
    const Facts* f = find(all, Design::kNoSkips);
    if (f == nullptr) return;
    heading("Without skips, the tokens collapse");
    para(fmt::format(
        "Attention replaces each token by a weighted average of the tokens it attends to. "
        "Averaging makes tokens alike, and without a skip path nothing puts their differences "
        "back: the mean cosine between the tokens of a sequence is {} after the first "
        "attention and {} after {} blocks, where what is left of their differences has rms {}, "
        "against an rms of {} for the tokens themselves (the input's: {}). This is rank "
        "collapse (Dong, Cordonnier & Loukas 2021): every position carries nearly the same "
        "vector, so the layers above cannot tell the tokens apart, and the first layer's "
        "gradient is {} times the last one's. Verdict: {} ({}).",
        num(f->cos_first), num(f->cos_last), f->blocks, num(f->centered_last), num(f->rms_last),
        num(f->input_rms), pow10(f->ratio), f->verdict, f->findings));
  }

  void residuals() {
    const Facts* post = find(all, Design::kPostNorm);
    const Facts* pre = find(all, Design::kPreNorm);
    const Facts* deep = find(all, Design::kDeepNorm);
    if (post == nullptr && pre == nullptr && deep == nullptr) return;
    heading("A skip around every sublayer, and where the norm goes");
    std::string text =
        "With a residual connection each sublayer adds to the stream instead of replacing it, "
        "y = x + F(x), so every token keeps its own part, and the gradient has a path back that "
        "no sublayer can block. How much of each token's own part survives depends on the norm: "
        "the mean cosine between tokens at the last layer is";
    std::string sep = " ";
    for (const Facts* f : {post, pre, deep}) {
      if (f == nullptr) continue;
      text += fmt::format("{}{} {}", sep, num(f->cos_last), f->label);
      sep = ", ";
    }
    para(text + ".");
    if (post != nullptr) {
      heading("Post-norm: a steady stream");
      std::string p = fmt::format(
          "Post-norm (the original Transformer) normalises after the addition, norm(x + F(x)): "
          "every block hands on a stream normalised to rms 1 ({} measured at the last layer), and "
          "the first layer's "
          "gradient is {} times the last one's.",
          num(post->rms_last), pow10(post->ratio));
      if (post->cos_last > post->cos_first) {
        p += fmt::format(
            " But the tokens' mean cosine climbs from {} after the first attention to {} at the "
            "last layer: attention adds a near-average of the sequence, much the same vector, "
            "to every token, and the norm then scales the sum back to rms 1, so the shared part "
            "crowds out what is particular to each token, block after block.",
            num(post->cos_first), num(post->cos_last));
      }
      para(p + fmt::format(" Verdict: {} ({}).", post->verdict, post->findings));
    }
    if (pre != nullptr) {
      heading("Pre-norm: an identity path, a growing stream");
      para(fmt::format(
          "Pre-norm (GPT-2 and most models since) normalises only what enters each sublayer, "
          "x + F(norm(x)), so the skip path is an identity from the last block to the first: "
          "the first layer's gradient is {} times the last one's. Nothing normalises the stream "
          "itself and every sublayer adds to it, so its rms grows from {} after the first "
          "sublayer to {} after the last (the final norm brings it back to {}); the shared part "
          "grows with it, but the tokens' own parts are never scaled down, and their mean "
          "cosine reaches {}. Verdict: {} ({}).",
          pow10(pre->ratio), num(pre->stream_first), num(pre->stream_last), num(pre->rms_last),
          num(pre->cos_last), pre->verdict, pre->findings));
    }
  }

  void deepnorm() {
    const Facts* f = find(all, Design::kDeepNorm);
    if (f == nullptr) return;
    const Facts* post = find(all, Design::kPostNorm);
    heading("DeepNorm: post-norm, scaled for depth");
    para(fmt::format(
        "DeepNorm (Wang et al. 2022) keeps post-norm's steady stream but weights the skip by "
        "alpha = {} and starts the value, output and MLP weights smaller by beta = {}, so that "
        "each block changes the stream by little. The tokens keep their own parts: their mean "
        "cosine is {} at the last layer{}, and their spread about the sequence's mean is {} of "
        "an rms of {}. The first layer's gradient is {} times the last one's. Verdict: {} ({}).",
        num(f->skip), num(f->value_gain), num(f->cos_last),
        post == nullptr ? std::string()
                        : fmt::format(" (plain post-norm: {})", num(post->cos_last)),
        num(f->centered_last), num(f->rms_last), pow10(f->ratio), f->verdict, f->findings));
  }

  void closing() {
    heading("What to use where");
    para(
        "Every deep transformer keeps a residual connection around each sublayer; without one, "
        "attention averages the tokens into one. Pre-norm with a final norm is the common "
        "default; deep post-norm stacks want DeepNorm's scaling (or another of the `scaling` "
        "options of the `transformer` item). `gradscope run` on such a config reports these "
        "token statistics at every op.");
    para(fmt::format(
        "Reproduce: `gradscope lesson {0}` runs the lesson's configs, built into gradscope from "
        "configs/lessons/{0}/, and writes this page; `gradscope run` on any of those files gives "
        "the full per-op report.",
        kResidualLesson));
  }

  std::vector<LessonBlock> take() { return std::move(b); }

 private:
  void heading(std::string t) { b.push_back({LessonBlock::kHeading, std::move(t), {}, {}}); }
  void para(std::string t) { b.push_back({LessonBlock::kParagraph, std::move(t), {}, {}}); }

  std::vector<Facts> all;
  std::vector<LessonBlock> b;
};

}  // namespace

std::vector<LessonBlock> residual_lesson_blocks(const Lesson& lesson) {
  Page page(lesson);
  page.intro();
  page.no_skips();
  page.residuals();
  page.deepnorm();
  page.closing();
  return page.take();
}

std::vector<std::pair<std::string, std::string>> residual_lesson_plots(const Lesson& lesson) {
  std::vector<std::pair<std::string, const Report*>> runs;
  for (const Report& r : lesson.runs) runs.emplace_back(facts_of(r).label, &r);
  return {{std::string(kResidualLesson) + "-gradients.svg", gradient_plot_svg(runs, false)}};
}

}  // namespace gradscope
