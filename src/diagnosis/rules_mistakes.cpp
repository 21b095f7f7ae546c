// The common mistakes' rules: configurations known to cause the measured problems. Each is a
// warning when the measured findings show its problem, a note when they do not.
#include <algorithm>
#include <cmath>
#include <string>

#include "diagnosis/rules.hpp"
#include "diagnosis/words.hpp"

namespace gradscope::diagnosis_detail {

namespace {

// A common mistake is a warning when the measured findings show a problem, else a note.
Severity cause_severity(int score) { return score > 0 ? Severity::kWarning : Severity::kInfo; }

}  // namespace

RuleResult unnormalized_input(const RuleContext& c, const ProblemMetric& m) {
  const double excess = m.value;  // input_scale_excess
  if (!(excess >= 0.0)) return std::nullopt;
  Finding f = make(FindingCode::kUnnormalizedInput, Severity::kWarning, 0);
  f.evidence.push_back(
      ev("input_scale_excess_decades", std::isfinite(excess) ? excess : kNaN, ">=", 0.0, 0));
  f.evidence.push_back(context("input_mean", c.s.input_mean, 0));
  f.evidence.push_back(context("input_std", c.s.input_std, 0));
  f.evidence.push_back(context("input_rms", c.s.input_rms, 0));
  const bool loaded = c.r.sources && !c.r.sources->input_file.empty();
  f.explanation =
      std::string("The input is not standardised: its entries have mean ") +
      fmt_num(c.s.input_mean) + " and standard deviation " + fmt_num(c.s.input_std) + " (rms " +
      fmt_num(c.s.input_rms) +
      "), where inits are derived for inputs of mean 0 and variance 1: the first layer's "
      "pre-activations inherit that scale (a norm later removes it), so the activations, "
      "measured against the input, look " +
      (std::log10(c.s.input_rms) > 0 ? "collapsed" : "exploded") +
      " wherever the network restores its own scale" +
      (loaded ? "; standardise the data (subtract each feature's mean, divide by its standard "
                "deviation) before it enters the network."
              : ".");
  return f;
}

RuleResult saturating_hidden_activation(const RuleContext& c, const ProblemMetric& m) {
  const int score = static_cast<int>(m.value);  // the measured findings' problem score
  int count = 0, first = 0;
  bool sigmoid = false;
  for (int i : c.s.hidden) {
    const LayerReport& l = c.at(i);
    if (!is_bounded(l.activation.kind)) continue;
    ++count;
    if (first == 0) first = l.index;
    if (l.activation.kind == Activation::kSigmoid) sigmoid = true;
  }
  if (count < c.d.deep_layers) return std::nullopt;
  Finding f = make(FindingCode::kSaturatingHiddenActivation,
                   sigmoid ? Severity::kWarning : cause_severity(score), first);
  f.evidence.push_back(ev("bounded_hidden_layers", count, ">=", c.d.deep_layers, 0));
  f.evidence.push_back(context("problem_score", score, 0));
  const std::string name(activation_info(c.at(c.s.hidden.front()).activation.kind).name);
  f.explanation =
      std::to_string(count) + " hidden layers use " + (sigmoid ? std::string("sigmoid") : name) +
      (sigmoid ? ", whose slope is at most 1/4 and whose outputs are all positive: each layer "
                 "shrinks the gradient at least 4x unless the weights make up for it, and "
                 "deep sigmoid stacks are the classic case of vanishing gradients; keep "
                 "sigmoid for a binary output."
               : ", which flattens out for large inputs: a deep stack of it trains only near "
                 "the edge of chaos, where the init is just right.");
  return f;
}

RuleResult mismatched_init(const RuleContext& c, const ProblemMetric& m) {
  const int score = static_cast<int>(m.value);  // the measured findings' problem score
  const InitAdvice& init = *c.init;
  if (!init.valid || c.s.hidden.size() < 2) return std::nullopt;
  const double ratio = std::max(init.sw2_now / init.sw2, init.sw2 / init.sw2_now);
  if (!(ratio >= c.d.init_mismatch_factor)) return std::nullopt;
  if (!init_advice_stands(init, c.s, c.d)) return std::nullopt;
  const bool predicted_problem =
      init.now.worst() >= std::min(c.d.gradient_warning_decades, c.d.activation_warning_decades);
  const LayerReport& h = c.at(c.s.hidden.front());
  Finding f = make(FindingCode::kMismatchedInit,
                   predicted_problem ? Severity::kWarning : cause_severity(score), h.index);
  if (init.sw2_now > 0.0) {
    f.evidence.push_back(ev("sw2_ratio", ratio, ">=", c.d.init_mismatch_factor, 0));
  } else {
    f.evidence.push_back(ev("sw2", 0.0, "<=", 0.0, 0));  // zero weights: no ratio to give
  }
  if (init.sw2_now > 0.0) f.evidence.push_back(context("sw2", init.sw2_now, 0));
  f.evidence.push_back(context("sw2_advised", init.sw2, 0));
  if (std::isfinite(init.now.grad_decades)) {
    f.evidence.push_back(context("predicted_log10_grad_ratio", init.now.grad_decades, 0));
  }
  if (std::isfinite(init.now.act_decades)) {
    f.evidence.push_back(context("predicted_log10_act_rel_input", init.now.act_decades, 0));
  }
  f.evidence.push_back(context("problem_score", score, 0));
  const std::string act(activation_info(c.s.hidden_activation.kind).name);
  f.explanation = "The " + std::string(init_info(h.init.kind).name) +
                  (h.init.gain != 1.0 ? " (gain " + fmt_num(h.init.gain) + ")" : std::string()) +
                  " init gives weight variance sw2 = " + fmt_num(init.sw2_now) +
                  " (times 1/fan_in), but over these " + std::to_string(c.s.hidden.size()) + " " +
                  act + " layers mean-field theory finds sw2 = " + fmt_num(init.sw2) +
                  " keeps the signal and the gradient closest to constant; with " +
                  fmt_num(init.sw2_now) + " it predicts " + chain_words(init.now) + ".";
  return f;
}

RuleResult sigmoid_output_multiclass(const RuleContext& c, const ProblemMetric& m) {
  const double floor = m.value;  // bounded_output_loss_floor
  if (!(floor > 0)) return std::nullopt;
  const LayerReport& o = c.at(c.s.dense.back());
  Finding f = make(FindingCode::kSigmoidOutputMulticlass, Severity::kWarning, o.index);
  f.evidence.push_back(ev("loss_floor", floor, ">", 0.0, o.index));
  f.evidence.push_back(context("classes", o.width, o.index));
  f.evidence.push_back(context("max_probability", std::exp(-floor), o.index));
  const std::string act(activation_info(o.activation.kind).name);
  f.explanation =
      "The output layer squashes its " + std::to_string(o.width) + " logits through " + act +
      " before softmax_cross_entropy, so the most confident prediction reachable is " +
      fmt_num(std::exp(-floor), 3) + " and the loss cannot fall below " + fmt_num(floor, 3) +
      " nats; " + act + "'s slope also shrinks the gradient the network receives.";
  return f;
}

RuleResult plain_deep_stack(const RuleContext& c, const ProblemMetric& m) {
  const int score = static_cast<int>(m.value);  // the measured findings' problem score
  const int n = static_cast<int>(c.s.dense.size());
  if (n < c.d.deep_layers || c.s.has_norm || c.s.has_residual) return std::nullopt;
  Finding f = make(FindingCode::kPlainDeepStack, cause_severity(score), 0);
  f.evidence.push_back(ev("dense_layers", n, ">=", c.d.deep_layers, 0));
  f.evidence.push_back(context("problem_score", score, 0));
  f.explanation =
      std::to_string(n) +
      " dense layers are stacked with neither normalization nor residual connections, so "
      "every layer's effect on the signal and the gradient compounds with depth" +
      (score > 0 ? std::string(": the other findings show the result.")
                 : std::string("; here the init keeps them in check, but any change to the "
                               "activation or the init will compound the same way."));
  return f;
}

}  // namespace gradscope::diagnosis_detail
