// The diagnosis rules. Each rule reads the report's measurements (and, for advice, mean-field
// theory), compares them with spec.diagnosis's thresholds, and says what it saw in plain words.
#include "gradscope/diagnosis/diagnosis.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "gradscope/core/init.hpp"
#include "gradscope/theory/theory.hpp"

namespace gradscope {

namespace {

constexpr std::array<FindingInfo, kFindingCodeCount> kFindings{{
    {FindingCode::kVanishingGradients, "vanishing_gradients",
     "the gradient shrinks from the last layer to the first by more than the threshold",
     "decades of shrink, -log10 rms(dL/dh first) / rms(dL/dh last)", true},
    {FindingCode::kExplodingGradients, "exploding_gradients",
     "the gradient grows from the last layer to the first by more than the threshold",
     "decades of growth, log10 rms(dL/dh first) / rms(dL/dh last)", true},
    {FindingCode::kCollapsingActivations, "collapsing_activations",
     "a layer's output rms falls below the input's by more than the threshold",
     "decades below the input, -min_l log10 rms(y_l) / rms(x)", true},
    {FindingCode::kExplodingActivations, "exploding_activations",
     "a layer's output rms rises above the input's by more than the threshold",
     "decades above the input, max_l log10 rms(y_l) / rms(x)", true},
    {FindingCode::kNonFinite, "non_finite", "NaN or infinity in a layer's values or gradients",
     "layers with a non-finite value", true},
    {FindingCode::kDeadUnits, "dead_units",
     "a ReLU layer loses a share of its units to zero output for the whole batch",
     "largest share of a layer's units dead for the whole batch", true},
    {FindingCode::kSaturatedUnits, "saturated_units",
     "a sigmoid/tanh-like layer has a share of its entries on the flat tails",
     "largest share of a bounded-activation layer's entries saturated", true},
    {FindingCode::kCorrelationCollapse, "correlation_collapse",
     "different examples' outputs point in nearly the same direction",
     "largest mean cosine between examples' outputs", true},
    {FindingCode::kFp16GradientUnderflow, "fp16_gradient_underflow",
     "a layer's gradient rms falls below float16's smallest normal (2^-14)",
     "decades below float16's smallest normal", true},
    {FindingCode::kFp16ActivationOverflow, "fp16_activation_overflow",
     "a layer's largest |value| exceeds float16's largest (65504)",
     "decades above float16's largest value", true},
    {FindingCode::kBf16GradientUnderflow, "bf16_gradient_underflow",
     "a layer's gradient rms falls below bfloat16's smallest normal (2^-126)",
     "decades below bfloat16's smallest normal", true},
    {FindingCode::kUpdateRatio, "update_ratio",
     "the optimizer's first step moves a layer's weights too much or too little",
     "decades outside [update_ratio_min, update_ratio_max]", true},
    {FindingCode::kSaturatingHiddenActivation, "saturating_hidden_activation",
     "sigmoid or tanh in many hidden layers of a plain stack",
     "problem score of the measured findings (warning 1, error 2)", false},
    {FindingCode::kMismatchedInit, "mismatched_init",
     "the init's weight variance is far from what the activation needs to keep the signal",
     "problem score of the measured findings (warning 1, error 2)", false},
    {FindingCode::kSigmoidOutputMulticlass, "sigmoid_output_multiclass",
     "a bounded output activation (sigmoid) before a softmax cross-entropy over several classes",
     "the loss floor the bounded outputs impose, in nats", false},
    {FindingCode::kPlainDeepStack, "plain_deep_stack",
     "many dense layers with neither normalization nor residual connections",
     "problem score of the measured findings (warning 1, error 2)", false},
    {FindingCode::kUnnormalizedInput, "unnormalized_input",
     "the input is not standardised: its rms is 100x off 1, or its mean 10x its spread",
     "decades beyond a standardised input, max(|log10 rms| - 2, log10 |mean| / std - 1)", false},
}};

static_assert(kFindings.size() == static_cast<std::size_t>(kFindingCodeCount));

constexpr std::array<std::string_view, 3> kSeverityNames{"info", "warning", "error"};
constexpr std::array<std::string_view, 3> kVerdictNames{"healthy", "warning", "error"};

}  // namespace

constexpr bool findings_in_enum_order() {
  for (std::size_t i = 0; i < kFindings.size(); ++i) {
    if (static_cast<std::size_t>(kFindings[i].code) != i) return false;
  }
  return true;
}
static_assert(findings_in_enum_order(), "kFindings must follow FindingCode's order");

const std::array<FindingInfo, kFindingCodeCount>& finding_table() { return kFindings; }

const FindingInfo& finding_info(FindingCode code) {
  return kFindings[static_cast<std::size_t>(code)];
}

std::optional<FindingCode> finding_from_name(std::string_view name) {
  for (const FindingInfo& f : kFindings) {
    if (f.name == name) return f.code;
  }
  return std::nullopt;
}

std::vector<std::string_view> finding_names() {
  std::vector<std::string_view> names;
  for (const FindingInfo& f : kFindings) names.push_back(f.name);
  return names;
}

std::string_view severity_name(Severity s) { return kSeverityNames[static_cast<std::size_t>(s)]; }

std::optional<Severity> severity_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kSeverityNames.size(); ++i) {
    if (kSeverityNames[i] == name) return static_cast<Severity>(i);
  }
  return std::nullopt;
}

std::string_view verdict_name(Verdict v) { return kVerdictNames[static_cast<std::size_t>(v)]; }

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const double kLn10 = std::log(10.0);

// The limits of the half-precision formats mixed-precision training stores gradients and
// activations in: the smallest normal numbers and the largest finite ones.
const double kFp16MinNormalLog10 = -14.0 * std::log10(2.0);  // 6.10e-5
const double kFp16MaxLog10 = std::log10(65504.0);
const double kBf16MinNormalLog10 = -126.0 * std::log10(2.0);  // 1.18e-38
const double kBf16MaxLog10 = std::log10(3.3895313892515355e38);
// Entries spread around their rms: keep a decade on each side of it inside the format when
// proposing a loss scale.
constexpr double kLossScaleMarginDecades = 1.0;

// ---- Words and numbers

std::string fmt_num(double x, int sig = 3) {
  if (std::isnan(x)) return "n/a";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", sig, x);
  return buf;
}

// 10^log10 for any log10, also beyond double's range: "0.25", "3.2e+04", "1.6e-31".
std::string pow10_text(double log10) {
  if (std::isnan(log10)) return "n/a";
  if (std::isinf(log10)) return log10 > 0 ? "inf" : "0";
  if (std::abs(log10) < 3.0) return fmt_num(std::pow(10.0, log10), 2);
  double e = std::floor(log10);
  double m = std::pow(10.0, log10 - e);
  if (m >= 9.95) {
    m /= 10.0;
    e += 1.0;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1fe%+d", m, static_cast<int>(e));
  return buf;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
  return buf;
}

std::string layer_word(int index) { return "layer " + std::to_string(index); }

// JSON text of a number that reads back to the same double.
std::string json_number(double x) {
  char buf[64];
  if (x == std::trunc(x) && std::abs(x) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", x);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.17g", x);
  // Prefer the shortest spelling that round-trips, so advice reads like a person wrote it.
  for (int digits = 1; digits <= 17; ++digits) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", digits, x);
    if (std::strtod(shorter, nullptr) == x) return shorter;
  }
  return buf;
}

std::string json_string(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string activation_json(const ActivationSpec& a) {
  const ActivationInfo& info = activation_info(a.kind);
  if (info.param_name.empty()) return json_string(info.name);
  return "{\"name\": " + json_string(info.name) + ", \"" + std::string(info.param_name) +
         "\": " + json_number(a.param) + "}";
}

// An activation as --set takes it: its bare name at its default parameter, else the JSON object.
std::string activation_value(const ActivationSpec& a) {
  const ActivationInfo& info = activation_info(a.kind);
  if (info.param_name.empty() || a.param == info.param_default) return std::string(info.name);
  return activation_json(a);
}

std::string init_json(const InitSpec& init) {
  std::string j = "{\"name\": " + json_string(init_info(init.kind).name) +
                  ", \"gain\": " + json_number(init.gain);
  switch (init.kind) {
    case Init::kNormal:
      j += ", \"std\": " + json_number(init.std);
      break;
    case Init::kUniform:
      j += ", \"limit\": " + json_number(init.limit);
      break;
    case Init::kHeNormal:
    case Init::kHeUniform:
      j += std::string(", \"mode\": ") +
           (init.mode == FanMode::kFanIn ? "\"fan_in\"" : "\"fan_out\"");
      break;
    case Init::kVariance:
      j += ", \"weight_var\": " + json_number(init.weight_var);
      break;
    default:
      break;
  }
  return j + "}";
}

std::string bias_json(const BiasInitSpec& b) {
  switch (b.kind) {
    case BiasInit::kConstant:
      return "{\"name\": \"constant\", \"value\": " + json_number(b.value) + "}";
    case BiasInit::kNormal:
      return "{\"name\": \"normal\", \"std\": " + json_number(b.std) + "}";
    case BiasInit::kTorchDefault:
      return "\"torch_default\"";
    case BiasInit::kZeros:
      break;
  }
  return "\"zeros\"";
}

std::string dense_item_json(const LayerSpec& layer) {
  return "{\"width\": " + std::to_string(layer.width) +
         ", \"activation\": " + activation_json(layer.activation) +
         ", \"init\": " + init_json(layer.init) + ", \"bias_init\": " + bias_json(layer.bias) + "}";
}

// ---- What the network is

bool is_bounded(Activation a) {
  return a == Activation::kSigmoid || a == Activation::kTanh || a == Activation::kHardTanh;
}

bool same_activation(const ActivationSpec& a, const ActivationSpec& b) {
  return a.kind == b.kind && a.param == b.param;
}

double weight_sw2(const InitSpec& init, int fan_in, int fan_out) {
  return init_weight_variance(init, fan_in, fan_out) * fan_in;
}

// Facts about the report's network that several rules need.
struct Shape {
  std::vector<std::string> paths;  // config path of each reported layer
  std::vector<int> dense;          // indices (0-based) into report.layers of the dense layers
  std::vector<int> hidden;         // the dense layers but the output one
  bool has_norm = false;
  bool has_batch_norm = false;
  bool has_residual = false;
  bool has_other_ops = false;  // activation or dropout ops
  bool stack_config = false;
  // The hidden layers share one activation, init and bias (a uniform stack).
  bool uniform_hidden = false;
  ActivationSpec hidden_activation{};
  double input_second_moment = 1.0;
  double input_rms = 1.0;
  double input_mean = 0.0;
  double input_std = 1.0;
  double input_correlation = 0.0;  // expected cosine between two input examples
  double grad_scale_log10 = 0.0;   // to the per-example scale of a mean-over-batch loss
};

Shape shape_of(const Report& r) {
  Shape s;
  const std::vector<OpSpec> ops = expand_ops(r.spec);
  const std::vector<std::string> op_paths = op_config_paths(r.spec);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind != OpKind::kResidualBegin) s.paths.push_back(op_paths[i]);
  }
  s.paths.resize(r.layers.size());
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const LayerReport& l = r.layers[i];
    switch (l.kind) {
      case OpKind::kDense:
        s.dense.push_back(static_cast<int>(i));
        break;
      case OpKind::kNorm:
        s.has_norm = true;
        if (l.norm.kind == NormKind::kBatchNorm) s.has_batch_norm = true;
        break;
      case OpKind::kResidualEnd:
        s.has_residual = true;
        break;
      case OpKind::kActivation:
      case OpKind::kDropout:
        s.has_other_ops = true;
        break;
      case OpKind::kResidualBegin:
        break;
    }
  }
  s.hidden = s.dense;
  if (s.dense.size() >= 2) {
    // The last dense layer is the output layer when it differs from the one before it; a uniform
    // stack without an output layer is hidden layers all the way.
    const LayerReport& last = r.layers[static_cast<std::size_t>(s.dense.back())];
    const LayerReport& prev = r.layers[static_cast<std::size_t>(s.dense[s.dense.size() - 2])];
    if (!same_activation(last.activation, prev.activation) || last.width != prev.width ||
        r.spec.output) {
      s.hidden.pop_back();
    }
  }
  s.stack_config = r.spec.layers.empty();
  if (!s.hidden.empty()) {
    const LayerReport& h0 = r.layers[static_cast<std::size_t>(s.hidden.front())];
    s.hidden_activation = h0.activation;
    s.uniform_hidden = true;
    for (int i : s.hidden) {
      const LayerReport& h = r.layers[static_cast<std::size_t>(i)];
      if (!same_activation(h.activation, h0.activation) || h.init.kind != h0.init.kind ||
          h.init.gain != h0.init.gain || h.bias.kind != h0.bias.kind) {
        s.uniform_hidden = false;
      }
    }
  }
  // The input as measured (a loaded file's, or the generated sample's); reports built without a
  // measurement fall back on the spec. hypot and ratios keep 1e200 or 1e-200 inputs finite.
  const InputSpec& in = r.spec.input;
  double mean = in.mean;
  double rms = std::hypot(in.mean, in.std);
  double std_dev = in.std;
  if (in.distribution == InputDistribution::kUniform) {
    mean = 0.5 * (in.low + in.high);
    std_dev = (in.high - in.low) / std::sqrt(12.0);
    rms = std::hypot(mean, std_dev);
  }
  if (r.input.finite > 0 && std::isfinite(r.input.rms)) {
    mean = r.input.mean;
    rms = r.input.rms;
    std_dev = r.input.std;
  }
  s.input_rms = rms;
  s.input_mean = mean;
  s.input_std = std_dev;
  s.input_second_moment = rms * rms;
  s.input_correlation = rms > 0 ? (mean / rms) * (mean / rms) : 0.0;
  // The probe's dL/dy has rms 1 per entry; a loss averaged over the batch gives each example's
  // output about 1/batch of that, which is what a half-precision gradient would have to hold.
  if (r.spec.loss.kind == LossKind::kProbe) {
    s.grad_scale_log10 = -std::log10(static_cast<double>(std::max(1, r.spec.input.batch)));
  }
  return s;
}

