// Forward and backward passes with the statistics gathered on the way. Work is cut into tasks of
// kRowsPerTask rows (units); each task writes its own rows and its own partial sums, which are
// combined in task order, so results are bit-identical for any thread count.
#include "gradscope/network.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "gradscope/rng.hpp"
#include "gradscope/stats.hpp"

namespace gradscope {

namespace {

std::int64_t row_tasks(Eigen::Index rows) {
  return (static_cast<std::int64_t>(rows) + kRowsPerTask - 1) / kRowsPerTask;
}

struct RowRange {
  Eigen::Index begin;
  Eigen::Index size;
};

RowRange task_rows(std::int64_t task, Eigen::Index rows) {
  const Eigen::Index begin = static_cast<Eigen::Index>(task) * kRowsPerTask;
  return {begin, std::min<Eigen::Index>(kRowsPerTask, rows - begin)};
}

// What one forward task learns about its block of a layer.
struct ForwardPartial {
  MomentAccumulator preact;
  MomentAccumulator act;
  std::int64_t zeros = 0;
  std::int64_t saturated = 0;
};

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

// Whether the backward pass keeps phi'(h) of a layer; otherwise it recovers it from y (ReLU and
// the other piecewise-linear kinds) or does not need it (softmax's backward uses y).
bool keeps_slope(const ActivationSpec& a) {
  return a.kind != Activation::kSoftmax && !derivative_from_output(a);
}

// Sum of squares and per-row sums of a gradient block (rows of one task, every column).
struct GradPartial {
  SquareSum squares;
  double bias_squares = 0.0;  // sum over the block's rows of (sum over the batch)^2
};

template <class Scalar>
void accumulate_gradient_block(const Mat<Scalar>& g, RowRange r, GradPartial& part) {
  Eigen::VectorXd row_sums = Eigen::VectorXd::Zero(r.size);
  for (Eigen::Index a = 0; a < g.cols(); ++a) {
    const Scalar* gc = g.data() + a * g.rows() + r.begin;
    part.squares.add(gc, r.size);
    for (Eigen::Index i = 0; i < r.size; ++i) row_sums[i] += static_cast<double>(gc[i]);
  }
  part.bias_squares += row_sums.squaredNorm();
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

}  // namespace

template <class Scalar>
Network<Scalar> build_network(const RunSpec& spec, ThreadPool& pool) {
  Network<Scalar> net;
  net.input_width = spec.input.width;
  net.layers = expand_layers(spec);
  const auto depth = static_cast<std::int64_t>(net.layers.size());
  net.weight.resize(net.layers.size());
  net.bias.resize(net.layers.size());
  net.weight_norm.resize(net.layers.size());
  pool.run(depth, [&](std::int64_t k) {
    const auto l = static_cast<std::size_t>(k);
    const LayerSpec& layer = net.layers[l];
    const int fan_in = l == 0 ? spec.input.width : net.layers[l - 1].width;
    const auto index = static_cast<std::uint64_t>(k + 1);  // layers are numbered from 1
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
  const std::size_t depth = net.layers.size();
  const Eigen::Index batch = input.cols();
  PassResult result;
  result.forward.resize(depth);
  result.backward.resize(depth);

  // ---- Forward. Kept for the backward pass: y (activations) and, where y does not determine it,
  // d = phi'(h), each (n_l, batch).
  std::vector<Mat<Scalar>> act(depth);
  std::vector<Mat<Scalar>> slope(depth);
  for (std::size_t l = 0; l < depth; ++l) {
    const LayerSpec& layer = net.layers[l];
    const Mat<Scalar>& x = l == 0 ? input : act[l - 1];  // (n_{l-1}, batch)
    const Mat<Scalar>& w = net.weight[l];                // (n_l, n_{l-1})
    const Vec<Scalar>& b = net.bias[l];                  // (n_l)
    const Eigen::Index n = w.rows();
    const bool keep_slope = keeps_slope(layer.activation);
    act[l].resize(n, batch);
    if (keep_slope) slope[l].resize(n, batch);
    const double saturated_below = options.saturation_threshold * max_slope(layer.activation);
    const bool softmax = layer.activation.kind == Activation::kSoftmax;
    const std::int64_t tasks = row_tasks(n);
    std::vector<ForwardPartial> parts(static_cast<std::size_t>(tasks));
    std::vector<unsigned char> alive(static_cast<std::size_t>(n), 0);
    std::vector<unsigned char> unsaturated(static_cast<std::size_t>(n), 0);
    Mat<Scalar> preact;  // (n_l, batch), softmax only: it needs whole columns
    if (softmax) preact.resize(n, batch);

    pool.run(tasks, [&](std::int64_t t) {
      const RowRange r = task_rows(t, n);
      ForwardPartial& part = parts[static_cast<std::size_t>(t)];
      Mat<Scalar> h(r.size, batch);  // (rows of this task, batch)
      h.noalias() = w.middleRows(r.begin, r.size) * x;
      h.colwise() += b.segment(r.begin, r.size);
      for (Eigen::Index a = 0; a < batch; ++a) part.preact.add(h.col(a).data(), r.size);
      if (softmax) {
        preact.middleRows(r.begin, r.size) = h;
        return;
      }
      Mat<Scalar> scratch;  // d of this block when the layer does not keep it
      if (!keep_slope) scratch.resize(r.size, batch);
      auto y_block = act[l].middleRows(r.begin, r.size);
      Eigen::Ref<Mat<Scalar>> d_block =
          keep_slope ? Eigen::Ref<Mat<Scalar>>(slope[l].middleRows(r.begin, r.size))
                     : Eigen::Ref<Mat<Scalar>>(scratch);
      activation_forward<Scalar>(layer.activation, h, y_block, d_block);
      accumulate_activation_block<Scalar>(y_block, d_block, saturated_below, part,
                                          alive.data() + r.begin, unsaturated.data() + r.begin);
    });
    if (softmax) {
      // Softmax couples the units of a column; its statistics are cheap next to the product.
      Mat<Scalar> d(n, batch);  // the Jacobian's diagonal, for the statistics only
      activation_forward<Scalar>(layer.activation, preact, act[l], d);
      accumulate_activation_block<Scalar>(act[l], d, saturated_below, parts[0], alive.data(),
                                          unsaturated.data());
    }

    ForwardPartial total;
    for (const ForwardPartial& p : parts) {
      total.preact.merge(p.preact);
      total.act.merge(p.act);
      total.zeros += p.zeros;
      total.saturated += p.saturated;
    }
    ForwardStats& fs = result.forward[l];
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
  }

  // ---- Backward. grad holds dL/dh^l divided by 2^exp2: the true gradient is grad * 2^exp2.
  {
    SquareSum probe_squares;
    probe_squares.add(probe.data(), probe.size());
    result.output_grad_rms = magnitude_from_scaled(
        std::sqrt(probe_squares.sum /
                  static_cast<double>(std::max<std::int64_t>(1, probe_squares.finite))),
        0);
  }
  if (options.keep_gradients) {
    result.gradients.dweight.resize(depth);
    result.gradients.dbias.resize(depth);
    result.gradients.dpreact.resize(depth);
  }

  const std::size_t last = depth - 1;
  Mat<Scalar> grad(net.weight[last].rows(), batch);  // dL/dh^l / 2^exp2, (n_l, batch)
  std::int64_t exp2 = 0;
  GradPartial grad_stats;  // statistics of grad, gathered where it is produced
  {
    const ActivationSpec& a = net.layers[last].activation;
    if (a.kind == Activation::kSoftmax) {
      activation_backward<Scalar>(a, act[last], act[last], probe, grad);  // d unused: y is enough
    } else if (keeps_slope(a)) {
      activation_backward<Scalar>(a, act[last], slope[last], probe, grad);
    } else {
      Mat<Scalar> d(act[last].rows(), batch);
      activation_derivative_from_output<Scalar>(a, act[last], d);
      activation_backward<Scalar>(a, act[last], d, probe, grad);
    }
    const RowRange all{0, grad.rows()};
    accumulate_gradient_block(grad, all, grad_stats);
  }
  Magnitude above = result.output_grad_rms;  // rms of the gradient one layer up

  for (std::size_t l = depth; l-- > 0;) {
    const Mat<Scalar>& w = net.weight[l];                // (n_l, n_{l-1})
    const Mat<Scalar>& x = l == 0 ? input : act[l - 1];  // (n_{l-1}, batch)
    const Eigen::Index n_out = w.rows();
    const Eigen::Index n_in = w.cols();
    const bool gram = use_gram_for_weight_norm(batch, n_in, n_out);
    const bool has_below = l > 0;

    // Tasks of this step, all independent: the two Grams (or the explicit dW in row blocks), and
    // the product W^T grad in row blocks, times phi'(h^{l-1}), with its statistics.
    Mat<Scalar> gram_x, gram_g;  // (batch, batch), lower triangles
    Mat<Scalar> below;           // dL/dh^{l-1} / 2^exp2, (n_{l-1}, batch)
    const std::int64_t dw_tasks = gram ? 2 : row_tasks(n_out);
    const std::int64_t below_tasks = has_below ? row_tasks(n_in) : 0;
    std::vector<double> dw_squares(static_cast<std::size_t>(gram ? 0 : dw_tasks), 0.0);
    std::vector<GradPartial> below_parts(static_cast<std::size_t>(below_tasks));
    if (has_below) below.resize(n_in, batch);
    const LayerSpec* below_layer = has_below ? &net.layers[l - 1] : nullptr;

    pool.run(dw_tasks + below_tasks, [&](std::int64_t t) {
      if (t < dw_tasks) {
        if (gram) {
          if (t == 0) gram_lower(x, gram_x);
          if (t == 1) gram_lower(grad, gram_g);
          return;
        }
        const RowRange r = task_rows(t, n_out);
        Mat<Scalar> dw(r.size, n_in);  // rows of dL/dW / 2^exp2
        dw.noalias() = grad.middleRows(r.begin, r.size) * x.transpose();
        SquareSum s;
        for (Eigen::Index j = 0; j < n_in; ++j) s.add(dw.col(j).data(), r.size);
        dw_squares[static_cast<std::size_t>(t)] = s.sum;
        return;
      }
      const std::int64_t bt = t - dw_tasks;
      const RowRange r = task_rows(bt, n_in);
      Mat<Scalar> g(r.size, batch);  // rows of dL/dx^{l-1} / 2^exp2
      g.noalias() = w.middleCols(r.begin, r.size).transpose() * grad;
      const ActivationSpec& a = below_layer->activation;
      const auto y_block = act[l - 1].middleRows(r.begin, r.size);
      if (keeps_slope(a)) {
        activation_backward<Scalar>(a, y_block, slope[l - 1].middleRows(r.begin, r.size), g,
                                    below.middleRows(r.begin, r.size));
      } else {
        Mat<Scalar> d(r.size, batch);  // phi'(h^{l-1}) recovered from y for this block
        activation_derivative_from_output<Scalar>(a, y_block, d);
        activation_backward<Scalar>(a, y_block, d, g, below.middleRows(r.begin, r.size));
      }
      accumulate_gradient_block(below, r, below_parts[static_cast<std::size_t>(bt)]);
    });

    // Statistics of layer l from grad (gathered when it was produced).
    BackwardStats& bs = result.backward[l];
    const double count = static_cast<double>(std::max<std::int64_t>(1, grad_stats.squares.finite));
    bs.grad_preact_rms = magnitude_from_scaled(std::sqrt(grad_stats.squares.sum / count), exp2);
    bs.nonfinite = grad_stats.squares.nonfinite;
    bs.grad_bias_norm = magnitude_from_scaled(std::sqrt(grad_stats.bias_squares), exp2);
    double dw_sq = 0.0;
    if (gram) {
      dw_sq = lower_symmetric_dot(gram_x, gram_g);
    } else {
      for (double s : dw_squares) dw_sq += s;
    }
    // Rounding can leave a tiny negative where the true value is ~0 (exactly orthogonal blocks).
    bs.grad_weight_norm = magnitude_from_scaled(std::sqrt(std::max(0.0, dw_sq)), exp2);
    bs.weight_norm = net.weight_norm[l];
    bs.grad_weight_to_weight =
        magnitude_ratio(bs.grad_weight_norm, magnitude_from_scaled(bs.weight_norm, 0));
    bs.gain = magnitude_ratio(bs.grad_preact_rms, above);
    above = bs.grad_preact_rms;

    if (options.keep_gradients) {
      const double scale = std::ldexp(1.0, static_cast<int>(exp2));
      Eigen::MatrixXd g = grad.template cast<double>() * scale;
      result.gradients.dpreact[l] = g;
      result.gradients.dweight[l] = g * x.template cast<double>().transpose();
      result.gradients.dbias[l] = g.rowwise().sum();
      if (l == 0) result.gradients.dinput = w.template cast<double>().transpose() * g;
    }
    if (!has_below) break;

    grad_stats = GradPartial{};
    for (const GradPartial& p : below_parts) {
      grad_stats.squares.merge(p.squares);
      grad_stats.bias_squares += p.bias_squares;
    }
    grad = std::move(below);

    // Keep the stored gradient near 1 in rms. The statistics just gathered are in the old scale,
    // so rescale them by the same exact power of two.
    const double ms = grad_stats.squares.sum /
                      static_cast<double>(std::max<std::int64_t>(1, grad_stats.squares.finite));
    if (ms > 0.0 && std::isfinite(ms)) {
      const int e = std::ilogb(ms) / 2;
      if (e > kRescaleBits || e < -kRescaleBits) {
        const Scalar factor = std::ldexp(Scalar(1), -e);
        pool.run(row_tasks(grad.rows()), [&](std::int64_t t) {
          const RowRange r = task_rows(t, grad.rows());
          grad.middleRows(r.begin, r.size) *= factor;
        });
        grad_stats.squares.sum = std::ldexp(grad_stats.squares.sum, -2 * e);
        grad_stats.bias_squares = std::ldexp(grad_stats.bias_squares, -2 * e);
        exp2 += e;
      }
    }
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
