// Reads an ONNX file with Debian's libonnx protobuf classes and walks its graph (an MLP, a
// GPT-style decoder whose self-attention subgraphs become attention ops, or a convolutional
// network whose image ops' attributes onnx_conv.cpp reads), from the one input to the one output,
// into a RunSpec's `layers` and the exported weights. Constants torch leaves unfolded (a weight's
// Transpose, a mask's Slice and Equal, a shape's Concat) are evaluated first.
// Why this file is long: one reader, whose checks of a stranger's file (each with its own message)
// share the graph's indexes; each function is short.
#include "gradscope/io/onnx_import.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "gradscope/core/error.hpp"
#include "gradscope/core/validate.hpp"
#include "io/onnx_conv.hpp"
#include "io/tensor_io_detail.hpp"

namespace gradscope {
namespace {

constexpr std::string_view kSupported =
    "Gemm (transB 0 or 1), MatMul + Add (bias), Relu, LeakyRelu, Elu, Selu (torch's constants), "
    "Sigmoid, Tanh, Softplus, Clip(-1, 1) as hard_tanh, GELU as Div/Erf/Add/Mul/Mul, SiLU as "
    "x * Sigmoid(x), Mish as x * Tanh(Softplus(x)), GELU's tanh form as "
    "0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) (x^3 as Mul/Mul or Pow), Softmax "
    "(last op), BatchNormalization and LayerNormalization (with their scale and bias), Add of an "
    "earlier tensor as a residual, Dropout, Identity, self-attention as torch exports "
    "nanoGPT's CausalSelfAttention, and on (N, C, H, W) images Conv (2-D, symmetric pads), "
    "BatchNormalization, MaxPool, AveragePool (a Pad before it as its padding), "
    "GlobalAveragePool, ReduceMean over axes (2, 3), Flatten (axis 1) or its Reshape "
    "(x.view(x.size(0), -1)) and residual Adds, whose skip path may be a 1x1 Conv and a "
    "BatchNormalization (a learned projection, as ResNet's downsample)";

// torch.nn.SELU's constants (Klambauer et al. 2017); ONNX stores them as float.
constexpr double kSeluAlpha = 1.6732632423543772;
constexpr double kSeluGamma = 1.0507009873554805;
// Attributes are float: a constant matches when it agrees to float precision.
constexpr double kFloatMatch = 1e-6;
// GELU's tanh form (Hendrycks and Gimpel 2016), as torch writes it: the cubic's coefficient and
// sqrt(2 / pi).
constexpr double kGeluTanhCubic = 0.044715;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
// torch writes one Identity over a shared initializer; a longer chain is not followed, so that a
// hostile chain of a million Identity nodes costs no more than its length.
constexpr int kMaxIdentityHops = 16;
// Residual blocks nest a few levels in real models; the cap keeps the recursive walks over the
// items (expand_ops, the destructors) far from the end of the stack.
constexpr int kMaxNesting = 64;
// Constants computed from other constants are at most this large (a weight's transpose, a mask):
// a Concat of one tensor with itself many times cannot grow past it.
constexpr std::int64_t kMaxFoldedElements = std::int64_t{1} << 24;
constexpr std::string_view kAttentionPattern =
    "self-attention is read as torch exports nanoGPT's CausalSelfAttention: MatMul + Add (d -> "
    "3d), Split, Reshape and Transpose to heads, MatMul(q, k^T), Mul or Div by a constant, a "
    "causal mask (Where with -inf, or Add), Softmax, MatMul with v, Transpose, Reshape, MatMul + "
    "Add";
constexpr std::string_view kReexportHint =
    "the file is damaged or was not written by an ONNX exporter; export the model again with "
    "torch.onnx.export(model, example, \"model.onnx\")";

// How many inputs each op gradscope reads takes, as the ONNX operator specification says; the
// walk indexes a node's inputs only within these bounds. Every node needs its first output.
struct Arity {
  std::string_view op;
  int min_inputs;
  int max_inputs;
};
constexpr Arity kArities[] = {
    {"Gemm", 2, 3},
    {"MatMul", 2, 2},
    {"Add", 2, 2},
    {"Mul", 2, 2},
    {"Div", 2, 2},
    {"Pow", 2, 2},
    {"Gather", 2, 2},
    {"Erf", 1, 1},
    {"Relu", 1, 1},
    {"LeakyRelu", 1, 1},
    {"Elu", 1, 1},
    {"Selu", 1, 1},
    {"Sigmoid", 1, 1},
    {"Tanh", 1, 1},
    {"Softplus", 1, 1},
    {"Softmax", 1, 1},
    {"Clip", 1, 3},
    {"Identity", 1, 1},
    {"Dropout", 1, 3},
    {"Constant", 0, 0},
    {"BatchNormalization", 5, 5},
    {"LayerNormalization", 2, 3},
    {"Split", 1, 2},
    {"Reshape", 2, 2},
    {"Transpose", 1, 1},
    {"Where", 3, 3},
    {"Unsqueeze", 1, 2},
    {"Concat", 1, 1 << 20},
    {"Slice", 3, 5},
    {"Equal", 2, 2},
    {"Cast", 1, 1},
    {"Not", 1, 1},
    {"Conv", 2, 3},
    {"MaxPool", 1, 1},
    {"AveragePool", 1, 1},
    {"GlobalAveragePool", 1, 1},
    {"ReduceMean", 1, 2},
    {"Flatten", 1, 1},
    {"Pad", 2, 4},
    {"Shape", 1, 1},
};

// A name from the file, single-quoted for a message: control characters escaped and the length
// capped (tensor_io_detail::in_quotes), so that a hostile name cannot garble the terminal.
std::string shown_name(std::string_view name) {
  std::string q = tensor_io_detail::in_quotes(name);
  q.front() = '\'';
  q.back() = '\'';
  return q;
}

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, std::string_view name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

// A constant tensor's values in double, row-major, with its shape.
struct Values {
  std::string name;  // the name the node reads it by
  std::vector<std::int64_t> dims;
  std::vector<double> data;
};

bool near(double a, double b) {
  return std::abs(a - b) <= kFloatMatch * std::max(1.0, std::abs(b));
}

class Importer {
 public:
  Importer(std::string path, const RunSpec& defaults,
           std::optional<std::string_view> bytes = std::nullopt)
      : path_(std::move(path)), spec_(defaults), bytes_(bytes) {}

  OnnxModel run() {
    load();
    index_graph();
    topological_order();
    fold_constants();
    walk();
    return finish();
  }

 private:
  // One op of the flat list in the order the walk creates it (residual begins and ends aside):
  // expand_ops lists these ops in the same order, which is how the weights find their op.
  struct Leaf {
    std::optional<Eigen::MatrixXd> weight;  // dense: (n_out, n_in)
    std::optional<Eigen::VectorXd> bias;    // dense: (n_out)
    std::vector<TensorAssignment> assignments;
    std::string node;  // the label of the node it came from, for messages
  };
  struct Mark {
    std::size_t position;  // items_.size() when this tensor was the chain's current one
    int width;
    std::size_t leaves;  // leaves_.size() then
    ImageShape image;    // its shape when an image
  };

  [[noreturn]] void fail(const std::string& message, const std::string& hint = {}) const {
    throw Error(path_ + ": " + message, hint);
  }

  void load() {
    if (bytes_) {
      if (bytes_->size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
          !model_.ParseFromArray(bytes_->data(), static_cast<int>(bytes_->size()))) {
        fail("not an ONNX model (the protobuf does not parse)",
             "export it with torch.onnx.export(model, example, \"model.onnx\")");
      }
      return;
    }
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("cannot open the ONNX file", "check the path and its permissions");
    if (!model_.ParseFromIstream(&in)) {
      fail("not an ONNX model (the protobuf does not parse)",
           "export it with torch.onnx.export(model, example, \"model.onnx\")");
    }
  }

  const onnx::GraphProto& graph() const { return model_.graph(); }

  // "node 'fc1' (Gemm)", or "node #3 (Gemm, unnamed)" for a node without a name.
  std::string node_label(const onnx::NodeProto& node) const {
    const std::string op = shown_name(node.op_type());
    const std::string bare_op = op.substr(1, op.size() - 2);
    if (!node.name().empty()) return "node " + shown_name(node.name()) + " (" + bare_op + ")";
    const auto i = index_.find(&node);
    return "node #" + (i == index_.end() ? std::string("?") : std::to_string(i->second)) + " (" +
           bare_op + ", unnamed)";
  }

  // An attribute of the expected type, or `fallback` when the node does not have it.
  double float_attribute(const onnx::NodeProto& node, std::string_view name,
                         double fallback) const {
    const onnx::AttributeProto* a = find_attribute(node, name);
    if (!a) return fallback;
    if (!a->has_f() || (a->has_type() && a->type() != onnx::AttributeProto::FLOAT)) {
      fail(node_label(node) + ": attribute '" + std::string(name) + "' is not a float",
           std::string(kReexportHint));
    }
    return static_cast<double>(a->f());
  }

  std::int64_t int_attribute(const onnx::NodeProto& node, std::string_view name,
                             std::int64_t fallback) const {
    const onnx::AttributeProto* a = find_attribute(node, name);
    if (!a) return fallback;
    if (!a->has_i() || (a->has_type() && a->type() != onnx::AttributeProto::INT)) {
      fail(node_label(node) + ": attribute '" + std::string(name) + "' is not an integer",
           std::string(kReexportHint));
    }
    return a->i();
  }

  // What the walk relies on before it indexes a node's inputs and outputs: a first output, and
  // as many inputs as the operator takes.
  void check_node_shape(const onnx::NodeProto& node) const {
    if (node.output_size() == 0 || node.output(0).empty()) {
      fail(node_label(node) + " has no output",
           "every ONNX node writes at least one tensor; " + std::string(kReexportHint));
    }
    for (const Arity& a : kArities) {
      if (a.op != node.op_type()) continue;
      const int n = node.input_size();
      const bool missing_first = n > 0 && node.input(0).empty();
      if (n < a.min_inputs || n > a.max_inputs || missing_first) {
        const std::string expected =
            a.min_inputs == a.max_inputs
                ? std::to_string(a.min_inputs)
                : std::to_string(a.min_inputs) + " to " + std::to_string(a.max_inputs);
        fail(node_label(node) + " has " + std::to_string(n) + " input" + (n == 1 ? "" : "s") +
                 (missing_first ? ", the first of them empty" : "") + "; " + std::string(a.op) +
                 " takes " + expected,
             std::string(kReexportHint));
      }
      return;
    }
  }

