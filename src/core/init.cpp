// Weight and bias initialisation: the registry of schemes, the variance each one draws from, and
// the generators, all fed by the counter-based streams of rng.hpp.
#include "gradscope/core/init.hpp"

#include <Eigen/QR>
#include <algorithm>
#include <cmath>

#include "gradscope/core/rng.hpp"

namespace gradscope {
namespace {

// One row per scheme, in enum order (checked below). W is (fan_out x fan_in).
constexpr std::array<InitInfo, kInitCount> kInits{{
    // W = 0: every unit computes the same thing; a baseline for showing a dead network.
    {Init::kZeros, "zeros", "W = 0 (all units identical; a baseline, not a usable init)", "", ""},
    // N(0, (gain std)^2): the plain Gaussian, scale set by hand.
    {Init::kNormal, "normal", "N(0, s^2), s = gain * std", "", "std"},
    // U(-gain limit, gain limit): the plain uniform, scale set by hand.
    {Init::kUniform, "uniform", "U(-b, b), b = gain * limit; s = b / sqrt(3)", "", "limit"},
    // Glorot & Bengio 2010: Var = 2 / (fan_in + fan_out) balances the forward and backward
    // variance for a linear (or tanh near 0) network.
    {Init::kXavierNormal, "xavier_normal", "N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))",
     "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural "
     "networks (AISTATS)",
     ""},
    // Glorot & Bengio 2010, eq. 16: U(-b, b) with b = sqrt(6 / (fan_in + fan_out)).
    {Init::kXavierUniform, "xavier_uniform",
     "U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)); s = gain * sqrt(2 / (fan_in + fan_out))",
     "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural "
     "networks (AISTATS)",
     ""},
    // He et al. 2015: Var = 2 / fan keeps the second moment constant through ReLU layers.
    {Init::kHeNormal, "he_normal", "N(0, s^2), s = gain * sqrt(2 / fan), fan = fan_in or fan_out",
     "He, Zhang, Ren & Sun 2015, Delving deep into rectifiers: surpassing human-level performance "
     "on ImageNet classification (ICCV)",
     "mode"},
    // He et al. 2015, uniform form: b = sqrt(6 / fan) gives the same variance 2 / fan.
    {Init::kHeUniform, "he_uniform",
     "U(-b, b), b = gain * sqrt(6 / fan), fan = fan_in or fan_out; s = gain * sqrt(2 / fan)",
     "He, Zhang, Ren & Sun 2015, Delving deep into rectifiers: surpassing human-level performance "
     "on ImageNet classification (ICCV)",
     "mode"},
    // LeCun et al. 1998, section 4.6: Var = 1 / fan_in keeps unit variance for a linear layer.
    {Init::kLecunNormal, "lecun_normal", "N(0, s^2), s = gain * sqrt(1 / fan_in)",
     "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp (Neural Networks: Tricks of the "
     "Trade)",
     ""},
    // LeCun et al. 1998, uniform form: b = sqrt(3 / fan_in) gives the variance 1 / fan_in.
    {Init::kLecunUniform, "lecun_uniform",
     "U(-b, b), b = gain * sqrt(3 / fan_in); s = gain * sqrt(1 / fan_in)",
     "LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp (Neural Networks: Tricks of the "
     "Trade)",
     ""},
    // Saxe et al. 2014: orthogonal W keeps every singular value 1, so linear depth does not
    // distort the signal; generated as torch.nn.init.orthogonal_.
    {Init::kOrthogonal, "orthogonal",
     "gain * (semi-)orthogonal Q from the QR of a Gaussian matrix; s = gain / sqrt(max(fan_in, "
     "fan_out))",
     "Saxe, McClelland & Ganguli 2014, Exact solutions to the nonlinear dynamics of learning in "
     "deep linear neural networks (ICLR)",
     ""},
    // PyTorch nn.Linear.reset_parameters: kaiming_uniform_(a = sqrt(5)), whose bound
    // gain(a) sqrt(3 / fan_in) with gain(a)^2 = 2 / (1 + a^2) is 1 / sqrt(fan_in).
    {Init::kTorchDefault, "torch_default",
     "U(-b, b), b = gain / sqrt(fan_in); s = gain / sqrt(3 fan_in)",
     "PyTorch nn.Linear.reset_parameters (kaiming_uniform_ with a = sqrt(5))", ""},
    // Poole et al. 2016, Schoenholz et al. 2017: Var = sw2 / fan_in, the weight variance of
    // mean-field theory, to place a network on or off the edge of chaos.
    {Init::kVariance, "variance", "N(0, s^2), s = gain * sqrt(weight_var / fan_in)",
     "Poole et al. 2016, Exponential expressivity in deep neural networks through transient chaos "
     "(NeurIPS); Schoenholz et al. 2017, Deep information propagation (ICLR)",
     "weight_var"},
    // Xiao et al. 2018: a convolution whose kernel is 0 but at its centre tap, where it is a
    // (semi-)orthogonal C_out x C_in / groups matrix, is an orthogonal map of each position:
    // with tanh at the critical point every singular value of a deep CNN's Jacobian stays near 1.
    {Init::kDeltaOrthogonal, "delta_orthogonal",
     "conv only: W[:, :, k_h / 2, k_w / 2] = gain * (semi-)orthogonal Q, 0 at every other tap; s "
     "= gain / sqrt(max(fan_in, fan_out))",
     "Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington 2018, Dynamical isometry and a mean "
     "field theory of CNNs: how to train 10,000-layer vanilla convolutional neural networks (ICML)",
     ""},
}};
static_assert(kInits.size() == static_cast<std::size_t>(kInitCount));

constexpr bool inits_in_enum_order() {
  for (std::size_t i = 0; i < kInits.size(); ++i) {
    if (static_cast<std::size_t>(kInits[i].kind) != i) return false;
  }
  return true;
}
static_assert(inits_in_enum_order(), "init_table() is indexed by static_cast<int>(Init)");

constexpr std::array<BiasInitInfo, kBiasInitCount> kBiasInits{{
    {BiasInit::kZeros, "zeros", "b = 0", ""},
    {BiasInit::kConstant, "constant", "b = value", "value"},
    {BiasInit::kNormal, "normal", "N(0, std^2)", "std"},
    // PyTorch nn.Linear.reset_parameters draws the bias from the same bound as its weights.
    {BiasInit::kTorchDefault, "torch_default",
     "U(-b, b), b = 1 / sqrt(fan_in) (PyTorch nn.Linear.reset_parameters)", ""},
}};
static_assert(kBiasInits.size() == static_cast<std::size_t>(kBiasInitCount));

constexpr bool bias_inits_in_enum_order() {
  for (std::size_t i = 0; i < kBiasInits.size(); ++i) {
    if (static_cast<std::size_t>(kBiasInits[i].kind) != i) return false;
  }
  return true;
}
static_assert(bias_inits_in_enum_order(), "bias_init_table() is indexed by BiasInit");

int he_fan(const InitSpec& spec, int fan_in, int fan_out) {
  return spec.mode == FanMode::kFanIn ? fan_in : fan_out;
}

// Standard deviation of the Gaussian schemes, gain included.
double normal_std(const InitSpec& spec, int fan_in, int fan_out) {
  const double g = spec.gain;
  switch (spec.kind) {
    case Init::kNormal:
      return g * spec.std;
    case Init::kXavierNormal:
      return g * std::sqrt(2.0 / (fan_in + fan_out));
    case Init::kHeNormal:
      return g * std::sqrt(2.0 / he_fan(spec, fan_in, fan_out));
    case Init::kLecunNormal:
      return g * std::sqrt(1.0 / fan_in);
    case Init::kVariance:
      return g * std::sqrt(spec.weight_var / fan_in);
    default:
      return 0.0;
  }
}

// Half-width b of the uniform schemes U(-b, b), gain included.
double uniform_bound(const InitSpec& spec, int fan_in, int fan_out) {
  const double g = spec.gain;
  switch (spec.kind) {
    case Init::kUniform:
      return g * spec.limit;
    case Init::kXavierUniform:
      return g * std::sqrt(6.0 / (fan_in + fan_out));
    case Init::kHeUniform:
      return g * std::sqrt(6.0 / he_fan(spec, fan_in, fan_out));
    case Init::kLecunUniform:
      return g * std::sqrt(3.0 / fan_in);
    case Init::kTorchDefault:
      return g / std::sqrt(static_cast<double>(fan_in));
    default:
      return 0.0;
  }
}

bool is_normal_scheme(Init kind) {
  return kind == Init::kNormal || kind == Init::kXavierNormal || kind == Init::kHeNormal ||
         kind == Init::kLecunNormal || kind == Init::kVariance;
}

// As torch.nn.init.orthogonal_: A (max x min) Gaussian, A = QR, Q's columns multiplied by
// sign(diag R) so that the factorisation is the unique one with a positive diagonal (a Haar
// sample, independent of the QR algorithm's sign choices), transposed when W is wide. Draw
// order: A(r, c) is normal number r + c * max(out, in) of the stream (column-major A).
void init_orthogonal(double gain, std::uint64_t key, Eigen::MatrixXd& W) {
  const Eigen::Index out = W.rows();
  const Eigen::Index in = W.cols();
  const Eigen::Index rows = std::max(out, in);
  const Eigen::Index cols = std::min(out, in);
  Eigen::MatrixXd A(rows, cols);
  fill_normal(key, 0, static_cast<std::uint64_t>(A.size()), A.data());
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(A);
  Eigen::MatrixXd Q = qr.householderQ() * Eigen::MatrixXd::Identity(rows, cols);  // thin Q
  for (Eigen::Index c = 0; c < cols; ++c) {
    // A zero diagonal has probability 0; it keeps its column as is (torch would zero it).
    const double scale = qr.matrixQR()(c, c) < 0.0 ? -gain : gain;
    Q.col(c) *= scale;
  }
  if (out < in) {
    W = Q.transpose();
  } else {
    W = Q;
  }
}

}  // namespace

const std::array<InitInfo, kInitCount>& init_table() { return kInits; }

const InitInfo& init_info(Init kind) { return kInits[static_cast<std::size_t>(kind)]; }

std::optional<Init> init_from_name(std::string_view name) {
  for (const InitInfo& info : kInits) {
    if (info.name == name) return info.kind;
  }
  return std::nullopt;
}

double init_weight_variance(const InitSpec& spec, int fan_in, int fan_out) {
  if (spec.kind == Init::kZeros) return 0.0;
  if (spec.kind == Init::kOrthogonal || spec.kind == Init::kDeltaOrthogonal) {
    // (A delta-orthogonal kernel: the same squares at its centre tap, over k_h k_w times the
    // entries and both fans k_h k_w times larger.)
    // gain * Q with orthonormal rows (out <= in) or columns (out >= in) has squared Frobenius
    // norm gain^2 min(out, in), exactly, spread over out * in entries:
    // gain^2 min / (out in) = gain^2 / max(fan_in, fan_out). Entries have mean zero by symmetry.
    return spec.gain * spec.gain / std::max(fan_in, fan_out);
  }
  if (is_normal_scheme(spec.kind)) {
    const double s = normal_std(spec, fan_in, fan_out);
    return s * s;
  }
  // U(-b, b) has variance b^2 / 3.
  const double b = uniform_bound(spec, fan_in, fan_out);
  return b * b / 3.0;
}

bool init_is_elementwise(Init kind) {
  return kind != Init::kOrthogonal && kind != Init::kDeltaOrthogonal;
}

void init_weight_columns(const InitSpec& spec, std::uint64_t key, int fan_out, int fan_in,
                         int first_col, int cols, double* out) {
  const auto n = static_cast<std::uint64_t>(fan_out) * static_cast<std::uint64_t>(cols);
  // Column-major: entry (i, j) is number i + j * out of the stream.
  const auto first = static_cast<std::uint64_t>(fan_out) * static_cast<std::uint64_t>(first_col);
  if (n == 0) return;
  if (spec.kind == Init::kZeros) {
    std::fill(out, out + n, 0.0);
  } else if (is_normal_scheme(spec.kind)) {
    fill_normal(key, first, n, out);
    const double s = normal_std(spec, fan_in, fan_out);
    for (std::uint64_t i = 0; i < n; ++i) out[i] *= s;
  } else {
    const double b = uniform_bound(spec, fan_in, fan_out);
    fill_uniform(key, first, n, -b, b, out);
  }
}

void init_weights(const InitSpec& spec, std::uint64_t key, Eigen::MatrixXd& W) {
  const auto fan_out = static_cast<int>(W.rows());
  const auto fan_in = static_cast<int>(W.cols());
  if (W.size() == 0) return;
  // (A delta-orthogonal kernel's centre tap is this orthogonal matrix: network.cpp places it.)
  if (spec.kind == Init::kOrthogonal || spec.kind == Init::kDeltaOrthogonal) {
    init_orthogonal(spec.gain, key, W);
  } else {
    init_weight_columns(spec, key, fan_out, fan_in, 0, fan_in, W.data());
  }
}

void init_weights(const InitSpec& spec, std::uint64_t key, Eigen::MatrixXd& W, int fan_in,
                  int fan_out) {
  if (W.size() == 0) return;
  if (spec.kind == Init::kOrthogonal || spec.kind == Init::kDeltaOrthogonal) {
    init_orthogonal(spec.gain, key, W);
    return;
  }
  // The draws of init_weight_columns (entry (i, j) is number i + j * rows of the stream), scaled
  // for the given fans.
  const auto n = static_cast<std::uint64_t>(W.size());
  if (spec.kind == Init::kZeros) {
    W.setZero();
  } else if (is_normal_scheme(spec.kind)) {
    fill_normal(key, 0, n, W.data());
    W *= normal_std(spec, fan_in, fan_out);
  } else {
    const double b = uniform_bound(spec, fan_in, fan_out);
    fill_uniform(key, 0, n, -b, b, W.data());
  }
}

const std::array<BiasInitInfo, kBiasInitCount>& bias_init_table() { return kBiasInits; }

std::optional<BiasInit> bias_init_from_name(std::string_view name) {
  for (const BiasInitInfo& info : kBiasInits) {
    if (info.name == name) return info.kind;
  }
  return std::nullopt;
}

double bias_second_moment(const BiasInitSpec& spec, int fan_in) {
  switch (spec.kind) {
    case BiasInit::kZeros:
      return 0.0;
    case BiasInit::kConstant:
      return spec.value * spec.value;
    case BiasInit::kNormal:
      return spec.std * spec.std;
    case BiasInit::kTorchDefault:
      // U(-b, b) with b^2 = 1 / fan_in has second moment b^2 / 3.
      return 1.0 / (3.0 * fan_in);
  }
  return 0.0;
}

void init_bias(const BiasInitSpec& spec, int fan_in, std::uint64_t key, Eigen::VectorXd& b) {
  const auto n = static_cast<std::uint64_t>(b.size());
  switch (spec.kind) {
    case BiasInit::kZeros:
      b.setZero();
      break;
    case BiasInit::kConstant:
      b.setConstant(spec.value);
      break;
    case BiasInit::kNormal:
      fill_normal(key, 0, n, b.data());
      b *= spec.std;
      break;
    case BiasInit::kTorchDefault: {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      fill_uniform(key, 0, n, -bound, bound, b.data());
      break;
    }
  }
}

}  // namespace gradscope
