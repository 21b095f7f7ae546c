// libFuzzer target for parse_onnx: any bytes either give a model that keeps the importer's
// promises (a spec the config reader's rules accept, one weight matrix per dense op of the right
// shape, finite values) or a gradscope::Error. A crash, a sanitizer report, an abort (protobuf's
// own bounds checks included) or any other exception is a finding.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/core/validate.hpp"
#include "gradscope/io/onnx_import.hpp"

namespace {

using gradscope_fuzz::require;

gradscope::RunSpec defaults() {
  gradscope::RunSpec spec;
  spec.name = "fuzz";
  spec.input.batch = 8;
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const gradscope_fuzz::AllocationLimit limit(size);
  gradscope::OnnxModel m;
  try {
    m = gradscope::parse_onnx(bytes, "dir/fuzz.onnx", defaults());
  } catch (const gradscope::Error& e) {
    require(e.code() == gradscope::ExitCode::kUsage, "an Error other than exit code 2");
    return 0;  // the expected answer to bad bytes
  }

  require(!gradscope::find_spec_problem(m.spec), "the spec breaks a rule of the config reader");
  const std::vector<gradscope::OpSpec> ops = gradscope::expand_ops(m.spec);
  require(!ops.empty(), "a model without ops");
  require(m.weights.weight.size() == ops.size() && m.weights.bias.size() == ops.size(),
          "not one weight and one bias slot per op");
  const std::vector<int> widths = gradscope::op_widths(m.spec, ops);
  for (std::size_t k = 0; k < ops.size(); ++k) {
    const int n_in = k == 0 ? m.spec.input.width : widths[k - 1];  // the width entering op k
    const Eigen::MatrixXd& w = m.weights.weight[k];
    const Eigen::VectorXd& b = m.weights.bias[k];
    require(w.allFinite() && b.allFinite(), "a NaN or Inf weight was returned");
    if (ops[k].kind == gradscope::OpKind::kNorm) {
      // Trained gamma (n, 1) and beta (n), or neither (gamma = 1, beta = 0).
      require(w.size() == 0 ? b.size() == 0 : w.rows() == n_in && w.cols() == 1 && b.size() == n_in,
              "a norm's gamma or beta of the wrong shape");
      continue;
    }
    if (ops[k].kind == gradscope::OpKind::kAttention) {
      // [Wq; Wk; Wv; Wo] (4d, d) and [bq; bk; bv; bo] or none.
      require(w.rows() == 4 * n_in && w.cols() == n_in && (b.size() == 0 || b.size() == 4 * n_in) &&
                  (b.size() > 0) == ops[k].attention.bias,
              "attention weights of the wrong shape");
      continue;
    }
    if (ops[k].kind == gradscope::OpKind::kConv) {
      // (C_out, C_in / groups kh kw) and a bias of C_out exactly when the conv has one.
      const gradscope::ConvSpec& c = ops[k].conv;
      require(
          w.rows() == c.channels && w.cols() == c.fan_in() && b.size() == (c.bias ? c.channels : 0),
          "conv weights of the wrong shape");
      continue;
    }
    if (ops[k].kind == gradscope::OpKind::kResidualEnd && ops[k].residual.conv_projection()) {
      // The learned projection: the skip path's 1x1 conv (C_out, C_in), no bias.
      require(w.rows() == ops[k].image.channels &&
                  w.cols() == ops[k].residual.skip_image.channels && b.size() == 0,
              "a learned projection of the wrong shape");
      continue;
    }
    if (ops[k].kind != gradscope::OpKind::kDense) {
      require(w.size() == 0, "weights for an op that has none");
      continue;
    }
    const Eigen::MatrixXd& W = m.weights.weight[k];
    require(W.rows() == widths[k] && W.cols() == n_in, "a weight of the wrong shape");
    require(m.weights.bias[k].size() == W.rows(), "a bias of the wrong size");
    require(W.allFinite() && m.weights.bias[k].allFinite(), "a NaN or Inf weight was returned");
  }
  for (const gradscope::TensorAssignment& a : m.assignments) {
    require(a.layer >= 1 && static_cast<std::size_t>(a.layer) <= ops.size(),
            "an assignment to an op that does not exist");
  }
  return 0;
}
