// The averaged partial Jacobian norm by forward-mode propagation: K Gaussian tangent columns per
// example are carried op by op beside the examples' own signals (jacobian.cpp carries the whole
// identity instead), rescaled by exact powers of two, and ||J u||^2 / N_l is recorded after every
// op; then ln J is fitted against depth.
#include "gradscope/theory/apjn.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "core/ops/conv_kernels.hpp"
#include "core/ops/op.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/norm.hpp"
#include "gradscope/core/rng.hpp"
#include "theory/tangents.hpp"

namespace gradscope {

namespace {

using tangents::renormalise;
using tangents::Scaled;

template <class Scalar>
Scalar pow2(std::int64_t e) {
  return std::ldexp(Scalar(1), static_cast<int>(std::clamp<std::int64_t>(e, -2000, 2000)));
}

// out = w * m, by blocks of kRowsPerTask rows of w in parallel: the blocks are fixed by the shape,
// so every entry is the same sum whatever the thread count.
template <class Scalar, class W>
Mat<Scalar> product(const W& w, const Mat<Scalar>& m, ThreadPool& pool) {
  Mat<Scalar> out(w.rows(), m.cols());
  const Eigen::Index rows = w.rows();
  const std::int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  pool.run(tasks, [&](std::int64_t k) {
    const Eigen::Index r0 = static_cast<Eigen::Index>(k) * kRowsPerTask;
    const Eigen::Index nr = std::min<Eigen::Index>(kRowsPerTask, rows - r0);
    out.middleRows(r0, nr).noalias() = w.middleRows(r0, nr) * m;
  });
  return out;
}

// The tangents of one (example, tangent) pair of a sequence: the T columns j * K + k of the
// example's tokens j, rows [row, row + rows) of m.
template <class Scalar>
using Strided = Eigen::Map<Mat<Scalar>, 0, Eigen::OuterStride<>>;
template <class Scalar>
Strided<Scalar> sequence_of(Mat<Scalar>& m, Eigen::Index row, Eigen::Index rows,
                            Eigen::Index first_column, Eigen::Index tokens, Eigen::Index k_per) {
  return Strided<Scalar>(m.data() + first_column * m.rows() + row, rows, tokens,
                         Eigen::OuterStride<>(m.rows() * k_per));
}

// Attention's tangent rule, per (example, head) and tangent, at the forward values the op kept
// (q, k, v and P): dq, dk, dv = W_{q,k,v} u; dS = scale (dq^T k + q^T dk); dP = P * (dS -
// rowsum(P * dS)) (masked entries have P = 0 and stay 0); do = dv P^T + v dP^T; dy = Wo do.
template <class Scalar>
Mat<Scalar> attention_tangent(const OpSpec& op, const Mat<Scalar>& w,
                              const ops::OpCache<Scalar>& cache, Mat<Scalar>& t,
                              Eigen::Index tokens, Eigen::Index k_per, ThreadPool& pool) {
  const Eigen::Index d = w.cols();
  const Eigen::Index heads = op.attention.heads;
  const Eigen::Index dh = d / heads;
  const Eigen::Index examples = cache.inner.cols() / tokens;
  const Scalar scale = static_cast<Scalar>(attention_scale(op.attention, static_cast<int>(d)));
  Mat<Scalar> dqkv = product<Scalar>(w.topRows(3 * d), t, pool);
  Mat<Scalar> dout(d, t.cols());
  pool.run(examples * heads, [&](std::int64_t task) {
    const Eigen::Index e = task / heads;
    const Eigen::Index h = task % heads;
    const auto q = cache.inner.block(h * dh, e * tokens, dh, tokens);
    const auto k = cache.inner.block(d + h * dh, e * tokens, dh, tokens);
    const auto v = cache.inner.block(2 * d + h * dh, e * tokens, dh, tokens);
    const auto p = cache.probs.middleCols(task * tokens, tokens);  // (queries, keys)
    Mat<Scalar> ds(tokens, tokens);
    for (Eigen::Index kk = 0; kk < k_per; ++kk) {
      const Eigen::Index first = e * tokens * k_per + kk;
      const auto dq = sequence_of<Scalar>(dqkv, h * dh, dh, first, tokens, k_per);
      const auto dk = sequence_of<Scalar>(dqkv, d + h * dh, dh, first, tokens, k_per);
      const auto dv = sequence_of<Scalar>(dqkv, 2 * d + h * dh, dh, first, tokens, k_per);
      ds.noalias() = dq.transpose() * k;
      ds.noalias() += q.transpose() * dk;
      ds *= scale;
      const Mat<Scalar> pds = (p.array() * ds.array()).matrix();
      const Vec<Scalar> rowsum = pds.rowwise().sum();
      const Mat<Scalar> dp = pds - (p.array().colwise() * rowsum.array()).matrix();
      auto out = sequence_of<Scalar>(dout, h * dh, dh, first, tokens, k_per);
      out.noalias() = dv * p.transpose();
      out.noalias() += v * dp.transpose();
    }
  });
  if (!op.attention.output_projection) return dout;
  return product<Scalar>(w.middleRows(3 * d, d), dout, pool);
}

// The GLU's tangent rule at the forward values the op kept (phi(h1), h3, phi'(h1)):
// dy = W2 (phi'(h1) * (W1 u) * h3 + phi(h1) * (W3 u)), column by column.
template <class Scalar>
Mat<Scalar> glu_tangent(const OpSpec& op, const Mat<Scalar>& w, const ops::OpCache<Scalar>& cache,
                        const Mat<Scalar>& t, Eigen::Index k_per, ThreadPool& pool) {
  const Eigen::Index hidden = op.glu.hidden;
  Mat<Scalar> dh = product<Scalar>(w.topRows(2 * hidden), t, pool);  // [W1 u; W3 u]
  Mat<Scalar> m(hidden, t.cols());
  for (Eigen::Index j = 0; j < cache.inner.cols(); ++j) {
    const auto gate = cache.inner.col(j).head(hidden);
    const auto up = cache.inner.col(j).tail(hidden);
    const auto slope = cache.slope.col(j);
    for (Eigen::Index kk = 0; kk < k_per; ++kk) {
      const Eigen::Index c = j * k_per + kk;
      m.col(c) = (slope.array() * dh.col(c).head(hidden).array() * up.array() +
                  gate.array() * dh.col(c).tail(hidden).array())
                     .matrix();
    }
  }
  return product<Scalar>(w.bottomRows(hidden).transpose(), m, pool);
}

}  // namespace

template <class Scalar>
void tangents::propagate(
    const RunSpec& spec, const Network<Scalar>& net, Mat<Scalar> x, Scaled<Scalar> t,
    ThreadPool& pool,
    const std::function<void(std::size_t, const Mat<Scalar>&, const Scaled<Scalar>&)>& visit,
    Eigen::Index first_column) {
  const Eigen::Index examples = x.cols();  // columns: tokens of every example
  const Eigen::Index k_per = examples > 0 ? t.m.cols() / examples : 0;
  const Eigen::Index tokens = std::max(net.tokens, 1);
  Mat<Scalar> scratch;
  std::vector<std::pair<Mat<Scalar>, Scaled<Scalar>>> skips;  // (x, t) at residual begins
  for (std::size_t l = 0; l < net.ops.size(); ++l) {
    const OpSpec& op = net.ops[l];
    switch (op.kind) {
      case OpKind::kDense:
      case OpKind::kActivation: {
        Mat<Scalar> h;
        if (op.kind == OpKind::kDense) {
          const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
          h = product(w, x, pool);
          if (net.bias[l].size() > 0) h.colwise() += net.bias[l];
          t.m = product(w, t.m, pool);
        } else {
          h = x;
        }
        const ActivationSpec& act = op.kind == OpKind::kDense ? op.dense.activation : op.activation;
        Mat<Scalar> y(h.rows(), h.cols()), d(h.rows(), h.cols());
        activation_forward<Scalar>(act, h, y, d);
        for (Eigen::Index a = 0; a < examples; ++a) {
          auto ta = t.m.middleCols(a * k_per, k_per);
          if (act.kind == Activation::kSoftmax) {
            // J_softmax = diag(y) - y y^T.
            const Mat<Scalar> yt = y.col(a).transpose() * ta;
            ta = (y.col(a).asDiagonal() * ta - y.col(a) * yt).eval();
          } else {
            ta = d.col(a).asDiagonal() * ta;
          }
        }
        x = std::move(y);
        break;
      }
      case OpKind::kNorm: {
        Mat<Scalar> y(x.rows(), x.cols());
        Eigen::VectorXd rstd(norm_stat_count(op.norm.kind, x.rows(), x.cols()));
        norm_forward<Scalar>(op.norm, x, y, rstd);
        // layer_norm: rstd (I - 1 1^T / n - y y^T / n); rms_norm: rstd (I - y y^T / n).
        const Scalar n = static_cast<Scalar>(x.rows());
        for (Eigen::Index a = 0; a < examples; ++a) {
          auto ta = t.m.middleCols(a * k_per, k_per);
          Mat<Scalar> proj = ta - y.col(a) * ((y.col(a).transpose() * ta) / n);
          if (op.norm.kind == NormKind::kLayerNorm) proj.rowwise() -= ta.colwise().sum() / n;
          ta = static_cast<Scalar>(rstd[a]) * proj;
        }
        // A model's trained gamma and beta (loaded weights); generated norms have none.
        if (net.weight[l].size() > 0) {
          const auto gamma = net.weight[l].col(0);
          y.array().colwise() *= gamma.array();
          t.m.array().colwise() *= gamma.array();
          if (net.bias[l].size() > 0) y.colwise() += net.bias[l];
        }
        x = std::move(y);
        break;
      }
      case OpKind::kDropout: {
        // The pass's own mask: example a is column a of the batch.
        const std::uint64_t key = stream_key(spec.seed, l + 1, StreamPurpose::kDropout);
        const Scalar scale = static_cast<Scalar>(1.0 / (1.0 - op.dropout));
        for (Eigen::Index a = 0; a < examples; ++a) {
          for (Eigen::Index i = 0; i < x.rows(); ++i) {
            const auto k = static_cast<std::uint64_t>((first_column + a) * x.rows() + i);
            const Scalar keep = uniform01(key, k) >= op.dropout ? scale : Scalar(0);
            x(i, a) *= keep;
            t.m.row(i).segment(a * k_per, k_per) *= keep;
          }
        }
        break;
      }
      case OpKind::kResidualBegin:
        skips.emplace_back(x, t);
        break;
      case OpKind::kResidualEnd: {
        auto [sx, st] = std::move(skips.back());
        skips.pop_back();
        const Scalar scale = static_cast<Scalar>(op.residual.scale);
        if (op.residual.conv_projection()) {
          // The learned 1x1 convolution (its batch norm is refused by apjn_refusal): linear in u.
          const ops::ConvShape shape = ops::projection_shape(op.residual, op.image);
          const Mat<Scalar> w = ops::conv_applied_weight(ops::projection_ws_spec(op.residual),
                                                         weight_of(net, l, scratch, pool));
          Mat<Scalar> px, pt;
          ops::conv2d_forward<Scalar>(sx, w, Vec<Scalar>(), shape, px, pool);
          ops::conv2d_forward<Scalar>(st.m, w, Vec<Scalar>(), shape, pt, pool);
          sx = std::move(px);
          st.m = std::move(pt);
        } else if (op.residual.projection) {
          const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
          sx = product(w, sx, pool);
          st.m = product(w, st.m, pool);
        }
        if (op.residual.skip != 1.0) {
          const Scalar k = static_cast<Scalar>(op.residual.skip);
          sx *= k;
          st.m *= k;
        }
        x = sx + scale * x;
        // Both tangents at the larger exponent before adding.
        if (st.exp2 >= t.exp2) {
          t.m = st.m + scale * t.m * pow2<Scalar>(t.exp2 - st.exp2);
          t.exp2 = st.exp2;
        } else {
          t.m = scale * t.m + st.m * pow2<Scalar>(st.exp2 - t.exp2);
        }
        break;
      }
      case OpKind::kAttention:
      case OpKind::kGlu: {
        // The op's own forward pass, keeping what its tangent rule reads.
        const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
        const ops::ForwardArgs<Scalar> fa{op,          l,      spec.seed, x,    nullptr, w,
                                          net.bias[l], tokens, true,      0.05, pool};
        ops::OpCache<Scalar> cache;
        cache.out.resize(net.widths[l], x.cols());
        if (op.kind == OpKind::kAttention) {
          ops::attention_forward<Scalar>(fa, cache, nullptr);
          t.m = attention_tangent<Scalar>(op, w, cache, t.m, tokens, k_per, pool);
        } else {
          ops::glu_forward<Scalar>(fa, cache, nullptr);
          t.m = glu_tangent<Scalar>(op, w, cache, t.m, k_per, pool);
        }
        x = std::move(cache.out);
        break;
      }
      case OpKind::kConv: {
        // h = conv(x) + b, J u = phi'(h) * conv(u): the convolution is linear in u.
        const ops::ConvShape shape = ops::conv_shape(op.conv);
        const Mat<Scalar> w = ops::conv_applied_weight(op.conv, weight_of(net, l, scratch, pool));
        Mat<Scalar> h;
        ops::conv2d_forward<Scalar>(x, w, net.bias[l], shape, h, pool);
        Mat<Scalar> ct;
        ops::conv2d_forward<Scalar>(t.m, w, Vec<Scalar>(), shape, ct, pool);
        Mat<Scalar> y(h.rows(), h.cols()), d(h.rows(), h.cols());
        activation_forward<Scalar>(op.conv.activation, h, y, d);
        for (Eigen::Index a = 0; a < examples; ++a) {
          ct.middleCols(a * k_per, k_per).array().colwise() *= d.col(a).array();
        }
        t.m = std::move(ct);
        x = std::move(y);
        break;
      }
      case OpKind::kPool: {
        const ops::PoolShape shape = ops::pool_shape(op.pool);
        Mat<Scalar> y, pt;
        if (op.pool.kind == PoolKind::kMax) {
          // The tangent of the cell each window chose.
          ops::ArgmaxMat argmax;
          ops::max_pool2d_forward<Scalar>(x, shape, y, argmax, pool);
          pt.resize(y.rows(), t.m.cols());
          for (Eigen::Index a = 0; a < examples; ++a) {
            for (Eigen::Index kk = 0; kk < k_per; ++kk) {
              const Eigen::Index c = a * k_per + kk;
              for (Eigen::Index r = 0; r < y.rows(); ++r) pt(r, c) = t.m(argmax(r, a), c);
            }
          }
        } else if (op.pool.kind == PoolKind::kAverage) {
          ops::avg_pool2d_forward<Scalar>(x, shape, y, pool);
          ops::avg_pool2d_forward<Scalar>(t.m, shape, pt, pool);
        } else {
          ops::global_avg_pool_forward<Scalar>(x, shape, y, pool);
          ops::global_avg_pool_forward<Scalar>(t.m, shape, pt, pool);
        }
        t.m = std::move(pt);
        x = std::move(y);
        break;
      }
      case OpKind::kFlatten:
        break;
    }
    renormalise(t);
    visit(l, x, t);
  }
}

template void tangents::propagate<float>(
    const RunSpec&, const Network<float>&, Mat<float>, Scaled<float>, ThreadPool&,
    const std::function<void(std::size_t, const Mat<float>&, const Scaled<float>&)>&, Eigen::Index);
template void tangents::propagate<double>(
    const RunSpec&, const Network<double>&, Mat<double>, Scaled<double>, ThreadPool&,
    const std::function<void(std::size_t, const Mat<double>&, const Scaled<double>&)>&,
    Eigen::Index);

std::string apjn_refusal(const RunSpec& spec) {
  for (const OpSpec& op : expand_ops(spec)) {
    if ((op.kind == OpKind::kNorm && op.norm.kind == NormKind::kBatchNorm) ||
        (op.kind == OpKind::kResidualEnd && op.residual.conv_projection() &&
         op.residual.projection_norm &&
         op.residual.projection_norm->kind == NormKind::kBatchNorm)) {
      return "batch norm couples the examples: no per-example Jacobian";
    }
  }
  return {};
}

template <class Scalar>
std::vector<Eigen::MatrixXd> forward_tangents(const RunSpec& spec, const Network<Scalar>& net,
                                              const Mat<Scalar>& inputs,
                                              const Mat<Scalar>& tangents, ThreadPool& pool) {
  std::vector<Eigen::MatrixXd> out(net.ops.size());
  gradscope::tangents::propagate<Scalar>(
      spec, net, inputs, Scaled<Scalar>{tangents, 0}, pool,
      [&](std::size_t l, const Mat<Scalar>&, const Scaled<Scalar>& t) {
        out[l] = t.m.template cast<double>() * std::ldexp(1.0, static_cast<int>(t.exp2));
      });
  return out;
}

template <class Scalar>
CriticalityStats partial_jacobian_norms(const RunSpec& spec, const Network<Scalar>& net,
                                        const Mat<Scalar>& input, ThreadPool& pool, int examples,
                                        int tangents) {
  CriticalityStats st;
  st.reason = apjn_refusal(spec);
  if (!st.reason.empty()) return st;
  const Eigen::Index tokens = std::max(net.tokens, 1);
  examples = std::min<int>(examples, static_cast<int>(input.cols() / tokens));
  if (examples <= 0 || tangents <= 0) {
    st.reason = "no example to measure it at";
    return st;
  }
  st.examples = examples;
  st.tangents = tangents;
  const Eigen::Index n0 = input.rows();
  // Column j * K + k is tangent k at input column j (token j % T of example j / T): a stream cut
  // into columns keeps the first examples' tangents whatever the number of examples. A tangent of
  // a sequence is its T columns together.
  const Eigen::Index columns = Eigen::Index{examples} * tokens * tangents;
  Eigen::MatrixXd u(n0, columns);
  fill_normal(stream_key(spec.seed, 0, StreamPurpose::kApjnTangent), 0,
              static_cast<std::uint64_t>(u.size()), u.data());
  // Which ops are on the stream (outside every residual branch), and their report indices.
  std::vector<int> report_index(net.ops.size(), 0);
  std::vector<bool> on_stream(net.ops.size(), false);
  int depth = 0, reported = 0;
  for (std::size_t l = 0; l < net.ops.size(); ++l) {
    const OpKind kind = net.ops[l].kind;
    if (kind == OpKind::kResidualBegin) {
      ++depth;
      continue;
    }
    if (kind == OpKind::kResidualEnd) --depth;
    report_index[l] = ++reported;
    on_stream[l] = depth == 0;
  }
  // The blocks' boundaries on the stream: the op before each residual begin at depth 0 (the
  // block's input), and the last block's output: its sum, then as many norms as the blocks before
  // it apply after theirs (post-norm), not a final norm that only pre-norm networks add.
  std::vector<bool> boundary(net.ops.size(), false);
  std::vector<std::size_t> ends;  // the residual ends at depth 0
  depth = 0;
  for (std::size_t l = 0; l < net.ops.size(); ++l) {
    const OpKind kind = net.ops[l].kind;
    if (kind == OpKind::kResidualBegin) {
      if (depth == 0 && l > 0) boundary[l - 1] = true;
      ++depth;
    } else if (kind == OpKind::kResidualEnd) {
      if (--depth == 0) ends.push_back(l);
    }
  }
  if (!ends.empty()) {
    std::size_t post = 0;  // norms after a block's sum, counted on the block before the last
    if (ends.size() > 1) {
      for (std::size_t l = ends[ends.size() - 2] + 1;
           l < net.ops.size() && net.ops[l].kind == OpKind::kNorm; ++l) {
        ++post;
      }
    }
    std::size_t last = ends.back();
    for (std::size_t k = 0;
         k < post && last + 1 < net.ops.size() && net.ops[last + 1].kind == OpKind::kNorm; ++k) {
      ++last;
    }
    boundary[last] = true;
  }
  // Once a forward value overflows (or is NaN) the derivatives taken at it mean nothing: J from
  // that op on is not measured (NaN), rather than a plateau a fit would call critical.
  bool overflowed = false;
  gradscope::tangents::propagate<Scalar>(
      spec, net, input.leftCols(examples * tokens), Scaled<Scalar>{u.cast<Scalar>(), 0}, pool,
      [&](std::size_t l, const Mat<Scalar>& x, const Scaled<Scalar>& t) {
        overflowed = overflowed || !x.allFinite();
        if (!on_stream[l]) return;
        if (!ends.empty()) st.fitted.push_back(boundary[l]);
        if (overflowed) {
          st.layers.push_back(report_index[l]);
          st.apjn.push_back(magnitude_from_scaled(std::numeric_limits<double>::quiet_NaN(), 0));
          return;
        }
        // Mean over examples and tangents of ||J u||^2 / N_l (N_l: the op's width times the
        // tokens), summed in double.
        const double mean = t.m.template cast<double>().squaredNorm() /
                            (static_cast<double>(columns) * static_cast<double>(t.m.rows()));
        st.layers.push_back(report_index[l]);
        st.apjn.push_back(magnitude_from_scaled(mean, 2 * t.exp2));
      });
  fit_apjn(st);
  return st;
}

void fit_apjn(CriticalityStats& st) {
  st.fit = ApjnFit::kNone;
  std::vector<double> ls, ys;
  const auto fitted = [&](std::size_t i) {
    return i < st.layers.size() && (st.fitted.empty() || (i < st.fitted.size() && st.fitted[i]));
  };
  for (std::size_t i = 0; i < st.layers.size() && i < st.apjn.size(); ++i) {
    const double y = st.apjn[i].log10 * std::log(10.0);
    if (fitted(i) && st.layers[i] >= 1 && std::isfinite(y)) {
      ls.push_back(st.layers[i]);
      ys.push_back(y);
    }
  }
  // Over the measured layers: an overflow leaves the last ones NaN.
  std::size_t first = st.apjn.size(), last = st.apjn.size();
  for (std::size_t i = 0; i < st.apjn.size(); ++i) {
    if (!fitted(i) || !std::isfinite(st.apjn[i].log10)) continue;
    if (first == st.apjn.size()) first = i;
    last = i;
  }
  if (first < st.apjn.size()) st.growth = magnitude_ratio(st.apjn[last], st.apjn[first]);
  if (ls.size() < 3) return;
  // Least squares y = a + b x, returning (b, residual sum of squares), centred for accuracy.
  const auto line = [&](const std::function<double(double)>& xf) {
    const auto n = static_cast<double>(ls.size());
    double mx = 0.0, my = 0.0;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      mx += xf(ls[i]);
      my += ys[i];
    }
    mx /= n;
    my /= n;
    double sxx = 0.0, sxy = 0.0;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      sxx += (xf(ls[i]) - mx) * (xf(ls[i]) - mx);
      sxy += (xf(ls[i]) - mx) * (ys[i] - my);
    }
    const double b = sxx > 0.0 ? sxy / sxx : 0.0;
    double rss = 0.0;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      const double e = ys[i] - my - b * (xf(ls[i]) - mx);
      rss += e * e;
    }
    return std::pair{b, rss};
  };
  const auto [b, rss_p] = line([](double l) { return std::log(l); });
  const auto [r, rss_e] = line([](double l) { return l; });
  st.power_exponent = b;
  st.power_rss = rss_p;
  st.exponential_rate = r;
  st.exponential_rss = rss_e;
  // A tie (a flat J fits both exactly) is critical.
  st.fit = rss_e < rss_p ? ApjnFit::kExponential : ApjnFit::kPowerLaw;
}

template std::vector<Eigen::MatrixXd> forward_tangents<float>(const RunSpec&, const Network<float>&,
                                                              const Mat<float>&, const Mat<float>&,
                                                              ThreadPool&);
template std::vector<Eigen::MatrixXd> forward_tangents<double>(const RunSpec&,
                                                               const Network<double>&,
                                                               const Mat<double>&,
                                                               const Mat<double>&, ThreadPool&);
template CriticalityStats partial_jacobian_norms<float>(const RunSpec&, const Network<float>&,
                                                        const Mat<float>&, ThreadPool&, int, int);
template CriticalityStats partial_jacobian_norms<double>(const RunSpec&, const Network<double>&,
                                                         const Mat<double>&, ThreadPool&, int, int);

}  // namespace gradscope
