// Tests for the convolution and pooling kernels (src/core/ops/conv_kernels.hpp): shapes and their
// validation, every gradient against central differences in double, every output and gradient
// against PyTorch's float64 results (tests/data/conv_reference.bin, written by
// tests/torch/conv_reference.py), float32 against the same within a rounding bound, and the same
// bits whatever the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/ops/conv_kernels.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/rng.hpp"
#include "support/paths.hpp"

namespace gradscope::ops {
namespace {

using MatD = Mat<double>;
using VecD = Vec<double>;

// ---- Inputs -----------------------------------------------------------------------------------

MatD random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t key) {
  MatD m(rows, cols);
  fill_normal(mix64(key), 0, static_cast<std::uint64_t>(m.size()), m.data());
  return m;
}

ConvShape conv_shape(int c_in, int h, int w, int c_out, int kh, int kw, int sh, int sw, int ph,
                     int pw, int dh, int dw, int groups) {
  return {c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, dh, dw, groups};
}

// The shapes the central differences and the thread test run: strides 2, padding, dilation 2,
// groups 2, depthwise (with a channel multiplier), a non-square kernel, pointwise.
struct NamedConv {
  const char* name;
  ConvShape shape;
};
std::vector<NamedConv> conv_shapes() {
  return {{"groups2_dilation2_stride2", conv_shape(4, 6, 5, 4, 3, 2, 2, 1, 1, 1, 2, 1, 2)},
          {"depthwise_stride2_pad1", conv_shape(3, 5, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3)},
          {"dilation2_stride2_pad2", conv_shape(2, 7, 7, 3, 3, 3, 2, 2, 2, 2, 2, 2, 1)},
          {"pointwise", conv_shape(3, 3, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
          {"pointwise_stride2", conv_shape(2, 5, 4, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1)}};
}

// ---- Shapes -----------------------------------------------------------------------------------

TEST(ConvShape, OutputSizeIsPyTorchs) {
  // floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1, as torch.nn.Conv2d documents.
  const ConvShape s = conv_shape(4, 6, 5, 4, 3, 2, 2, 1, 1, 1, 2, 1, 2);
  EXPECT_EQ(s.out_h(), 2);  // (6 + 2 - 4 - 1) / 2 + 1
  EXPECT_EQ(s.out_w(), 6);  // (5 + 2 - 1 - 1) / 1 + 1
  EXPECT_EQ(s.in_rows(), 4 * 6 * 5);
  EXPECT_EQ(s.out_rows(), 4 * 2 * 6);
  EXPECT_EQ(s.weight_cols(), 2 * 3 * 2);
  const ConvShape resnet_stem = conv_shape(3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1);
  EXPECT_EQ(resnet_stem.out_h(), 112);
  PoolShape p{64, 112, 112, 3, 3, 2, 2, 1, 1};  // ResNet's max pool after the stem
  EXPECT_EQ(p.out_h(), 56);
  EXPECT_EQ(p.out_w(), 56);
}

// The message of the Error that f throws (empty, and a failure, if none).
std::string error_of(const std::function<void()>& f, ExitCode want = ExitCode::kUsage) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), want) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no gradscope::Error thrown";
  return {};
}

TEST(ConvShape, ValidationNamesWhatIsWrong) {
  ConvShape s = conv_shape(4, 6, 5, 6, 3, 3, 1, 1, 0, 0, 1, 1, 4);
  std::string m = error_of([&] { s.validate("layers[2]"); });
  EXPECT_NE(m.find("layers[2]: groups = 4 must divide both in_channels = 4 and out_channels = 6"),
            std::string::npos)
      << m;
  s = conv_shape(4, 6, 5, 4, 3, 3, 1, 1, 0, 0, 3, 1, 1);  // dilated kernel 7 > 6
  m = error_of([&] { s.validate("conv"); });
  EXPECT_NE(m.find("dilated kernel spans 7 x 3 cells but the padded input is only 6 x 5"),
            std::string::npos)
      << m;
  s.pad_h = 1;  // 8 rows once padded: fits
  EXPECT_NO_THROW(s.validate("conv"));
  s = conv_shape(4, 6, 5, 4, 3, 3, 0, 1, 0, 0, 1, 1, 1);
  m = error_of([&] { s.validate("conv"); });
  EXPECT_NE(m.find("stride_h = 0 must be >= 1"), std::string::npos) << m;
  s = conv_shape(4, 6, 5, 4, 3, 3, 1, 1, -1, 0, 1, 1, 1);
  m = error_of([&] { s.validate("conv"); });
  EXPECT_NE(m.find("pad_h = -1 must be >= 0"), std::string::npos) << m;
  s = conv_shape(0, 6, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1);
  m = error_of([&] { s.validate("conv"); });
  EXPECT_NE(m.find("in_channels = 0 must be >= 1"), std::string::npos) << m;
}

