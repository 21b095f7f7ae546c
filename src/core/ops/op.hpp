// An op of the network as a forward/backward pair with an explicit cache (as llm.c writes
// layernorm_forward / layernorm_backward), behind one table keyed by OpKind that the pass runner
// iterates: a new op (attention, convolution) is a new file under src/core/ops/ and a table row.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>

#include "core/layer_stats.hpp"
#include "core/ops/weight_grad.hpp"
#include "core/scaled_grad.hpp"
#include "gradscope/core/network.hpp"

namespace gradscope::ops {

// Every OpKind, for the tables' static_asserts: a kind added to spec.hpp must be added here.
inline constexpr int kOpKindCount = static_cast<int>(OpKind::kFlatten) + 1;

// What an op's backward pass reads besides its input: kept from the forward pass, or computed
// again from a checkpoint. Empty where the op does not need it.
template <class Scalar>
struct OpCache {
  Mat<Scalar> out;       // y, (width, batch); also the next op's input
  Mat<Scalar> slope;     // phi'(h), (width, batch): activations whose y does not determine it
  Eigen::VectorXd rstd;  // a norm's 1/std: (width) for batch_norm, (batch) for the others
  Mat<Scalar> inner;  // attention: [q; k; v; o] (4d, batch); GLU: [phi(h1); h3] (2 hidden, batch)
  Mat<Scalar> probs;  // attention: P per (example, head), (T, T * examples * heads)
};

template <class Scalar>
struct ForwardArgs {
  const OpSpec& op;
  std::size_t index;          // the op's place, from 0; its random streams are numbered index + 1
  std::uint64_t seed;         // the pass's seed (dropout masks)
  const Mat<Scalar>& inp;     // (n_in, batch)
  const Mat<Scalar>* skip;    // residual end: the skip path's value, (skip width, batch); else null
  const Mat<Scalar>& weight;  // dense: W (width, n_in); projected residual end: P (width, skip
                              // width); else empty
  const Vec<Scalar>& bias;    // dense: b (width); attention, GLU: their biases; else empty
  Eigen::Index tokens;        // tokens per example: columns b * tokens .. b * tokens + tokens - 1
  bool keep;                  // also keep what the backward pass reads (slope, rstd)
  double saturation_threshold;  // fraction of the activation's largest slope
  ThreadPool& pool;
};

template <class Scalar>
struct BackwardArgs {
  const OpSpec& op;
  std::size_t index;
  std::uint64_t seed;
  const Mat<Scalar>& inp;          // (n_in, batch), as the forward pass saw it
  const ValueRange& inp_range;     // its range: which weight-gradient form is exact (dense)
  const OpCache<Scalar>& cache;    // what the forward pass kept (cache.out: (width, batch))
  const ForwardStats& forward;     // the op's forward statistics (its non-finite outputs)
  const Mat<Scalar>& weight;       // as in ForwardArgs
  const Vec<Scalar>& bias;         // as in ForwardArgs
  Eigen::Index tokens;             // as in ForwardArgs
  double weight_norm;              // dense: ||W||_F
  bool need_dinp;                  // false: nothing reads dL/d(inp) (a dense first op)
  const OptimizerSpec& optimizer;  // dense: the first step's update-to-weight ratio
  ThreadPool& pool;
};

// Where an op's backward statistics go; null pointers are not written.
struct BackwardReport {
  BackwardStats* stats = nullptr;      // the op's own (a residual begin: the op it completes)
  Eigen::MatrixXd* dpreact = nullptr;  // kept gradients: the gradient `stats` describe, unscaled
  Eigen::MatrixXd* dweight = nullptr;  // kept gradients, dense: dL/dW, (width, n_in)
  Eigen::VectorXd* dbias = nullptr;    // kept gradients, dense: dL/db, (width)
  double* inp_correlation = nullptr;   // dense owning its input's correlation (gram_owner)
  // Dense: dweight from the product in the network's precision (g x^T on the scaled gradient,
  // then unscaled), not in double: what training needs, at the cost of a float product.
  bool dweight_in_precision = false;
};

// Computes cache.out, which arrives sized (width, batch), and when a.keep what the backward pass
// reads; gathers the op's forward statistics into stats unless it is null (a recomputation).
template <class Scalar>
using ForwardFn = void (*)(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache,
                           ForwardStats* stats);
// Turns grad.g = dL/d(out) / 2^grad.exp2 into dL/d(inp) / 2^grad.exp2 (an op may change exp2 on
// the way, and a residual end or begin pushes or pops grad.skips) and returns the statistics of
// dL/d(inp); the runner then rescales it.
template <class Scalar>
using BackwardFn = GradPartial (*)(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                   const BackwardReport& report);

struct OpInfo {
  OpKind kind;
  bool marker;           // no output of its own and not reported (a residual begin)
  bool has_params;       // BackwardStats::has_weights: dense (W, b), norms (gamma, beta)
  bool input_grad_stat;  // its grad_preact statistic is dL/d(its input)
};
const OpInfo& op_info(OpKind kind);

template <class Scalar>
struct OpKernels {
  OpKind kind;
  ForwardFn<Scalar> forward;
  BackwardFn<Scalar> backward;
};
template <class Scalar>
const OpKernels<Scalar>& op_kernels(OpKind kind);

// ---- The ops, one file each.

// dense.cpp: h = W inp + b (width, batch), y = phi(h).
template <class Scalar>
void dense_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial dense_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                           const BackwardReport& report);

