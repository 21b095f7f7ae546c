// Mean-field predictions per op. The signal entering each op is described by three numbers per
// unit: its mean mu, second moment m2 = E[x^2] and the cross moment m12 = E[x_a x_b] between two
// examples. Weights have mean zero, so a dense layer's pre-activation is h = mu_b + g with g a
// centred Gaussian pair of variance sw2 m2 + sb2 and covariance sw2 m12 + sb2 (the biases are
// shared by all examples; a constant bias is the mean mu_b instead). Going backward, E[g^2] is
// carried by independence of the backward signal from the weights (THEORY.md).
#include "gradscope/theory/prediction.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/init.hpp"
#include "gradscope/theory/theory.hpp"

namespace gradscope {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Hanin 2018: Var[ln ||x^l||^2] ~ 5 sum_{k<=l} 1/n_k for wide ReLU networks; used as the scale of
// finite-width fluctuations for every activation (a heuristic outside ReLU, stated as such).
constexpr double kHaninConstant = 5.0;
// A layer is flagged beyond this many spreads.
constexpr double kFlagSpreads = 3.0;

struct Signal {
  double mu = 0.0;
  double m2 = 0.0;
  double m12 = 0.0;
};

double input_mean(const InputSpec& in) {
  return in.distribution == InputDistribution::kNormal ? in.mean : 0.5 * (in.low + in.high);
}

Signal input_signal(const InputSpec& in) {
  Signal s;
  s.mu = input_mean(in);
  if (in.distribution == InputDistribution::kNormal) {
    s.m2 = in.mean * in.mean + in.std * in.std;
  } else {
    s.m2 = (in.low * in.low + in.low * in.high + in.high * in.high) / 3.0;
  }
  s.m12 = s.mu * s.mu;  // independent examples
  return s;
}

std::vector<double> shifted(const std::vector<double>& kinks, double by) {
  std::vector<double> out;
  for (double k : kinks) out.push_back(k - by);
  return out;
}

// Moments of phi(mu + g), g ~ N(0, v), and of the pair with covariance v12.
struct ActivationMoments {
  double mean;
  double m2;
  double m12;
  double slope2;  // E[phi'^2]
};

// Gauss-Legendre nodes and weights on [-1, 1], by Newton's method on P_n (computed once).
struct GaussLegendre {
  static constexpr int kPoints = 24;
  double x[kPoints];
  double w[kPoints];
  GaussLegendre() {
    for (int i = 0; i < kPoints; ++i) {
      double z = std::cos(std::numbers::pi * (i + 0.75) / (kPoints + 0.5));
      double dp = 0.0;
      for (int it = 0; it < 100; ++it) {
        double p0 = 1.0, p1 = 0.0;
        for (int j = 1; j <= kPoints; ++j) {
          const double p2 = p1;
          p1 = p0;
          p0 = ((2.0 * j - 1.0) * z * p1 - (j - 1.0) * p2) / j;
        }
        dp = kPoints * (z * p0 - p1) / (z * z - 1.0);
        const double dz = p0 / dp;
        z -= dz;
        if (std::abs(dz) < 1e-16) break;
      }
      x[i] = z;
      w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
  }
};

const GaussLegendre& gauss_legendre() {
  static const GaussLegendre rule;
  return rule;
}

// integral over |z| <= 10 of the standard normal density times f(z), with 24-point
// Gauss-Legendre panels cut at the given points (kinks and the activation's scale in z). The
// Gaussian mass beyond 10 is 1.5e-23; panels between cuts are smooth, so each is accurate to
// ~1e-10 relative for the activations of the registry.
template <class F>
double panel_expectation(F f, std::vector<double> cuts) {
  constexpr double kRange = 10.0;
  cuts.push_back(-kRange);
  cuts.push_back(kRange);
  std::sort(cuts.begin(), cuts.end());
  const GaussLegendre& gl = gauss_legendre();
  double sum = 0.0;
  double prev = -kRange;
  for (double c : cuts) {
    const double b = std::clamp(c, -kRange, kRange);
    if (b - prev > 1e-12) {
      const double mid = 0.5 * (prev + b), half = 0.5 * (b - prev);
      for (int i = 0; i < GaussLegendre::kPoints; ++i) {
        const double z = mid + half * gl.x[i];
        sum += gl.w[i] * half * std::exp(-0.5 * z * z) * f(z);
      }
    }
    prev = std::max(prev, b);
  }
  return sum / std::sqrt(2.0 * std::numbers::pi);
}

// Where, in z, the argument mu + sd z of the activation crosses a kink or +-1, +-4 (its scale).
std::vector<double> cuts_for(const std::vector<double>& kinks, double mu, double sd) {
  std::vector<double> cuts;
  if (!(sd > 0.0)) return cuts;
  for (double k : kinks) cuts.push_back((k - mu) / sd);
  for (double k : {-4.0, -1.0, 0.0, 1.0, 4.0}) cuts.push_back((k - mu) / sd);
  return cuts;
}

// E[phi(mu + g1) phi(mu + g2)] for a centred Gaussian pair of variance v and correlation c, as
// nested panel quadratures. The prediction of a correlation between examples needs a few digits,
// and this is ~500 times cheaper than the 1e-12 adaptive rule of theory.hpp (tested against it).
double pair_expectation(const ActivationSpec& act, double mu, double v, double c) {
  const std::vector<double> k = kinks(act);
  const double sd = std::sqrt(v);
  const double s = std::sqrt(std::max(0.0, 1.0 - c * c));
  auto phi = [&](double x) { return activation_value(act, x); };
  return panel_expectation(
      [&](double z1) {
        const double a = mu + sd * c * z1;  // the second argument is a + sd s z2
        const double inner =
            s * sd < 1e-12 ? phi(a)
                           : panel_expectation([&](double z2) { return phi(a + sd * s * z2); },
                                               cuts_for(k, a, sd * s));
        return phi(mu + sd * z1) * inner;
      },
      cuts_for(k, mu, sd));
}

ActivationMoments activation_moments(const ActivationSpec& act, double mu, double v, double v12) {
  const std::vector<double> k = shifted(kinks(act), mu);
  ActivationMoments m;
  auto phi = [&](double x) { return activation_value(act, mu + x); };
  m.mean = gaussian_expectation(phi, v, k);
  m.m2 = gaussian_expectation(
      [&](double x) {
        const double y = phi(x);
        return y * y;
      },
      v, k);
  m.slope2 = gaussian_expectation(
      [&](double x) {
        const double d = activation_derivative(act, mu + x);
        return d * d;
      },
      v, k);
  if (v > 0.0) {
    const double c = std::clamp(v12 / v, -1.0, 1.0);
    m.m12 = pair_expectation(act, mu, v, c);
  } else {
    m.m12 = m.m2;
  }
  return m;
}

// sw2 of a weight matrix: Var(W_ij) * fan_in.
double weight_sw2(const InitSpec& init, int fan_in, int fan_out) {
  return init_weight_variance(init, fan_in, fan_out) * fan_in;
}

}  // namespace

namespace {
std::vector<OpPrediction> predict(const RunSpec& spec, double* input_gradient);
}  // namespace

std::vector<OpPrediction> predict_ops(const RunSpec& spec) { return predict(spec, nullptr); }

double predict_input_gradient_second_moment(const RunSpec& spec) {
  double e = kNaN;
  predict(spec, &e);
  return e;
}

namespace {

// Why this is long: one walk over the ops, forward (second moments) then backward (gradient
// moments), as the pass runner walks them; each op's case is a few lines, and they share the
// walk's running moments, widths and residual stack.
std::vector<OpPrediction> predict(const RunSpec& spec, double* input_gradient) {
  const std::vector<OpSpec> ops = expand_ops(spec);
  const std::vector<int> widths = op_widths(spec, ops);
  const std::size_t count = ops.size();
  std::vector<OpPrediction> out(count);
  const double batch = input_columns(spec.input);

  // ---- Forward: the signal entering each op, and what the op makes of it.
  Signal x = input_signal(spec.input);
  std::vector<Signal> skip_stack;
  std::vector<int> skip_width;
  std::vector<double> slope2(count, kNaN);  // E[phi'^2] of dense/activation ops
  std::vector<double> in_var(count, kNaN);  // the input's variance (norms' backward)
  double beta = 0.0;                        // sum of 1/n over the dense layers passed
  bool forward_ok = true;
  std::string forward_reason;
  int fan_in = spec.input.width;
  for (std::size_t l = 0; l < count; ++l) {
    const OpSpec& op = ops[l];
    OpPrediction& p = out[l];
    const double n = widths[l];
    if (op.kind == OpKind::kResidualBegin) {
      skip_stack.push_back(x);
      skip_width.push_back(fan_in);
      continue;
    }
    Signal y = x;
    if (forward_ok) {
      switch (op.kind) {
        case OpKind::kDense:
        case OpKind::kActivation: {
          const ActivationSpec& act =
              op.kind == OpKind::kDense ? op.dense.activation : op.activation;
          double mu = x.mu, v = x.m2 - x.mu * x.mu, v12 = x.m12 - x.mu * x.mu;
          if (op.kind == OpKind::kDense) {
            const double sw2 = weight_sw2(op.dense.init, fan_in, widths[l]);
            const BiasInitSpec& b = op.dense.bias;
            const bool constant = b.kind == BiasInit::kConstant;
            const double sb2 = constant ? 0.0 : bias_second_moment(b, fan_in);
            mu = constant ? b.value : 0.0;
            v = sw2 * x.m2 + sb2;
            v12 = sw2 * x.m12 + sb2;
            beta += 1.0 / n;
          }
          if (act.kind == Activation::kSoftmax) {
            forward_ok = false;
            forward_reason =
                "softmax couples the units of a layer; mean-field theory here is for "
                "elementwise activations";
            break;
          }
          if (!(v >= 0.0) || !std::isfinite(v)) {
            forward_ok = false;
            forward_reason = "the predicted second moment is beyond double's range";
            break;
          }
          const ActivationMoments m = activation_moments(act, mu, v, v12);
          p.q = mu * mu + v;
          y = {m.mean, m.m2, m.m12};
          slope2[l] = m.slope2;
          break;
        }
        case OpKind::kNorm: {
          p.q = x.m2;
          const double var = x.m2 - x.mu * x.mu;
          in_var[l] = op.norm.kind == NormKind::kRmsNorm ? x.m2 : var;
          const double eps = op.norm.eps;
          if (op.norm.kind == NormKind::kLayerNorm) {
            y = {0.0, var / (var + eps), (x.m12 - x.mu * x.mu) / (var + eps)};
          } else if (op.norm.kind == NormKind::kRmsNorm) {
            const double s = 1.0 / (x.m2 + eps);
            y = {x.mu * std::sqrt(s), x.m2 * s, x.m12 * s};
          } else {
            // Batch norm centres each unit over the batch: the part shared by the examples goes,
            // and the centred columns sum to zero, so the mean cross moment is -m2 / (B - 1).
            const double indep = x.m2 - x.m12;
            in_var[l] = indep;
            const double m2 = indep / (indep + eps);
            y = {0.0, m2, batch > 1 ? -m2 / (batch - 1) : m2};
          }
          break;
        }
        case OpKind::kDropout:
          p.q = x.m2;
          y = {x.mu, x.m2 / (1.0 - op.dropout), x.m12};
          break;
        case OpKind::kResidualEnd: {
          p.q = x.m2;  // the branch output F
          Signal s = skip_stack.back();
          if (op.residual.projection) {
            const double sw2 =
                weight_sw2(op.residual.projection_init, skip_width.back(), widths[l]);
            s = {0.0, sw2 * s.m2, sw2 * s.m12};
          }
          const double k = op.residual.skip;
          s = {k * s.mu, k * k * s.m2, k * k * s.m12};
          const double a = op.residual.scale;
          // The branch ends in zero-mean weights (or is independent of the skip signal).
          y = {s.mu + a * x.mu, s.m2 + a * a * x.m2 + 2 * a * s.mu * x.mu,
               s.m12 + a * a * x.m12 + 2 * a * s.mu * x.mu};
          break;
        }
        case OpKind::kResidualBegin:
          break;
        case OpKind::kAttention:
        case OpKind::kGlu:
          forward_ok = false;
          forward_reason = std::string(op_kind_name(op.kind)) +
                           " mixes what mean-field theory here treats as independent units";
          break;
        case OpKind::kConv:
        case OpKind::kPool:
        case OpKind::kFlatten:
          // Zero padding gives the border positions fewer inputs, and pooling mixes positions:
          // the dense recursion does not hold as it stands.
          forward_ok = false;
          forward_reason =
              "no mean-field recursion here for " + std::string(op_kind_name(op.kind)) + " ops yet";
          break;
      }
    }
    if (op.kind == OpKind::kResidualEnd) {
      skip_stack.pop_back();
      skip_width.pop_back();
    }
    p.forward = forward_ok;
    if (forward_ok) {
      p.act_second_moment = y.m2;
      p.correlation = y.m2 > 0.0 ? y.m12 / y.m2 : kNaN;
      p.log_q_spread = std::sqrt(kHaninConstant * beta + 2.0 / (n * batch));
    } else {
      p.reason = "no prediction: " + forward_reason;
    }
    x = y;
    fan_in = widths[l];
  }

  // ---- Backward: E[g^2] relative to dL/dy, op by op; e holds E[dL/d(output)^2].
  double e = 1.0;
  bool backward_ok = true;
  std::string backward_reason;
  std::vector<double> grad(count, kNaN);  // E[g^2] of each op's grad_preact
  std::vector<double> skip_e;             // the skip path's share, waiting for its begin
  std::vector<double> beta_back(count, 0.0);
  double beta_b = 0.0;
  for (std::size_t l = count; l-- > 0;) {
    const OpSpec& op = ops[l];
    const int n_in = l == 0 ? spec.input.width : widths[l - 1];
    const double n_out = widths[l];
    if (op.kind == OpKind::kResidualBegin) {
      if (backward_ok) e += skip_e.back();
      skip_e.pop_back();
      // A norm, activation or dropout op opening the branch reports the total dL/dx of the
      // block's input, as the measurement does: known once the run's outermost begin is passed.
      if (l == 0 || ops[l - 1].kind != OpKind::kResidualBegin) {
        std::size_t o = l + 1;
        while (o < count && ops[o].kind == OpKind::kResidualBegin) ++o;
        const OpKind k = o < count ? ops[o].kind : OpKind::kDense;
        if (k == OpKind::kNorm || k == OpKind::kActivation || k == OpKind::kDropout) {
          grad[o] = backward_ok ? e : kNaN;
          out[o].backward = backward_ok && std::isfinite(grad[o]) && grad[o] > 0.0;
        }
      }
      continue;
    }
    if (!out[l].forward && backward_ok) {
      backward_ok = false;
      backward_reason = "the forward prediction stopped here";
    }
    if (op.kind == OpKind::kDense) beta_b += 1.0 / n_out;
    beta_back[l] = beta_b;
    switch (op.kind) {
      case OpKind::kDense:
      case OpKind::kActivation: {
        const double delta = e * slope2[l];
        grad[l] = delta;
        if (op.kind == OpKind::kDense) {
          // sw2 belongs to W^l: E[(W^T delta)_j^2] = n_out Var(W) E[delta^2].
          e = weight_sw2(op.dense.init, n_in, widths[l]) * (n_out / n_in) * delta;
        } else {
          e = delta;
        }
        break;
      }
      case OpKind::kNorm: {
        // The backward of a norm divides by its std and projects out one or two directions.
        const double dims =
            op.norm.kind == NormKind::kBatchNorm ? input_columns(spec.input) : n_out;
        const double removed = op.norm.kind == NormKind::kRmsNorm ? 1.0 : 2.0;
        e = e / (in_var[l] + op.norm.eps) * std::max(0.0, 1.0 - removed / dims);
        grad[l] = e;
        break;
      }
      case OpKind::kDropout:
        e = e / (1.0 - op.dropout);
        grad[l] = e;
        break;
      case OpKind::kResidualEnd: {
        double skip = e;
        if (op.residual.projection) {
          const int begin_width = [&] {
            int depth = 0;
            for (std::size_t k = l; k-- > 0;) {
              if (ops[k].kind == OpKind::kResidualEnd) ++depth;
              if (ops[k].kind == OpKind::kResidualBegin) {
                if (depth == 0) return k == 0 ? spec.input.width : widths[k - 1];
                --depth;
              }
            }
            return spec.input.width;
          }();
          skip = weight_sw2(op.residual.projection_init, begin_width, widths[l]) *
                 (n_out / begin_width) * e;
        }
        skip_e.push_back(op.residual.skip * op.residual.skip * skip);
        e = op.residual.scale * op.residual.scale * e;
        grad[l] = e;
        break;
      }
      case OpKind::kResidualBegin:
        break;
      case OpKind::kAttention:
      case OpKind::kGlu:
      case OpKind::kConv:
      case OpKind::kPool:
      case OpKind::kFlatten:
        backward_ok = false;
        backward_reason = "no theory for " + std::string(op_kind_name(op.kind)) + " ops";
        break;
    }
    out[l].backward = backward_ok && std::isfinite(grad[l]) && grad[l] > 0.0;
    if (!out[l].backward && out[l].reason.empty()) {
      out[l].reason = "no prediction: " +
                      (backward_ok ? std::string("the predicted gradient is zero or not finite")
                                   : backward_reason);
    }
  }
  if (input_gradient != nullptr) *input_gradient = backward_ok ? e : kNaN;
  // Relative to the last op with a prediction; factors between consecutive reported ops.
  double last = kNaN;
  for (std::size_t l = count; l-- > 0;) {
    if (ops[l].kind != OpKind::kResidualBegin && out[l].backward) {
      last = grad[l];
      break;
    }
  }
  double above = kNaN;
  bool above_known = true;  // the last reported op's factor is over dL/dy: E = 1 there
  for (std::size_t l = count; l-- > 0;) {
    if (ops[l].kind == OpKind::kResidualBegin) continue;
    OpPrediction& p = out[l];
    if (p.backward) {
      p.log10_grad_rel_last = 0.5 * std::log10(grad[l] / last);
      p.grad_factor = std::isnan(above) ? (above_known ? grad[l] : kNaN) : grad[l] / above;
      p.log10_grad_spread = std::sqrt(kHaninConstant * beta_back[l] + 2.0 / (widths[l] * batch)) /
                            (2.0 * std::log(10.0));
    }
    above = p.backward ? grad[l] : kNaN;
    above_known = false;
  }
  return out;
}

}  // namespace

void attach_predictions(const RunSpec& spec, std::vector<LayerReport>& layers, Summary& summary) {
  const std::vector<OpPrediction> predictions = predict_ops(spec);
  const std::vector<OpSpec> ops = expand_ops(spec);
  std::vector<const OpPrediction*> reported;
  for (std::size_t l = 0; l < ops.size(); ++l) {
    if (ops[l].kind != OpKind::kResidualBegin) reported.push_back(&predictions[l]);
  }
  // The measured reference: the last layer with a gradient prediction.
  double last_measured = kNaN;
  for (std::size_t i = layers.size(); i-- > 0;) {
    if (reported[i]->backward) {
      last_measured = layers[i].backward.grad_preact_rms.log10;
      break;
    }
  }
  summary.theory_flagged_layers.clear();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const OpPrediction& p = *reported[i];
    LayerTheory& t = layers[i].theory;
    t.forward = p.forward;
    t.backward = p.backward;
    t.reason = p.reason;
    t.q = p.q;
    t.act_second_moment = p.act_second_moment;
    t.correlation = p.correlation;
    t.grad_factor = p.grad_factor;
    t.log10_grad_rel_last = p.log10_grad_rel_last;
    t.log_q_spread = p.log_q_spread;
    t.log10_grad_spread = p.log10_grad_spread;
    const LayerReport& l = layers[i];
    bool flag = false;
    if (p.forward) {
      const double measured_q = l.forward.preact.rms * l.forward.preact.rms;
      t.log_q_deviation = std::log(measured_q / p.q);
      // A prediction of exactly zero (a collapsed signal) is not a deviation to flag.
      if (p.q > 0.0 && std::isfinite(t.log_q_deviation)) {
        flag = flag || std::abs(t.log_q_deviation) > kFlagSpreads * p.log_q_spread;
      }
    }
    if (p.backward) {
      t.measured_log10_grad_rel_last = l.backward.grad_preact_rms.log10 - last_measured;
      t.log10_grad_deviation = t.measured_log10_grad_rel_last - p.log10_grad_rel_last;
      if (std::isfinite(t.log10_grad_deviation)) {
        flag = flag || std::abs(t.log10_grad_deviation) > kFlagSpreads * p.log10_grad_spread;
      }
    }
    t.flagged = flag;
    if (flag) summary.theory_flagged_layers.push_back(l.index);
  }
}

}  // namespace gradscope
