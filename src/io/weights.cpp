// Assigning a file's tensors to the layers a config describes, and the run's own data back out
// as tensors. Why this file is long: one walk over the config's ops matches every op kind's
// modules (dense, affine norms, projections, attention's four or packed three projections, a
// GLU's three), each with the errors that name the tensor, the layer and both shapes.
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
    case OpKind::kAttention:
      return "attention of width " + std::to_string(n_out) + ", " +
             std::to_string(op.attention.heads) + " heads";
    case OpKind::kGlu:
      return "glu " + std::to_string(n_in) + " -> " + std::to_string(op.glu.hidden) + " -> " +
             std::to_string(n_out);
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

// A projection of an op with several (attention's query, key, value, output; a GLU's gate, up,
// down): the names a module of it may end with, and the weight's shape.
struct Projection {
  std::string_view role;
  std::vector<std::string_view> names;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
};

std::vector<Projection> projections_of(const OpSpec& op, int width) {
  const std::int64_t d = width;
  if (op.kind == OpKind::kAttention) {
    std::vector<Projection> out{{"query", {"query", "q_proj", "q"}, d, d},
                                {"key", {"key", "k_proj", "k"}, d, d},
                                {"value", {"value", "v_proj", "v"}, d, d}};
    if (op.attention.output_projection) {
      out.push_back({"output", {"output", "out_proj", "o_proj", "o"}, d, d});
    }
    return out;
  }
  const std::int64_t h = op.glu.hidden;
  return {{"gate", {"gate", "gate_proj", "w1"}, h, d},
          {"up", {"up", "up_proj", "w3"}, h, d},
          {"down", {"down", "down_proj", "w2"}, d, h}};
}

std::string last_name(const std::string& prefix) {
  const auto dot = prefix.rfind('.');
  return dot == std::string::npos ? prefix : prefix.substr(dot + 1);
}

std::string parent_name(const std::string& prefix) {
  const auto dot = prefix.rfind('.');
  return dot == std::string::npos ? std::string() : prefix.substr(0, dot);
}

// Which of the next modules is each projection: by name when the next ones are siblings named
// for the projections (state_dict order sorts "key" before "query"), else in order.
std::vector<std::size_t> projection_modules(const std::vector<Projection>& projections,
                                            const std::vector<Module>& modules, std::size_t next) {
  const std::size_t n = projections.size();
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = next + i;
  if (next + n > modules.size()) return order;
  std::vector<std::size_t> by_name(n, modules.size());
  const std::string parent = parent_name(modules[next].prefix);
  for (std::size_t m = next; m < next + n; ++m) {
    if (parent_name(modules[m].prefix) != parent) return order;
    const std::string leaf = last_name(modules[m].prefix);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& names = projections[i].names;
      if (std::find(names.begin(), names.end(), leaf) != names.end() &&
          by_name[i] == modules.size()) {
        by_name[i] = m;
      }
    }
  }
  const bool all = std::all_of(by_name.begin(), by_name.end(),
                               [&](std::size_t m) { return m < modules.size(); });
  return all ? by_name : order;
}

}  // namespace