// activation_op.cpp: y = phi(inp).
template <class Scalar>
void activation_op_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache,
                           ForwardStats* stats);
template <class Scalar>
GradPartial activation_op_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                   const BackwardReport& report);

// norm_op.cpp: y = norm(inp), gamma = 1 and beta = 0; caches rstd.
template <class Scalar>
void norm_op_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial norm_op_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report);

// dropout.cpp: y = mask * inp / (1 - p), the mask drawn again (not cached) in the backward pass.
template <class Scalar>
void dropout_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial dropout_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report);

// residual.cpp: the begin marks the skip's start (no output); the end is y = P skip + scale inp.
template <class Scalar>
void residual_begin_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache,
                            ForwardStats* stats);
template <class Scalar>
GradPartial residual_begin_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                    const BackwardReport& report);
template <class Scalar>
void residual_end_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache,
                          ForwardStats* stats);
template <class Scalar>
GradPartial residual_end_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                  const BackwardReport& report);

// attention.cpp: multi-head self-attention over each example's tokens (spec.hpp's AttentionSpec).
// The weight is [Wq; Wk; Wv; Wo] stacked by rows, (4d, d) ((3d, d) without Wo); the bias
// [bq; bk; bv; bo] when the spec has biases, else empty.
template <class Scalar>
void attention_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial attention_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                               const BackwardReport& report);

// glu.cpp: y = W2 (phi(W1 x + b1) * (W3 x + b3)) + b2. The weight is [W1; W3; W2^T] stacked by
// rows, (3 hidden, d); the bias [b1; b3; b2] when the spec has biases, else empty.
template <class Scalar>
void glu_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial glu_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                         const BackwardReport& report);

// conv.cpp: h = conv(inp, W) + b (conv_kernels.hpp), y = phi(h). The weight is (channels, C_in /
// groups kernel_h kernel_w), the bias (channels) or empty.
template <class Scalar>
void conv_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
// The weight the convolution applies: W, or W-hat with weight standardisation (ConvSpec).
template <class Scalar>
Mat<Scalar> conv_applied_weight(const ConvSpec& c, const Mat<Scalar>& w);
// dL/dW from dw = dL/dW-hat (C_out, fan_in) in place, through the standardisation of w.
template <class Scalar>
void conv_weight_gradient(const ConvSpec& c, const Mat<Scalar>& w, Mat<double>& dw);
// The weight standardisation of a residual end's learned projection, as a ConvSpec's fields.
ConvSpec projection_ws_spec(const ResidualSpec& r);
template <class Scalar>
GradPartial conv_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                          const BackwardReport& report);

// pool.cpp: max, average or global average pooling per channel; and flatten, y = inp.
template <class Scalar>
void pool_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial pool_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                          const BackwardReport& report);
template <class Scalar>
void flatten_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats);
template <class Scalar>
GradPartial flatten_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report);

}  // namespace gradscope::ops
