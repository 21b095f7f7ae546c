// What a run will allocate, and the plan that fits it into the memory it may use: a run is refused
// before it allocates anything when even the leanest plan does not fit. Also what it will
// compute, for the time estimate. (What the machine has: system.cpp.) Why this file is long: the
// footprint model and the planner that searches it share the per-op Footprint and Candidate.
#include "gradscope/engine/memory.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "gradscope/core/error.hpp"
#include "gradscope/core/network.hpp"
#include "gradscope/core/number_format.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/theory/jacobian.hpp"

namespace gradscope {

namespace {

// Sizes are counted in double: a config may ask for more than an int64 holds (1e6 layers of
// width 1.6e7), and such a run must be refused with its estimate, not overflow.
std::int64_t clamp_bytes(double bytes) {
  constexpr double kMax = 3.0e18;  // three of them still add up within int64
  return static_cast<std::int64_t>(std::min(bytes, kMax));
}

// Per op, what a plan keeps or redoes. Values are named by the op producing them; `count` (the
// number of ops) names the network's input.
struct Footprint {
  std::vector<double> weight;     // bytes of weights that can be drawn again (0: none or loaded)
  std::vector<double> cache;      // bytes the backward pass reads: y, phi'(h), 1/std
  std::vector<double> value;      // bytes of y: what a checkpoint keeps
  std::vector<double> draw_cost;  // flop-equivalents to draw its weights again
  std::vector<double> redo_cost;  // flop-equivalents to compute it again
  std::vector<std::size_t> producer;  // the value entering each op
  std::vector<double> width;          // units of its output
  std::vector<double> product_in;     // the input width of its matrix product (dense, projection)
  std::vector<char> reported;         // 0 for a residual block's opening marker
  std::vector<std::pair<std::size_t, std::size_t>> skips;  // residual blocks: (begin, end)
  double loaded_weights = 0;  // bytes of weights from files: always kept
  double biases = 0;          // bytes of biases: always kept
};

// A normal costs about 1.3 ns to draw; a float multiply-add pair about 0.03 ns on one core.
constexpr double kDrawFlopsPerEntry = 40.0;

// Why this is long: one case per op kind of what it keeps, recomputes and costs, in one switch so
// that an op's whole footprint reads in one place.
Footprint footprint(const RunSpec& spec, const std::vector<bool>& loaded) {
  const double scalar = spec.precision == Precision::kFloat32 ? 4.0 : 8.0;
  const double batch = input_columns(spec.input);  // token vectors
  Footprint f;
  // A stack is a chain of dense layers, all alike but the output: a million-layer config is
  // described without expanding it.
  std::vector<OpSpec> ops;
  std::vector<int> widths;
  OpSpec hidden;
  OpSpec output;
  std::size_t count = 0;
  if (spec.layers.empty()) {
    hidden.dense = spec.stack.layer;
    if (spec.output) output.dense = *spec.output;
    count = static_cast<std::size_t>(spec.stack.depth) + (spec.output ? 1 : 0);
  } else {
    ops = expand_ops(spec);
    widths = op_widths(spec, ops);
    count = ops.size();
  }
  auto op_at = [&](std::size_t i) -> const OpSpec& {
    if (!ops.empty()) return ops[i];
    return i < static_cast<std::size_t>(spec.stack.depth) ? hidden : output;
  };
  auto width_at = [&](std::size_t i) -> double {
    if (!ops.empty()) return widths[i];
    return op_at(i).dense.width;
  };
  f.weight.assign(count, 0.0);
  f.cache.assign(count, 0.0);
  f.value.assign(count, 0.0);
  f.draw_cost.assign(count, 0.0);
  f.redo_cost.assign(count, 0.0);
  f.producer.assign(count, count);
  f.width.assign(count, 0.0);
  f.product_in.assign(count, 0.0);
  f.reported.assign(count, 1);
  std::vector<std::size_t> open;
  double fan_in = spec.input.width;
  for (std::size_t i = 0; i < count; ++i) {
    const OpSpec& op = op_at(i);
    std::size_t j = i;
    while (j > 0 && op_at(j - 1).kind == OpKind::kResidualBegin) --j;
    f.producer[i] = j == 0 ? count : j - 1;
    const double width = width_at(i);
    const double entries = width * batch;
    f.width[i] = width;
    auto add_weight = [&](double rows, double cols, bool elementwise, bool from_file) {
      const double bytes = rows * cols * scalar;
      if (from_file) {
        f.loaded_weights += bytes;
        return;
      }
      f.weight[i] = bytes;
      // Orthogonal weights need a QR of the whole matrix in double.
      f.draw_cost[i] =
          elementwise ? kDrawFlopsPerEntry * rows * cols : 4.0 * rows * cols * std::min(rows, cols);
    };
    const bool from_file = i < loaded.size() && loaded[i];
    switch (op.kind) {
      case OpKind::kResidualBegin:
        open.push_back(i);
        f.reported[i] = 0;
        continue;
      case OpKind::kDense:
        add_weight(width, fan_in, init_is_elementwise(op.dense.init.kind), from_file);
        f.biases += width * scalar;
        f.redo_cost[i] = 2.0 * width * fan_in * batch;
        f.product_in[i] = fan_in;
        if (op.dense.activation.kind != Activation::kSoftmax &&
            !derivative_from_output(op.dense.activation)) {
          f.cache[i] += entries * scalar;
        }
        break;
      case OpKind::kActivation:
        if (op.activation.kind != Activation::kSoftmax && !derivative_from_output(op.activation)) {
          f.cache[i] += entries * scalar;
        }
        f.redo_cost[i] = 10.0 * entries;
        break;
      case OpKind::kNorm:
        f.cache[i] += (op.norm.kind == NormKind::kBatchNorm ? width : batch) * 8.0;
        f.redo_cost[i] = 10.0 * entries;
        break;
      case OpKind::kResidualEnd: {
        const std::size_t begin = open.back();
        open.pop_back();
        f.skips.emplace_back(begin, i);
        if (op.residual.conv_projection()) {
          // The learned 1x1 convolution W (C_out, C_in); cached: the skip x (C_in H W) for dW,
          // the normalised projection (C_out H' W') and 1/std per channel for its norm.
          const double skip_width = begin == 0 ? spec.input.width : width_at(begin - 1);
          const double c_in = op.residual.skip_image.channels;
          add_weight(op.image.channels, c_in, init_is_elementwise(op.residual.projection_init.kind),
                     from_file);
          f.redo_cost[i] = 2.0 * entries * c_in;
          f.product_in[i] = c_in;
          f.cache[i] += (skip_width + (op.residual.projection_norm ? width : 0.0)) * batch * scalar;
          if (op.residual.projection_norm) f.cache[i] += op.image.channels * 8.0;
        } else if (op.residual.projection) {
          const double skip_width = begin == 0 ? spec.input.width : width_at(begin - 1);
          add_weight(width, skip_width, init_is_elementwise(op.residual.projection_init.kind),
                     from_file);
          f.redo_cost[i] = 2.0 * width * skip_width * batch;
          f.product_in[i] = skip_width;
        } else {
          f.redo_cost[i] = 2.0 * entries;
        }
        break;
      }
      case OpKind::kAttention: {
        // [Wq; Wk; Wv; Wo], the caches [q; k; v; o] and P per (example, head); the products and
        // the T x T scores of each head to compute again.
        const AttentionSpec& a = op.attention;
        const double count_w = a.output_projection ? 4.0 : 3.0;
        bool elementwise = true;
        for (const InitSpec& init : a.init)
          elementwise = elementwise && init_is_elementwise(init.kind);
        add_weight(count_w * width, fan_in, elementwise, from_file);
        if (a.bias) f.biases += count_w * width * scalar;
        const double tokens = spec.input.tokens;
        const double examples = spec.input.batch;
        f.cache[i] += 4.0 * entries * scalar + tokens * tokens * examples * a.heads * scalar;
        f.redo_cost[i] = 2.0 * count_w * width * fan_in * batch + 4.0 * tokens * batch * width;
        f.product_in[i] = fan_in;
        break;
      }
      case OpKind::kGlu: {
        // [W1; W3; W2^T], the caches [phi(h1); h3] and phi'(h1).
        const GluSpec& g = op.glu;
        bool elementwise = true;
        for (const InitSpec& init : g.init)
          elementwise = elementwise && init_is_elementwise(init.kind);
        add_weight(3.0 * g.hidden, fan_in, elementwise, from_file);
        if (g.bias) f.biases += (2.0 * g.hidden + width) * scalar;
        f.cache[i] += 3.0 * g.hidden * batch * scalar;
        f.redo_cost[i] = 6.0 * g.hidden * fan_in * batch;
        f.product_in[i] = fan_in;
        break;
      }
      case OpKind::kConv: {
        // W (channels, C_in / groups k_h k_w), phi'(h) as a dense layer keeps it; the products
        // again, one output position at a time.
        const ConvSpec& c = op.conv;
        add_weight(c.channels, c.fan_in(), init_is_elementwise(c.init.kind), from_file);
        if (c.bias) f.biases += c.channels * scalar;
        f.redo_cost[i] = 2.0 * entries * c.fan_in();
        f.product_in[i] = fan_in;
        if (c.activation.kind != Activation::kSoftmax && !derivative_from_output(c.activation)) {
          f.cache[i] += entries * scalar;
        }
        break;
      }
      default:  // dropout, pooling, flatten
        f.redo_cost[i] = 10.0 * entries;
        break;
    }
    f.value[i] = entries * scalar;
    f.cache[i] += f.value[i];
    fan_in = width;
  }
  return f;
}

// A candidate plan and its expected peak and extra cost (flop-equivalents beyond the
// all-in-memory plan).
struct Candidate {
  MemoryPlan plan;
  double peak = 0;
  double extra = 0;
};

// The checkpointed plan with segments of k ops, computing ops [0, tail) again and keeping the
// rest from the forward pass: checkpoints, the larger of the largest segment and the kept tail,
// and what is computed again. `base` is what every plan keeps besides.
Candidate checkpointed(const Footprint& f, std::size_t k, std::size_t tail, bool regenerate,
                       double base) {
  const std::size_t count = f.weight.size();
  std::vector<std::size_t> starts{0};
  for (std::size_t b = k; b < tail; b += k) starts.push_back(b);
  if (tail > 0 && tail < count) starts.push_back(tail);
  std::vector<char> retained(count + 1, 0);
  for (std::size_t s = 1; s < starts.size(); ++s) retained[f.producer[starts[s]]] = 1;
  for (const auto& [begin, end] : f.skips) {
    const auto next = std::upper_bound(starts.begin(), starts.end(), begin);
    if (next != starts.end() && *next <= end) retained[f.producer[begin]] = 1;
  }
  double checkpoints = 0;
  for (std::size_t p = 0; p < tail; ++p) checkpoints += retained[p] ? f.value[p] : 0.0;
  double largest_segment = 0;
  double largest_draw = 0;
  double kept = 0;
  double extra = 0;
  for (std::size_t s = 0; s < starts.size(); ++s) {
    const std::size_t end = s + 1 < starts.size() ? starts[s + 1] : count;
    double bytes = 0;
    for (std::size_t i = starts[s]; i < end; ++i) {
      largest_draw = std::max(largest_draw, regenerate ? f.weight[i] : 0.0);
      if (starts[s] >= tail) {
        kept += f.cache[i];  // kept from the forward pass; weights drawn one at a time
        extra += regenerate ? f.draw_cost[i] : 0.0;
      } else {
        bytes += f.cache[i] + (regenerate ? f.weight[i] : 0.0);
        extra += f.redo_cost[i] + (regenerate ? f.draw_cost[i] : 0.0);
      }
    }
    largest_segment = std::max(largest_segment, bytes);
  }
  Candidate c;
  c.plan.weights = regenerate ? WeightStorage::kRegenerated : WeightStorage::kKept;
  c.plan.checkpoint_every = static_cast<int>(k);
  c.plan.segments = static_cast<std::int64_t>(starts.size());
  c.plan.recomputed_ops = static_cast<std::int64_t>(tail);
  c.peak = base + checkpoints + std::max(largest_segment, kept) + largest_draw;
  c.extra = extra;
  return c;
}

// The same segments with the longest kept tail whose peak fits `room`: every op kept from the
// forward pass is one not computed again. The peak grows as the tail does, so a bisection finds
// it; the plan with the last segment alone is returned when even that does not fit.
Candidate with_longest_tail(const Footprint& f, std::size_t k, bool regenerate, double base,
                            double room) {
  const std::size_t count = f.weight.size();
  std::size_t hi = (count - 1) / k * k;  // fits, or nothing shorter will
  Candidate best = checkpointed(f, k, hi, regenerate, base);
  if (best.peak > room) return best;
  std::size_t lo = 0;  // the smallest tail start known not to fit, or 0
  if (checkpointed(f, k, 0, regenerate, base).peak <= room) {
    return checkpointed(f, k, 0, regenerate, base);
  }
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    const Candidate c = checkpointed(f, k, mid, regenerate, base);
    if (c.peak <= room) {
      hi = mid;
      best = c;
    } else {
      lo = mid;
    }
  }
  return best;
}

std::string plan_name(const MemoryPlan& plan) {
  std::string name = plan.weights == WeightStorage::kRegenerated ? "weights drawn again" : "";
  if (plan.checkpointed()) {
    if (!name.empty()) name += ", ";
    name += "checkpoints every " + std::to_string(plan.checkpoint_every) + " ops";
  }
  return name.empty() ? "everything in memory" : name;
}

}  // namespace