  void index_graph() {
    for (int i = 0; i < graph().node_size(); ++i) index_[&graph().node(i)] = i;
    for (const onnx::TensorProto& t : graph().initializer()) constants_[t.name()] = &t;
    for (int i = 0; i < graph().node_size(); ++i) check_node_shape(graph().node(i));
    for (int i = 0; i < graph().node_size(); ++i) {
      const onnx::NodeProto& node = graph().node(i);
      for (const std::string& out : node.output()) {
        if (out.empty()) continue;
        if (producer_.count(out) || constants_.count(out)) {
          fail("tensor '" + out + "' is written twice (" + node_label(node) + ")",
               "an ONNX graph is in static single assignment form; re-export the model");
        }
        producer_[out] = i;
      }
      if (node.op_type() == "Constant") {
        if (const onnx::AttributeProto* a = find_attribute(node, "value"); a && a->has_t()) {
          constants_[node.output(0)] = &a->t();
        }
      }
    }
    refuse_embeddings();

    std::vector<std::string> inputs;
    for (const onnx::ValueInfoProto& v : graph().input()) {
      // Older exporters list the initializers among the inputs too.
      if (!constants_.count(v.name())) inputs.push_back(v.name());
    }
    if (inputs.size() != 1 || graph().output_size() != 1) {
      fail("the graph has " + std::to_string(inputs.size()) + " inputs and " +
               std::to_string(graph().output_size()) +
               " outputs; gradscope reads exactly one of each",
           "export a model whose forward takes one tensor and returns one tensor");
    }
    input_ = inputs.front();
    output_ = graph().output(0).name();
    for (const onnx::ValueInfoProto& v : graph().input()) {
      if (v.name() != input_) continue;
      const onnx::TensorShapeProto& shape = v.type().tensor_type().shape();
      const auto fixed = [&](int k) {
        return shape.dim(k).has_dim_value() && shape.dim(k).dim_value() >= 1 &&
               shape.dim(k).dim_value() <= spec_limits::kMaxWidth;
      };
      const int rank = shape.dim_size();
      if ((rank < 2 || rank > 4) || !fixed(rank - 1) || (rank >= 3 && !fixed(1)) ||
          (rank == 4 && !fixed(2))) {
        fail("the input '" + input_ +
                 "' must have shape (batch, features), (batch, tokens, features) for a sequence "
                 "model, or (batch, channels, height, width) for images, with every dimension "
                 "but the batch fixed",
             "export with an example input of one of these shapes; the batch may be dynamic");
      }
      if (rank == 4) {
        const auto dim = [&](int k) { return static_cast<int>(shape.dim(k).dim_value()); };
        input_image_ = {dim(1), dim(2), dim(3)};
        const std::int64_t features = std::int64_t{dim(1)} * dim(2) * dim(3);
        if (features > spec_limits::kMaxWidth) {
          fail("the input '" + input_ + "' is a " + std::to_string(dim(1)) + " x " +
                   std::to_string(dim(2)) + " x " + std::to_string(dim(3)) + " image, " +
                   std::to_string(features) + " features; gradscope reads at most " +
                   std::to_string(spec_limits::kMaxWidth),
               "export the model at a smaller input size");
        }
        input_width_ = static_cast<int>(features);
        continue;
      }
      input_width_ = static_cast<int>(shape.dim(rank - 1).dim_value());
      if (rank == 3) tokens_ = static_cast<int>(shape.dim(1).dim_value());
    }

    for (int i = 0; i < graph().node_size(); ++i) {
      const onnx::NodeProto& node = graph().node(i);
      for (const std::string& in : node.input()) {
        if (in.empty() || in == input_ || constants_.count(in) || producer_.count(in)) continue;
        fail("missing initializer: " + node_label(node) + " reads '" + in +
                 "', which is neither the graph input, an initializer nor a node's output",
             "the file is incomplete; re-export it (weights stored as external data are not read)");
      }
      for (const std::string& out : node.output()) {
        if (!out.empty()) consumers_[out];
      }
      for (const std::string& in : node.input()) {
        if (!in.empty()) consumers_[in].push_back(i);
      }
    }
  }

  // A Gather from a constant table is an embedding lookup (nn.Embedding), whose input is integer
  // ids rather than features: said before the input's shape is judged, since that is what fails.
  void refuse_embeddings() const {
    for (const onnx::NodeProto& node : graph().node()) {
      if (node.op_type() != "Gather" || !is_constant(node.input(0))) continue;
      fail(node_label(node) + " looks up rows of the initializer " + shown_name(node.input(0)) +
               ", an embedding (as nn.Embedding exports); embeddings are not imported",
           "pass the embedded inputs with --input (a .npy of shape [batch, width], or [batch, "
           "tokens, width] for sequence models) and export the model from the embedding output "
           "on");
    }
  }

  // Kahn's algorithm, taking the earliest ready node in file order so a sorted file keeps its
  // order.
  void topological_order() {
    const int n = graph().node_size();
    std::vector<int> pending(static_cast<std::size_t>(n), 0);
    std::vector<std::vector<int>> dependents(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      for (const std::string& in : graph().node(i).input()) {
        const auto p = producer_.find(in);
        if (p == producer_.end()) continue;
        ++pending[static_cast<std::size_t>(i)];
        dependents[static_cast<std::size_t>(p->second)].push_back(i);
      }
    }
    std::set<int> ready;
    for (int i = 0; i < n; ++i) {
      if (pending[static_cast<std::size_t>(i)] == 0) ready.insert(i);
    }
    while (!ready.empty()) {
      const int i = *ready.begin();
      ready.erase(ready.begin());
      order_.push_back(i);
      for (int d : dependents[static_cast<std::size_t>(i)]) {
        if (--pending[static_cast<std::size_t>(d)] == 0) ready.insert(d);
      }
    }
    if (static_cast<int>(order_.size()) != n) {
      std::string stuck;
      for (int i = 0; i < n; ++i) {
        if (pending[static_cast<std::size_t>(i)] == 0) continue;
        if (!stuck.empty()) stuck += ", ";
        stuck += node_label(graph().node(i));
      }
      fail("the graph has a cycle through " + stuck,
           "a feed-forward network's graph is acyclic; re-export the model");
    }
  }

  // ---- Constant folding: what torch leaves unfolded (do_constant_folding=False) around
  // attention: a Transpose of a weight, a Reshape's shape built by Unsqueeze and Concat, a causal
  // mask sliced from a buffer and compared with 0. A node whose inputs are all constants and whose
  // op is one of these is evaluated once here; its output is then a constant like an initializer.

  // Row-major strides of `dims`.
  static std::vector<std::int64_t> strides_of(const std::vector<std::int64_t>& dims) {
    std::vector<std::int64_t> s(dims.size(), 1);
    for (std::size_t k = dims.size(); k-- > 1;) s[k - 1] = s[k] * dims[k];
    return s;
  }

  static std::int64_t element_count(const std::vector<std::int64_t>& dims) {
    std::int64_t n = 1;
    for (std::int64_t d : dims) n *= d;
    return n;
  }

  // An axis attribute or value in [-rank, rank) as an index, or nullopt.
  static std::optional<std::size_t> axis_index(double axis, std::size_t rank) {
    const double a = axis < 0 ? axis + static_cast<double>(rank) : axis;
    if (!(a >= 0 && a < static_cast<double>(rank))) return std::nullopt;
    return static_cast<std::size_t>(a);
  }

  std::vector<std::int64_t> ints_attribute(const onnx::NodeProto& node,
                                           std::string_view name) const {
    const onnx::AttributeProto* a = find_attribute(node, name);
    if (!a) return {};
    return {a->ints().begin(), a->ints().end()};
  }

  // The node's output, or nullopt when it cannot be evaluated here (then the walk judges it).
  std::optional<Values> fold(const onnx::NodeProto& node) const {
    const std::string& op = node.op_type();
    std::vector<Values> in;
    for (const std::string& name : node.input()) {
      if (name.empty()) {
        in.emplace_back();
        continue;
      }
      in.push_back(values(name, node, Use::kStructure));
    }
    Values out;
    if (op == "Transpose") {
      const Values& x = in[0];
      std::vector<std::int64_t> perm = ints_attribute(node, "perm");
      if (perm.empty()) {
        for (std::size_t k = x.dims.size(); k-- > 0;) perm.push_back(static_cast<std::int64_t>(k));
      }
      if (perm.size() != x.dims.size()) return std::nullopt;
      std::vector<bool> seen(perm.size(), false);
      for (std::int64_t p : perm) {
        if (p < 0 || p >= static_cast<std::int64_t>(perm.size()) || seen[p]) return std::nullopt;
        seen[p] = true;
      }
      out.name = x.name;
      for (std::int64_t p : perm) out.dims.push_back(x.dims[p]);
      const std::vector<std::int64_t> in_strides = strides_of(x.dims);
      const std::vector<std::int64_t> out_strides = strides_of(out.dims);
      out.data.resize(x.data.size());
      for (std::size_t i = 0; i < out.data.size(); ++i) {
        std::int64_t rest = static_cast<std::int64_t>(i);
        std::int64_t from = 0;
        for (std::size_t k = 0; k < perm.size(); ++k) {
          from += rest / out_strides[k] * in_strides[perm[k]];
          rest %= out_strides[k];
        }
        out.data[i] = x.data[from];
      }
    } else if (op == "Unsqueeze") {
      const std::vector<std::int64_t> attribute = ints_attribute(node, "axes");
      std::vector<double> axes(attribute.begin(), attribute.end());
      if (in.size() > 1) axes = in[1].data;
      const std::size_t rank = in[0].dims.size() + axes.size();
      std::vector<bool> inserted(rank, false);
      for (double a : axes) {
        const std::optional<std::size_t> k = axis_index(a, rank);
        if (!k || inserted[*k]) return std::nullopt;
        inserted[*k] = true;
      }
      std::size_t from = 0;
      for (std::size_t k = 0; k < rank; ++k)
        out.dims.push_back(inserted[k] ? 1 : in[0].dims[from++]);
      out.data = in[0].data;
    } else if (op == "Concat") {
      const std::size_t rank = in[0].dims.size();
      const std::optional<std::size_t> axis =
          axis_index(static_cast<double>(int_attribute(node, "axis", 0)), rank);
      if (!axis) return std::nullopt;
      out.dims = in[0].dims;
      out.dims[*axis] = 0;
      for (const Values& x : in) {
        if (x.dims.size() != rank) return std::nullopt;
        for (std::size_t k = 0; k < rank; ++k) {
          if (k != *axis && x.dims[k] != in[0].dims[k]) return std::nullopt;
        }
        out.dims[*axis] += x.dims[*axis];
      }
      if (element_count(out.dims) > kMaxFoldedElements) return std::nullopt;
      std::int64_t outer = 1;
      for (std::size_t k = 0; k < *axis; ++k) outer *= out.dims[k];
      for (std::int64_t o = 0; o < outer; ++o) {
        for (const Values& x : in) {
          const std::int64_t block = outer == 0 ? 0 : element_count(x.dims) / outer;
          out.data.insert(out.data.end(), x.data.begin() + o * block,
                          x.data.begin() + (o + 1) * block);
        }
      }
    } else if (op == "Slice") {
      const Values& x = in[0];
      const std::size_t rank = x.dims.size();
      std::vector<std::int64_t> begin(rank, 0), end = x.dims;
      const std::size_t n = in[1].data.size();
      if (in[2].data.size() != n ||
          (in.size() > 3 && !in[3].data.empty() && in[3].data.size() != n) ||
          (in.size() > 4 && !in[4].data.empty() && in[4].data.size() != n)) {
        return std::nullopt;
      }
      for (std::size_t j = 0; j < n; ++j) {
        const double axis = in.size() > 3 && !in[3].data.empty() ? in[3].data.at(j) : double(j);
        const double step = in.size() > 4 && !in[4].data.empty() ? in[4].data.at(j) : 1.0;
        const std::optional<std::size_t> k = axis_index(axis, rank);
        if (!k || step != 1.0 || std::isnan(in[1].data[j]) || std::isnan(in[2].data[j])) {
          return std::nullopt;
        }
        const auto dim = static_cast<double>(x.dims[*k]);
        const auto clamp = [dim](double v) { return std::clamp(v < 0 ? v + dim : v, 0.0, dim); };
        begin[*k] = static_cast<std::int64_t>(clamp(in[1].data[j]));
        end[*k] = std::max(begin[*k], static_cast<std::int64_t>(clamp(in[2].data[j])));
      }
      for (std::size_t k = 0; k < rank; ++k) out.dims.push_back(end[k] - begin[k]);
      const std::vector<std::int64_t> in_strides = strides_of(x.dims);
      const std::vector<std::int64_t> out_strides = strides_of(out.dims);
      out.data.resize(static_cast<std::size_t>(element_count(out.dims)));
      for (std::size_t i = 0; i < out.data.size(); ++i) {
        std::int64_t rest = static_cast<std::int64_t>(i);
        std::int64_t from = 0;
        for (std::size_t k = 0; k < rank; ++k) {
          from += (rest / out_strides[k] + begin[k]) * in_strides[k];
          rest %= out_strides[k];
        }
        out.data[i] = x.data[from];
      }
    } else if (op == "Equal") {
      // One operand a single value, or both of the same shape.
      const bool swap = in[0].data.size() == 1 && in[1].data.size() != 1;
      const Values& a = swap ? in[1] : in[0];
      const Values& b = swap ? in[0] : in[1];
      if (b.data.size() != 1 && b.dims != a.dims) return std::nullopt;
      out.dims = a.dims;
      for (std::size_t i = 0; i < a.data.size(); ++i) {
        out.data.push_back(a.data[i] == b.data[b.data.size() == 1 ? 0 : i] ? 1.0 : 0.0);
      }
    } else if (op == "Not") {
      out.dims = in[0].dims;
      for (double v : in[0].data) out.data.push_back(v == 0.0 ? 1.0 : 0.0);
    } else if (op == "Cast") {
      const std::int64_t to = int_attribute(node, "to", 0);
      out = in[0];
      for (double& v : out.data) {
        if (to == onnx::TensorProto::BOOL) {
          v = v != 0.0 ? 1.0 : 0.0;
        } else if (to == onnx::TensorProto::FLOAT) {
          if (std::isfinite(v) && std::abs(v) > std::numeric_limits<float>::max()) {
            return std::nullopt;
          }
          v = static_cast<float>(v);
        } else if (to == onnx::TensorProto::INT64 || to == onnx::TensorProto::INT32) {
          if (!std::isfinite(v)) return std::nullopt;
          v = std::trunc(v);
        } else if (to != onnx::TensorProto::DOUBLE) {
          return std::nullopt;
        }
      }
    } else {
      return std::nullopt;
    }
    return out;
  }

