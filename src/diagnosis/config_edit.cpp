// Typed config edits spelled as `--set PATH=VALUE` and applied to a RunSpec. The spelling is the
// config reader's syntax; the applying mirrors what the reader makes of that `--set`.
#include "gradscope/diagnosis/config_edit.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <type_traits>

#include "gradscope/core/number_format.hpp"

namespace gradscope {

namespace {

// ---- Spelling

// JSON text of a number that reads back to the same double, in its shortest spelling, so advice
// reads like a person wrote it.
std::string json_number(double x) { return format_shortest(x); }

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

// An init by name, as advice names a scheme; the variance init is nothing without its weight_var.
std::string init_value(const InitEdit& e) {
  if (e.all_parameters) return init_json(e.init);
  if (e.init.kind == Init::kVariance) {
    return "{\"name\": \"variance\", \"weight_var\": " + json_number(e.init.weight_var) + "}";
  }
  return std::string(init_info(e.init.kind).name);
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

// A bias init as --set takes it: a bare name when it has no parameter.
std::string bias_value(const BiasInitSpec& b) {
  const std::string j = bias_json(b);
  return j.front() == '"' ? j.substr(1, j.size() - 2) : j;
}

std::string norm_json(const NormSpec& n) {
  if (n.eps == NormSpec{}.eps) return json_string(norm_name(n.kind));
  return "{\"name\": " + json_string(norm_name(n.kind)) + ", \"eps\": " + json_number(n.eps) + "}";
}

std::string items_json(const std::vector<LayerItem>& items);

std::string residual_json(const LayerItem& item) {
  const ResidualSpec& r = *item.residual;
  std::vector<std::string> keys;
  if (r.scale != 1.0) keys.push_back("\"scale\": " + json_number(r.scale));
  if (r.skip != 1.0) keys.push_back("\"skip\": " + json_number(r.skip));
  if (r.projection) keys.push_back("\"projection\": " + init_json(r.projection_init));
  if (item.post_norm) {
    keys.push_back("\"placement\": \"post_norm\", \"norm\": " + norm_json(*item.post_norm));
  }
  std::string j = "{";
  for (std::size_t i = 0; i < keys.size(); ++i) j += (i == 0 ? "" : ", ") + keys[i];
  return j + "}";
}

// One item of "layers", one op each (no dense item with a "norm"), every key of a dense layer
// spelled out so that nothing follows a default.
std::string item_json(const LayerItem& item) {
  if (!item.block.empty()) {
    std::string j = "{\"repeat\": " + std::to_string(item.repeat);
    if (item.residual) j += ", \"residual\": " + residual_json(item);
    return j + ", \"block\": " + items_json(item.block) + "}";
  }
  const OpSpec& op = item.op;
  switch (op.kind) {
    case OpKind::kDense:
      return "{\"width\": " + std::to_string(op.dense.width) +
             ", \"activation\": " + activation_json(op.dense.activation) +
             ", \"init\": " + init_json(op.dense.init) +
             ", \"bias_init\": " + bias_json(op.dense.bias) + "}";
    case OpKind::kNorm:
      return "{\"norm\": " + norm_json(op.norm) + "}";
    case OpKind::kActivation:
      return "{\"activation\": " + activation_json(op.activation) + "}";
    case OpKind::kDropout:
      return "{\"dropout\": " + json_number(op.dropout) + "}";
    case OpKind::kAttention: {
      const AttentionSpec& a = op.attention;
      std::string scale = "\"1/sqrt(d_head)\"";
      if (a.scale_kind == AttentionScaleKind::kInvHead) scale = "\"1/d_head\"";
      if (a.scale_kind == AttentionScaleKind::kConstant) scale = json_number(a.scale);
      std::string init;
      for (std::size_t j = 0; j < a.init.size(); ++j) {
        init += (j == 0 ? "" : ", ") + json_string(kAttentionProjections[j]) + ": " +
                init_json(a.init[j]);
      }
      return "{\"attention\": {\"heads\": " + std::to_string(a.heads) +
             ", \"causal\": " + (a.causal ? "true" : "false") + ", \"scale\": " + scale +
             ", \"bias\": " + (a.bias ? "true" : "false") +
             ", \"output_projection\": " + (a.output_projection ? "true" : "false") +
             ", \"init\": {" + init + "}}}";
    }
    case OpKind::kGlu: {
      const GluSpec& g = op.glu;
      std::string init;
      for (std::size_t j = 0; j < g.init.size(); ++j) {
        init +=
            (j == 0 ? "" : ", ") + json_string(kGluProjections[j]) + ": " + init_json(g.init[j]);
      }
      return "{\"glu\": {\"hidden\": " + std::to_string(g.hidden) +
             ", \"activation\": " + activation_json(g.activation) +
             ", \"bias\": " + (g.bias ? "true" : "false") + ", \"init\": {" + init + "}}}";
    }
    case OpKind::kConv: {
      const ConvSpec& c = op.conv;
      const auto pair = [](int h, int w) {
        return "[" + std::to_string(h) + ", " + std::to_string(w) + "]";
      };
      return "{\"conv\": {\"channels\": " + std::to_string(c.channels) +
             ", \"kernel\": " + pair(c.kernel_h, c.kernel_w) +
             ", \"stride\": " + pair(c.stride_h, c.stride_w) +
             ", \"padding\": " + pair(c.pad_h, c.pad_w) +
             ", \"dilation\": " + pair(c.dilation_h, c.dilation_w) +
             ", \"groups\": " + std::to_string(c.groups) +
             ", \"bias\": " + (c.bias ? "true" : "false") +
             "}, \"activation\": " + activation_json(c.activation) +
             ", \"init\": " + init_json(c.init) +
             (c.bias ? ", \"bias_init\": " + bias_json(c.bias_init) : std::string()) + "}";
    }
    case OpKind::kPool: {
      const PoolSpec& p = op.pool;
      if (p.kind == PoolKind::kGlobalAverage) return "{\"pool\": {\"kind\": \"global_average\"}}";
      return "{\"pool\": {\"kind\": " + json_string(pool_kind_name(p.kind)) + ", \"kernel\": [" +
             std::to_string(p.kernel_h) + ", " + std::to_string(p.kernel_w) + "], \"stride\": [" +
             std::to_string(p.stride_h) + ", " + std::to_string(p.stride_w) + "], \"padding\": [" +
             std::to_string(p.pad_h) + ", " + std::to_string(p.pad_w) + "]}}";
    }
    case OpKind::kFlatten:
      return "{\"flatten\": {}}";
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      break;  // the expanded form of a block: never an item
  }
  return "{}";
}

std::string items_json(const std::vector<LayerItem>& items) {
  std::string j = "[";
  for (std::size_t i = 0; i < items.size(); ++i) j += (i == 0 ? "" : ", ") + item_json(items[i]);
  return j + "]";
}

std::string optimizer_json(const OptimizerSpec& o) {
  const OptimizerSpec defaults;
  std::string j = "{\"name\": " + json_string(optimizer_name(o.kind)) +
                  ", \"learning_rate\": " + json_number(o.learning_rate);
  if (o.kind == OptimizerKind::kSgd && o.momentum != defaults.momentum) {
    j += ", \"momentum\": " + json_number(o.momentum);
  }
  if (o.kind == OptimizerKind::kAdam) {
    if (o.beta1 != defaults.beta1) j += ", \"beta1\": " + json_number(o.beta1);
    if (o.beta2 != defaults.beta2) j += ", \"beta2\": " + json_number(o.beta2);
    if (o.eps != defaults.eps) j += ", \"eps\": " + json_number(o.eps);
  }
  return j + "}";
}

std::string_view number_key_path(NumberKey key) {
  switch (key) {
    case NumberKey::kInputMean:
      return "input.mean";
    case NumberKey::kInputStd:
      return "input.std";
    case NumberKey::kLearningRate:
      return "optimizer.learning_rate";
  }
  return "invalid";
}

// ---- Applying

bool same_init(const InitSpec& a, const InitSpec& b) {
  return a.kind == b.kind && a.gain == b.gain && a.std == b.std && a.limit == b.limit &&
         a.mode == b.mode && a.weight_var == b.weight_var;
}

bool same_bias(const BiasInitSpec& a, const BiasInitSpec& b) {
  return a.kind == b.kind && a.value == b.value && a.std == b.std;
}

// The bias a layer gets when its config names no bias_init: torch_default weights bring
// torch_default biases, as PyTorch's nn.Linear does.
BiasInitSpec bias_following(const InitSpec& init) {
  BiasInitSpec b;
  if (init.kind == Init::kTorchDefault) b.kind = BiasInit::kTorchDefault;
  return b;
}

void set_init(LayerSpec& layer, const InitSpec& init) {
  if (same_bias(layer.bias, bias_following(layer.init))) layer.bias = bias_following(init);
  layer.init = init;
}

// The stack a "layers" config holds: unused, the reader's default.
StackSpec unused_stack() {
  StackSpec stack;
  stack.layer.activation = default_spec(Activation::kRelu);
  return stack;
}

// Paths by position, as the reader names the items of "layers".
void number_items(std::vector<LayerItem>& items, const std::string& prefix) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    items[i].path = prefix + "[" + std::to_string(i) + "]";
    number_items(items[i].block, items[i].path + ".block");
  }
}

// Calls fn(list, first, count) for each run of sibling items that came from the config item at
// `path` (a dense item with a "norm" is two or three items sharing its path).
template <typename Fn>
void for_each_group(std::vector<LayerItem>& items, const std::string& prefix,
                    const std::string& path, Fn&& fn) {
  for (std::size_t i = 0; i < items.size();) {
    const auto path_of = [&](std::size_t k) {
      return items[k].path.empty() ? prefix + "[" + std::to_string(k) + "]" : items[k].path;
    };
    const std::string own = path_of(i);
    std::size_t end = i + 1;
    while (end < items.size() && items[end].block.empty() && items[i].block.empty() &&
           path_of(end) == own) {
      ++end;
    }
    if (own == path && items[i].block.empty()) {
      const std::size_t before = items.size();
      fn(items, i, end - i);
      // The group may lose or gain an op (an activation after a norm).
      if (items.size() >= before) {
        end += items.size() - before;
      } else {
        end -= before - items.size();
      }
    } else if (!items[i].block.empty()) {
      for_each_group(items[i].block, own + ".block", path, fn);
    }
    i = end;
  }
}

// A dense item with a "norm" before its activation is dense (linear), norm, activation, the
// activation op left out when linear; after its activation, dense (with it), norm. Where the
// group shows neither (a linear dense layer and its norm), the reader's default is taken: before.
void set_group_activation(std::vector<LayerItem>& items, std::size_t first, std::size_t count,
                          const ActivationSpec& a) {
  std::size_t dense = count, norm = count, act = count;
  for (std::size_t k = 0; k < count; ++k) {
    const OpKind kind = items[first + k].op.kind;
    if (kind == OpKind::kDense) dense = k;
    if (kind == OpKind::kNorm) norm = k;
    if (kind == OpKind::kActivation) act = k;
  }
  const bool linear = a.kind == Activation::kLinear;
  if (act < count) {
    if (dense < count && linear) {
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(first + act));
    } else {
      items[first + act].op.activation = a;
    }
  } else if (dense < count) {
    OpSpec& d = items[first + dense].op;
    if (norm < count && d.dense.activation.kind == Activation::kLinear && !linear) {
      LayerItem op = items[first + norm];
      op.op = OpSpec{};
      op.op.kind = OpKind::kActivation;
      op.op.activation = a;
      items.insert(items.begin() + static_cast<std::ptrdiff_t>(first + norm + 1), std::move(op));
    } else {
      d.dense.activation = a;
    }
  }
}

