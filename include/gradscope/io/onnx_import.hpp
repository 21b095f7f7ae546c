// An ONNX graph as torch.onnx.export writes it (an MLP, a GPT-style decoder, or a convolutional
// network on images) as a run: the architecture in the `layers` form and the exported weights,
// ready for run_diagnostic's ExternalData.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/engine/engine.hpp"

namespace gradscope {

struct OnnxModel {
  RunSpec spec;          // spec.layers describes the graph; spec.input.width is the graph's
  ExternalData weights;  // weight and bias per op of expand_ops(spec); input and targets empty
  std::vector<TensorAssignment> assignments;  // which initializer went to which op
};

// Reads `path` and walks its graph from the single input to the single output. Supported:
// Gemm (alpha = beta = 1, transA = 0, transB 0 or 1), MatMul (+ Add of a bias), Relu, LeakyRelu,
// Elu, Selu (torch's constants), Sigmoid, Tanh, Softplus, Clip(-1, 1) (hard_tanh), GELU in its
// Erf form (Div, Erf, Add, Mul, Mul), Softmax (last op, last axis), BatchNormalization and
// LayerNormalization with their scale and bias (the op's weight is gamma as an (n, 1) matrix,
// its bias beta; both empty when gamma = 1 and beta = 0; gradscope normalises in training mode:
// running statistics are ignored), Add of an earlier tensor of the same width as a residual,
// Dropout (ratio -> rate) and Identity. Self-attention as torch exports nanoGPT's
// CausalSelfAttention (fused c_attn MatMul + Add, Split, Reshape/Transpose to heads, MatMul(q,
// k^T), a constant Mul or Div, a causal mask as Where with -inf or an additive Add, Softmax,
// MatMul with v, Transpose, Reshape, c_proj MatMul + Add) is one attention op: heads from the
// Reshape, causal when the mask is exactly lower-triangular (no mask: not causal), the scale
// 1/sqrt(d_head), 1/d_head or a constant, weights [Wq; Wk; Wv; Wo] (4d, d) and bias
// [bq; bk; bv; bo]. An input of shape (batch, tokens, features) sets input.tokens. On an input of
// shape (batch, C, H, W), which sets input.image: Conv (2-D, symmetric pads; its weight
// (C_out, C_in / group, kh, kw) as the conv op's (C_out, C_in / group kh kw) matrix), a
// BatchNormalization per channel (scale 1 and bias 0 only), MaxPool, AveragePool (a Pad before it
// as its padding), GlobalAveragePool, ReduceMean over axes (2, 3), Flatten from axis 1 (or a
// Reshape to (batch, C H W), as x.view exports), and residual Adds of images, whose skip path may
// be a 1x1 Conv without bias and a BatchNormalization (torchvision's downsample: the residual's
// learned projection, its weight (C_out, C_in) the end op's). An activation that
// directly follows the only use of a dense or conv layer's output becomes that layer's activation.
// `defaults` supplies name, seed, precision, loss and the input batch and distribution; the
// batch is always taken from `defaults` (ONNX's batch dimension is often symbolic).
// Throws Error (exit code 2) naming the node and listing what is supported for an unsupported
// op (and naming the attribute for what gradscope cannot compute: asymmetric pads, auto_pad,
// ceil_mode, dilated pooling, count_include_pad = 0 with padding), and for a cycle, a missing
// initializer, non-finite weights, or more than one graph input or output. Every malformed graph (a
// node without its inputs or outputs, a tensor whose dimensions are negative or overflow, an
// attribute of the wrong type) and every model that breaks a rule a config must keep
// (find_spec_problem in validate.hpp: widths >= 1, finite activation parameters, norm eps > 0, ...)
// is an Error naming the node, never a crash.
OnnxModel read_onnx(const std::string& path, const RunSpec& defaults);

// The same from the bytes of an ONNX file; `source` names it in messages (for tests and fuzzing).
OnnxModel parse_onnx(std::string_view bytes, const std::string& source, const RunSpec& defaults);

}  // namespace gradscope