// ---- Mean-field theory of a uniform chain of dense layers

struct ChainPrediction {
  double grad_decades = 0.0;  // log10 rms(dL/dh first) / rms(dL/dh last)
  double act_decades = 0.0;   // log10 rms(y last) / rms(x)
  double worst() const { return std::max(std::abs(grad_decades), std::abs(act_decades)); }
};

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

struct InitAdvice {
  bool valid = false;
  double sw2_now = 0.0;
  double sw2 = 0.0;   // the advised sw2 (named inits rounded onto theirs)
  std::string value;  // JSON text for "init"
  InitSpec spec;      // the same init
  std::string name;   // how to say it
  ChainPrediction now;
  ChainPrediction advised;
};

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
    adv.value = "he_normal";
    adv.spec.kind = Init::kHeNormal;
    adv.name = "he_normal (sw2 = 2)";
  } else if (std::abs(sw2 - 1.0) <= 0.02) {
    sw2 = 1.0;
    adv.value = square ? "xavier_normal" : "lecun_normal";
    adv.spec.kind = square ? Init::kXavierNormal : Init::kLecunNormal;
    adv.name =
        square ? "xavier_normal (sw2 = 1 for these square layers)" : "lecun_normal (sw2 = 1)";
  } else {
    sw2 = std::stod(fmt_num(sw2, 3));
    adv.value = "{\"name\": \"variance\", \"weight_var\": " + json_number(sw2) + "}";
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

// ---- Measured quantities

struct GradientScan {
  double ratio = 0.0;   // log10 first / last
  int first_layer = 0;  // where |log10 rel last| first reaches the threshold, output side first
};

double grad_log10(const LayerReport& l) { return l.backward.grad_preact_rms.log10; }

// NaN when the layer has no finite output (its rms is undefined), -inf when it is exactly 0.
double act_log10_rel_input(const LayerReport& l, const Shape& s) {
  const double rms = l.forward.act.rms;
  if (std::isnan(rms) || !(s.input_rms > 0) || !std::isfinite(s.input_rms)) return kNaN;
  return (rms > 0 ? std::log10(rms) : -kInf) - std::log10(s.input_rms);
}

// How far the input is from standardised, in decades: its rms beyond 2 decades of 1, or its mean
// beyond 10 times its standard deviation. At or above 0 the input is a finding.
double input_scale_excess(const Shape& s) {
  if (!(s.input_rms > 0) || !std::isfinite(s.input_rms)) return kInf;
  const double scale = std::abs(std::log10(s.input_rms)) - 2.0;
  const double offset = s.input_std > 0 ? std::log10(std::abs(s.input_mean) / s.input_std) - 1.0
                                        : (s.input_mean != 0.0 ? kInf : -kInf);
  return std::max(scale, offset);
}

// Layers whose forward statistics mean something: those before the first layer whose forward
// values hold NaN or infinity. Past it every value is computed from non-finite ones.
bool forward_valid(const Report& r, const LayerReport& l) {
  return !(r.summary.nonfinite_in_forward && l.index >= r.summary.first_nonfinite_layer);
}

// A gradient statistic means something where the gradient has no NaN or infinite entry.
bool gradient_valid(const LayerReport& l) {
  return l.backward.nonfinite == 0 && !std::isnan(l.backward.grad_preact_rms.log10);
}

double max_abs_act(const LayerReport& l) {
  return std::max({std::abs(l.forward.act.min), std::abs(l.forward.act.max),
                   std::abs(l.forward.preact.min), std::abs(l.forward.preact.max)});
}

// Decades outside the healthy update band, the worst layer, and the side.
struct UpdateScan {
  double excess = -kInf;
  int layer = 0;
  bool too_large = false;
  double log10_max = -kInf;
  double log10_min = kInf;
  int layer_max = 0;
  int layer_min = 0;
};

UpdateScan update_scan(const Report& r) {
  UpdateScan u;
  const DiagnosisSpec& d = r.spec.diagnosis;
  for (const LayerReport& l : r.layers) {
    if (!l.backward.has_update || !gradient_valid(l)) continue;
    const double v = l.backward.update_to_weight.log10;
    if (!std::isfinite(v)) continue;
    if (v > u.log10_max) {
      u.log10_max = v;
      u.layer_max = l.index;
    }
    if (v < u.log10_min) {
      u.log10_min = v;
      u.layer_min = l.index;
    }
  }
  if (u.layer_max == 0) return u;
  const double high = u.log10_max - std::log10(d.update_ratio_max);
  const double low = std::log10(d.update_ratio_min) - u.log10_min;
  u.too_large = high >= low;
  u.excess = std::max(high, low);
  u.layer = u.too_large ? u.layer_max : u.layer_min;
  return u;
}

// The loss floor (nats) of softmax cross-entropy over C bounded outputs: the best it can do is
// one output at the top of the range and the others at the bottom.
double bounded_output_loss_floor(const Report& r, const Shape& s) {
  if (r.spec.loss.kind != LossKind::kSoftmaxCrossEntropy || s.dense.empty()) return 0.0;
  const LayerReport& out = r.layers[static_cast<std::size_t>(s.dense.back())];
  if (out.index != r.layers.back().index) return 0.0;
  double lo = 0.0;
  double hi = 0.0;
  switch (out.activation.kind) {
    case Activation::kSigmoid:
      lo = 0.0;
      hi = 1.0;
      break;
    case Activation::kTanh:
    case Activation::kHardTanh:
      lo = -1.0;
      hi = 1.0;
      break;
    default:
      return 0.0;
  }
  const double c = static_cast<double>(out.width);
  if (c < 2) return 0.0;
  // -log softmax at the best: log(1 + (C - 1) e^{lo - hi}).
  return std::log1p((c - 1.0) * std::exp(lo - hi));
}

// ---- The rules

constexpr int kMinDeadBatch = 8;

struct Draft {
  FindingCode code;
  Finding f;
  int cause = -1;  // grouping: the index of the root draft this is a consequence of
};

Finding make(FindingCode code, Severity severity, int layer) {
  Finding f;
  f.code = std::string(finding_info(code).name);
  f.severity = severity;
  f.layer = layer;
  return f;
}

Evidence ev(std::string quantity, double value, std::string relation, double threshold, int layer) {
  return Evidence{std::move(quantity), value, std::move(relation), threshold, layer};
}

Evidence context(std::string quantity, double value, int layer) {
  return Evidence{std::move(quantity), value, "", kNaN, layer};
}

const char* format_word(Precision p) { return p == Precision::kFloat32 ? "float32" : "float64"; }

// log10 of the format's largest finite value.
double format_max_log10(Precision p) {
  return p == Precision::kFloat32 ? std::log10(static_cast<double>(FLT_MAX)) : std::log10(DBL_MAX);
}

class Rules {
 public:
  Rules(const Report& r) : r_(r), d_(r.spec.diagnosis), s_(shape_of(r)) {}

  const Shape& shape() const { return s_; }

  std::vector<Draft> measured() const {
    std::vector<Draft> out;
    gradients(out);
    activations(out);
    non_finite(out);
    dead_units(out);
    saturated_units(out);
    correlation(out);
    half_precision(out);
    update_ratio(out);
    return out;
  }

  // Common mistakes; `score` is the problem score of the measured findings.
  std::vector<Draft> mistakes(int score, const InitAdvice& init) const {
    std::vector<Draft> out;
    unnormalized_input(out);
    saturating_hidden(out, score);
    mismatched_init(out, score, init);
    sigmoid_output(out);
    plain_deep(out, score);
    return out;
  }

 private:
  const LayerReport& at(int i) const { return r_.layers[static_cast<std::size_t>(i)]; }
  bool fwd(const LayerReport& l) const { return forward_valid(r_, l); }

  void gradients(std::vector<Draft>& out) const {
    if (r_.layers.size() < 2) return;
    const LayerReport& last = r_.layers.back();
    // Where the gradient is exactly zero (a layer whose units are all dead cuts it off), it
    // vanishes completely: from the highest such layer down.
    int zero_from = 0;
    for (std::size_t i = r_.layers.size(); i-- > 0;) {
      const LayerReport& l = r_.layers[i];
      if (gradient_valid(l) && l.backward.grad_preact_rms.value == 0.0 &&
          std::isinf(grad_log10(l))) {
        zero_from = l.index;
        break;
      }
    }
    if (zero_from > 0 && r_.output_grad_rms.value > 0.0) {
      Finding f = make(FindingCode::kVanishingGradients, Severity::kError, zero_from);
      int zero_layers = 0;
      for (const LayerReport& l : r_.layers) {
        zero_layers += gradient_valid(l) && l.backward.grad_preact_rms.value == 0.0 ? 1 : 0;
      }
      f.evidence.push_back(ev("zero_gradient_layers", zero_layers, ">=", 1.0, zero_from));
      f.explanation =
          "The gradient is exactly zero at " + layer_word(zero_from) +
          (zero_from > 1 ? std::string(" and every layer below it") : std::string()) +
          ": no example passes any gradient back through that point, so " +
          (zero_from > 1 ? std::string("those layers receive") : std::string("it receives")) +
          " nothing to learn from.";
      out.push_back({FindingCode::kVanishingGradients, std::move(f)});
      return;
    }
    const LayerReport& first = r_.layers.front();
    if (!gradient_valid(first) || !gradient_valid(last)) return;
    const double ratio = r_.summary.log10_grad_ratio_first_to_last;
    if (!std::isfinite(ratio)) return;
    const bool vanishing = ratio <= -d_.gradient_warning_decades;
    const bool exploding = ratio >= d_.gradient_warning_decades;
    if (!vanishing && !exploding) return;
    const double last_log10 = grad_log10(last);
    int first_layer = last.index;
    for (std::size_t i = r_.layers.size(); i-- > 0;) {
      const double rel = grad_log10(r_.layers[i]) - last_log10;
      if (vanishing ? rel <= -d_.gradient_warning_decades : rel >= d_.gradient_warning_decades) {
        first_layer = r_.layers[i].index;
        break;
      }
    }
    const bool error = std::abs(ratio) >= d_.gradient_error_decades;
    const FindingCode code =
        vanishing ? FindingCode::kVanishingGradients : FindingCode::kExplodingGradients;
    Finding f = make(code, error ? Severity::kError : Severity::kWarning, first_layer);
    const double threshold = error ? d_.gradient_error_decades : d_.gradient_warning_decades;
    f.evidence.push_back(ev("log10_grad_ratio_first_to_last", ratio,
                            vanishing ? "<=" : ">=", vanishing ? -threshold : threshold, 0));
    const double gain = r_.summary.mean_log10_gain;
    f.evidence.push_back(context("mean_log10_gain", gain, 0));
    f.evidence.push_back(
        context("log10_grad_rel_last", grad_log10(at(first_layer - 1)) - last_log10, first_layer));
    // In the gain column's unit (the rms of one op's gradient over the next one's), counting ops
    // as the table does, and the dense layers as the config wrote them.
    const int n = static_cast<int>(r_.layers.size());
    const int dense = static_cast<int>(s_.dense.size());
    const bool only_dense = dense == n;
    const std::string unit = only_dense ? "layer" : "op";
    const std::string per_step = pow10_text(std::abs(gain));
    const std::string mean_gain = pow10_text(gain);
    f.explanation =
        std::string("The gradient's rms ") + (vanishing ? "shrinks" : "grows") + " about " +
        per_step + "x per " + unit + " on average (a mean gain of " + mean_gain + "): after " +
        std::to_string(n) + " " + unit + "s" +
        (only_dense ? std::string() : " (" + std::to_string(dense) + " dense layers)") +
        " the first layer receives " + pow10_text(ratio) +
        " of the gradient the last one gets (the rms ratio; " + layer_word(first_layer) +
        " is the first " + (vanishing ? "below " : "above ") +
        pow10_text(vanishing ? -d_.gradient_warning_decades : d_.gradient_warning_decades) +
        "), so " +
        (vanishing ? "the layers near the input barely learn while the last ones do."
                   : "one learning rate cannot suit both ends: the first layers take steps far "
                     "too large.");
    // How sure: mean-field theory's prediction for the same architecture, when it has one.
    const LayerTheory& t = r_.layers.front().theory;
    if (t.backward && std::isfinite(t.log10_grad_rel_last)) {
      f.evidence.push_back(context("predicted_log10_grad_ratio", t.log10_grad_rel_last, 0));
      const double spread = std::max(1.0, 3.0 * t.log10_grad_spread);
      if (std::abs(ratio - t.log10_grad_rel_last) <= spread) {
        f.explanation += " Mean-field theory predicts " + pow10_text(t.log10_grad_rel_last) +
                         " for this architecture, so this is the design, not an unlucky seed.";
      } else {
        f.explanation += " Mean-field theory predicts " + pow10_text(t.log10_grad_rel_last) +
                         ": the gap says finite width or the batch shape this run.";
      }
    }
    if (exploding && s_.has_batch_norm) {
      f.explanation +=
          " Batch norm in training mode couples the examples of a batch, and in a deep stack "
          "without skip connections that coupling makes the gradient grow toward the input "
          "(Yang et al. 2019, A mean field theory of batch normalization).";
    }
    out.push_back({code, std::move(f)});
  }

  void activations(std::vector<Draft>& out) const {
    int first_low = 0, first_high = 0, worst_low = 0, worst_high = 0, first_zero = 0;
    double low = kInf, high = -kInf;
    for (const LayerReport& l : r_.layers) {
      if (!fwd(l)) break;
      const double a = act_log10_rel_input(l, s_);
      if (std::isnan(a)) continue;
      if (a < low) {
        low = a;
        worst_low = l.index;
      }
      if (a > high) {
        high = a;
        worst_high = l.index;
      }
      if (first_low == 0 && a <= -d_.activation_warning_decades) first_low = l.index;
      if (first_high == 0 && a >= d_.activation_warning_decades) first_high = l.index;
      if (first_zero == 0 && std::isinf(a) && a < 0) first_zero = l.index;
    }
    if (first_low != 0) {
      const bool error = low <= -d_.activation_error_decades;
      Finding f = make(FindingCode::kCollapsingActivations,
                       error ? Severity::kError : Severity::kWarning, first_low);
      f.evidence.push_back(ev(
          "log10_act_rms_rel_input", low,
          "<=", -(error ? d_.activation_error_decades : d_.activation_warning_decades), worst_low));
      f.evidence.push_back(context("input_rms", s_.input_rms, 0));
      if (first_zero != 0) {
        f.explanation =
            "The activations are exactly zero from " + layer_word(first_zero) +
            " on (every unit outputs 0 for every example" +
            (first_low < first_zero
                 ? ", after falling below " + pow10_text(-d_.activation_warning_decades) +
                       " of the input's rms at " + layer_word(first_low)
                 : std::string()) +
            "): nothing of the input reaches the layers past it.";
      } else {
        f.explanation = "The activations' rms falls from " + fmt_num(s_.input_rms) +
                        " at the input to " + pow10_text(low + std::log10(s_.input_rms)) + " at " +
                        layer_word(worst_low) + " (first below " +
                        pow10_text(-d_.activation_warning_decades) + " of the input at " +
                        layer_word(first_low) +
                        "): each layer passes on less signal than it receives, so the deep "
                        "layers see almost nothing of the input.";
      }
      out.push_back({FindingCode::kCollapsingActivations, std::move(f)});
    }
    if (first_high != 0) {
      const bool error = high >= d_.activation_error_decades;
      Finding f = make(FindingCode::kExplodingActivations,
                       error ? Severity::kError : Severity::kWarning, first_high);
      f.evidence.push_back(ev(
          "log10_act_rms_rel_input", high,
          ">=", error ? d_.activation_error_decades : d_.activation_warning_decades, worst_high));
      f.evidence.push_back(context("input_rms", s_.input_rms, 0));
      // The growth per layer, from the input to the worst layer.
      const double per_layer = high / static_cast<double>(std::max(1, worst_high));
      f.evidence.push_back(context("log10_act_growth_per_layer", per_layer, 0));
      f.explanation = "The activations' rms grows from " + fmt_num(s_.input_rms) +
                      " at the input to " + pow10_text(high + std::log10(s_.input_rms)) + " at " +
                      layer_word(worst_high) + ", about " + pow10_text(per_layer) +
                      "x per layer (first above " + pow10_text(d_.activation_warning_decades) +
                      " of the input at " + layer_word(first_high) + ")";
      const Summary& sm = r_.summary;
      if (sm.nonfinite_in_forward && sm.first_nonfinite_layer == worst_high + 1) {
        f.explanation += ", and overflows " + std::string(format_word(r_.spec.precision)) + " at " +
                         layer_word(sm.first_nonfinite_layer) +
                         ": past it every value and every gradient is infinite or NaN.";
      } else {
        f.explanation +=
            ": each layer amplifies the signal, so the outputs and the gradients grow out of "
            "proportion and can overflow.";
      }
      out.push_back({FindingCode::kExplodingActivations, std::move(f)});
    }
  }

  void non_finite(std::vector<Draft>& out) const {
    const Summary& sm = r_.summary;
    if (sm.first_nonfinite_layer == 0) return;
    const int k = sm.first_nonfinite_layer;
    const LayerReport& l = at(k - 1);
    const std::string format = format_word(r_.spec.precision);
    Finding f = make(FindingCode::kNonFinite, Severity::kError, k);
    if (sm.nonfinite_in_forward) {
      const std::int64_t entries = static_cast<std::int64_t>(l.width) * r_.spec.input.batch;
      f.evidence.push_back(ev("nonfinite_output_entries",
                              static_cast<double>(l.forward.act.nonfinite), ">=", 1.0, k));
      f.evidence.push_back(
          context("nonfinite_layers", static_cast<double>(sm.nonfinite_layers.size()), 0));
      // The largest finite value on the way in: near the format's limit, this is an overflow.
      double before = kNaN;
      if (k > 1) {
        const double m = max_abs_act(at(k - 2));
        if (std::isfinite(m) && m > 0) before = std::log10(m);
      }
      const bool overflow =
          std::isfinite(before) && before >= format_max_log10(r_.spec.precision) - 4.0;
      if (std::isfinite(before)) {
        f.evidence.push_back(context("log10_max_abs_before", before, k - 1));
      }
      f.explanation =
          "Layer " + std::to_string(k) + "'s forward values " +
          (overflow ? "overflow " + format + " (" : "hold NaN or infinity (") +
          std::to_string(l.forward.act.nonfinite) + " of its " + std::to_string(entries) +
          " entries" +
          (overflow ? ", after values reached " + pow10_text(before) + " at " + layer_word(k - 1) +
                          ", within " + fmt_num(format_max_log10(r_.spec.precision) - before, 2) +
                          " decades of " + format + "'s largest number"
                    : std::string()) +
          "): every later layer's values and every layer's gradient are computed from them, so " +
          std::to_string(sm.nonfinite_layers.size()) +
          " layers hold NaN or infinity, nothing past " + layer_word(k) +
          " can be measured, and training would fail at the first step.";
    } else {
      f.evidence.push_back(ev("nonfinite_gradient_entries",
                              static_cast<double>(l.backward.nonfinite), ">=", 1.0, k));
      f.evidence.push_back(
          context("nonfinite_layers", static_cast<double>(sm.nonfinite_layers.size()), 0));
      f.explanation = "Every forward value is finite, but the backward pass turns non-finite at " +
                      layer_word(k) + " (" + std::to_string(l.backward.nonfinite) +
                      " entries of its gradient are NaN or infinite): the gradients of it and of "
                      "every layer below are undefined, so training would fail at the first "
                      "step.";
    }
    out.push_back({FindingCode::kNonFinite, std::move(f)});
  }

  void dead_units(std::vector<Draft>& out) const {
    // A healthy unit is inactive for every example of a batch of B with probability about 2^-B:
    // below 8 examples "dead for the whole batch" is chance, not a finding.
    if (r_.spec.input.batch < kMinDeadBatch) return;
    int first = 0, worst = 0;
    double most = -1.0;
    std::int64_t total = 0;
    for (const LayerReport& l : r_.layers) {
      if (!fwd(l)) break;
      if (!(l.kind == OpKind::kDense || l.kind == OpKind::kActivation)) continue;
      if (is_bounded(l.activation.kind)) continue;  // saturation, not death
      total += l.forward.dead_units;
      if (l.forward.dead_fraction > most) {
        most = l.forward.dead_fraction;
        worst = l.index;
      }
      if (first == 0 && l.forward.dead_fraction >= d_.dead_fraction) first = l.index;
    }
    if (first == 0) return;
    const LayerReport& w = at(worst - 1);
    const bool error = most >= 1.0;
    Finding f = make(FindingCode::kDeadUnits, error ? Severity::kError : Severity::kWarning, first);
    f.evidence.push_back(ev("dead_fraction", most, ">=", error ? 1.0 : d_.dead_fraction, worst));
    f.evidence.push_back(context("dead_units", static_cast<double>(w.forward.dead_units), worst));
    f.evidence.push_back(context("dead_units_total", static_cast<double>(total), 0));
    const double c = w.forward.correlation;
    if (std::isfinite(c)) f.evidence.push_back(context("correlation", c, worst));
    f.explanation = std::to_string(w.forward.dead_units) + " of the " + std::to_string(w.width) +
                    " units of " + layer_word(worst) + " (" + percent(most) +
                    ") output zero for every example of the batch (first " +
                    percent(d_.dead_fraction) + " or more at " + layer_word(first) + "), so " +
                    (error ? "no gradient passes that layer at all"
                           : "they pass no gradient and do not learn from it");
    if (!error && std::isfinite(c)) {
      f.explanation +=
          "; the share grows with depth as the examples' representations grow alike "
          "(mean cosine " +
          fmt_num(c) + " there).";
    } else {
      f.explanation += ".";
    }
    out.push_back({FindingCode::kDeadUnits, std::move(f)});
  }

  void saturated_units(std::vector<Draft>& out) const {
    int first = 0, worst = 0;
    double most = -1.0;
    for (const LayerReport& l : r_.layers) {
      if (!fwd(l)) break;
      if (!(l.kind == OpKind::kDense || l.kind == OpKind::kActivation)) continue;
      if (!is_bounded(l.activation.kind)) continue;
      if (l.forward.saturated_fraction > most) {
        most = l.forward.saturated_fraction;
        worst = l.index;
      }
      if (first == 0 && l.forward.saturated_fraction >= d_.saturated_fraction) first = l.index;
    }
    if (first == 0) return;
    const LayerReport& w = at(worst - 1);
    Finding f = make(FindingCode::kSaturatedUnits, Severity::kWarning, first);
    f.evidence.push_back(ev("saturated_fraction", most, ">=", d_.saturated_fraction, worst));
    f.evidence.push_back(
        context("saturated_units", static_cast<double>(w.forward.saturated_units), worst));
    f.explanation = percent(most) + " of " + layer_word(worst) + "'s " +
                    std::string(activation_info(w.activation.kind).name) +
                    " entries sit on its flat tails (slope below " +
                    percent(r_.spec.stats.saturation_threshold) +
                    " of its largest), where almost no gradient passes, and " +
                    std::to_string(w.forward.saturated_units) +
                    " units are saturated for the whole batch.";
    out.push_back({FindingCode::kSaturatedUnits, std::move(f)});
  }

  void correlation(std::vector<Draft>& out) const {
    if (s_.input_correlation >= d_.correlation) return;  // the input is already one direction
    int first = 0, worst = 0;
    double most = -kInf;
    for (const LayerReport& l : r_.layers) {
      if (!fwd(l)) break;
      const double c = l.forward.correlation;
      if (!std::isfinite(c)) continue;
      if (c > most) {
        most = c;
        worst = l.index;
      }
      if (first == 0 && c >= d_.correlation) first = l.index;
    }
    if (first == 0) return;
    Finding f = make(FindingCode::kCorrelationCollapse, Severity::kWarning, first);
    f.evidence.push_back(ev("correlation", most, ">=", d_.correlation, worst));
    f.evidence.push_back(context("input_correlation", s_.input_correlation, 0));
    f.explanation = "From " + layer_word(first) +
                    " on, different examples' outputs point in nearly the same direction (mean "
                    "cosine " +
                    fmt_num(most, 4) + " at " + layer_word(worst) + ", against " +
                    fmt_num(s_.input_correlation, 2) +
                    " for the inputs): the network maps its inputs toward one point, so what "
                    "tells them apart is a shrinking sliver of each representation.";
    out.push_back({FindingCode::kCorrelationCollapse, std::move(f)});
  }

  void half_precision(std::vector<Draft>& out) const {
    // Gradients: the lowest rms of any layer, at the scale a mean-over-batch loss would give.
    // Exactly-zero gradients are the vanishing rule's; non-finite ones are undefined.
    double lowest = kInf, highest = -kInf;
    int lowest_layer = 0;
    for (const LayerReport& l : r_.layers) {
      if (!gradient_valid(l)) continue;
      const double g = grad_log10(l) + s_.grad_scale_log10;
      if (!std::isfinite(g)) continue;
      if (g < lowest) {
        lowest = g;
        lowest_layer = l.index;
      }
      highest = std::max(highest, g);
    }
    if (lowest_layer != 0) {
      underflow(out, FindingCode::kFp16GradientUnderflow, "float16", kFp16MinNormalLog10,
                kFp16MaxLog10, lowest, highest, lowest_layer);
      underflow(out, FindingCode::kBf16GradientUnderflow, "bfloat16", kBf16MinNormalLog10,
                kBf16MaxLog10, lowest, highest, lowest_layer);
    }
    // Activations: the largest |value| of any layer.
    int first = 0, worst = 0;
    double largest = -kInf;
    for (const LayerReport& l : r_.layers) {
      if (!fwd(l)) break;
      const double m = max_abs_act(l);
      if (!std::isfinite(m) || m <= 0) continue;
      const double lg = std::log10(m);
      if (lg > largest) {
        largest = lg;
        worst = l.index;
      }
      if (first == 0 && lg >= kFp16MaxLog10) first = l.index;
    }
    if (first != 0) {
      Finding f = make(FindingCode::kFp16ActivationOverflow, Severity::kWarning, first);
      f.evidence.push_back(ev("log10_max_abs_activation", largest, ">=", kFp16MaxLog10, worst));
      f.explanation = "From " + layer_word(first) +
                      " on, values exceed 65504, the largest float16 number (up to " +
                      pow10_text(largest) + " at " + layer_word(worst) +
                      "): in mixed-precision training they would overflow to infinity, and a "
                      "loss scale cannot help, since it scales only the gradients.";
      out.push_back({FindingCode::kFp16ActivationOverflow, std::move(f)});
    }
  }

  void underflow(std::vector<Draft>& out, FindingCode code, const char* format, double min_normal,
                 double max_value, double lowest, double highest, int lowest_layer) const {
    if (lowest >= min_normal) return;
    int first = 0;
    for (std::size_t i = r_.layers.size(); i-- > 0;) {
      const LayerReport& l = r_.layers[i];
      if (gradient_valid(l) && grad_log10(l) + s_.grad_scale_log10 < min_normal) {
        first = l.index;
        break;
      }
    }
    const double span = highest - lowest;
    // A loss scale moves every layer by the same factor; with a decade of margin on each side
    // for the entries spread around their rms, this much of the format is left for the span.
    const double room = max_value - min_normal - 2.0 * kLossScaleMarginDecades;
    const bool rescuable = span <= room;
    Finding f = make(code, rescuable ? Severity::kInfo : Severity::kWarning, first);
    f.evidence.push_back(ev("log10_grad_rms_scaled", lowest, "<", min_normal, lowest_layer));
    f.evidence.push_back(context("log10_grad_span", span, 0));
    f.evidence.push_back(context("log10_grad_scale", s_.grad_scale_log10, 0));
    std::string scale_words;
    if (rescuable) {
      // The smallest power of two that lifts the lowest layer a margin above the smallest normal.
      const double need = (min_normal + kLossScaleMarginDecades - lowest) / std::log10(2.0);
      const int k = static_cast<int>(std::ceil(need));
      f.evidence.push_back(context("loss_scale_log2", k, 0));
      scale_words = "; a loss scale of 2^" + std::to_string(k) +
                    " (what a dynamic loss scaler would settle near) keeps every layer in range, "
                    "since the gradients span " +
                    fmt_num(span, 3) + " decades";
    } else {
      scale_words = "; no single loss scale can rescue it: the gradients span " + fmt_num(span, 3) +
                    " decades, more than the " + fmt_num(room, 3) + " a loss scale can fit in " +
                    format + " (its " + fmt_num(max_value - min_normal, 3) +
                    " decades from smallest normal to largest value, less a decade of margin at "
                    "each end)";
    }
    f.explanation =
        "From " + layer_word(first) + " down, the gradient's rms (" + pow10_text(lowest) + " at " +
        layer_word(lowest_layer) +
        (r_.spec.loss.kind == LossKind::kProbe ? ", at the scale of a loss averaged over the batch"
                                               : "") +
        ") is below " + format + "'s smallest normal number " + pow10_text(min_normal) +
        ", so mixed-precision training would flush most of it to zero" + scale_words + ".";
    out.push_back({code, std::move(f)});
  }

  void update_ratio(std::vector<Draft>& out) const {
    if (r_.spec.optimizer.kind == OptimizerKind::kNone) return;
    const UpdateScan u = update_scan(r_);
    if (u.layer == 0 || u.excess < 0) return;
    Finding f = make(FindingCode::kUpdateRatio, Severity::kWarning, u.layer);
    if (u.too_large) {
      f.evidence.push_back(ev("log10_update_to_weight", u.log10_max,
                              ">=", std::log10(d_.update_ratio_max), u.layer_max));
      f.explanation = "The first " + std::string(optimizer_name(r_.spec.optimizer.kind)) +
                      " step would change " + layer_word(u.layer_max) + "'s weights by " +
                      percent(std::pow(10.0, u.log10_max)) + " of their size (learning rate " +
                      fmt_num(r_.spec.optimizer.learning_rate) +
                      "): steps that large tend to make training diverge.";
    } else {
      f.evidence.push_back(ev("log10_update_to_weight", u.log10_min,
                              "<=", std::log10(d_.update_ratio_min), u.layer_min));
      f.explanation = "The first " + std::string(optimizer_name(r_.spec.optimizer.kind)) +
                      " step would change " + layer_word(u.layer_min) + "'s weights by only " +
                      pow10_text(u.log10_min) + " of their size (learning rate " +
                      fmt_num(r_.spec.optimizer.learning_rate) +
                      "): that layer would effectively not train.";
    }
    f.evidence.push_back(context("log10_update_to_weight_max", u.log10_max, u.layer_max));
    f.evidence.push_back(context("log10_update_to_weight_min", u.log10_min, u.layer_min));
    out.push_back({FindingCode::kUpdateRatio, std::move(f)});
  }

  Severity cause_severity(int score) const {
    return score > 0 ? Severity::kWarning : Severity::kInfo;
  }

  void unnormalized_input(std::vector<Draft>& out) const {
    const double excess = input_scale_excess(s_);
    if (!(excess >= 0.0)) return;
    Finding f = make(FindingCode::kUnnormalizedInput, Severity::kWarning, 0);
    f.evidence.push_back(
        ev("input_scale_excess_decades", std::isfinite(excess) ? excess : kNaN, ">=", 0.0, 0));
    f.evidence.push_back(context("input_mean", s_.input_mean, 0));
    f.evidence.push_back(context("input_std", s_.input_std, 0));
    f.evidence.push_back(context("input_rms", s_.input_rms, 0));
    const bool loaded = r_.sources && !r_.sources->input_file.empty();
    f.explanation =
        std::string("The input is not standardised: its entries have mean ") +
        fmt_num(s_.input_mean) + " and standard deviation " + fmt_num(s_.input_std) + " (rms " +
        fmt_num(s_.input_rms) +
        "), where inits are derived for inputs of mean 0 and variance 1: the first layer's "
        "pre-activations inherit that scale (a norm later removes it), so the activations, "
        "measured against the input, look " +
        (std::log10(s_.input_rms) > 0 ? "collapsed" : "exploded") +
        " wherever the network restores its own scale" +
        (loaded ? "; standardise the data (subtract each feature's mean, divide by its standard "
                  "deviation) before it enters the network."
                : ".");
    out.push_back({FindingCode::kUnnormalizedInput, std::move(f)});
  }

  void saturating_hidden(std::vector<Draft>& out, int score) const {
    int count = 0, first = 0;
    bool sigmoid = false;
    for (int i : s_.hidden) {
      const LayerReport& l = at(i);
      if (!is_bounded(l.activation.kind)) continue;
      ++count;
      if (first == 0) first = l.index;
      if (l.activation.kind == Activation::kSigmoid) sigmoid = true;
    }
    if (count < d_.deep_layers) return;
    Finding f = make(FindingCode::kSaturatingHiddenActivation,
                     sigmoid ? Severity::kWarning : cause_severity(score), first);
    f.evidence.push_back(ev("bounded_hidden_layers", count, ">=", d_.deep_layers, 0));
    f.evidence.push_back(context("problem_score", score, 0));
    const std::string name(activation_info(at(s_.hidden.front()).activation.kind).name);
    f.explanation =
        std::to_string(count) + " hidden layers use " + (sigmoid ? std::string("sigmoid") : name) +
        (sigmoid ? ", whose slope is at most 1/4 and whose outputs are all positive: each layer "
                   "shrinks the gradient at least 4x unless the weights make up for it, and "
                   "deep sigmoid stacks are the classic case of vanishing gradients; keep "
                   "sigmoid for a binary output."
                 : ", which flattens out for large inputs: a deep stack of it trains only near "
                   "the edge of chaos, where the init is just right.");
    out.push_back({FindingCode::kSaturatingHiddenActivation, std::move(f)});
  }

  void mismatched_init(std::vector<Draft>& out, int score, const InitAdvice& init) const {
    if (!init.valid || s_.hidden.size() < 2) return;
    const double ratio = std::max(init.sw2_now / init.sw2, init.sw2 / init.sw2_now);
    if (!(ratio >= d_.init_mismatch_factor)) return;
    if (!init_advice_stands(init, s_, d_)) return;
    const bool predicted_problem =
        init.now.worst() >= std::min(d_.gradient_warning_decades, d_.activation_warning_decades);
    const LayerReport& h = at(s_.hidden.front());
    Finding f = make(FindingCode::kMismatchedInit,
                     predicted_problem ? Severity::kWarning : cause_severity(score), h.index);
    if (init.sw2_now > 0.0) {
      f.evidence.push_back(ev("sw2_ratio", ratio, ">=", d_.init_mismatch_factor, 0));
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
    const std::string act(activation_info(s_.hidden_activation.kind).name);
    f.explanation = "The " + std::string(init_info(h.init.kind).name) +
                    (h.init.gain != 1.0 ? " (gain " + fmt_num(h.init.gain) + ")" : std::string()) +
                    " init gives weight variance sw2 = " + fmt_num(init.sw2_now) +
                    " (times 1/fan_in), but over these " + std::to_string(s_.hidden.size()) + " " +
                    act + " layers mean-field theory finds sw2 = " + fmt_num(init.sw2) +
                    " keeps the signal and the gradient closest to constant; with " +
                    fmt_num(init.sw2_now) + " it predicts " + chain_words(init.now) + ".";
    out.push_back({FindingCode::kMismatchedInit, std::move(f)});
  }

  void sigmoid_output(std::vector<Draft>& out) const {
    const double floor = bounded_output_loss_floor(r_, s_);
    if (!(floor > 0)) return;
    const LayerReport& o = at(s_.dense.back());
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
    out.push_back({FindingCode::kSigmoidOutputMulticlass, std::move(f)});
  }

  void plain_deep(std::vector<Draft>& out, int score) const {
    const int n = static_cast<int>(s_.dense.size());
    if (n < d_.deep_layers || s_.has_norm || s_.has_residual) return;
    Finding f = make(FindingCode::kPlainDeepStack, cause_severity(score), 0);
    f.evidence.push_back(ev("dense_layers", n, ">=", d_.deep_layers, 0));
    f.evidence.push_back(context("problem_score", score, 0));
    f.explanation =
        std::to_string(n) +
        " dense layers are stacked with neither normalization nor residual connections, so "
        "every layer's effect on the signal and the gradient compounds with depth" +
        (score > 0 ? std::string(": the other findings show the result.")
                   : std::string("; here the init keeps them in check, but any change to the "
                                 "activation or the init will compound the same way."));
    out.push_back({FindingCode::kPlainDeepStack, std::move(f)});
  }

  const Report& r_;
  const DiagnosisSpec& d_;
  Shape s_;
};

int problem_score(const std::vector<Draft>& measured) {
  int score = 0;
  for (const Draft& d : measured) {
    if (d.f.severity == Severity::kWarning) score += 1;
    if (d.f.severity == Severity::kError) score += 2;
  }
  return score;
}

// ---- Root causes
//
// One cause often shows as several findings: an init far too large makes the activations explode,
// overflow and leave every gradient NaN; sigmoid's slope makes gradients vanish and half-precision
// underflow. The diagnosis names the cause once and folds the symptoms under it. A finding is a
// consequence of the first root below that is present and explains it; roots are the common
// mistakes (the causes gradscope knows), then the measured problems that bring others with them.

bool is_magnitude(FindingCode c) {
  switch (c) {
    case FindingCode::kVanishingGradients:
    case FindingCode::kExplodingGradients:
    case FindingCode::kCollapsingActivations:
    case FindingCode::kExplodingActivations:
    case FindingCode::kNonFinite:
    case FindingCode::kFp16GradientUnderflow:
    case FindingCode::kBf16GradientUnderflow:
    case FindingCode::kFp16ActivationOverflow:
    case FindingCode::kUpdateRatio:
      return true;
    default:
      return false;
  }
}

// Whether root `root` (its finding r) explains finding `c` (its finding f).
bool explains(FindingCode root, const Finding& r, FindingCode c, const Finding& f,
              const Report& report, bool sigmoid_hidden) {
  if (root == c) return false;
  const bool forward_overflow = report.summary.nonfinite_in_forward;
  switch (root) {
    case FindingCode::kUnnormalizedInput:
      // The activation findings measure against the input's rms, which is what is off; a large
      // input is large in float16 too.
      return c == FindingCode::kCollapsingActivations || c == FindingCode::kExplodingActivations ||
             c == FindingCode::kFp16ActivationOverflow;
    case FindingCode::kMismatchedInit: {
      // Theory predicted the problem from the init: every magnitude finding it brings, and with
      // zero weights (every unit outputs its bias) the dead units too.
      if (r.severity == Severity::kInfo) return false;
      const bool zero = !r.evidence.empty() && r.evidence.front().quantity == "sw2" &&
                        r.evidence.front().value == 0.0;
      return is_magnitude(c) || (zero && c == FindingCode::kDeadUnits);
    }
    case FindingCode::kSaturatingHiddenActivation:
      if (r.severity == Severity::kInfo) return false;
      // For sigmoid hidden layers the activation is the cause, and relu makes their init's
      // mismatch moot (the init theory finds for sigmoid is one nobody would use).
      if (c == FindingCode::kMismatchedInit) return sigmoid_hidden;
      return c == FindingCode::kVanishingGradients || c == FindingCode::kSaturatedUnits ||
             c == FindingCode::kFp16GradientUnderflow || c == FindingCode::kBf16GradientUnderflow ||
             c == FindingCode::kCorrelationCollapse || c == FindingCode::kUpdateRatio;
    case FindingCode::kPlainDeepStack:
      // Depth without norms or skips: dead units and examples growing alike compound with it.
      return r.severity != Severity::kInfo &&
             (c == FindingCode::kDeadUnits || c == FindingCode::kCorrelationCollapse);
    case FindingCode::kExplodingActivations:
      return c == FindingCode::kFp16ActivationOverflow ||
             (c == FindingCode::kNonFinite && forward_overflow && f.layer > r.layer) ||
             c == FindingCode::kExplodingGradients;
    case FindingCode::kNonFinite:
      return forward_overflow && c == FindingCode::kFp16ActivationOverflow;
    case FindingCode::kDeadUnits:
      // A layer dead for every example cuts the gradient off below it.
      return r.severity == Severity::kError &&
             (c == FindingCode::kVanishingGradients || c == FindingCode::kCollapsingActivations);
    case FindingCode::kVanishingGradients:
      return c == FindingCode::kFp16GradientUnderflow || c == FindingCode::kBf16GradientUnderflow ||
             c == FindingCode::kUpdateRatio;
    case FindingCode::kExplodingGradients:
      return c == FindingCode::kUpdateRatio;
    default:
      return false;
  }
}

// The order in which roots claim their consequences.
constexpr std::array<FindingCode, 10> kRootOrder{FindingCode::kUnnormalizedInput,
                                                 FindingCode::kMismatchedInit,
                                                 FindingCode::kSaturatingHiddenActivation,
                                                 FindingCode::kExplodingActivations,
                                                 FindingCode::kNonFinite,
                                                 FindingCode::kDeadUnits,
                                                 FindingCode::kPlainDeepStack,
                                                 FindingCode::kVanishingGradients,
                                                 FindingCode::kExplodingGradients,
                                                 FindingCode::kCollapsingActivations};

void assign_causes(std::vector<Draft>& drafts, const Report& report, const Shape& shape) {
  // Sigmoid hidden layers are the cause before their init is: the saturating activation first.
  const bool sigmoid_hidden = shape.hidden_activation.kind == Activation::kSigmoid;
  std::vector<FindingCode> order(kRootOrder.begin(), kRootOrder.end());
  if (sigmoid_hidden) std::swap(order[1], order[2]);
  for (FindingCode root : order) {
    int ri = -1;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      if (drafts[i].code == root && drafts[i].cause < 0) ri = static_cast<int>(i);
    }
    if (ri < 0) continue;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      Draft& d = drafts[i];
      if (static_cast<int>(i) == ri || d.cause >= 0) continue;
      // A root that has already taken consequences stays a root.
      bool is_root = false;
      for (const Draft& e : drafts) is_root |= e.cause == static_cast<int>(i);
      if (is_root) continue;
      if (explains(root, drafts[static_cast<std::size_t>(ri)].f, d.code, d.f, report,
                   sigmoid_hidden)) {
        d.cause = ri;
      }
    }
  }
}