// Applies fn to the LayerSpec of every dense layer at `path`; the stack's changes reach an output
// layer that takes its init and bias from it.
template <typename Fn>
void for_each_layer(RunSpec& spec, const std::string& path, Fn&& fn) {
  if (path == "stack") {
    const LayerSpec before = spec.stack.layer;
    fn(spec.stack.layer);
    if (spec.output && same_init(spec.output->init, before.init)) {
      if (same_bias(spec.output->bias, before.bias)) spec.output->bias = spec.stack.layer.bias;
      spec.output->init = spec.stack.layer.init;
    }
    return;
  }
  if (path == "output") {
    if (spec.output) fn(*spec.output);
    return;
  }
  for_each_group(spec.layers, "layers", path,
                 [&](std::vector<LayerItem>& items, std::size_t first, std::size_t count) {
                   for (std::size_t k = first; k < first + count; ++k) {
                     if (items[k].op.kind == OpKind::kDense) fn(items[k].op.dense);
                   }
                 });
}

// Calls fn(item) for every item (at any depth) whose path is `path`.
template <typename Fn>
void for_each_item(std::vector<LayerItem>& items, const std::string& path, Fn&& fn) {
  for (LayerItem& item : items) {
    if (item.path == path) fn(item);
    for_each_item(item.block, path, fn);
  }
}

