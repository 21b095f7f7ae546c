// Convolution by im2col and one product per (example, group); pooling by direct loops over each
// window. Work is split by examples, one task each (the weight gradient: fixed chunks of them).
#include "core/ops/conv_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/tasks.hpp"
#include "gradscope/core/error.hpp"

namespace gradscope::ops {

namespace {

int conv_out(int in, int pad, int dilation, int kernel, int stride) {
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

std::string dims(int a, int b) { return std::to_string(a) + " x " + std::to_string(b); }

void require_positive(const char* where, const char* field, int value, int minimum) {
  if (value < minimum) {
    throw Error(std::string(where) + ": " + field + " = " + std::to_string(value) +
                    " must be >= " + std::to_string(minimum),
                "give the convolution or pooling layer positive sizes (padding may be 0)");
  }
}

// The checks both shapes share: the input and the window fit.
void check_window(const char* where, const char* what, int in_h, int in_w, int pad_h, int pad_w,
                  int span_h, int span_w) {
  if (span_h > in_h + 2 * pad_h || span_w > in_w + 2 * pad_w) {
    throw Error(std::string(where) + ": the " + what + " spans " + dims(span_h, span_w) +
                    " cells but the padded input is only " +
                    dims(in_h + 2 * pad_h, in_w + 2 * pad_w),
                "use a smaller kernel (or dilation), more padding, or a larger input");
  }
}

template <class Scalar>
void check_matrix(const char* fn, const char* name, const Mat<Scalar>& m, Eigen::Index rows,
                  Eigen::Index cols) {
  if (m.rows() != rows || (cols >= 0 && m.cols() != cols)) {
    throw contract_error(std::string(fn) + ": " + name + " is " + std::to_string(m.rows()) + " x " +
                         std::to_string(m.cols()) + ", expected " + std::to_string(rows) + " x " +
                         (cols >= 0 ? std::to_string(cols) : std::string("batch")));
  }
}

// The geometry one group's im2col needs, in Eigen::Index.
struct Geometry {
  Eigen::Index c_in_g;   // input channels per group
  Eigen::Index c_out_g;  // output channels per group
  Eigen::Index h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
  Eigen::Index taps() const { return kh * kw; }
  Eigen::Index k() const { return c_in_g * kh * kw; }  // weight columns
  Eigen::Index positions() const { return oh * ow; }
  // A 1 x 1 kernel, stride 1, no padding: an example's group block of x is already colT.
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

Geometry geometry(const ConvShape& s) {
  return {s.C_in / s.groups, s.C_out / s.groups, s.H,        s.W,        s.out_h(), s.out_w(),
          s.kernel_h,        s.kernel_w,         s.stride_h, s.stride_w, s.pad_h,   s.pad_w,
          s.dilation_h,      s.dilation_w};
}

// colT (positions, k) of one example's group: column (c, i, j) holds, for every output position p
// = (oh, ow), the input cell x[c, oh sh - ph + i dh, ow sw - pw + j dw], or 0 in the padding.
// x points at the group's first channel.
template <class Scalar>
void im2col(const Scalar* x, const Geometry& g, Mat<Scalar>& col) {
  col.resize(g.positions(), g.k());
  for (Eigen::Index c = 0; c < g.c_in_g; ++c) {
    const Scalar* xc = x + c * g.h * g.w;
    for (Eigen::Index i = 0; i < g.kh; ++i) {
      for (Eigen::Index j = 0; j < g.kw; ++j) {
        Scalar* out = col.col((c * g.kh + i) * g.kw + j).data();
        for (Eigen::Index oh = 0; oh < g.oh; ++oh) {
          const Eigen::Index ih = oh * g.sh - g.ph + i * g.dh;
          Scalar* row = out + oh * g.ow;
          if (ih < 0 || ih >= g.h) {
            std::fill(row, row + g.ow, Scalar(0));
            continue;
          }
          for (Eigen::Index ow = 0; ow < g.ow; ++ow) {
            const Eigen::Index iw = ow * g.sw - g.pw + j * g.dw;
            row[ow] = (iw < 0 || iw >= g.w) ? Scalar(0) : xc[ih * g.w + iw];
          }
        }
      }
    }
  }
}

// The adjoint of im2col: dx[c, ih, iw] += dcol(p, (c, i, j)) over columns, then positions, in
// order. dx points at the group's first channel.
template <class Scalar>
void col2im(const Mat<Scalar>& dcol, const Geometry& g, Scalar* dx) {
  for (Eigen::Index c = 0; c < g.c_in_g; ++c) {
    Scalar* dxc = dx + c * g.h * g.w;
    for (Eigen::Index i = 0; i < g.kh; ++i) {
      for (Eigen::Index j = 0; j < g.kw; ++j) {
        const Scalar* in = dcol.col((c * g.kh + i) * g.kw + j).data();
        for (Eigen::Index oh = 0; oh < g.oh; ++oh) {
          const Eigen::Index ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) continue;
          for (Eigen::Index ow = 0; ow < g.ow; ++ow) {
            const Eigen::Index iw = ow * g.sw - g.pw + j * g.dw;
            if (iw >= 0 && iw < g.w) dxc[ih * g.w + iw] += in[oh * g.ow + ow];
          }
        }
      }
    }
  }
}

template <class Scalar>
using ConstMap = Eigen::Map<const Mat<Scalar>>;
template <class Scalar>
using MutMap = Eigen::Map<Mat<Scalar>>;

}  // namespace

// ---- Shapes -----------------------------------------------------------------------------------

int ConvShape::out_h() const { return conv_out(H, pad_h, dilation_h, kernel_h, stride_h); }
int ConvShape::out_w() const { return conv_out(W, pad_w, dilation_w, kernel_w, stride_w); }
Eigen::Index ConvShape::in_rows() const { return Eigen::Index{C_in} * H * W; }
Eigen::Index ConvShape::out_rows() const { return Eigen::Index{C_out} * out_h() * out_w(); }
Eigen::Index ConvShape::weight_cols() const {
  return Eigen::Index{C_in / groups} * kernel_h * kernel_w;
}

void ConvShape::validate(const char* where) const {
  require_positive(where, "in_channels", C_in, 1);
  require_positive(where, "height", H, 1);
  require_positive(where, "width", W, 1);
  require_positive(where, "out_channels", C_out, 1);
  require_positive(where, "kernel_h", kernel_h, 1);
  require_positive(where, "kernel_w", kernel_w, 1);
  require_positive(where, "stride_h", stride_h, 1);
  require_positive(where, "stride_w", stride_w, 1);
  require_positive(where, "pad_h", pad_h, 0);
  require_positive(where, "pad_w", pad_w, 0);
  require_positive(where, "dilation_h", dilation_h, 1);
  require_positive(where, "dilation_w", dilation_w, 1);
  require_positive(where, "groups", groups, 1);
  if (C_in % groups != 0 || C_out % groups != 0) {
    throw Error(std::string(where) + ": groups = " + std::to_string(groups) +
                    " must divide both in_channels = " + std::to_string(C_in) +
                    " and out_channels = " + std::to_string(C_out),
                "set groups to a common divisor of the channel counts (depthwise: groups = "
                "in_channels, out_channels a multiple of it)");
  }
  check_window(where, "dilated kernel", H, W, pad_h, pad_w, dilation_h * (kernel_h - 1) + 1,
               dilation_w * (kernel_w - 1) + 1);
}

int PoolShape::out_h() const { return (H + 2 * pad_h - kernel_h) / stride_h + 1; }
int PoolShape::out_w() const { return (W + 2 * pad_w - kernel_w) / stride_w + 1; }
Eigen::Index PoolShape::in_rows() const { return Eigen::Index{C} * H * W; }
Eigen::Index PoolShape::out_rows() const { return Eigen::Index{C} * out_h() * out_w(); }

void PoolShape::validate(const char* where) const {
  require_positive(where, "channels", C, 1);
  require_positive(where, "height", H, 1);
  require_positive(where, "width", W, 1);
  require_positive(where, "kernel_h", kernel_h, 1);
  require_positive(where, "kernel_w", kernel_w, 1);
  require_positive(where, "stride_h", stride_h, 1);
  require_positive(where, "stride_w", stride_w, 1);
  require_positive(where, "pad_h", pad_h, 0);
  require_positive(where, "pad_w", pad_w, 0);
  if (2 * pad_h > kernel_h || 2 * pad_w > kernel_w) {
    throw Error(std::string(where) + ": padding " + dims(pad_h, pad_w) +
                    " is more than half the kernel " + dims(kernel_h, kernel_w) +
                    " (a window could hold padding only)",
                "use padding at most kernel / 2, as PyTorch requires");
  }
  check_window(where, "pooling window", H, W, pad_h, pad_w, kernel_h, kernel_w);
  if (in_rows() > std::numeric_limits<std::int32_t>::max()) {
    throw Error(std::string(where) + ": " + std::to_string(in_rows()) +
                    " input cells per example are more than max pooling can index (2^31 - 1)",
                "use a smaller input");
  }
}

// ---- Convolution ------------------------------------------------------------------------------

template <class Scalar>
void conv2d_forward(const Mat<Scalar>& x, const Mat<Scalar>& weight, const Vec<Scalar>& bias,
                    const ConvShape& shape, Mat<Scalar>& y, ThreadPool& pool) {
  shape.validate("conv2d_forward");
  const Geometry g = geometry(shape);
  check_matrix("conv2d_forward", "x", x, shape.in_rows(), -1);
  check_matrix("conv2d_forward", "weight", weight, shape.C_out, g.k());
  if (bias.size() != 0 && bias.size() != shape.C_out) {
    throw contract_error("conv2d_forward: bias has " + std::to_string(bias.size()) +
                         " entries, expected 0 or C_out = " + std::to_string(shape.C_out));
  }
  const Eigen::Index batch = x.cols();
  y.resize(shape.out_rows(), batch);
  const Eigen::Index np = g.positions();
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    Mat<Scalar> col;  // (positions, k)
    for (Eigen::Index grp = 0; grp < shape.groups; ++grp) {
      const Scalar* xg = x.col(b).data() + grp * g.c_in_g * g.h * g.w;
      // y's group block, read as (positions, c_out_g): its column o is channel o's map.
      MutMap<Scalar> yg(y.col(b).data() + grp * g.c_out_g * np, np, g.c_out_g);
      const Eigen::Ref<const Mat<Scalar>> wg = weight.middleRows(grp * g.c_out_g, g.c_out_g);
      if (g.pointwise()) {
        yg.noalias() = ConstMap<Scalar>(xg, np, g.c_in_g) * wg.transpose();
      } else {
        im2col(xg, g, col);
        yg.noalias() = col * wg.transpose();
      }
      if (bias.size() != 0) yg.rowwise() += bias.segment(grp * g.c_out_g, g.c_out_g).transpose();
    }
  });
}

