// The activation step y = phi(h) with its statistics, shared by the activation op (h = its input)
// and the dense op (h = W x + b, computed a block of rows at a time in the same task).
#pragma once

#include <functional>

#include "core/ops/op.hpp"
#include "core/tasks.hpp"

namespace gradscope::ops {

// Fills h, sized (rows.size, batch), with the pre-activation's rows `rows`.
template <class Scalar>
using PreactRows = std::function<void(Range rows, Mat<Scalar>& h)>;

// y = phi(h) into cache.out (sized (width, batch)), h made by preact_rows a block of rows a task;
// keeps phi'(h) in cache.slope when a.keep and y does not determine it; statistics into fs unless
// it is null.
template <class Scalar>
void activation_rows_forward(const ForwardArgs<Scalar>& a, const ActivationSpec& act,
                             const PreactRows<Scalar>& preact_rows, OpCache<Scalar>& cache,
                             ForwardStats* fs);

// g = dL/dy / 2^exp2 (width, batch) becomes delta = dL/dh / 2^exp2 in place; its statistics go to
// report.stats (and report.dpreact) and are returned.
template <class Scalar>
GradPartial activation_rows_backward(const BackwardArgs<Scalar>& a, const ActivationSpec& act,
                                     Mat<Scalar>& g, std::int64_t exp2,
                                     const BackwardReport& report);

}  // namespace gradscope::ops
