// The norm op (batch, layer and RMS norm in training mode, gamma = 1, beta = 0): forward caches
// rstd; backward gives dinp and the norms of dgamma and dbeta. The kernels are in norm.cpp.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/channels.hpp"
#include "core/ops/op.hpp"
#include "core/tasks.hpp"
#include "gradscope/core/norm.hpp"

namespace gradscope::ops {

namespace {

// Batch norm reduces each unit over the batch: tasks of whole rows, each completing its own
// units' dgamma and dbeta. y, rstd: the forward's; g = dL/dy / 2^exp2 (n, batch).
template <class Scalar>
GradPartial batch_norm_backward(const NormSpec& norm, const Mat<Scalar>& y,
                                const Eigen::VectorXd& rstd, const Mat<Scalar>& g,
                                Mat<Scalar>& dinp, Eigen::VectorXd& dgamma, Eigen::VectorXd& dbeta,
                                ThreadPool& pool) {
  const Eigen::Index n_out = g.rows();
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_out)));
  pool.run(row_tasks(n_out), [&](std::int64_t t) {
    const Range r = task_rows(t, n_out);
    norm_param_grad_sums<Scalar>(norm, y.middleRows(r.begin, r.size), g.middleRows(r.begin, r.size),
                                 dgamma.segment(r.begin, r.size), dbeta.segment(r.begin, r.size));
    auto block = dinp.middleRows(r.begin, r.size);
    norm_backward<Scalar>(norm, y.middleRows(r.begin, r.size), rstd.segment(r.begin, r.size),
                          g.middleRows(r.begin, r.size), block);
    accumulate_gradient_block<Scalar>(block, parts[static_cast<std::size_t>(t)]);
  });
  return merge_parts(parts);
}

bool per_channel(const OpSpec& op) {
  return op.norm.kind == NormKind::kBatchNorm && op.image.is_image();
}

// Layer and RMS norm reduce each example over the units: tasks of whole columns, each summing
// dgamma and dbeta into its own vectors, added in task order; dinp's statistics by rows after.
template <class Scalar>
GradPartial per_example_norm_backward(const NormSpec& norm, const Mat<Scalar>& y,
                                      const Eigen::VectorXd& rstd, const Mat<Scalar>& g,
                                      Mat<Scalar>& dinp, Eigen::VectorXd& dgamma,
                                      Eigen::VectorXd& dbeta, ThreadPool& pool) {
  const Eigen::Index n_out = g.rows();
  const Eigen::Index batch = g.cols();
  const Eigen::Index n_in = dinp.rows();
  const std::int64_t tasks = tasks_for(batch, kColumnsPerTask);
  std::vector<Eigen::VectorXd> gammas(static_cast<std::size_t>(tasks),
                                      Eigen::VectorXd::Zero(n_out));
  std::vector<Eigen::VectorXd> betas(static_cast<std::size_t>(tasks), Eigen::VectorXd::Zero(n_out));
  pool.run(tasks, [&](std::int64_t t) {
    const Range c = task_range(t, batch, kColumnsPerTask);
    const auto k = static_cast<std::size_t>(t);
    norm_param_grad_sums<Scalar>(norm, y.middleCols(c.begin, c.size), g.middleCols(c.begin, c.size),
                                 gammas[k], betas[k]);
    norm_backward<Scalar>(norm, y.middleCols(c.begin, c.size), rstd.segment(c.begin, c.size),
                          g.middleCols(c.begin, c.size), dinp.middleCols(c.begin, c.size));
  });
  for (std::size_t k = 0; k < gammas.size(); ++k) {
    dgamma += gammas[k];
    dbeta += betas[k];
  }
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
  pool.run(row_tasks(n_in), [&](std::int64_t t) {
    const Range r = task_rows(t, n_in);
    accumulate_gradient_block<Scalar>(dinp.middleRows(r.begin, r.size),
                                      parts[static_cast<std::size_t>(t)]);
  });
  return merge_parts(parts);
}

}  // namespace

template <class Scalar>
void apply_affine(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs);

