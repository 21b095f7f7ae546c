// `gradscope coordcheck` (app/coordcheck.hpp): every width and seed trained, the rows gathered,
// fitted and judged.
#include "gradscope/app/coordcheck.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "app/coordcheck_detail.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/number_format.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/engine/train.hpp"

namespace gradscope {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

void check_axis(const std::vector<int>& values, const char* flag) {
  const std::set<int> distinct(values.begin(), values.end());
  if (distinct.size() < 2) {
    throw Error(std::string(flag) + ": give at least two different values",
                "a slope needs two points, e.g. " + std::string(flag) + " 64,128,256,512");
  }
  for (int v : values) {
    if (v < 1) {
      throw Error(std::string(flag) + ": " + std::to_string(v) + " is not a positive size",
                  "every value must be 1 or more");
    }
  }
}

struct Fit {
  double slope = kNaN;
  double spread = 0.0;
  bool overflow = false;  // a non-finite size somewhere
  bool all_zero = false;
};

// per_seed[s][i]: the size at axis value i for seed s.
Fit fit_rows(const std::vector<double>& log_axis,
             const std::vector<std::vector<double>>& per_seed) {
  Fit f;
  std::vector<double> slopes;
  bool zero_everywhere = true;
  for (const std::vector<double>& sizes : per_seed) {
    std::vector<double> y;
    for (double v : sizes) {
      if (!std::isfinite(v)) f.overflow = true;
      if (v != 0.0) zero_everywhere = false;
      y.push_back(v > 0.0 ? std::log2(v) : -kInf);
    }
    if (const std::optional<double> s = fit_slope(log_axis, y)) slopes.push_back(*s);
  }
  f.all_zero = zero_everywhere;
  if (slopes.size() != per_seed.size() || slopes.empty()) return f;
  double mean = 0.0;
  for (double s : slopes) mean += s;
  mean /= static_cast<double>(slopes.size());
  double var = 0.0;
  for (double s : slopes) var += (s - mean) * (s - mean);
  f.slope = mean;
  f.spread = slopes.size() > 1 ? std::sqrt(var / static_cast<double>(slopes.size() - 1)) : 0.0;
  return f;
}

template <class Row>
void judge(Row& row, const Fit& f, double tolerance) {
  row.slope = f.slope;
  row.spread = f.spread;
  if (f.overflow) {
    row.verdict = SlopeVerdict::kGrows;
  } else if (std::isnan(f.slope)) {
    row.verdict = f.all_zero ? SlopeVerdict::kFlat : SlopeVerdict::kShrinks;
  } else {
    row.verdict = judge_slope(f.slope, f.spread, row.expected_low, row.expected_high, tolerance);
  }
}

// How far a row lies outside its band (0 when FLAT; inf for an overflow).
template <class Row>
double outside(const Row& row, double tolerance) {
  if (row.verdict == SlopeVerdict::kFlat) return 0.0;
  if (std::isnan(row.slope)) return kInf;
  const double band = std::max(tolerance, 2.0 * row.spread);
  return row.verdict == SlopeVerdict::kGrows ? row.slope - band - row.expected_high
                                             : row.expected_low - row.slope - band;
}

double mean_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

std::string CoordCheckJob::label() const {
  return std::string(depth ? "depth " : "width ") + std::to_string(value) + ", seed " +
         std::to_string(seed + 1);
}

CoordCheckPlan plan_coordcheck(const RunSpec& base, const CoordCheckSpec& check) {
  check_axis(check.widths, "--widths");
  if (!check.depths.empty()) check_axis(check.depths, "--depths");
  if (check.seeds < 1) throw Error("--seeds: must be 1 or more", "e.g. --seeds 4");
  if (check.train.steps < 1) throw Error("--steps: must be 1 or more", "e.g. --steps 3");
  CoordCheckPlan plan;
  plan.base = base;
  plan.check = check;
  const int config_d = config_depth(base);
  plan.base_width = check.base_width > 0 ? check.base_width : config_model_width(base);
  plan.base_depth = check.base_depth > 0 ? check.base_depth : std::max(config_d, 1);
  if (!check.depths.empty() && config_d == 0) {
    throw Error("--depths: the config has no repeated block whose count a depth could set",
                "give one item of \"layers\" a \"repeat\", use a transformer item, or a stack "
                "config; or leave out --depths");
  }
  plan.width_depth = std::max(config_d, 1);
  for (std::vector<int>* axis : {&plan.check.widths, &plan.check.depths}) {
    std::sort(axis->begin(), axis->end());
    axis->erase(std::unique(axis->begin(), axis->end()), axis->end());
  }
  // Every config first, so that a malformed one stops the check before any training.
  for (int w : plan.check.widths) {
    plan.width_configs.push_back(
        scale_config(base, check, plan.base_width, plan.base_depth, w, plan.width_depth));
  }
  for (int d : plan.check.depths) {
    plan.depth_configs.push_back(
        scale_config(base, check, plan.base_width, plan.base_depth, plan.base_width, d));
  }
  for (int axis = 0; axis < 2; ++axis) {
    const std::vector<int>& values = axis == 0 ? plan.check.widths : plan.check.depths;
    for (std::size_t i = 0; i < values.size(); ++i) {
      for (int s = 0; s < check.seeds; ++s) {
        CoordCheckJob job;
        job.depth = axis == 1;
        job.index = static_cast<int>(i);
        job.value = values[i];
        job.seed = s;
        job.file = std::string(job.depth ? "depth-" : "width-") + std::to_string(job.value) +
                   "-seed-" + std::to_string(s + 1) + ".json";
        plan.jobs.push_back(std::move(job));
      }
    }
  }
  // Memory: each run holds its network as a run does, and besides Adam's two moments in the
  // network's precision, the weight gradients in double, and every op's output at init and now in
  // double.
  for (const ScaledConfig* c :
       {&plan.width_configs.back(),
        plan.depth_configs.empty() ? nullptr : &plan.depth_configs.back()}) {
    if (c == nullptr) continue;
    const MemoryEstimate m = estimate_memory(c->spec);
    const std::int64_t scalar = c->spec.precision == Precision::kFloat64 ? 8 : 4;
    const std::int64_t params = m.weights_bytes / scalar;
    const std::int64_t bytes = m.total_bytes() + m.per_thread_bytes + params * (2 * scalar + 8) +
                               2 * m.cache_bytes * (8 / scalar);
    plan.largest_run_bytes = std::max(plan.largest_run_bytes, bytes);
  }
  return plan;
}

TrainTrace run_coordcheck_job(const CoordCheckPlan& plan, const CoordCheckJob& job,
                              ThreadPool& pool) {
  ScaledConfig c = job.depth ? plan.depth_configs[static_cast<std::size_t>(job.index)]
                             : plan.width_configs[static_cast<std::size_t>(job.index)];
  c.spec.seed = plan.base.seed + static_cast<std::uint64_t>(job.seed);
  return train_trace(c, plan.check.train, pool);
}

namespace detail {

int coordcheck_runs_at_once(const CoordCheckPlan& plan, int threads) {
  // The largest run must fit what the machine has; as many run at once as fit.
  int at_once = threads > 0 ? threads : hardware_threads();
  if (const std::int64_t available = available_memory_bytes(); available > 0) {
    // A tenth kept for the process itself and the allocator's slack.
    const std::int64_t budget = available - available / 10;
    if (plan.largest_run_bytes > budget) {
      throw Error(
          "coordcheck: the largest run needs about " + format_bytes(plan.largest_run_bytes) +
              " (the network, Adam's state, its gradients and its outputs), more than the " +
              format_bytes(budget) + " this machine has available",
          "drop the largest --widths (or --depths), or run where there is more memory");
    }
    at_once = static_cast<int>(std::clamp<std::int64_t>(
        budget / std::max<std::int64_t>(plan.largest_run_bytes, 1), 1, at_once));
  }
  return at_once;
}

void run_coordcheck_jobs(const CoordCheckPlan& plan, const std::vector<std::size_t>& jobs,
                         int threads, const std::function<void(std::size_t, TrainTrace)>& done) {
  const int at_once = coordcheck_runs_at_once(plan, threads);
  // Every (config, seed) run is one task of the pool, each on one thread of its own: a check is
  // many small runs, and the runs' results do not depend on their threads.
  ThreadPool pool(at_once);
  std::mutex mutex;
  pool.run(static_cast<std::int64_t>(jobs.size()), [&](std::int64_t j) {
    const std::size_t job = jobs[static_cast<std::size_t>(j)];
    ThreadPool one(1);
    TrainTrace trace = run_coordcheck_job(plan, plan.jobs[job], one);
    std::lock_guard lock(mutex);
    done(job, std::move(trace));
  });
}

}  // namespace detail

CoordCheckResult run_coordcheck(const RunSpec& base, const CoordCheckSpec& check, int threads,
                                const CoordCheckProgress& progress) {
  const CoordCheckPlan plan = plan_coordcheck(base, check);
  std::vector<std::size_t> all(plan.jobs.size());
  for (std::size_t j = 0; j < all.size(); ++j) all[j] = j;
  std::vector<TrainTrace> traces(plan.jobs.size());
  int done = 0;
  detail::run_coordcheck_jobs(plan, all, threads, [&](std::size_t j, TrainTrace t) {
    traces[j] = std::move(t);
    ++done;
    if (progress) progress(done, static_cast<int>(all.size()), plan.jobs[j].label());
  });
  return coordcheck_result(plan, std::move(traces));
}

CoordCheckResult coordcheck_result(const CoordCheckPlan& plan,
                                   std::vector<TrainTrace> done_traces) {
  const CoordCheckSpec& check = plan.check;
  const std::vector<int>& widths = check.widths;
  const std::vector<int>& depths = check.depths;
  const std::vector<ScaledConfig>& width_configs = plan.width_configs;
  const std::vector<ScaledConfig>& depth_configs = plan.depth_configs;
  CoordCheckResult result;
  result.name = plan.base.name;
  result.spec = check;
  result.base_width = plan.base_width;
  result.base_depth = plan.base_depth;
  const ScaledConfig& largest = width_configs.back();
  result.multipliers = largest.tensors;
  result.multipliers_width = largest.width;
  if (!depth_configs.empty()) result.depth_residual_scale = depth_configs.back().residual_scale;

  // traces[w][s], then dtraces[d][s]
  std::vector<std::vector<TrainTrace>> traces(widths.size());
  std::size_t next = 0;
  for (std::size_t i = 0; i < widths.size(); ++i) {
    for (int s = 0; s < check.seeds; ++s) traces[i].push_back(std::move(done_traces[next++]));
  }
  std::vector<std::vector<TrainTrace>> dtraces(depths.size());
  for (std::size_t i = 0; i < depths.size(); ++i) {
    for (int s = 0; s < check.seeds; ++s) dtraces[i].push_back(std::move(done_traces[next++]));
  }

  // ---- The width check's rows.
  const std::size_t steps = static_cast<std::size_t>(check.train.steps);
  std::vector<double> log_w;
  for (int w : widths) log_w.push_back(std::log2(static_cast<double>(w)));
  const std::vector<OpSpec> ops = expand_ops(width_configs.front().spec);
  int readout_op = static_cast<int>(ops.size());
  for (const TensorMultipliers& t : width_configs.front().tensors) {
    if (t.role == TensorRole::kOutput) readout_op = t.op;
  }
  const std::vector<TensorMultipliers>& tensors = width_configs.front().tensors;
  auto add_row = [&](CoordRow row, auto&& value_l1, auto&& value_rms) {
    std::vector<std::vector<double>> per_seed(static_cast<std::size_t>(check.seeds));
    for (std::size_t i = 0; i < widths.size(); ++i) {
      std::vector<double> l1s, rmss;
      for (int s = 0; s < check.seeds; ++s) {
        const TrainTrace& t = traces[i][static_cast<std::size_t>(s)];
        l1s.push_back(value_l1(t));
        rmss.push_back(value_rms(t));
        per_seed[static_cast<std::size_t>(s)].push_back(l1s.back());
      }
      row.l1.push_back(mean_of(l1s));
      row.rms.push_back(mean_of(rmss));
    }
    judge(row, fit_rows(log_w, per_seed), check.tolerance);
    result.rows.push_back(std::move(row));
  };
  auto make_row = [](int op, const std::string& label, TensorRole role, CoordQuantity q,
                     std::size_t step, double low, double high) {
    CoordRow row;
    row.op = op;
    row.label = label;
    row.role = role;
    row.quantity = q;
    row.step = static_cast<int>(step);
    row.expected_low = low;
    row.expected_high = high;
    return row;
  };
  for (std::size_t l = 0; l < ops.size(); ++l) {
    if (ops[l].kind == OpKind::kResidualBegin) continue;
    const int li = static_cast<int>(l);
    const std::string label =
        "ops." + std::to_string(l) + " " + std::string(layer_kind_name(ops[l].kind));
    const bool output_side = li >= readout_op;
    const TensorRole side = output_side ? TensorRole::kOutput : TensorRole::kHidden;
    // μP: the readout's output shrinks as width^-1/2 at init and is O(1) once trained; SP keeps it
    // O(1): either is fine. Every other output stays O(1).
    const double size_low = output_side ? -0.5 : 0.0;
    for (std::size_t t = 0; t <= steps; ++t) {
      add_row(
          make_row(li, label, side, CoordQuantity::kSize, t, size_low, 0.0),
          [&](const TrainTrace& tr) { return tr.out_l1[t][l]; },
          [&](const TrainTrace& tr) { return tr.out_rms[t][l]; });
    }
    // Every output moves by O(1) under μP.
    for (std::size_t t = 1; t <= steps; ++t) {
      add_row(
          make_row(li, label, side, CoordQuantity::kChange, t, 0.0, 0.0),
          [&](const TrainTrace& tr) { return tr.change_l1[t][l]; },
          [&](const TrainTrace& tr) { return tr.change_rms[t][l]; });
    }
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (tensors[k].op != li) continue;
      // μP moves each entry of a matrix whose fan-in grows by O(1/width) (hidden, output), and of
      // input weights and vectors by O(1).
      const TensorRole role = tensors[k].role;
      const double band = role == TensorRole::kHidden || role == TensorRole::kOutput ? -1.0 : 0.0;
      for (std::size_t t = 1; t <= steps; ++t) {
        add_row(
            make_row(li, tensors[k].name, role, CoordQuantity::kUpdate, t, band, band),
            [&](const TrainTrace& tr) { return tr.update_l1[t][k]; },
            [&](const TrainTrace& tr) { return tr.update_rms[t][k]; });
      }
    }
  }

