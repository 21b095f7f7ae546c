// The backward pass's gradient scale (scaled_grad.hpp): exact power-of-two rescaling, sums of
// gradients at different scales, and the unscaled copies the tests read.
#include "core/scaled_grad.hpp"

#include <algorithm>
#include <cmath>

#include "core/tasks.hpp"

namespace gradscope::ops {

template <class Scalar>
int rescale(Mat<Scalar>& g, const GradPartial& stats, std::int64_t& exp2, ThreadPool& pool) {
  if (stats.squares.finite == 0) return 0;
  const double ms = stats.squares.sum / static_cast<double>(stats.squares.finite);
  if (!(ms > 0.0) || !std::isfinite(ms)) return 0;
  const int e = std::ilogb(ms) / 2 + stats.squares.exp;
  if (e <= kRescaleBits && e >= -kRescaleBits) return 0;
  const Scalar factor = std::ldexp(Scalar(1), -e);
  pool.run(row_tasks(g.rows()), [&](std::int64_t t) {
    const Range r = task_rows(t, g.rows());
    g.middleRows(r.begin, r.size) *= factor;
  });
  exp2 += e;
  return e;
}

// Brings a (stored / 2^ea) and b (stored / 2^eb) to a common exponent and returns a + b in a.
template <class Scalar>
void add_scaled(Mat<Scalar>& a, std::int64_t& ea, const Mat<Scalar>& b, std::int64_t eb) {
  if (ea >= eb) {
    a += b * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(eb - ea, -2000)));
  } else {
    a = a * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(ea - eb, -2000))) + b;
    ea = eb;
  }
}

template <class Scalar>
Eigen::MatrixXd unscaled(const Mat<Scalar>& g, std::int64_t exp2) {
  return g.template cast<double>() * std::ldexp(1.0, static_cast<int>(exp2));
}

template int rescale<float>(Mat<float>&, const GradPartial&, std::int64_t&, ThreadPool&);
template int rescale<double>(Mat<double>&, const GradPartial&, std::int64_t&, ThreadPool&);
template void add_scaled<float>(Mat<float>&, std::int64_t&, const Mat<float>&, std::int64_t);
template void add_scaled<double>(Mat<double>&, std::int64_t&, const Mat<double>&, std::int64_t);
template Eigen::MatrixXd unscaled<float>(const Mat<float>&, std::int64_t);
template Eigen::MatrixXd unscaled<double>(const Mat<double>&, std::int64_t);

}  // namespace gradscope::ops