TEST(PoolShape, ValidationNamesWhatIsWrong) {
  PoolShape p{2, 5, 5, 3, 3, 2, 2, 2, 1};  // padding 2 > 3 / 2
  std::string m = error_of([&] { p.validate("pool"); });
  EXPECT_NE(m.find("padding 2 x 1 is more than half the kernel 3 x 3"), std::string::npos) << m;
  p = PoolShape{2, 2, 5, 4, 3, 1, 1, 0, 0};
  m = error_of([&] { p.validate("pool"); });
  EXPECT_NE(m.find("pooling window spans 4 x 3 cells but the padded input is only 2 x 5"),
            std::string::npos)
      << m;
}

TEST(ConvKernels, WrongBufferShapesAreContractErrors) {
  ThreadPool pool(1);
  const ConvShape s = conv_shape(2, 4, 4, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1);
  const MatD x = random_matrix(s.in_rows() + 1, 2, 1);
  const MatD w = random_matrix(3, s.weight_cols(), 2);
  MatD y;
  const std::string m =
      error_of([&] { conv2d_forward<double>(x, w, VecD(), s, y, pool); }, ExitCode::kInternal);
  EXPECT_NE(m.find("conv2d_forward: x is 33 x 2, expected 32 x batch"), std::string::npos) << m;
}

// ---- Central differences ----------------------------------------------------------------------
//
// L = sum(dy * y) for a fixed random dy, so dL/d(input) is the backward pass of dy. L is linear in
// each of x, W and b separately, so a central difference has no truncation error at any step: what
// is left is L's rounding, about 1e-16 |L| / h, below 2e-13 of the largest gradient here with
// h = 1e-2 (observed); 1e-11 allows for that while a single wrong index is off by O(1).
constexpr double kFdStep = 1e-2;
constexpr double kFdTol = 1e-11;

double dot(const MatD& a, const MatD& b) { return (a.array() * b.array()).sum(); }

// Central differences of loss() in every entry of v, against grad; relative to grad's largest.
void expect_fd(const char* what, MatD& v, const MatD& grad, const std::function<double()>& loss) {
  ASSERT_EQ(v.size(), grad.size()) << what;
  const double scale = grad.cwiseAbs().maxCoeff();
  double worst = 0.0;
  for (Eigen::Index i = 0; i < v.size(); ++i) {
    const double keep = v.data()[i];
    v.data()[i] = keep + kFdStep;
    const double up = loss();
    v.data()[i] = keep - kFdStep;
    const double down = loss();
    v.data()[i] = keep;
    worst = std::max(worst, std::abs((up - down) / (2 * kFdStep) - grad.data()[i]));
  }
  EXPECT_LE(worst, kFdTol * scale) << what << ": largest difference " << worst << " of " << scale;
}

TEST(ConvKernels, GradientsMatchCentralDifferences) {
  ThreadPool pool(1);
  std::uint64_t key = 100;
  for (const NamedConv& c : conv_shapes()) {
    SCOPED_TRACE(c.name);
    const ConvShape& s = c.shape;
    MatD x = random_matrix(s.in_rows(), 2, ++key);
    MatD w = random_matrix(s.C_out, s.weight_cols(), ++key);
    MatD b = random_matrix(s.C_out, 1, ++key);
    const MatD dy = random_matrix(s.out_rows(), 2, ++key);
    MatD y;
    const auto loss = [&] {
      conv2d_forward<double>(x, w, VecD(b), s, y, pool);
      return dot(y, dy);
    };
    MatD dx;
    MatD dw;
    VecD db;
    conv2d_backward_data<double>(dy, w, s, dx, pool);
    conv2d_backward_weight<double>(x, dy, s, dw, db, pool);
    expect_fd("dx", x, dx, loss);
    expect_fd("dweight", w, dw, loss);
    expect_fd("dbias", b, db, loss);
  }
}