// ---- Advice
//
// A fix is a change to the architecture, kept apart from the config keys it becomes, so that
// several compose into one remedy: a residual rewrite carries the other fixes' activation and
// init into its layers, where separate --set arguments would fight over the same keys.

struct Fix {
  enum class Kind {
    kActivation,
    kInit,
    kResidual,
    kNorm,
    kLearningRate,
    kAdam,
    kOutput,
    kInput,
    kBias
  };
  Kind kind = Kind::kActivation;
  std::string text;                      // one sentence: what and why
  std::vector<std::string> paths;        // config paths of the layers it changes
  ActivationSpec activation{};           // kActivation, kOutput
  bool with_init = false;                // kActivation: the activation comes with an init
  InitSpec init{};                       // kActivation (with_init), kInit
  std::string init_value;                // the same init as config JSON text
  NormKind norm = NormKind::kLayerNorm;  // kNorm
  double learning_rate = 0.0;            // kLearningRate

  // Changes the network (and so its gradients), as opposed to the optimizer.
  bool structural() const { return kind != Kind::kLearningRate && kind != Kind::kAdam; }
  std::vector<ConfigChange> input_changes;  // kInput: the input spec's keys to set
};

bool same_fix(const Fix& a, const Fix& b) {
  return a.kind == b.kind && a.paths == b.paths && a.activation.kind == b.activation.kind &&
         a.activation.param == b.activation.param && a.init_value == b.init_value &&
         a.norm == b.norm && a.learning_rate == b.learning_rate && a.with_init == b.with_init;
}

