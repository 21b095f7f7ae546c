// The memory plan of a pass (checkpoint.hpp): who reads what, where segments start, what the
// forward pass keeps. Ops never look at it; the pass runner does.
#include "core/checkpoint.hpp"

#include <algorithm>

#include "core/ops/op.hpp"
#include "core/ops/weight_grad.hpp"

namespace gradscope::detail {

namespace {

// The op a residual begin at l reports dL/d(input) for: a norm, activation or dropout op reports
// dL/d(its input); when it opens the branch, its input is the block's input x, and dL/dx is the
// total only once every skip starting at x (the outermost begin of a run of them is the last) has
// added its share.
std::size_t completed_by_begin(const std::vector<OpSpec>& ops, std::size_t l) {
  const std::size_t count = ops.size();
  if (l > 0 && ops[l - 1].kind == OpKind::kResidualBegin) return count;
  std::size_t o = l + 1;
  while (o < count && ops[o].kind == OpKind::kResidualBegin) ++o;
  return o < count && ops::op_info(ops[o].kind).input_grad_stat ? o : count;
}

}  // namespace

template <class Scalar>
CheckpointPlan plan_checkpoints(const Network<Scalar>& net, Eigen::Index input_width,
                                Eigen::Index batch, const PassOptions& options) {
  const std::size_t count = net.ops.size();
  CheckpointPlan plan;
  plan.producer.assign(count, count);
  plan.skip_producer.assign(count, count);
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t j = i;
    while (j > 0 && net.ops[j - 1].kind == OpKind::kResidualBegin) --j;
    plan.producer[i] = j == 0 ? count : j - 1;
  }
  plan.last_use.assign(count + 1, 0);
  for (std::size_t i = 0; i < count; ++i) {
    if (net.ops[i].kind == OpKind::kResidualBegin) continue;
    plan.last_use[plan.producer[i]] = std::max(plan.last_use[plan.producer[i]], i);
    if (net.ops[i].kind == OpKind::kResidualEnd) {
      plan.skip_producer[i] = plan.producer[static_cast<std::size_t>(net.partner[i])];
      plan.last_use[plan.skip_producer[i]] = std::max(plan.last_use[plan.skip_producer[i]], i);
    }
  }
  // The correlation of an op's output comes from the Gram matrix of the first dense op that
  // reads it in the backward pass, when that op forms one; else it is computed in the forward.
  plan.gram_owner.assign(count + 1, count);
  const bool adam = options.optimizer.kind == OptimizerKind::kAdam;
  for (std::size_t l = count; l-- > 0;) {
    if (net.ops[l].kind != OpKind::kDense) continue;
    const std::size_t p = plan.producer[l];
    const Eigen::Index n_in = p == count ? input_width : net.widths[p];
    const bool gram = !adam && ops::use_gram_for_weight_norm(batch, n_in, net.widths[l]);
    if (gram && p < count && plan.gram_owner[p] == count) plan.gram_owner[p] = l;
  }
  // Segments of `every` ops from the start; ops from `plan.cached_from` on are kept from the
  // forward pass (by default the last segment).
  const auto every = static_cast<std::size_t>(std::max(0, options.checkpoint_every));
  plan.checkpointed = every > 0 && every < count;
  plan.starts.assign(1, 0);
  plan.cached_from = 0;
  if (plan.checkpointed) {
    const std::size_t last = (count - 1) / every * every;
    plan.cached_from =
        options.kept_from >= 0 ? std::min(last, static_cast<std::size_t>(options.kept_from)) : last;
    for (std::size_t b = every; b < plan.cached_from; b += every) plan.starts.push_back(b);
    if (plan.cached_from > 0) plan.starts.push_back(plan.cached_from);
    plan.checkpointed = plan.cached_from > 0;
  }
  plan.retained.assign(count + 1, 0);
  for (std::size_t s = 1; s < plan.starts.size(); ++s)
    plan.retained[plan.producer[plan.starts[s]]] = 1;
  for (std::size_t e = 0; e < count; ++e) {
    if (net.ops[e].kind != OpKind::kResidualEnd) continue;
    // A skip open across a segment start is carried by that start's checkpoint.
    const auto begin = static_cast<std::size_t>(net.partner[e]);
    const auto next = std::upper_bound(plan.starts.begin(), plan.starts.end(), begin);
    if (next != plan.starts.end() && *next <= e) plan.retained[plan.skip_producer[e]] = 1;
  }
  plan.completes.assign(count, count);
  for (std::size_t l = 0; l < count; ++l) {
    if (net.ops[l].kind == OpKind::kResidualBegin)
      plan.completes[l] = completed_by_begin(net.ops, l);
  }
  return plan;
}

template CheckpointPlan plan_checkpoints<float>(const Network<float>&, Eigen::Index, Eigen::Index,
                                                const PassOptions&);
template CheckpointPlan plan_checkpoints<double>(const Network<double>&, Eigen::Index, Eigen::Index,
                                                 const PassOptions&);

}  // namespace gradscope::detail
