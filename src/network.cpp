// Forward and backward passes over the flattened architecture with the statistics gathered on
// the way. Work is cut into tasks by the problem's shape alone (kRowsPerTask units, or
// kColumnsPerTask examples for per-example norms); each task writes its own slice and its own
// partial sums, combined in task order, so results are bit-identical for any thread count.
#include "gradscope/network.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "gradscope/norm.hpp"
#include "gradscope/rng.hpp"
#include "gradscope/stats.hpp"

namespace gradscope {

namespace {

// Examples handled by one task of a per-example (column-wise) computation.
constexpr Eigen::Index kColumnsPerTask = 32;

struct Range {
  Eigen::Index begin;
  Eigen::Index size;
};

std::int64_t tasks_for(Eigen::Index n, Eigen::Index per_task) {
  return (static_cast<std::int64_t>(n) + per_task - 1) / per_task;
}

Range task_range(std::int64_t task, Eigen::Index n, Eigen::Index per_task) {
  const Eigen::Index begin = static_cast<Eigen::Index>(task) * per_task;
  return {begin, std::min<Eigen::Index>(per_task, n - begin)};
}

std::int64_t row_tasks(Eigen::Index rows) { return tasks_for(rows, kRowsPerTask); }
Range task_rows(std::int64_t task, Eigen::Index rows) {
  return task_range(task, rows, kRowsPerTask);
}

// What one forward task learns about its block of an op.
struct ForwardPartial {
  MomentAccumulator preact;
  MomentAccumulator act;
  std::int64_t zeros = 0;
  std::int64_t saturated = 0;
};

template <class Scalar>
void accumulate_moments(const Eigen::Ref<const Mat<Scalar>>& m, MomentAccumulator& acc) {
  for (Eigen::Index a = 0; a < m.cols(); ++a) acc.add(m.col(a).data(), m.rows());
}

// Activation statistics of a block of y and d = phi'(h) (the same rows and columns of each).
// alive[i] / unsaturated[i] are set for each row i of the block that has a non-zero /
// unsaturated derivative in any of its columns.
template <class Scalar>
void accumulate_activation_block(const Eigen::Ref<const Mat<Scalar>>& y,
                                 const Eigen::Ref<const Mat<Scalar>>& d, double saturated_below,
                                 ForwardPartial& part, unsigned char* alive,
                                 unsigned char* unsaturated) {
  const Scalar limit = static_cast<Scalar>(saturated_below);
  const Eigen::Index rows = y.rows();
  for (Eigen::Index a = 0; a < y.cols(); ++a) {
    const Scalar* yc = y.col(a).data();
    const Scalar* dc = d.col(a).data();
    part.act.add(yc, rows);
    std::int64_t zeros = 0;
    std::int64_t saturated = 0;
    for (Eigen::Index i = 0; i < rows; ++i) {
      const Scalar slope = std::abs(dc[i]);
      const bool sat = slope < limit;
      zeros += yc[i] == Scalar(0);
      saturated += sat;
      alive[i] |= static_cast<unsigned char>(dc[i] != Scalar(0));
      unsaturated[i] |= static_cast<unsigned char>(!sat);
    }
    part.zeros += zeros;
    part.saturated += saturated;
  }
}

// Output statistics of an op without a derivative of its own (norm, dropout, residual).
template <class Scalar>
void accumulate_output_block(const Eigen::Ref<const Mat<Scalar>>& y, ForwardPartial& part) {
  for (Eigen::Index a = 0; a < y.cols(); ++a) {
    const Scalar* yc = y.col(a).data();
    part.act.add(yc, y.rows());
    std::int64_t zeros = 0;
    for (Eigen::Index i = 0; i < y.rows(); ++i) zeros += yc[i] == Scalar(0);
    part.zeros += zeros;
  }
}

// Mean cosine between the columns of the first kCorrelationExamples columns of y, in double.
template <class Scalar>
double mean_pair_cosine(const Mat<Scalar>& y) {
  const Eigen::Index m = std::min<Eigen::Index>(y.cols(), kCorrelationExamples);
  if (m < 2) return std::numeric_limits<double>::quiet_NaN();
  Eigen::MatrixXd u = y.leftCols(m).template cast<double>();
  for (Eigen::Index a = 0; a < m; ++a) {
    const double norm = u.col(a).norm();
    if (!(norm > 0.0) || !std::isfinite(norm)) return std::numeric_limits<double>::quiet_NaN();
    u.col(a) /= norm;
  }
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(m, m);
  gram.selfadjointView<Eigen::Lower>().rankUpdate(u.transpose());
  double sum = 0.0;
  for (Eigen::Index b = 0; b < m; ++b) {
    for (Eigen::Index a = b + 1; a < m; ++a) sum += gram(a, b);
  }
  return sum / (0.5 * static_cast<double>(m) * static_cast<double>(m - 1));
}

// The same mean cosine from the lower triangle of the Gram matrix x^T x of a whole batch,
// restricted to the first kCorrelationExamples examples.
template <class Scalar>
double pair_cosine_from_gram(const Mat<Scalar>& gram) {
  const Eigen::Index m = std::min<Eigen::Index>(gram.cols(), kCorrelationExamples);
  if (m < 2) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0.0;
  for (Eigen::Index b = 0; b < m; ++b) {
    const double nb = static_cast<double>(gram(b, b));
    for (Eigen::Index a = b + 1; a < m; ++a) {
      const double na = static_cast<double>(gram(a, a));
      if (!(na > 0.0) || !(nb > 0.0) || !std::isfinite(na * nb)) {
        return std::numeric_limits<double>::quiet_NaN();
      }
      sum += static_cast<double>(gram(a, b)) / std::sqrt(na * nb);
    }
  }
  return sum / (0.5 * static_cast<double>(m) * static_cast<double>(m - 1));
}

// Sum of squares and per-row sums of a gradient block (rows of one task, every column).
struct GradPartial {
  SquareSum squares;
  double bias_squares = 0.0;  // sum over the block's rows of (sum over the batch)^2
};

template <class Scalar>
void accumulate_gradient_block(const Eigen::Ref<const Mat<Scalar>>& g, GradPartial& part) {
  Eigen::VectorXd row_sums = Eigen::VectorXd::Zero(g.rows());
  for (Eigen::Index a = 0; a < g.cols(); ++a) {
    const Scalar* gc = g.col(a).data();
    part.squares.add(gc, g.rows());
    for (Eigen::Index i = 0; i < g.rows(); ++i) row_sums[i] += static_cast<double>(gc[i]);
  }
  part.bias_squares += row_sums.squaredNorm();
}

GradPartial merge_parts(const std::vector<GradPartial>& parts) {
  GradPartial total;
  for (const GradPartial& p : parts) {
    total.squares.merge(p.squares);
    total.bias_squares += p.bias_squares;
  }
  return total;
}

// <A, B>_F for two symmetric matrices of which only the lower triangles are filled, in double.
template <class Scalar>
double lower_symmetric_dot(const Mat<Scalar>& a, const Mat<Scalar>& b) {
  double diag = 0.0;
  double off = 0.0;
  for (Eigen::Index j = 0; j < a.cols(); ++j) {
    diag += static_cast<double>(a(j, j)) * static_cast<double>(b(j, j));
    for (Eigen::Index i = j + 1; i < a.rows(); ++i) {
      off += static_cast<double>(a(i, j)) * static_cast<double>(b(i, j));
    }
  }
  return diag + 2.0 * off;
}

// The lower triangle of x^T x, (batch, batch).
template <class Scalar>
void gram_lower(const Mat<Scalar>& x, Mat<Scalar>& out) {
  out.setZero(x.cols(), x.cols());
  out.template selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
}

// ||d x^T||_F is needed, not d x^T itself: when the batch is small next to the widths,
// <x^T x, d^T d>_F costs batch^2 (n_in + n_out) instead of 2 batch n_in n_out.
bool use_gram_for_weight_norm(Eigen::Index batch, Eigen::Index n_in, Eigen::Index n_out) {
  return batch * (n_in + n_out) < 2 * n_in * n_out;
}

// Entries of an op's output that one histogram task bins: whole columns, about this many.
constexpr Eigen::Index kHistogramEntriesPerTask = Eigen::Index{1} << 15;

// Every reported op's act_histogram, over act.min .. act.max of its whole output, in one parallel
// run over every op: tasks of whole columns cut by the shape alone, each counting into its own
// slot. Integer counts sum exactly in any order, so the result does not depend on the threads.
template <class Scalar>
void fill_act_histograms(const std::vector<Mat<Scalar>>& out, std::vector<ForwardStats>& forward,
                         ThreadPool& pool) {
  struct Task {
    std::size_t op;
    Range columns;
  };
  std::vector<Task> tasks;
  for (std::size_t l = 0; l < out.size(); ++l) {
    const Mat<Scalar>& y = out[l];
    // Residual begins have no output; an op without a finite entry keeps an empty histogram.
    if (y.size() == 0 || forward[l].act.finite == 0) continue;
    const Eigen::Index per_task = std::max<Eigen::Index>(1, kHistogramEntriesPerTask / y.rows());
    for (std::int64_t t = 0; t < tasks_for(y.cols(), per_task); ++t) {
      tasks.push_back({l, task_range(t, y.cols(), per_task)});
    }
  }
  const auto bins = static_cast<std::size_t>(kActHistogramBins);
  std::vector<std::int64_t> counts(tasks.size() * bins);  // (bins, tasks)
  pool.run(static_cast<std::int64_t>(tasks.size()), [&](std::int64_t k) {
    const auto slot = static_cast<std::size_t>(k);
    const Task& task = tasks[slot];
    const MomentStats& act = forward[task.op].act;
    const Mat<Scalar>& y = out[task.op];
    HistogramAccumulator acc(act.min, act.max, kActHistogramBins);
    for (Eigen::Index a = task.columns.begin; a < task.columns.begin + task.columns.size; ++a) {
      acc.add(y.col(a).data(), y.rows());
    }
    const std::vector<std::int64_t> c = acc.counts();
    std::copy(c.begin(), c.end(), counts.begin() + static_cast<std::ptrdiff_t>(slot * bins));
  });
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    std::vector<std::int64_t>& h = forward[tasks[k].op].act_histogram;
    if (h.empty()) h.assign(bins, 0);
    for (std::size_t b = 0; b < bins; ++b) h[b] += counts[k * bins + b];
  }
}

// Power-of-two rescaling keeps the stored gradient's rms within [2^-kRescaleBits, 2^kRescaleBits]
// without rounding anything: scaling by 2^e is exact for normal numbers.
constexpr int kRescaleBits = 16;

template <class Scalar>
Mat<Scalar> random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t key,
                          InputDistribution dist, double mean, double std, double low,
                          double high) {
  Eigen::MatrixXd m(rows, cols);
  const auto n = static_cast<std::uint64_t>(m.size());
  if (dist == InputDistribution::kNormal) {
    fill_normal(key, 0, n, m.data());
    m.array() = m.array() * std + mean;
  } else {
    fill_uniform(key, 0, n, low, high, m.data());
  }
  return m.cast<Scalar>();
}