// Whether two fixes set the same thing differently (two activations for the same layers, two
// inits, a learning rate and another optimizer).
bool conflicts(const Fix& a, const Fix& b) {
  if (same_fix(a, b)) return false;
  const auto overlap = [&] {
    for (const std::string& p : a.paths) {
      if (std::find(b.paths.begin(), b.paths.end(), p) != b.paths.end()) return true;
    }
    return false;
  };
  const auto sets_init = [](const Fix& f) {
    return f.kind == Fix::Kind::kInit || (f.kind == Fix::Kind::kActivation && f.with_init);
  };
  if (a.kind == b.kind) {
    switch (a.kind) {
      case Fix::Kind::kResidual:
      case Fix::Kind::kAdam:
        return false;
      case Fix::Kind::kLearningRate:
        return true;
      default:
        return overlap();
    }
  }
  if (sets_init(a) && sets_init(b)) return overlap();
  const auto optimizer = [](const Fix& f) {
    return f.kind == Fix::Kind::kAdam || f.kind == Fix::Kind::kLearningRate;
  };
  return optimizer(a) && optimizer(b);
}

class Advisor {
 public:
  Advisor(const Report& r, const Shape& s, const InitAdvice& init) : r_(r), s_(s), init_(init) {}

  // The fixes for a root finding, the one gradscope would apply first leading.
  std::vector<Fix> fixes(FindingCode code, bool measured_problem) const {
    std::vector<Fix> out;
    const auto add = [&](std::optional<Fix> a) {
      if (a) out.push_back(std::move(*a));
    };
    switch (code) {
      case FindingCode::kVanishingGradients:
      case FindingCode::kFp16GradientUnderflow:
      case FindingCode::kBf16GradientUnderflow:
        add(switch_bounded_activation());
        add(theory_init_fix());
        if (out.empty()) add(init_gain_fix());
        if (out.empty()) add(residual_blocks());
        break;
      case FindingCode::kExplodingGradients:
        add(theory_init_fix());
        if (out.empty()) add(init_gain_fix());
        add(layer_norm_for_batch_norm());
        break;
      case FindingCode::kCollapsingActivations:
      case FindingCode::kExplodingActivations:
      case FindingCode::kNonFinite:
      case FindingCode::kFp16ActivationOverflow:
        add(theory_init_fix());
        if (out.empty()) add(init_gain_fix());
        if (out.empty() && !s_.has_norm) add(residual_blocks());
        break;
      case FindingCode::kUnnormalizedInput:
        add(standard_input());
        break;
      case FindingCode::kDeadUnits:
        add(negative_bias());
        add(leaky_relu());
        add(residual_blocks());
        break;
      case FindingCode::kSaturatedUnits:
        add(theory_init_fix());
        add(switch_bounded_activation());
        break;
      case FindingCode::kCorrelationCollapse:
        add(residual_blocks());
        break;
      case FindingCode::kUpdateRatio:
        add(learning_rate());
        add(adam());
        break;
      case FindingCode::kSaturatingHiddenActivation:
        if (measured_problem) add(switch_bounded_activation());
        break;
      case FindingCode::kMismatchedInit:
        if (measured_problem) add(theory_init_fix());
        break;
      case FindingCode::kSigmoidOutputMulticlass:
        add(linear_output());
        break;
      case FindingCode::kPlainDeepStack:
        if (measured_problem) add(residual_blocks());
        break;
    }
    return out;
  }

