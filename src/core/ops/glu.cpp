// The GLU op (a gated MLP; SwiGLU with silu): h1 = W1 x + b1, h3 = W3 x + b3, m = phi(h1) * h3,
// y = W2 m + b2, W2 held transposed in the stacked weight [W1; W3; W2^T]. Backward: dm = W2^T g,
// dh3 = dm * phi(h1), dh1 = dm * h3 * phi'(h1), then the three weight gradients and
// dx = W1^T dh1 + W3^T dh3. Linear in the incoming gradient, so it runs on the scaled one.
#include <string>
#include <vector>

#include "core/ops/op.hpp"
#include "core/ops/param_stats.hpp"
#include "core/tasks.hpp"

namespace gradscope::ops {

template <class Scalar>
void glu_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const Mat<Scalar>& x = a.inp;     // (d, batch)
  const Mat<Scalar>& w = a.weight;  // [W1; W3; W2^T], (3 hidden, d)
  const GluSpec& spec = a.op.glu;
  const Eigen::Index hidden = spec.hidden;
  const Eigen::Index d = x.rows();
  const Eigen::Index batch = x.cols();
  const bool stats = fs != nullptr;
  const double saturated_below = a.saturation_threshold * max_slope(spec.activation);
  // inner = [phi(h1); h3], slope = phi'(h1); gate statistics a block of rows a task.
  Mat<Scalar> inner(2 * hidden, batch);
  Mat<Scalar> slope(hidden, batch);
  const std::int64_t tasks = row_tasks(hidden);
  std::vector<ForwardPartial> gate_parts(static_cast<std::size_t>(stats ? tasks : 0));
  std::vector<unsigned char> alive(static_cast<std::size_t>(stats ? hidden : 0), 0);
  std::vector<unsigned char> unsaturated(alive.size(), 0);
  a.pool.run(tasks, [&](std::int64_t t) {
    const Range r = task_rows(t, hidden);
    Mat<Scalar> h1(r.size, batch);
    h1.noalias() = w.middleRows(r.begin, r.size) * x;
    auto h3 = inner.middleRows(hidden + r.begin, r.size);
    h3.noalias() = w.middleRows(hidden + r.begin, r.size) * x;
    if (a.bias.size() > 0) {
      h1.colwise() += a.bias.segment(r.begin, r.size);
      h3.colwise() += a.bias.segment(hidden + r.begin, r.size);
    }
    auto gate = inner.middleRows(r.begin, r.size);
    auto d1 = slope.middleRows(r.begin, r.size);
    activation_forward<Scalar>(spec.activation, h1, gate, d1);
    if (!stats) return;
    ForwardPartial& part = gate_parts[static_cast<std::size_t>(t)];
    accumulate_moments<Scalar>(h1, part.preact);
    accumulate_activation_block<Scalar>(gate, d1, saturated_below, part, alive.data() + r.begin,
                                        unsaturated.data() + r.begin);
  });
  // y = W2 m + b2, m = phi(h1) * h3.
  const Mat<Scalar> m = (inner.topRows(hidden).array() * inner.bottomRows(hidden).array()).matrix();
  Mat<Scalar>& y = cache.out;
  std::vector<ForwardPartial> out_parts(static_cast<std::size_t>(stats ? row_tasks(d) : 0));
  a.pool.run(row_tasks(d), [&](std::int64_t t) {
    const Range r = task_rows(t, d);
    auto block = y.middleRows(r.begin, r.size);
    block.noalias() = w.bottomRows(hidden).middleCols(r.begin, r.size).transpose() * m;
    if (a.bias.size() > 0) block.colwise() += a.bias.segment(2 * hidden + r.begin, r.size);
    if (stats) accumulate_output_block<Scalar>(block, out_parts[static_cast<std::size_t>(t)]);
  });
  if (stats) {
    // The output's moments and zeros; the gate's pre-activation, dead and saturated units.
    finish_output_stats(out_parts, d, batch, *fs);
    ForwardPartial gate;
    for (const ForwardPartial& p : gate_parts) {
      gate.preact.merge(p.preact);
      gate.saturated += p.saturated;
    }
    fs->preact = gate.preact.finish();
    const double entries = static_cast<double>(hidden) * static_cast<double>(batch);
    const bool saturation = saturates(spec.activation);
    fs->saturated_fraction = saturation ? static_cast<double>(gate.saturated) / entries : kNaN;
    fs->dead_units = 0;
    fs->saturated_units = 0;
    for (Eigen::Index i = 0; i < hidden; ++i) {
      fs->dead_units += alive[static_cast<std::size_t>(i)] == 0;
      if (saturation) fs->saturated_units += unsaturated[static_cast<std::size_t>(i)] == 0;
    }
    fs->dead_fraction = static_cast<double>(fs->dead_units) / static_cast<double>(hidden);
    fs->nonfinite = fs->preact.nonfinite + fs->act.nonfinite;
  }
  if (a.keep) {
    cache.inner = std::move(inner);
    cache.slope = std::move(slope);
  }
}