// Whether the backward pass keeps phi'(h) of a layer; otherwise it recovers it from y (ReLU and
// the other piecewise-linear kinds) or does not need it (softmax's backward uses y).
bool keeps_slope(const ActivationSpec& a) {
  return a.kind != Activation::kSoftmax && !derivative_from_output(a);
}

bool has_activation(const OpSpec& op) {
  return op.kind == OpKind::kDense || op.kind == OpKind::kActivation;
}

const ActivationSpec& activation_of(const OpSpec& op) {
  return op.kind == OpKind::kDense ? op.dense.activation : op.activation;
}

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

// The statistics of a gradient, turned into magnitudes at exponent exp2.
void fill_grad_stats(const GradPartial& g, std::int64_t exp2, BackwardStats& bs) {
  const double count = static_cast<double>(std::max<std::int64_t>(1, g.squares.finite));
  bs.grad_preact_rms = magnitude_from_scaled(std::sqrt(g.squares.sum / count), exp2);
  bs.nonfinite = g.squares.nonfinite;
}

// Scales g (stored / 2^exp2) so that its rms is near 1, when it has drifted far; exact.
template <class Scalar>
void rescale(Mat<Scalar>& g, const GradPartial& stats, std::int64_t& exp2, ThreadPool& pool) {
  const double ms =
      stats.squares.sum / static_cast<double>(std::max<std::int64_t>(1, stats.squares.finite));
  if (!(ms > 0.0) || !std::isfinite(ms)) return;
  const int e = std::ilogb(ms) / 2;
  if (e <= kRescaleBits && e >= -kRescaleBits) return;
  const Scalar factor = std::ldexp(Scalar(1), -e);
  pool.run(row_tasks(g.rows()), [&](std::int64_t t) {
    const Range r = task_rows(t, g.rows());
    g.middleRows(r.begin, r.size) *= factor;
  });
  exp2 += e;
}