TEST(PoolKernels, MaxPoolGradientMatchesCentralDifferences) {
  // Distinct random values: no cell's perturbation by h = 1e-6 changes a window's winner unless
  // two values are within 2e-6, which the kink allowance below counts (and must stay rare).
  ThreadPool pool(1);
  const PoolShape p{2, 7, 6, 3, 2, 2, 2, 1, 1};
  MatD x = random_matrix(p.in_rows(), 2, 7);
  const MatD dy = random_matrix(p.out_rows(), 2, 8);
  MatD y;
  ArgmaxMat arg;
  max_pool2d_forward<double>(x, p, y, arg, pool);
  const ArgmaxMat arg0 = arg;
  MatD dx;
  max_pool2d_backward<double>(dy, arg, p, dx, pool);
  constexpr double h = 1e-6;
  int at_kinks = 0;
  double worst = 0.0;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double keep = x.data()[i];
    x.data()[i] = keep + h;
    max_pool2d_forward<double>(x, p, y, arg, pool);
    const double up = dot(y, dy);
    const bool same_up = arg == arg0;
    x.data()[i] = keep - h;
    max_pool2d_forward<double>(x, p, y, arg, pool);
    const double down = dot(y, dy);
    const bool same_down = arg == arg0;
    x.data()[i] = keep;
    if (!same_up || !same_down) {  // a kink: the derivative is one-sided there
      ++at_kinks;
      continue;
    }
    worst = std::max(worst, std::abs((up - down) / (2 * h) - dx.data()[i]));
  }
  EXPECT_LE(at_kinks, 1);
  // Piecewise linear: exact but for L's rounding, ~1e-16 |L| / h ~ 1e-9.
  EXPECT_LE(worst, 1e-7) << "largest difference " << worst;
}

TEST(PoolKernels, AveragePoolGradientsMatchCentralDifferences) {
  ThreadPool pool(1);
  const PoolShape p{2, 7, 6, 3, 3, 2, 2, 1, 1};
  MatD x = random_matrix(p.in_rows(), 2, 9);
  const MatD dy = random_matrix(p.out_rows(), 2, 10);
  MatD y;
  MatD dx;
  avg_pool2d_backward<double>(dy, p, dx, pool);
  expect_fd("avg_pool dx", x, dx, [&] {
    avg_pool2d_forward<double>(x, p, y, pool);
    return dot(y, dy);
  });
  const PoolShape g{3, 4, 5, 1, 1, 1, 1, 0, 0};
  MatD xg = random_matrix(g.in_rows(), 2, 11);
  const MatD dyg = random_matrix(g.C, 2, 12);
  global_avg_pool_backward<double>(dyg, g, dx, pool);
  expect_fd("global_avg_pool dx", xg, dx, [&] {
    global_avg_pool_forward<double>(xg, g, y, pool);
    return dot(y, dyg);
  });
}

TEST(PoolKernels, MaxPoolPropagatesNanAndHandlesInfinities) {
  ThreadPool pool(1);
  const PoolShape p{1, 2, 2, 2, 2, 2, 2, 0, 0};  // one window over all four cells
  MatD x(4, 3);
  const double inf = std::numeric_limits<double>::infinity();
  x.col(0) << 1.0, std::nan(""), 5.0, 2.0;  // NaN wins over any number, as in PyTorch
  x.col(1) << -inf, -inf, -inf, -inf;       // all -inf: the first cell, value -inf
  x.col(2) << 3.0, 7.0, 7.0, inf;           // inf wins
  MatD y;
  ArgmaxMat arg;
  max_pool2d_forward<double>(x, p, y, arg, pool);
  EXPECT_TRUE(std::isnan(y(0, 0)));
  EXPECT_EQ(arg(0, 0), 1);
  EXPECT_EQ(y(0, 1), -inf);
  EXPECT_EQ(arg(0, 1), 0);
  EXPECT_EQ(y(0, 2), inf);
  EXPECT_EQ(arg(0, 2), 3);
}