  // ---- The depth check, at the base width: the last repeated block and what follows it.
  if (!depths.empty()) {
    std::vector<double> log_d;
    for (int d : depths) log_d.push_back(std::log2(static_cast<double>(d)));
    // Ops are matched across depths by their place from the end: the last block and the ops
    // after it are the same ops at every depth. The final residual stream is the last residual
    // sum's output (a final norm after it would hide its size), else the last op.
    const auto stream_offset = [](const std::vector<OpSpec>& d_ops) {
      std::size_t last = d_ops.size() - 1;
      for (std::size_t l = 0; l < d_ops.size(); ++l) {
        if (d_ops[l].kind == OpKind::kResidualEnd) last = l;
      }
      return d_ops.size() - 1 - last;
    };
    const std::vector<OpSpec> shallow = expand_ops(depth_configs[0].spec);
    const std::vector<OpSpec> deeper = expand_ops(depth_configs[1].spec);
    const std::size_t block =
        (deeper.size() - shallow.size()) / static_cast<std::size_t>(depths[1] - depths[0]);
    const std::size_t after = stream_offset(shallow);  // ops after the stream
    const std::size_t tail = std::min(block + after, shallow.size());
    std::vector<std::size_t> d_size(depths.size());
    for (std::size_t i = 0; i < depths.size(); ++i) {
      d_size[i] = expand_ops(depth_configs[i].spec).size();
    }
    // The stream stays O(1): flat. With alpha > 1/2 the branches' sum shrinks as L^(1/2 - alpha)
    // while the input's share stays, so the size may fall towards it at up to that rate; what
    // reads the stream scales with it. Its change since init is O(1) too, and approaches that
    // limit from above at finite depth when alpha > 1/2 (each of L blocks moves it by 1/L).
    const double alpha = depth_alpha(check.parametrization);
    const double low = std::min(0.0, 0.5 - alpha);
    for (std::size_t o = tail; o-- > 0;) {  // op order: the farthest from the end first
      const std::size_t at_width_depth = ops.size() - 1 - o;
      if (shallow[shallow.size() - 1 - o].kind == OpKind::kResidualBegin) continue;
      const bool stream = o == after;
      for (const CoordQuantity q : {CoordQuantity::kSize, CoordQuantity::kChange}) {
        // Changes only for the stream and what reads it after the last block: inside a block
        // its share of the update depends on the block's place, for which no band holds.
        if (q == CoordQuantity::kChange && o > after) continue;
        for (std::size_t t = q == CoordQuantity::kSize ? 0 : 1; t <= steps; ++t) {
          DepthRow row;
          row.op = static_cast<int>(at_width_depth);
          row.label = "ops." + std::to_string(at_width_depth) + " " +
                      std::string(layer_kind_name(ops[at_width_depth].kind));
          row.stream = stream;
          row.quantity = q;
          row.step = static_cast<int>(t);
          std::vector<std::vector<double>> per_seed(static_cast<std::size_t>(check.seeds));
          for (std::size_t i = 0; i < depths.size(); ++i) {
            const std::size_t l = d_size[i] - 1 - o;
            std::vector<double> l1s, rmss;
            for (int s = 0; s < check.seeds; ++s) {
              const TrainTrace& tr = dtraces[i][static_cast<std::size_t>(s)];
              const bool size = q == CoordQuantity::kSize;
              l1s.push_back(size ? tr.out_l1[t][l] : tr.change_l1[t][l]);
              rmss.push_back(size ? tr.out_rms[t][l] : tr.change_rms[t][l]);
              per_seed[static_cast<std::size_t>(s)].push_back(rmss.back());
            }
            row.l1.push_back(mean_of(l1s));
            row.rms.push_back(mean_of(rmss));
          }
          row.expected_low = low;
          row.expected_high = 0.0;
          judge(row, fit_rows(log_d, per_seed), check.tolerance);
          result.depth_rows.push_back(std::move(row));
        }
      }
    }
  }

