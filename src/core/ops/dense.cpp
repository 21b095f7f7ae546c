// The dense op: h = W inp + b, y = phi(h) forward; backward the activation's delta, then the bias
// and weight gradients' norms, the first optimizer step and dinp = W^T delta.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/activation_op.hpp"
#include "core/ops/op.hpp"
#include "core/ops/weight_grad.hpp"
#include "core/tasks.hpp"

namespace gradscope::ops {

namespace {

// What the one parallel run over dW's rows (or the two Grams) and dinp's rows gives.
template <class Scalar>
struct DenseProducts {
  Mat<Scalar> gram_x;               // (batch, batch), lower triangle of inp^T inp: Gram form
  Mat<Scalar> gram_g;               // (batch, batch), lower triangle of delta^T delta: Gram form
  std::vector<SquareSum> dw_parts;  // per task of dW's rows: its squares, otherwise
  std::vector<double> adam_parts;   // per task of dW's rows: the first Adam step's squares
  GradPartial dinp_stats;
};

// One run of tasks: the Grams (gram) or dW's rows (plain), then dinp = W^T g a block of rows a
// task (when need_dinp). g = delta / 2^exp2 (n_out, batch), x = inp (n_in, batch).
template <class Scalar>
DenseProducts<Scalar> dense_products(const Mat<Scalar>& g, std::int64_t exp2, const Mat<Scalar>& x,
                                     const Mat<Scalar>& w, bool plain, bool gram, bool adam,
                                     double eps, bool need_dinp, Mat<Scalar>& dinp,
                                     ThreadPool& pool) {
  const Eigen::Index n_out = g.rows();
  const Eigen::Index n_in = x.rows();
  DenseProducts<Scalar> p;
  const std::int64_t dw_tasks = !plain ? 0 : (gram ? 2 : row_tasks(n_out));
  p.dw_parts.resize(static_cast<std::size_t>(gram ? 0 : dw_tasks));
  p.adam_parts.assign(p.dw_parts.size(), 0.0);
  // dL/dx of the first layer is needed only by the tests.
  const std::int64_t dinp_tasks = need_dinp ? row_tasks(n_in) : 0;
  std::vector<GradPartial> dinp_parts(static_cast<std::size_t>(dinp_tasks));
  pool.run(dw_tasks + dinp_tasks, [&](std::int64_t t) {
    if (t < dw_tasks) {
      if (gram) {
        if (t == 0) gram_lower(x, p.gram_x);
        if (t == 1) gram_lower(g, p.gram_g);
        return;
      }
      const Range r = task_rows(t, n_out);
      Mat<Scalar> dw(r.size, n_in);  // rows of dL/dW / 2^exp2
      dw.noalias() = g.middleRows(r.begin, r.size) * x.transpose();
      SquareSum& sq = p.dw_parts[static_cast<std::size_t>(t)];
      for (Eigen::Index j = 0; j < n_in; ++j) sq.add(dw.col(j).data(), r.size);
      if (adam) {
        // First Adam step: m-hat = g, v-hat = g^2, so the step is lr * g / (|g| + eps).
        const double eps_scaled = adam_eps_at(eps, exp2);
        double a = 0.0;
        for (Eigen::Index j = 0; j < n_in; ++j) {
          for (Eigen::Index i = 0; i < r.size; ++i) {
            const double v = static_cast<double>(dw(i, j));
            const double u = v / (std::abs(v) + eps_scaled);
            a += u * u;
          }
        }
        p.adam_parts[static_cast<std::size_t>(t)] = a;
      }
      return;
    }
    const std::int64_t bt = t - dw_tasks;
    const Range r = task_rows(bt, n_in);
    auto block = dinp.middleRows(r.begin, r.size);
    block.noalias() = w.middleCols(r.begin, r.size).transpose() * g;
    accumulate_gradient_block<Scalar>(block, dinp_parts[static_cast<std::size_t>(bt)]);
  });
  p.dinp_stats = merge_parts(dinp_parts);
  return p;
}

// The weight gradient from the plain products, and whether they kept its digits (else the
// exact form is taken).
template <class Scalar>
bool plain_weight_gradient(const DenseProducts<Scalar>& p, const ValueRange& xr, double g_squares,
                           Eigen::Index n_out, Eigen::Index n_in, Eigen::Index batch, bool gram,
                           bool correlation, WeightGradient& dw) {
  dw.squares.finite = n_out * n_in;
  dw.shift = 0;
  if (gram) {
    dw.squares.sum = lower_symmetric_dot(p.gram_x, p.gram_g);
    const bool plain =
        well_conditioned(dw.squares.sum, p.gram_x.diagonal().template cast<double>().sum(),
                         p.gram_g.diagonal().template cast<double>().sum(), batch);
    if (plain && correlation) {
      dw.correlation = pair_cosine_from_gram(p.gram_x);
      dw.has_correlation = true;
    }
    return plain;
  }
  SquareSum total;
  for (const SquareSum& s : p.dw_parts) total.merge(s);
  for (double a : p.adam_parts) dw.adam += a;
  dw.squares.sum = total.sum;
  return total.nonfinite == 0 && total.exp == 0 &&
         well_conditioned(total.sum, xr.squares, g_squares, batch);
}

}  // namespace

template <class Scalar>
void dense_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* stats) {
  const Mat<Scalar>& w = a.weight;  // (width, n_in)
  const Mat<Scalar>& x = a.inp;     // (n_in, batch)
  const Vec<Scalar>& b = a.bias;    // (width)
  activation_rows_forward<Scalar>(
      a, a.op.dense.activation,
      [&](Range r, Mat<Scalar>& h) {
        h.noalias() = w.middleRows(r.begin, r.size) * x;
        h.colwise() += b.segment(r.begin, r.size);
      },
      cache, stats);
}

