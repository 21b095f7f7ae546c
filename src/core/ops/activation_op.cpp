// The activation op, y = phi(inp), and the activation step it shares with the dense op
// (activation_op.hpp): value and slope a block of rows a task, with the dead and saturated units.
#include "core/ops/activation_op.hpp"

#include <cmath>
#include <vector>

namespace gradscope::ops {

namespace {

// Whether the backward pass keeps phi'(h) of a layer; otherwise it recovers it from y (ReLU and
// the other piecewise-linear kinds) or does not need it (softmax's backward uses y).
bool keeps_slope(const ActivationSpec& a) {
  return a.kind != Activation::kSoftmax && !derivative_from_output(a);
}

void finish_activation_stats(const std::vector<ForwardPartial>& parts,
                             const std::vector<unsigned char>& alive,
                             const std::vector<unsigned char>& unsaturated,
                             const ActivationSpec& act, Eigen::Index n, Eigen::Index batch,
                             ForwardStats& fs) {
  ForwardPartial total;
  for (const ForwardPartial& p : parts) {
    total.preact.merge(p.preact);
    total.act.merge(p.act);
    total.zeros += p.zeros;
    total.saturated += p.saturated;
  }
  fs.preact = total.preact.finish();
  fs.act = total.act.finish();
  const double entries = static_cast<double>(n) * static_cast<double>(batch);
  fs.zero_fraction = static_cast<double>(total.zeros) / entries;
  const bool saturation = saturates(act);
  fs.saturated_fraction = saturation ? static_cast<double>(total.saturated) / entries : kNaN;
  for (Eigen::Index i = 0; i < n; ++i) {
    fs.dead_units += alive[static_cast<std::size_t>(i)] == 0;
    if (saturation) fs.saturated_units += unsaturated[static_cast<std::size_t>(i)] == 0;
  }
  fs.dead_fraction = static_cast<double>(fs.dead_units) / static_cast<double>(n);
  fs.nonfinite = fs.preact.nonfinite + fs.act.nonfinite;
}

}  // namespace

template <class Scalar>
void activation_rows_forward(const ForwardArgs<Scalar>& a, const ActivationSpec& act,
                             const PreactRows<Scalar>& preact_rows, OpCache<Scalar>& cache,
                             ForwardStats* fs) {
  Mat<Scalar>& y = cache.out;  // (n, batch)
  const Eigen::Index n = y.rows();
  const Eigen::Index batch = y.cols();
  const bool stats = fs != nullptr;
  const bool keep_slope = a.keep && keeps_slope(act);
  if (keep_slope) cache.slope.resize(n, batch);
  const double saturated_below = a.saturation_threshold * max_slope(act);
  const bool softmax = act.kind == Activation::kSoftmax;
  const std::int64_t tasks = row_tasks(n);
  std::vector<ForwardPartial> parts(static_cast<std::size_t>(stats ? tasks : 0));
  std::vector<unsigned char> alive(static_cast<std::size_t>(stats ? n : 0), 0);
  std::vector<unsigned char> unsaturated(alive.size(), 0);
  Mat<Scalar> preact;  // (n, batch), softmax only: it needs whole columns
  if (softmax) preact.resize(n, batch);

  a.pool.run(tasks, [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    Mat<Scalar> h(r.size, batch);  // (rows of this task, batch)
    preact_rows(r, h);
    if (stats) accumulate_moments<Scalar>(h, parts[static_cast<std::size_t>(t)].preact);
    if (softmax) {
      preact.middleRows(r.begin, r.size) = h;
      return;
    }
    Mat<Scalar> scratch;  // d of this block when the op does not keep it
    if (!keep_slope) scratch.resize(r.size, batch);
    auto y_block = y.middleRows(r.begin, r.size);
    Eigen::Ref<Mat<Scalar>> d_block =
        keep_slope ? Eigen::Ref<Mat<Scalar>>(cache.slope.middleRows(r.begin, r.size))
                   : Eigen::Ref<Mat<Scalar>>(scratch);
    activation_forward<Scalar>(act, h, y_block, d_block);
    if (stats) {
      accumulate_activation_block<Scalar>(y_block, d_block, saturated_below,
                                          parts[static_cast<std::size_t>(t)],
                                          alive.data() + r.begin, unsaturated.data() + r.begin);
    }
  });
  if (softmax) {
    // Softmax couples the units of a column; its statistics are cheap next to the product.
    Mat<Scalar> d(n, batch);  // the Jacobian's diagonal, for the statistics only
    activation_forward<Scalar>(act, preact, y, d);
    if (stats) {
      accumulate_activation_block<Scalar>(y, d, saturated_below, parts[0], alive.data(),
                                          unsaturated.data());
    }
  }
  if (stats) finish_activation_stats(parts, alive, unsaturated, act, n, batch, *fs);
}

template <class Scalar>
GradPartial activation_rows_backward(const BackwardArgs<Scalar>& a, const ActivationSpec& act,
                                     Mat<Scalar>& g, std::int64_t exp2,
                                     const BackwardReport& report) {
  const Mat<Scalar>& y = a.cache.out;  // (n_out, batch)
  const Eigen::Index n_out = g.rows();
  const Eigen::Index batch = g.cols();
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_out)));
  if (act.kind == Activation::kSoftmax) {
    activation_backward<Scalar>(act, y, y, g, g);  // d unused: y is enough
  }
  const bool nan_output = a.forward.act.nonfinite > 0;
  a.pool.run(row_tasks(n_out), [&](std::int64_t t) {
    const Range r = task_rows(t, n_out);
    auto gr = g.middleRows(r.begin, r.size);
    if (act.kind == Activation::kSoftmax) {
      // done above: softmax couples the units of a column
    } else if (keeps_slope(act)) {
      activation_backward<Scalar>(act, y.middleRows(r.begin, r.size),
                                  a.cache.slope.middleRows(r.begin, r.size), gr, gr);
    } else {
      Mat<Scalar> d(r.size, batch);  // phi'(h) recovered from y for this block
      activation_derivative_from_output<Scalar>(act, y.middleRows(r.begin, r.size), d);
      activation_backward<Scalar>(act, y.middleRows(r.begin, r.size), d, gr, gr);
    }
    if (nan_output) {
      // phi' at a NaN is undefined: the gradient there is NaN, not the 0 that relu's
      // y > 0 test (and PyTorch's) would give, which would read as a vanished gradient.
      gr = y.middleRows(r.begin, r.size).array().isNaN().select(Scalar(kNaN), gr);
    }
    accumulate_gradient_block<Scalar>(gr, parts[static_cast<std::size_t>(t)]);
  });
  const GradPartial delta = merge_parts(parts);
  fill_grad_stats(delta, exp2, *report.stats);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(g, exp2);
  return delta;
}

