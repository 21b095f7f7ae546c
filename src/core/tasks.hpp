// How the passes cut work into ThreadPool tasks: by the problem's shape alone (kRowsPerTask units,
// or kColumnsPerTask examples), never by the thread count, so every partial sum is the same.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

#include "gradscope/core/network.hpp"
#include "gradscope/core/parallel.hpp"

namespace gradscope::ops {

// Examples handled by one task of a per-example (column-wise) computation.
inline constexpr Eigen::Index kColumnsPerTask = 32;

struct Range {
  Eigen::Index begin;
  Eigen::Index size;
};

inline std::int64_t tasks_for(Eigen::Index n, Eigen::Index per_task) {
  return (static_cast<std::int64_t>(n) + per_task - 1) / per_task;
}

inline Range task_range(std::int64_t task, Eigen::Index n, Eigen::Index per_task) {
  const Eigen::Index begin = static_cast<Eigen::Index>(task) * per_task;
  return {begin, std::min<Eigen::Index>(per_task, n - begin)};
}

inline std::int64_t row_tasks(Eigen::Index rows) { return tasks_for(rows, kRowsPerTask); }
inline Range task_rows(std::int64_t task, Eigen::Index rows) {
  return task_range(task, rows, kRowsPerTask);
}

// out = lhs * rhs with a block of out's rows a task: every core on one product, and the same bits
// whatever the thread count (the blocks follow the shape). `out` is sized by the caller; it may be
// a block of a larger matrix.
template <class Lhs, class Rhs, class Out>
void product_by_rows(const Lhs& lhs, const Rhs& rhs, Out&& out, ThreadPool& pool) {
  const Eigen::Index n = lhs.rows();
  pool.run(row_tasks(n), [&](std::int64_t t) {
    const Range r = task_rows(t, n);
    out.middleRows(r.begin, r.size).noalias() = lhs.middleRows(r.begin, r.size) * rhs;
  });
}

}  // namespace gradscope::ops