template <class Scalar>
void conv2d_backward_data(const Mat<Scalar>& dy, const Mat<Scalar>& weight, const ConvShape& shape,
                          Mat<Scalar>& dx, ThreadPool& pool) {
  shape.validate("conv2d_backward_data");
  const Geometry g = geometry(shape);
  check_matrix("conv2d_backward_data", "dy", dy, shape.out_rows(), -1);
  check_matrix("conv2d_backward_data", "weight", weight, shape.C_out, g.k());
  const Eigen::Index batch = dy.cols();
  dx.resize(shape.in_rows(), batch);
  const Eigen::Index np = g.positions();
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    Mat<Scalar> dcol;  // (positions, k)
    for (Eigen::Index grp = 0; grp < shape.groups; ++grp) {
      Scalar* dxg = dx.col(b).data() + grp * g.c_in_g * g.h * g.w;
      ConstMap<Scalar> dyg(dy.col(b).data() + grp * g.c_out_g * np, np, g.c_out_g);
      const Eigen::Ref<const Mat<Scalar>> wg = weight.middleRows(grp * g.c_out_g, g.c_out_g);
      if (g.pointwise()) {
        MutMap<Scalar>(dxg, np, g.c_in_g).noalias() = dyg * wg;
      } else {
        dcol.noalias() = dyg * wg;
        std::fill(dxg, dxg + g.c_in_g * g.h * g.w, Scalar(0));
        col2im(dcol, g, dxg);
      }
    }
  });
}

