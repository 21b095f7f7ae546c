// The measurements of one run: one structure that every report writer reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/config_edit.hpp"
#include "gradscope/core/spec.hpp"

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
  MomentStats preact;          // h = W x + b
  MomentStats act;             // y = phi(h)
  double zero_fraction = 0.0;  // entries of y exactly 0
  // Entries with |phi'(h)| < threshold * max |phi'|; NaN (not applicable) where the activation
  // does not saturate (the relu family, see saturates()), with saturated_units 0.
  double saturated_fraction = 0.0;
  std::int64_t dead_units = 0;  // units with phi'(h) == 0 for every example
  double dead_fraction = 0.0;
  std::int64_t saturated_units = 0;  // units saturated for every example
  std::int64_t nonfinite = 0;        // preact.nonfinite + act.nonfinite
  // Mean cosine between the output vectors of pairs of distinct examples, over the first
  // kCorrelationExamples examples of the batch (NaN with fewer than 2, or a zero vector).
  double correlation = 0.0;
  // The distribution of the op's finite output entries y over the whole batch: kActHistogramBins
  // equal bins from act.min to act.max (the last bin closed). Empty when the op has no finite
  // entry; all entries in the first bin when act.min == act.max.
  std::vector<std::int64_t> act_histogram;
  // Sequence inputs (tokens > 1), over each example's T token vectors y_1..y_T of the output:
  // the mean over examples of the mean over pairs t != t' of cos(y_t, y_t') (1: rank collapse;
  // a zero token counts as cosine 0), and the rms of y_t minus its example's mean token.
  bool has_tokens = false;
  double token_mean_cosine = 0.0;
  double token_centered_rms = 0.0;
  // Attention ops: over the rows (example, head, query) of the attention weights P: the mean
  // entropy -sum_k P ln P in nats (ln T' for a uniform row over T' keys), the largest scaled
  // logit over the unmasked entries, and the share of rows whose largest weight exceeds 0.99
  // among the rows that see two keys or more (a causal first row's one weight is always 1).
  bool has_attention = false;
  double attention_entropy = 0.0;
  double attention_max_logit = 0.0;
  double attention_peaked_fraction = 0.0;
  // Image outputs, per channel c over the examples and positions (n, h, w): mu_c = mean y and
  // sigma_c^2 = mean (y - mu_c)^2, each channel's entries all finite. channel_mean_sq is
  // (1/C) sum_c mu_c^2 and channel_var (1/C) sum_c sigma_c^2 over those channels (NaN when none
  // is); channels_nonfinite counts the channels left out. Residual ends also give branch_var, the
  // same average variance of the branch's output F(x) before the skip is added (and before the
  // residual's scale): with these, Brock et al.'s signal-propagation plot.
  bool has_channels = false;
  Magnitude channel_mean_sq;
  Magnitude channel_var;
  std::int64_t channels_nonfinite = 0;
  // Channels whose every entry is exactly 0 over the batch and the positions: a ReLU conv's dead
  // filters (dead_units counts positions).
  std::int64_t zero_channels = 0;
  bool has_branch_var = false;
  Magnitude branch_var;
};
inline constexpr int kActHistogramBins = 40;

// One parameter tensor of an op with several (attention's query, key, value, output; a GLU's
// gate, up, down), each with its own gradient.
struct ParamStats {
  std::string role;                 // "query.weight", "query.bias", "gate.weight", ...
  std::vector<std::int64_t> shape;  // PyTorch's: (out, in) for a weight, (out) for a bias
  double norm = 0.0;                // ||p||, representable
  Magnitude grad_norm;              // ||dL/dp|| over the finite entries (NaN when none is)
  std::int64_t grad_nonfinite = 0;
  bool has_update = false;     // an optimizer is configured
  Magnitude update_to_weight;  // ||one optimizer step on p|| / ||p||
};

struct BackwardStats {
  // rms over the (width x batch) entries of the gradient at the op's pre-activation: dL/dh for
  // dense layers, dL/d(input) for norm, activation and dropout ops, dL/dF for a residual's branch.
  Magnitude grad_preact_rms;
  // Norms over the finite entries (NaN when none is); the non-finite entries are counted apart.
  Magnitude grad_weight_norm;              // ||dL/dW||_F (norms: ||dL/dgamma||)
  Magnitude grad_bias_norm;                // ||dL/db||_2 (norms: ||dL/dbeta||)
  std::int64_t grad_weight_nonfinite = 0;  // NaN and +-Inf entries of dL/dW (dL/dgamma)
  std::int64_t grad_bias_nonfinite = 0;    // NaN and +-Inf entries of dL/db (dL/dbeta)
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
  // Attention and GLU: each tensor on its own (the fields above are over all its weights
  // together); empty for the other ops.
  std::vector<ParamStats> params;
};