// The transformer shorthand's repeat item at `path` (its blocks, each a residual child), as the
// reader expanded it; items.size() when there is none. Its final norm, if any, follows it.
std::size_t find_shorthand(const std::vector<LayerItem>& items, const std::string& path) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].path == path && !items[i].block.empty() && !items[i].residual) return i;
  }
  return items.size();
}

LayerItem norm_op(const NormSpec& norm, const std::string& path) {
  LayerItem item;
  item.op.kind = OpKind::kNorm;
  item.op.norm = norm;
  item.path = path;
  return item;
}

// placement post_norm -> pre_norm: each residual's post-norm moves to the start of its branch,
// and a final norm follows the blocks (config_transformer.cpp's expansion).
void to_pre_norm(std::vector<LayerItem>& items, const std::string& path) {
  const std::size_t at = find_shorthand(items, path);
  if (at == items.size()) return;
  std::optional<NormSpec> norm;
  for (LayerItem& child : items[at].block) {
    if (!child.residual || !child.post_norm) continue;
    norm = *child.post_norm;
    child.post_norm.reset();
    child.block.insert(child.block.begin(), norm_op(*norm, path));
  }
  if (norm) {
    items.insert(items.begin() + static_cast<std::ptrdiff_t>(at + 1), norm_op(*norm, path));
  }
}

