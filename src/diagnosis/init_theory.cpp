// The init theory advises (init_theory.hpp): the chain's prediction and the best weight variance.
#include "diagnosis/init_theory.hpp"

#include <vector>

#include "diagnosis/words.hpp"
#include "gradscope/theory/theory.hpp"

namespace gradscope::diagnosis_detail {

namespace {

const double kLn10 = std::log(10.0);

// Iterates the length map through `layers` layers from the input's second moment, multiplying
// the per-layer gradient factors chi; stops early once q settles (the rest repeat it) and
// extrapolates beyond a few thousand layers.
ChainPrediction predict_chain(const ActivationSpec& a, double sw2, double sb2, double q_in,
                              int layers) {
  const MeanField mf{a, sw2, sb2};
  ChainPrediction p;
  if (!(sw2 > 0.0)) {
    // Zero weights: every layer outputs phi(its bias); nothing reaches the layers below the last.
    p.grad_decades = layers > 1 ? -kInf : 0.0;
    p.act_decades = -kInf;
    return p;
  }
  double q = sw2 * q_in + sb2;
  double log_chi = 0.0;
  double prev_step = kNaN;
  double prev_log_c = kNaN;
  constexpr int kMaxIterated = 4000;
  const int n = std::max(layers, 1);
  for (int l = 1; l < n; ++l) {
    if (!(std::isfinite(q) && q > 0 && q < 1e250)) break;
    const double log_c = std::log(chi(mf, q));
    const double next = length_map(mf, q);
    log_chi += log_c;
    const double step = next > 0 ? std::log(next / q) : -kInf;
    // Once the per-layer factors repeat (a fixed point, or the geometric growth or decay of a
    // positively homogeneous map such as ReLU's), the remaining layers repeat them too.
    const bool settled =
        std::abs(step - prev_step) <= 1e-10 && std::abs(log_c - prev_log_c) <= 1e-10;
    if (settled || l >= kMaxIterated) {
      const int rest = n - 1 - l;
      log_chi += rest * log_c;
      q = std::exp(std::log(next) + rest * step);
      break;
    }
    prev_step = step;
    prev_log_c = log_c;
    q = next;
  }
  if (!(std::isfinite(q) && q < 1e250) || std::isnan(log_chi)) return {kInf, kInf};
  const double m2 = q > 0 ? (length_map(mf, q) - sb2) / sw2 : 0.0;
  p.grad_decades = log_chi / (2.0 * kLn10);
  p.act_decades = m2 > 0 ? 0.5 * std::log10(m2 / q_in) : -kInf;
  return p;
}

}  // namespace

// The init advice is given (and a mismatched init reported) when theory predicts it better than
// the current one by at least this many decades of drift, even where it is not predicted healthy.
constexpr double kInitAdviceGainDecades = 0.5;

// Whether theory's best init is worth advising: predicted healthy, or (for an unbounded
// activation) clearly better than the current one. Past about 60 GELU layers no weight variance
// keeps the mean-field prediction within 2 decades, yet the best one measures healthy where
// Xavier's collapses. A bounded activation (sigmoid) that no init makes healthy is the saturating
// activation's problem, not the init's.
bool init_advice_stands(const InitAdvice& init, const Shape& s, const DiagnosisSpec& d) {
  if (!init.valid) return false;
  const double gain = init.now.worst() - init.advised.worst();
  if (!(gain >= kInitAdviceGainDecades)) return false;
  const bool healthy =
      init.advised.worst() < std::min(d.gradient_warning_decades, d.activation_warning_decades);
  return healthy || !is_bounded(s.hidden_activation.kind);
}

// A chain prediction in words: "a first-to-last gradient ratio of 4.2e-8 and an output rms 3.0e-8
// of the input's"; never a non-finite number.
std::string chain_words(const ChainPrediction& p) {
  std::string grad;
  if (std::isfinite(p.grad_decades)) {
    grad = "a first-to-last gradient ratio of " + pow10_text(p.grad_decades);
  } else if (p.grad_decades < 0) {
    grad = "a gradient of exactly 0 below the last layer";
  } else {
    grad = "a gradient that grows without bound (past 1e125, where the prediction stops)";
  }
  std::string act;
  if (std::isfinite(p.act_decades)) {
    act = "an output rms " + pow10_text(p.act_decades) + " of the input's";
  } else if (p.act_decades < 0) {
    act = "an output that falls to exactly 0";
  } else {
    act = "an output that grows without bound";
  }
  return grad + " and " + act;
}

// The weight variance that keeps both the signal and the gradient closest to constant over the
// chain, by a log-spaced scan refined by golden-section search; then the named init that gives it
// when one is within 2%.
InitAdvice theory_init(const Report& r, const Shape& s) {
  InitAdvice adv;
  if (!s.uniform_hidden || s.has_norm || s.has_residual || s.has_other_ops || s.hidden.size() < 2) {
    return adv;
  }
  const LayerReport& h = r.layers[static_cast<std::size_t>(s.hidden[1])];
  const ActivationSpec& a = s.hidden_activation;
  if (a.kind == Activation::kSoftmax) return adv;
  const double sb2 =
      h.bias.kind == BiasInit::kConstant ? 0.0 : bias_second_moment(h.bias, h.fan_in);
  const int n = static_cast<int>(s.hidden.size());
  const double q_in = s.input_second_moment;
  if (!(q_in > 0)) return adv;
  const auto cost = [&](double log_sw2) {
    return predict_chain(a, std::exp(log_sw2), sb2, q_in, n).worst();
  };
  const double lo = std::log(0.05);
  const double hi = std::log(50.0);
  constexpr int kGrid = 41;
  int best = 0;
  std::vector<double> costs(kGrid);
  for (int i = 0; i < kGrid; ++i) {
    costs[static_cast<std::size_t>(i)] = cost(lo + (hi - lo) * i / (kGrid - 1));
    if (costs[static_cast<std::size_t>(i)] < costs[static_cast<std::size_t>(best)]) best = i;
  }
  double a_lo = lo + (hi - lo) * std::max(best - 1, 0) / (kGrid - 1);
  double a_hi = lo + (hi - lo) * std::min(best + 1, kGrid - 1) / (kGrid - 1);
  const double phi = 0.5 * (std::sqrt(5.0) - 1.0);
  double x1 = a_hi - phi * (a_hi - a_lo);
  double x2 = a_lo + phi * (a_hi - a_lo);
  double f1 = cost(x1);
  double f2 = cost(x2);
  for (int it = 0; it < 30; ++it) {
    if (f1 <= f2) {
      a_hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = a_hi - phi * (a_hi - a_lo);
      f1 = cost(x1);
    } else {
      a_lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = a_lo + phi * (a_hi - a_lo);
      f2 = cost(x2);
    }
  }
  double sw2 = std::exp(0.5 * (a_lo + a_hi));
  const bool square = h.width == h.fan_in;
  if (std::abs(sw2 / 2.0 - 1.0) <= 0.02) {
    sw2 = 2.0;
    adv.spec.kind = Init::kHeNormal;
    adv.name = "he_normal (sw2 = 2)";
  } else if (std::abs(sw2 - 1.0) <= 0.02) {
    sw2 = 1.0;
    adv.spec.kind = square ? Init::kXavierNormal : Init::kLecunNormal;
    adv.name =
        square ? "xavier_normal (sw2 = 1 for these square layers)" : "lecun_normal (sw2 = 1)";
  } else {
    sw2 = std::stod(fmt_num(sw2, 3));
    adv.spec.kind = Init::kVariance;
    adv.spec.weight_var = sw2;
    adv.name = "weight variance sw2 = " + fmt_num(sw2, 3) + " (init \"variance\")";
  }
  adv.sw2 = sw2;
  adv.sw2_now = weight_sw2(h.init, h.fan_in, h.width);
  adv.now = predict_chain(a, adv.sw2_now, sb2, q_in, n);
  adv.advised = predict_chain(a, sw2, sb2, q_in, n);
  adv.valid = std::isfinite(adv.advised.worst());
  return adv;
}

}  // namespace gradscope::diagnosis_detail
