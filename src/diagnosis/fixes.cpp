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

// ---- Sequences

namespace {

bool has_attention(const std::vector<LayerItem>& items) {
  for (const LayerItem& item : items) {
    if (item.block.empty() ? item.op.kind == OpKind::kAttention : has_attention(item.block)) {
      return true;
    }
  }
  return false;
}

bool has_residual(const std::vector<LayerItem>& items) {
  for (const LayerItem& item : items) {
    if (item.residual || has_residual(item.block)) return true;
  }
  return false;
}

bool starts_with_norm(const std::vector<LayerItem>& items) {
  return !items.empty() && items.front().block.empty() && items.front().op.kind == OpKind::kNorm;
}

// The width leaving `items`, given the width entering (dense items set it, the rest keep it).
int width_after(const std::vector<LayerItem>& items, int width) {
  for (const LayerItem& item : items) {
    if (!item.block.empty()) {
      width = width_after(item.block, width);
    } else if (item.op.kind == OpKind::kDense) {
      width = item.op.dense.width;
    }
  }
  return width;
}

// The largest logit measured with the default inits (xavier, 1/sqrt(d_head)) is 3 to 5; advice
// that scales the query and key weights down aims there.
constexpr double kHealthyMaxLogit = 5.0;

}  // namespace

// A skip connection around each attention op of a `layers` list that has none: a repeated block
// holding attention becomes a residual block (when it keeps the width), a lone attention item
// (with the norm just before it) a residual block of its own; a branch that does not begin with a
// norm gets a layer norm there (pre-norm), since without one the stream's growth inflates the
// logits (six skipped attention ops without norms: largest logit past 50).
std::optional<Fix> Advisor::attention_skips() const {
  if (r_.spec.layers.empty()) return std::nullopt;
  std::vector<LayerItem> items;
  bool changed = false;
  int width = r_.spec.input.width;
  for (const LayerItem& item : r_.spec.layers) {
    LayerItem copy = item;
    if (!item.block.empty()) {
      const int after = width_after(item.block, width);
      // A block with skips of its own (the transformer shorthand's) is not wrapped again.
      if (!item.residual && !has_residual(item.block) && has_attention(item.block) &&
          after == width) {
        copy.residual = ResidualSpec{};
        if (!starts_with_norm(copy.block)) copy.block.insert(copy.block.begin(), layer_norm_item());
        changed = true;
      }
      width = after;
      items.push_back(std::move(copy));
      continue;
    }
    if (item.op.kind == OpKind::kDense) width = item.op.dense.width;
    if (item.op.kind != OpKind::kAttention) {
      items.push_back(std::move(copy));
      continue;
    }
    LayerItem block;
    block.residual = ResidualSpec{};
    if (!items.empty() && items.back().block.empty() && items.back().op.kind == OpKind::kNorm) {
      block.block.push_back(std::move(items.back()));
      items.pop_back();
    }
    if (block.block.empty()) block.block.push_back(layer_norm_item());
    block.block.push_back(std::move(copy));
    items.push_back(std::move(block));
    changed = true;
  }
  if (!changed) return std::nullopt;
  Fix f;
  f.kind = Fix::Kind::kEdits;
  f.paths = {"layers"};
  f.edits = {LayersEdit{std::move(items)}};
  f.text =
      "Wrap the attention ops in pre-norm residual connections (x + Attn(norm(x))): the skip "
      "carries each token's own vector past the averaging, which "
      "keeps the tokens apart at any depth (without skips, attention stacks lose rank doubly "
      "exponentially with depth, Dong et al. 2021).";
  return f;
}

// The default 1/sqrt(d_head) scale for attention items whose constant scale is larger.
std::optional<Fix> Advisor::attention_scale_fix() const {
  Fix f;
  f.kind = Fix::Kind::kEdits;
  double scale = 0.0, standard = 0.0;
  for (std::size_t i = 0; i < r_.layers.size(); ++i) {
    const LayerReport& l = r_.layers[i];
    if (l.kind != OpKind::kAttention) continue;
    const double own = attention_scale(l.attention, l.width);
    AttentionSpec inv_sqrt = l.attention;
    inv_sqrt.scale_kind = AttentionScaleKind::kInvSqrtHead;
    const double s = attention_scale(inv_sqrt, l.width);
    if (!(own > s)) continue;
    const std::string& path = s_.paths[i];
    if (std::find(f.paths.begin(), f.paths.end(), path) != f.paths.end()) continue;
    f.paths.push_back(path);
    f.edits.push_back(AttentionScaleEdit{path});
    scale = own;
    standard = s;
  }
  if (f.paths.empty()) return std::nullopt;
  f.text = "Scale the query-key logits by 1/sqrt(d_head) = " + fmt_num(standard) + " rather than " +
           fmt_num(scale) +
           ": q·k sums d_head products, and this scale brings its spread back to that of one "
           "(Vaswani et al. 2017); QK-norm, a norm on q and k (not an option here), bounds the "
           "logits whatever the weights.";
  return f;
}

