// The norm of a dense op's weight gradient, ||dL/dW||_F = ||g x^T||_F, without forming dW where the
// Grams are cheaper, and in an exact centred form where the plain products would lose it.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "gradscope/core/network.hpp"
#include "gradscope/core/stats.hpp"

namespace gradscope::ops {

// ---- The weight gradient's norm in the regime gradscope diagnoses.
//
// ||dL/dW||_F = ||g x^T||_F is taken from the two Grams, <x^T x, g^T g>_F, or from dW itself, both
// products in the network's precision. The gradient g is kept near rms 1 by exact rescaling, but
// the layer's input x is the forward value as it is, and two things go wrong with it: in float32
// an x of rms 2e18 overflows x^T x (and a tiny one underflows it) although every value is finite;
// and an input with a large offset per unit, in front of a gradient that sums to about zero over
// the batch (a dense layer before batch norm), cancels digits in both forms. Those cases take the
// exact form (exact_weight_gradient) instead: x / 2^shift = xc + m 1^T, with xc centred and
// |xc| < 1, so that dW / 2^shift = g xc^T + b m^T with b = g 1, the bias gradient.

// <A, B>_F for two symmetric matrices of which only the lower triangles are filled, in double.
template <class Scalar>
double lower_symmetric_dot(const Mat<Scalar>& a, const Mat<Scalar>& b);

// The lower triangle of x^T x, (batch, batch).
template <class Scalar>
void gram_lower(const Mat<Scalar>& x, Mat<Scalar>& out);

// ||d x^T||_F is needed, not d x^T itself: when the batch is small next to the widths,
// <x^T x, d^T d>_F costs batch^2 (n_in + n_out) instead of 2 batch n_in n_out.
inline bool use_gram_for_weight_norm(Eigen::Index batch, Eigen::Index n_in, Eigen::Index n_out) {
  return batch * (n_in + n_out) < 2 * n_in * n_out;
}

// The range of a value (an op's output or the input) that the weight gradient of a dense layer
// reading it needs: its largest |finite entry|, its non-finite entries and its sum of squares.
struct ValueRange {
  double largest = 0.0;
  std::int64_t nonfinite = 0;
  double squares = 0.0;
};

ValueRange range_of(const MomentStats& s);

// Inside [2^-k, 2^k] (or all zero) a value's Gram, x^T x over up to 2^24 units, and g x^T stay
// far inside the format's normal range: k = 30 in float32 (2^84 against 2^128; squares above
// 2^-60 against the smallest normal 2^-126), 250 in float64.
template <class Scalar>
bool plain_weight_grad_range(double largest) {
  constexpr int k = std::is_same_v<Scalar, float> ? 30 : 250;
  return largest == 0.0 || (largest >= std::ldexp(1.0, -k) && largest <= std::ldexp(1.0, k));
}

// Whether the plain products kept dW's digits (see kMaxCancellation in weight_grad.cpp).
bool well_conditioned(double dw_squares, double x_squares, double g_squares, Eigen::Index batch);

// Adam's eps in units of the gradient's scale 2^e (the first step divides by |g| + eps).
double adam_eps_at(double eps, std::int64_t e);

// The norm of a dense layer's weight gradient: the squares of dW's finite entries in units of
// 2^(2 (exp2 + shift)) (exp2: the gradient's), the count of the others, the first Adam step's
// squares, and the correlation of the layer's input when it came from its Gram.
struct WeightGradient {
  SquareSum squares;
  std::int64_t shift = 0;
  double adam = 0.0;
  double correlation = 0.0;
  bool has_correlation = false;
};

// ||dW||, ||dW|| / ||W|| and the first optimizer step's update-to-weight ratio into bs, from dW's
// squares at the gradient's exp2 (dense and conv ops).
void fill_weight_stats(const WeightGradient& dw, std::int64_t exp2, double weight_norm,
                       const OptimizerSpec& optimizer, BackwardStats& bs);

// The weight gradient of g x^T in the exact form: g = dL/dh / 2^exp2 (n_out, batch), x the
// layer's input (n_in, batch) with its range xr. `gram`: through the Grams where everything is
// finite; `adam`: also the first Adam step's squares; `correlation`: also the input's correlation.
template <class Scalar>
WeightGradient exact_weight_gradient(const Mat<Scalar>& g, std::int64_t exp2, const Mat<Scalar>& x,
                                     const ValueRange& xr, bool gram, bool adam, double eps,
                                     bool correlation, ThreadPool& pool);

}  // namespace gradscope::ops