// Brings a (stored / 2^ea) and b (stored / 2^eb) to a common exponent and returns a + b in a.
template <class Scalar>
void add_scaled(Mat<Scalar>& a, std::int64_t& ea, const Mat<Scalar>& b, std::int64_t eb) {
  if (ea >= eb) {
    a += b * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(eb - ea, -2000)));
  } else {
    a = a * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(ea - eb, -2000))) + b;
    ea = eb;
  }
}

template <class Scalar>
Eigen::MatrixXd unscaled(const Mat<Scalar>& g, std::int64_t exp2) {
  return g.template cast<double>() * std::ldexp(1.0, static_cast<int>(exp2));
}

}  // namespace

template <class Scalar>
Network<Scalar> build_network(const RunSpec& spec, ThreadPool& pool) {
  Network<Scalar> net;
  net.input_width = spec.input.width;
  net.ops = expand_ops(spec);
  net.widths = op_widths(spec, net.ops);
  const std::size_t count = net.ops.size();
  net.partner.assign(count, -1);
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < count; ++i) {
    if (net.ops[i].kind == OpKind::kResidualBegin) open.push_back(i);
    if (net.ops[i].kind == OpKind::kResidualEnd) {
      net.partner[i] = static_cast<int>(open.back());
      net.partner[open.back()] = static_cast<int>(i);
      open.pop_back();
    }
  }
  net.weight.resize(count);
  net.bias.resize(count);
  net.weight_norm.assign(count, 0.0);
  pool.run(static_cast<std::int64_t>(count), [&](std::int64_t k) {
    const auto l = static_cast<std::size_t>(k);
    const OpSpec& op = net.ops[l];
    const auto index = static_cast<std::uint64_t>(k + 1);  // ops are numbered from 1
    const int fan_in = l == 0 ? spec.input.width : net.widths[l - 1];
    if (op.kind == OpKind::kResidualEnd && op.residual.projection) {
      const int skip_width = net.partner[l] == 0
                                 ? spec.input.width
                                 : net.widths[static_cast<std::size_t>(net.partner[l]) - 1];
      Eigen::MatrixXd p(net.widths[l], skip_width);
      init_weights(op.residual.projection_init,
                   stream_key(spec.seed, index, StreamPurpose::kProjection), p);
      net.weight[l] = p.cast<Scalar>();
      return;
    }
    if (op.kind != OpKind::kDense) return;
    const LayerSpec& layer = op.dense;
    Eigen::VectorXd b(layer.width);
    init_bias(layer.bias, fan_in, stream_key(spec.seed, index, StreamPurpose::kBias), b);
    net.bias[l] = b.cast<Scalar>();
    const std::uint64_t key = stream_key(spec.seed, index, StreamPurpose::kWeights);
    if constexpr (std::is_same_v<Scalar, double>) {
      net.weight[l].resize(layer.width, fan_in);
      init_weights(layer.init, key, net.weight[l]);
    } else if (!init_is_elementwise(layer.init.kind)) {
      Eigen::MatrixXd w(layer.width, fan_in);
      init_weights(layer.init, key, w);
      net.weight[l] = w.cast<Scalar>();
    } else {
      // Drawn in double a block of columns at a time and rounded once: no double copy of the
      // whole matrix (and its page faults) for float networks.
      constexpr int kColumns = 32;
      net.weight[l].resize(layer.width, fan_in);
      Eigen::MatrixXd block(layer.width, std::min(kColumns, fan_in));
      for (int c = 0; c < fan_in; c += kColumns) {
        const int n = std::min(kColumns, fan_in - c);
        init_weight_columns(layer.init, key, layer.width, fan_in, c, n, block.data());
        net.weight[l].middleCols(c, n) = block.leftCols(n).template cast<Scalar>();
      }
    }
    const Mat<Scalar>& used = net.weight[l];
    SquareSum squares;
    for (Eigen::Index j = 0; j < used.cols(); ++j) squares.add(used.col(j).data(), used.rows());
    net.weight_norm[l] = std::sqrt(squares.sum);
  });
  return net;
}

