// The attention op: multi-head self-attention over each example's tokens (spec.hpp's
// AttentionSpec), with the softmax computed stably (the row's largest logit subtracted first).
// Forward: [q; k; v] = Wqkv x + b, per (example, head) P = softmax(scale q^T k) (causal: keys up to
// the query), o = v P^T, y = Wo o + bo. Backward, per (example, head), with dO the gradient at o:
// dV = dO P, dP = dO^T v, dS = P * (dP - rowsum(P * dP)), dQ = scale k dS^T, dK = scale q dS; then
// the projections' weight gradients and dx = Wqkv^T [dQ; dK; dV]. Every step is linear in the
// incoming gradient, so it runs on the scaled gradient (dL/dy / 2^exp2) unchanged.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/ops/op.hpp"
#include "core/ops/param_stats.hpp"
#include "core/tasks.hpp"

namespace gradscope::ops {

namespace {

// The shapes of one attention op: d features, h heads of dh features, T tokens, E examples.
struct Dims {
  Eigen::Index d, heads, dh, tokens, examples;
};

template <class Scalar>
Dims dims_of(const OpSpec& op, const Mat<Scalar>& x, Eigen::Index tokens) {
  const Eigen::Index d = x.rows();
  const Eigen::Index heads = op.attention.heads;
  return {d, heads, d / heads, tokens, x.cols() / tokens};
}

// What one (example, head) task learns about its attention rows.
struct RowPartial {
  double entropy = 0.0;  // sum over rows of -sum P ln P
  double max_logit = -std::numeric_limits<double>::infinity();
  std::int64_t peaked = 0;    // rows of two keys or more whose largest weight exceeds 0.99
  std::int64_t choosing = 0;  // finite rows of two keys or more
  std::int64_t rows = 0;
  std::int64_t nonfinite_rows = 0;  // rows with a non-finite logit: no entropy
};

// out = rows [begin, begin + n) of w times x plus the same rows of the bias (when it is not
// empty), a block of rows a task. `out` (n, batch) may be a block of a larger matrix.
template <class Scalar, class Out>
void project_rows(const Mat<Scalar>& w, Eigen::Index begin, Eigen::Index n, const Vec<Scalar>& b,
                  const Eigen::Ref<const Mat<Scalar>>& x, Out&& out, ThreadPool& pool) {
  pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    auto block = out.middleRows(r.begin, r.size);
    block.noalias() = w.middleRows(begin + r.begin, r.size) * x;
    if (b.size() > 0) block.colwise() += b.segment(begin + r.begin, r.size);
  });
}

// P = softmax(scale q^T k) for one (example, head): rows are queries, columns keys. Masked
// entries (key after the query, when causal) are exactly 0.
template <class Scalar>
void attention_probs(const Eigen::Ref<const Mat<Scalar>>& q, const Eigen::Ref<const Mat<Scalar>>& k,
                     Scalar scale, bool causal, Eigen::Ref<Mat<Scalar>> p, RowPartial* part) {
  const Eigen::Index tokens = q.cols();
  p.noalias() = q.transpose() * k;  // (T, T)
  p *= scale;
  for (Eigen::Index t = 0; t < tokens; ++t) {
    const Eigen::Index keys = causal ? t + 1 : tokens;
    Scalar m = -std::numeric_limits<Scalar>::infinity();
    bool finite = true;
    for (Eigen::Index j = 0; j < keys; ++j) {
      const Scalar s = p(t, j);
      finite = finite && std::isfinite(s);
      m = std::max(m, s);
    }
    if (part != nullptr && finite) part->max_logit = std::max(part->max_logit, double(m));
    Scalar sum = 0;
    for (Eigen::Index j = 0; j < keys; ++j) {
      const Scalar e = std::exp(p(t, j) - m);
      p(t, j) = e;
      sum += e;
    }
    for (Eigen::Index j = 0; j < keys; ++j) p(t, j) /= sum;
    for (Eigen::Index j = keys; j < tokens; ++j) p(t, j) = 0;
    if (part == nullptr) continue;
    ++part->rows;
    if (!finite || !std::isfinite(sum)) {
      ++part->nonfinite_rows;
      continue;
    }
    double h = 0.0;
    double largest = 0.0;
    for (Eigen::Index j = 0; j < keys; ++j) {
      const double w = static_cast<double>(p(t, j));
      if (w > 0.0) h -= w * std::log(w);
      largest = std::max(largest, w);
    }
    part->entropy += h;
    // A causal first row sees one key: its weight is 1 whatever the logits, so it is not counted.
    if (keys > 1) {
      ++part->choosing;
      part->peaked += largest > 0.99;
    }
  }
}

}  // namespace

