// Assigning a file's tensors to the layers a config describes, and the run's own data back out
// as tensors.
#include "gradscope/io/weights.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "gradscope/core/error.hpp"

namespace gradscope {

namespace {

std::vector<std::string> segments(const std::string& name) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : name) {
    if (c == '.') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// state_dict order: segment by segment, numbers as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  const std::vector<std::string> x = segments(a);
  const std::vector<std::string> y = segments(b);
  for (std::size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    if (x[i] == y[i]) continue;
    if (all_digits(x[i]) && all_digits(y[i])) {
      if (x[i].size() != y[i].size()) return x[i].size() < y[i].size();
      return x[i] < y[i];
    }
    return x[i] < y[i];
  }
  return x.size() < y.size();
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// A module: the tensors that share a name up to the last dot.
struct Module {
  std::string prefix;
  const Tensor* weight = nullptr;
  const Tensor* bias = nullptr;
  std::vector<const Tensor*> other;
};

std::string op_words(const OpSpec& op, int n_in, int n_out) {
  switch (op.kind) {
    case OpKind::kDense:
      return "dense " + std::to_string(n_in) + " -> " + std::to_string(n_out);
    case OpKind::kNorm:
      return std::string(norm_name(op.norm.kind)) + " of width " + std::to_string(n_out);
    case OpKind::kResidualEnd:
      return "residual projection " + std::to_string(n_in) + " -> " + std::to_string(n_out);
    default:
      return std::string(op_kind_name(op.kind));
  }
}

Eigen::MatrixXd matrix_of(const Tensor& t) {
  // Row-major (n_out, n_in) into Eigen's column-major storage.
  const auto rows = static_cast<Eigen::Index>(t.shape[0]);
  const auto cols = static_cast<Eigen::Index>(t.shape[1]);
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i) {
    for (Eigen::Index j = 0; j < cols; ++j)
      m(i, j) = t.values[static_cast<std::size_t>(i * cols + j)];
  }
  return m;
}

Tensor tensor_of(std::string name, const Eigen::MatrixXd& m) {
  Tensor t;
  t.name = std::move(name);
  t.shape = {m.rows(), m.cols()};
  t.values.resize(static_cast<std::size_t>(m.size()));
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      t.values[static_cast<std::size_t>(i * m.cols() + j)] = m(i, j);
    }
  }
  return t;
}

}  // namespace

