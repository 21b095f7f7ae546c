// The residual ops: a begin marks where the skip path leaves (no output of its own); the end is
// y = skip P x_skip + scale * inp, P the identity, a fixed projection (vectors) or a learned 1x1
// convolution with its batch norm (images). Backward the end sends P^T g down the skip path
// (grad.skips) and the begin adds it back where the path left.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/ops/channels.hpp"
#include "core/ops/conv_kernels.hpp"
#include "core/ops/op.hpp"
#include "core/ops/param_stats.hpp"
#include "core/tasks.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/norm.hpp"

namespace gradscope::ops {

ConvShape projection_shape(const ResidualSpec& r, const ImageShape& out) {
  ConvShape s;
  s.C_in = r.skip_image.channels;
  s.H = r.skip_image.height;
  s.W = r.skip_image.width;
  s.C_out = out.channels;
  // validate refuses sizes the stride does not divide: then out = (in - 1) / stride + 1 exactly.
  s.stride_h = out.height > 0 ? r.skip_image.height / out.height : 1;
  s.stride_w = out.width > 0 ? r.skip_image.width / out.width : 1;
  return s;
}

namespace {

// The learned projection's forward: p = conv1x1(x_skip), then its batch norm per channel (rstd
// per channel). With `keep`, cache.inner holds [x_skip; p-hat] stacked by rows (p-hat only with a
// norm) and cache.rstd the norm's 1/std, what the backward pass reads.
template <class Scalar>
Mat<Scalar> conv_projection_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache) {
  const ResidualSpec& r = a.op.residual;
  const ConvShape shape = projection_shape(r, a.op.image);
  const Mat<Scalar>& skip = *a.skip;  // (C_in H W, batch)
  Mat<Scalar> p;                      // (C_out H' W', batch)
  conv2d_forward<Scalar>(skip, a.weight, Vec<Scalar>(), shape, p, a.pool);
  Eigen::VectorXd rstd;
  if (r.projection_norm) {
    const Eigen::Index channels = a.op.image.channels;
    Mat<Scalar> pc = to_channels(p, channels);  // (C_out, H' W' batch)
    rstd.resize(channels);
    a.pool.run(row_tasks(channels), [&](std::int64_t t) {
      const Range rows = task_rows(t, channels);
      norm_forward<Scalar>(*r.projection_norm, pc.middleRows(rows.begin, rows.size),
                           pc.middleRows(rows.begin, rows.size),
                           rstd.segment(rows.begin, rows.size));
    });
    from_channels(pc, p.cols(), p);
  }
  if (a.keep) {
    cache.inner.resize(skip.rows() + (r.projection_norm ? p.rows() : 0), skip.cols());
    cache.inner.topRows(skip.rows()) = skip;
    if (r.projection_norm) cache.inner.bottomRows(p.rows()) = p;
    cache.rstd = std::move(rstd);
  }
  return p;
}

}  // namespace

template <class Scalar>
void residual_begin_forward(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*) {}

// grad.g = dL/d(block input) from the branch joins the skip path's share; when the begin opens
// a norm, activation or dropout op's branch, that op's dL/d(input) is complete only now.
template <class Scalar>
GradPartial residual_begin_backward(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>& grad,
                                    const BackwardReport& report) {
  const Mat<Scalar>& skip = grad.skips.back().first;
  if (skip.rows() != grad.g.rows() || skip.cols() != grad.g.cols()) {
    throw contract_error("residual_begin_backward: the skip path's gradient is (" +
                         std::to_string(skip.rows()) + ", " + std::to_string(skip.cols()) +
                         "), the branch's (" + std::to_string(grad.g.rows()) + ", " +
                         std::to_string(grad.g.cols()) + ")");
  }
  add_scaled(grad.g, grad.exp2, grad.skips.back().first, grad.skips.back().second);
  grad.skips.pop_back();
  GradPartial gs;
  accumulate_gradient_block<Scalar>(grad.g, gs);
  if (report.stats != nullptr) fill_grad_stats(gs, grad.exp2, *report.stats);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(grad.g, grad.exp2);
  return gs;
}

