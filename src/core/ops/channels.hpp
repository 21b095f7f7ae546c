// An image batch (C H W, batch) seen per channel: BatchNorm2d normalises each channel over the
// batch and the positions, which is the batch norm of the (C, H W batch) matrix whose row c holds
// channel c's values (column b H W + p for position p of example b). Shared by the norm op and
// the residual projection's norm.
#pragma once

#include <Eigen/Core>

#include "gradscope/core/network.hpp"

namespace gradscope::ops {

// x (C H W, batch) -> (C, H W batch).
template <class Scalar>
Mat<Scalar> to_channels(const Mat<Scalar>& x, Eigen::Index channels) {
  const Eigen::Index hw = x.rows() / channels;
  Mat<Scalar> out(channels, hw * x.cols());
  for (Eigen::Index b = 0; b < x.cols(); ++b) {
    for (Eigen::Index c = 0; c < channels; ++c) {
      out.row(c).segment(b * hw, hw) = x.col(b).segment(c * hw, hw).transpose();
    }
  }
  return out;
}

// z (C, H W batch) -> x (C H W, batch).
template <class Scalar>
void from_channels(const Mat<Scalar>& z, Eigen::Index batch, Mat<Scalar>& x) {
  const Eigen::Index channels = z.rows();
  const Eigen::Index hw = z.cols() / batch;
  x.resize(channels * hw, batch);
  for (Eigen::Index b = 0; b < batch; ++b) {
    for (Eigen::Index c = 0; c < channels; ++c) {
      x.col(b).segment(c * hw, hw) = z.row(c).segment(b * hw, hw).transpose();
    }
  }
}

}  // namespace gradscope::ops
