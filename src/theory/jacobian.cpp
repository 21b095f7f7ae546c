// The input-output Jacobian by forward-mode propagation: M = dx^l / dx^0 (n_l x n_0) is carried
// op by op for one example, rescaled by exact powers of two, then its singular values are taken
// in double.
#include "gradscope/theory/jacobian.hpp"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "gradscope/core/error.hpp"
#include "gradscope/theory/apjn.hpp"
#include "gradscope/theory/prediction.hpp"
#include "theory/tangents.hpp"

namespace gradscope {

namespace {

constexpr double kLog10Of2 = 0.30102999566398119521;

}  // namespace

double jacobian_flops(const RunSpec& spec, int examples) {
  const std::vector<OpSpec> ops = expand_ops(spec);
  const std::vector<int> widths = op_widths(spec, ops);
  double sum = 0.0;
  double fan_in = spec.input.width;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind == OpKind::kDense) sum += static_cast<double>(widths[i]) * fan_in;
    // A convolution: each output entry is a product over its fan-in.
    if (ops[i].kind == OpKind::kConv) sum += static_cast<double>(widths[i]) * ops[i].conv.fan_in();
    if (ops[i].kind != OpKind::kResidualBegin) fan_in = widths[i];
  }
  return static_cast<double>(examples) * 2.0 * spec.input.width * sum;
}

void check_jacobian_request(const RunSpec& spec) {
  const int examples = std::min(spec.stats.jacobian_examples, spec.input.batch);
  if (examples <= 0) return;
  const std::vector<OpSpec> ops = expand_ops(spec);
  const int n0 = spec.input.width;
  const int nl = op_widths(spec, ops).back();
  const double flops = jacobian_flops(spec, examples);
  if (flops > kJacobianMaxFlops || n0 > kJacobianMaxWidth || nl > kJacobianMaxWidth) {
    throw Error("--jacobian refused: " + std::to_string(examples) + " examples need about " +
                    std::to_string(static_cast<long long>(flops / 1e9)) + " GFLOP (limit " +
                    std::to_string(static_cast<long long>(kJacobianMaxFlops / 1e9)) +
                    " GFLOP) with input width " + std::to_string(n0) + " and output width " +
                    std::to_string(nl) + " (limit " + std::to_string(kJacobianMaxWidth) + ")",
                "the cost is 2 n_0 sum_l n_l n_{l-1} per example: use fewer examples "
                "(--jacobian 1), or a narrower or shallower network");
  }
  if (spec.input.tokens > 1) {
    throw Error(
        "--jacobian refused: with tokens > 1 an example is a sequence, and the "
        "per-vector input-output Jacobian this computes does not describe it",
        "run without --jacobian, or with input.tokens 1");
  }
  for (const OpSpec& op : ops) {
    if (op.kind == OpKind::kAttention || op.kind == OpKind::kGlu) {
      throw Error(
          "--jacobian refused: the Jacobian spectrum is computed for dense, conv, pool, norm, "
          "activation, dropout and residual ops only, and this network has " +
              std::string(op_kind_name(op.kind)) + " ops",
          "run without --jacobian");
    }
  }
  // Batch norm, also a learned projection's, couples the examples.
  if (!apjn_refusal(spec).empty()) {
    throw Error(
        "--jacobian refused: batch norm makes each example's output depend on the "
        "others, so there is no per-example input-output Jacobian",
        "use layer_norm or rms_norm, a projection without its norm (\"norm\": false), or run "
        "without --jacobian");
  }
}