  // The config changes of a set of fixes applied together, each key once.
  std::vector<ConfigChange> render(const std::vector<Fix>& fixes) const {
    std::vector<ConfigChange> out;
    const auto put = [&](std::string path, std::string value) {
      for (const ConfigChange& c : out) {
        if (c.path == path) return;  // the first fix to set a key wins
      }
      out.push_back({std::move(path), std::move(value)});
    };
    const Fix* residual = nullptr;
    for (const Fix& f : fixes) {
      if (f.kind == Fix::Kind::kResidual) residual = &f;
    }
    if (residual != nullptr) {
      // The rewrite replaces the hidden and output layers: the other fixes go into its layers.
      std::optional<ActivationSpec> activation;
      std::optional<InitSpec> init;
      std::optional<ActivationSpec> output;
      bool zero_bias = false;
      for (const Fix& f : fixes) {
        if (f.kind == Fix::Kind::kBias) zero_bias = true;
        if (f.kind == Fix::Kind::kActivation && !activation) {
          activation = f.activation;
          if (f.with_init && !init) init = f.init;
        }
        if (f.kind == Fix::Kind::kInit && !init) init = f.init;
        if (f.kind == Fix::Kind::kOutput && !output) output = f.activation;
      }
      for (const ConfigChange& c : residual_changes(activation, init, output, zero_bias)) {
        put(c.path, c.value);
      }
    }
    for (const Fix& f : fixes) {
      switch (f.kind) {
        case Fix::Kind::kActivation:
          if (residual != nullptr) break;
          for (const std::string& p : f.paths) {
            put(p + ".activation", activation_value(f.activation));
            if (f.with_init) put(p + ".init", f.init_value);
          }
          break;
        case Fix::Kind::kInit:
          if (residual != nullptr) break;
          for (const std::string& p : f.paths) put(p + ".init", f.init_value);
          break;
        case Fix::Kind::kOutput:
          if (residual != nullptr) break;
          for (const std::string& p : f.paths)
            put(p + ".activation", activation_value(f.activation));
          break;
        case Fix::Kind::kNorm:
          for (const std::string& p : f.paths) {
            put(p + ".norm", std::string(norm_name(f.norm)));
          }
          break;
        case Fix::Kind::kLearningRate:
          put("optimizer.learning_rate", json_number(f.learning_rate));
          break;
        case Fix::Kind::kAdam:
          put("optimizer", "{\"name\": \"adam\", \"learning_rate\": 0.001}");
          break;
        case Fix::Kind::kInput:
          for (const ConfigChange& c : f.input_changes) put(c.path, c.value);
          break;
        case Fix::Kind::kBias:
          if (residual != nullptr) break;
          for (const std::string& p : f.paths) put(p + ".bias_init", "zeros");
          break;
        case Fix::Kind::kResidual:
          break;
      }
    }
    return out;
  }