template <class Scalar>
void attention_forward(const ForwardArgs<Scalar>& a, OpCache<Scalar>& cache, ForwardStats* fs) {
  const Mat<Scalar>& x = a.inp;  // (d, batch)
  const Mat<Scalar>& w = a.weight;
  const AttentionSpec& spec = a.op.attention;
  const Dims n = dims_of(a.op, x, a.tokens);
  const Scalar scale = static_cast<Scalar>(attention_scale(spec, static_cast<int>(n.d)));
  Mat<Scalar> inner(4 * n.d, x.cols());  // [q; k; v; o]
  project_rows<Scalar>(w, 0, 3 * n.d, a.bias, x, inner.topRows(3 * n.d), a.pool);
  const Eigen::Index pairs = n.examples * n.heads;
  Mat<Scalar> probs(n.tokens, n.tokens * pairs);  // P of pair e * heads + h at columns (e h) T
  const bool stats = fs != nullptr;
  std::vector<RowPartial> parts(static_cast<std::size_t>(stats ? pairs : 0));
  a.pool.run(pairs, [&](std::int64_t task) {
    const Eigen::Index e = task / n.heads;
    const Eigen::Index h = task % n.heads;
    const Eigen::Index c = e * n.tokens;
    auto q = inner.block(h * n.dh, c, n.dh, n.tokens);
    auto k = inner.block(n.d + h * n.dh, c, n.dh, n.tokens);
    auto v = inner.block(2 * n.d + h * n.dh, c, n.dh, n.tokens);
    auto p = probs.middleCols(task * n.tokens, n.tokens);
    attention_probs<Scalar>(q, k, scale, spec.causal, p,
                            stats ? &parts[static_cast<std::size_t>(task)] : nullptr);
    inner.block(3 * n.d + h * n.dh, c, n.dh, n.tokens).noalias() = v * p.transpose();
  });
  Mat<Scalar>& y = cache.out;  // (d, batch)
  if (spec.output_projection) {
    y.resize(n.d, x.cols());
    project_rows<Scalar>(w, 3 * n.d, n.d, a.bias, inner.bottomRows(n.d), y, a.pool);
  } else {
    y = inner.bottomRows(n.d);
  }
  if (stats) {
    std::vector<ForwardPartial> out_parts(static_cast<std::size_t>(row_tasks(n.d)));
    a.pool.run(row_tasks(n.d), [&](std::int64_t t) {
      const Range r = task_rows(t, n.d);
      ForwardPartial& part = out_parts[static_cast<std::size_t>(t)];
      accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
      accumulate_output_block<Scalar>(y.middleRows(r.begin, r.size), part);
    });
    finish_output_stats(out_parts, n.d, y.cols(), *fs);
    RowPartial total;
    for (const RowPartial& p : parts) {
      total.entropy += p.entropy;
      total.max_logit = std::max(total.max_logit, p.max_logit);
      total.peaked += p.peaked;
      total.choosing += p.choosing;
      total.rows += p.rows;
      total.nonfinite_rows += p.nonfinite_rows;
    }
    fs->has_attention = true;
    const std::int64_t finite_rows = total.rows - total.nonfinite_rows;
    fs->attention_entropy =
        finite_rows > 0 ? total.entropy / static_cast<double>(finite_rows) : kNaN;
    fs->attention_max_logit = std::isinf(total.max_logit) ? kNaN : total.max_logit;
    fs->attention_peaked_fraction =
        total.choosing > 0 ? static_cast<double>(total.peaked) / static_cast<double>(total.choosing)
                           : kNaN;
  }
  if (a.keep) {
    cache.inner = std::move(inner);
    cache.probs = std::move(probs);
  }
}