template <class Scalar>
JacobianStats jacobian_spectrum(const RunSpec& spec, const Network<Scalar>& net,
                                const Mat<Scalar>& input, int examples) {
  const int n0 = spec.input.width;
  const int nl = net.widths.back();
  examples = std::min<int>(examples, static_cast<int>(input.cols()));
  JacobianStats st;
  st.examples = examples;
  st.singular_values_per_example = std::min(n0, nl);
  // Regenerated weights are drawn again for every example: the Jacobian is opt-in and small.
  ThreadPool pool(0);
  std::vector<double> logs;  // log10 of every singular value
  double log10_cond = -std::numeric_limits<double>::infinity();
  for (int a = 0; a < examples; ++a) {
    // J = the tangents of the identity, propagated by the ops' own tangent rules (tangents.hpp),
    // with this example's dropout mask (batch column a).
    tangents::Scaled<Scalar> j;
    tangents::propagate<Scalar>(
        spec, net, Mat<Scalar>(input.col(a)),
        tangents::Scaled<Scalar>{Mat<Scalar>::Identity(n0, n0), 0}, pool,
        [&](std::size_t l, const Mat<Scalar>&, const tangents::Scaled<Scalar>& t) {
          if (l + 1 == net.ops.size()) j = t;
        },
        a);
    const Eigen::MatrixXd md = j.m.template cast<double>();
    const Eigen::BDCSVD<Eigen::MatrixXd> svd(md);
    const Eigen::VectorXd s = svd.singularValues();
    const double shift = static_cast<double>(j.exp2) * kLog10Of2;
    for (Eigen::Index i = 0; i < s.size(); ++i) logs.push_back(std::log10(s[i]) + shift);
    // A Jacobian that is exactly 0 has no condition number; a singular one has an infinite one.
    if (s.size() > 0 && s[0] > 0.0) {
      log10_cond = std::max(log10_cond, std::log10(s[0] / s[s.size() - 1]));
    }
  }
  if (logs.empty()) return st;
  st.log10_max = *std::max_element(logs.begin(), logs.end());
  st.log10_min = *std::min_element(logs.begin(), logs.end());
  // Undefined (NaN) when every example's Jacobian is exactly 0.
  st.log10_condition = std::isinf(log10_cond) && log10_cond < 0
                           ? std::numeric_limits<double>::quiet_NaN()
                           : log10_cond;
  if (std::isinf(st.log10_max)) {
    // Every singular value is 0: the mean square is exactly 0 (log10 -inf), with no histogram.
    st.log10_mean_square = st.log10_max;
  } else {
    // log10 mean of s^2 = log10 sum 10^(2 log s) - log10 count, summed relative to the largest.
    double sum = 0.0;
    for (double v : logs) sum += std::pow(10.0, 2.0 * (v - st.log10_max));
    st.log10_mean_square = 2.0 * st.log10_max + std::log10(sum / static_cast<double>(logs.size()));
  }
  const double e_in = predict_input_gradient_second_moment(spec);
  if (std::isfinite(e_in) && e_in > 0.0) {
    st.has_prediction = true;
    st.predicted_log10_mean_square = std::log10(e_in * n0 / static_cast<double>(std::min(n0, nl)));
  }
  if (std::isinf(st.log10_max)) return st;
  // The histogram spans at least a tenth of a decade, centred on a near-degenerate spectrum
  // (an orthogonal stack's are all 1 to rounding), so that rounding noise does not fill its bins.
  double lo = std::isfinite(st.log10_min) ? st.log10_min : st.log10_max - 1.0;
  double hi = st.log10_max;
  if (hi - lo < 0.1) {
    const double mid = 0.5 * (hi + lo);
    lo = mid - 0.05;
    hi = mid + 0.05;
  }
  st.histogram_edges.resize(kJacobianHistogramBins + 1);
  for (int b = 0; b <= kJacobianHistogramBins; ++b) {
    st.histogram_edges[static_cast<std::size_t>(b)] = lo + (hi - lo) * b / kJacobianHistogramBins;
  }
  st.histogram_counts.assign(kJacobianHistogramBins, 0);
  for (double v : logs) {
    int b = std::isfinite(v) ? static_cast<int>((v - lo) / (hi - lo) * kJacobianHistogramBins) : 0;
    b = std::clamp(b, 0, kJacobianHistogramBins - 1);
    ++st.histogram_counts[static_cast<std::size_t>(b)];
  }
  return st;
}

template JacobianStats jacobian_spectrum<float>(const RunSpec&, const Network<float>&,
                                                const Mat<float>&, int);
template JacobianStats jacobian_spectrum<double>(const RunSpec&, const Network<double>&,
                                                 const Mat<double>&, int);

}  // namespace gradscope