// ---- PyTorch float64 references ---------------------------------------------------------------

// tests/data/conv_reference.bin, regenerated with
//   /usr/bin/python3 tests/torch/conv_reference.py --seed 7 --out tests/data/conv_reference.bin
// (the format is described in that script).
class Reference {
 public:
  Reference() {
    const std::string path = std::string(GRADSCOPE_SOURCE_DIR) + "/tests/data/conv_reference.bin";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open; regenerate it (see above)");
    char magic[8];
    in.read(magic, 8);
    if (!in || std::memcmp(magic, "GSCONV01", 8) != 0) {
      throw std::runtime_error(path + ": not a GSCONV01 reference file");
    }
    std::uint16_t length = 0;
    while (in.read(reinterpret_cast<char*>(&length), sizeof length)) {
      std::string name(length, '\0');
      std::int64_t rows = 0;
      std::int64_t cols = 0;
      in.read(name.data(), length);
      in.read(reinterpret_cast<char*>(&rows), sizeof rows);
      in.read(reinterpret_cast<char*>(&cols), sizeof cols);
      MatD m(rows, cols);
      in.read(reinterpret_cast<char*>(m.data()),
              static_cast<std::streamsize>(sizeof(double) * static_cast<std::size_t>(m.size())));
      if (!in) throw std::runtime_error(path + ": truncated at " + name);
      tensors_[name] = std::move(m);
    }
  }
  const MatD& at(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw std::runtime_error("conv_reference.bin has no " + name);
    return it->second;
  }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

 private:
  std::map<std::string, MatD> tensors_;
};

const Reference& reference() {
  static const Reference r;
  return r;
}

int field(const MatD& shape, int i) { return static_cast<int>(shape(i, 0)); }

ConvShape conv_case(const std::string& name) {
  const MatD& f = reference().at(name + "/shape");  // batch, C_in, H, W, C_out, kh, kw, ...
  return {field(f, 1),  field(f, 2),  field(f, 3), field(f, 4), field(f, 5),
          field(f, 6),  field(f, 7),  field(f, 8), field(f, 9), field(f, 10),
          field(f, 11), field(f, 12), field(f, 13)};
}

PoolShape pool_case(const std::string& name) {
  const MatD& f = reference().at(name + "/shape");  // batch, C, H, W, kh, kw, sh, sw, ph, pw
  return {field(f, 1), field(f, 2), field(f, 3), field(f, 4), field(f, 5),
          field(f, 6), field(f, 7), field(f, 8), field(f, 9)};
}

const std::vector<std::string> kConvCases = {"conv_general", "conv_depthwise", "conv_plain",
                                             "conv_pointwise"};

// |got - want| <= tol * scale, entry by entry, where scale is the sum of |terms| that made the
// entry (the same computation on absolute values): the error a sum can carry, whatever its order.
template <class Scalar>
void expect_close(const char* what, const Mat<Scalar>& got, const MatD& want, const MatD& scale,
                  double tol) {
  ASSERT_EQ(got.rows(), want.rows()) << what;
  ASSERT_EQ(got.cols(), want.cols()) << what;
  double worst = 0.0;  // in units of tol * scale
  double largest = 0.0;
  for (Eigen::Index i = 0; i < want.size(); ++i) {
    const double d = std::abs(static_cast<double>(got.data()[i]) - want.data()[i]);
    largest = std::max(largest, d);
    const double bound = tol * scale.data()[i];
    if (d > bound)
      worst = std::max(worst, bound > 0.0 ? d / bound : std::numeric_limits<double>::infinity());
  }
  EXPECT_EQ(worst, 0.0) << what << ": " << worst << " times the bound; largest difference "
                        << largest;
}

// Both sides sum at most a few hundred products in float64, each sum off by at most n 2^-53 of its
// sum of |terms| (Higham's bound) whatever the order; 1e-12 of that scale leaves room for n up to
// 9000 while any wrong index or weight is off by O(1).
constexpr double kTorchTol = 1e-12;