  void fold_constants() {
    static const std::set<std::string_view> kFoldable = {
        "Transpose", "Unsqueeze", "Concat", "Slice", "Equal", "Not", "Cast"};
    for (int i : order_) {
      const onnx::NodeProto& node = graph().node(i);
      if (!kFoldable.count(node.op_type()) || node.output_size() != 1 ||
          is_constant(node.output(0))) {
        continue;
      }
      const bool all_constant =
          std::all_of(node.input().begin(), node.input().end(),
                      [&](const std::string& in) { return in.empty() || is_constant(in); });
      if (!all_constant || node.input_size() == 0 || node.input(0).empty()) continue;
      std::optional<Values> v = fold(node);
      if (!v || v->data.size() > static_cast<std::size_t>(kMaxFoldedElements)) continue;
      onnx::TensorProto& t = folded_.emplace_back();
      t.set_name(node.output(0));
      t.set_data_type(onnx::TensorProto::DOUBLE);
      for (std::int64_t d : v->dims) t.add_dims(d);
      for (double x : v->data) t.add_double_data(x);
      constants_[node.output(0)] = &t;
      // A weight transposed by a Transpose node keeps its own name in messages and the sources.
      if (node.op_type() == "Transpose") folded_from_[node.output(0)] = v->name;
    }
  }

  // Resolves Identity chains over constants (torch writes them for shared initializers).
  const onnx::TensorProto* constant(const std::string& name) const {
    std::string at = name;
    for (int hops = 0; hops <= kMaxIdentityHops; ++hops) {
      if (const auto c = constants_.find(at); c != constants_.end()) return c->second;
      const auto p = producer_.find(at);
      if (p == producer_.end()) return nullptr;
      const onnx::NodeProto& node = graph().node(p->second);
      if (node.op_type() != "Identity" || node.input_size() != 1) return nullptr;
      at = node.input(0);
    }
    return nullptr;
  }

  bool is_constant(const std::string& name) const { return constant(name) != nullptr; }

  // What a constant is read for: a weight (float or double, finite), or the structure of the
  // graph (shapes, axes, masks: integers and booleans too, and a mask's -inf).
  enum class Use { kWeight, kStructure };

  Values values(const std::string& name, const onnx::NodeProto& node,
                Use use = Use::kWeight) const {
    const onnx::TensorProto* t = constant(name);
    if (!t) {
      fail(node_label(node) + " needs '" + name + "' to be a constant (an initializer)",
           "gradscope reads weights stored in the file; export without dynamic weights");
    }
    if (t->data_location() == onnx::TensorProto::EXTERNAL) {
      fail("tensor " + shown_name(name) + " read by " + node_label(node) +
               " is stored outside the file (external data)",
           "save the model with all tensors inside it (onnx.save(..., "
           "save_as_external_data=False))");
    }
    Values v;
    v.name = name;
    const std::string what = "tensor " + shown_name(name) + " read by " + node_label(node);
    std::vector<std::uint64_t> dims;
    for (std::int64_t d : t->dims()) {
      if (d < 0) {
        fail(what + " has a negative dimension (" + std::to_string(d) + ")",
             std::string(kReexportHint));
      }
      v.dims.push_back(d);
      dims.push_back(static_cast<std::uint64_t>(d));
    }
    const std::string shape = tensor_io_detail::shape_text<std::int64_t>(v.dims);
    const std::optional<std::uint64_t> elements = tensor_io_detail::element_count(dims);
    const std::size_t itemsize =
        t->data_type() == onnx::TensorProto::DOUBLE || t->data_type() == onnx::TensorProto::INT64
            ? 8
            : 4;
    // Bounded by the file's size once checked against the data below, so the casts are exact.
    if (!elements || !tensor_io_detail::checked_mul(*elements, itemsize)) {
      fail(what + " has shape " + shape + ", more elements than 64 bits can count",
           std::string(kReexportHint));
    }
    const auto count = static_cast<std::size_t>(*elements);
    const auto wrong_size = [&](std::size_t held) {
      fail(what + " has shape " + shape + " (" + std::to_string(count) + " values) but holds " +
               std::to_string(held) + (raw_bytes(t) ? " bytes" : " values"),
           std::string(kReexportHint));
    };
    const std::string& raw = t->raw_data();
    if (t->data_type() == onnx::TensorProto::FLOAT) {
      if (!raw.empty()) {
        if (raw.size() != count * sizeof(float)) wrong_size(raw.size());
        // ONNX raw data is little-endian, as is every machine gradscope builds on.
        std::vector<float> f(count);
        std::memcpy(f.data(), raw.data(), raw.size());
        v.data.assign(f.begin(), f.end());
      } else {
        v.data.assign(t->float_data().begin(), t->float_data().end());
      }
    } else if (t->data_type() == onnx::TensorProto::DOUBLE) {
      if (!raw.empty()) {
        if (raw.size() != count * sizeof(double)) wrong_size(raw.size());
        v.data.resize(count);
        std::memcpy(v.data.data(), raw.data(), raw.size());
      } else {
        v.data.assign(t->double_data().begin(), t->double_data().end());
      }
    } else if (use == Use::kStructure && t->data_type() == onnx::TensorProto::INT64) {
      if (!raw.empty()) {
        if (raw.size() != count * sizeof(std::int64_t)) wrong_size(raw.size());
        std::vector<std::int64_t> n(count);
        std::memcpy(n.data(), raw.data(), raw.size());
        v.data.assign(n.begin(), n.end());
      } else {
        v.data.assign(t->int64_data().begin(), t->int64_data().end());
      }
    } else if (use == Use::kStructure && (t->data_type() == onnx::TensorProto::INT32 ||
                                          t->data_type() == onnx::TensorProto::BOOL)) {
      const bool boolean = t->data_type() == onnx::TensorProto::BOOL;
      if (!raw.empty()) {
        const std::size_t size = boolean ? 1 : sizeof(std::int32_t);
        if (raw.size() != count * size) wrong_size(raw.size());
        v.data.resize(count);
        for (std::size_t k = 0; k < count; ++k) {
          std::int32_t n = 0;
          if (boolean) {
            n = raw[k] != 0 ? 1 : 0;
          } else {
            std::memcpy(&n, raw.data() + k * size, size);
          }
          v.data[k] = n;
        }
      } else {
        v.data.assign(t->int32_data().begin(), t->int32_data().end());
      }
    } else {
      fail("tensor '" + name + "' read by " + node_label(node) + " has ONNX data type " +
               std::to_string(t->data_type()) + "; gradscope reads float and double",
           "export the model in float32");
    }
    if (v.data.size() != count) wrong_size(v.data.size());
    if (const auto f = folded_from_.find(name); f != folded_from_.end()) v.name = f->second;
    if (use == Use::kStructure) return v;
    for (std::size_t k = 0; k < v.data.size(); ++k) {
      if (!std::isfinite(v.data[k])) {
        fail(what + " holds " + (std::isnan(v.data[k]) ? "NaN" : "an infinity") +
                 " at flat index " + std::to_string(k),
             "the exported weights are broken; check the model before exporting it");
      }
    }
    return v;
  }

  static bool raw_bytes(const onnx::TensorProto* t) { return !t->raw_data().empty(); }

  double scalar(const std::string& name, const onnx::NodeProto& node) const {
    const Values v = values(name, node);
    if (v.data.size() != 1) {
      fail(node_label(node) + ": " + shown_name(name) + " must be a scalar, it holds " +
               std::to_string(v.data.size()) + " values",
           std::string(kReexportHint));
    }
    return v.data.front();
  }

  static TensorAssignment assignment(const Values& v, std::string role) {
    TensorAssignment a;
    a.tensor = v.name;
    a.role = std::move(role);
    a.shape = v.dims;
    return a;
  }

  [[noreturn]] void unsupported(const onnx::NodeProto& node, const std::string& why = {},
                                const std::string& hint = {}) const {
    refusal(node).unsupported(why, hint);
  }

  const std::vector<int>& consumers(const std::string& tensor) const {
    static const std::vector<int> kNone;
    const auto c = consumers_.find(tensor);
    return c == consumers_.end() ? kNone : c->second;
  }

  // The only node reading `tensor`, when there is exactly one.
  const onnx::NodeProto* sole_consumer(const std::string& tensor) const {
    const std::vector<int>& c = consumers(tensor);
    return c.size() == 1 ? &graph().node(c.front()) : nullptr;
  }

  void advance(const std::string& tensor) {
    current_ = tensor;
    marks_[tensor] = Mark{items_.size(), width_, leaves_.size(), image_};
  }

  void push_leaf(const OpSpec& op, Leaf leaf, const onnx::NodeProto& node) {
    LayerItem item;
    item.op = op;
    items_.push_back(std::move(item));
    nesting_.push_back(0);
    leaf.node = node_label(node);
    leaves_.push_back(std::move(leaf));
  }

  void consume(int node_index) { done_[static_cast<std::size_t>(node_index)] = true; }
  // Protobuf keeps each node in its own allocation, so a node's address finds its index.
  int index_of(const onnx::NodeProto* node) const { return index_.at(node); }

  // An activation pattern starting at `node`: its spec, the nodes it spans and its output.
  struct ActivationMatch {
    ActivationSpec spec;
    std::vector<int> nodes;
    std::string output;
    std::size_t input_reads = 1;  // how often the pattern's nodes read its input
  };

