// The residual ops: a begin marks where the skip path leaves (no output of its own); the end is
// y = P skip + scale * inp, P the identity or a fixed projection. Backward the end sends P^T g down
// the skip path (grad.skips) and the begin adds it back where the path left.
#include <string>
#include <utility>
#include <vector>

#include "core/ops/op.hpp"
#include "core/tasks.hpp"
#include "gradscope/core/error.hpp"

namespace gradscope::ops {

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

// preact: the branch's output F(x) = inp; act: P skip + scale F(x).
template <class Scalar>
void residual_end_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const Mat<Scalar>& x = a.inp;       // the branch's output, (n, batch)
  const Mat<Scalar>& skip = *a.skip;  // (skip width, batch)
  const Mat<Scalar>& w = a.weight;    // projected: P (n, skip width)
  Mat<Scalar>& y = cache.out;         // (n, batch)
  const Eigen::Index n = y.rows();
  const bool stats = fs != nullptr;
  const bool projection = a.op.residual.projection;
  const Scalar scale = static_cast<Scalar>(a.op.residual.scale);
  const Scalar skip_scale = static_cast<Scalar>(a.op.residual.skip);
  std::vector<ForwardPartial> parts(static_cast<std::size_t>(row_tasks(n)));
  a.pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    ForwardPartial& part = parts[static_cast<std::size_t>(t)];
    auto y_block = y.middleRows(r.begin, r.size);
    if (stats) accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
    if (projection) {
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

// y = skip P x_skip + scale F: the branch gets scale * g, the skip path P^T g (kept for its begin).
template <class Scalar>
GradPartial residual_end_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                  const BackwardReport& report) {
  const Mat<Scalar>& g = grad.g;  // dL/dy / 2^exp2, (n, batch)
  Mat<Scalar> dskip;              // (skip width, batch)
  if (a.op.residual.projection) {
    dskip.noalias() = a.weight.transpose() * g;
  } else {
    dskip = g;
  }
  if (a.op.residual.skip != 1.0) dskip *= static_cast<Scalar>(a.op.residual.skip);
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
