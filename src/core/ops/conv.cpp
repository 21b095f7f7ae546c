// The conv op: h = conv(inp, W) + b (W standardised first with weight standardisation), y = phi(h)
// forward (conv_kernels.hpp's im2col products, the
// activation and its statistics as the dense op has them); backward the activation's delta, then
// the weight and bias gradients' norms and the first optimizer step from dW in double, and
// dinp = conv^T(delta).
#include <cmath>
#include <vector>

#include "core/ops/activation_op.hpp"
#include "core/ops/conv_kernels.hpp"
#include "core/ops/op.hpp"
#include "core/ops/weight_grad.hpp"
#include "core/tasks.hpp"
#include "gradscope/core/norm.hpp"

namespace gradscope::ops {

ConvShape conv_shape(const ConvSpec& c) {
  ConvShape s;
  s.C_in = c.in.channels;
  s.H = c.in.height;
  s.W = c.in.width;
  s.C_out = c.channels;
  s.kernel_h = c.kernel_h;
  s.kernel_w = c.kernel_w;
  s.stride_h = c.stride_h;
  s.stride_w = c.stride_w;
  s.pad_h = c.pad_h;
  s.pad_w = c.pad_w;
  s.dilation_h = c.dilation_h;
  s.dilation_w = c.dilation_w;
  s.groups = c.groups;
  return s;
}

namespace {

// Weight standardisation per output channel is a layer norm of each column of W^T (fan_in,
// C_out), without its affine: the norm kernels' forward and backward, in double.
struct Standardized {
  Eigen::MatrixXd xhat;  // (W - mean) / sqrt(var + eps), transposed: (fan_in, C_out)
  Eigen::VectorXd rstd;  // (C_out)
  double scale = 1.0;    // ws_gain / sqrt(fan_in)
};

NormSpec ws_norm(const ConvSpec& c) { return NormSpec{NormKind::kLayerNorm, c.ws_eps}; }

template <class Scalar>
Standardized standardize(const ConvSpec& c, const Mat<Scalar>& w) {
  Standardized s;
  const Eigen::MatrixXd wt = w.transpose().template cast<double>();
  s.xhat.resize(wt.rows(), wt.cols());
  s.rstd.resize(wt.cols());
  norm_forward<double>(ws_norm(c), wt, s.xhat, s.rstd);
  s.scale = c.ws_gain / std::sqrt(static_cast<double>(w.cols()));
  return s;
}

}  // namespace

template <class Scalar>
Mat<Scalar> conv_applied_weight(const ConvSpec& c, const Mat<Scalar>& w) {
  if (!c.weight_standardization) return w;
  const Standardized s = standardize(c, w);
  return (s.scale * s.xhat.transpose()).template cast<Scalar>();
}

template <class Scalar>
void conv_weight_gradient(const ConvSpec& c, const Mat<Scalar>& w, Mat<double>& dw) {
  if (!c.weight_standardization) return;
  // dL/dW = J^T dL/dW-hat: the layer norm's backward on each output channel's row, scaled.
  const Standardized s = standardize(c, w);
  const Eigen::MatrixXd g_hat = s.scale * dw.transpose();  // dL/dx-hat, (fan_in, C_out)
  Eigen::MatrixXd dwt(g_hat.rows(), g_hat.cols());
  norm_backward<double>(ws_norm(c), s.xhat, s.rstd, g_hat, dwt);
  dw = dwt.transpose();
}

ConvSpec projection_ws_spec(const ResidualSpec& r) {
  ConvSpec c;
  c.weight_standardization = r.projection_ws;
  c.ws_gain = r.projection_ws_gain;
  c.ws_eps = r.projection_ws_eps;
  return c;
}

template <class Scalar>
void conv_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats) {
  const ConvShape shape = conv_shape(a.op.conv);
  const bool ws = a.op.conv.weight_standardization;
  const Mat<Scalar> standardized = ws ? conv_applied_weight(a.op.conv, a.weight) : Mat<Scalar>();
  Mat<Scalar> h;  // (C_out H_out W_out, batch)
  conv2d_forward<Scalar>(a.inp, ws ? standardized : a.weight, a.bias, shape, h, a.pool);
  activation_rows_forward<Scalar>(
      a, a.op.conv.activation,
      [&](Range r, Mat<Scalar>& block) { block = h.middleRows(r.begin, r.size); }, cache, stats);
}

