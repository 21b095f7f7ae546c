// Normalisation kernels (batch, layer and RMS norm) in training mode with gamma = 1, beta = 0:
// forward, backward and the parameter gradients, cut into blocks so the caller can parallelise.
#pragma once

#include <Eigen/Core>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// Conventions shared by every kernel here.
//  - Shapes are (width, batch), one column per example. batch_norm normalises each unit (row)
//    over the batch; layer_norm and rms_norm normalise each example (column) over the units.
//  - A kernel may be given any block of the layer's matrices that holds whole normalisation
//    groups: a range of rows for batch_norm, a range of columns for layer_norm and rms_norm
//    (norm_blocks_are_columns). Each group's result depends only on that group's entries, computed
//    in a fixed order, so a block-wise call is bit-identical to a whole-matrix call.
//  - Inputs and outputs are in the network's precision; every reduction (means, variances, sums)
//    and every per-entry formula is evaluated in double, and the result rounded once to Scalar.
//  - Overflow-safe: a group whose largest |entry| exceeds 2^480 (reachable in double only) is
//    scaled by a power of two first, so finite inputs never give NaN. NaN and Inf inputs
//    propagate, to their own group only.
//  - spec.eps must be finite and > 0 (gradscope::Error, exit code 1 otherwise); shapes must agree
//    (gradscope::Error, exit code 1 otherwise).

// True for layer_norm and rms_norm (blocks are column ranges), false for batch_norm (row ranges).
bool norm_blocks_are_columns(NormKind kind);
// Whether the norm has a shift parameter beta (rms_norm has none).
bool norm_has_beta(NormKind kind);
// The number of rstd entries for an input of this shape: rows for batch_norm, cols otherwise.
Eigen::Index norm_stat_count(NormKind kind, Eigen::Index rows, Eigen::Index cols);

// y = x-hat, which is the output since gamma = 1 and beta = 0, and rstd, the one statistic the
// backward pass needs besides y. Over a group of n entries x_k:
//   batch_norm, layer_norm: mu = mean x_k, var = mean (x_k - mu)^2 (biased, as PyTorch in training
//                           mode), rstd = 1 / sqrt(var + eps), y_k = (x_k - mu) * rstd;
//   rms_norm:               rstd = 1 / sqrt(mean x_k^2 + eps), y_k = x_k * rstd.
// x: (width, batch); y: same shape, may alias x; rstd: norm_stat_count entries.
// The mean and variance are taken about the group's first entry (a shifted two-pass), so a large
// common offset costs no accuracy and a constant group gives y = 0 exactly.
template <class Scalar>
void norm_forward(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& x,
                  Eigen::Ref<Mat<Scalar>> y, Eigen::Ref<Eigen::VectorXd> rstd);

// dx = dL/dx from g = dL/dy, given norm_forward's y and rstd. With means over each group:
//   batch_norm, layer_norm: dx = rstd * (g - mean(g) - y * mean(g * y));
//   rms_norm:               dx = rstd * (g - y * mean(g * y)).
// Exact for eps > 0 (eps is inside rstd and y). dx may alias g (every group's reductions are
// finished before its first write).
template <class Scalar>
void norm_backward(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                   const Eigen::Ref<const Eigen::VectorXd>& rstd,
                   const Eigen::Ref<const Mat<Scalar>>& g, Eigen::Ref<Mat<Scalar>> dx);

// Adds the per-unit parameter gradients of a block of columns (any columns, any kind) into
// dgamma and dbeta, each with y.rows() entries (a over the block's columns, in order):
//   dgamma_i += sum_a g_ia * y_ia;   dbeta_i += sum_a g_ia, except for rms_norm, which has no
//   beta and leaves dbeta untouched (see norm_has_beta).
// gamma and beta are per unit for all three kinds. Merging blocks: for batch_norm (row blocks),
// pass dgamma.segment(first_row, rows) and each block completes its own units. For the
// per-example norms (column blocks), each task accumulates into its own zeroed vectors and the
// caller adds them up in block order: deterministic, fixed by the block layout and never by the
// thread count, but not bit-identical to one whole-matrix call (calling this on consecutive
// blocks into the same vectors is).
template <class Scalar>
void norm_param_grad_sums(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                          const Eigen::Ref<const Mat<Scalar>>& g,
                          Eigen::Ref<Eigen::VectorXd> dgamma, Eigen::Ref<Eigen::VectorXd> dbeta);

// ||dgamma||^2 and ||dbeta||^2 over the whole layer (y, g: (width, batch)), each a fixed-order
// sum over units; dbeta_sq = 0 for rms_norm.
template <class Scalar>
void norm_param_grad_squares(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                             const Eigen::Ref<const Mat<Scalar>>& g, double& dgamma_sq,
                             double& dbeta_sq);
// The same from per-unit gradients already merged (e.g. with norm_param_grad_sums).
void norm_param_grad_squares(const NormSpec& spec, const Eigen::Ref<const Eigen::VectorXd>& dgamma,
                             const Eigen::Ref<const Eigen::VectorXd>& dbeta, double& dgamma_sq,
                             double& dbeta_sq);

}  // namespace gradscope