// Why this is long: every line item of the estimate (weights, activations, caches, statistics,
// scratch) with its own comment on why it is counted, summed in the order the report lists them.
MemoryEstimate estimate_memory(const RunSpec& spec) {
  const double scalar = spec.precision == Precision::kFloat32 ? 4.0 : 8.0;
  const double batch = input_columns(spec.input);  // token vectors
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
        case OpKind::kAttention: {
          // Weights and biases; cached: [q; k; v; o] (4 units a feature) and P, T x heads a token.
          const AttentionSpec& a = ops[i].attention;
          const double count_w = a.output_projection ? 4.0 : 3.0;
          params += count_w * width * fan_in + (a.bias ? count_w * width : 0.0);
          largest_matrix = std::max(largest_matrix, width * fan_in);
          for (const InitSpec& init : a.init) {
            whole_draw = whole_draw || !init_is_elementwise(init.kind);
          }
          units += 5.0 * width + static_cast<double>(spec.input.tokens) * a.heads;
          widest = std::max(widest, 4.0 * width);
          fan_in = width;
          break;
        }
        case OpKind::kGlu: {
          // Weights and biases; cached: [phi(h1); h3], phi'(h1) and the output.
          const GluSpec& g = ops[i].glu;
          params += 3.0 * g.hidden * fan_in + (g.bias ? 2.0 * g.hidden + width : 0.0);
          largest_matrix = std::max(largest_matrix, 3.0 * g.hidden * fan_in);
          for (const InitSpec& init : g.init) {
            whole_draw = whole_draw || !init_is_elementwise(init.kind);
          }
          units += 3.0 * g.hidden + width;
          widest = std::max(widest, 2.0 * g.hidden);
          fan_in = width;
          break;
        }
        case OpKind::kResidualBegin:
          skip_width.push_back(fan_in);
          nesting = std::max(nesting, static_cast<double>(skip_width.size()));
          break;
        case OpKind::kResidualEnd:
          if (ops[i].residual.conv_projection()) {
            // W (C_out, C_in); cached: the skip and, with the norm, the normalised projection;
            // working: dW and the skip and the gradient in double (counted in widest).
            const double c_in = ops[i].residual.skip_image.channels;
            const double c_out = ops[i].image.channels;
            projections += c_out * c_in;
            largest_matrix = std::max(largest_matrix, c_out * c_in);
            whole_draw = true;
            units += skip_width.back() + (ops[i].residual.projection_norm ? width : 0.0);
            widest = std::max({widest, width, skip_width.back()});
          } else if (ops[i].residual.projection) {
            projections += width * skip_width.back();
            largest_matrix = std::max(largest_matrix, width * skip_width.back());
            whole_draw = true;
          }
          skip_width.pop_back();
          units += width;
          fan_in = width;
          break;
        case OpKind::kConv: {
          // W and b; cached: y and phi'(h) as a dense layer; working: the columns of one example
          // (C_in / groups k_h k_w by the output's positions) and dW, x and delta in double.
          const ConvSpec& c = ops[i].conv;
          params += static_cast<double>(c.channels) * c.fan_in() + (c.bias ? c.channels : 0);
          largest_matrix = std::max(largest_matrix, static_cast<double>(c.channels) * c.fan_in());
          whole_draw = true;  // drawn whole, in double
          if (c.activation.kind != Activation::kSoftmax && !derivative_from_output(c.activation)) {
            kept_slopes += width;
          }
          units += width;
          widest = std::max({widest, width, fan_in});
          fan_in = width;
          break;
        }
        default:  // norm, dropout, pooling and flatten: their output
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

// What a plan keeps besides its checkpoints and segments: the input, the probe or targets and
// the pass's buffers (every plan), and the weights it keeps (all, or the biases and loaded ones).
double plan_base(const Footprint& f, const MemoryEstimate& all, bool regenerate) {
  double cache_all = 0;
  for (double c : f.cache) cache_all += c;
  const double io = std::max(0.0, static_cast<double>(all.cache_bytes) - cache_all);
  return io + static_cast<double>(all.work_bytes) +
         (regenerate ? f.loaded_weights + f.biases : static_cast<double>(all.weights_bytes));
}

std::vector<MemoryPlanOption> memory_plan_options(const RunSpec& spec, const MemoryEstimate& all,
                                                  const std::vector<bool>& loaded, double room) {
  const Footprint f = footprint(spec, loaded);
  const std::size_t count = f.weight.size();
  double cache_all = 0;
  double regenerable = 0;
  double draw_all = 0;
  double largest_draw = 0;
  for (std::size_t i = 0; i < count; ++i) {
    cache_all += f.cache[i];
    regenerable += f.weight[i];
    draw_all += f.draw_cost[i];
    largest_draw = std::max(largest_draw, f.weight[i]);
  }

  std::vector<Candidate> candidates;
  Candidate everything;
  everything.peak = static_cast<double>(all.total_bytes());
  candidates.push_back(everything);
  if (regenerable > 0) {
    Candidate drawn;
    drawn.plan.weights = WeightStorage::kRegenerated;
    drawn.peak = plan_base(f, all, true) + cache_all + largest_draw;
    drawn.extra = draw_all;
    candidates.push_back(drawn);
  }
  if (count > 1) {
    // Segment lengths on a geometric grid, and the square root of the depth beside it.
    candidates.reserve(candidates.size() + 200);  // `leanest` points into it
    std::vector<std::size_t> lengths;
    for (double k = 1; k < static_cast<double>(count); k = std::max(k + 1, std::ceil(k * 1.25))) {
      lengths.push_back(static_cast<std::size_t>(k));
    }
    const auto root = static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(count))));
    lengths.push_back(root);
    for (bool regenerate : {false, true}) {
      if (regenerate && regenerable <= 0) continue;
      const double base = plan_base(f, all, regenerate);
      const Candidate* leanest = nullptr;
      for (std::size_t k : lengths) {
        candidates.push_back(checkpointed(f, k, (count - 1) / k * k, regenerate, base));
        if (leanest == nullptr || candidates.back().peak < leanest->peak) {
          leanest = &candidates.back();
        }
      }
      // With room to spare, the leanest segment length keeps a longer tail from the forward
      // pass and computes that much less again.
      if (room >= 0 && leanest != nullptr && leanest->peak <= room) {
        const auto k = static_cast<std::size_t>(leanest->plan.checkpoint_every);
        candidates.push_back(with_longest_tail(f, k, regenerate, base, room));
      }
    }
  }
  std::vector<MemoryPlanOption> options;
  for (const Candidate& c : candidates) {
    MemoryPlanOption o;
    o.plan = c.plan;
    o.plan.peak_bytes = clamp_bytes(c.peak);
    o.extra_flops = c.extra;
    options.push_back(o);
  }
  // Cheapest first; at equal cost, the smaller peak.
  std::stable_sort(options.begin(), options.end(),
                   [](const MemoryPlanOption& a, const MemoryPlanOption& b) {
                     if (a.extra_flops != b.extra_flops) return a.extra_flops < b.extra_flops;
                     return a.plan.peak_bytes < b.plan.peak_bytes;
                   });
  return options;
}