template <class Scalar>
Mat<Scalar> make_input(const RunSpec& spec) {
  const InputSpec& in = spec.input;
  return random_matrix<Scalar>(in.width, in.batch, stream_key(spec.seed, 0, StreamPurpose::kInput),
                               in.distribution, in.mean, in.std, in.low, in.high);
}

template <class Scalar>
Mat<Scalar> make_probe(const RunSpec& spec, int output_width) {
  return random_matrix<Scalar>(output_width, spec.input.batch,
                               stream_key(spec.seed, 0, StreamPurpose::kProbe),
                               InputDistribution::kNormal, 0.0, 1.0, 0.0, 0.0);
}

template <class Scalar>
PassResult forward_backward(const Network<Scalar>& net, const Mat<Scalar>& input,
                            const Mat<Scalar>& probe, const PassOptions& options,
                            ThreadPool& pool) {
  const std::size_t count = net.ops.size();
  const Eigen::Index batch = input.cols();
  PassResult result;
  result.forward.resize(count);
  result.backward.resize(count);

  // ---- Forward. Kept for the backward pass: each op's output y (a residual begin has none: its
  // value is its input), phi'(h) where y does not determine it, and the norms' 1/std.
  std::vector<Mat<Scalar>> out(count);
  std::vector<Mat<Scalar>> slope(count);
  std::vector<Eigen::VectorXd> rstd(count);
  // The value entering op i.
  auto input_of = [&](std::size_t i) -> const Mat<Scalar>& {
    while (i > 0 && net.ops[i - 1].kind == OpKind::kResidualBegin) --i;
    return i == 0 ? input : out[i - 1];
  };
  // The op whose output enters op i (count when it is the network's input).
  auto producer_of = [&](std::size_t i) -> std::size_t {
    while (i > 0 && net.ops[i - 1].kind == OpKind::kResidualBegin) --i;
    return i == 0 ? count : i - 1;
  };

  for (std::size_t l = 0; l < count; ++l) {
    const OpSpec& op = net.ops[l];
    if (op.kind == OpKind::kResidualBegin) continue;
    const Mat<Scalar>& x = input_of(l);  // (n_in, batch)
    const Eigen::Index n = net.widths[l];
    out[l].resize(n, batch);
    Mat<Scalar>& y = out[l];
    ForwardStats& fs = result.forward[l];

    if (has_activation(op)) {
      const ActivationSpec& act = activation_of(op);
      const bool dense = op.kind == OpKind::kDense;
      const bool keep_slope = keeps_slope(act);
      if (keep_slope) slope[l].resize(n, batch);
      const double saturated_below = options.saturation_threshold * max_slope(act);
      const bool softmax = act.kind == Activation::kSoftmax;
      const std::int64_t tasks = row_tasks(n);
      std::vector<ForwardPartial> parts(static_cast<std::size_t>(tasks));
      std::vector<unsigned char> alive(static_cast<std::size_t>(n), 0);
      std::vector<unsigned char> unsaturated(static_cast<std::size_t>(n), 0);
      Mat<Scalar> preact;  // (n, batch), softmax only: it needs whole columns
      if (softmax) preact.resize(n, batch);

      pool.run(tasks, [&](std::int64_t t) {
        const Range r = task_rows(t, n);
        ForwardPartial& part = parts[static_cast<std::size_t>(t)];
        Mat<Scalar> h(r.size, batch);  // (rows of this task, batch)
        if (dense) {
          h.noalias() = net.weight[l].middleRows(r.begin, r.size) * x;
          h.colwise() += net.bias[l].segment(r.begin, r.size);
        } else {
          h = x.middleRows(r.begin, r.size);
        }
        accumulate_moments<Scalar>(h, part.preact);
        if (softmax) {
          preact.middleRows(r.begin, r.size) = h;
          return;
        }
        Mat<Scalar> scratch;  // d of this block when the op does not keep it
        if (!keep_slope) scratch.resize(r.size, batch);
        auto y_block = y.middleRows(r.begin, r.size);
        Eigen::Ref<Mat<Scalar>> d_block =
            keep_slope ? Eigen::Ref<Mat<Scalar>>(slope[l].middleRows(r.begin, r.size))
                       : Eigen::Ref<Mat<Scalar>>(scratch);
        activation_forward<Scalar>(act, h, y_block, d_block);
        accumulate_activation_block<Scalar>(y_block, d_block, saturated_below, part,
                                            alive.data() + r.begin, unsaturated.data() + r.begin);
      });
      if (softmax) {
        // Softmax couples the units of a column; its statistics are cheap next to the product.
        Mat<Scalar> d(n, batch);  // the Jacobian's diagonal, for the statistics only
        activation_forward<Scalar>(act, preact, y, d);
        accumulate_activation_block<Scalar>(y, d, saturated_below, parts[0], alive.data(),
                                            unsaturated.data());
      }
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
      fs.saturated_fraction = static_cast<double>(total.saturated) / entries;
      for (Eigen::Index i = 0; i < n; ++i) {
        fs.dead_units += alive[static_cast<std::size_t>(i)] == 0;
        fs.saturated_units += unsaturated[static_cast<std::size_t>(i)] == 0;
      }
      fs.dead_fraction = static_cast<double>(fs.dead_units) / static_cast<double>(n);
      fs.nonfinite = fs.preact.nonfinite + fs.act.nonfinite;
      continue;
    }

    // Ops without a derivative statistic: norm, dropout, residual end.
    std::vector<ForwardPartial> parts;
    if (op.kind == OpKind::kNorm && op.norm.kind != NormKind::kBatchNorm) {
      // Per-example norms reduce over the units of a column: tasks of whole columns.
      rstd[l].resize(batch);
      const std::int64_t tasks = tasks_for(batch, kColumnsPerTask);
      parts.resize(static_cast<std::size_t>(tasks));
      pool.run(tasks, [&](std::int64_t t) {
        const Range c = task_range(t, batch, kColumnsPerTask);
        ForwardPartial& part = parts[static_cast<std::size_t>(t)];
        accumulate_moments<Scalar>(x.middleCols(c.begin, c.size), part.preact);
        norm_forward<Scalar>(op.norm, x.middleCols(c.begin, c.size), y.middleCols(c.begin, c.size),
                             rstd[l].segment(c.begin, c.size));
        accumulate_output_block<Scalar>(y.middleCols(c.begin, c.size), part);
      });
    } else {
      if (op.kind == OpKind::kNorm) rstd[l].resize(n);
      const std::int64_t tasks = row_tasks(n);
      parts.resize(static_cast<std::size_t>(tasks));
      const Mat<Scalar>* skip = nullptr;
      if (op.kind == OpKind::kResidualEnd)
        skip = &input_of(static_cast<std::size_t>(net.partner[l]));
      const Scalar scale = static_cast<Scalar>(op.residual.scale);
      pool.run(tasks, [&](std::int64_t t) {
        const Range r = task_rows(t, n);
        ForwardPartial& part = parts[static_cast<std::size_t>(t)];
        auto y_block = y.middleRows(r.begin, r.size);
        switch (op.kind) {
          case OpKind::kNorm:  // batch norm: per unit over the batch
            accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
            norm_forward<Scalar>(op.norm, x.middleRows(r.begin, r.size), y_block,
                                 rstd[l].segment(r.begin, r.size));
            break;
          case OpKind::kDropout:
            accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
            apply_dropout(dropout_key(options.seed, l), op.dropout, r, x, y);
            break;
          case OpKind::kResidualEnd:
            // preact: the branch's output F(x); act: P skip + scale F(x).
            accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
            if (op.residual.projection) {
              y_block.noalias() = net.weight[l].middleRows(r.begin, r.size) * (*skip);
            } else {
              y_block = skip->middleRows(r.begin, r.size);
            }
            y_block += scale * x.middleRows(r.begin, r.size);
            break;
          default:
            break;
        }
        accumulate_output_block<Scalar>(y_block, part);
      });
    }
    ForwardPartial total;
    for (const ForwardPartial& p : parts) {
      total.preact.merge(p.preact);
      total.act.merge(p.act);
      total.zeros += p.zeros;
    }
    fs.preact = total.preact.finish();
    fs.act = total.act.finish();
    fs.zero_fraction =
        static_cast<double>(total.zeros) / (static_cast<double>(n) * static_cast<double>(batch));
    fs.nonfinite = fs.preact.nonfinite + fs.act.nonfinite;
  }
  // Correlations between examples: from the Gram matrix the backward pass forms anyway where it
  // does (a dense layer's input), else computed at the end.
  std::vector<bool> correlation_done(count, false);

  // ---- The cotangent at the output: the probe, or the loss's gradient.
  const std::size_t last = count - 1;
  const Mat<Scalar>& output = out[last];
  Mat<Scalar> g;  // dL/d(output of the current op) / 2^exp2, (width, batch)
  if (options.loss.kind == LossKind::kProbe) {
    g = probe;
    result.loss =
        (probe.template cast<double>().array() * output.template cast<double>().array()).sum();
  } else {
    g.resize(output.rows(), batch);
    result.loss = loss_forward_backward<Scalar>(options.loss, output, *options.targets, g);
  }
  std::int64_t exp2 = 0;
  {
    GradPartial gs;
    accumulate_gradient_block<Scalar>(g, gs);
    result.output_grad_rms = magnitude_from_scaled(
        std::sqrt(gs.squares.sum /
                  static_cast<double>(std::max<std::int64_t>(1, gs.squares.finite))),
        0);
    rescale(g, gs, exp2, pool);
  }
  if (options.keep_gradients) {
    result.gradients.dweight.resize(count);
    result.gradients.dbias.resize(count);
    result.gradients.dpreact.resize(count);
  }

  // Skip-path gradients waiting for their residual begin: (gradient / 2^exp2, exp2).
  std::vector<std::pair<Mat<Scalar>, std::int64_t>> skips;
  const bool adam = options.optimizer.kind == OptimizerKind::kAdam;

  // ---- Backward, op by op. Each step turns g = dL/d(output) into dL/d(input).
  for (std::size_t l = count; l-- > 0;) {
    const OpSpec& op = net.ops[l];
    BackwardStats& bs = result.backward[l];
    bs.has_weights = op.kind == OpKind::kDense || op.kind == OpKind::kNorm;
    const Eigen::Index n_out = g.rows();

    if (op.kind == OpKind::kResidualBegin) {
      // The skip path's gradient joins the branch's.
      add_scaled(g, exp2, skips.back().first, skips.back().second);
      skips.pop_back();
      GradPartial gs;
      accumulate_gradient_block<Scalar>(g, gs);
      rescale(g, gs, exp2, pool);
      continue;
    }

    const Mat<Scalar>& x = input_of(l);  // the op's input, (n_in, batch)
    const Eigen::Index n_in = x.rows();
    Mat<Scalar> below(n_in, batch);  // dL/d(input) / 2^exp2
    GradPartial below_stats;

    if (has_activation(op)) {
      // delta = dL/dh from g = dL/dy, in place.
      const ActivationSpec& act = activation_of(op);
      std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_out)));
      if (act.kind == Activation::kSoftmax) {
        activation_backward<Scalar>(act, out[l], out[l], g, g);  // d unused: y is enough
      }
      pool.run(row_tasks(n_out), [&](std::int64_t t) {
        const Range r = task_rows(t, n_out);
        auto gr = g.middleRows(r.begin, r.size);
        if (act.kind == Activation::kSoftmax) {
          // done above: softmax couples the units of a column
        } else if (keeps_slope(act)) {
          activation_backward<Scalar>(act, out[l].middleRows(r.begin, r.size),
                                      slope[l].middleRows(r.begin, r.size), gr, gr);
        } else {
          Mat<Scalar> d(r.size, batch);  // phi'(h) recovered from y for this block
          activation_derivative_from_output<Scalar>(act, out[l].middleRows(r.begin, r.size), d);
          activation_backward<Scalar>(act, out[l].middleRows(r.begin, r.size), d, gr, gr);
        }
        accumulate_gradient_block<Scalar>(gr, parts[static_cast<std::size_t>(t)]);
      });
      const GradPartial delta = merge_parts(parts);
      fill_grad_stats(delta, exp2, bs);
      if (options.keep_gradients) result.gradients.dpreact[l] = unscaled(g, exp2);

      if (op.kind == OpKind::kActivation) {
        below.swap(g);
        below_stats = delta;
      } else {
        // Dense: the weight gradient's norm (Grams, or explicit dW when Adam needs its entries),
        // and dL/dx = W^T delta, all as independent tasks.
        const Mat<Scalar>& w = net.weight[l];
        const bool gram = !adam && use_gram_for_weight_norm(batch, n_in, n_out);
        const double lr = options.optimizer.learning_rate;
        const double eps_scaled = std::ldexp(
            options.optimizer.eps, static_cast<int>(std::clamp<std::int64_t>(-exp2, -4000, 4000)));
        Mat<Scalar> gram_x, gram_g;
        const std::int64_t dw_tasks = gram ? 2 : row_tasks(n_out);
        std::vector<double> dw_squares(static_cast<std::size_t>(gram ? 0 : dw_tasks), 0.0);
        std::vector<double> adam_squares(dw_squares.size(), 0.0);
        // dL/dx of the first layer is needed only by the tests.
        const std::int64_t below_tasks = l > 0 || options.keep_gradients ? row_tasks(n_in) : 0;
        std::vector<GradPartial> below_parts(static_cast<std::size_t>(below_tasks));
        pool.run(dw_tasks + below_tasks, [&](std::int64_t t) {
          if (t < dw_tasks) {
            if (gram) {
              if (t == 0) gram_lower(x, gram_x);
              if (t == 1) gram_lower(g, gram_g);
              return;
            }
            const Range r = task_rows(t, n_out);
            Mat<Scalar> dw(r.size, n_in);  // rows of dL/dW / 2^exp2
            dw.noalias() = g.middleRows(r.begin, r.size) * x.transpose();
            SquareSum s;
            for (Eigen::Index j = 0; j < n_in; ++j) s.add(dw.col(j).data(), r.size);
            dw_squares[static_cast<std::size_t>(t)] = s.sum;
            if (adam) {
              // First Adam step: m-hat = g, v-hat = g^2, so the step is lr * g / (|g| + eps).
              double a = 0.0;
              for (Eigen::Index j = 0; j < n_in; ++j) {
                for (Eigen::Index i = 0; i < r.size; ++i) {
                  const double v = static_cast<double>(dw(i, j));
                  const double u = v / (std::abs(v) + eps_scaled);
                  a += u * u;
                }
              }
              adam_squares[static_cast<std::size_t>(t)] = a;
            }
            return;
          }
          const std::int64_t bt = t - dw_tasks;
          const Range r = task_rows(bt, n_in);
          auto block = below.middleRows(r.begin, r.size);
          block.noalias() = w.middleCols(r.begin, r.size).transpose() * g;
          accumulate_gradient_block<Scalar>(block, below_parts[static_cast<std::size_t>(bt)]);
        });
        below_stats = merge_parts(below_parts);
        double dw_sq = 0.0;
        if (gram) {
          dw_sq = lower_symmetric_dot(gram_x, gram_g);
          const std::size_t producer = producer_of(l);
          if (producer < count && !correlation_done[producer]) {
            result.forward[producer].correlation = pair_cosine_from_gram(gram_x);
            correlation_done[producer] = true;
          }
        } else {
          for (double s : dw_squares) dw_sq += s;
        }
        // Rounding can leave a tiny negative where the true value is ~0.
        bs.grad_weight_norm = magnitude_from_scaled(std::sqrt(std::max(0.0, dw_sq)), exp2);
        bs.grad_bias_norm = magnitude_from_scaled(std::sqrt(delta.bias_squares), exp2);
        bs.weight_norm = net.weight_norm[l];
        const Magnitude wn = magnitude_from_scaled(bs.weight_norm, 0);
        bs.grad_weight_to_weight = magnitude_ratio(bs.grad_weight_norm, wn);
        if (options.optimizer.kind == OptimizerKind::kSgd) {
          // First SGD step from zero momentum: the buffer is the gradient, the step lr * grad.
          bs.has_update = true;
          bs.update_to_weight = magnitude_ratio(
              magnitude_from_scaled(lr * std::sqrt(std::max(0.0, dw_sq)), exp2), wn);
        } else if (adam) {
          double a = 0.0;
          for (double s : adam_squares) a += s;
          bs.has_update = true;
          bs.update_to_weight = magnitude_ratio(magnitude_from_scaled(lr * std::sqrt(a), 0), wn);
        }
        if (options.keep_gradients) {
          const Eigen::MatrixXd gd = unscaled(g, exp2);
          result.gradients.dweight[l] = gd * x.template cast<double>().transpose();
          result.gradients.dbias[l] = gd.rowwise().sum();
        }
      }
    } else if (op.kind == OpKind::kNorm) {
      // dgamma_i = sum_a g_ia y_ia, dbeta_i = sum_a g_ia; then dL/dx.
      const Mat<Scalar>& y = out[l];
      Eigen::VectorXd dgamma = Eigen::VectorXd::Zero(n_out);
      Eigen::VectorXd dbeta = Eigen::VectorXd::Zero(n_out);
      if (op.norm.kind == NormKind::kBatchNorm) {
        std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_out)));
        pool.run(row_tasks(n_out), [&](std::int64_t t) {
          const Range r = task_rows(t, n_out);
          norm_param_grad_sums<Scalar>(
              op.norm, y.middleRows(r.begin, r.size), g.middleRows(r.begin, r.size),
              dgamma.segment(r.begin, r.size), dbeta.segment(r.begin, r.size));
          auto block = below.middleRows(r.begin, r.size);
          norm_backward<Scalar>(op.norm, y.middleRows(r.begin, r.size),
                                rstd[l].segment(r.begin, r.size), g.middleRows(r.begin, r.size),
                                block);
          accumulate_gradient_block<Scalar>(block, parts[static_cast<std::size_t>(t)]);
        });
        below_stats = merge_parts(parts);
      } else {
        const std::int64_t tasks = tasks_for(batch, kColumnsPerTask);
        std::vector<Eigen::VectorXd> gammas(static_cast<std::size_t>(tasks),
                                            Eigen::VectorXd::Zero(n_out));
        std::vector<Eigen::VectorXd> betas(static_cast<std::size_t>(tasks),
                                           Eigen::VectorXd::Zero(n_out));
        pool.run(tasks, [&](std::int64_t t) {
          const Range c = task_range(t, batch, kColumnsPerTask);
          const auto k = static_cast<std::size_t>(t);
          norm_param_grad_sums<Scalar>(op.norm, y.middleCols(c.begin, c.size),
                                       g.middleCols(c.begin, c.size), gammas[k], betas[k]);
          norm_backward<Scalar>(op.norm, y.middleCols(c.begin, c.size),
                                rstd[l].segment(c.begin, c.size), g.middleCols(c.begin, c.size),
                                below.middleCols(c.begin, c.size));
        });
        for (std::size_t k = 0; k < gammas.size(); ++k) {
          dgamma += gammas[k];
          dbeta += betas[k];
        }
        std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
        pool.run(row_tasks(n_in), [&](std::int64_t t) {
          const Range r = task_rows(t, n_in);
          accumulate_gradient_block<Scalar>(below.middleRows(r.begin, r.size),
                                            parts[static_cast<std::size_t>(t)]);
        });
        below_stats = merge_parts(parts);
      }
      bs.grad_weight_norm = magnitude_from_scaled(dgamma.norm(), exp2);
      bs.grad_bias_norm = magnitude_from_scaled(dbeta.norm(), exp2);
      bs.weight_norm = std::sqrt(static_cast<double>(n_out));  // ||gamma|| with gamma = 1
      bs.grad_weight_to_weight =
          magnitude_ratio(bs.grad_weight_norm, magnitude_from_scaled(bs.weight_norm, 0));
      fill_grad_stats(below_stats, exp2, bs);
      if (options.keep_gradients) result.gradients.dpreact[l] = unscaled(below, exp2);
    } else if (op.kind == OpKind::kDropout) {
      std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
      pool.run(row_tasks(n_in), [&](std::int64_t t) {
        const Range r = task_rows(t, n_in);
        apply_dropout(dropout_key(options.seed, l), op.dropout, r, g, below);
        accumulate_gradient_block<Scalar>(below.middleRows(r.begin, r.size),
                                          parts[static_cast<std::size_t>(t)]);
      });
      below_stats = merge_parts(parts);
      fill_grad_stats(below_stats, exp2, bs);
      if (options.keep_gradients) result.gradients.dpreact[l] = unscaled(below, exp2);
    } else if (op.kind == OpKind::kResidualEnd) {
      // y = P skip + scale F: the branch gets scale * g, the skip path P^T g (kept for later).
      const Mat<Scalar>* skip_in = &input_of(static_cast<std::size_t>(net.partner[l]));
      Mat<Scalar> skip_grad(skip_in->rows(), batch);
      if (op.residual.projection) {
        skip_grad.noalias() = net.weight[l].transpose() * g;
      } else {
        skip_grad = g;
      }
      skips.emplace_back(std::move(skip_grad), exp2);
      below = static_cast<Scalar>(op.residual.scale) * g;
      std::vector<GradPartial> parts(1);
      accumulate_gradient_block<Scalar>(below, parts[0]);
      below_stats = parts[0];
      fill_grad_stats(below_stats, exp2, bs);
      if (options.keep_gradients) result.gradients.dpreact[l] = unscaled(below, exp2);
    }

    g = std::move(below);
    rescale(g, below_stats, exp2, pool);
  }
  if (options.keep_gradients) result.gradients.dinput = unscaled(g, exp2);
  for (std::size_t l = 0; l < count; ++l) {
    if (net.ops[l].kind != OpKind::kResidualBegin && !correlation_done[l]) {
      result.forward[l].correlation = mean_pair_cosine(out[l]);
    }
  }
  // Every op's act.min and act.max are known now, and out[] still holds every op's output.
  fill_act_histograms(out, result.forward, pool);

  // Gains: each reported op's gradient over the next reported op's (the last: over dL/dy).
  Magnitude above = result.output_grad_rms;
  for (std::size_t l = count; l-- > 0;) {
    if (net.ops[l].kind == OpKind::kResidualBegin) continue;
    BackwardStats& bs = result.backward[l];
    bs.gain = magnitude_ratio(bs.grad_preact_rms, above);
    above = bs.grad_preact_rms;
  }
  return result;
}

template Network<float> build_network<float>(const RunSpec&, ThreadPool&);
template Network<double> build_network<double>(const RunSpec&, ThreadPool&);
template Mat<float> make_input<float>(const RunSpec&);
template Mat<double> make_input<double>(const RunSpec&);
template Mat<float> make_probe<float>(const RunSpec&, int);
template Mat<double> make_probe<double>(const RunSpec&, int);
template PassResult forward_backward<float>(const Network<float>&, const Mat<float>&,
                                            const Mat<float>&, const PassOptions&, ThreadPool&);
template PassResult forward_backward<double>(const Network<double>&, const Mat<double>&,
                                             const Mat<double>&, const PassOptions&, ThreadPool&);

}  // namespace gradscope