// scaling none -> gpt2: the projections into the stream (attention output, the MLP's last dense
// layer, a GLU's down) times 1/sqrt(2N).
void to_gpt2(std::vector<LayerItem>& items, const std::string& path) {
  const std::size_t at = find_shorthand(items, path);
  if (at == items.size()) return;
  const double s = 1.0 / std::sqrt(2.0 * static_cast<double>(items[at].repeat));
  for (LayerItem& child : items[at].block) {
    LayerItem* last_dense = nullptr;
    for (LayerItem& op : child.block) {
      if (op.op.kind == OpKind::kAttention && op.op.attention.output_projection) {
        op.op.attention.init[3].gain *= s;
      }
      if (op.op.kind == OpKind::kGlu) op.op.glu.init[2].gain *= s;
      if (op.op.kind == OpKind::kDense) last_dense = &op;
    }
    if (last_dense != nullptr) last_dense->op.dense.init.gain *= s;
  }
}

struct Applier {
  RunSpec& spec;

  void operator()(const ActivationEdit& e) const {
    if (e.layer == "stack") {
      spec.stack.layer.activation = e.activation;
    } else if (e.layer == "output") {
      if (spec.output) spec.output->activation = e.activation;
    } else {
      for_each_group(spec.layers, "layers", e.layer,
                     [&](std::vector<LayerItem>& items, std::size_t first, std::size_t count) {
                       set_group_activation(items, first, count, e.activation);
                     });
    }
  }
  void operator()(const InitEdit& e) const {
    for_each_layer(spec, e.layer, [&](LayerSpec& l) { set_init(l, e.init); });
  }
  void operator()(const BiasEdit& e) const {
    for_each_layer(spec, e.layer, [&](LayerSpec& l) { l.bias = e.bias; });
  }
  void operator()(const NormEdit& e) const {
    for_each_group(spec.layers, "layers", e.layer,
                   [&](std::vector<LayerItem>& items, std::size_t first, std::size_t count) {
                     for (std::size_t k = first; k < first + count; ++k) {
                       if (items[k].op.kind == OpKind::kNorm) items[k].op.norm = NormSpec{e.norm};
                     }
                   });
  }
  void operator()(const LayersEdit& e) const {
    spec.layers = e.items;
    number_items(spec.layers, "layers");
    spec.stack = unused_stack();
    spec.output.reset();
  }
  void operator()(const RemoveEdit& e) const {
    if (e.section == ConfigSection::kStack) spec.stack = unused_stack();
    if (e.section == ConfigSection::kOutput) spec.output.reset();
  }
  void operator()(const NumberEdit& e) const {
    switch (e.key) {
      case NumberKey::kInputMean:
        spec.input.mean = e.value;
        break;
      case NumberKey::kInputStd:
        spec.input.std = e.value;
        break;
      case NumberKey::kLearningRate:
        spec.optimizer.learning_rate = e.value;
        break;
    }
  }
  void operator()(const InputDistributionEdit& e) const {
    spec.input.distribution = e.distribution;
  }
  void operator()(const OptimizerEdit& e) const { spec.optimizer = e.optimizer; }
  void operator()(const AttentionScaleEdit& e) const {
    for_each_item(spec.layers, e.layer, [](LayerItem& item) {
      if (item.block.empty() && item.op.kind == OpKind::kAttention) {
        item.op.attention.scale_kind = AttentionScaleKind::kInvSqrtHead;
        item.op.attention.scale = 0.0;
      }
    });
  }
  void operator()(const AttentionInitEdit& e) const {
    for_each_item(spec.layers, e.layer, [&](LayerItem& item) {
      if (item.block.empty() && item.op.kind == OpKind::kAttention) item.op.attention.init = e.init;
    });
  }
  void operator()(const TransformerEdit& e) const {
    if (e.key == TransformerKey::kPlacementPreNorm) to_pre_norm(spec.layers, e.layer);
    if (e.key == TransformerKey::kScalingGpt2) to_gpt2(spec.layers, e.layer);
  }
  void operator()(const ResidualScaleEdit& e) const {
    for_each_item(spec.layers, e.layer, [&](LayerItem& item) {
      if (item.residual) item.residual->scale = e.scale;
    });
  }
};