MemoryPlan plan_with(const RunSpec& spec, const MemoryEstimate& all,
                     const std::vector<bool>& loaded, WeightStorage weights, int checkpoint_every,
                     std::int64_t recomputed_ops) {
  if (checkpoint_every == 0) {
    for (const MemoryPlanOption& o : memory_plan_options(spec, all, loaded)) {
      if (o.plan.weights == weights && !o.plan.checkpointed()) return o.plan;
    }
  }
  const Footprint f = footprint(spec, loaded);
  const std::size_t count = f.weight.size();
  const auto k = static_cast<std::size_t>(std::max(0, checkpoint_every));
  if (k == 0 || k >= count) {
    throw Error("no such memory plan: checkpoints every " + std::to_string(checkpoint_every) +
                    " ops in a network of " + std::to_string(count) + " ops",
                "use a segment length from 1 to the number of ops less one");
  }
  const std::size_t last = (count - 1) / k * k;
  const std::size_t tail =
      recomputed_ops >= 0 ? std::min(last, static_cast<std::size_t>(recomputed_ops)) : last;
  const bool regenerate = weights == WeightStorage::kRegenerated;
  const Candidate c = checkpointed(f, k, tail, regenerate, plan_base(f, all, regenerate));
  MemoryPlan plan = c.plan;
  plan.peak_bytes = clamp_bytes(c.peak);
  return plan;
}