  Advice advice(const Fix& f, const std::string& addresses) const {
    return Advice{f.text, render({f}), std::nullopt, addresses};
  }

  // The residual rewrite's sentence for the activation it ends up with.
  std::string residual_text(const std::vector<Fix>& fixes) const {
    std::optional<ActivationSpec> activation;
    for (const Fix& f : fixes) {
      if (f.kind == Fix::Kind::kActivation && !activation) activation = f.activation;
    }
    return residual_sentence(activation);
  }

 private:
  const LayerReport& at(int i) const { return r_.layers[static_cast<std::size_t>(i)]; }

  // Distinct config paths of the layers `indices` names, in order.
  std::vector<std::string> paths_of(const std::vector<int>& indices) const {
    std::vector<std::string> paths;
    for (int i : indices) {
      const std::string& p = s_.paths[static_cast<std::size_t>(i)];
      if (!p.empty() && std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
    }
    return paths;
  }

  std::optional<Fix> switch_bounded_activation() const {
    // Without a norm, relu's larger outputs pile up in a residual stream and explode it.
    if (s_.has_residual && !s_.has_norm) return std::nullopt;
    std::vector<int> bounded;
    for (int i : s_.hidden) {
      if (is_bounded(at(i).activation.kind)) bounded.push_back(i);
    }
    if (static_cast<int>(bounded.size()) < r_.spec.diagnosis.deep_layers) return std::nullopt;
    Fix f;
    f.kind = Fix::Kind::kActivation;
    f.paths = paths_of(bounded);
    f.activation = default_spec(Activation::kRelu);
    f.with_init = true;
    f.init.kind = Init::kHeNormal;
    f.init_value = "he_normal";
    f.text =
        "Use relu with he_normal init in the hidden layers: relu's slope is 1 wherever a unit "
        "is active, so the gradient passes through unshrunk (keep sigmoid for a binary "
        "output, softmax for a multi-class one).";
    return f;
  }

  std::optional<Fix> theory_init_fix() const {
    if (!init_.valid) return std::nullopt;
    if (std::abs(init_.sw2 / init_.sw2_now - 1.0) <= 0.05) return std::nullopt;
    if (!init_advice_stands(init_, s_, r_.spec.diagnosis)) return std::nullopt;
    Fix f;
    f.kind = Fix::Kind::kInit;
    f.paths = paths_of(s_.hidden);
    f.init = init_.spec;
    f.init_value = init_.value;
    const DiagnosisSpec& d = r_.spec.diagnosis;
    const bool healthy =
        init_.advised.worst() < std::min(d.gradient_warning_decades, d.activation_warning_decades);
    f.text = "Initialise the hidden layers with " + init_.name +
             ", the weight variance mean-field theory finds best for " +
             std::string(activation_info(s_.hidden_activation.kind).name) + " over " +
             std::to_string(s_.hidden.size()) + " layers: it predicts " +
             chain_words(init_.advised) + ", against " + chain_words(init_.now) +
             " with sw2 = " + fmt_num(init_.sw2_now) + " now" +
             (healthy ? "."
                      : "; at this depth no init keeps the prediction healthy, so norms or "
                        "residual connections are the surer fix.");
    return f;
  }

  std::string residual_sentence(const std::optional<ActivationSpec>& activation) const {
    const LayerReport& h = at(s_.hidden.front());
    const bool sigmoid = h.activation.kind == Activation::kSigmoid && !activation;
    const Activation act =
        activation ? activation->kind : (sigmoid ? Activation::kRelu : h.activation.kind);
    return std::string("Wrap the hidden layers in pre-norm residual blocks, x + ") +
           std::string(activation_info(act).name) +
           "(W LayerNorm(x)), with a final layer norm: the skip path carries the signal and the "
           "gradient past every layer, so depth no longer compounds" +
           (sigmoid ? " (with relu and he_normal: sigmoid's positive outputs would pile up in "
                      "the residual stream)."
                    : ".");
  }

  // The dense layer a report layer describes.
  static LayerSpec layer_spec(const LayerReport& l) {
    LayerSpec layer;
    layer.width = l.width;
    layer.activation = l.activation;
    layer.init = l.init;
    layer.bias = l.bias;
    return layer;
  }

  bool residual_applies() const {
    if (s_.has_residual || s_.has_norm || s_.has_other_ops || s_.hidden.size() < 3) return false;
    if (!s_.uniform_hidden) return false;
    const int width = at(s_.hidden.front()).width;
    // Layer norm over a single unit outputs 0 whatever its input.
    if (width < 2) return false;
    for (int i : s_.hidden) {
      if (at(i).width != width) return false;
    }
    return true;
  }

  // Pre-norm residual blocks: the first hidden layer maps the input to the hidden width, the
  // others become x + F(LayerNorm(x)), and a final layer norm precedes the output layer. For a
  // stack config, or a `layers` config that is a plain chain of equal-width hidden layers.
  std::optional<Fix> residual_blocks() const {
    if (!residual_applies()) return std::nullopt;
    Fix f;
    f.kind = Fix::Kind::kResidual;
    f.text = residual_sentence(std::nullopt);
    return f;
  }

  std::vector<ConfigChange> residual_changes(const std::optional<ActivationSpec>& activation,
                                             const std::optional<InitSpec>& init,
                                             const std::optional<ActivationSpec>& output_act,
                                             bool zero_bias) const {
    const int depth = static_cast<int>(s_.hidden.size());
    LayerSpec layer = layer_spec(at(s_.hidden.front()));
    std::optional<LayerSpec> output;
    if (s_.dense.size() > s_.hidden.size()) output = layer_spec(at(s_.dense.back()));
    // A residual stream adds each block's output: sigmoid's positive mean would pile up in it.
    if (layer.activation.kind == Activation::kSigmoid && !activation) {
      layer.activation = default_spec(Activation::kRelu);
      layer.init = InitSpec{};
      layer.init.kind = Init::kHeNormal;
    }
    if (activation) layer.activation = *activation;
    if (init) layer.init = *init;
    if (zero_bias) layer.bias = BiasInitSpec{};
    if (output && output_act) output->activation = *output_act;
    std::string layers = "[" + dense_item_json(layer) +
                         ", {\"repeat\": " + std::to_string(depth - 1) +
                         ", \"residual\": {}, \"block\": [{\"norm\": \"layer_norm\"}, " +
                         dense_item_json(layer) + "]}, {\"norm\": \"layer_norm\"}";
    if (output) layers += ", " + dense_item_json(*output);
    layers += "]";
    std::vector<ConfigChange> changes;
    if (s_.stack_config) {
      changes.push_back({"stack", "null"});
      if (r_.spec.output) changes.push_back({"output", "null"});
    }
    changes.push_back({"layers", layers});
    return changes;
  }

  // The input drawn standardised (mean 0, variance 1), for a generated input; a loaded one is the
  // data's to fix, which no config key does.
  std::optional<Fix> standard_input() const {
    if (r_.sources && !r_.sources->input_file.empty()) return std::nullopt;
    const InputSpec& in = r_.spec.input;
    Fix f;
    f.kind = Fix::Kind::kInput;
    if (in.distribution != InputDistribution::kNormal) {
      f.input_changes.push_back({"input.distribution", "normal"});
    }
    if (in.mean != 0.0 || in.distribution != InputDistribution::kNormal) {
      f.input_changes.push_back({"input.mean", "0"});
    }
    if (in.std != 1.0 || in.distribution != InputDistribution::kNormal) {
      f.input_changes.push_back({"input.std", "1"});
    }
    if (f.input_changes.empty()) return std::nullopt;
    f.text =
        "Standardise the input (mean 0, standard deviation 1), as a real pipeline's "
        "normalisation would: the inits and the theory assume it.";
    return f;
  }

  // Dense layers whose init gain is 4x or more off 1 (a gain of 100 in a residual branch), when
  // they share one init: that init with gain 1.
  std::optional<Fix> init_gain_fix() const {
    std::vector<int> off;
    for (int i : s_.dense) {
      const double g = at(i).init.gain;
      if (g > 0.0 && std::abs(std::log2(g)) >= 2.0) off.push_back(i);
    }
    if (off.empty()) return std::nullopt;
    const InitSpec& first = at(off.front()).init;
    for (int i : off) {
      const InitSpec& other = at(i).init;
      if (other.kind != first.kind || other.gain != first.gain || other.mode != first.mode ||
          other.std != first.std || other.limit != first.limit ||
          other.weight_var != first.weight_var) {
        return std::nullopt;
      }
    }
    Fix f;
    f.kind = Fix::Kind::kInit;
    f.paths = paths_of(off);
    if (f.paths.empty()) return std::nullopt;
    f.init = first;
    f.init.gain = 1.0;
    f.init_value = init_json(f.init);
    f.text = "Set the init gain of " + std::to_string(off.size()) + " dense layer" +
             (off.size() == 1 ? "" : "s") + " from " + fmt_num(first.gain) +
             " to 1: a gain g scales the weights by g, so every layer multiplies the signal and "
             "the gradient by about g more than its init intends.";
    return f;
  }

  // relu-like layers whose bias is a negative constant: every unit starts on its dead side.
  std::optional<Fix> negative_bias() const {
    std::vector<int> biased;
    for (int i : s_.dense) {
      const LayerReport& l = at(i);
      if (l.bias.kind == BiasInit::kConstant && l.bias.value < 0.0 &&
          (l.activation.kind == Activation::kRelu || l.activation.kind == Activation::kLeakyRelu)) {
        biased.push_back(i);
      }
    }
    if (biased.empty()) return std::nullopt;
    Fix f;
    f.kind = Fix::Kind::kBias;
    f.paths = paths_of(biased);
    if (f.paths.empty()) return std::nullopt;
    f.text = "Initialise the biases at zero: a negative constant bias of " +
             fmt_num(at(biased.front()).bias.value) +
             " puts every unit on relu's dead side before any weight has had a say.";
    return f;
  }

  std::optional<Fix> leaky_relu() const {
    std::vector<int> relu;
    for (int i = 0; i < static_cast<int>(r_.layers.size()); ++i) {
      const LayerReport& l = at(i);
      if ((l.kind == OpKind::kDense || l.kind == OpKind::kActivation) &&
          l.activation.kind == Activation::kRelu) {
        relu.push_back(i);
      }
    }
    if (relu.empty()) return std::nullopt;
    Fix f;
    f.kind = Fix::Kind::kActivation;
    f.paths = paths_of(relu);
    f.activation = {Activation::kLeakyRelu, 0.01};
    f.text =
        "Use leaky_relu (slope 0.01) instead of relu: its negative side keeps a small slope, "
        "so no unit is cut off from the gradient for a whole batch.";
    return f;
  }

  std::optional<Fix> layer_norm_for_batch_norm() const {
    if (!s_.has_batch_norm) return std::nullopt;
    std::vector<int> bn;
    for (int i = 0; i < static_cast<int>(r_.layers.size()); ++i) {
      if (at(i).kind == OpKind::kNorm && at(i).norm.kind == NormKind::kBatchNorm) bn.push_back(i);
    }
    Fix f;
    f.kind = Fix::Kind::kNorm;
    f.paths = paths_of(bn);
    f.norm = NormKind::kLayerNorm;
    if (f.paths.empty()) return std::nullopt;
    f.text =
        "Use layer_norm instead of batch_norm: it normalises each example on its own, so the "
        "examples of a batch no longer feed each other's gradients.";
    return f;
  }

  std::optional<Fix> learning_rate() const {
    const UpdateScan u = update_scan(r_);
    if (u.layer == 0) return std::nullopt;
    const DiagnosisSpec& d = r_.spec.diagnosis;
    // Aim the worst layer a decade inside the band; the ratio is proportional to the learning
    // rate for both optimizers' first step.
    double target =
        u.too_large ? std::log10(d.update_ratio_max) - 1.0 : std::log10(d.update_ratio_min) + 1.0;
    double shift = target - (u.too_large ? u.log10_max : u.log10_min);
    // Raising the rate must not push the largest ratio out of the band.
    if (!u.too_large && u.log10_max + shift >= std::log10(d.update_ratio_max)) return std::nullopt;
    // A hundredfold rise hides a gradient problem rather than fixing it.
    if (shift > 2.0) return std::nullopt;
    const double lr =
        std::stod(fmt_num(r_.spec.optimizer.learning_rate * std::pow(10.0, shift), 2));
    Fix f;
    f.kind = Fix::Kind::kLearningRate;
    f.learning_rate = lr;
    f.text = "Set the learning rate to " + fmt_num(lr, 2) +
             ": the first step's update-to-weight "
             "ratio scales with it, and this puts " +
             layer_word(u.layer) + "'s at about " + pow10_text(target) + ".";
    return f;
  }

  std::optional<Fix> adam() const {
    if (r_.spec.optimizer.kind != OptimizerKind::kSgd) return std::nullopt;
    const UpdateScan u = update_scan(r_);
    if (u.layer == 0 || u.too_large) return std::nullopt;
    // Adam's first step is lr g / (|g| + eps) per entry: its update-to-weight ratio is about
    // lr * r / (r + eps) * sqrt(entries) / ||W|| for a gradient of per-entry rms r. Advise it
    // only where that puts every layer inside the band (not where gradients sink below eps).
    const DiagnosisSpec& d = r_.spec.diagnosis;
    constexpr double kLr = 1e-3;
    const double eps = OptimizerSpec{}.eps;
    for (const LayerReport& l : r_.layers) {
      if (!l.backward.has_update || !(l.backward.weight_norm > 0)) continue;
      const double entries = static_cast<double>(l.width) * l.fan_in;
      const double log_r = l.backward.grad_weight_norm.log10 - 0.5 * std::log10(entries);
      const double shrink =
          log_r > std::log10(eps) + 8.0 ? 0.0 : log_r - std::log10(std::pow(10.0, log_r) + eps);
      const double ratio =
          std::log10(kLr) + shrink + 0.5 * std::log10(entries) - std::log10(l.backward.weight_norm);
      if (!(ratio > std::log10(d.update_ratio_min) && ratio < std::log10(d.update_ratio_max))) {
        return std::nullopt;
      }
    }
    Fix f;
    f.kind = Fix::Kind::kAdam;
    f.text =
        "Use adam (learning rate 0.001): it scales each weight's step by that weight's own "
        "gradient size, so layers whose gradient is small still move.";
    return f;
  }

  std::optional<Fix> linear_output() const {
    const LayerReport& o = at(s_.dense.back());
    Fix f;
    f.kind = Fix::Kind::kOutput;
    f.paths = {s_.paths[static_cast<std::size_t>(s_.dense.back())]};
    f.activation = default_spec(Activation::kLinear);
    f.text =
        "Let the output layer emit raw logits (activation linear): softmax_cross_entropy "
        "applies the softmax itself; " +
        std::string(activation_info(o.activation.kind).name) +
        " outputs belong with a binary loss (sigmoid_bce).";
    return f;
  }

  const Report& r_;
  const Shape& s_;
  const InitAdvice& init_;
};

bool more_severe_first(const Finding& a, const Finding& b, FindingCode ca, FindingCode cb) {
  if (a.severity != b.severity) return a.severity > b.severity;
  if (a.layer != b.layer) return a.layer < b.layer;
  return ca < cb;
}

Verdict verdict_of(const std::vector<Finding>& findings) {
  Verdict v = Verdict::kHealthy;
  for (const Finding& f : findings) {
    if (f.severity == Severity::kError) v = Verdict::kError;
    if (f.severity == Severity::kWarning && v == Verdict::kHealthy) v = Verdict::kWarning;
  }
  return v;
}

// The remedy from the roots' fixes: for each root, most severe first, the first of its fixes that
// composes with those already chosen. A learning-rate or optimizer fix is measured on today's
// gradients, which a structural fix changes: it joins only when no structural fix is chosen.
struct RemedyDraft {
  std::vector<Fix> fixes;
  std::vector<std::vector<std::string>> addresses;  // per fix: root codes
  std::vector<std::string> not_addressed;
};

// Beyond this many pieces the check keeps them all rather than search 2^n subsets.
constexpr std::size_t kMaxRemedyPieces = 8;
// Rounds of fixes the check may add from the re-run's own diagnosis.
constexpr int kRemedyRounds = 2;

RemedyDraft draft_remedy(const std::vector<Draft>& roots,
                         const std::vector<std::vector<Fix>>& root_fixes) {
  RemedyDraft out;
  bool structural = false;
  for (std::size_t i = 0; i < roots.size(); ++i) {
    for (const Fix& f : root_fixes[i]) structural |= f.structural();
  }
  for (std::size_t i = 0; i < roots.size(); ++i) {
    const Draft& root = roots[i];
    if (root.f.severity == Severity::kInfo) continue;
    bool placed = false;
    for (const Fix& f : root_fixes[i]) {
      if (!f.structural() && structural) continue;
      bool fits = true;
      std::size_t same = out.fixes.size();
      for (std::size_t k = 0; k < out.fixes.size(); ++k) {
        if (same_fix(out.fixes[k], f)) same = k;
        if (conflicts(out.fixes[k], f)) fits = false;
      }
      if (same < out.fixes.size()) {
        out.addresses[same].push_back(root.f.code);
        placed = true;
        break;
      }
      if (!fits) continue;
      out.fixes.push_back(f);
      out.addresses.push_back({root.f.code});
      placed = true;
      break;
    }
    if (!placed) out.not_addressed.push_back(root.f.code);
  }
  return out;
}

}  // namespace

