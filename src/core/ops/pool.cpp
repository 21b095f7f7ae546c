// The pool op (max, average, global average over each channel's positions; conv_kernels.hpp) and
// the flatten op (an image's C H W features read as a vector: the values pass unchanged). Max
// pooling's choice of cell is not cached: the backward pass finds it again from the input.
#include <vector>

#include "core/ops/conv_kernels.hpp"
#include "core/ops/op.hpp"
#include "core/tasks.hpp"

namespace gradscope::ops {

PoolShape pool_shape(const PoolSpec& p) {
  PoolShape s;
  s.C = p.in.channels;
  s.H = p.in.height;
  s.W = p.in.width;
  s.kernel_h = p.kernel_h;
  s.kernel_w = p.kernel_w;
  s.stride_h = p.stride_h;
  s.stride_w = p.stride_w;
  s.pad_h = p.pad_h;
  s.pad_w = p.pad_w;
  return s;
}

namespace {

// The forward statistics of an op without weights: its input's moments as the "pre-activation"
// and its output's, a block of rows a task.
template <class Scalar>
void plain_forward_stats(const Mat<Scalar>& x, const Mat<Scalar>& y, ThreadPool& pool,
                         ForwardStats& fs) {
  const Eigen::Index n = y.rows();
  std::vector<ForwardPartial> parts(static_cast<std::size_t>(row_tasks(n)));
  pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    accumulate_output_block<Scalar>(y.middleRows(r.begin, r.size),
                                    parts[static_cast<std::size_t>(t)]);
  });
  // The input's moments over all its rows (a pooling's input has more rows than its output).
  const Eigen::Index m = x.rows();
  std::vector<ForwardPartial> in_parts(static_cast<std::size_t>(row_tasks(m)));
  pool.run(row_tasks(m), [&](std::int64_t t) {
    const Range r = task_rows(t, m);
    accumulate_moments<Scalar>(x.middleRows(r.begin, r.size),
                               in_parts[static_cast<std::size_t>(t)].preact);
  });
  for (std::size_t k = 0; k < in_parts.size() && !parts.empty(); ++k) {
    parts[0].preact.merge(in_parts[k].preact);
  }
  finish_output_stats(parts, n, y.cols(), fs);
}

// The statistics of dinp a block of rows a task; dinp becomes the gradient passed on.
template <class Scalar>
GradPartial passed_on(Mat<Scalar>& dinp, ScaledGrad<Scalar>& grad, const BackwardReport& report,
                      ThreadPool& pool) {
  const Eigen::Index n = dinp.rows();
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n)));
  pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    accumulate_gradient_block<Scalar>(dinp.middleRows(r.begin, r.size),
                                      parts[static_cast<std::size_t>(t)]);
  });
  const GradPartial stats = merge_parts(parts);
  fill_grad_stats(stats, grad.exp2, *report.stats);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, grad.exp2);
  grad.g = std::move(dinp);
  return stats;
}

}  // namespace

template <class Scalar>
void pool_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const PoolShape shape = pool_shape(a.op.pool);
  switch (a.op.pool.kind) {
    case PoolKind::kMax: {
      ArgmaxMat argmax;
      max_pool2d_forward<Scalar>(a.inp, shape, cache.out, argmax, a.pool);
      break;
    }
    case PoolKind::kAverage:
      avg_pool2d_forward<Scalar>(a.inp, shape, cache.out, a.pool);
      break;
    case PoolKind::kGlobalAverage:
      global_avg_pool_forward<Scalar>(a.inp, shape, cache.out, a.pool);
      break;
  }
  if (fs != nullptr) plain_forward_stats<Scalar>(a.inp, cache.out, a.pool, *fs);
}

template <class Scalar>
GradPartial pool_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                          const BackwardReport& report) {
  const PoolShape shape = pool_shape(a.op.pool);
  Mat<Scalar> dinp;
  switch (a.op.pool.kind) {
    case PoolKind::kMax: {
      Mat<Scalar> y;
      ArgmaxMat argmax;
      max_pool2d_forward<Scalar>(a.inp, shape, y, argmax, a.pool);
      max_pool2d_backward<Scalar>(grad.g, argmax, shape, dinp, a.pool);
      break;
    }
    case PoolKind::kAverage:
      avg_pool2d_backward<Scalar>(grad.g, shape, dinp, a.pool);
      break;
    case PoolKind::kGlobalAverage:
      global_avg_pool_backward<Scalar>(grad.g, shape, dinp, a.pool);
      break;
  }
  return passed_on<Scalar>(dinp, grad, report, a.pool);
}

template <class Scalar>
void flatten_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  cache.out = a.inp;
  if (fs != nullptr) plain_forward_stats<Scalar>(a.inp, cache.out, a.pool, *fs);
}

template <class Scalar>
GradPartial flatten_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report) {
  Mat<Scalar> dinp = grad.g;
  return passed_on<Scalar>(dinp, grad, report, a.pool);
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                              \
  template void pool_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*); \
  template GradPartial pool_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&,     \
                                             const BackwardReport&);                               \
  template void flatten_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&,              \
                                        ForwardStats*);                                            \
  template GradPartial flatten_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&,  \
                                                const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