template <class Scalar>
GradPartial glu_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                         const BackwardReport& report) {
  const Mat<Scalar>& x = a.inp;  // (d, batch)
  const Mat<Scalar>& w = a.weight;
  const GluSpec& spec = a.op.glu;
  const Eigen::Index hidden = spec.hidden;
  const Eigen::Index d = x.rows();
  const Mat<Scalar>& g = grad.g;  // dL/dy / 2^exp2, (d, batch)
  const std::int64_t exp2 = grad.exp2;
  const auto gate = a.cache.inner.topRows(hidden);   // phi(h1)
  const auto up = a.cache.inner.bottomRows(hidden);  // h3
  const bool has_bias = a.bias.size() > 0;
  // dm = W2^T g; dh = [dh1; dh3].
  Mat<Scalar> dh(2 * hidden, x.cols());
  a.pool.run(row_tasks(hidden), [&](std::int64_t t) {
    const Range r = task_rows(t, hidden);
    const Mat<Scalar> dm = w.middleRows(2 * hidden + r.begin, r.size) * g;
    dh.middleRows(hidden + r.begin, r.size) =
        (dm.array() * gate.middleRows(r.begin, r.size).array()).matrix();
    dh.middleRows(r.begin, r.size) = (dm.array() * up.middleRows(r.begin, r.size).array() *
                                      a.cache.slope.middleRows(r.begin, r.size).array())
                                         .matrix();
  });
  BackwardStats& bs = *report.stats;
  ParamSums weights, biases;
  std::vector<ParamStats> params;
  const Mat<Scalar> m = (gate.array() * up.array()).matrix();
  const std::int64_t hd = hidden;
  const std::int64_t dd = d;
  for (int j = 0; j < 3; ++j) {
    const std::string name(kGluProjections[static_cast<std::size_t>(j)]);
    const bool down = j == 2;
    // Held as the stacked layout's rows: dW1, dW3 (hidden, d), and dW2^T = m g^T (hidden, d).
    Mat<Scalar> dw(hidden, d);
    if (down) {
      product_by_rows(m, g.transpose(), dw, a.pool);
    } else {
      product_by_rows(dh.middleRows(j * hidden, hidden), x.transpose(), dw, a.pool);
    }
    const std::vector<std::int64_t> shape = down ? std::vector{dd, hd} : std::vector{hd, dd};
    params.push_back(param_stats<Scalar>(
        name + ".weight", shape, dw, w.middleRows(j * hidden, hidden), exp2, a.optimizer, weights));
    if (report.dweight != nullptr) {
      report.dweight->conservativeResize(w.rows(), d);
      report.dweight->middleRows(j * hidden, hidden) = unscaled(dw, exp2);
    }
    if (!has_bias) continue;
    const Eigen::Index rows = down ? d : hidden;
    const Mat<Scalar> db =
        (down ? g : Mat<Scalar>(dh.middleRows(j * hidden, hidden))).rowwise().sum();
    const Mat<Scalar> b = a.bias.segment(j * hidden, rows);
    params.push_back(param_stats<Scalar>(name + ".bias", {rows}, db, b, exp2, a.optimizer, biases));
    if (report.dbias != nullptr) {
      report.dbias->conservativeResize(a.bias.size());
      report.dbias->segment(j * hidden, rows) = unscaled(db, exp2);
    }
  }
  fill_total_param_stats(weights, biases, has_bias, exp2, a.optimizer, bs);
  bs.params = std::move(params);
  // dx = W1^T dh1 + W3^T dh3 = [W1; W3]^T dh.
  Mat<Scalar> dinp(d, x.cols());
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(d)));
  a.pool.run(row_tasks(d), [&](std::int64_t t) {
    const Range r = task_rows(t, d);
    auto block = dinp.middleRows(r.begin, r.size);
    block.noalias() = w.topRows(2 * hidden).middleCols(r.begin, r.size).transpose() * dh;
    accumulate_gradient_block<Scalar>(block, parts[static_cast<std::size_t>(t)]);
  });
  const GradPartial dinp_stats = merge_parts(parts);
  fill_grad_stats(dinp_stats, exp2, bs);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, exp2);
  grad.g = std::move(dinp);
  return dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                             \
  template void glu_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*); \
  template GradPartial glu_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&,     \
                                            const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
