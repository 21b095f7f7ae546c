// What a run will allocate, and what the machine has: a run is refused before it allocates
// anything when the first exceeds the second.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "gradscope/engine.hpp"
#include "gradscope/network.hpp"

namespace gradscope {

namespace {

// Sizes are counted in double: a config may ask for more than an int64 holds (1e6 layers of
// width 1.6e7), and such a run must be refused with its estimate, not overflow.
std::int64_t clamp_bytes(double bytes) {
  constexpr double kMax = 3.0e18;  // three of them still add up within int64
  return static_cast<std::int64_t>(std::min(bytes, kMax));
}

}  // namespace

MemoryEstimate estimate_memory(const RunSpec& spec) {
  const double scalar = spec.precision == Precision::kFloat32 ? 4.0 : 8.0;
  const double batch = spec.input.batch;
  double params = 0;
  double units = 0;
  double kept_slopes = 0;  // units whose phi'(h) the backward pass keeps beside y
  double widest = spec.input.width;
  double largest_matrix = 0;
  double fan_in = spec.input.width;
  // Counted without expanding the stack: a million-layer config must be cheap to refuse.
  auto add_layers = [&](double width, double count, const ActivationSpec& act) {
    if (count <= 0) return;
    if (act.kind != Activation::kSoftmax && !derivative_from_output(act))
      kept_slopes += width * count;
    params += width * fan_in + width + (count - 1) * (width * width + width);
    largest_matrix = std::max(largest_matrix, width * std::max(fan_in, count > 1 ? width : 0.0));
    units += width * count;
    widest = std::max(widest, width);
    fan_in = width;
  };
  double last_width = 0;
  bool whole_draw = spec.precision == Precision::kFloat64;
  double projections = 0;  // residual projections' entries
  double nesting = 0;      // residual blocks open at once: a skip gradient waits for each
  if (spec.layers.empty()) {
    add_layers(spec.stack.layer.width, spec.stack.depth, spec.stack.layer.activation);
    if (spec.output) add_layers(spec.output->width, 1, spec.output->activation);
    last_width = spec.output ? spec.output->width : spec.stack.layer.width;
    whole_draw = whole_draw || !init_is_elementwise(spec.stack.layer.init.kind) ||
                 (spec.output && !init_is_elementwise(spec.output->init.kind));
  } else {
    // A "layers" config is bounded in size by the config's own limits: expand it.
    const std::vector<OpSpec> ops = expand_ops(spec);
    const std::vector<int> widths = op_widths(spec, ops);
    std::vector<double> skip_width;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const double width = widths[i];
      switch (ops[i].kind) {
        case OpKind::kDense:
          add_layers(width, 1, ops[i].dense.activation);
          whole_draw = whole_draw || !init_is_elementwise(ops[i].dense.init.kind);
          break;
        case OpKind::kActivation:
          if (ops[i].activation.kind != Activation::kSoftmax &&
              !derivative_from_output(ops[i].activation)) {
            kept_slopes += width;
          }
          units += width;
          break;
        case OpKind::kResidualBegin:
          skip_width.push_back(fan_in);
          nesting = std::max(nesting, static_cast<double>(skip_width.size()));
          break;
        case OpKind::kResidualEnd:
          if (ops[i].residual.projection) {
            projections += width * skip_width.back();
            largest_matrix = std::max(largest_matrix, width * skip_width.back());
            whole_draw = true;
          }
          skip_width.pop_back();
          units += width;
          fan_in = width;
          break;
        default:  // norm and dropout: their output
          units += width;
          fan_in = width;
          widest = std::max(widest, width);
          break;
      }
    }
    last_width = widths.back();
  }
  MemoryEstimate m;
  m.weights_bytes = clamp_bytes((params + projections) * scalar);
  // y of every layer, phi'(h) where y does not determine it, the input batch and the probe.
  m.cache_bytes =
      clamp_bytes((units + kept_slopes + spec.input.width + last_width) * batch * scalar);
  // Two gradient buffers, the Grams, and the double draws of the input and the probe.
  m.work_bytes = clamp_bytes((2 + nesting) * widest * batch * scalar + 2 * batch * batch * scalar +
                             2 * widest * batch * 8);
  // Per worker: a task's block of rows, and the double draw of a weight matrix (whole for
  // orthogonal init or float64 networks, 32 columns at a time otherwise).
  m.per_thread_bytes = clamp_bytes(2 * kRowsPerTask * std::max(widest, batch) * scalar +
                                   (whole_draw ? largest_matrix : 32 * widest) * 8);
  return m;
}

std::int64_t available_memory_bytes() {
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    long long kib = -1;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "MemAvailable: %lld kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib >= 0) return static_cast<std::int64_t>(kib) * 1024;
  }
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) return static_cast<std::int64_t>(pages) * page;
  return -1;
}

}  // namespace gradscope