// float32 on the same (float32-exact) inputs: each entry is a sum of n products rounded in float,
// off from the exact value by at most gamma_n = n u / (1 - n u) of its sum of |terms| (Higham,
// Accuracy and Stability, 3.1), u = 2^-24; n counts the products plus the bias and the division.
double gamma_f32(Eigen::Index n) {
  const double nu = static_cast<double>(n) * std::ldexp(1.0, -24);
  return nu / (1.0 - nu);
}

template <class Scalar>
void check_conv_case(const std::string& name, double tol_y, double tol_dx, double tol_dw) {
  SCOPED_TRACE(name);
  const Reference& r = reference();
  const ConvShape s = conv_case(name);
  const bool has_bias = r.has(name + "/bias");
  const MatD& x = r.at(name + "/x");
  const MatD& w = r.at(name + "/weight");
  const VecD b = has_bias ? VecD(r.at(name + "/bias")) : VecD();
  const MatD& dy = r.at(name + "/dy");
  ThreadPool pool(1);
  // The scales: the same sums over |terms|, in double.
  MatD y_scale;
  MatD dx_scale;
  MatD dw_scale;
  VecD db_scale;
  conv2d_forward<double>(x.cwiseAbs(), w.cwiseAbs(), b.cwiseAbs(), s, y_scale, pool);
  conv2d_backward_data<double>(dy.cwiseAbs(), w.cwiseAbs(), s, dx_scale, pool);
  conv2d_backward_weight<double>(x.cwiseAbs(), dy.cwiseAbs(), s, dw_scale, db_scale, pool);

  Mat<Scalar> y;
  Mat<Scalar> dx;
  Mat<Scalar> dw;
  Vec<Scalar> db;
  const Mat<Scalar> xs = x.cast<Scalar>();
  const Mat<Scalar> ws = w.cast<Scalar>();
  const Mat<Scalar> dys = dy.cast<Scalar>();
  conv2d_forward<Scalar>(xs, ws, b.cast<Scalar>(), s, y, pool);
  conv2d_backward_data<Scalar>(dys, ws, s, dx, pool);
  conv2d_backward_weight<Scalar>(xs, dys, s, dw, db, pool);
  expect_close("y", y, r.at(name + "/y"), y_scale, tol_y);
  expect_close("dx", dx, r.at(name + "/dx"), dx_scale, tol_dx);
  expect_close("dweight", dw, r.at(name + "/dweight"), dw_scale, tol_dw);
  if (has_bias) {
    expect_close("dbias", Mat<Scalar>(db), r.at(name + "/dbias"), MatD(db_scale), tol_dw);
  }
}

TEST(ConvKernels, Float64MatchesPyTorch) {
  for (const std::string& name : kConvCases) {
    check_conv_case<double>(name, kTorchTol, kTorchTol, kTorchTol);
  }
}

TEST(ConvKernels, Float32IsWithinItsRoundingBoundOfPyTorchFloat64) {
  for (const std::string& name : kConvCases) {
    const ConvShape s = conv_case(name);
    const Eigen::Index batch = field(reference().at(name + "/shape"), 0);
    const Eigen::Index taps = Eigen::Index{s.kernel_h} * s.kernel_w;
    // dx: a product over C_out / groups per tap, then the taps added (col2im).
    check_conv_case<float>(name, gamma_f32(s.weight_cols() + 1),
                           gamma_f32((s.C_out / s.groups + 1) * taps),
                           gamma_f32(batch * s.out_h() * s.out_w()));
  }
}

