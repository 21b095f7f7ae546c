// A few optimizer steps on one batch (train.hpp): PyTorch's SGD (with momentum), Adam and AdamW,
// each tensor with its own learning-rate and epsilon multipliers, on the passes' exact gradients.
#include "gradscope/engine/train.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "gradscope/core/error.hpp"
#include "gradscope/core/loss.hpp"
#include "gradscope/core/network.hpp"

namespace gradscope {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Sizes {
  double l1 = kNaN;
  double rms = kNaN;
};

template <class Derived>
Sizes sizes_of(const Eigen::MatrixBase<Derived>& x) {
  if (x.size() == 0) return {};
  const double n = static_cast<double>(x.size());
  return {x.template cast<double>().cwiseAbs().sum() / n,
          std::sqrt(x.template cast<double>().squaredNorm() / n)};
}

// One tensor's optimizer state and where it sits: rows [row, row + rows) of the op's weight (or
// bias) matrix.
struct Slot {
  int tensor = 0;
  bool bias = false;
  Eigen::Index row = 0;
  Eigen::Index rows = 0;
  double lr = 1.0;
  double eps = 1.0;
  Eigen::MatrixXd m, v;  // sgd: m is the momentum buffer
};

template <class Scalar>
TrainTrace train_impl(const ScaledConfig& config, const TrainSpec& train, ThreadPool& pool) {
  const RunSpec& spec = config.spec;
  Network<Scalar> net = build_network<Scalar>(spec, pool, WeightStorage::kKept);
  const std::size_t count = net.ops.size();
  // Norms train their gain and shift from 1 and 0.
  for (std::size_t l = 0; l < count; ++l) {
    if (net.ops[l].kind != OpKind::kNorm || net.weight[l].size() > 0) continue;
    const Eigen::Index n = net.widths[l];
    net.weight[l] = Mat<Scalar>::Ones(n, 1);
    if (net.ops[l].norm.kind != NormKind::kRmsNorm) net.bias[l] = Vec<Scalar>::Zero(n);
  }
  // Each tensor's slot: its op's weight split by rows (attention: q, k, v, o; GLU: gate, up,
  // down^T), or the op's bias.
  std::vector<std::vector<Slot>> slots(count);
  {
    std::vector<int> weights_of(count, 0);
    for (const TensorMultipliers& t : config.tensors) {
      if (t.name.size() < 5 || t.name.compare(t.name.size() - 5, 5, ".bias") != 0) {
        ++weights_of[static_cast<std::size_t>(t.op)];
      }
    }
    std::vector<int> seen(count, 0);
    for (std::size_t i = 0; i < config.tensors.size(); ++i) {
      const TensorMultipliers& t = config.tensors[i];
      const auto l = static_cast<std::size_t>(t.op);
      Slot s;
      s.tensor = static_cast<int>(i);
      s.lr = t.lr;
      s.eps = t.eps;
      s.bias = t.name.size() >= 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
      if (s.bias) {
        if (net.bias[l].size() == 0) continue;  // no bias in this op
        s.rows = net.bias[l].size();
      } else {
        const Eigen::Index total = net.weight[l].rows();
        const int k = weights_of[l];
        s.rows = total / k;
        s.row = s.rows * seen[l]++;
      }
      slots[l].push_back(std::move(s));
    }
  }

  const Mat<Scalar> input = make_input<Scalar>(spec);
  const int out_width = net.widths.back();
  const Mat<Scalar> probe = make_probe<Scalar>(spec, out_width);
  LossTargets targets;
  PassOptions options;
  options.saturation_threshold = spec.stats.saturation_threshold;
  options.seed = spec.seed;
  options.loss = spec.loss;
  if (spec.loss.kind != LossKind::kProbe) {
    targets = make_targets(spec.loss, spec.seed, out_width, input_columns(spec.input));
    options.targets = &targets;
  }
  options.keep_outputs = true;

  TrainTrace trace;
  const auto steps = static_cast<std::size_t>(train.steps);
  const std::size_t tensors = config.tensors.size();
  for (auto* v : {&trace.out_l1, &trace.out_rms, &trace.change_l1, &trace.change_rms}) {
    v->assign(steps + 1, std::vector<double>(count, kNaN));
  }
  for (auto* v : {&trace.update_l1, &trace.update_rms}) {
    v->assign(steps + 1, std::vector<double>(tensors, kNaN));
  }
  std::vector<Eigen::MatrixXd> initial(count);
  for (std::size_t t = 0; t <= steps; ++t) {
    options.keep_gradients = t < steps;
    PassResult r = forward_backward(net, input, probe, options, pool);
    trace.loss.push_back(r.loss);
    for (std::size_t l = 0; l < count; ++l) {
      if (l >= r.outputs.size() || r.outputs[l].size() == 0) continue;
      const Sizes s = sizes_of(r.outputs[l]);
      trace.out_l1[t][l] = s.l1;
      trace.out_rms[t][l] = s.rms;
      if (t == 0) {
        initial[l] = std::move(r.outputs[l]);
      } else {
        const Sizes c = sizes_of(r.outputs[l] - initial[l]);
        trace.change_l1[t][l] = c.l1;
        trace.change_rms[t][l] = c.rms;
      }
    }
    if (t == steps) break;
    // The optimizer step t + 1.
    const double step = static_cast<double>(t + 1);
    for (std::size_t l = 0; l < count; ++l) {
      for (Slot& s : slots[l]) {
        Eigen::MatrixXd g;
        if (s.bias) {
          const Eigen::VectorXd& db = r.gradients.dbias[l];
          if (db.size() != net.bias[l].size()) throw contract_error("train: bias gradient shape");
          g = db.segment(s.row, s.rows);
        } else {
          const Eigen::MatrixXd& dw = r.gradients.dweight[l];
          const Mat<Scalar>& w = net.weight[l];
          if (dw.size() != w.size()) throw contract_error("train: weight gradient shape");
          const Eigen::Map<const Eigen::MatrixXd> shaped(dw.data(), w.rows(), w.cols());
          g = shaped.middleRows(s.row, s.rows);
        }
        const double lr = train.learning_rate * s.lr;
        Eigen::MatrixXd u;
        if (train.optimizer == TrainOptimizer::kSgd) {
          if (s.m.size() == 0) {
            s.m = g;
          } else {
            s.m = train.momentum * s.m + g;
          }
          u = lr * s.m;
        } else {
          if (s.m.size() == 0) {
            s.m = Eigen::MatrixXd::Zero(g.rows(), g.cols());
            s.v = Eigen::MatrixXd::Zero(g.rows(), g.cols());
          }
          s.m = train.beta1 * s.m + (1.0 - train.beta1) * g;
          s.v = train.beta2 * s.v + (1.0 - train.beta2) * g.cwiseProduct(g);
          const double c1 = 1.0 - std::pow(train.beta1, step);
          const double c2 = 1.0 - std::pow(train.beta2, step);
          const double eps = train.eps * s.eps;
          u = lr * ((s.m / c1).array() / ((s.v / c2).array().sqrt() + eps)).matrix();
        }
        Sizes moved;
        if (s.bias) {
          auto b = net.bias[l].segment(s.row, s.rows);
          const Eigen::VectorXd before = b.template cast<double>();
          Eigen::VectorXd after = before;
          if (train.optimizer == TrainOptimizer::kAdamW) after *= 1.0 - lr * train.weight_decay;
          after -= u.col(0);
          b = after.template cast<Scalar>();
          moved = sizes_of(b.template cast<double>() - before);
        } else {
          auto w = net.weight[l].middleRows(s.row, s.rows);
          const Eigen::MatrixXd before = w.template cast<double>();
          Eigen::MatrixXd after = before;
          if (train.optimizer == TrainOptimizer::kAdamW) after *= 1.0 - lr * train.weight_decay;
          after -= u;
          w = after.template cast<Scalar>();
          moved = sizes_of(w.template cast<double>() - before);
        }
        trace.update_l1[t + 1][static_cast<std::size_t>(s.tensor)] = moved.l1;
        trace.update_rms[t + 1][static_cast<std::size_t>(s.tensor)] = moved.rms;
      }
    }
  }
  return trace;
}

}  // namespace

TrainTrace train_trace(const ScaledConfig& config, const TrainSpec& train, ThreadPool& pool) {
  if (config.spec.precision == Precision::kFloat64) return train_impl<double>(config, train, pool);
  return train_impl<float>(config, train, pool);
}

}  // namespace gradscope