  // ---- The worst rows.
  double worst = 0.0;
  for (std::size_t i = 0; i < result.rows.size(); ++i) {
    const double o = outside(result.rows[i], check.tolerance);
    // Ties (rows without a slope are infinitely outside) go to the earliest step: where a
    // network first overflows.
    const bool earlier =
        result.worst >= 0 && o == worst &&
        result.rows[i].step < result.rows[static_cast<std::size_t>(result.worst)].step;
    if (result.rows[i].verdict != SlopeVerdict::kFlat &&
        (result.worst < 0 || o > worst || earlier)) {
      worst = o;
      result.worst = static_cast<int>(i);
    }
  }
  double worst_d = 0.0;
  for (std::size_t i = 0; i < result.depth_rows.size(); ++i) {
    const double o = outside(result.depth_rows[i], check.tolerance);
    const bool earlier = result.worst_depth >= 0 && o == worst_d &&
                         result.depth_rows[i].step <
                             result.depth_rows[static_cast<std::size_t>(result.worst_depth)].step;
    if (result.depth_rows[i].verdict != SlopeVerdict::kFlat &&
        (result.worst_depth < 0 || o > worst_d || earlier)) {
      worst_d = o;
      result.worst_depth = static_cast<int>(i);
    }
  }
  return result;
}

}  // namespace gradscope
