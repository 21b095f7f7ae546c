// The whole diagnostic of one run: check the memory it needs, build the network, run the passes,
// assemble the report.
#pragma once

#include <cstdint>

#include "gradscope/report.hpp"
#include "gradscope/spec.hpp"

namespace gradscope {

struct RunOptions {
  int threads = 0;                      // 0: one per hardware core; results do not depend on it
  std::int64_t memory_limit_bytes = 0;  // 0: the machine's available memory
};

// What the run will allocate: weights in the network's precision, the activations and
// derivatives the backward pass keeps, and the pass's own buffers.
MemoryEstimate estimate_memory(const RunSpec& spec);

// MemAvailable from the kernel (or physical memory when that is unknown); -1 if unknown.
std::int64_t available_memory_bytes();

// Throws gradscope::Error (exit code 2) before allocating anything when the estimate exceeds the
// limit.
Report run_diagnostic(const RunSpec& spec, const RunOptions& options = {});

}  // namespace gradscope