  std::optional<ActivationMatch> match_activation(int index) const {
    const onnx::NodeProto& node = graph().node(index);
    const std::string& op = node.op_type();
    ActivationMatch m;
    m.nodes = {index};
    m.output = node.output(0);
    if (op == "Relu") {
      m.spec = default_spec(Activation::kRelu);
    } else if (op == "LeakyRelu") {
      m.spec = {Activation::kLeakyRelu, float_attribute(node, "alpha", 0.01)};
    } else if (op == "Elu") {
      m.spec = {Activation::kElu, float_attribute(node, "alpha", 1.0)};
    } else if (op == "Selu") {
      if (!near(float_attribute(node, "alpha", kSeluAlpha), kSeluAlpha) ||
          !near(float_attribute(node, "gamma", kSeluGamma), kSeluGamma)) {
        unsupported(node, "only torch's SELU constants (alpha 1.6733, gamma 1.0507) are supported");
      }
      m.spec = default_spec(Activation::kSelu);
    } else if (op == "Sigmoid") {
      if (std::optional<ActivationMatch> silu = match_gated(index, {}, Activation::kSilu)) {
        return silu;
      }
      m.spec = default_spec(Activation::kSigmoid);
    } else if (op == "Tanh") {
      m.spec = default_spec(Activation::kTanh);
    } else if (op == "Softplus") {
      if (std::optional<ActivationMatch> mish = match_gated(index, "Tanh", Activation::kMish)) {
        return mish;
      }
      m.spec = default_spec(Activation::kSoftplus);
    } else if (op == "Clip") {
      const double lo =
          node.input_size() > 1 && !node.input(1).empty()
              ? scalar(node.input(1), node)
              : float_attribute(node, "min", -std::numeric_limits<double>::infinity());
      const double hi = node.input_size() > 2 && !node.input(2).empty()
                            ? scalar(node.input(2), node)
                            : float_attribute(node, "max", std::numeric_limits<double>::infinity());
      if (lo != -1.0 || hi != 1.0) {
        unsupported(node, "Clip is read only as hard_tanh, Clip(-1, 1); this one clips to [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
      }
      m.spec = default_spec(Activation::kHardTanh);
    } else if (op == "Softmax") {
      const std::int64_t axis = int_attribute(node, "axis", -1);
      if (axis != -1 && axis != 1)
        unsupported(node, "only a softmax over the features (last axis)");
      if (node.output(0) != output_) {
        unsupported(node, "softmax may only be the network's last op");
      }
      m.spec = default_spec(Activation::kSoftmax);
    } else if (op == "Div") {
      return match_gelu(index);
    } else if (op == "Mul" || op == "Pow") {
      return match_gelu_tanh(index);
    } else {
      return std::nullopt;
    }
    return m;
  }

  // torch's exported GELU: y = (x * (1 + erf(x / sqrt 2))) * 0.5, as Div, Erf, Add, Mul, Mul.
  std::optional<ActivationMatch> match_gelu(int index) const {
    const onnx::NodeProto& div = graph().node(index);
    const std::string& x = div.input(0);
    const auto constant_is = [&](const std::string& name, const onnx::NodeProto& node, double c) {
      return is_constant(name) && near(scalar(name, node), c);
    };
    if (div.input_size() != 2 || !constant_is(div.input(1), div, std::sqrt(2.0)))
      return std::nullopt;
    const onnx::NodeProto* erf = sole_consumer(div.output(0));
    if (!erf || erf->op_type() != "Erf") return std::nullopt;
    const onnx::NodeProto* add = sole_consumer(erf->output(0));
    if (!add || add->op_type() != "Add" || add->input_size() != 2) return std::nullopt;
    const std::string& one = add->input(0) == erf->output(0) ? add->input(1) : add->input(0);
    if (!constant_is(one, *add, 1.0)) return std::nullopt;
    const onnx::NodeProto* mul = sole_consumer(add->output(0));
    if (!mul || mul->op_type() != "Mul" || mul->input_size() != 2) return std::nullopt;
    const std::string& other = mul->input(0) == add->output(0) ? mul->input(1) : mul->input(0);
    if (other != x) return std::nullopt;
    const onnx::NodeProto* half = sole_consumer(mul->output(0));
    if (!half || half->op_type() != "Mul" || half->input_size() != 2) return std::nullopt;
    const std::string& c = half->input(0) == mul->output(0) ? half->input(1) : half->input(0);
    if (!constant_is(c, *half, 0.5)) return std::nullopt;
    // x feeds the Div and the first Mul only: anything else reading it would be a second branch.
    if (consumers(x).size() != 2) return std::nullopt;
    ActivationMatch m;
    m.spec = default_spec(Activation::kGelu);
    m.nodes = {index, index_of(erf), index_of(add), index_of(mul), index_of(half)};
    m.output = half->output(0);
    m.input_reads = 2;
    return m;
  }

  // The input of the two-input `node` other than `tensor` (either, when both are `tensor`).
  static const std::string& other_input(const onnx::NodeProto& node, const std::string& tensor) {
    return node.input(0) == tensor ? node.input(1) : node.input(0);
  }

  // The only node reading `tensor`, when it is an `op` with two inputs.
  const onnx::NodeProto* sole_binary(const std::string& tensor, std::string_view op) const {
    const onnx::NodeProto* n = sole_consumer(tensor);
    return n && n->op_type() == op && n->input_size() == 2 ? n : nullptr;
  }

  // Whether `name` is a constant holding one value, equal to `c` to float precision.
  bool constant_near(const std::string& name, const onnx::NodeProto& node, double c) const {
    if (!is_constant(name)) return false;
    const Values v = values(name, node);
    return v.data.size() == 1 && near(v.data.front(), c);
  }

  // y = x * f(x), as torch writes SiLU (Sigmoid, then Mul) and Mish (Softplus, Tanh, then Mul):
  // the node at `index` reads x, `middle` (when given) reads its output alone, and the Mul reads
  // the last of these and x itself. A Mul of another tensor is not this pattern: the Sigmoid or
  // Softplus is then read alone, and the Mul is refused as unsupported.
  std::optional<ActivationMatch> match_gated(int index, std::string_view middle,
                                             Activation kind) const {
    const onnx::NodeProto& first = graph().node(index);
    const std::string& x = first.input(0);
    std::vector<int> nodes = {index};
    std::string gate = first.output(0);
    if (!middle.empty()) {
      const onnx::NodeProto* next = sole_consumer(gate);
      if (!next || next->op_type() != middle || next->input_size() != 1) return std::nullopt;
      nodes.push_back(index_of(next));
      gate = next->output(0);
    }
    const onnx::NodeProto* mul = sole_binary(gate, "Mul");
    if (!mul || other_input(*mul, gate) != x) return std::nullopt;
    // x feeds the first node and the Mul only: anything else reading it would be a second branch.
    if (consumers(x).size() != 2) return std::nullopt;
    nodes.push_back(index_of(mul));
    ActivationMatch m;
    m.spec = default_spec(kind);
    m.nodes = std::move(nodes);
    m.output = mul->output(0);
    m.input_reads = 2;
    return m;
  }

  // torch's GELU with approximate='tanh' (torch 1.13, opsets 13 to 17, with or without constant
  // folding): y = 0.5 * (x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * (x * (x * x)))))), as
  // Mul, Mul, Mul, Add, Mul, Tanh, Add, Mul, Mul; the cube may also be Pow(x, 3). The node at
  // `index` is the first of them: the square Mul(x, x) or the Pow.
  std::optional<ActivationMatch> match_gelu_tanh(int index) const {
    const onnx::NodeProto& first = graph().node(index);
    if (first.input_size() != 2) return std::nullopt;
    const std::string& x = first.input(0);
    ActivationMatch m;
    m.nodes = {index};
    const onnx::NodeProto* cube = &first;
    if (first.op_type() == "Pow") {
      if (!constant_near(first.input(1), first, 3.0)) return std::nullopt;
      m.input_reads = 3;
    } else {
      if (first.input(1) != x) return std::nullopt;
      cube = sole_binary(first.output(0), "Mul");
      if (!cube || other_input(*cube, first.output(0)) != x) return std::nullopt;
      m.nodes.push_back(index_of(cube));
      m.input_reads = 5;
    }
    // Each later node is the only reader of the one before, and its other input is x or a
    // constant of the formula.
    std::string at = cube->output(0);
    const auto step = [&](std::string_view op, std::optional<double> c) -> bool {
      const onnx::NodeProto* n = sole_binary(at, op);
      if (!n) return false;
      const std::string& other = other_input(*n, at);
      if (c ? !constant_near(other, *n, *c) : other != x) return false;
      m.nodes.push_back(index_of(n));
      at = n->output(0);
      return true;
    };
    if (!step("Mul", kGeluTanhCubic) || !step("Add", std::nullopt) || !step("Mul", kSqrt2OverPi)) {
      return std::nullopt;
    }
    const onnx::NodeProto* tanh = sole_consumer(at);
    if (!tanh || tanh->op_type() != "Tanh") return std::nullopt;
    m.nodes.push_back(index_of(tanh));
    at = tanh->output(0);
    if (!step("Add", 1.0) || !step("Mul", std::nullopt) || !step("Mul", 0.5)) return std::nullopt;
    // x feeds the pattern's nodes only: anything else reading it would be a second branch.
    if (consumers(x).size() != m.input_reads) return std::nullopt;
    m.spec = default_spec(Activation::kGeluTanh);
    m.output = at;
    return m;
  }

  // The activation right after a dense layer whose output nothing else reads joins that layer.
  void fuse_activation(const std::string& dense_output) {
    if (consumers(dense_output).empty()) return;
    const int next = consumers(dense_output).front();
    const std::optional<ActivationMatch> m = match_activation(next);
    if (!m) return;
    if (consumers(dense_output).size() != m->input_reads) return;
    OpSpec& op = items_.back().op;
    if (op.kind == OpKind::kConv) {
      // A softmax over an image's C H W features is no conv activation gradscope has.
      if (m->spec.kind == Activation::kSoftmax) return;
      op.conv.activation = m->spec;
    } else {
      op.dense.activation = m->spec;
    }
    // A problem with the activation found later names both nodes of the fused layer.
    leaves_.back().node += " with " + node_label(graph().node(next));
    for (int i : m->nodes) consume(i);
    marks_.erase(dense_output);
    advance(m->output);
  }

  // Describes the exported weights to the theory: the variance they were drawn with, measured.
  static LayerSpec dense_layer(const Eigen::MatrixXd& W, const Eigen::VectorXd& b) {
    LayerSpec layer;
    layer.width = static_cast<int>(W.rows());
    layer.activation = default_spec(Activation::kLinear);
    const double w2 = W.squaredNorm() / static_cast<double>(W.size());
    if (w2 == 0.0) {
      layer.init.kind = Init::kZeros;
    } else {
      layer.init.kind = Init::kVariance;
      layer.init.weight_var = w2 * static_cast<double>(W.cols());
    }
    const double b2 = b.size() > 0 ? b.squaredNorm() / static_cast<double>(b.size()) : 0.0;
    if (b2 == 0.0) {
      layer.bias.kind = BiasInit::kZeros;
    } else {
      layer.bias.kind = BiasInit::kNormal;
      layer.bias.std = std::sqrt(b2);
    }
    return layer;
  }

  void add_dense(const onnx::NodeProto& node, Eigen::MatrixXd W, const Values& weight,
                 const std::optional<Values>& bias, const std::string& output) {
    if (W.cols() != width_) {
      fail(node_label(node) + ": weight " + shown_name(weight.name) + " takes " +
               std::to_string(W.cols()) + " inputs, but the tensor before it has " +
               std::to_string(width_) + " features",
           "the weight's shape must match the layer before it; re-export the model");
    }
    // The config reader's bounds on a width (find_spec_problem checks them too); here first,
    // because the width is an int and the next layer's check reads it.
    if (W.rows() < 1 || W.rows() > spec_limits::kMaxWidth) {
      fail(node_label(node) + ": weight " + shown_name(weight.name) + " gives the layer " +
               std::to_string(W.rows()) + " units; a dense layer has 1 to " +
               std::to_string(spec_limits::kMaxWidth),
           "a layer without units passes nothing on; check the model's layer sizes");
    }
    Eigen::VectorXd b = Eigen::VectorXd::Zero(W.rows());
    Leaf leaf;
    leaf.assignments.push_back(assignment(weight, "weight"));
    if (bias) {
      if (static_cast<Eigen::Index>(bias->data.size()) != W.rows()) {
        fail(node_label(node) + ": bias '" + bias->name + "' has " +
             std::to_string(bias->data.size()) + " values for " + std::to_string(W.rows()) +
             " outputs");
      }
      b = Eigen::Map<const Eigen::VectorXd>(bias->data.data(), W.rows());
      leaf.assignments.push_back(assignment(*bias, "bias"));
    }
    OpSpec op;
    op.kind = OpKind::kDense;
    op.dense = dense_layer(W, b);
    leaf.weight = std::move(W);
    leaf.bias = std::move(b);
    push_leaf(op, std::move(leaf), node);
    width_ = op.dense.width;
    advance(output);
    fuse_activation(output);
  }

  Eigen::MatrixXd matrix(const Values& v, const onnx::NodeProto& node,
                         const std::string& what) const {
    if (v.dims.size() != 2) {
      fail(node_label(node) + ": " + what + " '" + v.name + "' must be 2-D, it has " +
           std::to_string(v.dims.size()) + " dimensions");
    }
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    return Eigen::Map<const RowMajor>(v.data.data(), static_cast<Eigen::Index>(v.dims[0]),
                                      static_cast<Eigen::Index>(v.dims[1]));
  }

  void gemm(const onnx::NodeProto& node) {
    require_vector(node);
    if (float_attribute(node, "alpha", 1.0) != 1.0 || float_attribute(node, "beta", 1.0) != 1.0 ||
        int_attribute(node, "transA", 0) != 0) {
      unsupported(node, "only alpha = 1, beta = 1, transA = 0 (as nn.Linear exports)");
    }
    const Values B = values(node.input(1), node);
    Eigen::MatrixXd W = matrix(B, node, "weight");
    // (n_out, n_in) as stored with transB = 1; transB = 0 stores its transpose.
    if (int_attribute(node, "transB", 0) == 0) W.transposeInPlace();
    std::optional<Values> C;
    if (node.input_size() > 2 && !node.input(2).empty()) C = values(node.input(2), node);
    add_dense(node, std::move(W), B, C, node.output(0));
  }

  // ---- Self-attention, as torch exports nanoGPT's CausalSelfAttention: c_attn (MatMul and a
  // bias Add, d -> 3d), Split into q, k, v, each Reshape to (batch, tokens, heads, d_head) and
  // Transpose to heads (k to (batch, heads, d_head, tokens), in one Transpose or two), MatMul(q,
  // k^T), a Mul or Div by a constant, the mask (Where of a boolean constant and -inf, or Add of an
  // additive constant), Softmax over the keys, MatMul with v, Transpose and Reshape back to
  // (batch, tokens, d), and c_proj (MatMul and a bias Add). Every tensor between them is read by
  // the next node alone.

  // The node reading `tensor` when it is the only reader and one of `ops`; otherwise an
  // unsupported-op error at the reader, saying what the attention pattern takes there.
  const onnx::NodeProto& attention_next(const std::string& tensor,
                                        std::initializer_list<std::string_view> ops,
                                        const std::string& expected) {
    const std::vector<int>& c = consumers(tensor);
    if (c.empty()) {
      fail("self-attention: '" + tensor + "' is read by no node; expected " + expected,
           "export the attention as nanoGPT's CausalSelfAttention writes it");
    }
    const onnx::NodeProto& n = graph().node(c.front());
    if (c.size() != 1) {
      unsupported(graph().node(c.back()), "inside self-attention '" + tensor +
                                              "' may be read by one node only (" + expected +
                                              "); " + std::string(kAttentionPattern));
    }
    if (std::find(ops.begin(), ops.end(), n.op_type()) == ops.end()) {
      unsupported(
          n, "inside self-attention expected " + expected + "; " + std::string(kAttentionPattern));
    }
    consume(c.front());
    return n;
  }

  std::vector<std::int64_t> perm_of(const onnx::NodeProto& node) const {
    return ints_attribute(node, "perm");
  }

  // A shape or sizes constant as integers; a value that is not a whole number in [-2^31, 2^31]
  // is not a shape.
  std::vector<std::int64_t> whole_numbers(const Values& v, const onnx::NodeProto& node) const {
    std::vector<std::int64_t> out;
    for (double x : v.data) {
      if (!(std::abs(x) <= 2147483648.0) || x != std::trunc(x)) {
        fail(node_label(node) + ": " + shown_name(v.name) + " holds " + std::to_string(x) +
                 ", not a size",
             std::string(kReexportHint));
      }
      out.push_back(static_cast<std::int64_t>(x));
    }
    return out;
  }

  // The constant a Reshape reshapes to.
  std::vector<std::int64_t> reshape_target(const onnx::NodeProto& reshape) const {
    if (!is_constant(reshape.input(1))) {
      unsupported(reshape, "its shape must be a constant; " + std::string(kAttentionPattern));
    }
    return whole_numbers(values(reshape.input(1), reshape, Use::kStructure), reshape);
  }

  // One of q, k, v after its Reshape to heads and Transpose: the tensor, whether it is k^T, and
  // the head count.
  struct HeadsPart {
    std::string tensor;
    bool key = false;
    int heads = 0;
  };

  HeadsPart to_heads(const std::string& part) {
    const onnx::NodeProto& reshape =
        attention_next(part, {"Reshape"}, "a Reshape to (batch, tokens, heads, d_head)");
    const std::vector<std::int64_t> shape = reshape_target(reshape);
    if (shape.size() != 4 || shape[2] < 1 || shape[3] < 1 || shape[2] * shape[3] != width_ ||
        (shape[1] != tokens_ && shape[1] != -1)) {
      unsupported(reshape, "the shape must be (batch, " + std::to_string(tokens_) +
                               ", heads, d_head) with heads * d_head = " + std::to_string(width_) +
                               "; " + std::string(kAttentionPattern));
    }
    HeadsPart out;
    out.heads = static_cast<int>(shape[2]);
    const onnx::NodeProto& t = attention_next(reshape.output(0), {"Transpose"},
                                              "a Transpose with perm (0, 2, 1, 3) or (0, 2, 3, 1)");
    const std::vector<std::int64_t> perm = perm_of(t);
    out.tensor = t.output(0);
    if (perm == std::vector<std::int64_t>{0, 2, 3, 1}) {
      out.key = true;
    } else if (perm != std::vector<std::int64_t>{0, 2, 1, 3}) {
      unsupported(t, "to heads the perm must be (0, 2, 1, 3), or (0, 2, 3, 1) for the keys; " +
                         std::string(kAttentionPattern));
    }
    // k.transpose(-2, -1) after the transpose to heads.
    const std::vector<int>& c = consumers(out.tensor);
    if (!out.key && c.size() == 1 && graph().node(c.front()).op_type() == "Transpose") {
      const onnx::NodeProto& kt = graph().node(c.front());
      if (perm_of(kt) != std::vector<std::int64_t>{0, 1, 3, 2}) {
        unsupported(kt, "k^T must be a Transpose with perm (0, 1, 3, 2); " +
                            std::string(kAttentionPattern));
      }
      consume(c.front());
      out.tensor = kt.output(0);
      out.key = true;
    }
    return out;
  }

  // Whether the (T, T) mask `masked` (1: the key is hidden from the query) is causal (exactly the
  // keys after the query hidden) or empty (nothing hidden); anything else is refused.
  bool causal_mask(const std::vector<bool>& masked, const onnx::NodeProto& node) const {
    bool any = false;
    bool causal = true;
    for (int q = 0; q < tokens_; ++q) {
      for (int k = 0; k < tokens_; ++k) {
        const bool m = masked[static_cast<std::size_t>(q * tokens_ + k)];
        any = any || m;
        causal = causal && m == (k > q);
      }
    }
    if (any && !causal) {
      unsupported(node,
                  "the attention mask must be causal (exactly the keys after each query "
                  "hidden, a lower-triangular mask) or hide nothing; " +
                      std::string(kAttentionPattern));
    }
    return any;
  }

  // A mask constant broadcast over (batch, heads, T, T): (..., T, T) with 1s before.
  Values mask_values(const std::string& name, const onnx::NodeProto& node) const {
    Values v = values(name, node, Use::kStructure);
    const std::size_t r = v.dims.size();
    bool ok = r >= 2 && v.dims[r - 1] == tokens_ && v.dims[r - 2] == tokens_;
    for (std::size_t k = 0; ok && k + 2 < r; ++k) ok = v.dims[k] == 1;
    if (!ok) {
      unsupported(node, "the mask " + shown_name(name) + " must have shape (" +
                            std::to_string(tokens_) + ", " + std::to_string(tokens_) +
                            "), with leading 1s; " + std::string(kAttentionPattern));
    }
    return v;
  }

  // A masked logit: -inf, or so negative that its softmax weight is 0 in double.
  static bool hides(double v) { return v <= -1e4; }

  // From the scores S = q k^T to the Softmax: an optional scale and an optional mask, in either
  // order. Returns the Softmax's output.
  std::string scores_to_softmax(std::string at, AttentionSpec& spec) {
    std::optional<double> scale;
    bool masked = false;
    for (;;) {
      const onnx::NodeProto& n = attention_next(
          at, {"Mul", "Div", "Where", "Add", "Softmax"},
          "a Mul or Div by a constant, the mask (Where or Add of a constant), then Softmax");
      const std::string& op = n.op_type();
      if (op == "Softmax") {
        const std::int64_t axis = int_attribute(n, "axis", -1);
        if (axis != -1 && axis != 3) unsupported(n, "the softmax must be over the keys (axis -1)");
        at = n.output(0);
        break;
      }
      if ((op == "Mul" || op == "Div") && !scale) {
        const std::string& c = other_input(n, at);
        if ((op == "Div" && n.input(0) != at) || !is_constant(c)) {
          unsupported(n, "the scores are scaled by a constant; " + std::string(kAttentionPattern));
        }
        const double v = scalar(c, n);
        if (op == "Div" && v == 0.0) fail(node_label(n) + " divides the scores by 0");
        scale = op == "Mul" ? v : 1.0 / v;
      } else if (op == "Where" && !masked) {
        // masked_fill: Where(mask, fill, S), or Where(keep, S, fill).
        const bool fill_first = n.input(2) == at;
        if (!fill_first && n.input(1) != at) unsupported(n, std::string(kAttentionPattern));
        const std::string& fill = fill_first ? n.input(1) : n.input(2);
        if (!is_constant(n.input(0)) || !is_constant(fill)) {
          unsupported(n, "the mask and its fill value must be constants; " +
                             std::string(kAttentionPattern));
        }
        const Values f = values(fill, n, Use::kStructure);
        if (f.data.size() != 1 || !hides(f.data.front())) {
          unsupported(
              n, "the masked scores must be filled with -inf; " + std::string(kAttentionPattern));
        }
        const Values m = mask_values(n.input(0), n);
        std::vector<bool> hidden;
        for (double v : m.data) hidden.push_back((v != 0.0) == fill_first);
        spec.causal = causal_mask(hidden, n);
        masked = true;
      } else if (op == "Add" && !masked) {
        const std::string& c = other_input(n, at);
        if (!is_constant(c)) {
          unsupported(n, "an additive mask must be a constant; " + std::string(kAttentionPattern));
        }
        const Values m = mask_values(c, n);
        std::vector<bool> hidden;
        for (double v : m.data) {
          if (v != 0.0 && !hides(v)) {
            unsupported(
                n, "an additive mask holds 0 and -inf only; " + std::string(kAttentionPattern));
          }
          hidden.push_back(v != 0.0);
        }
        spec.causal = causal_mask(hidden, n);
        masked = true;
      } else {
        unsupported(n, "one scale and one mask at most; " + std::string(kAttentionPattern));
      }
      at = n.output(0);
    }
    const double s = scale.value_or(1.0);
    const double d_head = static_cast<double>(width_) / spec.heads;
    if (near(s, 1.0 / std::sqrt(d_head))) {
      spec.scale_kind = AttentionScaleKind::kInvSqrtHead;
    } else if (near(s, 1.0 / d_head)) {
      spec.scale_kind = AttentionScaleKind::kInvHead;
    } else {
      spec.scale_kind = AttentionScaleKind::kConstant;
      spec.scale = s;
    }
    if (!masked) spec.causal = false;
    return at;
  }

  // A MatMul by a constant weight and an optional bias Add after it, as nn.Linear exports on a
  // sequence: W (n_out, n_in), the bias and the output.
  struct Projection {
    Eigen::MatrixXd weight;
    Values weight_values;
    std::optional<Values> bias;
    std::string output;
  };

  Projection projection(const onnx::NodeProto& mm, const std::string& input) {
    if (mm.input(0) != input) {
      unsupported(mm, "a projection is MatMul(x, W) with W an initializer");
    }
    Projection p;
    p.weight_values = values(mm.input(1), mm);
    p.weight = matrix(p.weight_values, mm, "weight").transpose();
    p.output = mm.output(0);
    if (const onnx::NodeProto* add = sole_consumer(p.output);
        add && add->op_type() == "Add" && add->input_size() == 2 &&
        is_constant(other_input(*add, p.output))) {
      p.bias = values(other_input(*add, p.output), *add);
      consume(index_of(add));
      p.output = add->output(0);
    }
    return p;
  }

  // `c_attn` read x; its output (after the bias) is split in three by `split`: self-attention,
  // one attention op with weights [Wq; Wk; Wv; Wo] and bias [bq; bk; bv; bo] (or none).
  void attention(const onnx::NodeProto& c_attn, Projection qkv, const onnx::NodeProto& split) {
    const int d = width_;
    if (qkv.weight.rows() != 3 * d || qkv.weight.cols() != d) {
      fail(node_label(c_attn) + ": the query-key-value weight " +
               shown_name(qkv.weight_values.name) + " is (" + std::to_string(qkv.weight.rows()) +
               ", " + std::to_string(qkv.weight.cols()) + "); self-attention over " +
               std::to_string(d) + " features takes (" + std::to_string(3 * d) + ", " +
               std::to_string(d) + ")",
           "export nanoGPT's fused c_attn = nn.Linear(d, 3 d)");
    }
    if (qkv.bias && static_cast<int>(qkv.bias->data.size()) != 3 * d) {
      fail(node_label(c_attn) + ": bias '" + qkv.bias->name + "' has " +
           std::to_string(qkv.bias->data.size()) + " values for " + std::to_string(3 * d));
    }
    consume(index_of(&split));
    const std::int64_t rank = 3;
    const std::int64_t axis = int_attribute(split, "axis", 0);
    std::vector<std::int64_t> sizes = ints_attribute(split, "split");
    if (split.input_size() > 1 && !split.input(1).empty()) {
      sizes = whole_numbers(values(split.input(1), split, Use::kStructure), split);
    }
    if ((axis != rank - 1 && axis != -1) || split.output_size() != 3 ||
        (!sizes.empty() && sizes != std::vector<std::int64_t>{d, d, d})) {
      unsupported(split, "the fused q, k, v must be split in three parts of " + std::to_string(d) +
                             " features on the last axis; " + std::string(kAttentionPattern));
    }
    AttentionSpec spec;
    std::array<HeadsPart, 3> parts;
    for (int k = 0; k < 3; ++k) {
      parts[static_cast<std::size_t>(k)] = to_heads(split.output(k));
      if (parts[static_cast<std::size_t>(k)].heads != parts[0].heads) {
        fail(node_label(split) + ": q, k and v are reshaped to different head counts",
             "every part of self-attention has the same heads");
      }
    }
    spec.heads = parts[0].heads;
    // Which part is which: k^T is the scores MatMul's second input, q its first, v the rest.
    int key = -1;
    for (int k = 0; k < 3; ++k) {
      if (parts[static_cast<std::size_t>(k)].key) {
        if (key >= 0) unsupported(split, "only the keys are transposed for q k^T");
        key = k;
      }
    }
    if (key < 0) unsupported(split, "no part is transposed as the keys for q k^T");
    const onnx::NodeProto& scores =
        attention_next(parts[static_cast<std::size_t>(key)].tensor, {"MatMul"}, "MatMul(q, k^T)");
    int query = -1;
    for (int k = 0; k < 3; ++k) {
      if (k != key && scores.input(0) == parts[static_cast<std::size_t>(k)].tensor) query = k;
    }
    if (query < 0 || scores.input(1) != parts[static_cast<std::size_t>(key)].tensor) {
      unsupported(scores, "the scores are MatMul(q, k^T); " + std::string(kAttentionPattern));
    }
    const int value = 3 - key - query;
    const std::string& q = parts[static_cast<std::size_t>(query)].tensor;
    const std::string& v = parts[static_cast<std::size_t>(value)].tensor;
    if (consumers(q).size() != 1) unsupported(scores, "q may be read by q k^T only");
    const std::string probs = scores_to_softmax(scores.output(0), spec);
    const onnx::NodeProto& mix = attention_next(probs, {"MatMul"}, "MatMul(softmax, v)");
    if (mix.input(0) != probs || mix.input(1) != v || consumers(v).size() != 1) {
      unsupported(mix,
                  "the heads' output is MatMul(softmax, v); " + std::string(kAttentionPattern));
    }
    const onnx::NodeProto& back =
        attention_next(mix.output(0), {"Transpose"}, "a Transpose with perm (0, 2, 1, 3)");
    if (perm_of(back) != std::vector<std::int64_t>{0, 2, 1, 3}) {
      unsupported(
          back, "back from heads the perm must be (0, 2, 1, 3); " + std::string(kAttentionPattern));
    }
    const onnx::NodeProto& merge =
        attention_next(back.output(0), {"Reshape"}, "a Reshape to (batch, tokens, d)");
    const std::vector<std::int64_t> shape = reshape_target(merge);
    if (shape.size() != 3 || shape[2] != d) {
      unsupported(merge, "the heads are merged to (batch, tokens, " + std::to_string(d) + "); " +
                             std::string(kAttentionPattern));
    }
    const onnx::NodeProto& c_proj =
        attention_next(merge.output(0), {"MatMul"}, "the output projection MatMul(o, W)");
    Projection out = projection(c_proj, merge.output(0));
    if (out.weight.rows() != d || out.weight.cols() != d) {
      fail(node_label(c_proj) + ": the output projection " + shown_name(out.weight_values.name) +
               " must be (" + std::to_string(d) + ", " + std::to_string(d) + ")",
           "self-attention's output projection keeps the width");
    }
    if (out.bias && static_cast<int>(out.bias->data.size()) != d) {
      fail(node_label(c_proj) + ": bias '" + out.bias->name + "' has " +
           std::to_string(out.bias->data.size()) + " values for " + std::to_string(d));
    }

    // [Wq; Wk; Wv; Wo] (4d, d), rows of c_attn's weight by the part each Split output became.
    Leaf leaf;
    Eigen::MatrixXd W(4 * d, d);
    Eigen::VectorXd b = Eigen::VectorXd::Zero(4 * d);
    const std::array<int, 3> order = {query, key, value};
    for (int r = 0; r < 3; ++r) {
      W.middleRows(r * d, d) = qkv.weight.middleRows(order[static_cast<std::size_t>(r)] * d, d);
      if (qkv.bias) {
        b.segment(r * d, d) = Eigen::Map<const Eigen::VectorXd>(qkv.bias->data.data(), 3 * d)
                                  .segment(order[static_cast<std::size_t>(r)] * d, d);
      }
    }
    W.bottomRows(d) = out.weight;
    if (out.bias) b.tail(d) = Eigen::Map<const Eigen::VectorXd>(out.bias->data.data(), d);
    spec.bias = qkv.bias || out.bias;
    spec.output_projection = true;
    leaf.assignments.push_back(assignment(qkv.weight_values, "query_key_value.weight"));
    if (qkv.bias) leaf.assignments.push_back(assignment(*qkv.bias, "query_key_value.bias"));
    leaf.assignments.push_back(assignment(out.weight_values, "output.weight"));
    if (out.bias) leaf.assignments.push_back(assignment(*out.bias, "output.bias"));
    leaf.weight = std::move(W);
    if (spec.bias) leaf.bias = std::move(b);
    OpSpec op;
    op.kind = OpKind::kAttention;
    op.attention = spec;
    push_leaf(op, std::move(leaf), c_attn);
    advance(out.output);
  }

  void matmul(int index) {
    const onnx::NodeProto& node = graph().node(index);
    require_vector(node);
    if (node.input(0) != current_) unsupported(node, "the weight must be MatMul's second input");
    // MatMul computes x B with B (n_in, n_out); a bias Add after it joins the layer.
    Projection p = projection(node, current_);
    // Split in three (q, k, v): the fused projection that begins self-attention.
    if (const onnx::NodeProto* split = sole_consumer(p.output);
        split && split->op_type() == "Split") {
      attention(node, std::move(p), *split);
      return;
    }
    add_dense(node, std::move(p.weight), p.weight_values, p.bias, p.output);
  }

  // A norm's gamma and beta (ONNX's scale and bias inputs): the op's weight holds gamma as an
  // (n, 1) matrix and its bias beta, both left empty when gamma = 1 and beta = 0 (the norm as
  // gradscope generates it).
  // `n` values each: one per feature, or per channel for a batch norm of an image.
  void norm_affine(const onnx::NodeProto& node, int scale_input, int bias_input, Leaf& leaf,
                   int n) const {
    const auto read = [&](int input, double fill, const char* role) {
      Eigen::VectorXd out = Eigen::VectorXd::Constant(n, fill);
      if (node.input_size() <= input || node.input(input).empty()) return out;
      const Values v = values(node.input(input), node);
      if (static_cast<int>(v.data.size()) != n) {
        fail(node_label(node) + ": '" + v.name + "' has " + std::to_string(v.data.size()) +
             " values for " + std::to_string(n) + (n == width_ ? " features" : " channels"));
      }
      out = Eigen::Map<const Eigen::VectorXd>(v.data.data(), n);
      leaf.assignments.push_back(assignment(v, role));
      return out;
    };
    const Eigen::VectorXd gamma = read(scale_input, 1.0, "norm_weight");
    const Eigen::VectorXd beta = read(bias_input, 0.0, "norm_bias");
    if ((gamma.array() == 1.0).all() && (beta.array() == 0.0).all()) return;
    leaf.weight = gamma;  // (n, 1)
    leaf.bias = beta;
  }

  void require_unused_extra_outputs(const onnx::NodeProto& node) const {
    for (int k = 1; k < node.output_size(); ++k) {
      if (!node.output(k).empty() && !consumers(node.output(k)).empty()) {
        unsupported(node, "only its first output may be used");
      }
    }
  }

  void norm(const onnx::NodeProto& node, NormKind kind) {
    if (kind == NormKind::kLayerNorm) {
      const std::int64_t axis = int_attribute(node, "axis", -1);
      if (image_.is_image() && axis != 1 && axis != -3) {
        unsupported(node,
                    "on an image only a layer norm over C, H and W (axis 1, as "
                    "nn.LayerNorm([C, H, W]) exports)");
      }
      if (!image_.is_image() && axis != -1 && axis != 1) {
        unsupported(node, "only a layer norm over the features");
      }
    }
    require_unused_extra_outputs(node);
    Leaf leaf;
    // BatchNormalization: X, scale, B, mean, var. The running statistics are ignored: gradscope
    // normalises with the batch's own statistics (training mode); so are the running statistics
    // a training-mode export writes as outputs 1 and 2, which nothing reads. An image's batch
    // norm normalises each channel over the batch and the positions (BatchNorm2d).
    const bool per_channel = kind == NormKind::kBatchNorm && image_.is_image();
    norm_affine(node, 1, 2, leaf, per_channel ? image_.channels : width_);
    if (per_channel && leaf.weight) refuse_channel_affine(node);
    OpSpec op;
    op.kind = OpKind::kNorm;
    op.norm.kind = kind;
    op.norm.eps = float_attribute(node, "epsilon", 1e-5);
    push_leaf(op, std::move(leaf), node);
    advance(node.output(0));
  }

  // ---- Images (N, C, H, W): Conv, MaxPool, AveragePool (with a Pad before it), GlobalAveragePool
  // and ReduceMean over (2, 3), Flatten, and a residual skip path through a 1x1 Conv (the learned
  // projection).

  onnx_conv::NodeRefusal refusal(const onnx::NodeProto& node) const {
    const std::string op = shown_name(node.op_type());
    return {path_, node_label(node), op.substr(1, op.size() - 2), kSupported};
  }

  static std::string shape_text(int width, const ImageShape& image) {
    if (!image.is_image()) return std::to_string(width) + " features";
    return "a " + std::to_string(image.channels) + " x " + std::to_string(image.height) + " x " +
           std::to_string(image.width) + " image";
  }

  void require_image(const onnx::NodeProto& node) const {
    if (image_.is_image()) return;
    unsupported(node, "it needs an (N, C, H, W) image, but '" + current_ + "' is a vector of " +
                          std::to_string(width_) + " features");
  }

  void require_vector(const onnx::NodeProto& node) const {
    if (!image_.is_image()) return;
    unsupported(node, "it acts on vectors, but '" + current_ + "' is " +
                          shape_text(width_, image_) + "; torch flattens first (a Flatten node)");
  }

  // The image an op leaves: checked here (a window that does not fit, too many features) so that
  // the walk's widths stay ints; the config reader's rules check the rest.
  void set_image(const onnx::NodeProto& node, const ImageShape& out) {
    const std::int64_t features = std::int64_t{out.channels} * out.height * out.width;
    if (out.channels < 1 || out.height < 1 || out.width < 1) {
      fail(node_label(node) + ": its window does not fit the " + shape_text(width_, image_) +
               " (padded), so it leaves no output",
           "the model does not run at this input size; export it with a larger example input");
    }
    if (features > spec_limits::kMaxWidth) {
      fail(node_label(node) + " outputs " + std::to_string(features) +
               " features per example; gradscope reads at most " +
               std::to_string(spec_limits::kMaxWidth),
           "export the model at a smaller input size");
    }
    image_ = out;
    width_ = static_cast<int>(features);
  }

  void conv(const onnx::NodeProto& node) {
    require_image(node);
    if (node.input(0) != current_) unsupported(node, "the weight must be Conv's second input");
    const Values w = values(node.input(1), node);
    OpSpec op;
    op.kind = OpKind::kConv;
    op.conv = onnx_conv::conv_spec(node, w.dims, image_, refusal(node));
    Leaf leaf;
    Eigen::MatrixXd W = onnx_conv::conv_matrix(w.dims, w.data);
    leaf.assignments.push_back(assignment(w, "weight"));
    Eigen::VectorXd b = Eigen::VectorXd::Zero(op.conv.channels);
    op.conv.bias = node.input_size() > 2 && !node.input(2).empty();
    if (op.conv.bias) {
      const Values bias = values(node.input(2), node);
      if (static_cast<int>(bias.data.size()) != op.conv.channels) {
        fail(node_label(node) + ": bias '" + bias.name + "' has " +
             std::to_string(bias.data.size()) + " values for " + std::to_string(op.conv.channels) +
             " output channels");
      }
      b = Eigen::Map<const Eigen::VectorXd>(bias.data.data(), op.conv.channels);
      leaf.assignments.push_back(assignment(bias, "bias"));
      leaf.bias = b;
    }
    // The variance the weights were drawn with, measured over fan_in = C_in / group kh kw.
    const LayerSpec measured = dense_layer(W, b);
    op.conv.init = measured.init;
    op.conv.bias_init = measured.bias;
    op.conv.activation = default_spec(Activation::kLinear);
    leaf.weight = std::move(W);
    const ImageShape out = op.conv.out();
    push_leaf(op, std::move(leaf), node);
    set_image(node, out);
    advance(node.output(0));
    fuse_activation(node.output(0));
  }

  void push_pool(const onnx::NodeProto& node, PoolSpec p, const std::string& output) {
    p.in = image_;
    OpSpec op;
    op.kind = OpKind::kPool;
    op.pool = p;
    push_leaf(op, {}, node);
    set_image(node, p.out());
    advance(output);
  }

  void pool(const onnx::NodeProto& node) {
    require_image(node);
    require_unused_extra_outputs(node);  // MaxPool's indices
    push_pool(node, onnx_conv::pool_spec(node, refusal(node)), node.output(0));
  }

  // torch writes AvgPool2d(padding=p) as a Pad of zeros and an AveragePool without pads: one
  // average pooling with padding p (the padded zeros counted, count_include_pad). A Pad of nothing
  // is the identity.
  void pad(const onnx::NodeProto& node) {
    require_image(node);
    const onnx::AttributeProto* mode = find_attribute(node, "mode");
    if (mode && mode->s() != "constant") {
      unsupported(node, "a Pad is read only in constant mode, padding zeros; this one is " +
                            shown_name(mode->s()));
    }
    if (node.input_size() > 3 && !node.input(3).empty()) {
      unsupported(node, "a Pad of chosen axes; torch pads every axis");
    }
    if (node.input_size() > 2 && !node.input(2).empty() &&
        values(node.input(2), node, Use::kStructure).data != std::vector<double>{0.0}) {
      unsupported(node, "a Pad is read only with zeros (constant_value 0)");
    }
    if (!is_constant(node.input(1))) unsupported(node, "its pads must be a constant");
    const onnx_conv::NodeRefusal r = refusal(node);
    const std::array<int, 2> amounts =
        onnx_conv::pad_amounts(values(node.input(1), node, Use::kStructure).data, r);
    if (amounts[0] == 0 && amounts[1] == 0) {
      advance(node.output(0));
      return;
    }
    const onnx::NodeProto* avg = sole_consumer(node.output(0));
    if (!avg || avg->op_type() != "AveragePool") {
      r.unsupported(
          "a Pad is read only as the padding of the AveragePool right after it, as "
          "torch exports AvgPool2d(padding=p)");
    }
    consume(index_of(avg));
    push_pool(*avg, onnx_conv::pool_spec(*avg, refusal(*avg), amounts), avg->output(0));
  }

  void global_pool(const onnx::NodeProto& node, const std::string& output) {
    PoolSpec p;
    p.kind = PoolKind::kGlobalAverage;
    push_pool(node, p, output);
  }

  // torch's x.mean((2, 3), keepdim=True) is a global average pooling; without keepdim a flatten
  // follows.
  void reduce_mean(const onnx::NodeProto& node) {
    require_image(node);
    std::vector<std::int64_t> axes = ints_attribute(node, "axes");
    if (node.input_size() > 1 && !node.input(1).empty()) {
      if (!is_constant(node.input(1))) unsupported(node, "its axes must be a constant");
      axes = whole_numbers(values(node.input(1), node, Use::kStructure), node);
    }
    for (std::int64_t& a : axes) a = a < 0 ? a + 4 : a;
    std::sort(axes.begin(), axes.end());
    if (axes != std::vector<std::int64_t>{2, 3}) {
      unsupported(node,
                  "a ReduceMean is read only over the height and width (axes 2 and 3), as "
                  "a global average pooling");
    }
    const std::int64_t keep = int_attribute(node, "keepdims", 1);
    global_pool(node, node.output(0));
    if (keep == 0) flatten_image(node);
  }

  void flatten_image(const onnx::NodeProto& node) {
    OpSpec op;
    op.kind = OpKind::kFlatten;
    push_leaf(op, {}, node);
    image_ = {};
    advance(node.output(0));
  }

  void flatten(const onnx::NodeProto& node) {
    const std::int64_t axis = int_attribute(node, "axis", 1);
    if (!image_.is_image()) {
      // (batch, features) flattened from axis 1 is itself.
      if (axis != 1 && axis != -1) unsupported(node, "a Flatten is read only from axis 1");
      advance(node.output(0));
      return;
    }
    if (axis != 1 && axis != -3) {
      unsupported(node,
                  "a Flatten is read only from axis 1 (torch.flatten(x, 1)), an image's "
                  "C H W features as one vector");
    }
    flatten_image(node);
  }

  // x.view(x.size(0), -1) and x.reshape(-1, C H W) as torch exports them with a fixed batch: a
  // Reshape to the constant (batch or 0 or -1, C H W or -1), a flatten.
  void reshape_image(const onnx::NodeProto& node) {
    if (node.input(0) != current_ || !is_constant(node.input(1))) {
      unsupported(node,
                  "a Reshape of an image is read only as a flatten to a constant shape "
                  "(batch, C H W)");
    }
    const std::vector<std::int64_t> shape =
        whole_numbers(values(node.input(1), node, Use::kStructure), node);
    const bool flat = shape.size() == 2 && shape[0] >= -1 &&
                      (shape[1] == width_ || (shape[1] == -1 && shape[0] != -1));
    if (!flat) {
      std::string text;
      for (std::int64_t d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
      unsupported(node, "a Reshape of " + shape_text(width_, image_) +
                            " is read only as a flatten to (batch, " + std::to_string(width_) +
                            "), not (" + text + ")");
    }
    flatten_image(node);
  }

  // x.view(x.size(0), -1) with a dynamic batch: Shape(x), Gather(0), Unsqueeze, Concat with
  // [-1], Reshape(x, that): a flatten. The node at `index` is the Shape.
  void shape_flatten(int index) {
    const onnx::NodeProto& shape = graph().node(index);
    const auto fail_pattern = [&]() {
      unsupported(shape,
                  "a Shape of an image is read only within x.view(x.size(0), -1) as torch "
                  "exports it (Shape, Gather 0, Unsqueeze, Concat with -1, Reshape)");
    };
    const onnx::NodeProto* gather = sole_consumer(shape.output(0));
    if (!gather || gather->op_type() != "Gather" || !is_constant(gather->input(1)) ||
        values(gather->input(1), *gather, Use::kStructure).data != std::vector<double>{0.0} ||
        int_attribute(*gather, "axis", 0) != 0) {
      fail_pattern();
    }
    const onnx::NodeProto* unsqueeze = sole_consumer(gather->output(0));
    if (!unsqueeze || unsqueeze->op_type() != "Unsqueeze") fail_pattern();
    const onnx::NodeProto* concat = sole_consumer(unsqueeze->output(0));
    if (!concat || concat->op_type() != "Concat" || concat->input_size() != 2 ||
        concat->input(0) != unsqueeze->output(0) || !is_constant(concat->input(1)) ||
        values(concat->input(1), *concat, Use::kStructure).data != std::vector<double>{-1.0}) {
      fail_pattern();
    }
    const onnx::NodeProto* reshape = sole_consumer(concat->output(0));
    if (!reshape || reshape->op_type() != "Reshape" || reshape->input(0) != current_ ||
        reshape->input(1) != concat->output(0) || consumers(current_).size() != 2) {
      fail_pattern();
    }
    for (const onnx::NodeProto* n : {gather, unsqueeze, concat, reshape}) consume(index_of(n));
    flatten_image(*reshape);
  }

  // gradscope's batch norm of an image has gamma = 1 and beta = 0 (a freshly initialised
  // BatchNorm2d's); its norm op applies trained values per feature, not per channel.
  [[noreturn]] void refuse_channel_affine(const onnx::NodeProto& node) const {
    unsupported(node,
                "a batch norm of an image is read with scale 1 and bias 0 (as "
                "BatchNorm2d is initialised); this one has trained values",
                "export the untrained model, or export in eval mode "
                "(model.eval()), where torch folds the batch norm into the conv before it");
  }

  // A residual's skip path through a 1x1 Conv and an optional BatchNormalization (torchvision's
  // ResNet downsample): read apart from the chain, joined at the Add that reads its output.
  struct Skip {
    std::string source;  // the earlier tensor of the chain the Conv reads
    int conv = -1;
    int norm = -1;  // the BatchNormalization, or -1
    std::string output;
  };

  // Whether the Conv at `index` begins such a skip path: it reads a tensor of the chain that
  // something else reads too, and its output (after the batch norm) goes to an Add alone.
  std::optional<Skip> match_skip(int index) const {
    const onnx::NodeProto& conv = graph().node(index);
    if (conv.op_type() != "Conv" || !marks_.count(conv.input(0))) return std::nullopt;
    if (conv.input(0) == current_ && consumers(current_).size() < 2) return std::nullopt;
    if (!is_constant(conv.input(1))) return std::nullopt;
    const onnx::TensorProto* w = constant(conv.input(1));
    if (w->dims_size() != 4 || w->dims(2) != 1 || w->dims(3) != 1) return std::nullopt;
    Skip s;
    s.source = conv.input(0);
    s.conv = index;
    s.output = conv.output(0);
    const onnx::NodeProto* next = sole_consumer(s.output);
    if (next && next->op_type() == "BatchNormalization") {
      s.norm = index_of(next);
      s.output = next->output(0);
      next = sole_consumer(s.output);
    }
    if (!next || next->op_type() != "Add" || next->input_size() != 2 ||
        next->input(0) == next->input(1)) {
      return std::nullopt;
    }
    // y = BN(Conv(x)) + x is a block whose branch is the Conv, around an identity skip.
    if (other_input(*next, s.output) == s.source) return std::nullopt;
    return s;
  }

  void skip_path(Skip s) {
    consume(s.conv);
    if (s.norm >= 0) consume(s.norm);
    skips_[s.output] = std::move(s);
  }

  // The skip path as the residual's learned projection (ResidualSpec::conv_projection): the 1x1
  // Conv's weight (C_out, C_in, 1, 1) as the (C_out, C_in) matrix, stride in / out, no bias, then
  // its BatchNormalization (scale 1 and bias 0, as every image batch norm gradscope reads) or none.
  Leaf learned_projection(const onnx::NodeProto& add, const Skip& s, const Mark& from,
                          ResidualSpec& r) const {
    const onnx::NodeProto& conv = graph().node(s.conv);
    if (conv.input_size() > 2 && !conv.input(2).empty()) {
      unsupported(conv,
                  "the skip path's 1x1 Conv has a bias (an eval-mode export folds its batch "
                  "norm into it); gradscope's learned projection has none",
                  "export in training mode (torch.onnx.export(..., "
                  "training=torch.onnx.TrainingMode.TRAINING)), which keeps the batch norm");
    }
    const Values w = values(conv.input(1), conv);
    const ConvSpec c = onnx_conv::conv_spec(conv, w.dims, from.image, refusal(conv));
    if (c.pad_h != 0 || c.pad_w != 0 || c.groups != 1) {
      unsupported(conv,
                  "a skip path's 1x1 Conv is read without padding or groups, as "
                  "torchvision's downsample");
    }
    const ImageShape out = c.out();
    if (out != image_) {
      fail(node_label(add) + ": its skip path " + node_label(conv) + " gives " +
               shape_text(out.size(), out) + ", the block " + shape_text(width_, image_),
           "a residual connection needs the same shape on both paths");
    }
    const auto ratio = [](int in, int o) { return in % o == 0 ? in / o : -1; };
    if (ratio(from.image.height, out.height) != c.stride_h ||
        ratio(from.image.width, out.width) != c.stride_w) {
      unsupported(conv,
                  "a skip path's stride must divide the image exactly (stride " +
                      std::to_string(c.stride_h) + " from " + shape_text(from.width, from.image) +
                      " to " + shape_text(out.size(), out) + ")",
                  "export the model at an input size its strides divide (e.g. 32 x 32 or 64 x 64 "
                  "for a ResNet)");
    }
    Leaf leaf;
    Eigen::MatrixXd P = onnx_conv::conv_matrix(w.dims, w.data);  // (C_out, C_in)
    leaf.assignments.push_back(assignment(w, "projection.weight"));
    r.projection = true;
    r.skip_image = from.image;
    r.projection_init = dense_layer(P, Eigen::VectorXd::Zero(P.rows())).init;
    r.projection_init_given = true;
    r.projection_norm_given = true;
    r.projection_norm.reset();
    if (s.norm >= 0) {
      const onnx::NodeProto& bn = graph().node(s.norm);
      require_unused_extra_outputs(bn);
      Leaf affine;
      norm_affine(bn, 1, 2, affine, image_.channels);
      if (affine.weight) refuse_channel_affine(bn);
      for (TensorAssignment& a : affine.assignments) {
        a.role = a.role == "norm_weight" ? "projection_norm.weight" : "projection_norm.bias";
        leaf.assignments.push_back(std::move(a));
      }
      r.projection_norm = NormSpec{NormKind::kBatchNorm, float_attribute(bn, "epsilon", 1e-5)};
    }
    leaf.weight = std::move(P);
    leaf.node = node_label(add);
    return leaf;
  }

  void dropout(const onnx::NodeProto& node) {
    require_unused_extra_outputs(node);
    double ratio = float_attribute(node, "ratio", 0.5);  // opset < 12 keeps it as an attribute
    if (node.input_size() > 1 && !node.input(1).empty()) ratio = scalar(node.input(1), node);
    if (!(ratio >= 0.0 && ratio < 1.0)) {
      fail(node_label(node) + ": dropout ratio " + std::to_string(ratio) + " is outside [0, 1)");
    }
    OpSpec op;
    op.kind = OpKind::kDropout;
    op.dropout = ratio;
    push_leaf(op, {}, node);
    advance(node.output(0));
  }

  void residual(const onnx::NodeProto& node) {
    if (node.input_size() != 2) unsupported(node);
    const std::string& skip = node.input(0) == current_ ? node.input(1) : node.input(0);
    if (is_constant(skip)) {
      unsupported(node, "an Add of a constant is read only as the bias right after a MatMul");
    }
    // A skip path through a 1x1 Conv (and a BatchNormalization): the Add reads its output.
    const auto projected = skips_.find(skip);
    const std::string& from = projected != skips_.end() ? projected->second.source : skip;
    const auto mark = marks_.find(from);
    if (from == current_ || mark == marks_.end() || mark->second.position >= items_.size()) {
      unsupported(node,
                  "an Add is read as a residual y = x + F(x), where x is an earlier tensor "
                  "of the chain; '" +
                      skip + "' is not one");
    }
    ResidualSpec spec;
    std::optional<Leaf> end;
    if (projected != skips_.end()) {
      end = learned_projection(node, projected->second, mark->second, spec);
    } else if (mark->second.width != width_ || mark->second.image != image_) {
      fail(node_label(node) + ": the residual adds '" + skip + "' (" +
               shape_text(mark->second.width, mark->second.image) + ") to " +
               shape_text(width_, image_),
           "a residual connection needs the same shape on both paths");
    }
    const std::size_t p = mark->second.position;
    const int nesting =
        1 + *std::max_element(nesting_.begin() + static_cast<std::ptrdiff_t>(p), nesting_.end());
    if (nesting > kMaxNesting) {
      fail(node_label(node) + " closes a residual block nested " + std::to_string(nesting) +
               " deep; gradscope reads at most " + std::to_string(kMaxNesting),
           "no feed-forward network nests its skip connections that deep; check the export");
    }
    LayerItem block;
    block.block.assign(std::make_move_iterator(items_.begin() + static_cast<std::ptrdiff_t>(p)),
                       std::make_move_iterator(items_.end()));
    block.residual = spec;
    end_leaves_.push_back(std::move(end));
    items_.resize(p);
    items_.push_back(std::move(block));
    nesting_.resize(p);
    nesting_.push_back(nesting);
    residual_nodes_.push_back({mark->second.leaves, leaves_.size(), node_label(node)});
    // Tensors inside the block are no longer on the chain a later skip may start from.
    std::erase_if(marks_, [p](const auto& entry) { return entry.second.position > p; });
    advance(node.output(0));
  }

  void walk() {
    done_.assign(static_cast<std::size_t>(graph().node_size()), false);
    for (int i = 0; i < graph().node_size(); ++i) {
      const onnx::NodeProto& node = graph().node(i);
      // Constants, and Identity copies of them, feed the ops; they are not ops themselves.
      if (node.op_type() == "Constant" ||
          (node.output_size() == 1 && is_constant(node.output(0)))) {
        consume(i);
      }
    }
    width_ = input_width_;
    image_ = input_image_;
    advance(input_);
    for (int i : order_) {
      if (done_[static_cast<std::size_t>(i)]) continue;
      const onnx::NodeProto& node = graph().node(i);
      const std::string& op = node.op_type();
      if (std::optional<Skip> s = match_skip(i)) {
        skip_path(std::move(*s));
        continue;
      }
      const bool reads_current =
          std::find(node.input().begin(), node.input().end(), current_) != node.input().end();
      if (!reads_current) {
        fail(node_label(node) + " does not read '" + current_ +
                 "', the output of the op before it; gradscope reads a chain of ops, with Add "
                 "only for residual connections",
             "supported: " + std::string(kSupported));
      }
      consume(i);
      if (op == "Gemm") {
        gemm(node);
      } else if (op == "MatMul") {
        matmul(i);
      } else if (op == "BatchNormalization") {
        norm(node, NormKind::kBatchNorm);
      } else if (op == "LayerNormalization") {
        norm(node, NormKind::kLayerNorm);
      } else if (op == "Dropout") {
        dropout(node);
      } else if (op == "Conv") {
        conv(node);
      } else if (op == "MaxPool" || op == "AveragePool") {
        pool(node);
      } else if (op == "Pad") {
        pad(node);
      } else if (op == "GlobalAveragePool") {
        require_image(node);
        global_pool(node, node.output(0));
      } else if (op == "ReduceMean") {
        reduce_mean(node);
      } else if (op == "Flatten") {
        flatten(node);
      } else if (op == "Reshape" && image_.is_image()) {
        reshape_image(node);
      } else if (op == "Shape" && image_.is_image()) {
        shape_flatten(i);
      } else if (op == "Identity") {
        advance(node.output(0));
      } else if (op == "Add") {
        residual(node);
      } else if (std::optional<ActivationMatch> m = match_activation(i)) {
        OpSpec a;
        a.kind = OpKind::kActivation;
        a.activation = m->spec;
        push_leaf(a, {}, node);
        for (int k : m->nodes) consume(k);
        advance(m->output);
      } else if (op == "Mul") {
        unsupported(node,
                    "a Mul is read only within SiLU (x * Sigmoid(x)), Mish "
                    "(x * Tanh(Softplus(x))) or GELU's tanh form, with x the same tensor "
                    "throughout and read by nothing else");
      } else {
        unsupported(node);
      }
    }
    if (current_ != output_) {
      fail("the chain of ops ends at '" + current_ + "', not at the graph output '" + output_ + "'",
           "gradscope reads a chain from the one input to the one output");
    }
    if (items_.empty()) fail("the graph has no ops between its input and its output");
  }

  // The label of the node each op of `ops` came from: leaves in order, and a residual begin or
  // end the Add that closes its block.
  std::vector<std::string> op_nodes(const std::vector<OpSpec>& ops) const {
    std::vector<std::string> labels;
    std::vector<bool> used(residual_nodes_.size(), false);
    std::vector<std::size_t> open;  // residual_nodes_ indices, innermost last
    std::size_t leaf = 0;
    for (const OpSpec& op : ops) {
      if (op.kind == OpKind::kResidualBegin) {
        // Blocks that begin at the same leaf open outermost (the longest) first.
        std::optional<std::size_t> pick;
        for (std::size_t r = 0; r < residual_nodes_.size(); ++r) {
          if (used[r] || residual_nodes_[r].first != leaf) continue;
          if (!pick || residual_nodes_[r].end > residual_nodes_[*pick].end) pick = r;
        }
        if (pick) {
          used[*pick] = true;
          open.push_back(*pick);
        }
        labels.push_back(pick ? residual_nodes_[*pick].node : std::string("a residual Add"));
      } else if (op.kind == OpKind::kResidualEnd) {
        labels.push_back(open.empty() ? std::string("a residual Add")
                                      : residual_nodes_[open.back()].node);
        if (!open.empty()) open.pop_back();
      } else {
        labels.push_back(leaf < leaves_.size() ? leaves_[leaf].node : std::string("an op"));
        ++leaf;
      }
    }
    return labels;
  }

  // The config reader's rules, on the model: a broken one names the node it came from.
  void validate(const RunSpec& spec, const std::vector<OpSpec>& ops) const {
    const std::optional<SpecProblem> p = find_spec_problem(spec);
    if (!p) return;
    if (!p->op) {
      fail("the model: " + (p->path.empty() ? p->what : p->path + ": " + p->what), p->hint);
    }
    const std::vector<std::string> labels = op_nodes(ops);
    const std::string node = *p->op < labels.size() ? labels[*p->op] : std::string("an op");
    fail(node + ": " + p->what, p->hint);
  }

  OnnxModel finish() {
    OnnxModel model;
    model.spec = spec_;
    model.spec.input.width = input_width_;
    model.spec.input.tokens = tokens_;
    model.spec.input.image = input_image_;
    model.spec.layers = std::move(items_);
    model.spec.output.reset();
    const std::vector<OpSpec> ops = expand_ops(model.spec);
    validate(model.spec, ops);
    model.weights.weight.resize(ops.size());
    model.weights.bias.resize(ops.size());
    std::size_t leaf = 0;
    std::size_t end = 0;  // residual ends come in the order their Adds closed their blocks
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].kind == OpKind::kResidualBegin) continue;
      std::optional<Leaf>& e = ops[i].kind == OpKind::kResidualEnd ? end_leaves_.at(end++) : none_;
      if (ops[i].kind == OpKind::kResidualEnd && !e) continue;
      Leaf& l = ops[i].kind == OpKind::kResidualEnd ? *e : leaves_.at(leaf++);
      if (l.weight) model.weights.weight[i] = std::move(*l.weight);
      if (l.bias) model.weights.bias[i] = std::move(*l.bias);
      for (TensorAssignment& a : l.assignments) {
        a.layer = static_cast<int>(i) + 1;
        model.assignments.push_back(std::move(a));
      }
    }
    return model;
  }

