// The op tables (op.hpp): one row per OpKind, in the enum's order, checked by size so that a kind
// added to spec.hpp fails to compile until every table knows it.
#include "core/ops/op.hpp"

#include <array>

namespace gradscope::ops {

namespace {

constexpr std::array<OpInfo, kOpKindCount> kOpInfo = {{
    // kind, marker, has_params, input_grad_stat
    {OpKind::kDense, false, true, false},
    {OpKind::kNorm, false, true, true},
    {OpKind::kActivation, false, false, true},
    {OpKind::kDropout, false, false, true},
    {OpKind::kResidualBegin, true, false, false},
    {OpKind::kResidualEnd, false, false, false},
    {OpKind::kAttention, false, true, true},
    {OpKind::kGlu, false, true, true},
    {OpKind::kConv, false, true, false},
    {OpKind::kPool, false, false, true},
    {OpKind::kFlatten, false, false, true},
}};
static_assert(kOpInfo.size() == static_cast<std::size_t>(kOpKindCount));

template <class Scalar>
constexpr std::array<OpKernels<Scalar>, kOpKindCount> kernel_table() {
  return {{
      {OpKind::kDense, &dense_forward<Scalar>, &dense_backward<Scalar>},
      {OpKind::kNorm, &norm_op_forward<Scalar>, &norm_op_backward<Scalar>},
      {OpKind::kActivation, &activation_op_forward<Scalar>, &activation_op_backward<Scalar>},
      {OpKind::kDropout, &dropout_forward<Scalar>, &dropout_backward<Scalar>},
      {OpKind::kResidualBegin, &residual_begin_forward<Scalar>, &residual_begin_backward<Scalar>},
      {OpKind::kResidualEnd, &residual_end_forward<Scalar>, &residual_end_backward<Scalar>},
      {OpKind::kAttention, &attention_forward<Scalar>, &attention_backward<Scalar>},
      {OpKind::kGlu, &glu_forward<Scalar>, &glu_backward<Scalar>},
      {OpKind::kConv, &conv_forward<Scalar>, &conv_backward<Scalar>},
      {OpKind::kPool, &pool_forward<Scalar>, &pool_backward<Scalar>},
      {OpKind::kFlatten, &flatten_forward<Scalar>, &flatten_backward<Scalar>},
  }};
}

}  // namespace

const OpInfo& op_info(OpKind kind) { return kOpInfo[static_cast<std::size_t>(kind)]; }

template <class Scalar>
const OpKernels<Scalar>& op_kernels(OpKind kind) {
  static constexpr std::array<OpKernels<Scalar>, kOpKindCount> kTable = kernel_table<Scalar>();
  return kTable[static_cast<std::size_t>(kind)];
}

template const OpKernels<float>& op_kernels<float>(OpKind);
template const OpKernels<double>& op_kernels<double>(OpKind);

}  // namespace gradscope::ops