// Mean-field theory beside the measurement (THEORY.md). Deviations are measured minus predicted;
// a layer is flagged when one exceeds 3 expected spreads.
struct LayerTheory {
  bool forward = false;   // q, act_second_moment and correlation are predicted
  bool backward = false;  // grad_factor and log10_grad_rel_last are predicted
  std::string reason;     // why a prediction is missing ("no prediction" and what is unknown)
  double q = 0.0;
  double act_second_moment = 0.0;
  double correlation = 0.0;
  double grad_factor = 0.0;  // chi: predicted E[g_l^2] / E[g_{l+1}^2]
  double log10_grad_rel_last = 0.0;
  double log_q_deviation = 0.0;       // ln(measured q / predicted q)
  double log_q_spread = 0.0;          // its expected standard deviation
  double log10_grad_deviation = 0.0;  // measured log10_grad_rel_last - predicted
  double log10_grad_spread = 0.0;     // its expected standard deviation
  double measured_log10_grad_rel_last = 0.0;
  bool flagged = false;
};

// The report's name for a layer's kind: op_kind_name's, but a residual block is reported once, at
// its end, as "residual" (residual begins are not reported).
std::string_view layer_kind_name(OpKind kind);

struct LayerReport {
  int index = 0;  // 1-based, input side first, over the reported ops (residual begins are not)
  OpKind kind = OpKind::kDense;
  int width = 0;
  int fan_in = 0;
  ActivationSpec activation{};  // dense and activation ops
  NormSpec norm{};              // norm ops
  double dropout = 0.0;         // dropout ops
  ResidualSpec residual{};      // residual ends
  AttentionSpec attention{};    // attention ops
  GluSpec glu{};                // GLU ops
  ConvSpec conv{};              // conv ops (its input shape resolved)
  PoolSpec pool{};              // pool ops
  ImageShape image{};           // the output as an image (channels 0: a vector)
  InitSpec init{};
  BiasInitSpec bias{};
  ForwardStats forward;
  BackwardStats backward;
  LayerTheory theory;
};

// Where a run keeps its weights: in memory, or drawn again from the seed when a pass needs them.
enum class WeightStorage { kKept, kRegenerated };

// How a run trades time for memory, and the peak it expects. Loaded weights are always kept.
struct MemoryPlan {
  WeightStorage weights = WeightStorage::kKept;
  int checkpoint_every = 0;         // 0: every activation kept; else ops per recomputed segment
  std::int64_t segments = 0;        // segments the ops are cut into (0: not checkpointed)
  std::int64_t recomputed_ops = 0;  // ops the backward pass runs forward again
  std::int64_t peak_bytes = 0;      // expected peak, without the per-thread scratch
  bool checkpointed() const { return checkpoint_every > 0; }
};

struct MemoryEstimate {
  std::int64_t weights_bytes = 0;  // the parameters in the network's precision
  std::int64_t cache_bytes = 0;    // what the backward pass must keep (activations, derivatives)
  std::int64_t work_bytes = 0;     // buffers of the pass itself
  // Scratch each worker thread needs besides; not part of the reported total, which must not
  // depend on the thread count, but counted when a run is checked against the memory it has.
  std::int64_t per_thread_bytes = 0;
  std::int64_t total_bytes() const { return weights_bytes + cache_bytes + work_bytes; }
  // What every plan keeps besides: each op's statistics and its share of the reports built from
  // them (memory.hpp's estimate_kept_memory). An input file's copies are counted when the plan is
  // chosen but not stated here, so that a run loaded back from its saved weights and input
  // reports the same bytes.
  std::int64_t report_bytes = 0;
  // The whole estimate a report states: the all-in-memory plan and the statistics and report.
  std::int64_t estimate_bytes() const { return total_bytes() + report_bytes; }
  MemoryPlan plan;  // the plan the run used; the fields above are the all-in-memory plan's
};

struct Summary {
  double log10_grad_ratio_first_to_last = 0.0;  // log10 rms(dL/dh^1) - log10 rms(dL/dh^L)
  double mean_log10_gain = 0.0;                 // the above / (L - 1); 0 when L == 1
  std::int64_t dead_units = 0;
  std::int64_t saturated_units = 0;
  // Over every entry of the layers whose activation saturates; NaN when none does.
  double saturated_fraction = 0.0;
  std::vector<int> nonfinite_layers;  // 1-based indices of layers with any non-finite value
  // Where the non-finite values begin: the first layer whose forward values hold NaN or inf; when
  // the forward pass is finite, the layer nearest the output whose gradient does (the backward
  // pass starts at the output). 0 when every value is finite.
  int first_nonfinite_layer = 0;
  bool nonfinite_in_forward = false;  // that layer's forward values are non-finite
  // Forward origin only: the gradient of some layer above it is non-finite too (it always is when
  // the output is, as the backward pass starts from it).
  bool backward_nonfinite_above = false;
  std::vector<int> theory_flagged_layers;  // measured beyond 3 spreads of the prediction
};