// preact: the branch's output F(x) = inp; act: skip P x_skip + scale F(x).
template <class Scalar>
void residual_end_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const Mat<Scalar>& x = a.inp;     // the branch's output, (n, batch)
  const Mat<Scalar>& w = a.weight;  // fixed: P (n, skip width); learned: (C_out, C_in)
  Mat<Scalar>& y = cache.out;       // (n, batch)
  const Eigen::Index n = y.rows();
  const bool stats = fs != nullptr;
  const bool learned = a.op.residual.conv_projection();
  const bool fixed = a.op.residual.projection && !learned;
  const Mat<Scalar> projected = learned ? conv_projection_forward(a, cache) : Mat<Scalar>();
  const Mat<Scalar>& skip = learned ? projected : *a.skip;  // (n, batch) unless fixed
  const Scalar scale = static_cast<Scalar>(a.op.residual.scale);
  const Scalar skip_scale = static_cast<Scalar>(a.op.residual.skip);
  std::vector<ForwardPartial> parts(static_cast<std::size_t>(row_tasks(n)));
  a.pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    ForwardPartial& part = parts[static_cast<std::size_t>(t)];
    auto y_block = y.middleRows(r.begin, r.size);
    if (stats) accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
    if (fixed) {
      y_block.noalias() = w.middleRows(r.begin, r.size) * skip;
    } else {
      y_block = skip.middleRows(r.begin, r.size);
    }
    if (skip_scale != Scalar(1)) y_block *= skip_scale;
    y_block += scale * x.middleRows(r.begin, r.size);
    if (stats) accumulate_output_block<Scalar>(y_block, part);
  });
  if (stats) finish_output_stats(parts, n, y.cols(), *fs);
}

namespace {

// The learned projection's backward from dp = dL/d(its output) / 2^exp2 (n, batch): through the
// norm (dgamma, dbeta per channel), then dW = sum over examples and positions of dconv x_skip^T in
// double and dx_skip = conv1x1^T(dconv). Fills the op's per-tensor statistics
// ("projection.weight", "projection_norm.weight", "projection_norm.bias") and totals.
template <class Scalar>
Mat<Scalar> conv_projection_backward(const BackwardArgs<Scalar>& a, const Mat<Scalar>& dp,
                                     std::int64_t exp2, const BackwardReport& report) {
  const ResidualSpec& r = a.op.residual;
  const ConvShape shape = projection_shape(r, a.op.image);
  const Eigen::Index skip_rows = shape.in_rows();
  const auto skip = a.cache.inner.topRows(skip_rows);  // (C_in H W, batch)
  const Eigen::Index channels = shape.C_out;
  Mat<Scalar> dconv;  // dL/d(conv output) / 2^exp2, (C_out H' W', batch)
  Eigen::VectorXd dgamma = Eigen::VectorXd::Zero(channels);
  Eigen::VectorXd dbeta = Eigen::VectorXd::Zero(channels);
  if (r.projection_norm) {
    const Mat<Scalar> phat = a.cache.inner.bottomRows(shape.out_rows());
    const Mat<Scalar> yc = to_channels(phat, channels);  // (C_out, H' W' batch)
    const Mat<Scalar> gc = to_channels(dp, channels);
    Mat<Scalar> dc(yc.rows(), yc.cols());
    a.pool.run(row_tasks(channels), [&](std::int64_t t) {
      const Range rows = task_rows(t, channels);
      norm_param_grad_sums<Scalar>(*r.projection_norm, yc.middleRows(rows.begin, rows.size),
                                   gc.middleRows(rows.begin, rows.size),
                                   dgamma.segment(rows.begin, rows.size),
                                   dbeta.segment(rows.begin, rows.size));
      norm_backward<Scalar>(*r.projection_norm, yc.middleRows(rows.begin, rows.size),
                            a.cache.rstd.segment(rows.begin, rows.size),
                            gc.middleRows(rows.begin, rows.size),
                            dc.middleRows(rows.begin, rows.size));
    });
    from_channels(dc, dp.cols(), dconv);
  } else {
    dconv = dp;
  }
  // dW in double, as the conv op: the scaled gradient is near rms 1 and the input's range stays
  // inside double's where float32 products may not.
  const Mat<double> xd = skip.template cast<double>();
  const Mat<double> gd = dconv.template cast<double>();
  Mat<double> dw;  // (C_out, C_in)
  Vec<double> db;  // unused: the projection has no bias
  conv2d_backward_weight<double>(xd, gd, shape, dw, db, a.pool);

  ParamSums weights;
  ParamSums biases;
  std::vector<ParamStats> params;
  const auto c_out = std::int64_t{shape.C_out};
  params.push_back(param_stats<double>("projection.weight", {c_out, shape.C_in, 1, 1}, dw,
                                       a.weight.template cast<double>(), exp2, a.optimizer,
                                       weights));
  if (r.projection_norm) {
    // gamma = 1 and beta = 0, as every norm gradscope generates.
    const Mat<double> ones = Mat<double>::Ones(channels, 1);
    const Mat<double> zeros = Mat<double>::Zero(channels, 1);
    params.push_back(param_stats<double>("projection_norm.weight", {c_out}, dgamma, ones, exp2,
                                         a.optimizer, weights));
    if (norm_has_beta(r.projection_norm->kind)) {
      params.push_back(param_stats<double>("projection_norm.bias", {c_out}, dbeta, zeros, exp2,
                                           a.optimizer, biases));
    }
  }
  BackwardStats& bs = *report.stats;
  bs.has_weights = true;
  fill_total_param_stats(weights, biases,
                         r.projection_norm && norm_has_beta(r.projection_norm->kind), exp2,
                         a.optimizer, bs);
  bs.params = std::move(params);
  if (report.dweight != nullptr) {
    const double unit =
        std::ldexp(1.0, static_cast<int>(std::clamp<std::int64_t>(exp2, -2000, 2000)));
    *report.dweight = dw * unit;
    *report.dbias = Eigen::VectorXd();
  }
  Mat<Scalar> dskip;  // (C_in H W, batch)
  conv2d_backward_data<Scalar>(dconv, a.weight, shape, dskip, a.pool);
  return dskip;
}

}  // namespace