template <class Scalar>
void conv2d_backward_weight(const Mat<Scalar>& x, const Mat<Scalar>& dy, const ConvShape& shape,
                            Mat<Scalar>& dweight, Vec<Scalar>& dbias, ThreadPool& pool) {
  shape.validate("conv2d_backward_weight");
  const Geometry g = geometry(shape);
  check_matrix("conv2d_backward_weight", "x", x, shape.in_rows(), -1);
  check_matrix("conv2d_backward_weight", "dy", dy, shape.out_rows(), x.cols());
  const Eigen::Index batch = x.cols();
  const Eigen::Index np = g.positions();
  dweight.setZero(shape.C_out, g.k());
  dbias.setZero(shape.C_out);
  const std::int64_t chunks = tasks_for(batch, kConvExamplesPerChunk);
  // Chunks run in waves of one per thread; after each wave its partials are added to the total in
  // chunk order, so the sum is the same whatever the wave's width, and the memory is one partial
  // per thread.
  const std::int64_t wave = std::max<std::int64_t>(1, pool.size());
  std::vector<Mat<Scalar>> dw_part(static_cast<std::size_t>(std::min(wave, chunks)));
  std::vector<Vec<Scalar>> db_part(dw_part.size());
  for (std::int64_t first = 0; first < chunks; first += wave) {
    const std::int64_t count = std::min(wave, chunks - first);
    pool.run(count, [&](std::int64_t t) {
      const Range r = task_range(first + t, batch, kConvExamplesPerChunk);
      Mat<Scalar>& dw = dw_part[static_cast<std::size_t>(t)];  // (C_out, k)
      Vec<Scalar>& db = db_part[static_cast<std::size_t>(t)];  // (C_out)
      dw.setZero(shape.C_out, g.k());
      db.setZero(shape.C_out);
      Mat<Scalar> col;  // (positions, k)
      for (Eigen::Index b = r.begin; b < r.begin + r.size; ++b) {
        for (Eigen::Index grp = 0; grp < shape.groups; ++grp) {
          const Scalar* xg = x.col(b).data() + grp * g.c_in_g * g.h * g.w;
          ConstMap<Scalar> dyg(dy.col(b).data() + grp * g.c_out_g * np, np, g.c_out_g);
          Eigen::Ref<Mat<Scalar>> dwg = dw.middleRows(grp * g.c_out_g, g.c_out_g);
          if (g.pointwise()) {
            dwg.noalias() += dyg.transpose() * ConstMap<Scalar>(xg, np, g.c_in_g);
          } else {
            im2col(xg, g, col);
            dwg.noalias() += dyg.transpose() * col;
          }
          db.segment(grp * g.c_out_g, g.c_out_g) += dyg.colwise().sum().transpose();
        }
      }
    });
    for (std::int64_t t = 0; t < count; ++t) {
      dweight += dw_part[static_cast<std::size_t>(t)];
      dbias += db_part[static_cast<std::size_t>(t)];
    }
  }
}