// Singular values of the input-output Jacobian at a few examples (stats.jacobian_examples).
struct JacobianStats {
  int examples = 0;
  int singular_values_per_example = 0;  // min(n_L, n_0)
  // Over every singular value of every example, as log10 (exact beyond double's range: the
  // propagated matrix carries a power-of-two scale like the backward pass).
  double log10_max = 0.0;
  double log10_min = 0.0;          // -inf when a Jacobian is singular
  double log10_mean_square = 0.0;  // log10 of the mean of s^2
  double log10_condition = 0.0;    // log10 max / min over examples' own condition numbers: max
  double predicted_log10_mean_square = 0.0;  // mean-field: n_0 E[g_in^2] / min(n_L, n_0)
  bool has_prediction = false;
  std::vector<double> histogram_edges;  // log10 s, 20 + 1 edges (kJacobianHistogramBins)
  std::vector<std::int64_t> histogram_counts;
};

// The averaged partial Jacobian norm (Doshi, He & Gromov 2023) along the network: for the layers
// on the stream (not inside a residual branch), J(l) = (1/N_l) E_x ||dx_l/dx_0||_F^2, estimated by
// forward-mode products with random Gaussian tangents at a few examples, and the law it follows
// with depth: a power law (critical) or an exponential (ordered or chaotic).
enum class ApjnFit : int { kNone, kPowerLaw, kExponential };
std::string_view apjn_fit_name(ApjnFit fit);  // "none", "power_law", "exponential"

struct CriticalityStats {
  std::string reason;       // why there is no measurement (J and the fits empty); "" when measured
  int examples = 0;         // examples of the batch it is averaged over
  int tangents = 0;         // Gaussian tangents per example
  std::vector<int> layers;  // 1-based report indices of the layers on the stream
  std::vector<Magnitude> apjn;   // J at each of them (exact beyond double's range, as log10)
  ApjnFit fit = ApjnFit::kNone;  // the law with the smaller residual sum of squares of ln J
  // Least squares over ln J: ln J = a + b ln l and ln J = a + r l (r per reported layer).
  double power_exponent = 0.0;  // b
  double power_rss = 0.0;
  double exponential_rate = 0.0;  // r: > 0 chaotic (exploding), < 0 ordered (vanishing)
  double exponential_rss = 0.0;
  Magnitude growth;  // J(last) / J(first) over the fitted layers
  // Per entry of `layers`, whether the fits and the growth use it; empty: every layer (a network
  // without residual blocks). With residual blocks, J is fitted where the stream enters each
  // block and where it leaves the last one (after its sum, and a post-norm's norm), so that a
  // post-norm's alternating sum and norm, and a final norm and readout that rescale the stream,
  // do not bend the law.
  std::vector<bool> fitted;
  bool measured() const { return reason.empty() && !apjn.empty(); }
};

// ---- The diagnosis (diagnosis.hpp): what is wrong, where, and what to change.

enum class Severity : int { kInfo, kWarning, kError };
// "healthy" when no finding is a warning or an error, else the worst severity.
enum class Verdict : int { kHealthy, kWarning, kError };

// One measured number behind a finding, and the threshold it crossed (NaN when it is context, not
// a test). `relation` is how value compares with threshold when the finding fires: ">=", "<=", ">"
// or "<".
struct Evidence {
  std::string quantity;  // e.g. "log10_grad_ratio_first_to_last"
  double value = 0.0;
  std::string relation;
  double threshold = 0.0;
  int layer = 0;  // the layer the value is from; 0 for a whole-network value
};

// One config key to set, as `--set PATH=VALUE` would: VALUE is JSON text (null drops a section).
// The diagnosis spells its typed edits (config_edit.hpp) this way for the writers to print.
struct ConfigChange {
  std::string path;
  std::string value;
};

// The effect of an advice, measured by re-running the network with its changes (--check-advice).
struct AdviceCheck {
  std::string metric;  // the finding's problem metric, e.g. "log10_grad_ratio_first_to_last"
  double before = 0.0;
  double after = 0.0;
  bool helped = false;
  Verdict verdict_after = Verdict::kHealthy;
  std::vector<std::string> findings_after;  // "code (severity)" of every finding of the re-run
};

struct Advice {
  std::string text;  // one sentence: what to change and why it helps
  std::vector<ConfigChange> changes;
  std::optional<AdviceCheck> check;  // present after --check-advice
  // The code of the finding it is for (whose metric --check-advice measures): the root it is
  // listed under, or one of that root's consequences.
  std::string addresses;
  // The same changes typed, as --check-advice applies them to the run's spec; `changes` is their
  // spelling. Empty in an advice built by hand (a test's fixture).
  std::vector<ConfigEdit> edits{};
};

