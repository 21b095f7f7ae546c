// The forward and backward passes (network.hpp's forward_backward): a runner that iterates the op
// table (core/ops/op.hpp) under a memory plan (checkpoint.hpp), gathering the statistics on the
// way. Work is cut into tasks by the problem's shape alone; each task writes its own slice and its
// own partial sums, combined in task order, so results are bit-identical for any thread count.
#include <algorithm>
#include <utility>
#include <vector>

#include "core/checkpoint.hpp"
#include "core/layer_stats.hpp"
#include "core/ops/op.hpp"
#include "core/scaled_grad.hpp"
#include "gradscope/core/network.hpp"

namespace gradscope {

namespace {

using ops::GradPartial;
using ops::OpCache;

void release(Eigen::VectorXd& v) { Eigen::VectorXd().swap(v); }
template <class Scalar>
void release(Mat<Scalar>& m) {
  Mat<Scalar>().swap(m);
}
template <class Scalar>
void release(OpCache<Scalar>& c) {
  release(c.out);
  release(c.slope);
  release(c.rstd);
  release(c.inner);
  release(c.probs);
}

bool is_marker(const OpSpec& op) { return ops::op_info(op.kind).marker; }

// One forward and backward pass under a memory plan. The forward pass gathers every forward
// statistic and keeps what the plan says; the backward pass walks the segments from the last,
// computing each one again from its checkpoint when the forward pass did not keep it. Every value
// is computed by the same code on the same inputs either way, so the plan changes no bit.
template <class Scalar>
class PassRunner {
 public:
  PassRunner(const Network<Scalar>& net, const Mat<Scalar>& input, const Mat<Scalar>& probe,
             const PassOptions& options, ThreadPool& pool)
      : net_(net),
        input_(input),
        probe_(probe),
        options_(options),
        pool_(pool),
        count_(net.ops.size()),
        batch_(input.cols()) {}

  PassResult run() {
    result_.forward.resize(count_);
    result_.backward.resize(count_);
    cache_.resize(count_);
    wcache_.resize(count_);
    weight_norm_ = net_.weight_norm;
    plan_ = detail::plan_checkpoints(net_, input_.rows(), batch_, options_);
    plan_progress();
    forward();
    backward();
    return std::move(result_);
  }

 private:
  // ---- Progress: each step's weight, in multiply-adds (a dense op's product, n_in x n_out per
  // example, once forward, once more when recomputed, twice backward; any other op its entries).
  void plan_progress() {
    if (!options_.on_progress) return;
    step_work_.assign(count_, 0.0);
    double total = 0.0;
    for (std::size_t l = 0; l < count_; ++l) {
      if (is_marker(net_.ops[l])) continue;
      const std::size_t p = plan_.producer[l];
      const double n_in =
          p == count_ ? static_cast<double>(input_.rows()) : static_cast<double>(net_.widths[p]);
      const double n_out = static_cast<double>(net_.widths[l]);
      const double per_example = net_.ops[l].kind == OpKind::kDense ? n_in * n_out : n_out;
      step_work_[l] = per_example * static_cast<double>(batch_);
      const double recomputed = plan_.checkpointed && l < plan_.cached_from ? 1.0 : 0.0;
      total += step_work_[l] * (3.0 + recomputed);
    }
    progress_scale_ = total > 0 ? 1.0 / total : 0.0;
  }

  // Op l's step of weight `times` x its work is done.
  void progressed(std::size_t l, double times) {
    if (!options_.on_progress) return;
    work_done_ += times * step_work_[l];
    options_.on_progress(std::min(1.0, work_done_ * progress_scale_));
  }

  const Mat<Scalar>& value(std::size_t p) const { return p == count_ ? input_ : cache_[p].out; }

  bool has_weights(std::size_t l) const {
    const OpSpec& op = net_.ops[l];
    return op.kind == OpKind::kDense || op.kind == OpKind::kAttention || op.kind == OpKind::kGlu ||
           op.kind == OpKind::kConv || (op.kind == OpKind::kResidualEnd && op.residual.projection);
  }

  // The weights of op l for a forward computation: stored, or drawn (into the segment's cache
  // when its backward pass will need them, else into scratch). The first draw gives the norm.
  const Mat<Scalar>& forward_weight(std::size_t l, bool cache) {
    if (!has_weights(l) || !net_.regenerate || net_.weight[l].size() > 0) return net_.weight[l];
    Mat<Scalar>& w = cache ? wcache_[l] : scratch_weight_;
    const double norm = generate_weight(net_, l, w, pool_);
    if (net_.ops[l].kind != OpKind::kResidualEnd) weight_norm_[l] = norm;
    return w;
  }

  const Mat<Scalar>& backward_weight(std::size_t l) {
    if (!has_weights(l)) return net_.weight[l];
    if (wcache_[l].size() > 0) return wcache_[l];
    return weight_of(net_, l, scratch_weight_, pool_);
  }