WeightMapping map_weights(const RunSpec& spec, const std::vector<Tensor>& tensors,
                          const std::string& source) {
  std::vector<const Tensor*> sorted;
  for (const Tensor& t : tensors) sorted.push_back(&t);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Tensor* a, const Tensor* b) { return natural_less(a->name, b->name); });
  WeightMapping out;
  std::vector<Module> modules;
  for (const Tensor* t : sorted) {
    const auto dot = t->name.rfind('.');
    const std::string prefix = dot == std::string::npos ? "" : t->name.substr(0, dot);
    const std::string leaf = dot == std::string::npos ? t->name : t->name.substr(dot + 1);
    if (dot == std::string::npos &&
        (t->name == "input" || t->name == "probe" || t->name == "targets" || t->name == "labels")) {
      out.ignored.push_back(t->name +
                            ": a saved run's data, not a parameter (--input and "
                            "--targets read it)");
      continue;
    }
    if (leaf == "running_mean" || leaf == "running_var" || leaf == "num_batches_tracked") {
      out.ignored.push_back(t->name +
                            ": batch norm running statistics (gradscope runs batch "
                            "norm in training mode, on the batch's own statistics)");
      continue;
    }
    if (modules.empty() || modules.back().prefix != prefix) {
      Module fresh;
      fresh.prefix = prefix;
      modules.push_back(fresh);
    }
    Module& m = modules.back();
    if (leaf == "weight" && m.weight == nullptr) {
      m.weight = t;
    } else if (leaf == "bias" && m.bias == nullptr) {
      m.bias = t;
    } else {
      m.other.push_back(t);
    }
  }
  for (const Module& m : modules) {
    for (const Tensor* t : {m.weight, m.bias}) {
      if (t != nullptr && (t->dtype == DType::kI64 || t->dtype == DType::kI32)) {
        throw Error(source + ": tensor \"" + t->name + "\" holds integers (" +
                        std::string(dtype_name(t->dtype)) + "), not weights",
                    "save the model's parameters as floating-point tensors");
      }
    }
    if (!m.other.empty() || m.weight == nullptr) {
      const Tensor* t = !m.other.empty() ? m.other.front() : m.bias;
      throw Error(source + ": tensor \"" + t->name + "\" is not a layer's weight or bias",
                  "gradscope reads modules with a \"weight\" (and optionally a \"bias\"): dense "
                  "layers and norms; remove other tensors from the state_dict before saving");
    }
  }

  const std::vector<OpSpec> ops = expand_ops(spec);
  const std::vector<int> widths = op_widths(spec, ops);
  out.data.weight.assign(ops.size(), {});
  out.data.bias.assign(ops.size(), {});
  std::size_t next = 0;
  int reported = 0;
  std::vector<int> open;  // residual begins
  const auto module_words = [&](const Module& m) {
    return "module \"" + m.prefix + "\" (weight " + shape_text(m.weight->shape) + ")";
  };
  for (std::size_t l = 0; l < ops.size(); ++l) {
    const OpSpec& op = ops[l];
    if (op.kind == OpKind::kResidualBegin) {
      open.push_back(static_cast<int>(l));
      continue;
    }
    ++reported;
    const int n_in = l == 0 ? spec.input.width : widths[l - 1];
    const int n_out = widths[l];
    const std::string layer =
        "layer " + std::to_string(reported) + " (" + op_words(op, n_in, n_out) + ")";
    const bool projection = op.kind == OpKind::kResidualEnd && op.residual.projection;
    int skip_width = 0;
    if (op.kind == OpKind::kResidualEnd) {
      const int begin = open.back();
      open.pop_back();
      skip_width = begin == 0 ? spec.input.width : widths[static_cast<std::size_t>(begin) - 1];
    }
    if (op.kind == OpKind::kDense || projection) {
      if (next >= modules.size()) {
        throw Error(source + ": no tensor left for " + layer,
                    "the file holds " + std::to_string(modules.size()) +
                        " modules; check that the config describes the same network");
      }
      const Module& m = modules[next];
      const std::int64_t want_in = projection ? skip_width : n_in;
      if (m.weight->shape.size() != 2 || m.weight->shape[0] != n_out ||
          m.weight->shape[1] != want_in) {
        throw Error(source + ": tensor \"" + m.weight->name + "\" has shape " +
                        shape_text(m.weight->shape) + ", but " + layer + " needs (" +
                        std::to_string(n_out) + ", " + std::to_string(want_in) + ")",
                    "tensors are taken in the state_dict's order; the config's layers must "
                    "match the model's");
      }
      out.data.weight[l] = matrix_of(*m.weight);
      out.assignments.push_back(
          {m.weight->name, reported, projection ? "projection" : "weight", m.weight->shape});
      if (m.bias != nullptr) {
        if (projection || m.bias->shape != std::vector<std::int64_t>{n_out}) {
          throw Error(
              source + ": tensor \"" + m.bias->name + "\" has shape " + shape_text(m.bias->shape) +
                  ", but " + layer +
                  (projection ? " takes no bias" : " needs (" + std::to_string(n_out) + ",)"),
              "check that the config describes the same network");
        }
        out.data.bias[l] = Eigen::Map<const Eigen::VectorXd>(m.bias->values.data(), n_out);
        out.assignments.push_back({m.bias->name, reported, "bias", m.bias->shape});
      } else if (op.kind == OpKind::kDense) {
        out.data.bias[l] = Eigen::VectorXd::Zero(n_out);
        out.ignored.push_back(m.prefix + ".bias: absent, so layer " + std::to_string(reported) +
                              "'s bias is zero");
      }
      ++next;
    } else if (op.kind == OpKind::kNorm && next < modules.size() &&
               modules[next].weight->shape.size() == 1) {
      // An affine norm's gamma and beta: gradscope's norms are the identity affine map.
      const Module& m = modules[next];
      for (const Tensor* t : {m.weight, m.bias}) {
        if (t == nullptr) continue;
        if (t->shape != std::vector<std::int64_t>{n_out}) {
          throw Error(source + ": tensor \"" + t->name + "\" has shape " + shape_text(t->shape) +
                          ", but " + layer + " needs (" + std::to_string(n_out) + ",)",
                      "check that the config describes the same network");
        }
        const double identity = t == m.weight ? 1.0 : 0.0;
        for (std::size_t i = 0; i < t->values.size(); ++i) {
          if (t->values[i] != identity) {
            throw Error(source + ": tensor \"" + t->name + "\"[" + std::to_string(i) + "] is " +
                            std::to_string(t->values[i]) +
                            ", but gradscope's norms use gamma = 1 "
                            "and beta = 0",
                        "diagnose at initialisation (PyTorch initialises them so), or fold the "
                        "affine map into the next layer's weights");
          }
        }
        out.assignments.push_back(
            {t->name, reported, t == m.weight ? "norm_weight" : "norm_bias", t->shape});
      }
      ++next;
    }
  }
  if (next < modules.size()) {
    std::string left;
    for (std::size_t i = next; i < modules.size() && i < next + 5; ++i) {
      left += (left.empty() ? "" : ", ") + module_words(modules[i]);
    }
    throw Error(source + ": " + std::to_string(modules.size() - next) +
                    " modules are left over after the config's last layer: " + left,
                "the config describes fewer layers than the file holds");
  }
  return out;
}

