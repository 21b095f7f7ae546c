// The averaged partial Jacobian norm (APJN; Doshi, He & Gromov 2023): how the input's
// perturbations grow or shrink along depth, J(l) = (1/N_l) E_x ||dx_l/dx_0||_F^2, for residual
// and normalised networks where mean-field chi_1 has no closed form. Estimated by forward-mode
// products with random Gaussian tangents u (E[u u^T] = I, so E ||J u||^2 = ||J||_F^2): one pass of
// a few tangent columns gives every layer at once.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/network.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// Examples and tangents per example a run measures. The pass costs about (tangents + 1) *
// examples columns through every dense layer, against 3 * batch for the run's forward and backward
// passes: 36 columns are 9% of a batch of 128 (the shipped residual configs), 5% of 256 (the
// reference job, batch 256, measured 1.31 s against 1.22 s without, on 2 cores). The
// estimate's relative spread is about sqrt(2 / (n_0 * examples * tangents)) for a well-conditioned
// Jacobian (2% at n_0 = 128), well below the decades the finding reads.
inline constexpr int kApjnExamples = 4;
inline constexpr int kApjnTangents = 8;

// Why the APJN cannot be measured on this network ("" when it can): batch norm (an example's output
// depends on the others: no per-example Jacobian). For sequences (tokens > 1) an example is its T
// tokens together: J(l) = (1/(N_l T)) E ||dx_l/dx_0||_F^2 over the whole sequence, through
// attention's mixing of the tokens.
std::string apjn_refusal(const RunSpec& spec);

// Every op's tangent outputs J_l(x_a) u for the inputs' columns: `inputs` (n_0, E T), `tangents`
// (n_0, E T K), column j * K + k being tangent k at input column j (a sequence's tangent k is its
// T columns j * K + k together). Returns, per op of net.ops, its tangent
// output (N_l, E * K) in double, unscaled (residual begins repeat their input's). For tests; the
// run uses partial_jacobian_norms.
template <class Scalar>
std::vector<Eigen::MatrixXd> forward_tangents(const RunSpec& spec, const Network<Scalar>& net,
                                              const Mat<Scalar>& inputs,
                                              const Mat<Scalar>& tangents, ThreadPool& pool);

// J at every reported layer on the stream, from the first `examples` columns of `input` with
// `tangents` seeded tangents each (the run's seed, StreamPurpose::kApjnTangent), and the fits.
// The same bits for any thread count. Refused networks get the reason and nothing else.
template <class Scalar>
CriticalityStats partial_jacobian_norms(const RunSpec& spec, const Network<Scalar>& net,
                                        const Mat<Scalar>& input, ThreadPool& pool,
                                        int examples = kApjnExamples, int tangents = kApjnTangents);

// Fits ln J = a + b ln l and ln J = a + r l by least squares over st.layers / st.apjn (the
// finite, positive values of the entries st.fitted marks, every one when it is empty), picks the
// law with the smaller residual sum of squares, and sets the growth J(last) / J(first) over the
// same layers. Needs 3 layers or more (else fit stays kNone).
void fit_apjn(CriticalityStats& st);

}  // namespace gradscope
