// 2D convolution and pooling kernels on the network's layout: an activation is (rows, batch), one
// column per example, each column one example's C x H x W tensor flattened as PyTorch's contiguous
// NCHW memory (row = (c * H + h) * W + w). Forward and backward as pairs, in float and double.
#pragma once

#include <Eigen/Core>
#include <cstdint>

#include "gradscope/core/network.hpp"
#include "gradscope/core/parallel.hpp"

namespace gradscope::ops {

// A convolution's geometry, with PyTorch's nn.Conv2d meaning for every field. The weight is
// PyTorch's (C_out, C_in / groups, kernel_h, kernel_w) tensor flattened row-major into a matrix
// (C_out, C_in / groups * kernel_h * kernel_w): column (c * kernel_h + i) * kernel_w + j.
struct ConvShape {
  int C_in = 0;
  int H = 0;
  int W = 0;
  int C_out = 0;
  int kernel_h = 1;
  int kernel_w = 1;
  int stride_h = 1;
  int stride_w = 1;
  int pad_h = 0;
  int pad_w = 0;
  int dilation_h = 1;
  int dilation_w = 1;
  int groups = 1;

  // out = floor((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1, as torch.nn.Conv2d.
  int out_h() const;
  int out_w() const;
  Eigen::Index in_rows() const;      // C_in H W
  Eigen::Index out_rows() const;     // C_out out_h out_w
  Eigen::Index weight_cols() const;  // C_in / groups * kernel_h * kernel_w
  // Throws gradscope::Error (exit code 2) naming `where` (a config path, a layer) when a size is
  // not positive, the groups do not divide both channel counts, or the dilated kernel is larger
  // than the padded input.
  void validate(const char* where) const;
};

// The kernels' shape of a conv op (its input shape resolved by expand_ops).
ConvShape conv_shape(const ConvSpec& conv);
// The learned projection of a residual end whose block maps r.skip_image to `out`: a 1x1
// convolution, no padding, stride in / out on each side (residual.cpp).
ConvShape projection_shape(const ResidualSpec& r, const ImageShape& out);

// A pooling window's geometry (torch.nn.MaxPool2d / AvgPool2d with dilation 1, ceil_mode false).
struct PoolShape {
  int C = 0;
  int H = 0;
  int W = 0;
  int kernel_h = 1;
  int kernel_w = 1;
  int stride_h = 1;  // PyTorch's default stride is the kernel: the caller fills it in
  int stride_w = 1;
  int pad_h = 0;
  int pad_w = 0;

  // out = floor((in + 2 pad - kernel) / stride) + 1.
  int out_h() const;
  int out_w() const;
  Eigen::Index in_rows() const;   // C H W
  Eigen::Index out_rows() const;  // C out_h out_w
  // Throws gradscope::Error naming `where` for a non-positive size, a padding above half the
  // kernel (PyTorch refuses it: a window could then hold padding only) or a kernel larger than the
  // padded input.
  void validate(const char* where) const;
};

// The kernels' shape of a pool op (its input shape resolved by expand_ops).
PoolShape pool_shape(const PoolSpec& pool);

// The row of the input column each max-pool output took its value from, (out_rows, batch).
using ArgmaxMat = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic>;

// Every function resizes its outputs and splits the batch between the pool's threads by the
// problem's shape alone: the results are the same bits whatever the thread count. Inputs of the
// wrong shape are a caller's bug (gradscope::Error with exit code 1).

// ---- Convolution: y[o, p] = b[o] + sum over (c, i, j) of W[o, c, i, j] x[g C_in/groups + c,
// p_h stride_h - pad_h + i dilation_h, p_w stride_w - pad_w + j dilation_w] (zero outside the
// input), o in group g. Computed per example as im2col and one product per group.

// x (in_rows, batch), weight (C_out, weight_cols), bias (C_out) or empty -> y (out_rows, batch).
template <class Scalar>
void conv2d_forward(const Mat<Scalar>& x, const Mat<Scalar>& weight, const Vec<Scalar>& bias,
                    const ConvShape& shape, Mat<Scalar>& y, ThreadPool& pool);

// dx = dL/dx (in_rows, batch) from dy = dL/dy (out_rows, batch): the transposed product, then
// col2im (each input cell summed over the windows that read it, in a fixed order).
template <class Scalar>
void conv2d_backward_data(const Mat<Scalar>& dy, const Mat<Scalar>& weight, const ConvShape& shape,
                          Mat<Scalar>& dx, ThreadPool& pool);

// dweight = dL/dW (C_out, weight_cols) and dbias = dL/db (C_out), summed over the batch: each
// chunk of kConvExamplesPerChunk examples in order into its own partial, the partials added in
// chunk order.
template <class Scalar>
void conv2d_backward_weight(const Mat<Scalar>& x, const Mat<Scalar>& dy, const ConvShape& shape,
                            Mat<Scalar>& dweight, Vec<Scalar>& dbias, ThreadPool& pool);

// Examples per partial sum of the weight gradient: a shape constant, never the thread count.
inline constexpr Eigen::Index kConvExamplesPerChunk = 8;

// ---- Max pooling: y = the largest x in the window, padding counted as -inf. The scan is PyTorch's
// (rows, then columns of the window): the first of equal maxima wins, and a NaN wins over any
// number (the last NaN of the scan, as PyTorch's CPU kernel), so NaN propagates.

// x (in_rows, batch) -> y (out_rows, batch), argmax (out_rows, batch): the input row chosen.
template <class Scalar>
void max_pool2d_forward(const Mat<Scalar>& x, const PoolShape& shape, Mat<Scalar>& y,
                        ArgmaxMat& argmax, ThreadPool& pool);

// dx[argmax[r]] += dy[r], in the order of the output rows.
template <class Scalar>
void max_pool2d_backward(const Mat<Scalar>& dy, const ArgmaxMat& argmax, const PoolShape& shape,
                         Mat<Scalar>& dx, ThreadPool& pool);

// ---- Average pooling, count_include_pad = true (PyTorch's default): y = (sum of the window's
// cells inside the input) / (kernel_h kernel_w). With ceil_mode false every window lies inside the
// padded input, so PyTorch's divisor is the kernel's area.

template <class Scalar>
void avg_pool2d_forward(const Mat<Scalar>& x, const PoolShape& shape, Mat<Scalar>& y,
                        ThreadPool& pool);

// dx[cell] = sum over the windows holding the cell of dy[window] / (kernel_h kernel_w).
template <class Scalar>
void avg_pool2d_backward(const Mat<Scalar>& dy, const PoolShape& shape, Mat<Scalar>& dx,
                         ThreadPool& pool);

// ---- Global average pooling: y[c] = (1 / (H W)) sum over h, w of x[c, h, w], (C, batch), as
// adaptive_avg_pool2d(x, 1) flattened.

// x (C H W, batch) -> y (C, batch). The shape's kernel, stride and padding are not read.
template <class Scalar>
void global_avg_pool_forward(const Mat<Scalar>& x, const PoolShape& shape, Mat<Scalar>& y,
                             ThreadPool& pool);

// dx[c, h, w] = dy[c] / (H W).
template <class Scalar>
void global_avg_pool_backward(const Mat<Scalar>& dy, const PoolShape& shape, Mat<Scalar>& dx,
                              ThreadPool& pool);

}  // namespace gradscope::ops