void diagnose(Report& report) {
  const Rules rules(report);
  std::vector<Draft> drafts = rules.measured();
  const int score = problem_score(drafts);
  const InitAdvice init = theory_init(report, rules.shape());
  for (Draft& d : rules.mistakes(score, init)) drafts.push_back(std::move(d));
  assign_causes(drafts, report, rules.shape());

  // Roots, most severe first: a root is as severe as the worst of its consequences.
  std::vector<std::size_t> roots;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    if (drafts[i].cause >= 0) {
      Draft& root = drafts[static_cast<std::size_t>(drafts[i].cause)];
      root.f.severity = std::max(root.f.severity, drafts[i].f.severity);
    } else {
      roots.push_back(i);
    }
  }
  std::stable_sort(roots.begin(), roots.end(), [&](std::size_t a, std::size_t b) {
    return more_severe_first(drafts[a].f, drafts[b].f, drafts[a].code, drafts[b].code);
  });
  const Advisor advisor(report, rules.shape(), init);
  std::vector<Draft> root_drafts;
  std::vector<std::vector<Fix>> root_fixes;
  std::vector<Fix> given;  // every fix listed so far: each is listed once, under the first root
  report.findings.clear();
  for (std::size_t ri : roots) {
    Draft& root = drafts[ri];
    const ProblemMetric m = problem_metric(root.code, report);
    std::vector<std::size_t> consequences;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      if (drafts[i].cause == static_cast<int>(ri)) consequences.push_back(i);
    }
    std::stable_sort(consequences.begin(), consequences.end(), [&](std::size_t a, std::size_t b) {
      return more_severe_first(drafts[a].f, drafts[b].f, drafts[a].code, drafts[b].code);
    });
    // The root's own fixes first, then its consequences' (alternatives, and the only ones when the
    // root has none: a dead layer's cut-off gradient), each with the finding it is for.
    std::vector<std::pair<Fix, std::string>> candidates;
    for (Fix& f : advisor.fixes(root.code, m.value >= m.threshold)) {
      candidates.emplace_back(std::move(f), root.f.code);
    }
    for (std::size_t c : consequences) {
      for (Fix& f : advisor.fixes(drafts[c].code, true)) {
        candidates.emplace_back(std::move(f), drafts[c].f.code);
      }
    }
    std::vector<Fix> fixes;
    for (auto& [f, code] : candidates) {
      bool seen = false;
      for (const Fix& g : fixes) seen |= same_fix(f, g);
      if (seen) continue;
      fixes.push_back(f);
      bool listed = false;
      for (const Fix& g : given) listed |= same_fix(f, g);
      if (listed) continue;  // already listed under a more severe root
      given.push_back(f);
      root.f.advice.push_back(advisor.advice(f, code));
    }
    for (std::size_t c : consequences) root.f.consequences.push_back(drafts[c].f.code);
    root_drafts.push_back(root);
    root_fixes.push_back(fixes);
    report.findings.push_back(root.f);
    for (std::size_t c : consequences) {
      Finding f = drafts[c].f;
      f.cause = root.f.code;
      report.findings.push_back(std::move(f));
    }
  }
  report.verdict = verdict_of(report.findings);

  const RemedyDraft rd = draft_remedy(root_drafts, root_fixes);
  if (!rd.fixes.empty() || !rd.not_addressed.empty()) {
    Remedy remedy;
    for (std::size_t k = 0; k < rd.fixes.size(); ++k) {
      RemedyPiece piece;
      piece.text = rd.fixes[k].kind == Fix::Kind::kResidual ? advisor.residual_text(rd.fixes)
                                                            : rd.fixes[k].text;
      piece.changes = advisor.render({rd.fixes[k]});
      piece.addresses = rd.addresses[k];
      for (const std::string& code : piece.addresses) remedy.addresses.push_back(code);
      remedy.pieces.push_back(std::move(piece));
    }
    remedy.changes = advisor.render(rd.fixes);
    remedy.not_addressed = rd.not_addressed;
    // Every subset composed, for the check's search: at most 2^kMaxRemedyPieces renderings.
    const std::size_t n = std::min(rd.fixes.size(), kMaxRemedyPieces);
    remedy.compositions.resize(std::size_t{1} << n);
    remedy.composition_texts.resize(remedy.compositions.size());
    for (std::size_t mask = 1; mask < remedy.compositions.size(); ++mask) {
      std::vector<Fix> subset;
      for (std::size_t k = 0; k < n; ++k) {
        if (mask & (std::size_t{1} << k)) subset.push_back(rd.fixes[k]);
      }
      remedy.compositions[mask] = advisor.render(subset);
      // The residual rewrite's sentence names the activation its blocks get from the others.
      remedy.composition_texts[mask].resize(n);
      for (std::size_t k = 0; k < n; ++k) {
        if (!(mask & (std::size_t{1} << k))) continue;
        remedy.composition_texts[mask][k] = rd.fixes[k].kind == Fix::Kind::kResidual
                                                ? advisor.residual_text(subset)
                                                : rd.fixes[k].text;
      }
    }
    report.remedy = std::move(remedy);
  }
}

