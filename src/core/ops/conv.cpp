// The conv op: h = conv(inp, W) + b, y = phi(h) forward (conv_kernels.hpp's im2col products, the
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

template <class Scalar>
void conv_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats) {
  const ConvShape shape = conv_shape(a.op.conv);
  Mat<Scalar> h;  // (C_out H_out W_out, batch)
  conv2d_forward<Scalar>(a.inp, a.weight, a.bias, shape, h, a.pool);
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
    conv2d_backward_data<Scalar>(g, a.weight, shape, dinp, a.pool);
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
  template void conv_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*); \
  template GradPartial conv_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&,     \
                                             const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