  // ---- Forward.
  void forward() {
    // Drawn weights are used once here; the backward pass draws them again (kept ops: one at a
    // time; recomputed segments: once for the recomputation and the backward together).
    range_.assign(count_ + 1, ops::ValueRange{});
    {
      MomentAccumulator in;
      ops::accumulate_moments<Scalar>(input_, in);
      result_.input = in.finish();
      range_[count_] = ops::range_of(result_.input);
    }
    for (std::size_t l = 0; l < count_; ++l) {
      if (is_marker(net_.ops[l])) continue;
      const bool keep = l >= plan_.cached_from;
      const Mat<Scalar>& w = forward_weight(l, false);
      ForwardStats& fs = result_.forward[l];
      compute_op(l, w, keep, &fs);
      range_[l] = ops::range_of(fs.act);
      ops::fill_act_histogram(cache_[l].out, fs, pool_);
      if (plan_.gram_owner[l] == count_) fs.correlation = ops::mean_pair_cosine(cache_[l].out);
      if (net_.tokens > 1) ops::fill_token_stats(cache_[l].out, net_.tokens, fs, pool_);
      if (net_.ops[l].image.is_image()) fill_channel_stats(l, fs);
      if (options_.keep_outputs) {
        result_.outputs.resize(count_);
        result_.outputs[l] = cache_[l].out.template cast<double>();
      }
      progressed(l, 1.0);
      // Values no later op reads, and that neither the backward pass nor a checkpoint needs.
      if (plan_.checkpointed) {
        for (std::size_t p : {plan_.producer[l], plan_.skip_producer[l]}) {
          if (p < plan_.cached_from && plan_.last_use[p] == l && !plan_.retained[p]) {
            release(cache_[p].out);
          }
        }
      }
    }
  }

  // An image op's channel moments; a residual end's also of its branch's output F(x) (its input
  // from the branch, before the scale and the skip).
  void fill_channel_stats(std::size_t l, ForwardStats& fs) {
    const ImageShape& image = net_.ops[l].image;
    const ops::ChannelMoments out = ops::channel_moments(cache_[l].out, image, pool_);
    fs.has_channels = true;
    fs.channel_mean_sq = out.mean_sq;
    fs.channel_var = out.var;
    fs.channels_nonfinite = out.nonfinite_channels;
    fs.zero_channels = out.zero_channels;
    if (net_.ops[l].kind == OpKind::kResidualEnd) {
      fs.has_branch_var = true;
      fs.branch_var = ops::channel_moments(value(plan_.producer[l]), image, pool_).var;
    }
  }

  // Computes op l's output into its cache (and, when `keep`, what its backward pass needs),
  // gathering its statistics into fs unless fs is null.
  void compute_op(std::size_t l, const Mat<Scalar>& w, bool keep, ForwardStats* fs) {
    const OpSpec& op = net_.ops[l];
    OpCache<Scalar>& cache = cache_[l];
    cache.out.resize(net_.widths[l], batch_);
    const Mat<Scalar>* skip =
        op.kind == OpKind::kResidualEnd ? &value(plan_.skip_producer[l]) : nullptr;
    const ops::ForwardArgs<Scalar> args{.op = op,
                                        .index = l,
                                        .seed = options_.seed,
                                        .inp = value(plan_.producer[l]),
                                        .skip = skip,
                                        .weight = w,
                                        .bias = net_.bias[l],
                                        .tokens = net_.tokens,
                                        .keep = keep,
                                        .saturation_threshold = options_.saturation_threshold,
                                        .pool = pool_};
    ops::op_kernels<Scalar>(op.kind).forward(args, cache, fs);
  }

  // Computes ops [begin, end) again from their checkpoint, keeping what their backward needs.
  void recompute(std::size_t begin, std::size_t end) {
    for (std::size_t l = begin; l < end; ++l) {
      if (is_marker(net_.ops[l])) continue;
      compute_op(l, forward_weight(l, true), true, nullptr);
      progressed(l, 1.0);
    }
  }

