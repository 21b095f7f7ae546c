// The input-output Jacobian by forward-mode propagation: M = dx^l / dx^0 (n_l x n_0) is carried
// op by op for one example, rescaled by exact powers of two, then its singular values are taken
// in double.
#include "gradscope/theory/jacobian.hpp"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/ops/conv_kernels.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/norm.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/theory/prediction.hpp"

namespace gradscope {

namespace {

constexpr double kLog10Of2 = 0.30102999566398119521;

// The matrix and its scale: the true Jacobian is m * 2^exp2.
template <class Scalar>
struct Scaled {
  Mat<Scalar> m;
  std::int64_t exp2 = 0;
};

template <class Scalar>
void renormalise(Scaled<Scalar>& s) {
  const double norm = static_cast<double>(s.m.norm());
  if (!(norm > 0.0) || !std::isfinite(norm)) return;
  const int e = std::ilogb(norm);
  if (e > 16 || e < -16) {
    s.m *= std::ldexp(Scalar(1), -e);
    s.exp2 += e;
  }
}

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
    if (op.kind == OpKind::kNorm && op.norm.kind == NormKind::kBatchNorm) {
      throw Error(
          "--jacobian refused: batch norm makes each example's output depend on the "
          "others, so there is no per-example input-output Jacobian",
          "use layer_norm or rms_norm, or run without --jacobian");
    }
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
  Mat<Scalar> scratch;
  std::vector<double> logs;  // log10 of every singular value
  double log10_cond = -std::numeric_limits<double>::infinity();
  for (int a = 0; a < examples; ++a) {
    Mat<Scalar> x = input.col(a);  // (n, 1): this example's signal
    Scaled<Scalar> j{Mat<Scalar>::Identity(n0, n0), 0};
    std::vector<std::pair<Mat<Scalar>, Scaled<Scalar>>> skips;  // (x, J) at residual begins
    for (std::size_t l = 0; l < net.ops.size(); ++l) {
      const OpSpec& op = net.ops[l];
      switch (op.kind) {
        case OpKind::kDense:
        case OpKind::kActivation: {
          Mat<Scalar> h = x;
          if (op.kind == OpKind::kDense) {
            const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
            h = w * x + net.bias[l];
            j.m = (w * j.m).eval();
          }
          const ActivationSpec& act =
              op.kind == OpKind::kDense ? op.dense.activation : op.activation;
          Mat<Scalar> y(h.rows(), 1), d(h.rows(), 1);
          activation_forward<Scalar>(act, h, y, d);
          if (act.kind == Activation::kSoftmax) {
            // J_softmax = diag(y) - y y^T.
            const Mat<Scalar> yt_m = y.transpose() * j.m;
            j.m = (y.asDiagonal() * j.m - y * yt_m).eval();
          } else {
            j.m = (d.col(0).asDiagonal() * j.m).eval();
          }
          x = y;
          break;
        }
        case OpKind::kNorm: {
          Mat<Scalar> y(x.rows(), 1);
          Eigen::VectorXd rstd(1);
          norm_forward<Scalar>(op.norm, x, y, rstd);
          // layer_norm: rstd (I - 1 1^T / n - y y^T / n); rms_norm: rstd (I - y y^T / n).
          const Scalar n = static_cast<Scalar>(x.rows());
          Mat<Scalar> proj = j.m - y * ((y.transpose() * j.m) / n);
          if (op.norm.kind == NormKind::kLayerNorm) {
            proj.rowwise() -= j.m.colwise().sum() / n;
          }
          j.m = static_cast<Scalar>(rstd[0]) * proj;
          x = y;
          break;
        }
        case OpKind::kDropout: {
          const std::uint64_t key = stream_key(spec.seed, l + 1, StreamPurpose::kDropout);
          const Scalar scale = static_cast<Scalar>(1.0 / (1.0 - op.dropout));
          for (Eigen::Index i = 0; i < x.rows(); ++i) {
            const auto k = static_cast<std::uint64_t>(a * x.rows() + i);
            const Scalar keep = uniform01(key, k) >= op.dropout ? scale : Scalar(0);
            x(i, 0) *= keep;
            j.m.row(i) *= keep;
          }
          break;
        }
        case OpKind::kResidualBegin:
          skips.emplace_back(x, j);
          break;
        case OpKind::kResidualEnd: {
          auto [sx, sj] = std::move(skips.back());
          skips.pop_back();
          const Scalar scale = static_cast<Scalar>(op.residual.scale);
          if (op.residual.projection) {
            const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
            sx = (w * sx).eval();
            sj.m = (w * sj.m).eval();
          }
          if (op.residual.skip != 1.0) {
            const Scalar k = static_cast<Scalar>(op.residual.skip);
            sx *= k;
            sj.m *= k;
          }
          x = sx + scale * x;
          // Bring both Jacobians to the larger exponent before adding.
          if (sj.exp2 >= j.exp2) {
            j.m = sj.m + scale * j.m *
                             std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(
                                                       j.exp2 - sj.exp2, -2000)));
            j.exp2 = sj.exp2;
          } else {
            j.m =
                scale * j.m + sj.m * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(
                                                               sj.exp2 - j.exp2, -2000)));
          }
          break;
        }
        case OpKind::kConv: {
          // h = conv(x) + b, J <- phi'(h) * conv(J): each column of J is an image tangent.
          const ops::ConvShape shape = ops::conv_shape(op.conv);
          const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
          Mat<Scalar> h, cj;
          ops::conv2d_forward<Scalar>(x, w, net.bias[l], shape, h, pool);
          ops::conv2d_forward<Scalar>(j.m, w, Vec<Scalar>(), shape, cj, pool);
          Mat<Scalar> y(h.rows(), 1), d(h.rows(), 1);
          activation_forward<Scalar>(op.conv.activation, h, y, d);
          j.m = d.col(0).asDiagonal() * cj;
          x = std::move(y);
          break;
        }
        case OpKind::kPool: {
          const ops::PoolShape shape = ops::pool_shape(op.pool);
          Mat<Scalar> y, pj;
          if (op.pool.kind == PoolKind::kMax) {
            // The row of the cell each window chose.
            ops::ArgmaxMat argmax;
            ops::max_pool2d_forward<Scalar>(x, shape, y, argmax, pool);
            pj.resize(y.rows(), j.m.cols());
            for (Eigen::Index r = 0; r < y.rows(); ++r) pj.row(r) = j.m.row(argmax(r, 0));
          } else if (op.pool.kind == PoolKind::kAverage) {
            ops::avg_pool2d_forward<Scalar>(x, shape, y, pool);
            ops::avg_pool2d_forward<Scalar>(j.m, shape, pj, pool);
          } else {
            ops::global_avg_pool_forward<Scalar>(x, shape, y, pool);
            ops::global_avg_pool_forward<Scalar>(j.m, shape, pj, pool);
          }
          j.m = std::move(pj);
          x = std::move(y);
          break;
        }
        case OpKind::kFlatten:  // the same features, as a vector
          break;
        case OpKind::kAttention:  // refused by check_jacobian_request
        case OpKind::kGlu:
          throw contract_error("jacobian_spectrum: no Jacobian for " +
                               std::string(op_kind_name(op.kind)) + " ops");
      }
      renormalise(j);
    }
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