template <class Scalar>
GradPartial dense_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                           const BackwardReport& report) {
  const Mat<Scalar>& x = a.inp;  // (n_in, batch)
  const Eigen::Index batch = x.cols();
  const Eigen::Index n_in = x.rows();
  Mat<Scalar> dinp(n_in, batch);  // dL/d(inp) / 2^exp2
  Mat<Scalar>& g = grad.g;        // dL/dy, then delta = dL/dh, (n_out, batch)
  const Eigen::Index n_out = g.rows();
  const GradPartial delta =
      activation_rows_backward(a, a.op.dense.activation, g, grad.exp2, report);
  BackwardStats& bs = *report.stats;
  const bool adam = a.optimizer.kind == OptimizerKind::kAdam;
  bs.grad_bias_norm = delta.bias_nonfinite == n_out
                          ? Magnitude{kNaN, kNaN}
                          : magnitude_from_scaled(std::sqrt(delta.bias_squares), grad.exp2);
  bs.grad_bias_nonfinite = delta.bias_nonfinite;
  // A delta far from rms 1 (behind a saturated layer, say) is brought back near it first, so
  // that neither its Gram nor dW underflows; exact, and nothing to do in the ordinary range.
  const int shifted = rescale(g, delta, grad.exp2, a.pool);
  const double g_squares = std::ldexp(delta.squares.sum, 2 * (delta.squares.exp - shifted));
  const std::int64_t exp2 = grad.exp2;
  const ValueRange& xr = a.inp_range;
  const bool gram = !adam && use_gram_for_weight_norm(batch, n_in, n_out);
  bool plain = xr.nonfinite == 0 && delta.squares.nonfinite == 0 &&
               plain_weight_grad_range<Scalar>(xr.largest);
  const double eps = a.optimizer.eps;
  const bool correlation = report.inp_correlation != nullptr;
  const DenseProducts<Scalar> p =
      dense_products(g, exp2, x, a.weight, plain, gram, adam, eps, a.need_dinp, dinp, a.pool);

  WeightGradient dw;
  if (plain)
    plain = plain_weight_gradient(p, xr, g_squares, n_out, n_in, batch, gram, correlation, dw);
  if (!plain) dw = exact_weight_gradient(g, exp2, x, xr, gram, adam, eps, correlation, a.pool);
  if (dw.has_correlation) *report.inp_correlation = dw.correlation;
  fill_weight_stats(dw, exp2, a.weight_norm, a.optimizer, bs);
  if (report.dweight != nullptr && report.dweight_in_precision) {
    Mat<Scalar> dwp(n_out, n_in);
    product_by_rows(g, x.transpose(), dwp, a.pool);
    const double unit = std::ldexp(1.0, static_cast<int>(exp2));
    *report.dweight = dwp.template cast<double>() * unit;
    *report.dbias = g.template cast<double>().rowwise().sum() * unit;
  } else if (report.dweight != nullptr) {
    const Eigen::MatrixXd gd = unscaled(g, exp2);
    *report.dweight = gd * x.template cast<double>().transpose();
    *report.dbias = gd.rowwise().sum();
  }
  grad.g = std::move(dinp);
  return p.dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                           \
  template void dense_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&,             \
                                      ForwardStats*);                                           \
  template GradPartial dense_backward<Scalar>(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&, \
                                              const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