MemoryPlan choose_memory_plan(const RunSpec& spec, const MemoryEstimate& all,
                              const std::vector<bool>& loaded, std::int64_t budget_bytes,
                              std::int64_t overhead_bytes, double slack, const KeptEstimate& kept) {
  // What every plan keeps besides its own data: its share of the room is taken first.
  const double kept_data = static_cast<double>(kept.total_bytes());
  // What a plan's data may take: the budget less the overhead, less the allocator's slack.
  const double room =
      (static_cast<double>(budget_bytes) - static_cast<double>(overhead_bytes)) / (1.0 + slack) -
      kept_data;
  auto needs = [&](double peak) {
    return (peak + kept_data) * (1.0 + slack) + static_cast<double>(overhead_bytes);
  };
  // The all-in-memory plan needs no footprint: a small run never expands anything twice.
  MemoryPlan everything;
  everything.peak_bytes = all.total_bytes();
  if (budget_bytes <= 0 || static_cast<double>(all.total_bytes()) <= room) return everything;
  const std::vector<MemoryPlanOption> options = memory_plan_options(spec, all, loaded, room);
  const MemoryPlanOption* leanest = &options.front();
  for (const MemoryPlanOption& o : options) {
    if (static_cast<double>(o.plan.peak_bytes) <= room) return o.plan;
    if (o.plan.peak_bytes < leanest->plan.peak_bytes) leanest = &o;
  }
  // Both plans' data in the same terms (with the allocator's slack), the process beside them:
  // the leanest plan is the smallest of the plans considered, everything in memory among them.
  const double lean_data = static_cast<double>(leanest->plan.peak_bytes) * (1.0 + slack);
  const double all_data = static_cast<double>(all.total_bytes()) * (1.0 + slack);
  const double report_data = static_cast<double>(kept.report_bytes) * (1.0 + slack);
  const double input_data = static_cast<double>(kept.input_copies_bytes) * (1.0 + slack);
  std::string what =
      "run refused: it needs an estimated " +
      format_bytes(clamp_bytes(needs(static_cast<double>(leanest->plan.peak_bytes)))) +
      " but the memory budget is " + format_bytes(budget_bytes) + ": " +
      format_bytes(clamp_bytes(lean_data)) + " of data with its leanest plan (" +
      plan_name(leanest->plan);
  if (leanest->plan.weights != WeightStorage::kKept || leanest->plan.checkpointed()) {
    what += "; everything in memory: " + format_bytes(clamp_bytes(all_data));
  }
  what += ")";
  if (kept.report_bytes > 0) {
    const std::string each = format_fixed(kReportMemoryBytesPerOp * (1.0 + slack) / 1e3, 1) + " KB";
    what += ", " + format_bytes(clamp_bytes(report_data)) +
            " for the statistics and report of its " + std::to_string(kept.reported_ops) +
            " ops (" + each + " each, under every plan)";
  }
  if (kept.input_copies_bytes > 0) {
    what += ", " + format_bytes(clamp_bytes(input_data)) + " for the copies of the input file";
  }
  if (overhead_bytes > 0) {
    what += " plus " + format_bytes(overhead_bytes) + " for the process and its threads' scratch";
  }
  // The hint speaks to the largest part.
  const double largest =
      std::max({lean_data, report_data, input_data, static_cast<double>(overhead_bytes)});
  std::string hint;
  if (static_cast<double>(overhead_bytes) >= static_cast<double>(budget_bytes)) {
    hint = "the process and its threads alone need " + format_bytes(overhead_bytes) +
           ": raise --memory-budget above that (fewer --threads need less scratch)";
  } else if (report_data > 0 && report_data == largest) {
    // The ops whose statistics and report would fit beside the leanest plan's data.
    const double spare = static_cast<double>(budget_bytes) - static_cast<double>(overhead_bytes) -
                         lean_data - input_data;
    const double fit = std::max(0.0, std::floor(spare / (kReportMemoryBytesPerOp * (1.0 + slack))));
    hint =
        "the statistics and report of every op dominate: reduce the number of layers "
        "(stack.depth; about " +
        std::to_string(static_cast<long long>(std::min(fit, 1e15))) +
        " ops fit this budget), or raise --memory-budget if the machine has more memory";
  } else if (input_data > 0 && input_data == largest) {
    hint =
        "the input file is held twice in double beside the network's copy: give fewer "
        "examples (rows), or raise --memory-budget if the machine has more memory";
  } else {
    hint = "reduce stack.depth, stack.width or input.batch, ";
    if (spec.precision == Precision::kFloat64) hint += "use \"precision\": \"float32\", ";
    hint += "or raise --memory-budget if the machine has more memory";
  }
  throw Error(what, hint);
}

