// RunSpec -> the resolved config: every field with its value, defaults filled in, parameters the
// chosen activation or init ignores left out, in the documented key order.
#include <array>
#include <cstddef>
#include <string_view>

#include "gradscope/core/error.hpp"
#include "io/config_detail.hpp"

namespace gradscope {
namespace {

using namespace config_detail;

Json activation_json(const ActivationSpec& spec) {
  const ActivationInfo& info = activation_info(spec.kind);
  if (info.param_name.empty()) return Json(std::string(info.name));
  Json j = Json::object();
  j["name"] = std::string(info.name);
  j[std::string(info.param_name)] = spec.param;
  return j;
}

Json init_json(const InitSpec& spec) {
  const InitInfo& info = init_info(spec.kind);
  Json j = Json::object();
  j["name"] = std::string(info.name);
  for (std::string_view param : init_params(info)) {
    const std::string key(param);
    if (key == "gain") {
      j[key] = spec.gain;
    } else if (key == "std") {
      j[key] = spec.std;
    } else if (key == "limit") {
      j[key] = spec.limit;
    } else if (key == "weight_var") {
      j[key] = spec.weight_var;
    } else if (key == "mode") {
      j[key] = std::string(kFanModeNames[static_cast<std::size_t>(spec.mode)]);
    } else {
      throw Error("init parameter " + quote(key) + " has no writer in config_write.cpp", {},
                  ExitCode::kInternal);
    }
  }
  return j;
}

Json bias_json(const BiasInitSpec& spec) {
  const BiasInitInfo& info = bias_info(spec.kind);
  Json j = Json::object();
  j["name"] = std::string(info.name);
  for (std::string_view param : param_names(info.params)) {
    const std::string key(param);
    if (key == "value") {
      j[key] = spec.value;
    } else if (key == "std") {
      j[key] = spec.std;
    } else {
      throw Error("bias_init parameter " + quote(key) + " has no writer in config_write.cpp", {},
                  ExitCode::kInternal);
    }
  }
  return j;
}

void put_layer(Json& j, const LayerSpec& layer) {
  j["width"] = layer.width;
  j["activation"] = activation_json(layer.activation);
  j["init"] = init_json(layer.init);
  j["bias_init"] = bias_json(layer.bias);
}

Json norm_json(const NormSpec& spec) {
  Json j = Json::object();
  j["name"] = std::string(norm_name(spec.kind));
  j["eps"] = spec.eps;
  return j;
}

// Every projection's init, by name, so that the resolved config states each one.
template <std::size_t N>
Json projection_inits_json(const std::array<std::string_view, N>& names,
                           const std::array<InitSpec, N>& inits) {
  Json j = Json::object();
  for (std::size_t i = 0; i < N; ++i) j[std::string(names[i])] = init_json(inits[i]);
  return j;
}

Json attention_json(const AttentionSpec& a) {
  Json j = Json::object();
  j["heads"] = a.heads;
  j["causal"] = a.causal;
  if (a.scale_kind == AttentionScaleKind::kConstant) {
    j["scale"] = a.scale;
  } else {
    j["scale"] = std::string(kAttentionScaleNames[static_cast<std::size_t>(a.scale_kind)]);
  }
  j["bias"] = a.bias;
  j["output_projection"] = a.output_projection;
  j["init"] = projection_inits_json(kAttentionProjections, a.init);
  return j;
}

Json glu_json(const GluSpec& g) {
  Json j = Json::object();
  j["hidden"] = g.hidden;
  j["activation"] = activation_json(g.activation);
  j["bias"] = g.bias;
  j["init"] = projection_inits_json(kGluProjections, g.init);
  return j;
}

// A window's size: one number when both sides agree, else [height, width].
Json pair_json(int h, int w) { return h == w ? Json(h) : Json::array({h, w}); }

Json conv_json(const ConvSpec& c) {
  Json j = Json::object();
  j["channels"] = c.channels;
  j["kernel"] = pair_json(c.kernel_h, c.kernel_w);
  j["stride"] = pair_json(c.stride_h, c.stride_w);
  j["padding"] = pair_json(c.pad_h, c.pad_w);
  j["dilation"] = pair_json(c.dilation_h, c.dilation_w);
  j["groups"] = c.groups;
  j["bias"] = c.bias;
  return j;
}

Json pool_json(const PoolSpec& p) {
  Json j = Json::object();
  j["kind"] = std::string(pool_kind_name(p.kind));
  if (p.kind == PoolKind::kGlobalAverage) return j;
  j["kernel"] = pair_json(p.kernel_h, p.kernel_w);
  j["stride"] = pair_json(p.stride_h, p.stride_w);
  j["padding"] = pair_json(p.pad_h, p.pad_w);
  return j;
}

Json item_json(const LayerItem& item) {
  Json j = Json::object();
  if (!item.block.empty()) {
    j["repeat"] = item.repeat;
    if (item.residual) {
      Json residual = Json::object();
      residual["scale"] = item.residual->scale;
      // Only when set, so that the configs written before skip existed read the same.
      if (item.residual->skip != 1.0) residual["skip"] = item.residual->skip;
      if (item.residual->conv_projection()) {
        // The learned 1x1 convolution of an image stream: its init and its norm (false: none).
        Json projection = Json::object();
        projection["init"] = init_json(item.residual->projection_init);
        projection["norm"] = item.residual->projection_norm
                                 ? norm_json(*item.residual->projection_norm)
                                 : Json(false);
        residual["projection"] = std::move(projection);
      } else {
        residual["projection"] =
            item.residual->projection ? init_json(item.residual->projection_init) : Json(false);
      }
      residual["placement"] = std::string(kPlacementNames[item.post_norm ? 1 : 0]);
      if (item.post_norm) residual["norm"] = norm_json(*item.post_norm);
      j["residual"] = std::move(residual);
    } else {
      j["residual"] = false;
    }
    Json block = Json::array();
    for (const LayerItem& inner : item.block) block.push_back(item_json(inner));
    j["block"] = std::move(block);
    return j;
  }
  switch (item.op.kind) {
    case OpKind::kDense:
      put_layer(j, item.op.dense);
      return j;
    case OpKind::kNorm:
      j["norm"] = norm_json(item.op.norm);
      return j;
    case OpKind::kActivation:
      j["activation"] = activation_json(item.op.activation);
      return j;
    case OpKind::kDropout:
      j["dropout"] = item.op.dropout;
      return j;
    case OpKind::kAttention:
      j["attention"] = attention_json(item.op.attention);
      return j;
    case OpKind::kGlu:
      j["glu"] = glu_json(item.op.glu);
      return j;
    case OpKind::kConv:
      j["conv"] = conv_json(item.op.conv);
      j["activation"] = activation_json(item.op.conv.activation);
      j["init"] = init_json(item.op.conv.init);
      // Without a bias the reader refuses a bias_init.
      if (item.op.conv.bias) j["bias_init"] = bias_json(item.op.conv.bias_init);
      return j;
    case OpKind::kPool:
      j["pool"] = pool_json(item.op.pool);
      return j;
    case OpKind::kFlatten:
      j["flatten"] = Json::object();
      return j;
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      break;
  }
  throw Error("a layers item holds a " + std::string(op_kind_name(item.op.kind)) +
                  " op, which only expand_ops makes",
              {}, ExitCode::kInternal);
}

Json loss_json(const LossSpec& spec) {
  if (spec.kind != LossKind::kSoftmaxCrossEntropy) return Json(std::string(loss_name(spec.kind)));
  Json j = Json::object();
  j["name"] = std::string(loss_name(spec.kind));
  j["classes"] = spec.classes;
  return j;
}

Json optimizer_json(const OptimizerSpec& spec) {
  if (spec.kind == OptimizerKind::kNone) return Json(std::string(optimizer_name(spec.kind)));
  Json j = Json::object();
  j["name"] = std::string(optimizer_name(spec.kind));
  for (std::string_view param : optimizer_params(spec.kind)) {
    const std::string key(param);
    if (key == "learning_rate") {
      j[key] = spec.learning_rate;
    } else if (key == "momentum") {
      j[key] = spec.momentum;
    } else if (key == "beta1") {
      j[key] = spec.beta1;
    } else if (key == "beta2") {
      j[key] = spec.beta2;
    } else if (key == "eps") {
      j[key] = spec.eps;
    } else {
      throw Error("optimizer parameter " + quote(key) + " has no writer in config_write.cpp", {},
                  ExitCode::kInternal);
    }
  }
  return j;
}

}  // namespace

std::string run_spec_to_json(const RunSpec& spec, int indent) {
  Json j = Json::object();
  j["name"] = spec.name;
  j["seed"] = spec.seed;
  j["precision"] = std::string(precision_name(spec.precision));

  Json input = Json::object();
  // An image's three sizes, its "width" the image's; a vector's features as "width".
  if (spec.input.image.is_image()) {
    input["channels"] = spec.input.image.channels;
    input["height"] = spec.input.image.height;
    input["width"] = spec.input.image.width;
  } else {
    input["width"] = spec.input.width;
  }
  input["batch"] = spec.input.batch;
  // Only for sequences, so that the configs of batches of vectors read as before.
  if (spec.input.tokens != 1) input["tokens"] = spec.input.tokens;
  input["distribution"] = std::string(input_distribution_name(spec.input.distribution));
  if (spec.input.distribution == InputDistribution::kNormal) {
    input["mean"] = spec.input.mean;
    input["std"] = spec.input.std;
  } else {
    input["low"] = spec.input.low;
    input["high"] = spec.input.high;
  }
  j["input"] = std::move(input);

  if (!spec.layers.empty()) {
    Json layers = Json::array();
    for (const LayerItem& item : spec.layers) layers.push_back(item_json(item));
    j["layers"] = std::move(layers);
  } else {
    Json stack = Json::object();
    stack["depth"] = spec.stack.depth;
    put_layer(stack, spec.stack.layer);
    j["stack"] = std::move(stack);

    if (spec.output) {
      Json output = Json::object();
      put_layer(output, *spec.output);
      j["output"] = std::move(output);
    }
  }
  j["loss"] = loss_json(spec.loss);
  j["optimizer"] = optimizer_json(spec.optimizer);

  Json stats = Json::object();
  stats["saturation_threshold"] = spec.stats.saturation_threshold;
  if (spec.stats.jacobian_examples > 0) stats["jacobian_examples"] = spec.stats.jacobian_examples;
  j["stats"] = std::move(stats);

  Json diagnosis = Json::object();
  for (const DiagnosisThreshold& k : diagnosis_thresholds()) {
    diagnosis[std::string(k.key)] = spec.diagnosis.*k.member;
  }
  diagnosis["deep_layers"] = spec.diagnosis.deep_layers;
  j["diagnosis"] = std::move(diagnosis);
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace gradscope