// ---- Pooling ----------------------------------------------------------------------------------

namespace {

struct Window {
  Eigen::Index h0, h1, w0, w1;  // the window's cells inside the input: [h0, h1) x [w0, w1)
};

Window window(const PoolShape& s, Eigen::Index oh, Eigen::Index ow) {
  const Eigen::Index h = oh * s.stride_h - s.pad_h;
  const Eigen::Index w = ow * s.stride_w - s.pad_w;
  return {std::max<Eigen::Index>(h, 0), std::min<Eigen::Index>(h + s.kernel_h, s.H),
          std::max<Eigen::Index>(w, 0), std::min<Eigen::Index>(w + s.kernel_w, s.W)};
}

void check_pool_matrix_rows(const char* fn, const char* name, Eigen::Index rows, Eigen::Index want,
                            Eigen::Index cols) {
  if (rows != want) {
    throw contract_error(std::string(fn) + ": " + name + " is " + std::to_string(rows) + " x " +
                         std::to_string(cols) + ", expected " + std::to_string(want) + " rows");
  }
}

void check_global(const char* fn, const PoolShape& s) {
  require_positive(fn, "channels", s.C, 1);
  require_positive(fn, "height", s.H, 1);
  require_positive(fn, "width", s.W, 1);
}

}  // namespace

