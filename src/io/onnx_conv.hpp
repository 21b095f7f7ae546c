// The attributes of ONNX's image ops (Conv, MaxPool, AveragePool, a Pad before an AveragePool) as
// gradscope's ConvSpec and PoolSpec, and a Conv's weight as the conv op's matrix. The graph walk
// (onnx_import.cpp) decides which nodes these are; this reads one node and refuses what
// gradscope's convolutions and poolings cannot express, naming the node and the attribute.
#pragma once

#include <onnx/onnx_pb.h>

#include <Eigen/Core>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/spec.hpp"

namespace gradscope::onnx_conv {

// How the reader of one node refuses it, in the words of the rest of the ONNX reader: `path`
// names the file, `label` the node ("node 'c1' (Conv)"), `supported` lists the ops read.
struct NodeRefusal {
  std::string path;
  std::string label;
  std::string op;
  std::string_view supported;
  // "unsupported ONNX op 'Conv' at node ...: why; supported: ...".
  [[noreturn]] void unsupported(const std::string& why, const std::string& hint = {}) const;
  // A file no exporter writes (an attribute of the wrong type, a weight of the wrong rank).
  [[noreturn]] void malformed(const std::string& what) const;
};

// Conv over `in` with a weight of shape `weight_dims` (C_out, C_in / group, kernel_h, kernel_w):
// kernel_shape, strides, pads (symmetric), dilations and group; auto_pad NOTSET only. The bias
// flag and the activation are the caller's.
ConvSpec conv_spec(const onnx::NodeProto& node, const std::vector<std::int64_t>& weight_dims,
                   const ImageShape& in, const NodeRefusal& refusal);

// MaxPool or AveragePool: kernel_shape, strides (ONNX's default 1), pads (symmetric); ceil_mode
// 0 and dilations 1 only; an AveragePool with padding counts the padded zeros
// (count_include_pad = 1, torch's default). `pad_before` is the (h, w) padding of a Pad node
// torch writes before an AveragePool (AvgPool2d(padding=p) at opset 17): it counts as padding.
PoolSpec pool_spec(const onnx::NodeProto& node, const NodeRefusal& refusal,
                   std::array<int, 2> pad_before = {0, 0});

// The (h, w) zero padding of a constant-mode Pad of an NCHW tensor, from its 8 pads (begin of
// N, C, H, W, then their ends): on H and W only, symmetric.
std::array<int, 2> pad_amounts(const std::vector<double>& pads, const NodeRefusal& refusal);

// A Conv weight (C_out, C_in / group, kh, kw), row-major, as the conv op's
// (C_out, C_in / group kh kw) matrix: the same order of values.
Eigen::MatrixXd conv_matrix(const std::vector<std::int64_t>& dims, const std::vector<double>& data);

}  // namespace gradscope::onnx_conv
