// Activation functions: value and exact derivative side by side, behind one registry that cannot
// drift (adding an activation fails to compile until every table knows it).
#pragma once

#include <Eigen/Core>
#include <array>
#include <optional>
#include <string_view>
#include <vector>

namespace gradscope {

enum class Activation : int {
  kLinear,
  kRelu,
  kLeakyRelu,
  kElu,
  kSelu,
  kGelu,
  kGeluTanh,
  kSilu,
  kMish,
  kSoftplus,
  kSigmoid,
  kTanh,
  kHardTanh,
  kSoftmax,
};
inline constexpr int kActivationCount = 14;

struct ActivationInfo {
  Activation kind;
  std::string_view name;         // the config name, e.g. "leaky_relu"
  std::string_view description;  // one line for `gradscope list`
  std::string_view formula;      // one line of math, e.g. "x if x > 0 else slope * x"
  std::string_view param_name;   // "slope", "alpha", or empty when there is no parameter
  double param_default;          // leaky_relu slope 0.01, elu alpha 1.0; 0 when unused
  bool output_only;              // softmax: couples the units of a layer; hidden use is an error
};

// The registry, indexed by static_cast<int>(Activation).
const std::array<ActivationInfo, kActivationCount>& activation_table();
const ActivationInfo& activation_info(Activation kind);

// Looks a name up; accepts aliases ("swish" -> silu). Case-sensitive.
std::optional<Activation> activation_from_name(std::string_view name);
// Every accepted spelling, aliases included (for "did you mean" suggestions).
std::vector<std::string_view> activation_names_and_aliases();

struct ActivationSpec {
  Activation kind = Activation::kRelu;
  double param = 0.0;  // leaky_relu's slope or elu's alpha; ignored by the others
};
ActivationSpec default_spec(Activation kind);  // param set to the registry default

// sup over x of |phi'(x)| (for softmax, of the diagonal Jacobian entry y(1-y): 1/4).
double max_slope(const ActivationSpec& spec);

// Whether phi saturates: has regions where phi' falls towards 0 (sigmoid's and tanh's tails,
// hard_tanh's clamps, the negative tails of elu, gelu, silu, softplus, ...). The piecewise-linear
// relu family (linear, relu, leaky_relu) does not: its slope takes two values, and relu's flat
// side is exactly its zero output, which the dead-unit statistic measures. Saturation is reported
// only where it means something.
bool saturates(const ActivationSpec& spec);
// Points where phi or phi' is not smooth, for splitting numerical integrals (ReLU: {0}).
std::vector<double> kinks(const ActivationSpec& spec);

// Scalar reference implementations in double. Softmax is not elementwise: these throw for it.
double activation_value(const ActivationSpec& spec, double x);
double activation_derivative(const ActivationSpec& spec, double x);
// phi''(x) where it exists (0 at kinks by convention); used by the theory (depth scale xi_q).
double activation_second_derivative(const ActivationSpec& spec, double x);

// The network's kernels, in the network's precision. Shapes are (width, batch): one column per
// example. y = phi(h); d = phi'(h) elementwise. For softmax (over each column) d holds the
// diagonal of the Jacobian, y * (1 - y), and the backward pass uses activation_backward.
template <class Scalar>
using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;

template <class Scalar>
void activation_forward(const ActivationSpec& spec, const Eigen::Ref<const Mat<Scalar>>& h,
                        Eigen::Ref<Mat<Scalar>> y, Eigen::Ref<Mat<Scalar>> d);

// Whether phi'(h) is a function of y = phi(h) alone, exactly (linear, relu, hard_tanh, leaky_relu
// with slope >= 0): then the backward pass keeps y only, as PyTorch's ReLU does. Smooth kinds
// (sigmoid, tanh, elu, ...) keep phi'(h) itself: y(1 - y) would lose the tails in float.
bool derivative_from_output(const ActivationSpec& spec);

// d = phi'(h) recovered from y = phi(h), bit-identical to activation_forward's d; only for the
// kinds above (throws gradscope::Error, exit code 1, otherwise).
template <class Scalar>
void activation_derivative_from_output(const ActivationSpec& spec,
                                       const Eigen::Ref<const Mat<Scalar>>& y,
                                       Eigen::Ref<Mat<Scalar>> d);

// dh = dL/dh from g = dL/dy. Elementwise kinds: dh = g * d. Softmax: dh = y * (g - sum(g * y)),
// per column. dh may alias g.
template <class Scalar>
void activation_backward(const ActivationSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                         const Eigen::Ref<const Mat<Scalar>>& d,
                         const Eigen::Ref<const Mat<Scalar>>& g, Eigen::Ref<Mat<Scalar>> dh);

}  // namespace gradscope
