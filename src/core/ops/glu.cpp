// Interim: the glu kernels land in the next commit.
#include "core/ops/op.hpp"
#include "gradscope/core/error.hpp"

namespace gradscope::ops {

template <class Scalar>
void glu_forward(const ForwardArgs<Scalar>&, OpCache<Scalar>&, ForwardStats*) {
  throw contract_error("glu is not built yet");
}
template <class Scalar>
GradPartial glu_backward(const BackwardArgs<Scalar>&, ScaledGrad<Scalar>&, const BackwardReport&) {
  throw contract_error("glu is not built yet");
}
template void glu_forward<float>(const ForwardArgs<float>&, OpCache<float>&, ForwardStats*);
template void glu_forward<double>(const ForwardArgs<double>&, OpCache<double>&, ForwardStats*);
template GradPartial glu_backward<float>(const BackwardArgs<float>&, ScaledGrad<float>&, const BackwardReport&);
template GradPartial glu_backward<double>(const BackwardArgs<double>&, ScaledGrad<double>&, const BackwardReport&);

}  // namespace gradscope::ops