// y = skip P x_skip + scale F: the branch gets scale * g, the skip path P^T (skip g) (kept for
// its begin).
template <class Scalar>
GradPartial residual_end_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                  const BackwardReport& report) {
  const Mat<Scalar>& g = grad.g;  // dL/dy / 2^exp2, (n, batch)
  Mat<Scalar> dskip;              // (skip width, batch)
  if (a.op.residual.conv_projection()) {
    Mat<Scalar> dp = g;  // dL/d(projected skip) / 2^exp2
    if (a.op.residual.skip != 1.0) dp *= static_cast<Scalar>(a.op.residual.skip);
    dskip = conv_projection_backward(a, dp, grad.exp2, report);
  } else {
    if (a.op.residual.projection) {
      dskip.noalias() = a.weight.transpose() * g;
    } else {
      dskip = g;
    }
    if (a.op.residual.skip != 1.0) dskip *= static_cast<Scalar>(a.op.residual.skip);
  }
  grad.skips.emplace_back(std::move(dskip), grad.exp2);
  Mat<Scalar> dinp(a.inp.rows(), g.cols());  // dL/dF, (n, batch)
  dinp = static_cast<Scalar>(a.op.residual.scale) * g;
  GradPartial dinp_stats;
  accumulate_gradient_block<Scalar>(dinp, dinp_stats);
  fill_grad_stats(dinp_stats, grad.exp2, *report.stats);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, grad.exp2);
  grad.g = std::move(dinp);
  return dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                        \
  template void residual_begin_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&, \
                                               ForwardStats*);                               \
  template GradPartial residual_begin_backward<Scalar>(                                      \
      const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&, const BackwardReport&);              \
  template void residual_end_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&,   \
                                             ForwardStats*);                                 \
  template GradPartial residual_end_backward<Scalar>(const BackwardArgs<Scalar>&,            \
                                                     ScaledGrad<Scalar>&, const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