template <class Scalar>
void max_pool2d_forward(const Mat<Scalar>& x, const PoolShape& shape, Mat<Scalar>& y,
                        ArgmaxMat& argmax, ThreadPool& pool) {
  shape.validate("max_pool2d_forward");
  check_pool_matrix_rows("max_pool2d_forward", "x", x.rows(), shape.in_rows(), x.cols());
  const Eigen::Index batch = x.cols();
  const Eigen::Index oh_n = shape.out_h();
  const Eigen::Index ow_n = shape.out_w();
  const Eigen::Index hw = Eigen::Index{shape.H} * shape.W;
  y.resize(shape.out_rows(), batch);
  argmax.resize(shape.out_rows(), batch);
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    const Scalar* xb = x.col(b).data();
    Eigen::Index r = 0;
    for (Eigen::Index c = 0; c < shape.C; ++c) {
      const Scalar* xc = xb + c * hw;
      for (Eigen::Index oh = 0; oh < oh_n; ++oh) {
        for (Eigen::Index ow = 0; ow < ow_n; ++ow, ++r) {
          const Window win = window(shape, oh, ow);
          // Padding is -inf: it never wins, and an all -inf window points at its first cell.
          Eigen::Index best = win.h0 * shape.W + win.w0;
          Scalar best_value = -std::numeric_limits<Scalar>::infinity();
          for (Eigen::Index h = win.h0; h < win.h1; ++h) {
            for (Eigen::Index w = win.w0; w < win.w1; ++w) {
              const Scalar v = xc[h * shape.W + w];
              if (v > best_value || std::isnan(v)) {
                best_value = v;
                best = h * shape.W + w;
              }
            }
          }
          y(r, b) = best_value;
          argmax(r, b) = static_cast<std::int32_t>(c * hw + best);
        }
      }
    }
  });
}

template <class Scalar>
void max_pool2d_backward(const Mat<Scalar>& dy, const ArgmaxMat& argmax, const PoolShape& shape,
                         Mat<Scalar>& dx, ThreadPool& pool) {
  shape.validate("max_pool2d_backward");
  check_pool_matrix_rows("max_pool2d_backward", "dy", dy.rows(), shape.out_rows(), dy.cols());
  if (argmax.rows() != dy.rows() || argmax.cols() != dy.cols()) {
    throw contract_error("max_pool2d_backward: argmax is " + std::to_string(argmax.rows()) + " x " +
                         std::to_string(argmax.cols()) + ", dy " + std::to_string(dy.rows()) +
                         " x " + std::to_string(dy.cols()));
  }
  const Eigen::Index batch = dy.cols();
  dx.setZero(shape.in_rows(), batch);
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    for (Eigen::Index r = 0; r < dy.rows(); ++r) dx(argmax(r, b), b) += dy(r, b);
  });
}

template <class Scalar>
void avg_pool2d_forward(const Mat<Scalar>& x, const PoolShape& shape, Mat<Scalar>& y,
                        ThreadPool& pool) {
  shape.validate("avg_pool2d_forward");
  check_pool_matrix_rows("avg_pool2d_forward", "x", x.rows(), shape.in_rows(), x.cols());
  const Eigen::Index batch = x.cols();
  const Eigen::Index oh_n = shape.out_h();
  const Eigen::Index ow_n = shape.out_w();
  const Eigen::Index hw = Eigen::Index{shape.H} * shape.W;
  const Scalar area = static_cast<Scalar>(shape.kernel_h * shape.kernel_w);
  y.resize(shape.out_rows(), batch);
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    Eigen::Index r = 0;
    for (Eigen::Index c = 0; c < shape.C; ++c) {
      const Scalar* xc = x.col(b).data() + c * hw;
      for (Eigen::Index oh = 0; oh < oh_n; ++oh) {
        for (Eigen::Index ow = 0; ow < ow_n; ++ow, ++r) {
          const Window win = window(shape, oh, ow);
          Scalar sum = 0;
          for (Eigen::Index h = win.h0; h < win.h1; ++h) {
            for (Eigen::Index w = win.w0; w < win.w1; ++w) sum += xc[h * shape.W + w];
          }
          y(r, b) = sum / area;
        }
      }
    }
  });
}

template <class Scalar>
void avg_pool2d_backward(const Mat<Scalar>& dy, const PoolShape& shape, Mat<Scalar>& dx,
                         ThreadPool& pool) {
  shape.validate("avg_pool2d_backward");
  check_pool_matrix_rows("avg_pool2d_backward", "dy", dy.rows(), shape.out_rows(), dy.cols());
  const Eigen::Index batch = dy.cols();
  const Eigen::Index oh_n = shape.out_h();
  const Eigen::Index ow_n = shape.out_w();
  const Eigen::Index hw = Eigen::Index{shape.H} * shape.W;
  const Scalar area = static_cast<Scalar>(shape.kernel_h * shape.kernel_w);
  dx.setZero(shape.in_rows(), batch);
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    Eigen::Index r = 0;
    for (Eigen::Index c = 0; c < shape.C; ++c) {
      Scalar* dxc = dx.col(b).data() + c * hw;
      for (Eigen::Index oh = 0; oh < oh_n; ++oh) {
        for (Eigen::Index ow = 0; ow < ow_n; ++ow, ++r) {
          const Window win = window(shape, oh, ow);
          const Scalar share = dy(r, b) / area;
          for (Eigen::Index h = win.h0; h < win.h1; ++h) {
            for (Eigen::Index w = win.w0; w < win.w1; ++w) dxc[h * shape.W + w] += share;
          }
        }
      }
    }
  });
}