  // ---- Backward.
  void backward() {
    // The cotangent at the output: the probe, or the loss's gradient.
    const Mat<Scalar>& output = cache_[count_ - 1].out;
    if (options_.loss.kind == LossKind::kProbe) {
      grad_.g = probe_;
      result_.loss =
          (probe_.template cast<double>().array() * output.template cast<double>().array()).sum();
    } else {
      grad_.g.resize(output.rows(), batch_);
      result_.loss =
          loss_forward_backward<Scalar>(options_.loss, output, *options_.targets, grad_.g);
    }
    {
      GradPartial gs;
      ops::accumulate_gradient_block<Scalar>(grad_.g, gs);
      result_.output_grad_rms = gs.squares.rms(0);
      ops::rescale(grad_.g, gs, grad_.exp2, pool_);
    }
    if (options_.keep_gradients) {
      result_.gradients.dweight.resize(count_);
      result_.gradients.dbias.resize(count_);
      result_.gradients.dpreact.resize(count_);
    }
    for (std::size_t s = plan_.starts.size(); s-- > 0;) {
      const std::size_t begin = plan_.starts[s];
      const std::size_t end = s + 1 < plan_.starts.size() ? plan_.starts[s + 1] : count_;
      if (begin < plan_.cached_from) recompute(begin, end);
      for (std::size_t l = end; l-- > begin;) {
        backward_op(l);
        if (!is_marker(net_.ops[l])) progressed(l, 2.0);
        // Nothing before op l reads its output or its weights in the backward pass.
        release(cache_[l]);
        release(wcache_[l]);
      }
    }
    if (options_.keep_gradients) result_.gradients.dinput = ops::unscaled(grad_.g, grad_.exp2);

    // Gains: each reported op's gradient over the next reported op's (the last: over dL/dy).
    Magnitude above = result_.output_grad_rms;
    for (std::size_t l = count_; l-- > 0;) {
      if (is_marker(net_.ops[l])) continue;
      BackwardStats& bs = result_.backward[l];
      bs.gain = magnitude_ratio(bs.grad_preact_rms, above);
      above = bs.grad_preact_rms;
    }
  }

  // Where op l's backward statistics go: its own, or for a residual begin those of the op whose
  // dL/d(input) it completes (CheckpointPlan::completes).
  ops::BackwardReport report_for(std::size_t l) {
    ops::BackwardReport report{};
    const std::size_t target = is_marker(net_.ops[l]) ? plan_.completes[l] : l;
    const bool keep = options_.keep_gradients;
    if (target < count_) {
      report.stats = &result_.backward[target];
      if (keep) report.dpreact = &result_.gradients.dpreact[target];
    }
    if (keep) {
      report.dweight = &result_.gradients.dweight[l];
      report.dbias = &result_.gradients.dbias[l];
      report.dweight_in_precision = options_.gradients_in_precision;
    }
    const std::size_t p = plan_.producer[l];
    if (p < count_ && plan_.gram_owner[p] == l) {
      report.inp_correlation = &result_.forward[p].correlation;
    }
    return report;
  }

  // Turns grad_.g = dL/d(output of op l) into dL/d(input of op l), gathering op l's statistics.
  void backward_op(std::size_t l) {
    const OpSpec& op = net_.ops[l];
    result_.backward[l].has_weights = ops::op_info(op.kind).has_params;
    const std::size_t producer = plan_.producer[l];
    // dL/dx of the first op is needed only by the tests.
    const bool need_dinp = l > 0 || options_.keep_gradients;
    const ops::BackwardArgs<Scalar> args{.op = op,
                                         .index = l,
                                         .seed = options_.seed,
                                         .inp = value(producer),
                                         .inp_range = range_[producer],
                                         .cache = cache_[l],
                                         .forward = result_.forward[l],
                                         .weight = backward_weight(l),
                                         .bias = net_.bias[l],
                                         .tokens = net_.tokens,
                                         .weight_norm = weight_norm_[l],
                                         .need_dinp = need_dinp,
                                         .optimizer = options_.optimizer,
                                         .pool = pool_};
    const GradPartial dinp = ops::op_kernels<Scalar>(op.kind).backward(args, grad_, report_for(l));
    ops::rescale(grad_.g, dinp, grad_.exp2, pool_);
  }

  const Network<Scalar>& net_;
  const Mat<Scalar>& input_;
  const Mat<Scalar>& probe_;
  const PassOptions& options_;
  ThreadPool& pool_;
  const std::size_t count_;
  const Eigen::Index batch_;
  PassResult result_;
  detail::CheckpointPlan plan_;

  // What the backward pass reads, per op; empty where not (or no longer) needed.
  std::vector<OpCache<Scalar>> cache_;  // y (also the next op's input), slope, rstd
  std::vector<Mat<Scalar>> wcache_;     // drawn weights kept for a segment's backward pass
  Mat<Scalar> scratch_weight_;          // drawn weights used once
  std::vector<double> weight_norm_;     // ||W||_F per dense op
  std::vector<ops::ValueRange> range_;  // per value (count_: the input), from the forward pass

  std::vector<double> step_work_;  // per op, for on_progress
  double progress_scale_ = 0.0;    // 1 / the pass's work
  double work_done_ = 0.0;

  ops::ScaledGrad<Scalar> grad_;  // dL/d(output of the current op), its scale, the skips' share
};

}  // namespace

template <class Scalar>
PassResult forward_backward(const Network<Scalar>& net, const Mat<Scalar>& input,
                            const Mat<Scalar>& probe, const PassOptions& options,
                            ThreadPool& pool) {
  return PassRunner<Scalar>(net, input, probe, options, pool).run();
}

template PassResult forward_backward<float>(const Network<float>&, const Mat<float>&,
                                            const Mat<float>&, const PassOptions&, ThreadPool&);
template PassResult forward_backward<double>(const Network<double>&, const Mat<double>&,
                                             const Mat<double>&, const PassOptions&, ThreadPool&);

}  // namespace gradscope