template <class Scalar>
void check_pool_cases(double tol_scale) {
  const Reference& r = reference();
  ThreadPool pool(1);
  const auto cast = [](const MatD& m) { return Mat<Scalar>(m.cast<Scalar>()); };
  {
    SCOPED_TRACE("max_pool");
    const PoolShape p = pool_case("max_pool");
    Mat<Scalar> y;
    Mat<Scalar> dx;
    ArgmaxMat arg;
    max_pool2d_forward<Scalar>(cast(r.at("max_pool/x")), p, y, arg, pool);
    // A max is one of the inputs: equal to the bit, ties included (x is in quarters).
    EXPECT_TRUE(y.template cast<double>() == r.at("max_pool/y"));
    max_pool2d_backward<Scalar>(cast(r.at("max_pool/dy")), arg, p, dx, pool);
    // A cell's gradient sums dy over the windows that chose it (at most 2 x 1 windows here): the
    // first-max rule decides which cell gets which dy, so a wrong tie-break is off by O(1).
    MatD scale;
    max_pool2d_backward<double>(r.at("max_pool/dy").cwiseAbs(), arg, p, scale, pool);
    expect_close("max_pool dx", dx, r.at("max_pool/dx"), scale, tol_scale * 2);
  }
  {
    SCOPED_TRACE("avg_pool");
    const PoolShape p = pool_case("avg_pool");
    const Eigen::Index area = Eigen::Index{p.kernel_h} * p.kernel_w;
    Mat<Scalar> y;
    Mat<Scalar> dx;
    MatD y_scale;
    MatD dx_scale;
    avg_pool2d_forward<Scalar>(cast(r.at("avg_pool/x")), p, y, pool);
    avg_pool2d_forward<double>(r.at("avg_pool/x").cwiseAbs(), p, y_scale, pool);
    expect_close("avg_pool y", y, r.at("avg_pool/y"), y_scale, tol_scale * double(area + 1));
    avg_pool2d_backward<Scalar>(cast(r.at("avg_pool/dy")), p, dx, pool);
    avg_pool2d_backward<double>(r.at("avg_pool/dy").cwiseAbs(), p, dx_scale, pool);
    expect_close("avg_pool dx", dx, r.at("avg_pool/dx"), dx_scale, tol_scale * double(area + 1));
  }
  {
    SCOPED_TRACE("global_avg_pool");
    const PoolShape p = pool_case("global_avg_pool");
    const Eigen::Index n = Eigen::Index{p.H} * p.W + 1;
    Mat<Scalar> y;
    Mat<Scalar> dx;
    MatD y_scale;
    MatD dx_scale;
    global_avg_pool_forward<Scalar>(cast(r.at("global_avg_pool/x")), p, y, pool);
    global_avg_pool_forward<double>(r.at("global_avg_pool/x").cwiseAbs(), p, y_scale, pool);
    expect_close("global y", y, r.at("global_avg_pool/y"), y_scale, tol_scale * double(n));
    global_avg_pool_backward<Scalar>(cast(r.at("global_avg_pool/dy")), p, dx, pool);
    global_avg_pool_backward<double>(r.at("global_avg_pool/dy").cwiseAbs(), p, dx_scale, pool);
    expect_close("global dx", dx, r.at("global_avg_pool/dx"), dx_scale, tol_scale * 2);
  }
}

TEST(PoolKernels, Float64MatchesPyTorch) {
  // Sums of at most 21 terms: 1e-14 of the scale per term is still 20 times float64's 2^-53.
  check_pool_cases<double>(1e-14);
}

TEST(PoolKernels, Float32IsWithinItsRoundingBoundOfPyTorchFloat64) {
  // u = 2^-24 per term and operation (gamma_n ~ n u for these n), the inputs exact in float32.
  check_pool_cases<float>(gamma_f32(1));
}

// ---- Thread-count independence ----------------------------------------------------------------

template <class Derived>
bool same_bytes(const Eigen::PlainObjectBase<Derived>& a,
                const Eigen::PlainObjectBase<Derived>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(),
                     sizeof(typename Derived::Scalar) * static_cast<std::size_t>(a.size())) == 0;
}