template <class Scalar>
void activation_op_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache,
                           ForwardStats* stats) {
  const Mat<Scalar>& x = a.inp;  // (n, batch)
  activation_rows_forward<Scalar>(
      a, a.op.activation, [&](Range r, Mat<Scalar>& h) { h = x.middleRows(r.begin, r.size); },
      cache, stats);
}

// dL/d(inp) is delta itself: it stays in grad.g.
template <class Scalar>
GradPartial activation_op_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                                   const BackwardReport& report) {
  return activation_rows_backward(a, a.op.activation, grad.g, grad.exp2, report);
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                              \
  template void activation_rows_forward<Scalar>(const ForwardArgs<Scalar>&, const ActivationSpec&, \
                                                const PreactRows<Scalar>&, OpCache<Scalar>&,       \
                                                ForwardStats*);                                    \
  template GradPartial activation_rows_backward<Scalar>(const BackwardArgs<Scalar>&,               \
                                                        const ActivationSpec&, Mat<Scalar>&,       \
                                                        std::int64_t, const BackwardReport&);      \
  template void activation_op_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&,        \
                                              ForwardStats*);                                      \
  template GradPartial activation_op_backward<Scalar>(const BackwardArgs<Scalar>&,                 \
                                                      ScaledGrad<Scalar>&, const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
