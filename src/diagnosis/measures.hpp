// What the rules and the advice read off a report: the network's shape (which layers are dense,
// hidden, normalised), the input as measured, and the measured quantities the findings test.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "gradscope/core/report.hpp"

namespace gradscope::diagnosis_detail {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// The limits of the half-precision formats mixed-precision training stores gradients and
// activations in: the smallest normal numbers and the largest finite ones.
extern const double kFp16MinNormalLog10;  // 6.10e-5
extern const double kFp16MaxLog10;
extern const double kBf16MinNormalLog10;  // 1.18e-38
extern const double kBf16MaxLog10;
// Entries spread around their rms: keep a decade on each side of it inside the format when
// proposing a loss scale.
inline constexpr double kLossScaleMarginDecades = 1.0;

bool is_bounded(Activation a);
bool same_activation(const ActivationSpec& a, const ActivationSpec& b);
double weight_sw2(const InitSpec& init, int fan_in, int fan_out);

// Facts about the report's network that several rules need.
struct Shape {
  std::vector<std::string> paths;  // config path of each reported layer
  std::vector<int> dense;          // indices (0-based) into report.layers of the dense layers
  std::vector<int> hidden;         // the dense layers but the output one
  bool has_norm = false;
  bool has_batch_norm = false;
  bool has_residual = false;
  bool has_other_ops = false;  // activation or dropout ops
  bool stack_config = false;
  // The hidden layers share one activation, init and bias (a uniform stack).
  bool uniform_hidden = false;
  ActivationSpec hidden_activation{};
  double input_second_moment = 1.0;
  double input_rms = 1.0;
  double input_mean = 0.0;
  double input_std = 1.0;
  double input_correlation = 0.0;  // expected cosine between two input examples
  double grad_scale_log10 = 0.0;   // to the per-example scale of a mean-over-batch loss
  // Per reported layer: the log10 of the pooling ops' fixed share of its gradient's rms relative
  // to the last layer's (pool_gradient_log10_share summed over the pools from it to the one
  // before the last), 0 without pooling. The gradient findings judge rms ratios net of it.
  std::vector<double> pool_share;
  // Per reported layer: inside a residual branch that holds a zero-initialised dense or conv
  // layer (Fixup's last layer, a SkipInit-style branch). Such a branch outputs exactly 0 and
  // passes back exactly 0 below that layer at initialisation, by design: its zeros are not a
  // collapse, nor a vanishing gradient.
  std::vector<char> zero_by_design;
  bool is_zero_by_design(const LayerReport& l) const {
    const auto i = static_cast<std::size_t>(l.index - 1);
    return i < zero_by_design.size() && zero_by_design[i] != 0;
  }
};

Shape shape_of(const Report& r);

double grad_log10(const LayerReport& l);

// What pooling does to the rms of a gradient by its geometry alone: log10 of rms(dL/d input) /
// rms(dL/d output) for output gradients of equal variance, independent across entries. Max
// pooling routes each output's gradient to one input: sqrt(outputs / inputs) (a half for 2x2
// windows of stride 2). Average pooling (count_include_pad) gives input i the sum over the n_i
// windows holding it of g / (k_h k_w): sqrt(sum_i n_i / inputs) / (k_h k_w). Global average
// pooling: 1 / (H W).
double pool_gradient_log10_share(const PoolSpec& pool);

// NaN when the layer has no finite output (its rms is undefined), -inf when it is exactly 0.
double act_log10_rel_input(const LayerReport& l, const Shape& s);

// How far the input is from standardised, in decades: its rms beyond 2 decades of 1, or its mean
// beyond 10 times its standard deviation. At or above 0 the input is a finding.
double input_scale_excess(const Shape& s);

// Layers whose forward statistics mean something: those before the first layer whose forward
// values hold NaN or infinity. Past it every value is computed from non-finite ones.
bool forward_valid(const Report& r, const LayerReport& l);

// A gradient statistic means something where the gradient has no NaN or infinite entry.
bool gradient_valid(const LayerReport& l);

double max_abs_act(const LayerReport& l);

// Decades outside the healthy update band, the worst layer, and the side.
struct UpdateScan {
  double excess = -kInf;
  int layer = 0;
  bool too_large = false;
  double log10_max = -kInf;
  double log10_min = kInf;
  int layer_max = 0;
  int layer_min = 0;
};

UpdateScan update_scan(const Report& r);

// The loss floor (nats) of softmax cross-entropy over C bounded outputs: the best it can do is
// one output at the top of the range and the others at the bottom.
double bounded_output_loss_floor(const Report& r, const Shape& s);

// Each residual of a `layers` network, in order, as the report shows it: at its end.
struct ResidualSite {
  int layer = 0;           // 1-based report index of its end
  bool post_norm = false;  // a norm follows the sum: norm(x + F(x))
  bool pre_norm = false;   // its branch begins with a norm
  double skip = 1.0;
  double scale = 1.0;
  std::string path;        // the residual item's config path
  std::string stack_path;  // the item holding it (its repeat block), "" at the top level
  int repeat = 1;          // that item's repeat
  // Made by the transformer shorthand, whose items all carry the shorthand's own path.
  bool shorthand() const { return !path.empty() && path == stack_path; }
};
std::vector<ResidualSite> residual_sites(const Report& r);

// The mean entropy (nats) of attention rows that weigh their keys uniformly: ln T over T keys,
// and for a causal mask the mean over queries t = 1..T of ln t.
double uniform_attention_entropy(int tokens, bool causal);

const char* format_word(Precision p);
// log10 of the format's largest finite value.
double format_max_log10(Precision p);

}  // namespace gradscope::diagnosis_detail
