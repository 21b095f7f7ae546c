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
// bias) matrix. The moments are kept in the network's precision, as PyTorch keeps them.
template <class Scalar>
struct Slot {
  int tensor = 0;
  bool bias = false;
  Eigen::Index row = 0;
  Eigen::Index rows = 0;
  double lr = 1.0;
  double eps = 1.0;
  Mat<Scalar> m, v;  // sgd: m is the momentum buffer
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
  std::vector<std::vector<Slot<Scalar>>> slots(count);
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
      Slot<Scalar> s;
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
  options.gradients_in_precision = true;

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
  Eigen::VectorXd scratch_u, scratch_before;  // the optimizer's update and the values before it
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
        double abs_sum = 0.0;
        double square_sum = 0.0;
        const double* now = r.outputs[l].data();
        const double* then = initial[l].data();
        for (Eigen::Index i = 0; i < r.outputs[l].size(); ++i) {
          const double d = now[i] - then[i];
          abs_sum += std::abs(d);
          square_sum += d * d;
        }
        const double n = static_cast<double>(r.outputs[l].size());
        const Sizes c{abs_sum / n, std::sqrt(square_sum / n)};
        trace.change_l1[t][l] = c.l1;
        trace.change_rms[t][l] = c.rms;
      }
    }
    if (t == steps) break;
    // The optimizer step t + 1, entry by entry: the state, the new value as stored, and the
    // sizes of the move, in one pass without temporaries.
    const double step = static_cast<double>(t + 1);
    const double c1 = 1.0 - std::pow(train.beta1, step);
    const double c2 = 1.0 - std::pow(train.beta2, step);
    for (std::size_t l = 0; l < count; ++l) {
      for (Slot<Scalar>& s : slots[l]) {
        const double lr = train.learning_rate * s.lr;
        const double eps = train.eps * s.eps;
        const double decay =
            train.optimizer == TrainOptimizer::kAdamW ? 1.0 - lr * train.weight_decay : 1.0;
        const bool sgd = train.optimizer == TrainOptimizer::kSgd;
        const bool first = s.m.size() == 0;
        // The tensor's entries: rows [row, row + rows) of a column-major matrix with `ld` rows.
        Scalar* value = nullptr;
        const double* grad = nullptr;
        Eigen::Index ld = 0;
        Eigen::Index cols = 1;
        if (s.bias) {
          const Eigen::VectorXd& db = r.gradients.dbias[l];
          if (db.size() != net.bias[l].size()) throw contract_error("train: bias gradient shape");
          value = net.bias[l].data();
          grad = db.data();
          ld = net.bias[l].size();
        } else {
          const Eigen::MatrixXd& dw = r.gradients.dweight[l];
          Mat<Scalar>& w = net.weight[l];
          if (dw.size() != w.size()) throw contract_error("train: weight gradient shape");
          value = w.data();
          grad = dw.data();
          ld = w.rows();
          cols = w.cols();
        }
        if (first) {
          s.m = Mat<Scalar>::Zero(s.rows, cols);
          if (!sgd) s.v = Mat<Scalar>::Zero(s.rows, cols);
        }
        using Stride = Eigen::OuterStride<>;
        const Eigen::Map<const Eigen::MatrixXd, 0, Stride> gm(grad + s.row, s.rows, cols,
                                                              Stride(ld));
        Eigen::Map<Mat<Scalar>, 0, Stride> wm(value + s.row, s.rows, cols, Stride(ld));
        // Coefficient-wise, in place (vectorised), in double; scratch is shared by the tensors.
        if (scratch_u.size() < s.rows * cols) {
          scratch_u.resize(s.rows * cols);
          scratch_before.resize(s.rows * cols);
        }
        Eigen::Map<Eigen::MatrixXd> u(scratch_u.data(), s.rows, cols);
        Eigen::Map<Eigen::MatrixXd> before(scratch_before.data(), s.rows, cols);
        if (sgd) {
          if (first) {
            s.m = gm.template cast<Scalar>();
          } else {
            s.m = (train.momentum * s.m.template cast<double>() + gm).template cast<Scalar>();
          }
          u = lr * s.m.template cast<double>();
        } else {
          s.m = (train.beta1 * s.m.template cast<double>() + (1.0 - train.beta1) * gm)
                    .template cast<Scalar>();
          s.v = (train.beta2 * s.v.template cast<double>() + (1.0 - train.beta2) * gm.cwiseAbs2())
                    .template cast<Scalar>();
          u = (lr / c1) * (s.m.template cast<double>().array() /
                           ((s.v.template cast<double>().array() / c2).sqrt() + eps))
                              .matrix();
        }
        before = wm.template cast<double>();
        wm = (decay * before - u).template cast<Scalar>();
        u = wm.template cast<double>() - before;  // the move, as stored
        const double abs_sum = u.cwiseAbs().sum();
        const double square_sum = u.squaredNorm();
        const double n = static_cast<double>(s.rows * cols);
        trace.update_l1[t + 1][static_cast<std::size_t>(s.tensor)] = abs_sum / n;
        trace.update_rms[t + 1][static_cast<std::size_t>(s.tensor)] = std::sqrt(square_sum / n);
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