template <class Scalar>
void norm_op_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const Mat<Scalar>& x = a.inp;  // (n, batch)
  Mat<Scalar>& y = cache.out;    // (n, batch)
  const Eigen::Index n = y.rows();
  const Eigen::Index batch = y.cols();
  const bool stats = fs != nullptr;
  // 1/std is small, but kept only where the backward pass will read it.
  Eigen::VectorXd rstd_scratch;
  Eigen::VectorXd& rstd = a.keep ? cache.rstd : rstd_scratch;
  std::vector<ForwardPartial> parts;
  if (a.op.norm.kind != NormKind::kBatchNorm) {
    // Per-example norms reduce over the units of a column: tasks of whole columns.
    rstd.resize(batch);
    const std::int64_t tasks = tasks_for(batch, kColumnsPerTask);
    parts.resize(static_cast<std::size_t>(tasks));
    a.pool.run(tasks, [&](std::int64_t t) {
      const Range c = task_range(t, batch, kColumnsPerTask);
      ForwardPartial& part = parts[static_cast<std::size_t>(t)];
      if (stats) accumulate_moments<Scalar>(x.middleCols(c.begin, c.size), part.preact);
      norm_forward<Scalar>(a.op.norm, x.middleCols(c.begin, c.size), y.middleCols(c.begin, c.size),
                           rstd.segment(c.begin, c.size));
      if (stats) accumulate_output_block<Scalar>(y.middleCols(c.begin, c.size), part);
    });
  } else if (per_channel(a.op)) {
    // An image: per channel over the batch and the positions.
    const Eigen::Index channels = a.op.image.channels;
    const Mat<Scalar> xc = to_channels(x, channels);
    Mat<Scalar> yc(xc.rows(), xc.cols());
    rstd.resize(channels);
    a.pool.run(row_tasks(channels), [&](std::int64_t t) {
      const Range r = task_rows(t, channels);
      norm_forward<Scalar>(a.op.norm, xc.middleRows(r.begin, r.size),
                           yc.middleRows(r.begin, r.size), rstd.segment(r.begin, r.size));
    });
    from_channels(yc, batch, y);
    parts.resize(static_cast<std::size_t>(row_tasks(n)));
    if (stats) {
      a.pool.run(row_tasks(n), [&](std::int64_t t) {
        const Range r = task_rows(t, n);
        ForwardPartial& part = parts[static_cast<std::size_t>(t)];
        accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
        accumulate_output_block<Scalar>(y.middleRows(r.begin, r.size), part);
      });
    }
  } else {
    // Batch norm: per unit over the batch, tasks of whole rows.
    rstd.resize(n);
    const std::int64_t tasks = row_tasks(n);
    parts.resize(static_cast<std::size_t>(tasks));
    a.pool.run(tasks, [&](std::int64_t t) {
      const Range r = task_rows(t, n);
      ForwardPartial& part = parts[static_cast<std::size_t>(t)];
      auto y_block = y.middleRows(r.begin, r.size);
      if (stats) accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
      norm_forward<Scalar>(a.op.norm, x.middleRows(r.begin, r.size), y_block,
                           rstd.segment(r.begin, r.size));
      if (stats) accumulate_output_block<Scalar>(y_block, part);
    });
  }
  if (stats) finish_output_stats(parts, n, batch, *fs);
  if (a.weight.size() > 0) apply_affine(a, cache, fs);
}

// Why this is separate: y = gamma * n + beta where a model brings trained gamma and beta (the
// weight holds gamma as an (n, 1) matrix, the bias beta); generated norms skip it entirely, so
// their numbers are those of the identity map bit for bit. n is kept for the backward pass.
template <class Scalar>
void apply_affine(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  Mat<Scalar>& y = cache.out;  // n on entry, (width, batch)
  if (a.keep) cache.inner = y;
  const auto gamma = a.weight.col(0);
  y.array().colwise() *= gamma.array();
  if (a.bias.size() > 0) y.colwise() += a.bias;
  if (fs == nullptr) return;
  // The output's statistics again, now of gamma * n + beta; the input's stay.
  const MomentStats preact = fs->preact;
  std::vector<ForwardPartial> parts(static_cast<std::size_t>(row_tasks(y.rows())));
  a.pool.run(row_tasks(y.rows()), [&](std::int64_t t) {
    const Range r = task_rows(t, y.rows());
    accumulate_output_block<Scalar>(y.middleRows(r.begin, r.size),
                                    parts[static_cast<std::size_t>(t)]);
  });
  finish_output_stats(parts, y.rows(), y.cols(), *fs);
  fs->preact = preact;
}

