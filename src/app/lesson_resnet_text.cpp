// "Why ResNets need batch norm or a careful init", written from the runs: the same pre-activation
// ResNet without normalisation, with batch norm, with its branches scaled down, and (when the
// lesson's configs have them) Fixup and NF-ResNet inits. Brock et al.'s (2021) signal-propagation
// plot carries the story. Every number comes from a report, none is typed in.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "app/lesson_page.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/report/svg.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

// The designs the lesson explains, told apart by the config's name; any other name is told as
// "other" with the table's numbers only.
enum class Design { kNoNorm, kBatchNorm, kScaled, kFixup, kNf, kOther };

struct Named {
  std::string_view name;
  Design design;
  std::string_view label;
};
constexpr Named kDesigns[] = {{"no-norm", Design::kNoNorm, "no norm"},
                              {"batch-norm", Design::kBatchNorm, "batch norm"},
                              {"scaled-branches", Design::kScaled, "scaled branches"},
                              {"fixup", Design::kFixup, "Fixup"},
                              {"nf", Design::kNf, "NF-ResNet"}};

// What the lesson says of one run: the stream at its residual ends (block outputs).
struct Facts {
  Design design = Design::kOther;
  std::string label;
  int blocks = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  int batch = 0;
  double scale = 1.0;                     // the first residual's branch scale
  Magnitude var_first, var_last;          // the stream's average channel variance
  Magnitude branch_first, branch_last;    // the branches' before the addition
  double mean_share_last = std::nan("");  // mean^2 / (mean^2 + var) at the last block
  double grad_ratio = std::nan("");       // log10 grad rms, first block's end / last block's end
  std::string verdict;
  std::string findings;
};

