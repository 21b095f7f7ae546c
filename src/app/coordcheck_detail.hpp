// What the coordinate check's two files share (private to src/app/): running a set of the plan's
// jobs on a pool sized to the machine's memory.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "gradscope/app/coordcheck.hpp"

namespace gradscope::detail {

// How many runs go at once: `threads` (0: one per core), fewer when the memory the machine has
// available holds fewer of the largest run. Throws Error when it does not hold one.
int coordcheck_runs_at_once(const CoordCheckPlan& plan, int threads);

// Runs plan.jobs[j] for every j of `jobs`, as many at once as `threads` (0: one per core) and the
// memory the machine has available allow, each on one thread of its own; `done` gets each job's
// index and trace as it finishes, one call at a time. Throws Error before running anything when
// the largest run does not fit the memory available.
void run_coordcheck_jobs(const CoordCheckPlan& plan, const std::vector<std::size_t>& jobs,
                         int threads, const std::function<void(std::size_t, TrainTrace)>& done);

}  // namespace gradscope::detail