template <class Scalar>
GradPartial conv_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                          const BackwardReport& report) {
  const ConvShape shape = conv_shape(a.op.conv);
  Mat<Scalar>& g = grad.g;  // dL/dy, then delta = dL/dh, (C_out H_out W_out, batch) / 2^exp2
  activation_rows_backward(a, a.op.conv.activation, g, grad.exp2, report);
  const std::int64_t exp2 = grad.exp2;
  BackwardStats& bs = *report.stats;

  // dW = sum over examples and positions of delta x^T, in double: the scaled delta is near rms 1,
  // and the input, whatever its range, stays inside double's where float32 products may not.
  const Mat<double> gd = g.template cast<double>();
  const Mat<double> xd = a.inp.template cast<double>();
  Mat<double> dw;
  Vec<double> db;
  conv2d_backward_weight<double>(xd, gd, shape, dw, db, a.pool);
  const bool ws = a.op.conv.weight_standardization;
  conv_weight_gradient(a.op.conv, a.weight, dw);
  WeightGradient wg;
  wg.squares.add(dw.data(), dw.size());
  if (a.optimizer.kind == OptimizerKind::kAdam) {
    // First Adam step: m-hat = g, v-hat = g^2, so the step is lr * g / (|g| + eps).
    const double eps_scaled = adam_eps_at(a.optimizer.eps, exp2);
    for (Eigen::Index i = 0; i < dw.size(); ++i) {
      const double v = dw.data()[i];
      const double u = v / (std::abs(v) + eps_scaled);
      if (std::isfinite(u)) wg.adam += u * u;
    }
  }
  fill_weight_stats(wg, exp2, a.weight_norm, a.optimizer, bs);
  if (a.bias.size() > 0) {
    fill_param_norm(Eigen::VectorXd(db), exp2, bs.grad_bias_norm, bs.grad_bias_nonfinite);
  } else {
    bs.grad_bias_norm = Magnitude{kNaN, kNaN};
    bs.grad_bias_nonfinite = 0;
  }
  if (report.dweight != nullptr) {
    const double unit = std::ldexp(1.0, static_cast<int>(exp2));
    *report.dweight = dw * unit;
    *report.dbias = a.bias.size() > 0 ? Eigen::VectorXd(db * unit) : Eigen::VectorXd();
  }

  // dinp = conv^T(delta); its statistics a block of rows a task.
  Mat<Scalar> dinp;
  GradPartial dinp_stats;
  if (a.need_dinp) {
    conv2d_backward_data<Scalar>(g, ws ? conv_applied_weight(a.op.conv, a.weight) : a.weight, shape,
                                 dinp, a.pool);
    const Eigen::Index n_in = dinp.rows();
    std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
    a.pool.run(row_tasks(n_in), [&](std::int64_t t) {
      const Range r = task_rows(t, n_in);
      accumulate_gradient_block<Scalar>(dinp.middleRows(r.begin, r.size),
                                        parts[static_cast<std::size_t>(t)]);
    });
    dinp_stats = merge_parts(parts);
  } else {
    dinp = Mat<Scalar>::Zero(a.inp.rows(), a.inp.cols());
  }
  grad.g = std::move(dinp);
  return dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                              \
  template Mat<Scalar> conv_applied_weight<Scalar>(const ConvSpec&, const Mat<Scalar>&);           \
  template void conv_weight_gradient<Scalar>(const ConvSpec&, const Mat<Scalar>&, Mat<double>&);   \
  template void conv_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*); \
  template GradPartial conv_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&,     \
                                             const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
