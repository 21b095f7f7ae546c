// ONNX's Conv, MaxPool, AveragePool and Pad attributes as ConvSpec and PoolSpec (onnx_conv.hpp).
#include "io/onnx_conv.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "gradscope/core/error.hpp"
#include "gradscope/core/validate.hpp"

namespace gradscope::onnx_conv {
namespace {

constexpr std::string_view kReexport =
    "the file is damaged or was not written by an ONNX exporter; export the model again with "
    "torch.onnx.export(model, example, \"model.onnx\")";

const onnx::AttributeProto* find(const onnx::NodeProto& node, std::string_view name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::string list_text(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

// An INTS attribute; empty when absent.
std::vector<std::int64_t> ints(const onnx::NodeProto& node, std::string_view name,
                               const NodeRefusal& r) {
  const onnx::AttributeProto* a = find(node, name);
  if (!a) return {};
  if (a->has_type() && a->type() != onnx::AttributeProto::INTS) {
    r.malformed("attribute '" + std::string(name) + "' is not a list of integers");
  }
  return {a->ints().begin(), a->ints().end()};
}

std::int64_t int_of(const onnx::NodeProto& node, std::string_view name, std::int64_t fallback,
                    const NodeRefusal& r) {
  const onnx::AttributeProto* a = find(node, name);
  if (!a) return fallback;
  if (!a->has_i() || (a->has_type() && a->type() != onnx::AttributeProto::INT)) {
    r.malformed("attribute '" + std::string(name) + "' is not an integer");
  }
  return a->i();
}

// auto_pad other than NOTSET derives the padding from the input's shape at run time (SAME_UPPER
// pads the end more than the beginning): torch never writes it.
void require_explicit_pads(const onnx::NodeProto& node, const NodeRefusal& r) {
  const onnx::AttributeProto* a = find(node, "auto_pad");
  if (!a || a->s() == "NOTSET" || a->s().empty()) return;
  r.unsupported(
      "auto_pad " + a->s() + "; gradscope reads explicit, symmetric pads (auto_pad NOTSET)",
      "export from PyTorch (Conv2d(padding=p) writes explicit pads), or give the model's "
      "padding explicitly");
}

// A (h, w) pair from `name`: `fallback` when absent, each value in [lo, kMaxWidth].
std::array<int, 2> pair_of(const onnx::NodeProto& node, std::string_view name,
                           std::array<int, 2> fallback, std::int64_t lo, const NodeRefusal& r) {
  const std::vector<std::int64_t> v = ints(node, name, r);
  if (v.empty()) return fallback;
  if (v.size() != 2) {
    r.unsupported(std::string(name) + " " + list_text(v) +
                      " has not 2 values; gradscope reads 2-D images (NCHW) only",
                  "export a model of 2-D convolutions and poolings (Conv2d, MaxPool2d, AvgPool2d)");
  }
  for (std::int64_t x : v) {
    if (x < lo || x > spec_limits::kMaxWidth) {
      r.malformed(std::string(name) + " " + list_text(v) + " holds " + std::to_string(x) +
                  ", outside [" + std::to_string(lo) + ", " +
                  std::to_string(spec_limits::kMaxWidth) + "]");
    }
  }
  return {static_cast<int>(v[0]), static_cast<int>(v[1])};
}

// pads [h_begin, w_begin, h_end, w_end] as (h, w): each side alike.
std::array<int, 2> symmetric_pads(const onnx::NodeProto& node, const NodeRefusal& r) {
  const std::vector<std::int64_t> p = ints(node, "pads", r);
  if (p.empty()) return {0, 0};
  if (p.size() != 4) {
    r.unsupported("pads " + list_text(p) + " has not 4 values; gradscope reads 2-D images only");
  }
  for (std::int64_t x : p) {
    if (x < 0 || x > spec_limits::kMaxWidth) {
      r.malformed("pads " + list_text(p) + " holds " + std::to_string(x) + ", outside [0, " +
                  std::to_string(spec_limits::kMaxWidth) + "]");
    }
  }
  if (p[0] != p[2] || p[1] != p[3]) {
    r.unsupported("asymmetric padding, pads " + list_text(p) +
                      " ([h_begin, w_begin, h_end, w_end]); gradscope pads both sides alike, as "
                      "torch's padding=p does",
                  "pad symmetrically (padding=(p_h, p_w)), or pad the input beforehand");
  }
  return {static_cast<int>(p[0]), static_cast<int>(p[1])};
}

}  // namespace

void NodeRefusal::unsupported(const std::string& why, const std::string& hint) const {
  throw Error(
      path + ": unsupported ONNX op '" + op + "' at " + label +
          (why.empty() ? std::string() : ": " + why) + "; supported: " + std::string(supported),
      hint.empty() ? "replace the op in the model, or describe the network in a config file instead"
                   : hint);
}

void NodeRefusal::malformed(const std::string& what) const {
  throw Error(path + ": " + label + ": " + what, std::string(kReexport));
}

ConvSpec conv_spec(const onnx::NodeProto& node, const std::vector<std::int64_t>& weight_dims,
                   const ImageShape& in, const NodeRefusal& r) {
  if (weight_dims.size() != 4) {
    r.unsupported("the weight has " + std::to_string(weight_dims.size()) +
                      " dimensions; gradscope reads 2-D convolutions, weight (C_out, C_in / "
                      "group, kernel_h, kernel_w)",
                  "export a model of Conv2d layers on (batch, channels, height, width) inputs");
  }
  for (std::int64_t d : weight_dims) {
    if (d < 1 || d > spec_limits::kMaxWidth) {
      r.malformed("the weight's shape " + list_text(weight_dims) + " holds " + std::to_string(d));
    }
  }
  require_explicit_pads(node, r);
  ConvSpec c;
  c.channels = static_cast<int>(weight_dims[0]);
  const std::array<int, 2> kernel =
      pair_of(node, "kernel_shape",
              {static_cast<int>(weight_dims[2]), static_cast<int>(weight_dims[3])}, 1, r);
  if (kernel[0] != weight_dims[2] || kernel[1] != weight_dims[3]) {
    r.malformed("kernel_shape [" + std::to_string(kernel[0]) + ", " + std::to_string(kernel[1]) +
                "] is not the weight's " + list_text(weight_dims));
  }
  c.kernel_h = kernel[0];
  c.kernel_w = kernel[1];
  const std::array<int, 2> stride = pair_of(node, "strides", {1, 1}, 1, r);
  const std::array<int, 2> dilation = pair_of(node, "dilations", {1, 1}, 1, r);
  const std::array<int, 2> pad = symmetric_pads(node, r);
  c.stride_h = stride[0];
  c.stride_w = stride[1];
  c.dilation_h = dilation[0];
  c.dilation_w = dilation[1];
  c.pad_h = pad[0];
  c.pad_w = pad[1];
  const std::int64_t group = int_of(node, "group", 1, r);
  if (group < 1 || group > spec_limits::kMaxWidth || weight_dims[1] * group != in.channels ||
      weight_dims[0] % group != 0) {
    r.malformed("group " + std::to_string(group) + " with a weight of shape " +
                list_text(weight_dims) + " does not fit the " + std::to_string(in.channels) +
                " input channels (C_in / group of them per output channel, C_out a multiple of "
                "group)");
  }
  c.groups = static_cast<int>(group);
  c.in = in;
  // The dilated window in 64 bits (dilation times kernel may pass an int): it must fit the padded
  // image once, or the conv has no output.
  for (const auto& [span, room] : {std::pair{std::int64_t{c.dilation_h} * (c.kernel_h - 1) + 1,
                                             std::int64_t{in.height} + 2 * c.pad_h},
                                   std::pair{std::int64_t{c.dilation_w} * (c.kernel_w - 1) + 1,
                                             std::int64_t{in.width} + 2 * c.pad_w}}) {
    if (span > room) {
      throw Error(r.path + ": " + r.label + ": its window (" + std::to_string(span) +
                      " pixels with its dilation) does not fit the " + std::to_string(in.channels) +
                      " x " + std::to_string(in.height) + " x " + std::to_string(in.width) +
                      " image (padded), so it leaves no output",
                  "the model does not run at this input size; export it with a larger example "
                  "input");
    }
  }
  return c;
}

PoolSpec pool_spec(const onnx::NodeProto& node, const NodeRefusal& r,
                   std::array<int, 2> pad_before) {
  require_explicit_pads(node, r);
  const bool average = node.op_type() == "AveragePool";
  if (int_of(node, "ceil_mode", 0, r) != 0) {
    r.unsupported(
        "ceil_mode = 1 (ceil_mode=True): gradscope's windows end inside the padded "
        "image, as with ceil_mode=False",
        "use ceil_mode=False, padding the input so that the last window fits");
  }
  const std::vector<std::int64_t> dilations = ints(node, "dilations", r);
  if (std::any_of(dilations.begin(), dilations.end(), [](std::int64_t d) { return d != 1; })) {
    r.unsupported("dilations " + list_text(dilations) + "; gradscope's poolings are not dilated",
                  "use dilation=1 in the pooling");
  }
  PoolSpec p;
  p.kind = average ? PoolKind::kAverage : PoolKind::kMax;
  if (!find(node, "kernel_shape")) r.malformed("has no kernel_shape (a required attribute)");
  const std::array<int, 2> kernel = pair_of(node, "kernel_shape", {1, 1}, 1, r);
  const std::array<int, 2> stride = pair_of(node, "strides", {1, 1}, 1, r);
  const std::array<int, 2> pad = symmetric_pads(node, r);
  if (average && (pad[0] > 0 || pad[1] > 0) && int_of(node, "count_include_pad", 0, r) == 0) {
    r.unsupported(
        "count_include_pad = 0 with padding (count_include_pad=False): gradscope's "
        "average pooling divides by the whole window, padded zeros included",
        "use AvgPool2d(count_include_pad=True), torch's default");
  }
  if ((pad_before[0] > 0 || pad_before[1] > 0) && (pad[0] > 0 || pad[1] > 0)) {
    r.unsupported("padding both in a Pad before it and in its own pads",
                  "pad in one place (AvgPool2d(padding=p))");
  }
  p.kernel_h = kernel[0];
  p.kernel_w = kernel[1];
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_h = pad[0] + pad_before[0];
  p.pad_w = pad[1] + pad_before[1];
  return p;
}

std::array<int, 2> pad_amounts(const std::vector<double>& pads, const NodeRefusal& r) {
  if (pads.size() != 8) {
    r.unsupported("a Pad is read only on an (N, C, H, W) image, with 8 pads; this one has " +
                  std::to_string(pads.size()));
  }
  for (double x : pads) {
    if (!(x >= 0 && x <= spec_limits::kMaxWidth) || x != std::trunc(x)) {
      r.unsupported("pads of " + std::to_string(x) +
                    "; a Pad is read only as zero padding of whole pixels (negative pads crop)");
    }
  }
  if (pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0) {
    r.unsupported("a Pad of the batch or channel axis; gradscope pads height and width only");
  }
  if (pads[2] != pads[6] || pads[3] != pads[7]) {
    r.unsupported("asymmetric padding (height " + std::to_string(int(pads[2])) + " before, " +
                      std::to_string(int(pads[6])) + " after; width " +
                      std::to_string(int(pads[3])) + " before, " + std::to_string(int(pads[7])) +
                      " after); gradscope pads both sides alike",
                  "pad symmetrically (AvgPool2d(padding=p))");
  }
  return {static_cast<int>(pads[2]), static_cast<int>(pads[3])};
}

Eigen::MatrixXd conv_matrix(const std::vector<std::int64_t>& dims,
                            const std::vector<double>& data) {
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto rows = static_cast<Eigen::Index>(dims[0]);
  const auto cols = static_cast<Eigen::Index>(dims[1] * dims[2] * dims[3]);
  return Eigen::Map<const RowMajor>(data.data(), rows, cols);
}

}  // namespace gradscope::onnx_conv