Facts facts_of(const Report& r) {
  Facts f;
  f.label = r.spec.name;
  for (const Named& n : kDesigns) {
    if (r.spec.name == n.name) {
      f.design = n.design;
      f.label = std::string(n.label);
    }
  }
  const LayerReport* first = nullptr;
  const LayerReport* last = nullptr;
  for (const LayerReport& l : r.layers) {
    if (l.kind != OpKind::kResidualEnd || !l.forward.has_branch_var) continue;
    if (first == nullptr) first = &l;
    last = &l;
    ++f.blocks;
  }
  f.channels = r.spec.input.image.channels;
  f.height = r.spec.input.image.height;
  f.width = r.spec.input.image.width;
  f.batch = r.spec.input.batch;
  if (first != nullptr) {
    f.scale = first->residual.scale;
    f.var_first = first->forward.channel_var;
    f.var_last = last->forward.channel_var;
    f.branch_first = first->forward.branch_var;
    f.branch_last = last->forward.branch_var;
    const double m = last->forward.channel_mean_sq.value;
    f.mean_share_last = m / (m + last->forward.channel_var.value);
    f.grad_ratio = first->backward.grad_preact_rms.log10 - last->backward.grad_preact_rms.log10;
  }
  f.verdict = std::string(verdict_name(r.verdict));
  for (const Finding& x : r.findings) {
    if (x.severity == Severity::kInfo || !x.cause.empty()) continue;
    f.findings += (f.findings.empty() ? "" : ", ") + x.code;
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

std::string mag(const Magnitude& m) { return magnitude_cell(m); }
std::string pow10(double log10) { return format_magnitude(magnitude_from_log10(log10)); }
std::string num(double v) { return std::isnan(v) ? "n/a" : format_number(v); }
// The stream's growth per block, from the first block's output to the last's.
std::string per_block(const Facts& f) {
  if (f.blocks < 2) return "n/a";
  return pow10((f.var_last.log10 - f.var_first.log10) / (f.blocks - 1));
}

class Page {
 public:
  explicit Page(const Lesson& lesson) {
    for (const Report& r : lesson.runs) all.push_back(facts_of(r));
  }

  void intro() {
    if (all.empty()) return;
    const Facts& f = all.front();
    std::string designs;
    for (std::size_t i = 0; i < all.size(); ++i) {
      designs += (i == 0 ? "" : (i + 1 == all.size() ? " and " : ", ")) + all[i].label;
    }
    para(fmt::format(
        "The same residual network of {} blocks ({} channels of {} x {} pixels, a batch of {} "
        "images, each block adding a branch of two 3x3 convolutions to the stream), built {} "
        "ways: {}. gradscope passed the batch forward and a gradient backward through each one "
        "and measured, at every block's output, the signal-propagation plot of Brock, De and "
        "Smith (2021): the stream's average channel variance, its average squared channel mean, "
        "and the variance of the residual branch before it is added. The numbers below come "
        "from those runs.",
        f.blocks, f.channels, f.height, f.width, f.batch, all.size(), designs));
    std::vector<std::vector<std::string>> rows{
        {"design", "stream variance, block 1", "stream variance, last block", "growth per block",
         "branch variance, last block", "mean^2 share, last block", "gradient, first / last block",
         "verdict", "warnings and errors"}};
    for (const Facts& x : all) {
      rows.push_back({x.label, mag(x.var_first), mag(x.var_last), per_block(x), mag(x.branch_last),
                      num(x.mean_share_last), pow10(x.grad_ratio), x.verdict, x.findings});
    }
    b.push_back({LessonBlock::kTable, "", rows, {}});
    para(
        "stream variance: (1/C) sum over channels of the variance of a channel over the images "
        "and positions, at a block's output. branch variance: the same of the branch, before "
        "the addition. mean^2 share: the average squared channel mean over the average second "
        "moment (ReLU's mean shift). gradient: the rms of dL/dx at the first block's output "
        "over the last block's.");
    b.push_back({LessonBlock::kPicture,
                 "The signal-propagation plot: the stream's average channel variance after each "
                 "block (solid) and the branch's before the addition (dashed), on a log scale.",
                 {},
                 std::string(kResnetLesson) + "-signal-propagation.svg"});
  }

  void no_norm() {
    const Facts* f = find(all, Design::kNoNorm);
    if (f == nullptr) return;
    heading("Without normalisation, the variance compounds");
    para(fmt::format(
        "He's init keeps a branch's output variance near the variance it receives, so each "
        "block adds about as much variance as the stream already holds: the stream's variance "
        "goes from {} after the first block to {} after block {}, {} times per block, and the "
        "branches grow with it ({} in the first block, {} in the last). Every block multiplies "
        "the effect of a small change of the input too: the first block's gradient is {} times "
        "the last one's. Deep, this is the exponential growth that kept early ResNets from "
        "training without batch norm. Verdict: {} ({}).",
        mag(f->var_first), mag(f->var_last), f->blocks, per_block(*f), mag(f->branch_first),
        mag(f->branch_last), pow10(f->grad_ratio), f->verdict, f->findings));
  }

  void batch_norm() {
    const Facts* f = find(all, Design::kBatchNorm);
    if (f == nullptr) return;
    heading("Batch norm: each branch adds a constant, so later blocks matter less");
    para(fmt::format(
        "With batch norm at the start of every branch, the branch sees a normalised input "
        "whatever the stream's size, and adds about the same variance each time ({} in the "
        "first block, {} in the last). The stream's variance therefore grows linearly, from {} "
        "to {} after {} blocks, and block l adds only about 1/l of what the stream holds: batch "
        "norm biases residual blocks towards the identity (De & Smith 2020), which is what lets "
        "deep BN-ResNets train. The first block's gradient is {} times the last one's. Its price: "
        "each example's output depends on the rest of the batch. Verdict: {} ({}).",
        mag(f->branch_first), mag(f->branch_last), mag(f->var_first), mag(f->var_last), f->blocks,
        pow10(f->grad_ratio), f->verdict, f->findings));
  }

  void scaled() {
    const Facts* f = find(all, Design::kScaled);
    if (f == nullptr) return;
    heading("The same without norms: scale the branches down");
    para(fmt::format(
        "Multiplying each branch by {} (1/sqrt(L) for L = {} blocks) gets batch norm's effect "
        "at init with no norm at all: each block adds a small fraction of the stream's variance, "
        "which grows from {} to {}, {} times per block, and the first block's gradient is {} "
        "times the last one's. SkipInit (De & Smith 2020) takes this to its end with a learned "
        "scale that starts at 0. Verdict: {} ({}).",
        num(f->scale), f->blocks, mag(f->var_first), mag(f->var_last), per_block(*f),
        pow10(f->grad_ratio), f->verdict, f->findings));
  }

  void fixup() {
    const Facts* f = find(all, Design::kFixup);
    if (f == nullptr) return;
    heading("Fixup: every block starts as the identity");
    para(fmt::format(
        "Fixup (Zhang, Dauphin & Ma 2019) zero-initialises the last layer of every branch and "
        "scales the others down by L^(-1/(2m-2)): at init each block adds exactly nothing, so "
        "the stream's variance stays at {} from the first block to the last ({}), and the "
        "branch variance is {}. Only each branch's last layer receives a gradient at the first "
        "step; after it the blocks open up one by one. Verdict: {} ({}).",
        mag(f->var_first), mag(f->var_last), mag(f->branch_last), f->verdict, f->findings));
  }

  void nf() {
    const Facts* f = find(all, Design::kNf);
    if (f == nullptr) return;
    heading("NF-ResNet: the variance by design, and no mean shift");
    para(fmt::format(
        "A normalizer-free ResNet (Brock, De & Smith 2021) scales each branch's input by the "
        "stream's expected standard deviation, and its output by alpha, so the variance grows "
        "by exactly alpha^2 per block: {} after the first block, {} after block {}. Its "
        "convolutions standardise their weights (zero mean per filter), which removes ReLU's "
        "mean shift: the squared channel mean is {} of the second moment at the last block. "
        "The first block's gradient is {} times the last one's. Verdict: {} ({}).",
        mag(f->var_first), mag(f->var_last), f->blocks, num(f->mean_share_last),
        pow10(f->grad_ratio), f->verdict, f->findings));
  }

  void closing() {
    heading("What to use where");
    para(
        "A deep residual network needs its blocks to start close to the identity. Batch norm "
        "does it by normalising each branch's input; without norms, scale the branches down "
        "(a `residual` item's `scale`), zero-initialise their last layers (Fixup) or use an "
        "NF-ResNet's scaled weight standardisation. `gradscope run` on any image network prints "
        "the signal-propagation table, and its HTML report draws the plot.");
    para(fmt::format(
        "Reproduce: `gradscope lesson {0}` runs the lesson's configs, built into gradscope from "
        "configs/lessons/{0}/, and writes this page; `gradscope run` on any of those files gives "
        "the full per-op report.",
        kResnetLesson));
  }

  std::vector<LessonBlock> take() { return std::move(b); }

 private:
  void heading(std::string t) { b.push_back({LessonBlock::kHeading, std::move(t), {}, {}}); }
  void para(std::string t) { b.push_back({LessonBlock::kParagraph, std::move(t), {}, {}}); }

  std::vector<Facts> all;
  std::vector<LessonBlock> b;
};

std::string signal_plot(const Lesson& lesson) {
  LineChart chart;
  chart.title = "Signal propagation: the stream and the branches, block by block";
  chart.x_label = "residual block (input side first)";
  chart.y_label = "average channel variance";
  chart.log10_y = true;
  int colour = 0;
  for (const Report& r : lesson.runs) {
    const Facts f = facts_of(r);
    Series stream;
    stream.label = f.label + ": stream";
    stream.colour = colour;
    Series branch;
    branch.label = f.label + ": branch";
    branch.colour = colour;
    branch.dashed = true;
    int block = 0;
    for (const LayerReport& l : r.layers) {
      if (l.kind != OpKind::kResidualEnd || !l.forward.has_branch_var) continue;
      ++block;
      stream.x.push_back(block);
      stream.y.push_back(l.forward.channel_var.log10);
      stream.point_notes.push_back(fmt::format("{}, block {}: stream variance {}", f.label, block,
                                               magnitude_cell(l.forward.channel_var)));
      branch.x.push_back(block);
      branch.y.push_back(l.forward.branch_var.log10);
      branch.point_notes.push_back(fmt::format("{}, block {}: branch variance {}", f.label, block,
                                               magnitude_cell(l.forward.branch_var)));
    }
    chart.series.push_back(std::move(stream));
    chart.series.push_back(std::move(branch));
    ++colour;
  }
  chart.empty_note = "no run has residual blocks on images";
  return line_chart_svg(chart);
}

}  // namespace

std::vector<LessonBlock> resnet_lesson_blocks(const Lesson& lesson) {
  Page page(lesson);
  page.intro();
  page.no_norm();
  page.batch_norm();
  page.scaled();
  page.fixup();
  page.nf();
  page.closing();
  return page.take();
}

std::vector<std::pair<std::string, std::string>> resnet_lesson_plots(const Lesson& lesson) {
  return {{std::string(kResnetLesson) + "-signal-propagation.svg", signal_plot(lesson)}};
}

}  // namespace gradscope