template <class Scalar>
GradPartial attention_backward(const BackwardArgs<Scalar>& a, ScaledGrad<Scalar>& grad,
                               const BackwardReport& report) {
  const Mat<Scalar>& x = a.inp;  // (d, batch)
  const Mat<Scalar>& w = a.weight;
  const AttentionSpec& spec = a.op.attention;
  const Dims n = dims_of(a.op, x, a.tokens);
  const Scalar scale = static_cast<Scalar>(attention_scale(spec, static_cast<int>(n.d)));
  const Mat<Scalar>& inner = a.cache.inner;  // [q; k; v; o]
  const Mat<Scalar>& probs = a.cache.probs;
  const Mat<Scalar>& g = grad.g;  // dL/dy / 2^exp2, (d, batch)
  const std::int64_t exp2 = grad.exp2;
  const bool has_bias = a.bias.size() > 0;
  BackwardStats& bs = *report.stats;
  ParamSums weights, biases;
  std::vector<ParamStats> params;

  // At o: dO = Wo^T g, and Wo's own gradient g o^T.
  Mat<Scalar> d_o;  // (d, batch)
  Mat<Scalar> dwo;  // (d, d)
  if (spec.output_projection) {
    d_o.resize(n.d, x.cols());
    product_by_rows(w.bottomRows(n.d).transpose(), g, d_o, a.pool);
    dwo.resize(n.d, n.d);
    product_by_rows(g, inner.bottomRows(n.d).transpose(), dwo, a.pool);
  } else {
    d_o = g;
  }
  // Per (example, head): dQ, dK, dV into dqkv (3d, batch).
  Mat<Scalar> dqkv(3 * n.d, x.cols());
  const Eigen::Index pairs = n.examples * n.heads;
  a.pool.run(pairs, [&](std::int64_t task) {
    const Eigen::Index e = task / n.heads;
    const Eigen::Index h = task % n.heads;
    const Eigen::Index c = e * n.tokens;
    auto q = inner.block(h * n.dh, c, n.dh, n.tokens);
    auto k = inner.block(n.d + h * n.dh, c, n.dh, n.tokens);
    auto v = inner.block(2 * n.d + h * n.dh, c, n.dh, n.tokens);
    auto p = probs.middleCols(task * n.tokens, n.tokens);
    auto dout = d_o.block(h * n.dh, c, n.dh, n.tokens);
    dqkv.block(2 * n.d + h * n.dh, c, n.dh, n.tokens).noalias() = dout * p;
    Mat<Scalar> ds(n.tokens, n.tokens);
    ds.noalias() = dout.transpose() * v;  // dP
    for (Eigen::Index t = 0; t < n.tokens; ++t) {
      const Scalar dot = (p.row(t).array() * ds.row(t).array()).sum();
      ds.row(t) = (p.row(t).array() * (ds.row(t).array() - dot)).matrix();
    }
    dqkv.block(h * n.dh, c, n.dh, n.tokens).noalias() = scale * (k * ds.transpose());
    dqkv.block(n.d + h * n.dh, c, n.dh, n.tokens).noalias() = scale * (q * ds);
  });

  // The projections' gradients, each on its own: dWq = dQ x^T, ...
  const std::int64_t d = n.d;
  for (int j = 0; j < 4; ++j) {
    const bool out = j == 3;
    if (out && !spec.output_projection) break;
    const std::string name(kAttentionProjections[static_cast<std::size_t>(j)]);
    Mat<Scalar> dw;
    if (out) {
      dw = std::move(dwo);
    } else {
      dw.resize(n.d, n.d);
      product_by_rows(dqkv.middleRows(j * n.d, n.d), x.transpose(), dw, a.pool);
    }
    params.push_back(param_stats<Scalar>(name + ".weight", {d, d}, dw, w.middleRows(j * n.d, n.d),
                                         exp2, a.optimizer, weights));
    if (report.dweight != nullptr) {
      report.dweight->conservativeResize(w.rows(), n.d);
      report.dweight->middleRows(j * n.d, n.d) = unscaled(dw, exp2);
    }
    if (has_bias) {
      const Mat<Scalar> db = (out ? g : Mat<Scalar>(dqkv.middleRows(j * n.d, n.d))).rowwise().sum();
      const Mat<Scalar> b = a.bias.segment(j * n.d, n.d);
      params.push_back(param_stats<Scalar>(name + ".bias", {d}, db, b, exp2, a.optimizer, biases));
      if (report.dbias != nullptr) {
        report.dbias->conservativeResize(a.bias.size());
        report.dbias->segment(j * n.d, n.d) = unscaled(db, exp2);
      }
    }
  }
  fill_total_param_stats(weights, biases, has_bias, exp2, a.optimizer, bs);
  bs.params = std::move(params);

  // dx = Wq^T dQ + Wk^T dK + Wv^T dV, a block of rows a task; always formed, as the op's
  // gradient statistic is dL/dx.
  Mat<Scalar> dinp(n.d, x.cols());
  std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n.d)));
  a.pool.run(static_cast<std::int64_t>(parts.size()), [&](std::int64_t t) {
    const Range r = task_rows(t, n.d);
    auto block = dinp.middleRows(r.begin, r.size);
    block.noalias() = w.topRows(3 * n.d).middleCols(r.begin, r.size).transpose() * dqkv;
    accumulate_gradient_block<Scalar>(block, parts[static_cast<std::size_t>(t)]);
  });
  const GradPartial dinp_stats = merge_parts(parts);
  fill_grad_stats(dinp_stats, exp2, bs);
  if (report.dpreact != nullptr) *report.dpreact = unscaled(dinp, exp2);
  grad.g = std::move(dinp);
  return dinp_stats;
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                   \
  template void attention_forward<Scalar>(const ForwardArgs<Scalar>&, OpCache<Scalar>&, \
                                          ForwardStats*);                               \
  template GradPartial attention_backward<Scalar>(const BackwardArgs<Scalar>&,          \
                                                  ScaledGrad<Scalar>&, const BackwardReport&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