// Smaller query and key inits for attention items whose largest logit is beyond the threshold,
// each by the factor that brings that logit to kHealthyMaxLogit (the logits are bilinear in the
// two weights, so each takes the square root).
std::optional<Fix> Advisor::attention_init_fix() const {
  Fix f;
  f.kind = Fix::Kind::kEdits;
  double factor = 1.0;
  for (std::size_t i = 0; i < r_.layers.size(); ++i) {
    const LayerReport& l = r_.layers[i];
    if (l.kind != OpKind::kAttention || !l.forward.has_attention) continue;
    const double logit = l.forward.attention_max_logit;
    const double u = uniform_attention_entropy(r_.spec.input.tokens, l.attention.causal);
    const bool collapsed =
        u > 0 && l.forward.attention_entropy / u <= r_.spec.diagnosis.attention_entropy_fraction;
    if (!(logit >= r_.spec.diagnosis.attention_max_logit || collapsed)) continue;
    if (!(logit > kHealthyMaxLogit)) continue;
    const std::string& path = s_.paths[i];
    // The shorthand's attention has no init of its own to set.
    bool shorthand = false;
    for (const ResidualSite& site : residual_sites(r_))
      shorthand |= site.shorthand() && site.path == path;
    if (shorthand) continue;
    if (std::find(f.paths.begin(), f.paths.end(), path) != f.paths.end()) continue;
    const double k = std::sqrt(kHealthyMaxLogit / logit);
    AttentionInitEdit e{path, l.attention.init};
    // Two significant digits: the aim is a logit near 5, not exactly 5.
    e.init[0].gain = std::stod(fmt_num(e.init[0].gain * k, 2));
    e.init[1].gain = std::stod(fmt_num(e.init[1].gain * k, 2));
    f.paths.push_back(path);
    f.edits.push_back(std::move(e));
    factor = k;
  }
  if (f.paths.empty()) return std::nullopt;
  f.text = "Scale the query and key inits' gains down (by " + fmt_num(factor, 2) +
           " here) so that the largest logit starts near " + fmt_num(kHealthyMaxLogit) +
           ", as with the default inits: the logits are products of the two, and smaller ones "
           "keep the softmax from saturating at init.";
  return f;
}

// The transformer shorthand's placement (post-norm to pre-norm) or depth scaling (none to gpt2),
// where the expanded items show the value being changed from.
std::optional<Fix> Advisor::transformer_fix(TransformerKey key) const {
  const bool pre = key == TransformerKey::kPlacementPreNorm;
  const std::vector<ResidualSite> sites = residual_sites(r_);
  std::string path;
  int blocks = 0;
  for (const ResidualSite& site : sites) {
    if (!site.shorthand() || site.skip != 1.0 || site.scale != 1.0) continue;
    if (pre ? !site.post_norm : !site.pre_norm) continue;
    if (!pre) {
      // No scaling yet: the attention's output projection has the query's init.
      bool unscaled = false;
      for (std::size_t i = 0; i < r_.layers.size(); ++i) {
        const LayerReport& l = r_.layers[i];
        if (l.kind == OpKind::kAttention && s_.paths[i] == site.path) {
          unscaled =
              l.attention.output_projection && l.attention.init[3].gain == l.attention.init[0].gain;
          break;
        }
      }
      if (!unscaled) continue;
    }
    path = site.path;
    blocks = site.repeat;
    break;
  }
  if (path.empty()) return std::nullopt;
  Fix f;
  f.kind = Fix::Kind::kEdits;
  f.paths = {path};
  f.edits = {TransformerEdit{path, key}};
  if (pre) {
    f.text =
        "Put the norms before the branches (pre-norm): the gradient then reaches every block "
        "through the identity path of the stream, evenly across depth, and training needs no "
        "warm-up (Xiong et al. 2020); DeepNorm (scaling deepnorm) keeps post-norm and evens it "
        "out by up-weighting the skips.";
  } else {
    f.text = "Scale the projections into the residual stream by 1/sqrt(2N) = " +
             fmt_num(1.0 / std::sqrt(2.0 * blocks)) +
             " (GPT-2's scaling, N = " + std::to_string(blocks) +
             " blocks): each of the 2N branches then adds about 1/(2N) of the stream's variance, "
             "so the stream ends near sqrt(2) times its first rms instead of growing with depth "
             "(Radford et al. 2019).";
  }
  return f;
}

// Each residual item whose branch is unscaled gets scale 1/sqrt(L), L the residual blocks of the
// whole network: each block then multiplies the partial Jacobian norm by about 1 + c/L for a
// branch gain c, so it grows by e^c over the whole depth rather than by (1 + c)^L.
std::optional<Fix> Advisor::residual_scale_fix() const {
  const std::vector<ResidualSite> sites = residual_sites(r_);
  if (sites.empty()) return std::nullopt;
  // Rounded to 3 digits, as a person would write it.
  const double scale = std::stod(fmt_num(1.0 / std::sqrt(static_cast<double>(sites.size())), 3));
  Fix f;
  f.kind = Fix::Kind::kEdits;
  for (const ResidualSite& site : sites) {
    if (site.shorthand() || site.scale != 1.0) continue;
    if (std::find(f.paths.begin(), f.paths.end(), site.path) != f.paths.end()) continue;
    f.paths.push_back(site.path);
    f.edits.push_back(ResidualScaleEdit{site.path, scale});
  }
  if (f.paths.empty()) return std::nullopt;
  f.text = "Scale each residual branch by 1/sqrt(L) = " + fmt_num(scale) +
           " (L = " + std::to_string(sites.size()) +
           " residual blocks): each block then adds about 1/L of the signal's variance, so the "
           "partial Jacobian norm grows by a bounded factor (e^2 for He-initialised ReLU "
           "branches) over the whole depth instead of exponentially with it (Doshi, He & Gromov "
           "2023).";
  return f;
}

}  // namespace gradscope::diagnosis_detail
