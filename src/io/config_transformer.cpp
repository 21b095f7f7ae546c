// The transformer shorthand's expansion into ordinary items (attention, GLU, dense, norm and
// residual blocks), with the depth scalings' constants resolved into skips, scales and init gains.
#include <cmath>
#include <utility>

#include "io/config_detail.hpp"

namespace gradscope::config_detail {

ScalingConstants scaling_constants(TransformerScaling scaling, int blocks) {
  const double n = static_cast<double>(blocks);
  ScalingConstants c;
  switch (scaling) {
    case TransformerScaling::kNone:
      break;
    case TransformerScaling::kGpt2: {
      // GPT-2 (Radford et al. 2019): the projections into the residual stream scaled by
      // 1/sqrt(number of residual layers), 2N.
      const double s = 1.0 / std::sqrt(2.0 * n);
      c.output = s;
      c.down = s;
      break;
    }
    case TransformerScaling::kDeepNorm: {
      // DeepNet (Wang et al. 2022), decoder-only: alpha = (2N)^(1/4), beta = (8N)^(-1/4) on the
      // value, output and MLP projections; query and key keep their init.
      const double beta = std::pow(8.0 * n, -0.25);
      c.skip = std::pow(2.0 * n, 0.25);
      c.value = beta;
      c.output = beta;
      c.up = beta;
      c.down = beta;
      break;
    }
    case TransformerScaling::kSubLn: {
      // Magneto (Wang et al. 2023): gamma = sqrt(ln(2N)) on the value, output and MLP weights.
      const double gamma = std::sqrt(std::log(2.0 * n));
      c.value = gamma;
      c.output = gamma;
      c.up = gamma;
      c.down = gamma;
      break;
    }
    case TransformerScaling::kTFixup: {
      // T-Fixup (Huang et al. 2020), decoder: (9N)^(-1/4) on the value, output and MLP weights,
      // and no norms.
      const double s = std::pow(9.0 * n, -0.25);
      c.value = s;
      c.output = s;
      c.up = s;
      c.down = s;
      c.norms = false;
      break;
    }
    case TransformerScaling::kReZero:
      // ReZero (Bachlechner et al. 2021): every branch starts at weight 0, and no norms.
      c.residual_scale = 0.0;
      c.norms = false;
      break;
  }
  return c;
}

namespace {

InitSpec scaled(InitSpec init, double factor) {
  init.gain *= factor;
  return init;
}

LayerItem op_item(OpSpec op, const std::string& path) {
  LayerItem item;
  item.op = std::move(op);
  item.path = path;
  return item;
}

LayerItem norm_item(const TransformerShorthand& t) {
  OpSpec op;
  op.kind = OpKind::kNorm;
  op.norm = t.norm;
  return op_item(op, t.path);
}

// A dense item of width n; its bias follows its init as in a written dense item.
LayerItem dense_item(int width, const ActivationSpec& activation, const InitSpec& init,
                     const std::string& path) {
  OpSpec op;
  op.kind = OpKind::kDense;
  op.dense.width = width;
  op.dense.activation = activation;
  op.dense.init = init;
  op.dense.bias = BiasInitSpec{};
  if (init.kind == Init::kTorchDefault) op.dense.bias.kind = BiasInit::kTorchDefault;
  return op_item(op, path);
}

LayerItem residual_block(const TransformerShorthand& t, const ScalingConstants& c,
                         std::vector<LayerItem> block) {
  LayerItem item;
  item.block = std::move(block);
  ResidualSpec residual;
  residual.scale = c.residual_scale;
  residual.skip = c.skip;
  item.residual = residual;
  if (t.post_norm) item.post_norm = t.norm;
  item.path = t.path;
  return item;
}

}  // namespace

std::vector<LayerItem> expand_transformer(const TransformerShorthand& t) {
  const ScalingConstants c = scaling_constants(t.scaling, t.blocks);
  const bool subln = t.scaling == TransformerScaling::kSubLn;
  const bool pre_norms = c.norms && !t.post_norm;
  const ActivationSpec linear = default_spec(Activation::kLinear);

  std::vector<LayerItem> attention_block;
  if (pre_norms) attention_block.push_back(norm_item(t));
  OpSpec attention;
  attention.kind = OpKind::kAttention;
  attention.attention.heads = t.heads;
  attention.attention.causal = t.causal;
  attention.attention.output_projection = !subln;
  attention.attention.init = {scaled(t.init, c.query), scaled(t.init, c.key),
                              scaled(t.init, c.value), scaled(t.init, c.output)};
  attention_block.push_back(op_item(attention, t.path));
  if (subln) {
    // Sub-LN: a norm before the output projection, which is a dense layer of its own.
    attention_block.push_back(norm_item(t));
    attention_block.push_back(dense_item(t.width, linear, scaled(t.init, c.output), t.path));
  }

  std::vector<LayerItem> mlp_block;
  if (pre_norms) mlp_block.push_back(norm_item(t));
  if (t.swiglu) {
    OpSpec glu;
    glu.kind = OpKind::kGlu;
    glu.glu.hidden = t.hidden;
    glu.glu.activation = default_spec(Activation::kSilu);
    glu.glu.init = {scaled(t.init, c.up), scaled(t.init, c.up), scaled(t.init, c.down)};
    mlp_block.push_back(op_item(glu, t.path));
  } else {
    mlp_block.push_back(dense_item(t.hidden, t.activation, scaled(t.init, c.up), t.path));
    if (subln) mlp_block.push_back(norm_item(t));
    mlp_block.push_back(dense_item(t.width, linear, scaled(t.init, c.down), t.path));
  }

  LayerItem blocks;
  blocks.repeat = t.blocks;
  blocks.block.push_back(residual_block(t, c, std::move(attention_block)));
  blocks.block.push_back(residual_block(t, c, std::move(mlp_block)));
  blocks.path = t.path;

  std::vector<LayerItem> items;
  items.push_back(std::move(blocks));
  if (pre_norms) items.push_back(norm_item(t));  // GPT's final ln_f
  return items;
}

}  // namespace gradscope::config_detail
