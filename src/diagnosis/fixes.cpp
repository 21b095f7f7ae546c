// The fixes the advisor knows (advice.hpp), each built for the network the report describes, or
// none where it does not apply.
#include <algorithm>
#include <cmath>

#include "diagnosis/advice.hpp"
#include "diagnosis/words.hpp"

namespace gradscope::diagnosis_detail {

namespace {

// The dense layer a report layer describes.
LayerSpec layer_spec(const LayerReport& l) {
  LayerSpec layer;
  layer.width = l.width;
  layer.activation = l.activation;
  layer.init = l.init;
  layer.bias = l.bias;
  return layer;
}

LayerItem dense_item(const LayerSpec& layer) {
  LayerItem item;
  item.op.kind = OpKind::kDense;
  item.op.dense = layer;
  return item;
}

LayerItem layer_norm_item() {
  LayerItem item;
  item.op.kind = OpKind::kNorm;
  item.op.norm = NormSpec{NormKind::kLayerNorm};
  return item;
}

}  // namespace

std::optional<Fix> Advisor::switch_bounded_activation() const {
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
  f.text =
      "Use relu with he_normal init in the hidden layers: relu's slope is 1 wherever a unit "
      "is active, so the gradient passes through unshrunk (keep sigmoid for a binary "
      "output, softmax for a multi-class one).";
  return f;
}

std::optional<Fix> Advisor::theory_init_fix() const {
  if (!init_.valid) return std::nullopt;
  if (std::abs(init_.sw2 / init_.sw2_now - 1.0) <= 0.05) return std::nullopt;
  if (!init_advice_stands(init_, s_, r_.spec.diagnosis)) return std::nullopt;
  Fix f;
  f.kind = Fix::Kind::kInit;
  f.paths = paths_of(s_.hidden);
  f.init = init_.spec;
  const DiagnosisSpec& d = r_.spec.diagnosis;
  const bool healthy =
      init_.advised.worst() < std::min(d.gradient_warning_decades, d.activation_warning_decades);
  f.text = "Initialise the hidden layers with " + init_.name +
           ", the weight variance mean-field theory finds best for " +
           std::string(activation_info(s_.hidden_activation.kind).name) + " over " +
           std::to_string(s_.hidden.size()) + " layers: it predicts " + chain_words(init_.advised) +
           ", against " + chain_words(init_.now) + " with sw2 = " + fmt_num(init_.sw2_now) +
           " now" +
           (healthy ? "."
                    : "; at this depth no init keeps the prediction healthy, so norms or "
                      "residual connections are the surer fix.");
  return f;
}

std::string Advisor::residual_sentence(const std::optional<ActivationSpec>& activation) const {
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

bool Advisor::residual_applies() const {
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
std::optional<Fix> Advisor::residual_blocks() const {
  if (!residual_applies()) return std::nullopt;
  Fix f;
  f.kind = Fix::Kind::kResidual;
  f.text = residual_sentence(std::nullopt);
  return f;
}

std::vector<ConfigEdit> Advisor::residual_edits(const std::optional<ActivationSpec>& activation,
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
  LayerItem blocks;
  blocks.repeat = depth - 1;
  blocks.residual = ResidualSpec{};
  blocks.block = {layer_norm_item(), dense_item(layer)};
  LayersEdit layers;
  layers.items = {dense_item(layer), blocks, layer_norm_item()};
  if (output) layers.items.push_back(dense_item(*output));
  std::vector<ConfigEdit> edits;
  if (s_.stack_config) {
    edits.push_back(RemoveEdit{ConfigSection::kStack});
    if (r_.spec.output) edits.push_back(RemoveEdit{ConfigSection::kOutput});
  }
  edits.push_back(std::move(layers));
  return edits;
}

// The input drawn standardised (mean 0, variance 1), for a generated input; a loaded one is the
// data's to fix, which no config key does.
std::optional<Fix> Advisor::standard_input() const {
  if (r_.sources && !r_.sources->input_file.empty()) return std::nullopt;
  const InputSpec& in = r_.spec.input;
  Fix f;
  f.kind = Fix::Kind::kInput;
  if (in.distribution != InputDistribution::kNormal) {
    f.input_edits.push_back(InputDistributionEdit{InputDistribution::kNormal});
  }
  if (in.mean != 0.0 || in.distribution != InputDistribution::kNormal) {
    f.input_edits.push_back(NumberEdit{NumberKey::kInputMean, 0.0});
  }
  if (in.std != 1.0 || in.distribution != InputDistribution::kNormal) {
    f.input_edits.push_back(NumberEdit{NumberKey::kInputStd, 1.0});
  }
  if (f.input_edits.empty()) return std::nullopt;
  f.text =
      "Standardise the input (mean 0, standard deviation 1), as a real pipeline's "
      "normalisation would: the inits and the theory assume it.";
  return f;
}

// Dense layers whose init gain is 4x or more off 1 (a gain of 100 in a residual branch), when
// they share one init: that init with gain 1.
std::optional<Fix> Advisor::init_gain_fix() const {
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
  f.init_all_parameters = true;  // the config spelled its gain out: so does the advice
  f.text = "Set the init gain of " + std::to_string(off.size()) + " dense layer" +
           (off.size() == 1 ? "" : "s") + " from " + fmt_num(first.gain) +
           " to 1: a gain g scales the weights by g, so every layer multiplies the signal and "
           "the gradient by about g more than its init intends.";
  return f;
}

// relu-like layers whose bias is a negative constant: every unit starts on its dead side.
std::optional<Fix> Advisor::negative_bias() const {
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

std::optional<Fix> Advisor::leaky_relu() const {
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

std::optional<Fix> Advisor::layer_norm_for_batch_norm() const {
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

std::optional<Fix> Advisor::learning_rate() const {
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
  const double lr = std::stod(fmt_num(r_.spec.optimizer.learning_rate * std::pow(10.0, shift), 2));
  Fix f;
  f.kind = Fix::Kind::kLearningRate;
  f.learning_rate = lr;
  f.text = "Set the learning rate to " + fmt_num(lr, 2) +
           ": the first step's update-to-weight "
           "ratio scales with it, and this puts " +
           layer_word(u.layer) + "'s at about " + pow10_text(target) + ".";
  return f;
}

std::optional<Fix> Advisor::adam() const {
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

std::optional<Fix> Advisor::linear_output() const {
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

}  // namespace gradscope::diagnosis_detail