template <class Scalar>
void global_avg_pool_forward(const Mat<Scalar>& x, const PoolShape& shape, Mat<Scalar>& y,
                             ThreadPool& pool) {
  check_global("global_avg_pool_forward", shape);
  check_pool_matrix_rows("global_avg_pool_forward", "x", x.rows(), shape.in_rows(), x.cols());
  const Eigen::Index batch = x.cols();
  const Eigen::Index hw = Eigen::Index{shape.H} * shape.W;
  const Scalar area = static_cast<Scalar>(hw);
  y.resize(shape.C, batch);
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    for (Eigen::Index c = 0; c < shape.C; ++c) {
      const Scalar* xc = x.col(b).data() + c * hw;
      Scalar sum = 0;
      for (Eigen::Index i = 0; i < hw; ++i) sum += xc[i];
      y(c, b) = sum / area;
    }
  });
}

template <class Scalar>
void global_avg_pool_backward(const Mat<Scalar>& dy, const PoolShape& shape, Mat<Scalar>& dx,
                              ThreadPool& pool) {
  check_global("global_avg_pool_backward", shape);
  check_pool_matrix_rows("global_avg_pool_backward", "dy", dy.rows(), shape.C, dy.cols());
  const Eigen::Index batch = dy.cols();
  const Eigen::Index hw = Eigen::Index{shape.H} * shape.W;
  const Scalar area = static_cast<Scalar>(hw);
  dx.resize(shape.in_rows(), batch);
  pool.run(batch, [&](std::int64_t task) {
    const Eigen::Index b = static_cast<Eigen::Index>(task);
    for (Eigen::Index c = 0; c < shape.C; ++c) {
      dx.col(b).segment(c * hw, hw).setConstant(dy(c, b) / area);
    }
  });
}

#define GRADSCOPE_INSTANTIATE_CONV(Scalar)                                                         \
  template void conv2d_forward<Scalar>(const Mat<Scalar>&, const Mat<Scalar>&, const Vec<Scalar>&, \
                                       const ConvShape&, Mat<Scalar>&, ThreadPool&);               \
  template void conv2d_backward_data<Scalar>(const Mat<Scalar>&, const Mat<Scalar>&,               \
                                             const ConvShape&, Mat<Scalar>&, ThreadPool&);         \
  template void conv2d_backward_weight<Scalar>(const Mat<Scalar>&, const Mat<Scalar>&,             \
                                               const ConvShape&, Mat<Scalar>&, Vec<Scalar>&,       \
                                               ThreadPool&);                                       \
  template void max_pool2d_forward<Scalar>(const Mat<Scalar>&, const PoolShape&, Mat<Scalar>&,     \
                                           ArgmaxMat&, ThreadPool&);                               \
  template void max_pool2d_backward<Scalar>(const Mat<Scalar>&, const ArgmaxMat&,                  \
                                            const PoolShape&, Mat<Scalar>&, ThreadPool&);          \
  template void avg_pool2d_forward<Scalar>(const Mat<Scalar>&, const PoolShape&, Mat<Scalar>&,     \
                                           ThreadPool&);                                           \
  template void avg_pool2d_backward<Scalar>(const Mat<Scalar>&, const PoolShape&, Mat<Scalar>&,    \
                                            ThreadPool&);                                          \
  template void global_avg_pool_forward<Scalar>(const Mat<Scalar>&, const PoolShape&,              \
                                                Mat<Scalar>&, ThreadPool&);                        \
  template void global_avg_pool_backward<Scalar>(const Mat<Scalar>&, const PoolShape&,             \
                                                 Mat<Scalar>&, ThreadPool&);

GRADSCOPE_INSTANTIATE_CONV(float)
GRADSCOPE_INSTANTIATE_CONV(double)

#undef GRADSCOPE_INSTANTIATE_CONV

}  // namespace gradscope::ops