  std::string path_;
  RunSpec spec_;
  std::optional<std::string_view> bytes_;
  std::unordered_map<const onnx::NodeProto*, int> index_;
  onnx::ModelProto model_;
  std::map<std::string, const onnx::TensorProto*> constants_;
  std::map<std::string, int> producer_;
  std::map<std::string, std::vector<int>> consumers_;
  std::vector<int> order_;
  std::vector<bool> done_;
  std::deque<onnx::TensorProto> folded_;            // constants computed by fold_constants
  std::map<std::string, std::string> folded_from_;  // a transposed weight's own name
  std::string input_;
  std::string output_;
  int input_width_ = 0;
  int tokens_ = 1;          // the input's second dimension for (batch, tokens, features)
  ImageShape input_image_;  // (channels, height, width) of an (N, C, H, W) input

  // The walk's state: the chain's current tensor and width, the items so far, and where each
  // earlier tensor of the chain stood (for residual skips).
  std::string current_;
  int width_ = 0;
  ImageShape image_;  // the current tensor's shape when it is an image (channels 0: a vector)
  std::vector<LayerItem> items_;
  std::vector<int> nesting_;  // per item: how deep residual blocks nest inside it
  std::vector<Leaf> leaves_;
  // Per residual block: its leaves [first, end) and the Add node that closes it.
  struct ResidualNode {
    std::size_t first;
    std::size_t end;
    std::string node;
  };
  std::vector<ResidualNode> residual_nodes_;
  std::map<std::string, Mark> marks_;
  std::map<std::string, Skip> skips_;  // skip paths by their output, read by a residual's Add
  // Per residual block, in the order the Adds closed them: its learned projection's weight (the
  // skip path's 1x1 Conv), or nothing for an identity skip.
  std::vector<std::optional<Leaf>> end_leaves_;
  std::optional<Leaf> none_;
};

}  // namespace

OnnxModel read_onnx(const std::string& path, const RunSpec& defaults) {
  return Importer(path, defaults).run();
}

OnnxModel parse_onnx(std::string_view bytes, const std::string& source, const RunSpec& defaults) {
  return Importer(source, defaults, bytes).run();
}

}  // namespace gradscope
