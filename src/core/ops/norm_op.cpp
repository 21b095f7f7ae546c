// The norm op (batch, layer and RMS norm in training mode, gamma = 1, beta = 0): forward caches
// rstd; backward gives dinp and the norms of dgamma and dbeta. The kernels are in norm.cpp.
#include <cmath>
#include <vector>

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
}

// dgamma_i = sum_a g_ia y_ia, dbeta_i = sum_a g_ia (reported as norms); then dL/dx.
template <class Scalar>
GradPartial norm_op_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report) {
  const Mat<Scalar>& y = a.cache.out;          // (n, batch)
  const Eigen::VectorXd& rstd = a.cache.rstd;  // (n) batch norm, (batch) the others
  const Mat<Scalar>& g = grad.g;               // dL/dy / 2^exp2, (n, batch)
  const Eigen::Index n_out = g.rows();
  Mat<Scalar> dinp(a.inp.rows(), g.cols());               // dL/d(inp) / 2^exp2, (n, batch)
  Eigen::VectorXd dgamma = Eigen::VectorXd::Zero(n_out);  // (n)
  Eigen::VectorXd dbeta = Eigen::VectorXd::Zero(n_out);   // (n)
  const GradPartial dinp_stats =
      a.op.norm.kind == NormKind::kBatchNorm
          ? batch_norm_backward(a.op.norm, y, rstd, g, dinp, dgamma, dbeta, a.pool)
          : per_example_norm_backward(a.op.norm, y, rstd, g, dinp, dgamma, dbeta, a.pool);
  BackwardStats& bs = *report.stats;
  fill_param_norm(dgamma, grad.exp2, bs.grad_weight_norm, bs.grad_weight_nonfinite);
  fill_param_norm(dbeta, grad.exp2, bs.grad_bias_norm, bs.grad_bias_nonfinite);
  bs.weight_norm = std::sqrt(static_cast<double>(n_out));  // ||gamma|| with gamma = 1
  bs.grad_weight_to_weight =
      magnitude_ratio(bs.grad_weight_norm, magnitude_from_scaled(bs.weight_norm, 0));
  fill_grad_stats(dinp_stats, grad.exp2, bs);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, grad.exp2);
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