struct Finding {
  std::string code;  // stable: vanishing_gradients, dead_units, ... (diagnosis.hpp lists them)
  Severity severity = Severity::kWarning;
  int layer = 0;  // the first layer where it shows (1-based report index); 0: the whole network
  std::vector<Evidence> evidence;
  std::string explanation;  // one sentence in plain words
  std::vector<Advice> advice;
  // Advice that --check-advice showed not to improve the problem: kept for the record, not given.
  std::vector<Advice> rejected_advice;
  // Root causes and their consequences. A root has an empty `cause`; its consequences follow it
  // in Report::findings, name it in `cause`, carry no advice of their own (the root's fixes them)
  // and do not count as separate alarms. A root's severity is the worst of its own and theirs.
  std::string cause;
  std::vector<std::string> consequences;  // a root's: the codes of the findings it explains
};

// One piece of the remedy: a change that addresses one or more root causes.
struct RemedyPiece {
  std::string text;                    // one sentence: what to change and why it helps
  std::vector<ConfigChange> changes;   // its own changes, as an advice would give them
  std::vector<std::string> addresses;  // codes of the root findings it is meant to fix
  std::vector<ConfigEdit> edits{};     // `changes` typed, as for Advice
};

// The remedy re-run as a whole (--check-advice), after dropping the pieces it did not need.
struct RemedyCheck {
  Verdict verdict_before = Verdict::kHealthy;
  Verdict verdict_after = Verdict::kHealthy;
  std::vector<std::string> findings_after;  // "code (severity)" of every finding of the re-run
  std::vector<std::string> dropped;         // text of pieces left out: not needed, or harmful
  std::vector<std::string> added;  // text of pieces the re-run's own diagnosis added to fix more
};

// The smallest set of changes the diagnosis finds that together fix every error and as many
// warnings as it can, each change once, composed so that they apply together (a residual rewrite
// carries the other pieces' activation and init into its layers).
struct Remedy {
  std::vector<RemedyPiece> pieces;
  std::vector<std::string> addresses;      // codes of the root findings it is meant to fix
  std::vector<ConfigChange> changes;       // all pieces at once, in the order to apply them
  std::vector<std::string> not_addressed;  // codes of warnings and errors no piece addresses
  std::optional<RemedyCheck> check;        // after --check-advice
  std::vector<ConfigEdit> edits{};         // `changes` typed, as for Advice
  // For --check-advice's search (not reported): the edits of each subset of the pieces composed
  // together, indexed by the bit mask of the pieces kept (bit k: piece k).
  std::vector<std::vector<ConfigEdit>> compositions;
  std::vector<std::vector<std::string>> composition_texts;  // [mask][k]: piece k's sentence there
};

// Where a run's data came from when not from the seeded generators (--weights, --input,
// --targets): which tensor went to which layer, and what was left aside.
struct TensorAssignment {
  std::string tensor;  // the name in the file
  int layer = 0;       // 1-based report index of the layer it went to
  std::string role;    // "weight", "bias", "projection", "norm_weight", "norm_bias"
  std::vector<std::int64_t> shape;
};
struct ExternalSources {
  std::string weights_file;
  std::vector<TensorAssignment> assignments;
  std::vector<std::string> ignored;  // tensors read but not used, with the reason
  std::string input_file;
  std::string targets_file;
};

// One learned tensor of the network, as PyTorch's named_parameters() lists them: the per-parameter
// view a reviewer compares. Fixed residual projections are not learned and not listed.
struct ParameterReport {
  std::string name;  // the source's name for loaded weights, else "ops.K.weight" (K: op index)
  int layer = 0;     // 1-based report index of the layer it belongs to
  ParamStats stats;  // stats.role: "weight", "bias", "query.weight", ...
};

struct Report {
  RunSpec spec;
  double loss = 0.0;  // the loss value; for the probe, sum over the batch of <probe, y>
  std::int64_t parameters = 0;
  MemoryEstimate memory;
  MomentStats input;          // the input batch's moments, as measured (generated or loaded)
  Magnitude output_grad_rms;  // rms of the probe dL/dy at the output
  std::vector<LayerReport> layers;
  std::vector<ParameterReport> parameter_list;  // every learned tensor, input side first
  Summary summary;
  std::optional<JacobianStats> jacobian;
  // The partial Jacobian norm along depth; every run sets it (with a reason when not measured).
  std::optional<CriticalityStats> criticality;
  Verdict verdict = Verdict::kHealthy;
  // Roots most severe first, then by layer, each followed by its consequences.
  std::vector<Finding> findings;
  std::optional<Remedy> remedy;            // none when no warning or error has a known fix
  std::optional<ExternalSources> sources;  // none when every number was generated from the seed
};

}  // namespace gradscope
