// The memory plan of a pass, apart from the ops: which value each op reads, which values the
// forward pass keeps, and the segments the backward pass computes again from their checkpoints.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <vector>

#include "gradscope/core/network.hpp"

namespace gradscope::detail {

// Values are named by the op that produces them; ops.size() names the input.
struct CheckpointPlan {
  std::vector<std::size_t> producer;       // per op: the value entering it
  std::vector<std::size_t> skip_producer;  // per residual end: the value its skip carries
  std::vector<std::size_t> last_use;       // per value: the last op of the forward reading it
  // Per value: the dense op whose Gram gives its correlation (ops.size(): none).
  std::vector<std::size_t> gram_owner;
  // Per residual begin: the op whose dL/d(input) statistic it completes (ops.size(): none).
  std::vector<std::size_t> completes;
  std::vector<std::size_t> starts;  // segment starts, ascending
  std::size_t cached_from = 0;      // the forward pass keeps ops from here on
  bool checkpointed = false;
  std::vector<char> retained;  // per value: a checkpoint some later segment starts from
};

// The plan for net's ops on a batch of `batch` examples of width input_width, under
// options.checkpoint_every and options.kept_from (network.hpp's PassOptions).
template <class Scalar>
CheckpointPlan plan_checkpoints(const Network<Scalar>& net, Eigen::Index input_width,
                                Eigen::Index batch, const PassOptions& options);

}  // namespace gradscope::detail
