// A network's parameters: generated from the spec's seed (in parallel, the same values whatever
// the thread count), or drawn again when the passes need them; the input batch and the probe. The
// passes themselves are in passes.cpp, their ops under ops/.
#include "gradscope/core/network.hpp"

#include <cmath>
#include <vector>

#include "core/tasks.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/stats.hpp"

namespace gradscope {

namespace {

using ops::Range;
using ops::task_range;
using ops::tasks_for;

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

// Weights are drawn, and their squares summed, 32 columns a task: the partial sums of the blocks
// merge in block order, so the norm is the same whoever draws the blocks, and is summed while the
// block is still in cache.
constexpr int kDrawColumns = 32;

template <class Scalar>
SquareSum column_block_squares(const Mat<Scalar>& w, Range c) {
  SquareSum squares;
  for (Eigen::Index j = c.begin; j < c.begin + c.size; ++j) {
    squares.add(w.col(j).data(), w.rows());
  }
  return squares;
}

// The key of tensor j of an op with several (attention's projections, a GLU's): tensor 0 uses the
// op's weight stream itself, the others streams derived from it.
std::uint64_t tensor_key(std::uint64_t key, int j) {
  return j == 0 ? key : mix64(key ^ (static_cast<std::uint64_t>(j) * 0x9e3779b97f4a7c15ULL));
}

// Attention's [Wq; Wk; Wv; Wo] (each (d, d), fans d and d) or a GLU's [W1; W3; W2^T] (W1, W3
// (hidden, d) with fan_in d; W2 (d, hidden) with fan_in hidden, drawn in its own layout and
// stored transposed), each from its own stream, in double.
Eigen::MatrixXd stacked_weights(const OpSpec& op, int d, std::uint64_t key) {
  if (op.kind == OpKind::kAttention) {
    const int count = op.attention.output_projection ? 4 : 3;
    Eigen::MatrixXd w(count * d, d);
    for (int j = 0; j < count; ++j) {
      Eigen::MatrixXd block(d, d);
      init_weights(op.attention.init[static_cast<std::size_t>(j)], tensor_key(key, j), block);
      w.middleRows(j * d, d) = block;
    }
    return w;
  }
  const int hidden = op.glu.hidden;
  Eigen::MatrixXd w(3 * hidden, d);
  for (int j = 0; j < 3; ++j) {
    Eigen::MatrixXd block(j == 2 ? d : hidden, j == 2 ? hidden : d);  // PyTorch's (out, in)
    init_weights(op.glu.init[static_cast<std::size_t>(j)], tensor_key(key, j), block);
    if (j == 2) {
      w.middleRows(2 * hidden, hidden) = block.transpose();
    } else {
      w.middleRows(j * hidden, hidden) = block;
    }
  }
  return w;
}

// The bias length of an attention or GLU op (0 without biases); they start at zero.
Eigen::Index stacked_bias_size(const OpSpec& op, int d) {
  if (op.kind == OpKind::kAttention && op.attention.bias) {
    return (op.attention.output_projection ? 4 : 3) * Eigen::Index{d};
  }
  if (op.kind == OpKind::kGlu && op.glu.bias) return 2 * Eigen::Index{op.glu.hidden} + d;
  return 0;
}

}  // namespace

template <class Scalar>
double weight_frobenius(const Mat<Scalar>& w) {
  SquareSum total;
  for (std::int64_t t = 0; t < tasks_for(w.cols(), kDrawColumns); ++t) {
    total.merge(column_block_squares(w, task_range(t, w.cols(), kDrawColumns)));
  }
  return std::sqrt(total.value());
}

template <class Scalar>
double generate_weight(const Network<Scalar>& net, std::size_t l, Mat<Scalar>& w,
                       ThreadPool& pool) {
  const OpSpec& op = net.ops[l];
  const auto index = static_cast<std::uint64_t>(l + 1);  // ops are numbered from 1
  const int fan_in = l == 0 ? net.input_width : net.widths[l - 1];
  if (op.kind == OpKind::kResidualEnd && op.residual.conv_projection()) {
    // The learned 1x1 convolution, (C_out, C_in): PyTorch's fans C_in and C_out (a 1x1 kernel).
    const int c_in = op.residual.skip_image.channels;
    const int c_out = op.image.channels;
    Eigen::MatrixXd p(c_out, c_in);
    init_weights(op.residual.projection_init,
                 stream_key(net.seed, index, StreamPurpose::kProjection), p, c_in, c_out);
    w = p.cast<Scalar>();
    return weight_frobenius(w);
  }
  if (op.kind == OpKind::kResidualEnd && op.residual.projection) {
    const auto begin = static_cast<std::size_t>(net.partner[l]);
    const int skip_width = begin == 0 ? net.input_width : net.widths[begin - 1];
    Eigen::MatrixXd p(net.widths[l], skip_width);
    init_weights(op.residual.projection_init,
                 stream_key(net.seed, index, StreamPurpose::kProjection), p);
    w = p.cast<Scalar>();
    return weight_frobenius(w);
  }
  if (op.kind == OpKind::kAttention || op.kind == OpKind::kGlu) {
    w = stacked_weights(op, fan_in, stream_key(net.seed, index, StreamPurpose::kWeights))
            .template cast<Scalar>();
    return weight_frobenius(w);
  }
  if (op.kind == OpKind::kConv) {
    const ConvSpec& c = op.conv;
    Eigen::MatrixXd d(c.channels, c.fan_in());
    const std::uint64_t key = stream_key(net.seed, index, StreamPurpose::kWeights);
    if (c.init.kind == Init::kDeltaOrthogonal) {
      // Zero but at the centre tap (k_h / 2, k_w / 2) of every input channel: column
      // (ci k_h + k_h / 2) k_w + k_w / 2 holds column ci of the orthogonal Q.
      const int per_group = c.in.channels / std::max(c.groups, 1);
      Eigen::MatrixXd q(c.channels, per_group);
      init_weights(c.init, key, q);
      d.setZero();
      for (int ci = 0; ci < per_group; ++ci) {
        d.col((ci * c.kernel_h + c.kernel_h / 2) * c.kernel_w + c.kernel_w / 2) = q.col(ci);
      }
    } else {
      init_weights(c.init, key, d, c.fan_in(), c.fan_out());
    }
    w = d.cast<Scalar>();
    return weight_frobenius(w);
  }
  if (op.kind != OpKind::kDense) {
    w.resize(0, 0);
    return 0.0;
  }
  const LayerSpec& layer = op.dense;
  const std::uint64_t key = stream_key(net.seed, index, StreamPurpose::kWeights);
  if (!init_is_elementwise(layer.init.kind)) {
    // Orthogonal: a QR of the whole matrix, in double.
    Eigen::MatrixXd d(layer.width, fan_in);
    init_weights(layer.init, key, d);
    w = d.cast<Scalar>();
    return weight_frobenius(w);
  }
  // Entry (i, j) is number i + j * rows of its stream, so blocks of columns drawn by separate
  // tasks are the values a single draw makes. Drawn in double and rounded once.
  w.resize(layer.width, fan_in);
  const std::int64_t tasks = tasks_for(fan_in, kDrawColumns);
  std::vector<SquareSum> parts(static_cast<std::size_t>(tasks));
  pool.run(tasks, [&](std::int64_t t) {
    const Range c = task_range(t, fan_in, kDrawColumns);
    const auto first = static_cast<int>(c.begin);
    const auto n = static_cast<int>(c.size);
    if constexpr (std::is_same_v<Scalar, double>) {
      init_weight_columns(layer.init, key, layer.width, fan_in, first, n,
                          w.data() + c.begin * w.rows());
    } else {
      Eigen::MatrixXd block(layer.width, n);  // (width, columns of this task)
      init_weight_columns(layer.init, key, layer.width, fan_in, first, n, block.data());
      w.middleCols(c.begin, c.size) = block.template cast<Scalar>();
    }
    parts[static_cast<std::size_t>(t)] = column_block_squares(w, c);
  });
  SquareSum total;
  for (const SquareSum& p : parts) total.merge(p);
  return std::sqrt(total.value());
}

template <class Scalar>
const Mat<Scalar>& weight_of(const Network<Scalar>& net, std::size_t l, Mat<Scalar>& scratch,
                             ThreadPool& pool) {
  if (!net.regenerate || net.weight[l].size() > 0) return net.weight[l];
  generate_weight(net, l, scratch, pool);
  return scratch;
}

template <class Scalar>
Network<Scalar> build_network(const RunSpec& spec, ThreadPool& pool, WeightStorage storage) {
  Network<Scalar> net;
  net.input_width = spec.input.width;
  net.tokens = spec.input.tokens;
  net.seed = spec.seed;
  net.regenerate = storage == WeightStorage::kRegenerated;
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
  // Biases are small: always stored.
  pool.run(static_cast<std::int64_t>(count), [&](std::int64_t k) {
    const auto l = static_cast<std::size_t>(k);
    const int fan_in = l == 0 ? spec.input.width : net.widths[l - 1];
    if (net.ops[l].kind == OpKind::kAttention || net.ops[l].kind == OpKind::kGlu) {
      net.bias[l] = Vec<Scalar>::Zero(stacked_bias_size(net.ops[l], fan_in));
      return;
    }
    if (net.ops[l].kind == OpKind::kConv) {
      const ConvSpec& c = net.ops[l].conv;
      if (!c.bias) return;
      Eigen::VectorXd b(c.channels);
      init_bias(c.bias_init, c.fan_in(),
                stream_key(spec.seed, static_cast<std::uint64_t>(k + 1), StreamPurpose::kBias), b);
      net.bias[l] = b.cast<Scalar>();
      return;
    }
    if (net.ops[l].kind != OpKind::kDense) return;
    const LayerSpec& layer = net.ops[l].dense;
    Eigen::VectorXd b(layer.width);
    init_bias(layer.bias, fan_in,
              stream_key(spec.seed, static_cast<std::uint64_t>(k + 1), StreamPurpose::kBias), b);
    net.bias[l] = b.cast<Scalar>();
  });
  if (net.regenerate) return net;
  // One op a task: a one-thread pool inside keeps each draw sequential.
  pool.run(static_cast<std::int64_t>(count), [&](std::int64_t k) {
    const auto l = static_cast<std::size_t>(k);
    ThreadPool serial(1);
    const double norm = generate_weight(net, l, net.weight[l], serial);
    if (net.ops[l].kind != OpKind::kResidualEnd) net.weight_norm[l] = norm;
  });
  return net;
}

template <class Scalar>
Mat<Scalar> make_input(const RunSpec& spec) {
  const InputSpec& in = spec.input;
  return random_matrix<Scalar>(in.width, input_columns(in),
                               stream_key(spec.seed, 0, StreamPurpose::kInput), in.distribution,
                               in.mean, in.std, in.low, in.high);
}

template <class Scalar>
Mat<Scalar> make_probe(const RunSpec& spec, int output_width) {
  return random_matrix<Scalar>(output_width, input_columns(spec.input),
                               stream_key(spec.seed, 0, StreamPurpose::kProbe),
                               InputDistribution::kNormal, 0.0, 1.0, 0.0, 0.0);
}

template Network<float> build_network<float>(const RunSpec&, ThreadPool&, WeightStorage);
template Network<double> build_network<double>(const RunSpec&, ThreadPool&, WeightStorage);
template double generate_weight<float>(const Network<float>&, std::size_t, Mat<float>&,
                                       ThreadPool&);
template double generate_weight<double>(const Network<double>&, std::size_t, Mat<double>&,
                                        ThreadPool&);
template const Mat<float>& weight_of<float>(const Network<float>&, std::size_t, Mat<float>&,
                                            ThreadPool&);
template const Mat<double>& weight_of<double>(const Network<double>&, std::size_t, Mat<double>&,
                                              ThreadPool&);
template double weight_frobenius<float>(const Mat<float>&);
template double weight_frobenius<double>(const Mat<double>&);
template Mat<float> make_input<float>(const RunSpec&);
template Mat<double> make_input<double>(const RunSpec&);
template Mat<float> make_probe<float>(const RunSpec&, int);
template Mat<double> make_probe<double>(const RunSpec&, int);

}  // namespace gradscope
