// Interim: the attention kernels land in the next commit.
#include "core/ops/op.hpp"
#include "gradscope/core/error.hpp"

namespace gradscope::ops {

template <class Scalar>
void attention_forward(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*) {
  throw contract_error("attention is not built yet");
}
template <class Scalar>
GradPartial attention_backward(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&, const BackwardReport&) {
  throw contract_error("attention is not built yet");
}
template void attention_forward<float>(const ForwardArgs<float>&, OpCache<float>&, ForwardStats*);
template void attention_forward<double>(const ForwardArgs<double>&, OpCache<double>&, ForwardStats*);
template GradPartial attention_backward<float>(const BackwardArgs<float>&, ScaledGrad<float>&, const BackwardReport&);
template GradPartial attention_backward<double>(const BackwardArgs<double>&, ScaledGrad<double>&, const BackwardReport&);

}  // namespace gradscope::ops
