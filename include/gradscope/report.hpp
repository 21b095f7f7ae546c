// The measurements of one run: one structure that every report writer reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/spec.hpp"

namespace gradscope {

// A non-negative magnitude known through its log10 even where its value is not representable as a
// double (a 2000-layer linear stack's first-layer gradient is 1e-600). `value` is 0 or +inf when
// it underflows or overflows double; `log10` is exact whatever the size. NaN when undefined.
struct Magnitude {
  double value = 0.0;
  double log10 = 0.0;
};
// mantissa * 2^exp2, for mantissa >= 0 (or NaN / inf).
Magnitude magnitude_from_scaled(double mantissa, std::int64_t exp2);
Magnitude magnitude_from_log10(double log10);
// a / b for magnitudes.
Magnitude magnitude_ratio(const Magnitude& a, const Magnitude& b);

// Moments of the finite entries of a (width x batch) matrix, accumulated in double.
struct MomentStats {
  double mean = 0.0;
  double std = 0.0;  // population standard deviation (divide by the count)
  double rms = 0.0;
  double min = 0.0;
  double max = 0.0;
  std::int64_t finite = 0;     // entries the moments are over
  std::int64_t nonfinite = 0;  // NaN and +-Inf entries, excluded from the moments
};

struct ForwardStats {
  MomentStats preact;               // h = W x + b
  MomentStats act;                  // y = phi(h)
  double zero_fraction = 0.0;       // entries of y exactly 0
  double saturated_fraction = 0.0;  // entries with |phi'(h)| < threshold * max |phi'|
  std::int64_t dead_units = 0;      // units with phi'(h) == 0 for every example
  double dead_fraction = 0.0;
  std::int64_t saturated_units = 0;  // units saturated for every example
  std::int64_t nonfinite = 0;        // preact.nonfinite + act.nonfinite
};

struct BackwardStats {
  // rms over the (width x batch) entries of the gradient at the op's pre-activation: dL/dh for
  // dense layers, dL/d(input) for norm, activation and dropout ops, dL/dF for a residual's branch.
  Magnitude grad_preact_rms;
  Magnitude grad_weight_norm;       // ||dL/dW||_F (norms: ||dL/dgamma||)
  Magnitude grad_bias_norm;         // ||dL/db||_2 (norms: ||dL/dbeta||)
  double weight_norm = 0.0;         // ||W||_F (norms: ||gamma|| = sqrt(width)); representable
  Magnitude grad_weight_to_weight;  // ||dL/dW||_F / ||W||_F
  Magnitude gain;              // rms of this op's gradient over the next op's; last: over dL/dy
  std::int64_t nonfinite = 0;  // NaN and +-Inf entries of the gradient
  // Whether the op has parameters (dense: W and b; norms: gamma and beta). Otherwise the four
  // weight fields above are 0 and not reported.
  bool has_weights = true;
  // ||one optimizer step on W||_F / ||W||_F, when an optimizer is configured (dense layers only).
  bool has_update = false;
  Magnitude update_to_weight;
};

struct LayerReport {
  int index = 0;  // 1-based, input side first, over the reported ops (residual begins are not)
  OpKind kind = OpKind::kDense;
  int width = 0;
  int fan_in = 0;
  ActivationSpec activation{};  // dense and activation ops
  NormSpec norm{};              // norm ops
  double dropout = 0.0;         // dropout ops
  ResidualSpec residual{};      // residual ends
  InitSpec init{};
  BiasInitSpec bias{};
  ForwardStats forward;
  BackwardStats backward;
};

struct MemoryEstimate {
  std::int64_t weights_bytes = 0;  // the parameters in the network's precision
  std::int64_t cache_bytes = 0;    // what the backward pass must keep (activations, derivatives)
  std::int64_t work_bytes = 0;     // buffers of the pass itself
  // Scratch each worker thread needs besides; not part of the reported total, which must not
  // depend on the thread count, but counted when a run is checked against the memory it has.
  std::int64_t per_thread_bytes = 0;
  std::int64_t total_bytes() const { return weights_bytes + cache_bytes + work_bytes; }
};

struct Summary {
  double log10_grad_ratio_first_to_last = 0.0;  // log10 rms(dL/dh^1) - log10 rms(dL/dh^L)
  double mean_log10_gain = 0.0;                 // the above / (L - 1); 0 when L == 1
  std::int64_t dead_units = 0;
  std::int64_t saturated_units = 0;
  double saturated_fraction = 0.0;    // over every activation entry of the network
  std::vector<int> nonfinite_layers;  // 1-based indices of layers with any non-finite value
};

struct Report {
  RunSpec spec;
  double loss = 0.0;  // the loss value; for the probe, sum over the batch of <probe, y>
  std::int64_t parameters = 0;
  MemoryEstimate memory;
  Magnitude output_grad_rms;  // rms of the probe dL/dy at the output
  std::vector<LayerReport> layers;
  Summary summary;
};

}  // namespace gradscope