Eigen::MatrixXd batch_matrix(const Tensor& t, int width, const std::string& source) {
  if (t.shape.size() != 2) {
    throw Error(source + ": shape " + shape_text(t.shape) + ", but a batch is (examples, " +
                    std::to_string(width) + ")",
                "save one example per row, e.g. numpy.save(path, x.reshape(-1, " +
                    std::to_string(width) + "))");
  }
  if (t.shape[1] != width) {
    throw Error(source + ": " + std::to_string(t.shape[1]) +
                    " values per example, but the network's "
                    "input width is " +
                    std::to_string(width),
                "save a batch with " + std::to_string(width) +
                    " values per example (a config's input.width follows the batch; a model "
                    "file's does not)");
  }
  return matrix_of(t).transpose();
}

LossTargets targets_from_tensor(const Tensor& t, const RunSpec& spec, int output_width,
                                const std::string& source) {
  LossTargets out;
  const int batch = spec.input.batch;
  if (spec.loss.kind == LossKind::kSoftmaxCrossEntropy) {
    const bool column = t.shape.size() == 2 && t.shape[1] == 1;
    if (!(t.shape.size() == 1 || column) || t.shape[0] != batch) {
      throw Error(source + ": shape " + shape_text(t.shape) +
                      ", but softmax_cross_entropy takes "
                      "one class index per example: (" +
                      std::to_string(batch) + ",)",
                  "save the labels as a 1-D array of integers");
    }
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      const double v = t.values[i];
      if (!(v >= 0 && v < output_width && v == std::floor(v))) {
        throw Error(source + ": label " + std::to_string(i) + " is " + std::to_string(v) +
                        ", not a class index in [0, " + std::to_string(output_width) + ")",
                    "labels are integers from 0 to classes - 1");
      }
      out.labels.push_back(static_cast<int>(v));
    }
    return out;
  }
  if (spec.loss.kind == LossKind::kProbe) {
    throw Error(source + ": the probe loss takes no targets",
                "set a loss (mse, sigmoid_bce or softmax_cross_entropy) to use --targets");
  }
  if (t.shape.size() != 2 || t.shape[0] != batch || t.shape[1] != output_width) {
    throw Error(source + ": shape " + shape_text(t.shape) + ", but " +
                    std::string(loss_name(spec.loss.kind)) + " takes (" + std::to_string(batch) +
                    ", " + std::to_string(output_width) + ")",
                "one row of targets per example, one column per output");
  }
  out.values = matrix_of(t).transpose();
  return out;
}

std::vector<Tensor> run_data_tensors(const RunSpec& spec, const RunData& data) {
  std::vector<Tensor> out;
  const std::vector<OpSpec> ops = expand_ops(spec);
  for (std::size_t l = 0; l < ops.size() && l < data.weight.size(); ++l) {
    const std::string k = "ops." + std::to_string(l);
    if (ops[l].kind == OpKind::kDense) {
      out.push_back(tensor_of(k + ".weight", data.weight[l]));
      Tensor b = tensor_of(k + ".bias", data.bias[l]);
      b.shape = {data.bias[l].size()};
      out.push_back(std::move(b));
    } else if (ops[l].kind == OpKind::kResidualEnd && data.weight[l].size() > 0) {
      out.push_back(tensor_of(k + ".projection", data.weight[l]));
    }
  }
  out.push_back(tensor_of("input", data.input.transpose()));
  if (data.probe.size() > 0) out.push_back(tensor_of("probe", data.probe.transpose()));
  if (data.targets.values.size() > 0) {
    out.push_back(tensor_of("targets", data.targets.values.transpose()));
  }
  if (!data.targets.labels.empty()) {
    Tensor labels;
    labels.name = "labels";
    labels.shape = {static_cast<std::int64_t>(data.targets.labels.size())};
    for (int c : data.targets.labels) labels.values.push_back(c);
    out.push_back(std::move(labels));
  }
  return out;
}

}  // namespace gradscope