WeightMapping map_weights(const RunSpec& spec, const std::vector<Tensor>& tensors,
                          const std::string& source) {
  for (const OpSpec& op : expand_ops(spec)) {
    if (op.kind == OpKind::kConv) {
      throw Error(source + ": loading weights into a network with conv layers is not supported yet",
                  "run the config without --weights: its conv weights are drawn from the seed");
    }
  }
  std::vector<const Tensor*> sorted;
  for (const Tensor& t : tensors) sorted.push_back(&t);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Tensor* a, const Tensor* b) { return natural_less(a->name, b->name); });
  WeightMapping out;
  std::vector<Module> modules;
  for (const Tensor* t : sorted) {
    const auto dot = t->name.rfind('.');
    std::string prefix = dot == std::string::npos ? "" : t->name.substr(0, dot);
    std::string leaf = dot == std::string::npos ? t->name : t->name.substr(dot + 1);
    // nn.MultiheadAttention's packed query, key and value: a module "<prefix>.in_proj".
    if (leaf == "in_proj_weight" || leaf == "in_proj_bias") {
      prefix = prefix.empty() ? std::string("in_proj") : prefix + ".in_proj";
      leaf = leaf == "in_proj_weight" ? "weight" : "bias";
    }
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
    } else if (op.kind == OpKind::kAttention || op.kind == OpKind::kGlu) {
      // Each projection is a module of its own in the file (or, as nn.MultiheadAttention keeps
      // them, Wq, Wk and Wv are one in_proj_weight (3d, d)); the network holds them stacked by
      // rows (attention: [Wq; Wk; Wv; Wo]; a GLU: [W1; W3; W2^T]), their biases likewise.
      const std::vector<Projection> projections = projections_of(op, n_in);
      const bool has_bias = op.kind == OpKind::kAttention ? op.attention.bias : op.glu.bias;
      const auto no_bias = [&](const Tensor& t, const std::string& part) {
        return Error(
            source + ": tensor \"" + t.name + "\" has shape " + shape_text(t.shape) + ", but " +
                part + " has no bias in the config",
            "set \"bias\": true in the config's " + std::string(op_kind_name(op.kind)) + " item");
      };
      // Where each projection's rows are: a tensor and the first of its rows.
      struct Source {
        const Tensor* weight = nullptr;
        const Tensor* bias = nullptr;
        std::int64_t offset = 0;
        std::string prefix;
      };
      std::vector<Source> sources(projections.size());
      std::size_t packed = 0;  // projections taken from an in_proj module
      if (op.kind == OpKind::kAttention && next < modules.size() &&
          last_name(modules[next].prefix) == "in_proj") {
        const Module& m = modules[next];
        const std::int64_t d = n_in;
        const std::string part = layer + "'s packed query, key and value";
        if (m.weight->shape != std::vector<std::int64_t>{3 * d, d}) {
          throw Error(source + ": tensor \"" + m.weight->name + "\" has shape " +
                          shape_text(m.weight->shape) + ", but " + part + " need (" +
                          std::to_string(3 * d) + ", " + std::to_string(d) + ")",
                      "tensors are taken in the state_dict's order; the config's layers must "
                      "match the model's");
        }
        if (m.bias != nullptr && !has_bias) throw no_bias(*m.bias, part);
        if (m.bias != nullptr && m.bias->shape != std::vector<std::int64_t>{3 * d}) {
          throw Error(source + ": tensor \"" + m.bias->name + "\" has shape " +
                          shape_text(m.bias->shape) + ", but " + part + " need (" +
                          std::to_string(3 * d) + ",)",
                      "check that the config describes the same network");
        }
        for (std::size_t i = 0; i < 3; ++i) {
          sources[i] = {m.weight, m.bias, static_cast<std::int64_t>(i) * d, m.prefix};
        }
        out.assignments.push_back({m.weight->name, reported, "in_proj.weight", m.weight->shape});
        if (m.bias != nullptr) {
          out.assignments.push_back({m.bias->name, reported, "in_proj.bias", m.bias->shape});
        }
        packed = 3;
      }
      const std::size_t first = next + (packed > 0 ? 1 : 0);
      const std::vector<Projection> rest(projections.begin() + static_cast<std::ptrdiff_t>(packed),
                                         projections.end());
      if (first + rest.size() > modules.size()) {
        throw Error(source + ": no tensors left for " + layer + ", which takes " +
                        std::to_string(projections.size()) + " weight matrices",
                    "the file holds " + std::to_string(modules.size()) +
                        " modules; check that the config describes the same network");
      }
      const std::vector<std::size_t> which = projection_modules(rest, modules, first);
      for (std::size_t i = 0; i < rest.size(); ++i) {
        const Projection& p = rest[i];
        const Module& m = modules[which[i]];
        const std::string part = layer + "'s " + std::string(p.role) + " projection";
        if (m.weight->shape != std::vector<std::int64_t>{p.rows, p.cols}) {
          throw Error(source + ": tensor \"" + m.weight->name + "\" has shape " +
                          shape_text(m.weight->shape) + ", but " + part + " needs (" +
                          std::to_string(p.rows) + ", " + std::to_string(p.cols) + ")",
                      "tensors are taken in the state_dict's order; the config's layers must "
                      "match the model's");
        }
        if (m.bias != nullptr && !has_bias) throw no_bias(*m.bias, part);
        if (m.bias != nullptr && m.bias->shape != std::vector<std::int64_t>{p.rows}) {
          throw Error(source + ": tensor \"" + m.bias->name + "\" has shape " +
                          shape_text(m.bias->shape) + ", but " + part + " needs (" +
                          std::to_string(p.rows) + ",)",
                      "check that the config describes the same network");
        }
        sources[packed + i] = {m.weight, m.bias, 0, m.prefix};
        out.assignments.push_back(
            {m.weight->name, reported, std::string(p.role) + ".weight", m.weight->shape});
        if (m.bias != nullptr) {
          out.assignments.push_back(
              {m.bias->name, reported, std::string(p.role) + ".bias", m.bias->shape});
        }
      }
      std::int64_t rows = 0;
      std::int64_t bias_rows = 0;
      for (const Projection& p : projections) {
        rows += p.role == "down" ? p.cols : p.rows;
        bias_rows += p.rows;
      }
      Eigen::MatrixXd stacked(rows, n_in);
      Eigen::VectorXd bias = Eigen::VectorXd::Zero(has_bias ? bias_rows : 0);
      Eigen::Index row = 0;
      Eigen::Index bias_row = 0;
      for (std::size_t i = 0; i < projections.size(); ++i) {
        const Projection& p = projections[i];
        const Source& src = sources[i];
        const Eigen::MatrixXd w = matrix_of(*src.weight).middleRows(src.offset, p.rows);
        if (p.role == "down") {
          stacked.middleRows(row, p.cols) = w.transpose();
          row += p.cols;
        } else {
          stacked.middleRows(row, p.rows) = w;
          row += p.rows;
        }
        if (src.bias != nullptr) {
          bias.segment(bias_row, p.rows) =
              Eigen::Map<const Eigen::VectorXd>(src.bias->values.data() + src.offset, p.rows);
        } else if (has_bias && (i < packed ? i == 0 : true)) {
          out.ignored.push_back(
              src.prefix + ".bias: absent, so layer " + std::to_string(reported) + "'s " +
              (i < packed ? std::string("query, key and value") : std::string(p.role)) +
              " bias is zero");
        }
        bias_row += p.rows;
      }
      out.data.weight[l] = std::move(stacked);
      out.data.bias[l] = std::move(bias);
      next = first + rest.size();
    } else if (op.kind == OpKind::kNorm && next < modules.size() &&
               modules[next].weight->shape.size() == 1) {
      // An affine norm's gamma and beta: y = gamma * n + beta. At their initial values (1 and
      // 0) they are left out, so the norm runs as the identity map, bit for bit as generated.
      const Module& m = modules[next];
      bool identity = true;
      for (const Tensor* t : {m.weight, m.bias}) {
        if (t == nullptr) continue;
        if (t->shape != std::vector<std::int64_t>{n_out}) {
          throw Error(source + ": tensor \"" + t->name + "\" has shape " + shape_text(t->shape) +
                          ", but " + layer + " needs (" + std::to_string(n_out) + ",)",
                      "check that the config describes the same network");
        }
        const double initial = t == m.weight ? 1.0 : 0.0;
        for (const double v : t->values) identity = identity && v == initial;
        out.assignments.push_back(
            {t->name, reported, t == m.weight ? "norm_weight" : "norm_bias", t->shape});
      }
      if (!identity) {
        Eigen::MatrixXd gamma = Eigen::MatrixXd::Ones(n_out, 1);
        if (m.weight != nullptr) {
          for (Eigen::Index i = 0; i < n_out; ++i) gamma(i, 0) = m.weight->values[i];
        }
        out.data.weight[l] = std::move(gamma);
        Eigen::VectorXd beta = Eigen::VectorXd::Zero(n_out);
        if (m.bias != nullptr) {
          for (Eigen::Index i = 0; i < n_out; ++i) beta(i) = m.bias->values[i];
        }
        out.data.bias[l] = std::move(beta);
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

Eigen::MatrixXd batch_matrix(const Tensor& t, int width, const std::string& source, int tokens) {
  if (tokens > 1 || t.shape.size() == 3) {
    if (t.shape.size() != 3) {
      throw Error(source + ": shape " + shape_text(t.shape) + ", but the config's sequences are (" +
                      "examples, " + std::to_string(tokens) + ", " + std::to_string(width) + ")",
                  "save one sequence per example: (examples, tokens, width), e.g. "
                  "numpy.save(path, x.reshape(-1, " +
                      std::to_string(tokens) + ", " + std::to_string(width) + "))");
    }
    if (t.shape[1] != tokens) {
      throw Error(
          source + ": " + std::to_string(t.shape[1]) +
              " tokens per example, but the config's input.tokens is " + std::to_string(tokens),
          "set \"input\": {\"tokens\": " + std::to_string(t.shape[1]) +
              "} in the config, or save sequences of " + std::to_string(tokens) + " tokens");
    }
    if (t.shape[2] != width) {
      throw Error(source + ": " + std::to_string(t.shape[2]) +
                      " values per token, but the network's input width is " +
                      std::to_string(width),
                  "save a batch with " + std::to_string(width) + " values per token");
    }
    // (examples, tokens, width) row-major is (examples * tokens, width): column b * T + t.
    Tensor flat = t;
    flat.shape = {t.shape[0] * t.shape[1], t.shape[2]};
    return matrix_of(flat).transpose();
  }
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
    if (ops[l].kind == OpKind::kConv) {
      // PyTorch's Conv2d shapes: the (C_out, C_in / groups k_h k_w) matrix row by row is the
      // (C_out, C_in / groups, k_h, k_w) tensor.
      const ConvSpec& c = ops[l].conv;
      Tensor w = tensor_of(k + ".weight", data.weight[l]);
      w.shape = {c.channels, c.in.channels / std::max(c.groups, 1), c.kernel_h, c.kernel_w};
      out.push_back(std::move(w));
      if (data.bias[l].size() > 0) {
        Tensor b = tensor_of(k + ".bias", data.bias[l]);
        b.shape = {data.bias[l].size()};
        out.push_back(std::move(b));
      }
    } else if (ops[l].kind == OpKind::kDense) {
      out.push_back(tensor_of(k + ".weight", data.weight[l]));
      Tensor b = tensor_of(k + ".bias", data.bias[l]);
      b.shape = {data.bias[l].size()};
      out.push_back(std::move(b));
    } else if (ops[l].kind == OpKind::kNorm && data.weight[l].size() > 0) {
      // A loaded norm's trained gamma and beta (generated norms have none: gamma = 1, beta = 0).
      Tensor gamma = tensor_of(k + ".weight", data.weight[l]);
      gamma.shape = {data.weight[l].rows()};
      out.push_back(std::move(gamma));
      Tensor beta = tensor_of(k + ".bias", data.bias[l]);
      beta.shape = {data.bias[l].size()};
      out.push_back(std::move(beta));
    } else if (ops[l].kind == OpKind::kResidualEnd && ops[l].residual.conv_projection() &&
               data.weight[l].size() > 0) {
      // The learned 1x1 convolution as PyTorch's Conv2d weight (C_out, C_in, 1, 1), named as its
      // parameter statistics are ("projection.weight"); its norm's gamma and beta are 1 and 0.
      Tensor w = tensor_of(k + ".projection.weight", data.weight[l]);
      w.shape = {data.weight[l].rows(), data.weight[l].cols(), 1, 1};
      out.push_back(std::move(w));
    } else if (ops[l].kind == OpKind::kResidualEnd && data.weight[l].size() > 0) {
      out.push_back(tensor_of(k + ".projection", data.weight[l]));
    } else if (ops[l].kind == OpKind::kAttention || ops[l].kind == OpKind::kGlu) {
      // The stacked matrix split into PyTorch's modules (map_weights stacks them again).
      const Eigen::MatrixXd& w = data.weight[l];
      const Eigen::VectorXd& b = data.bias[l];
      const std::vector<Projection> projections =
          projections_of(ops[l], static_cast<int>(w.cols()));
      Eigen::Index row = 0;
      Eigen::Index bias_row = 0;
      for (const Projection& p : projections) {
        const std::string name = k + "." + std::string(p.role);
        const bool down = p.role == "down";
        const Eigen::Index n = static_cast<Eigen::Index>(down ? p.cols : p.rows);
        if (row + n > w.rows()) break;
        const Eigen::MatrixXd part = w.middleRows(row, n);
        out.push_back(tensor_of(name + ".weight", down ? Eigen::MatrixXd(part.transpose()) : part));
        row += n;
        if (b.size() > 0 && b.size() >= bias_row + p.rows) {  // empty: the op has no biases
          Tensor t = tensor_of(name + ".bias", b.segment(bias_row, p.rows));
          t.shape = {p.rows};
          out.push_back(std::move(t));
          bias_row += p.rows;
        }
      }
    }
  }
  // Sequences as (examples, tokens, width), which batch_matrix reads back.
  const std::int64_t tokens = spec.input.tokens;
  const auto sequences = [&](Tensor t) {
    if (tokens > 1 && t.shape[0] % tokens == 0) t.shape = {t.shape[0] / tokens, tokens, t.shape[1]};
    return t;
  };
  out.push_back(sequences(tensor_of("input", data.input.transpose())));
  if (data.probe.size() > 0) out.push_back(sequences(tensor_of("probe", data.probe.transpose())));
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