// dgamma_i = sum_a g_ia y_ia, dbeta_i = sum_a g_ia (reported as norms); then dL/dx.
template <class Scalar>
GradPartial norm_op_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report) {
  const bool affine = a.weight.size() > 0;
  const Mat<Scalar>& y = affine ? a.cache.inner : a.cache.out;  // n, (n, batch)
  const Eigen::VectorXd& rstd = a.cache.rstd;  // (n) batch norm, (batch) the others
  const Eigen::Index n_out = grad.g.rows();
  Mat<Scalar> dinp(a.inp.rows(), grad.g.cols());          // dL/d(inp) / 2^exp2, (n, batch)
  Eigen::VectorXd dgamma = Eigen::VectorXd::Zero(n_out);  // (n)
  Eigen::VectorXd dbeta = Eigen::VectorXd::Zero(n_out);   // (n)
  // With trained gamma: dgamma and dbeta from dL/dy, then dL/dn = gamma * dL/dy goes through.
  Mat<Scalar> scaled;
  if (affine) {
    norm_param_grad_sums<Scalar>(a.op.norm, y, grad.g, dgamma, dbeta);
    // rms_norm has no beta of its own; one brought by a model is added all the same.
    if (a.op.norm.kind == NormKind::kRmsNorm && a.bias.size() > 0) {
      dbeta = grad.g.template cast<double>().rowwise().sum();
    }
    scaled = (grad.g.array().colwise() * a.weight.col(0).array()).matrix();
  }
  const Mat<Scalar>& g = affine ? scaled : grad.g;  // dL/dn / 2^exp2, (n, batch)
  Eigen::VectorXd unused_gamma = Eigen::VectorXd::Zero(affine ? n_out : 0);
  Eigen::VectorXd unused_beta = unused_gamma;
  Eigen::VectorXd& dg = affine ? unused_gamma : dgamma;
  Eigen::VectorXd& db = affine ? unused_beta : dbeta;
  if (affine) {
    dg.setZero(n_out);
    db.setZero(n_out);
  }
  GradPartial dinp_stats;
  if (per_channel(a.op)) {
    // Per channel: gamma and beta are one per channel.
    const Eigen::Index channels = a.op.image.channels;
    const Mat<Scalar> yc = to_channels(y, channels);
    const Mat<Scalar> gc = to_channels(g, channels);
    Mat<Scalar> dc(yc.rows(), yc.cols());
    dgamma.setZero(channels);
    dbeta.setZero(channels);
    dinp_stats = batch_norm_backward(a.op.norm, yc, rstd, gc, dc, dgamma, dbeta, a.pool);
    from_channels(dc, g.cols(), dinp);
  } else {
    dinp_stats = a.op.norm.kind == NormKind::kBatchNorm
                     ? batch_norm_backward(a.op.norm, y, rstd, g, dinp, dg, db, a.pool)
                     : per_example_norm_backward(a.op.norm, y, rstd, g, dinp, dg, db, a.pool);
  }
  BackwardStats& bs = *report.stats;
  fill_param_norm(dgamma, grad.exp2, bs.grad_weight_norm, bs.grad_weight_nonfinite);
  fill_param_norm(dbeta, grad.exp2, bs.grad_bias_norm, bs.grad_bias_nonfinite);
  // ||gamma||: sqrt(its entries) for generated norms (gamma = 1): one per unit, or per channel.
  bs.weight_norm =
      affine ? weight_frobenius(a.weight) : std::sqrt(static_cast<double>(dgamma.size()));
  bs.grad_weight_to_weight =
      magnitude_ratio(bs.grad_weight_norm, magnitude_from_scaled(bs.weight_norm, 0));
  fill_grad_stats(dinp_stats, grad.exp2, bs);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, grad.exp2);
  if (affine && report.dweight != nullptr) {
    const double unit =
        std::ldexp(1.0, static_cast<int>(std::clamp<std::int64_t>(grad.exp2, -2000, 2000)));
    *report.dweight = dgamma * unit;
    *report.dbias = dbeta * unit;
  }
  grad.g = std::move(dinp);
  return dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                             \
  template void norm_op_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&,             \
                                        ForwardStats*);                                           \
  template GradPartial norm_op_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&, \
                                                const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
