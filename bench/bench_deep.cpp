// The deep job: a very deep dense stack under a memory budget, against the matrix products alone.
// Prints the plan chosen, the wall time of the whole diagnostic (every statistic), its peak
// resident memory, and the time of the same products done the plain way, measured in the same run.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gradscope/core/network.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/engine/engine.hpp"

#ifdef GRADSCOPE_HAVE_OPENBLAS
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
}

// The three products of a training step per layer, W x forward, then dW = g x^T and W^T g
// backward, on a ring of 8 weight and activation buffers: the time of a product does not depend
// on which buffer it reads, and 10,000 layers of weights would not fit. W = 1/width keeps every
// value near 1, away from the slow denormal range.
double plain_products(int depth, int width, int batch) {
#ifdef GRADSCOPE_HAVE_OPENBLAS
  // gradscope runs OpenBLAS single-threaded inside its own tasks; the baseline gets every core.
  openblas_set_num_threads(gradscope::hardware_threads());
#endif
  using M = Eigen::MatrixXf;
  constexpr int kRing = 8;
  const float v = 1.0f / static_cast<float>(width);
  std::vector<M> w(kRing, M::Constant(width, width, v));
  std::vector<M> y(kRing + 1, M::Constant(width, batch, 1.0f));
  M g = M::Constant(width, batch, 1.0f);
  M below(width, batch);
  M dw(width, width);
  const auto t0 = Clock::now();
  for (int l = 0; l < depth; ++l) y[(l + 1) % kRing].noalias() = w[l % kRing] * y[l % kRing];
  for (int l = depth; l-- > 0;) {
    dw.noalias() = g * y[l % kRing].transpose();
    below.noalias() = w[l % kRing].transpose() * g;
    g.swap(below);
  }
  const double s = seconds_since(t0);
  if (!(dw(0, 0) == dw(0, 0))) std::puts("");  // keep the products observable
  return s;
}

const char* storage_name(gradscope::WeightStorage w) {
  return w == gradscope::WeightStorage::kRegenerated ? "regenerated" : "kept";
}

}  // namespace

int main(int argc, char** argv) {
  const int depth = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int width = argc > 2 ? std::atoi(argv[2]) : 1024;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 256;
  const std::string budget_text = argc > 4 ? argv[4] : "4GiB";
  const auto budget = gradscope::parse_byte_size(budget_text);
  if (!budget) {
    std::fprintf(stderr, "bench_deep: %s is not a size such as 4GiB\n", budget_text.c_str());
    return 2;
  }

  gradscope::RunSpec spec;
  spec.name = "deep";
  spec.seed = 1;
  spec.input.width = width;
  spec.input.batch = batch;
  spec.stack.depth = depth;
  spec.stack.layer.width = width;
  spec.stack.layer.activation = gradscope::default_spec(gradscope::Activation::kRelu);
  spec.stack.layer.init.kind = gradscope::Init::kHeNormal;

  if (argc > 5 && std::string(argv[5]) == "plans") {
    // Every plan at this depth, forced, against the products: what each trade costs.
    const double plain = plain_products(depth, width, batch);
    std::printf("plans at depth %d, width %d, batch %d; plain products %.2f s\n", depth, width,
                batch, plain);
    const int root = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(depth))));
    for (const auto w : {gradscope::WeightStorage::kKept, gradscope::WeightStorage::kRegenerated}) {
      for (int every : {0, root}) {
        gradscope::RunOptions forced;
        forced.plan = gradscope::MemoryPlan{};
        forced.plan->weights = w;
        forced.plan->checkpoint_every = every;
        const auto t = Clock::now();
        const gradscope::Report r = gradscope::run_diagnostic(spec, forced);
        const double s = seconds_since(t);
        std::printf("  weights %-11s checkpoints every %3d: %.2f s  ratio %.2f  peak %.2f GiB\n",
                    storage_name(w), every, s, s / plain,
                    static_cast<double>(r.memory.plan.peak_bytes) / (1024.0 * 1024.0 * 1024.0));
      }
    }
    return 0;
  }

  // The diagnostic first, so that the process's peak resident memory is its peak.
  gradscope::RunOptions options;
  options.memory_limit_bytes = *budget;
  const double rss_before = peak_rss_bytes();
  const auto t0 = Clock::now();
  const gradscope::Report report = gradscope::run_diagnostic(spec, options);
  const double run = seconds_since(t0);
  const double rss = peak_rss_bytes();
  if (report.layers.size() != static_cast<std::size_t>(depth)) return 1;

  const double plain = plain_products(depth, width, batch);
  const gradscope::MemoryPlan& plan = report.memory.plan;
  const double gib = 1024.0 * 1024.0 * 1024.0;
  std::printf("deep job: depth %d, width %d, batch %d, relu, he_normal, float32, budget %s\n",
              depth, width, batch, budget_text.c_str());
  std::printf("  all in memory would need       %.1f GiB\n",
              static_cast<double>(report.memory.total_bytes()) / gib);
  std::printf("  plan: weights %s, checkpoints every %d ops (%lld segments, %lld ops recomputed)\n",
              storage_name(plan.weights), plan.checkpoint_every,
              static_cast<long long>(plan.segments), static_cast<long long>(plan.recomputed_ops));
  std::printf("  expected peak (data)           %.2f GiB\n",
              static_cast<double>(plan.peak_bytes) / gib);
  std::printf("  peak resident memory           %.2f GiB  (target <= 4; before the run %.2f GiB)\n",
              rss / gib, rss_before / gib);
  std::printf("  whole diagnostic               %.1f s\n", run);
  std::printf("  plain products (3 per layer)   %.1f s  (BLAS on %d threads)\n", plain,
              gradscope::hardware_threads());
  std::printf("  ratio diagnostic / products    %.2f  (target <= 1.6)\n", run / plain);
  std::printf("  gradient ratio first/last      %.2f decades\n",
              report.summary.log10_grad_ratio_first_to_last);
  return 0;
}
