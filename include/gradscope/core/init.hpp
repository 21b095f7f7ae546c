// Weight and bias initialisation schemes, each generated from the portable counter-based RNG so
// that layer l's parameters depend only on (seed, l, shape).
#pragma once

#include <Eigen/Core>
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace gradscope {

enum class Init : int {
  kZeros,
  kNormal,
  kUniform,
  kXavierNormal,
  kXavierUniform,
  kHeNormal,
  kHeUniform,
  kLecunNormal,
  kLecunUniform,
  kOrthogonal,
  kTorchDefault,
  kVariance,
  kDeltaOrthogonal,  // convolutions only: an orthogonal matrix at the kernel's centre tap
};
inline constexpr int kInitCount = 13;

enum class FanMode : int { kFanIn, kFanOut };

struct InitInfo {
  Init kind;
  std::string_view name;         // config name
  std::string_view description;  // one line for `gradscope list`, with the resulting std
  std::string_view citation;     // the paper (or library) that defines it
  std::string_view params;       // parameters it takes besides gain, e.g. "std", "mode", ""
};
const std::array<InitInfo, kInitCount>& init_table();
const InitInfo& init_info(Init kind);
std::optional<Init> init_from_name(std::string_view name);

struct InitSpec {
  Init kind = Init::kHeNormal;
  double gain = 1.0;               // multiplies the scheme's std (every scheme)
  double std = 1.0;                // kNormal
  double limit = 1.0;              // kUniform: U(-limit, limit)
  FanMode mode = FanMode::kFanIn;  // kHeNormal, kHeUniform
  double weight_var = 1.0;         // kVariance: sw2, i.e. Var(W_ij) = gain^2 * weight_var / fan_in
};

// Var(W_ij) the scheme draws from, for a layer with these fans. Orthogonal: gain^2 / max(fan_in,
// fan_out), exactly the mean square entry, since ||gain Q||_F^2 = gain^2 min(out, in).
double init_weight_variance(const InitSpec& spec, int fan_in, int fan_out);

// W is (fan_out x fan_in) = (out x in). Generated in double; float32 networks round it.
// `key` comes from stream_key(seed, layer, StreamPurpose::kWeights).
void init_weights(const InitSpec& spec, std::uint64_t key, Eigen::MatrixXd& W);

// The same draws with the fans given rather than W's shape: a convolution's W is (C_out, C_in /
// groups k_h k_w), while its fans are PyTorch's fan_in = C_in / groups k_h k_w and fan_out =
// C_out k_h k_w.
void init_weights(const InitSpec& spec, std::uint64_t key, Eigen::MatrixXd& W, int fan_in,
                  int fan_out);

// Every scheme but orthogonal draws each entry on its own, so a matrix can be drawn in pieces.
bool init_is_elementwise(Init kind);

// For elementwise schemes: columns [first_col, first_col + cols) of the (fan_out x fan_in)
// matrix init_weights draws, the same values, written column-major to out[0 .. fan_out * cols).
// Lets a float network be generated without a double copy of each whole matrix.
void init_weight_columns(const InitSpec& spec, std::uint64_t key, int fan_out, int fan_in,
                         int first_col, int cols, double* out);

enum class BiasInit : int { kZeros, kConstant, kNormal, kTorchDefault };
inline constexpr int kBiasInitCount = 4;

struct BiasInitInfo {
  BiasInit kind;
  std::string_view name;
  std::string_view description;
  std::string_view params;
};
const std::array<BiasInitInfo, kBiasInitCount>& bias_init_table();
std::optional<BiasInit> bias_init_from_name(std::string_view name);

struct BiasInitSpec {
  BiasInit kind = BiasInit::kZeros;
  double value = 0.0;  // kConstant
  double std = 1.0;    // kNormal
};

// E[b_i^2], the sb2 of mean-field theory (constant: value^2; normal: std^2;
// torch_default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) gives 1 / (3 fan_in)).
double bias_second_moment(const BiasInitSpec& spec, int fan_in);

// b has `width` entries. `key` comes from stream_key(seed, layer, StreamPurpose::kBias).
void init_bias(const BiasInitSpec& spec, int fan_in, std::uint64_t key, Eigen::VectorXd& b);

}  // namespace gradscope
