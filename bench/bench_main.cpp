// The reference job in-process: the whole diagnostic (weights generated, forward, backward, every
// statistic) against a plain loop of the same matrix products measured in the same run.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/core/network.hpp"
#include "gradscope/engine/engine.hpp"

#ifdef GRADSCOPE_HAVE_OPENBLAS
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The products a forward and backward pass of a dense stack needs, done the plain way: BLAS with
// its own threads, every weight gradient formed.
double plain_products(int depth, int width, int batch) {
  using M = Eigen::MatrixXf;
  std::vector<M> w(static_cast<std::size_t>(depth), M::Constant(width, width, 0.01f));
  std::vector<M> y(static_cast<std::size_t>(depth) + 1, M(width, batch));
  y[0] = M::Constant(width, batch, 1.0f);
  M g = M::Constant(width, batch, 1.0f);
  M below(width, batch);
  M dw(width, width);
  const auto t0 = Clock::now();
  for (std::size_t l = 0; l < w.size(); ++l) y[l + 1].noalias() = w[l] * y[l];
  for (std::size_t l = w.size(); l-- > 0;) {
    dw.noalias() = g * y[l].transpose();
    below.noalias() = w[l].transpose() * g;
    g.swap(below);
  }
  const double s = seconds_since(t0);
  if (!(dw(0, 0) == dw(0, 0))) std::puts("");  // keep the products observable
  return s;
}

struct Timing {
  double plain = 1e300;  // best time of the plain products
  double run = 1e300;    // best time of the whole diagnostic
};

// Best of `repeats` runs of the plain products and of the diagnostic, interleaved so that both
// see the same machine state. Returns nothing when the report has an unexpected size.
std::optional<Timing> time_job(const gradscope::RunSpec& spec, int depth, int width, int batch,
                               int repeats, int cores, std::size_t expected_layers) {
  Timing t;
  for (int r = 0; r < repeats; ++r) {
#ifdef GRADSCOPE_HAVE_OPENBLAS
    openblas_set_num_threads(cores);
#endif
    t.plain = std::min(t.plain, plain_products(depth, width, batch));
    const auto t0 = Clock::now();
    const gradscope::Report report = gradscope::run_diagnostic(spec);
    t.run = std::min(t.run, seconds_since(t0));
    if (report.layers.size() != expected_layers) return std::nullopt;
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const int depth = argc > 1 ? std::atoi(argv[1]) : 100;
  const int width = argc > 2 ? std::atoi(argv[2]) : 1024;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 256;
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 3;
  const int cores = gradscope::hardware_threads();

  gradscope::RunSpec spec;
  spec.name = "bench";
  spec.seed = 1;
  spec.input.width = width;
  spec.input.batch = batch;
  spec.stack.depth = depth;
  spec.stack.layer.width = width;
  spec.stack.layer.activation = gradscope::default_spec(gradscope::Activation::kRelu);
  spec.stack.layer.init.kind = gradscope::Init::kHeNormal;

  // The parts of the diagnostic, for insight: weight generation and the two passes.
  double best_build = 1e300;
  double best_pass = 1e300;
  for (int r = 0; r < repeats; ++r) {
    gradscope::ThreadPool pool(0);
    auto t0 = Clock::now();
    const auto net = gradscope::build_network<float>(spec, pool);
    best_build = std::min(best_build, seconds_since(t0));
    const auto x = gradscope::make_input<float>(spec);
    const auto p = gradscope::make_probe<float>(spec, width);
    t0 = Clock::now();
    const auto result = gradscope::forward_backward(net, x, p, gradscope::PassOptions{}, pool);
    best_pass = std::min(best_pass, seconds_since(t0));
    if (result.forward.size() != static_cast<std::size_t>(depth)) return 1;
  }

  const double flops = 6.0 * batch * static_cast<double>(width) * width * depth;
  const auto stack =
      time_job(spec, depth, width, batch, repeats, cores, static_cast<std::size_t>(depth));
  if (!stack) return 1;
  const double best_plain = stack->plain;
  const double best_run = stack->run;
  std::printf("reference job: depth %d, width %d, batch %d, relu, he_normal, float32, %d threads\n",
              depth, width, batch, cores);
  std::printf("  nominal work 6*B*W^2*L        %.1f GFLOP\n", flops / 1e9);
  std::printf("  plain products (BLAS threads) %.3f s  %.1f GFLOP/s\n", best_plain,
              flops / best_plain / 1e9);
  std::printf("  whole diagnostic              %.3f s  %.1f GFLOP/s (nominal)\n", best_run,
              flops / best_run / 1e9);
  std::printf("    of which: weights generated   %.3f s\n", best_build);
  std::printf("    of which: forward + backward  %.3f s\n", best_pass);
  std::printf("  ratio diagnostic / plain      %.2f  (target <= 1.3)\n", best_run / best_plain);

  // The residual + layer-norm variant: depth blocks of x + relu(W layer_norm(x)), the same dense
  // products as the plain job plus a norm and an addition per block.
  gradscope::RunSpec res = spec;
  gradscope::LayerItem norm;
  norm.op.kind = gradscope::OpKind::kNorm;
  norm.op.norm.kind = gradscope::NormKind::kLayerNorm;
  gradscope::LayerItem dense;
  dense.op.kind = gradscope::OpKind::kDense;
  dense.op.dense = spec.stack.layer;
  gradscope::LayerItem block;
  block.block = {norm, dense};
  block.repeat = depth;
  block.residual = gradscope::ResidualSpec{};
  res.layers = {block};
  const auto residual =
      time_job(res, depth, width, batch, repeats, cores, static_cast<std::size_t>(3 * depth));
  if (!residual) return 1;
  const double best_res = residual->run;
  const double best_plain_res = residual->plain;
  std::printf(
      "\nresidual + layer-norm variant: %d blocks of x + relu(W layer_norm(x)), same sizes\n",
      depth);
  std::printf("  plain products (BLAS threads) %.3f s\n", best_plain_res);
  std::printf("  whole diagnostic              %.3f s\n", best_res);
  std::printf("  ratio diagnostic / plain      %.2f\n", best_res / best_plain_res);
  return 0;
}
