// The dropout op in training mode: y = mask * inp / (1 - p). The mask is not cached: both passes
// draw it from the op's own stream (counter-based, so any block of it is drawn alike).
#include <vector>

#include "core/ops/op.hpp"
#include "core/tasks.hpp"
#include "gradscope/core/rng.hpp"

namespace gradscope::ops {

namespace {

// The dropout mask of op `index` keeps entry k (column-major) when uniform k >= p.
std::uint64_t dropout_key(std::uint64_t seed, std::size_t op) {
  return stream_key(seed, static_cast<std::uint64_t>(op) + 1, StreamPurpose::kDropout);
}

// y = x * keep / (1 - p) (or dx = g * keep / (1 - p)) on rows r of every column.
template <class Scalar>
void apply_dropout(std::uint64_t key, double p, Range r, const Mat<Scalar>& x, Mat<Scalar>& y) {
  const Scalar scale = static_cast<Scalar>(1.0 / (1.0 - p));
  const Eigen::Index n = x.rows();
  for (Eigen::Index a = 0; a < x.cols(); ++a) {
    for (Eigen::Index i = r.begin; i < r.begin + r.size; ++i) {
      const auto k = static_cast<std::uint64_t>(a * n + i);
      y(i, a) = uniform01(key, k) >= p ? x(i, a) * scale : Scalar(0);
    }
  }
}

}  // namespace

template <class Scalar>
void dropout_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const Mat<Scalar>& x = a.inp;  // (n, batch)
  Mat<Scalar>& y = cache.out;    // (n, batch)
  const Eigen::Index n = y.rows();
  const bool stats = fs != nullptr;
  const std::uint64_t key = dropout_key(a.seed, a.index);
  std::vector<ForwardPartial> parts(static_cast<std::size_t>(row_tasks(n)));
  a.pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    ForwardPartial& part = parts[static_cast<std::size_t>(t)];
    if (stats) accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
    apply_dropout(key, a.op.dropout, r, x, y);
    if (stats) accumulate_output_block<Scalar>(y.middleRows(r.begin, r.size), part);
  });
  if (stats) finish_output_stats(parts, n, y.cols(), *fs);
}

// dinp = mask * g / (1 - p), the same mask drawn again.
template <class Scalar>
GradPartial dropout_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                             const BackwardReport& report) {
  const Mat<Scalar>& g = grad.g;  // dL/dy / 2^exp2, (n, batch)
  const Eigen::Index n_in = a.inp.rows();
  Mat<Scalar> dinp(n_in, g.cols());  // (n, batch)
  const std::uint64_t key = dropout_key(a.seed, a.index);
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
  a.pool.run(row_tasks(n_in), [&](std::int64_t t) {
    const Range r = task_rows(t, n_in);
    apply_dropout(key, a.op.dropout, r, g, dinp);
    accumulate_gradient_block<Scalar>(dinp.middleRows(r.begin, r.size),
                                      parts[static_cast<std::size_t>(t)]);
  });
  const GradPartial dinp_stats = merge_parts(parts);
  fill_grad_stats(dinp_stats, grad.exp2, *report.stats);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, grad.exp2);
  grad.g = std::move(dinp);
  return dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                             \
  template void dropout_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&,             \
                                        ForwardStats*);                                           \
  template GradPartial dropout_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&, \
                                                const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