std::optional<std::int64_t> parse_byte_size(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  const std::string number(text.substr(0, i));
  if (number.empty() || number.front() == '.' || std::count(number.begin(), number.end(), '.') > 1)
    return std::nullopt;
  std::string unit(text.substr(i));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // Binary multiples for K, M, G, T (with or without "iB"), decimal ones for KB, MB, GB, TB.
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr Unit kUnits[] = {{"", 1.0},     {"B", 1.0},      {"K", 0x1p10}, {"KIB", 0x1p10},
                                    {"M", 0x1p20}, {"MIB", 0x1p20}, {"G", 0x1p30}, {"GIB", 0x1p30},
                                    {"T", 0x1p40}, {"TIB", 0x1p40}, {"KB", 1e3},   {"MB", 1e6},
                                    {"GB", 1e9},   {"TB", 1e12}};
  for (const Unit& u : kUnits) {
    if (unit != u.name) continue;
    const double bytes = std::stod(number) * u.factor;
    if (!(bytes >= 1.0) || bytes > 9.0e18) return std::nullopt;
    return static_cast<std::int64_t>(bytes);
  }
  return std::nullopt;
}

RunWork estimate_run_work(const RunSpec& spec, const MemoryPlan& plan, int threads) {
  const Footprint f = footprint(spec, {});
  const std::size_t count = f.weight.size();
  const double batch = input_columns(spec.input);  // token vectors
  const double workers = threads > 0 ? threads : hardware_threads();
  // What `tasks` tasks gain on the workers: each thread beyond the first is worth 0.8 of one,
  // for the memory bandwidth they share and the waits at the end of each op.
  const auto speedup = [&](double tasks) {
    const double busy = std::clamp(std::ceil(tasks), 1.0, workers);
    return 1.0 + 0.8 * (busy - 1.0);
  };
  const bool adam = spec.optimizer.kind == OptimizerKind::kAdam;
  const bool regenerate = plan.weights == WeightStorage::kRegenerated;
  const std::size_t recomputed =
      plan.checkpointed() ? static_cast<std::size_t>(std::clamp<std::int64_t>(
                                plan.recomputed_ops, 0, static_cast<std::int64_t>(count)))
                          : 0;
  const double rows_per_task = kRowsPerTask;
  RunWork w;
  for (std::size_t i = 0; i < count; ++i) {
    const double width = f.width[i];
    const double n_in = f.product_in[i];
    // Forward passes over op i: one, and one more where its segment is computed again.
    const double passes = i < recomputed ? 2.0 : 1.0;
    if (n_in > 0) {
      const double forward = 2.0 * width * n_in * batch;
      // dL/dx below the first op is not needed.
      const double below = i > 0 ? forward : 0.0;
      // ||dL/dW|| from the two Grams when the batch is small beside the widths, else from dW
      // (and always from dW for Adam, which needs its entries).
      const bool grams = !adam && batch * (n_in + width) < 2.0 * n_in * width;
      const double weight_grad = grams ? batch * batch * (n_in + width) : forward;
      w.products += passes * forward + below + weight_grad;
      w.critical_path += passes * forward / speedup(width / rows_per_task) +
                         below / speedup(n_in / rows_per_task) +
                         weight_grad / speedup(grams ? 2.0 : width / rows_per_task);
    }
    // Histograms and statistics go in tasks of about 2^15 entries.
    const double elementwise = kElementwiseFlopsPerEntry * width * batch * passes;
    w.elementwise += elementwise;
    w.critical_path += elementwise / speedup(width * batch / 32768.0);
    // Kept weights are drawn once, one op a task; drawn again, in the forward pass, the backward
    // pass and each recomputation, 32 columns a task.
    const double draws = f.draw_cost[i] * (regenerate ? passes + 1.0 : 1.0);
    w.draws += draws;
    w.critical_path += draws / (regenerate ? speedup(n_in / 32.0) : speedup(workers));
    if (!regenerate) w.before_pass += draws / speedup(workers);
    if (f.reported[i]) {
      w.per_layer += kFlopsPerReportedLayer;
      w.critical_path += kFlopsPerReportedLayer;
    }
  }
  if (spec.stats.jacobian_examples > 0) {
    w.jacobian = jacobian_flops(spec, std::min(spec.stats.jacobian_examples, spec.input.batch));
    w.critical_path += w.jacobian;
  }
  return w;
}