struct Speller {
  ConfigChange operator()(const ActivationEdit& e) const {
    return {e.layer + ".activation", activation_value(e.activation)};
  }
  ConfigChange operator()(const InitEdit& e) const { return {e.layer + ".init", init_value(e)}; }
  ConfigChange operator()(const BiasEdit& e) const {
    return {e.layer + ".bias_init", bias_value(e.bias)};
  }
  ConfigChange operator()(const NormEdit& e) const {
    return {e.layer + ".norm", std::string(norm_name(e.norm))};
  }
  ConfigChange operator()(const LayersEdit& e) const { return {"layers", items_json(e.items)}; }
  ConfigChange operator()(const RemoveEdit& e) const {
    return {e.section == ConfigSection::kStack ? "stack" : "output", "null"};
  }
  ConfigChange operator()(const NumberEdit& e) const {
    return {std::string(number_key_path(e.key)), json_number(e.value)};
  }
  ConfigChange operator()(const InputDistributionEdit& e) const {
    return {"input.distribution", std::string(input_distribution_name(e.distribution))};
  }
  ConfigChange operator()(const OptimizerEdit& e) const {
    return {"optimizer", optimizer_json(e.optimizer)};
  }
  ConfigChange operator()(const AttentionScaleEdit& e) const {
    return {e.layer + ".attention.scale", "1/sqrt(d_head)"};
  }
  ConfigChange operator()(const AttentionInitEdit& e) const {
    std::string j = "{";
    for (std::size_t k = 0; k < e.init.size(); ++k) {
      j += (k == 0 ? "" : ", ") + json_string(kAttentionProjections[k]) + ": " +
           init_json(e.init[k]);
    }
    return {e.layer + ".attention.init", j + "}"};
  }
  ConfigChange operator()(const TransformerEdit& e) const {
    if (e.key == TransformerKey::kScalingGpt2) return {e.layer + ".transformer.scaling", "gpt2"};
    return {e.layer + ".transformer.placement", "pre_norm"};
  }
  ConfigChange operator()(const ResidualScaleEdit& e) const {
    return {e.layer + ".residual.scale", json_number(e.scale)};
  }
};

}  // namespace

ConfigChange spell_edit(const ConfigEdit& edit) { return std::visit(Speller{}, edit); }

std::vector<ConfigChange> spell_edits(const std::vector<ConfigEdit>& edits) {
  std::vector<ConfigChange> out;
  out.reserve(edits.size());
  for (const ConfigEdit& e : edits) out.push_back(spell_edit(e));
  return out;
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

void apply_edit(const ConfigEdit& edit, RunSpec& spec) { std::visit(Applier{spec}, edit); }

RunSpec apply_edits(RunSpec spec, const std::vector<ConfigEdit>& edits) {
  for (const ConfigEdit& e : edits) apply_edit(e, spec);
  return spec;
}

}  // namespace gradscope