ProblemMetric problem_metric(FindingCode code, const Report& r) {
  const DiagnosisSpec& d = r.spec.diagnosis;
  const Shape s = shape_of(r);
  ProblemMetric m;
  switch (code) {
    case FindingCode::kVanishingGradients:
    case FindingCode::kExplodingGradients: {
      const bool vanishing = code == FindingCode::kVanishingGradients;
      // Undefined gradients (NaN) are as bad as any; an exactly-zero one vanishes completely.
      const LayerReport& first = r.layers.front();
      const LayerReport& last = r.layers.back();
      if (!gradient_valid(first) || !gradient_valid(last))
        return {kInf, d.gradient_warning_decades};
      const double ratio = r.summary.log10_grad_ratio_first_to_last;
      if (std::isnan(ratio)) return {kInf, d.gradient_warning_decades};
      return {vanishing ? -ratio : ratio, d.gradient_warning_decades};
    }
    case FindingCode::kCollapsingActivations:
    case FindingCode::kExplodingActivations: {
      const bool low = code == FindingCode::kCollapsingActivations;
      double worst = -kInf;
      for (const LayerReport& l : r.layers) {
        if (!forward_valid(r, l)) {
          if (!low) worst = kInf;  // an overflow is the furthest an explosion goes
          break;
        }
        const double a = act_log10_rel_input(l, s);
        if (!std::isnan(a)) worst = std::max(worst, low ? -a : a);
      }
      return {worst, d.activation_warning_decades};
    }
    case FindingCode::kNonFinite:
      return {static_cast<double>(r.summary.nonfinite_layers.size()), 1.0};
    case FindingCode::kDeadUnits:
    case FindingCode::kSaturatedUnits: {
      const bool dead = code == FindingCode::kDeadUnits;
      double worst = 0.0;
      for (const LayerReport& l : r.layers) {
        if (!forward_valid(r, l)) break;
        if (!(l.kind == OpKind::kDense || l.kind == OpKind::kActivation)) continue;
        if (is_bounded(l.activation.kind) == dead) continue;
        worst = std::max(worst, dead ? l.forward.dead_fraction : l.forward.saturated_fraction);
      }
      return {worst, dead ? d.dead_fraction : d.saturated_fraction};
    }
    case FindingCode::kCorrelationCollapse: {
      double worst = -1.0;
      for (const LayerReport& l : r.layers) {
        if (!forward_valid(r, l)) break;
        if (std::isfinite(l.forward.correlation)) worst = std::max(worst, l.forward.correlation);
      }
      return {worst, d.correlation};
    }
    case FindingCode::kFp16GradientUnderflow:
    case FindingCode::kBf16GradientUnderflow: {
      double lowest = kInf;
      for (const LayerReport& l : r.layers) {
        if (!gradient_valid(l)) continue;
        const double g = grad_log10(l) + s.grad_scale_log10;
        if (std::isfinite(g)) lowest = std::min(lowest, g);
      }
      const double min_normal =
          code == FindingCode::kFp16GradientUnderflow ? kFp16MinNormalLog10 : kBf16MinNormalLog10;
      return {min_normal - lowest, 0.0};
    }
    case FindingCode::kFp16ActivationOverflow: {
      double largest = -kInf;
      for (const LayerReport& l : r.layers) {
        if (!forward_valid(r, l)) {
          largest = kInf;
          break;
        }
        const double v = max_abs_act(l);
        if (v > 0 && std::isfinite(v)) largest = std::max(largest, std::log10(v));
      }
      return {largest - kFp16MaxLog10, 0.0};
    }
    case FindingCode::kUpdateRatio:
      return {update_scan(r).excess, 0.0};
    case FindingCode::kSigmoidOutputMulticlass:
      return {bounded_output_loss_floor(r, s), 1e-9};
    case FindingCode::kSaturatingHiddenActivation:
    case FindingCode::kMismatchedInit:
    case FindingCode::kPlainDeepStack: {
      const Rules rules(r);
      return {static_cast<double>(problem_score(rules.measured())), 1.0};
    }
    case FindingCode::kUnnormalizedInput:
      return {input_scale_excess(s), 0.0};
  }
  return m;
}

bool advice_helped(const ProblemMetric& after, bool finding_gone, Verdict verdict_before,
                   Verdict verdict_after) {
  if (verdict_after > verdict_before) return false;
  if (finding_gone) return true;
  return std::isfinite(after.value) && after.value < after.threshold;
}

std::string set_argument(const ConfigChange& change) {
  const std::string arg = change.path + "=" + change.value;
  const bool plain = std::all_of(arg.begin(), arg.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '+' || c == '=';
  });
  if (plain) return "--set " + arg;
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return "--set " + quoted + "'";
}

namespace {

std::string changes_key(const std::vector<ConfigChange>& changes) {
  std::string key;
  for (const ConfigChange& c : changes) key += c.path + "=" + c.value + "\n";
  return key;
}

std::vector<std::string> finding_lines(const Report& r) {
  std::vector<std::string> out;
  for (const Finding& g : r.findings) {
    out.push_back(g.code + " (" + std::string(severity_name(g.severity)) +
                  (g.cause.empty() ? "" : ", from " + g.cause) + ")");
  }
  return out;
}

bool has_finding(const Report& r, const std::string& code) {
  for (const Finding& g : r.findings) {
    if (g.code == code) return true;
  }
  return false;
}

// How bad a report is, for comparing remedies: errors, then warnings, counted as root causes.
std::pair<int, int> alarms(const Report& r) {
  int errors = 0, warnings = 0;
  for (const Finding& f : r.findings) {
    if (!f.cause.empty()) continue;
    errors += f.severity == Severity::kError ? 1 : 0;
    warnings += f.severity == Severity::kWarning ? 1 : 0;
  }
  return {errors, warnings};
}

}  // namespace

void check_advice(Report& report, const Rerun& rerun) {
  std::map<std::string, Report> cache;
  const auto run = [&](const std::vector<ConfigChange>& changes) -> const Report& {
    const std::string key = changes_key(changes);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, rerun(changes)).first;
    return it->second;
  };
  const auto present = [](const Report& r, const std::string& code) {
    return has_finding(r, code);
  };
  for (Finding& f : report.findings) {
    std::vector<Advice> kept;
    for (Advice& a : f.advice) {
      // The advice's own finding: the root, or the consequence it was given for.
      const std::string& target = a.addresses.empty() ? f.code : a.addresses;
      const std::optional<FindingCode> code = finding_from_name(target);
      if (!code) continue;
      const ProblemMetric before = problem_metric(*code, report);
      const Report& after_report = run(a.changes);
      const ProblemMetric after = problem_metric(*code, after_report);
      AdviceCheck check;
      check.metric = std::string(finding_info(*code).metric);
      check.before = before.value;
      check.after = after.value;
      check.verdict_after = after_report.verdict;
      check.findings_after = finding_lines(after_report);
      // Gone: a common mistake's finding disappears with the architecture it names (a residual
      // rewrite is no plain deep stack), so for a root with consequences what counts is that
      // they are all gone.
      bool gone = !present(after_report, target);
      if (!finding_info(*code).measured && target == f.code && !f.consequences.empty()) {
        // ... and none of its consequences that were errors remains an error.
        for (const Finding& c : report.findings) {
          if (c.cause != f.code || c.severity != Severity::kError) continue;
          for (const Finding& g : after_report.findings) {
            if (g.code == c.code && g.severity == Severity::kError) gone = false;
          }
        }
      }
      // Helped: the finding is gone, or its metric is on the healthy side of its threshold; and
      // the verdict is no worse and no new error appeared.
      bool new_error = false;
      for (const Finding& g : after_report.findings) {
        new_error |= g.severity == Severity::kError && !present(report, g.code);
      }
      check.helped = !new_error && advice_helped(after, gone, report.verdict, after_report.verdict);
      a.check = std::move(check);
      if (a.check->helped) {
        kept.push_back(std::move(a));
      } else {
        f.rejected_advice.push_back(std::move(a));
      }
    }
    f.advice = std::move(kept);
  }
  if (!report.remedy || report.remedy->pieces.empty()) return;

  // The remedy: the whole, each piece alone, and the whole without each piece in turn (the last
  // first, a piece going when the rest do at least as well without it). The subset that leaves
  // the fewest alarms (errors first), with the fewest pieces, is kept; if none leaves fewer than
  // the network has now, no piece is kept.
  Remedy& remedy = *report.remedy;
  const std::size_t n = remedy.pieces.size();
  const std::size_t full = (std::size_t{1} << std::min(n, kMaxRemedyPieces)) - 1;
  const auto popcount = [](std::size_t m) {
    int c = 0;
    for (; m != 0; m &= m - 1) ++c;
    return c;
  };
  std::map<std::size_t, const Report*> tried;
  const auto trial = [&](std::size_t mask) -> const Report* {
    if (mask == 0) return &report;
    auto it = tried.find(mask);
    if (it != tried.end()) return it->second;
    const Report* r = &run(n <= kMaxRemedyPieces ? remedy.compositions[mask] : remedy.changes);
    tried.emplace(mask, r);
    return r;
  };
  const auto better = [&](std::size_t a, std::size_t b) {
    const auto aa = alarms(*trial(a));
    const auto bb = alarms(*trial(b));
    return aa < bb || (aa == bb && popcount(a) < popcount(b));
  };
  std::size_t best = full;
  if (n <= kMaxRemedyPieces) {
    for (std::size_t k = 0; k < n; ++k) {
      if (better(std::size_t{1} << k, best)) best = std::size_t{1} << k;
    }
    std::size_t current = full;
    for (std::size_t k = n; k-- > 0;) {
      const std::size_t without = current & ~(std::size_t{1} << k);
      if (without == current) continue;
      if (!(alarms(*trial(current)) < alarms(*trial(without)))) current = without;
    }
    if (better(current, best)) best = current;
    // Nothing at all, if no subset leaves fewer alarms than the network has now.
    if (!(alarms(*trial(best)) < alarms(report))) best = 0;
  }
  RemedyCheck check;
  check.verdict_before = report.verdict;
  std::vector<RemedyPiece> pieces;
  for (std::size_t k = 0; k < n; ++k) {
    if (best & (std::size_t{1} << k)) {
      RemedyPiece p = remedy.pieces[k];
      if (best < remedy.composition_texts.size() && !remedy.composition_texts[best][k].empty()) {
        p.text = remedy.composition_texts[best][k];  // as composed with the pieces kept
      }
      pieces.push_back(std::move(p));
    } else {
      check.dropped.push_back(remedy.pieces[k].text);
    }
  }
  // What a dropped piece was for, the rest fixes (when the rest made it no worse): they are for
  // it too.
  if (best != 0) {
    for (std::size_t k = 0; k < n; ++k) {
      if (best & (std::size_t{1} << k)) continue;
      for (RemedyPiece& p : pieces) {
        for (const std::string& code : remedy.pieces[k].addresses) {
          if (std::find(p.addresses.begin(), p.addresses.end(), code) == p.addresses.end()) {
            p.addresses.push_back(code);
          }
        }
      }
    }
  }
  remedy.pieces = std::move(pieces);
  remedy.changes = best == 0 ? std::vector<ConfigChange>{}
                             : (n <= kMaxRemedyPieces ? remedy.compositions[best] : remedy.changes);
  if (best == 0) remedy.addresses.clear();
  const Report* after = trial(best);
  // What is left may have a fix of its own once the first fixes are in (a plain deep stack's dead
  // units show once batch norm is gone): the re-run's own remedy, applied on top, kept when it
  // leaves fewer alarms. Two rounds at most.
  for (int round = 0; best != 0 && round < kRemedyRounds; ++round) {
    if (alarms(*after) == std::pair<int, int>{0, 0}) break;
    if (!after->remedy || after->remedy->pieces.empty()) break;
    const Remedy& next = *after->remedy;
    std::vector<ConfigChange> more = remedy.changes;
    for (const ConfigChange& c : next.changes) {
      bool replaced = false;
      for (ConfigChange& o : more) {
        if (o.path == c.path) {
          o.value = c.value;
          replaced = true;
        }
      }
      if (!replaced) more.push_back(c);
    }
    const Report& next_trial = run(more);
    if (!(alarms(next_trial) < alarms(*after))) break;
    for (const RemedyPiece& p : next.pieces) {
      remedy.pieces.push_back(p);
      check.added.push_back(p.text);
      for (const std::string& code : p.addresses) {
        // Found on the re-run: what it fixes there, which this run may not have shown.
        if (std::find(remedy.addresses.begin(), remedy.addresses.end(), code) ==
            remedy.addresses.end()) {
          remedy.addresses.push_back(code);
        }
      }
    }
    remedy.changes = more;
    after = &next_trial;
  }
  check.verdict_after = after->verdict;
  check.findings_after = finding_lines(*after);
  remedy.check = std::move(check);
}

}  // namespace gradscope