std::int64_t reported_op_count(const RunSpec& spec) {
  if (spec.layers.empty())
    return static_cast<std::int64_t>(spec.stack.depth) + (spec.output ? 1 : 0);
  std::int64_t count = 0;
  for (const OpSpec& op : expand_ops(spec)) count += op.kind == OpKind::kResidualBegin ? 0 : 1;
  return count;
}

KeptEstimate estimate_kept_memory(const RunSpec& spec, std::int64_t file_input_entries,
                                  std::int64_t extra_held_bytes) {
  KeptEstimate k;
  k.reported_ops = reported_op_count(spec);
  k.report_bytes = clamp_bytes(static_cast<double>(k.reported_ops) * kReportMemoryBytesPerOp);
  // The values as read (Tensor::values) and the (width, batch) matrix the engine is given, both in
  // double; the network's own copy in its precision is the cache's input.
  k.input_copies_bytes = clamp_bytes(2.0 * 8.0 * static_cast<double>(file_input_entries) +
                                     static_cast<double>(extra_held_bytes));
  return k;
}

std::int64_t estimate_report_file_bytes(const RunSpec& spec, const ReportFiles& files) {
  // Each file's fixed part and bytes per op, measured with the release build on width-1 and
  // width-8 stacks of 1,000 to 10,000 layers, rounded up.
  const double ops = static_cast<double>(reported_op_count(spec));
  double bytes = 8e3 + kJsonReportBytesPerOp * ops;  // JSON: every op
  // Text: its header and findings, and a row for each shown op (190 bytes measured).
  bytes += 16e3 + 200.0 * std::min(ops, static_cast<double>(std::max(files.max_rows, 2)));
  if (files.markdown) bytes += 24e3;  // elided to 40 rows whatever the depth
  // HTML: the table (at most 200 rows), the histograms, and a point of its gradient and unit
  // charts per op (155 bytes per op measured at width 1, 645 at width 8).
  if (files.html) bytes += 350e3 + 700.0 * ops;
  // SVG: the histograms (270 KB), and the gradient and unit charts (650 bytes per op at width 8).
  if (files.svg) bytes += 300e3 + 700.0 * ops;
  if (files.save_weights) {
    const double scalar = spec.precision == Precision::kFloat32 ? 4.0 : 8.0;
    const double outputs = spec.layers.empty()
                               ? (spec.output ? spec.output->width : spec.stack.layer.width)
                               : op_widths(spec, expand_ops(spec)).back();
    // The parameters, the input and the targets, and a header entry per tensor.
    bytes += static_cast<double>(estimate_memory(spec).weights_bytes) +
             (spec.input.width + outputs) * input_columns(spec.input) * scalar + 4e3 + 200.0 * ops;
  }
  return clamp_bytes(bytes);
}

}  // namespace gradscope