template <class Scalar>
void check_threads() {
  // 19 examples: three chunks of the weight gradient (8, 8, 3), one wave with 3 threads and three
  // with 1, so both the chunking and the order of adding the partials are exercised.
  constexpr Eigen::Index kBatch = 19;
  ThreadPool one(1);
  ThreadPool three(3);
  std::uint64_t key = 500;
  for (const NamedConv& c : conv_shapes()) {
    SCOPED_TRACE(c.name);
    const ConvShape& s = c.shape;
    const Mat<Scalar> x = random_matrix(s.in_rows(), kBatch, ++key).cast<Scalar>();
    const Mat<Scalar> w = random_matrix(s.C_out, s.weight_cols(), ++key).cast<Scalar>();
    const Vec<Scalar> b = random_matrix(s.C_out, 1, ++key).cast<Scalar>();
    const Mat<Scalar> dy = random_matrix(s.out_rows(), kBatch, ++key).cast<Scalar>();
    Mat<Scalar> y1, y3, dx1, dx3, dw1, dw3;
    Vec<Scalar> db1, db3;
    conv2d_forward<Scalar>(x, w, b, s, y1, one);
    conv2d_forward<Scalar>(x, w, b, s, y3, three);
    conv2d_backward_data<Scalar>(dy, w, s, dx1, one);
    conv2d_backward_data<Scalar>(dy, w, s, dx3, three);
    conv2d_backward_weight<Scalar>(x, dy, s, dw1, db1, one);
    conv2d_backward_weight<Scalar>(x, dy, s, dw3, db3, three);
    EXPECT_TRUE(same_bytes(y1, y3));
    EXPECT_TRUE(same_bytes(dx1, dx3));
    EXPECT_TRUE(same_bytes(dw1, dw3));
    EXPECT_TRUE(same_bytes(db1, db3));
  }
  const PoolShape p{3, 7, 6, 3, 3, 2, 2, 1, 1};
  const Mat<Scalar> x = random_matrix(p.in_rows(), kBatch, ++key).cast<Scalar>();
  const Mat<Scalar> dy = random_matrix(p.out_rows(), kBatch, ++key).cast<Scalar>();
  Mat<Scalar> y1, y3, dx1, dx3;
  ArgmaxMat a1, a3;
  max_pool2d_forward<Scalar>(x, p, y1, a1, one);
  max_pool2d_forward<Scalar>(x, p, y3, a3, three);
  max_pool2d_backward<Scalar>(dy, a1, p, dx1, one);
  max_pool2d_backward<Scalar>(dy, a3, p, dx3, three);
  EXPECT_TRUE(same_bytes(y1, y3) && same_bytes(dx1, dx3) && a1 == a3);
  avg_pool2d_forward<Scalar>(x, p, y1, one);
  avg_pool2d_forward<Scalar>(x, p, y3, three);
  avg_pool2d_backward<Scalar>(dy, p, dx1, one);
  avg_pool2d_backward<Scalar>(dy, p, dx3, three);
  EXPECT_TRUE(same_bytes(y1, y3) && same_bytes(dx1, dx3));
  const Mat<Scalar> dyg = dy.topRows(p.C);
  global_avg_pool_forward<Scalar>(x, p, y1, one);
  global_avg_pool_forward<Scalar>(x, p, y3, three);
  global_avg_pool_backward<Scalar>(dyg, p, dx1, one);
  global_avg_pool_backward<Scalar>(dyg, p, dx3, three);
  EXPECT_TRUE(same_bytes(y1, y3) && same_bytes(dx1, dx3));
}

TEST(ConvKernels, OneAndThreeThreadsGiveTheSameBytesInDouble) { check_threads<double>(); }
TEST(ConvKernels, OneAndThreeThreadsGiveTheSameBytesInFloat) { check_threads<float>(); }

TEST(ConvKernels, WeightGradientIsTheSumOverExamples) {
  // The chunked sum equals the example-by-example sum to rounding (19 examples, three chunks).
  ThreadPool pool(2);
  const ConvShape s = conv_shapes()[0].shape;
  const MatD x = random_matrix(s.in_rows(), 19, 900);
  const MatD dy = random_matrix(s.out_rows(), 19, 901);
  MatD dw;
  VecD db;
  conv2d_backward_weight<double>(x, dy, s, dw, db, pool);
  MatD sum = MatD::Zero(dw.rows(), dw.cols());
  MatD dw1;
  VecD db1;
  for (Eigen::Index b = 0; b < x.cols(); ++b) {
    conv2d_backward_weight<double>(x.col(b), dy.col(b), s, dw1, db1, pool);
    sum += dw1;
  }
  EXPECT_LE((dw - sum).cwiseAbs().maxCoeff(), 1e-13 * sum.cwiseAbs().maxCoeff());
}

}  // namespace
}  // namespace gradscope::ops
