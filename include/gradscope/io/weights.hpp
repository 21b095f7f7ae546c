// Real models' data in a run: tensors from a file assigned to the layers a config describes (in
// the state_dict's natural order), input batches and targets from files, and the run's own data
// as tensors with PyTorch-compatible names for --save-weights.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/tensor_io.hpp"

namespace gradscope {

struct WeightMapping {
  ExternalData data;  // weight and bias filled per op
  std::vector<TensorAssignment> assignments;
  std::vector<std::string> ignored;
};

// Orders the tensors as PyTorch's state_dict does (names compared segment by segment, numbers as
// numbers: "2.weight" before "10.weight"), groups them by module ("layers.3.fc"), and walks the
// config's ops: a dense layer takes the next module with a 2-D weight (n_out, n_in) and its bias
// (zeros when the module has none); attention takes the next four modules (query, key, value,
// output: by name when they are siblings named so, or q_proj/k_proj/v_proj/out_proj, else in
// order), each (d, d), or nn.MultiheadAttention's in_proj_weight (3d, d) and out_proj, and a GLU
// the next three (gate, up (hidden, d); down (d, hidden)); a norm takes a module with 1-D
// weight/bias when one is next (it must be the identity: gamma = 1, beta = 0); a projected
// residual takes a 2-D matrix. Batch norm running statistics are ignored (training mode). Throws
// Error naming the tensor, the layer, the expected and the found shape on any mismatch, and listing
// leftovers.
WeightMapping map_weights(const RunSpec& spec, const std::vector<Tensor>& tensors,
                          const std::string& source);

// A (batch, width) tensor as the (width, batch) matrix the engine takes; with `tokens` > 1 (the
// config's input.tokens), a (batch, tokens, width) tensor as (width, batch * tokens), column
// b * tokens + t. Throws Error naming `source` when it has another rank (a 1-D tensor is one
// example) or its width or token count differs.
Eigen::MatrixXd batch_matrix(const Tensor& t, int width, const std::string& source, int tokens = 1);

// Targets for the spec's loss from a tensor: (batch, outputs) values for mse and sigmoid_bce
// (0/1 for bce), (batch) class indices for softmax_cross_entropy.
LossTargets targets_from_tensor(const Tensor& t, const RunSpec& spec, int output_width,
                                const std::string& source);

// What a run used, as tensors: "ops.K.weight" (n_out, n_in), "ops.K.bias", "ops.K.projection",
// attention's "ops.K.query.weight" (d, d) ... "ops.K.output.weight" (and ".bias" when it has
// biases), a GLU's "ops.K.gate.weight", "ops.K.up.weight" (hidden, d), "ops.K.down.weight"
// (d, hidden), "input" (batch, n_in; (batch, tokens, n_in) for sequences), and "probe",
// "targets" or "labels".
std::vector<Tensor> run_data_tensors(const RunSpec& spec, const RunData& data);

}  // namespace gradscope
