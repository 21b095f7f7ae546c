// The rules of a RunSpec, in one place: the config reader and code that builds a spec (an imported
// ONNX model, a library user) are held to the same rules and get the same messages. Why this file
// is long: every rule in one file is the point; a reader sees them all, in the order met.
#include "gradscope/core/validate.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "gradscope/core/error.hpp"

namespace gradscope {
namespace {

// A problem, with the config path of the item whose ops it concerns (to find its op index).
struct Finding {
  SpecProblem problem;
  std::string item;
};
using Found = std::optional<Finding>;
using Problem = std::optional<std::pair<std::string, std::string>>;  // what, hint

Finding finding(std::string path, std::string what, std::string hint, std::string item = {},
                std::vector<std::string> also = {}) {
  return Finding{SpecProblem{std::move(path), std::move(also), std::move(what), std::move(hint),
                             std::nullopt, false},
                 std::move(item)};
}

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// The item's config path: the one it came from, or its place in the list.
std::string item_path(const LayerItem& item, const std::string& prefix, std::size_t i) {
  return item.path.empty() ? prefix + "[" + std::to_string(i) + "]" : item.path;
}

// "1e-05", "-1", "NaN", "inf": a value as a message shows it.
std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::array<char, 32> buffer{};
  const std::to_chars_result r = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
  return std::string(buffer.data(), r.ptr);
}

// A number as a JSON file shows it, the way nlohmann/json writes a double ("1.0", "0.001",
// "1e+20"): the shortest digits that round-trip, placed by its rule (plain notation for decimal
// exponents in (-4, 15], ".0" after a whole number).
std::string json_number_text(double v) {
  if (!std::isfinite(v)) return number_text(v);
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  std::array<char, 40> buffer{};
  const std::to_chars_result r = std::to_chars(buffer.data(), buffer.data() + buffer.size(),
                                               std::abs(v), std::chars_format::scientific);
  const std::string sci(buffer.data(), r.ptr);  // "d.ddde+XX"
  const std::size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int n = std::stoi(sci.substr(e + 1)) + 1;  // where the decimal point goes
  const int k = static_cast<int>(digits.size());
  std::string out = v < 0 ? "-" : "";
  if (k <= n && n <= 15)
    return out + digits + std::string(static_cast<std::size_t>(n - k), '0') + ".0";
  if (0 < n && n <= 15) {
    return out + digits.substr(0, static_cast<std::size_t>(n)) + "." +
           digits.substr(static_cast<std::size_t>(n));
  }
  if (-4 < n && n <= 0) return out + "0." + std::string(static_cast<std::size_t>(-n), '0') + digits;
  out += digits.substr(0, 1);
  if (k > 1) out += "." + digits.substr(1);
  const int exponent = n - 1;
  const std::string magnitude = std::to_string(std::abs(exponent));
  return out + "e" + (exponent < 0 ? "-" : "+") + (magnitude.size() < 2 ? "0" : "") + magnitude;
}

const std::string& width_range() {
  static const std::string range = "[1, " + std::to_string(spec_limits::kMaxWidth) + "]";
  return range;
}

bool in_width_range(int w) { return w >= 1 && w <= spec_limits::kMaxWidth; }

std::string hidden_activation_list() {
  std::string out;
  for (const ActivationInfo& info : activation_table()) {
    if (info.output_only) continue;
    if (!out.empty()) out += ", ";
    out += info.name;
  }
  return out;
}

// ---- The values of one op (the config reader refuses these as it reads them)

Problem check_activation(const ActivationSpec& a) {
  const int kind = static_cast<int>(a.kind);
  if (kind < 0 || kind >= kActivationCount) {
    return std::pair{"an unknown activation (" + std::to_string(kind) + ")",
                     std::string("`gradscope list` shows the activations")};
  }
  const ActivationInfo& info = activation_info(a.kind);
  if (!info.param_name.empty() && !std::isfinite(a.param)) {
    return std::pair{std::string(info.name) + " " + std::string(info.param_name) + " is " +
                         number_text(a.param) + "; it must be a finite number",
                     "the default is " + number_text(info.param_default)};
  }
  return std::nullopt;
}

// Every spread and scale of an init is a finite number >= 0.
Problem check_init(const InitSpec& init, std::string_view what) {
  if (init.kind == Init::kDeltaOrthogonal) {
    return std::pair{std::string(what) +
                         " delta_orthogonal is a convolution's init (an orthogonal "
                         "matrix at the kernel's centre tap)",
                     std::string("use orthogonal for a matrix, or put delta_orthogonal on a conv "
                                 "item")};
  }
  for (const auto& [name, value] :
       {std::pair{"gain", init.gain}, std::pair{"std", init.std}, std::pair{"limit", init.limit},
        std::pair{"weight_var", init.weight_var}}) {
    if (!(std::isfinite(value) && value >= 0)) {
      return std::pair{std::string(what) + " " + name + " is " + number_text(value) +
                           "; it must be a finite number >= 0",
                       std::string("the weights it describes are broken or overflow a double")};
    }
  }
  return std::nullopt;
}

Problem check_layer(const LayerSpec& layer) {
  if (!in_width_range(layer.width)) {
    return std::pair{"width " + std::to_string(layer.width) + " is outside " + width_range(),
                     std::string("a dense layer needs at least one unit")};
  }
  if (Problem p = check_activation(layer.activation)) return p;
  if (Problem p = check_init(layer.init, "init")) return p;
  if (!std::isfinite(layer.bias.value) || !(std::isfinite(layer.bias.std) && layer.bias.std >= 0)) {
    return std::pair{"bias value " + number_text(layer.bias.value) + ", std " +
                         number_text(layer.bias.std) +
                         ": the value must be finite and the std a finite number >= 0",
                     std::string("the biases it describes are broken or overflow a double")};
  }
  return std::nullopt;
}

Problem check_norm(const NormSpec& norm) {
  const int kind = static_cast<int>(norm.kind);
  if (kind < 0 || kind >= kNormKindCount) {
    return std::pair{"an unknown norm (" + std::to_string(kind) + ")",
                     std::string("choose batch_norm, layer_norm or rms_norm")};
  }
  if (!(std::isfinite(norm.eps) && norm.eps > 0)) {
    return std::pair{std::string(norm_name(norm.kind)) + " eps is " + number_text(norm.eps) +
                         "; it must be a finite number > 0",
                     std::string("it keeps the division by the standard deviation finite; "
                                 "the default is 1e-5")};
  }
  return std::nullopt;
}

Problem check_attention(const AttentionSpec& a) {
  if (a.heads < 1 || a.heads > spec_limits::kMaxWidth) {
    return std::pair{"attention heads " + std::to_string(a.heads) + " is outside " + width_range(),
                     std::string("an attention has at least one head")};
  }
  if (a.scale_kind == AttentionScaleKind::kConstant && !(std::isfinite(a.scale) && a.scale > 0)) {
    return std::pair{"attention scale " + number_text(a.scale) + " must be a finite number > 0",
                     std::string("the logits are scale * q . k; the default is 1/sqrt(d_head)")};
  }
  for (std::size_t j = 0; j < a.init.size(); ++j) {
    if (Problem p = check_init(a.init[j], std::string(kAttentionProjections[j]))) return p;
  }
  return std::nullopt;
}

Problem check_glu(const GluSpec& g) {
  if (!in_width_range(g.hidden)) {
    return std::pair{
        "glu hidden width " + std::to_string(g.hidden) + " is outside " + width_range(),
        std::string("the gated MLP's hidden layer needs at least one unit")};
  }
  if (Problem p = check_activation(g.activation)) return p;
  if (activation_info(g.activation.kind).output_only) {
    return std::pair{std::string(activation_info(g.activation.kind).name) +
                         " is not elementwise and cannot gate a GLU",
                     "use silu (SwiGLU), gelu (GeGLU), sigmoid (GLU) or relu (ReGLU); hidden "
                     "activations: " +
                         hidden_activation_list()};
  }
  for (std::size_t j = 0; j < g.init.size(); ++j) {
    if (Problem p = check_init(g.init[j], std::string(kGluProjections[j]))) return p;
  }
  return std::nullopt;
}

// A window's sizes: kernel, stride and dilation >= 1, padding >= 0, each at most 2^24 (so that
// dilation x (kernel - 1) fits in 64 bits).
Problem check_window(std::string_view what, int kernel_h, int kernel_w, int stride_h, int stride_w,
                     int pad_h, int pad_w, int dilation_h, int dilation_w) {
  const std::string range = "[1, " + std::to_string(spec_limits::kMaxWidth) + "]";
  for (const auto& [name, h, w, min] :
       {std::tuple{"kernel", kernel_h, kernel_w, 1}, std::tuple{"stride", stride_h, stride_w, 1},
        std::tuple{"padding", pad_h, pad_w, 0},
        std::tuple{"dilation", dilation_h, dilation_w, 1}}) {
    for (const int v : {h, w}) {
      if (v >= min && v <= spec_limits::kMaxWidth) continue;
      return std::pair{std::string(what) + " " + name + " " + std::to_string(v) + " is outside [" +
                           std::to_string(min) + ", " + std::to_string(spec_limits::kMaxWidth) +
                           "]",
                       std::string("a window is at least 1 x 1, moves by at least 1 and pads by "
                                   "0 or more")};
    }
  }
  return std::nullopt;
}

Problem check_conv(const ConvSpec& c) {
  if (!in_width_range(c.channels)) {
    return std::pair{"conv channels " + std::to_string(c.channels) + " is outside " + width_range(),
                     std::string("a convolution outputs at least one channel")};
  }
  if (!in_width_range(c.groups)) {
    return std::pair{"conv groups " + std::to_string(c.groups) + " is outside " + width_range(),
                     std::string("1 is an ordinary convolution; the channels make the groups")};
  }
  if (Problem p = check_window("conv", c.kernel_h, c.kernel_w, c.stride_h, c.stride_w, c.pad_h,
                               c.pad_w, c.dilation_h, c.dilation_w)) {
    return p;
  }
  if (Problem p = check_activation(c.activation)) return p;
  if (activation_info(c.activation.kind).output_only) {
    return std::pair{std::string(activation_info(c.activation.kind).name) +
                         " normalises across the units of a layer, not per pixel",
                     "use an elementwise activation on a convolution (" + hidden_activation_list() +
                         "), and softmax on a last dense item after a flatten"};
  }
  // delta_orthogonal is a convolution's orthogonal init: checked as one.
  InitSpec init = c.init;
  if (init.kind == Init::kDeltaOrthogonal) init.kind = Init::kOrthogonal;
  if (Problem p = check_init(init, "init")) return p;
  if (!std::isfinite(c.bias_init.value) ||
      !(std::isfinite(c.bias_init.std) && c.bias_init.std >= 0)) {
    return std::pair{"bias value " + number_text(c.bias_init.value) + ", std " +
                         number_text(c.bias_init.std) +
                         ": the value must be finite and the std a finite number >= 0",
                     std::string("the biases it describes are broken or overflow a double")};
  }
  return std::nullopt;
}

Problem check_pool(const PoolSpec& p) {
  const int kind = static_cast<int>(p.kind);
  if (kind < 0 || kind > static_cast<int>(PoolKind::kGlobalAverage)) {
    return std::pair{"an unknown pool kind (" + std::to_string(kind) + ")",
                     std::string("choose max, average or global_average")};
  }
  if (p.kind == PoolKind::kGlobalAverage) return std::nullopt;
  return check_window("pool", p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w, 1,
                      1);
}

Problem check_op(const OpSpec& op) {
  switch (op.kind) {
    case OpKind::kDense:
      return check_layer(op.dense);
    case OpKind::kNorm:
      return check_norm(op.norm);
    case OpKind::kActivation:
      return check_activation(op.activation);
    case OpKind::kDropout:
      if (!(op.dropout >= 0 && op.dropout < 1)) {
        return std::pair{"dropout rate " + number_text(op.dropout) + " is outside [0, 1)",
                         std::string("the dropout rate is the probability of zeroing a unit; 0 "
                                     "keeps them all, 1 would zero them all")};
      }
      return std::nullopt;
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      if (!std::isfinite(op.residual.scale)) {
        return std::pair{
            "residual scale is " + number_text(op.residual.scale) + "; it must be a finite number",
            std::string("y = skip * P x + scale * F(x); the default scale is 1")};
      }
      if (!std::isfinite(op.residual.skip)) {
        return std::pair{
            "residual skip is " + number_text(op.residual.skip) + "; it must be a finite number",
            std::string("y = skip * P x + scale * F(x); the default skip is 1")};
      }
      if (op.residual.projection_norm) {
        if (op.residual.projection_norm->kind != NormKind::kBatchNorm) {
          return std::pair{"the projection's norm is " +
                               std::string(norm_name(op.residual.projection_norm->kind)) +
                               ", but a learned projection takes batch_norm (per channel, as "
                               "torchvision's downsample) or none",
                           std::string(R"(write "norm": "batch_norm" or "norm": false)")};
        }
        if (Problem p = check_norm(*op.residual.projection_norm)) return p;
      }
      if (op.residual.projection) return check_init(op.residual.projection_init, "projection");
      return std::nullopt;
    case OpKind::kAttention:
      return check_attention(op.attention);
    case OpKind::kGlu:
      return check_glu(op.glu);
    case OpKind::kConv:
      return check_conv(op.conv);
    case OpKind::kPool:
      return check_pool(op.pool);
    case OpKind::kFlatten:
      return std::nullopt;
  }
  return std::pair{"an unknown op kind (" + std::to_string(static_cast<int>(op.kind)) + ")",
                   std::string()};
}

bool is_softmax(const OpSpec& op) {
  return (op.kind == OpKind::kDense && op.dense.activation.kind == Activation::kSoftmax) ||
         (op.kind == OpKind::kActivation && op.activation.kind == Activation::kSoftmax);
}

// ---- The shape of "layers"

// Blocks as a config writes them: a repeat, residual or post-norm belongs to a block, a post-norm
// to a residual block, and a block runs 1 to 10^6 times.
Found check_shape(const std::vector<LayerItem>& items, const std::string& prefix) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    const std::string path = item_path(item, prefix, i);
    if (item.block.empty()) {
      if (item.residual || item.post_norm || item.repeat != 1) {
        return finding(path, "a repeat, residual or post-norm on a single op, not a block",
                       "put the op in a block to repeat it or wrap it in a residual");
      }
      continue;
    }
    if (item.repeat < 1 || item.repeat > spec_limits::kMaxDepth) {
      return finding(child(path, "repeat"),
                     "repeat " + std::to_string(item.repeat) + " is outside [1, " +
                         std::to_string(spec_limits::kMaxDepth) + "]",
                     "a block runs at least once");
    }
    if (item.post_norm && !item.residual) {
      return finding(path, "a post-norm without a residual",
                     "a post-norm computes norm(x + scale * F(x)): give the block a residual");
    }
    if (Found f = check_shape(item.block, path + ".block")) return f;
  }
  return std::nullopt;
}

// Softmax couples the units it normalises, so only the network's last op may apply it. `after`
// says what follows the last op of `items` in the network; empty when nothing does.
Found check_softmax(const std::vector<LayerItem>& items, const std::string& prefix,
                    const std::string& after) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    const std::string path = item_path(item, prefix, i);
    std::string next = after;
    if (i + 1 < items.size()) {
      // A dense op followed by an op of its own item: the norm of "after_activation".
      const std::string next_path = item_path(items[i + 1], prefix, i + 1);
      next = next_path == path ? "its norm follows it (\"norm_position\": \"after_activation\")"
                               : next_path + " follows it";
    }
    if (!item.block.empty()) {
      std::string inner = next;
      if (item.residual) {
        inner = "the residual addition of " + path + " follows it";
      } else if (item.repeat > 1) {
        inner = path + " repeats it " + std::to_string(item.repeat) + " times";
      }
      if (Found f = check_softmax(item.block, path + ".block", inner)) return f;
      continue;
    }
    if (!is_softmax(item.op) || next.empty()) continue;
    return finding(child(path, "activation"),
                   "softmax may only be the network's very last op, but " + next,
                   "softmax normalises across the units of a layer, which turns the final "
                   "outputs into probabilities but inside the network couples every unit to "
                   "every other; use an elementwise activation here (" +
                       hidden_activation_list() +
                       ") and softmax only on the last item, e.g. {\"width\": 10, "
                       "\"activation\": \"softmax\"}",
                   path);
  }
  return std::nullopt;
}

// The number of ops `items` expand to into `count`; each block is checked against kMaxOps on the
// way, so the sum stays far from overflowing.
Found count_ops(const std::vector<LayerItem>& items, const std::string& prefix,
                std::uint64_t& count) {
  count = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    if (item.block.empty()) {
      ++count;
      continue;
    }
    const std::string path = item_path(item, prefix, i);
    std::uint64_t inner = 0;
    if (Found f = count_ops(item.block, path + ".block", inner)) return f;
    const std::uint64_t per_repeat = inner + (item.residual ? 2U : 0U) + (item.post_norm ? 1U : 0U);
    const std::uint64_t total = per_repeat * static_cast<std::uint64_t>(item.repeat);
    if (total > spec_limits::kMaxOps) {
      return finding(item.repeat > 1 ? child(path, "repeat") : path,
                     "this block expands to " + std::to_string(total) + " ops (" +
                         std::to_string(item.repeat) + " x " + std::to_string(per_repeat) +
                         "), more than the " + std::to_string(spec_limits::kMaxOps) +
                         " a network may have",
                     "lower \"repeat\" here or in the blocks inside it");
    }
    count += total;
  }
  return std::nullopt;
}

Found check_op_count(const std::vector<LayerItem>& layers) {
  std::uint64_t count = 0;
  if (Found f = count_ops(layers, "layers", count)) return f;
  if (count > spec_limits::kMaxOps) {
    return finding("layers",
                   "the network expands to " + std::to_string(count) + " ops, more than the " +
                       std::to_string(spec_limits::kMaxOps) + " it may have",
                   "lower the blocks' \"repeat\"");
  }
  return std::nullopt;
}

// What flows between ops: `width` features per example (per token), an image of that many
// features when image.channels > 0.
struct Stream {
  int width = 0;
  ImageShape image;
  bool operator==(const Stream&) const = default;
};

// "a 3 x 32 x 32 image" or "256 wide".
std::string stream_text(const Stream& s) {
  if (!s.image.is_image()) return std::to_string(s.width) + " wide";
  return "a " + std::to_string(s.image.channels) + " x " + std::to_string(s.image.height) + " x " +
         std::to_string(s.image.width) + " image";
}

std::string image_text(const ImageShape& image) {
  return std::to_string(image.channels) + " x " + std::to_string(image.height) + " x " +
         std::to_string(image.width);
}

// One side of a window against the padded input: out = floor((in + 2 pad - span) / stride) + 1
// >= 1 needs span <= in + 2 pad (span = dilation (kernel - 1) + 1). Counted in 64 bits: the
// sizes are at most 2^24 each, so this cannot overflow where ConvSpec::out_h's int could.
bool window_fits(int in, int kernel, int pad, int dilation) {
  const std::int64_t span = std::int64_t{dilation} * (kernel - 1) + 1;
  return span <= std::int64_t{in} + 2 * std::int64_t{pad};
}

// Walks the network from the input's stream, checking what depends on the shape arriving at each
// op: a convolution, a pooling and a flatten need an image (attention and a GLU a vector), a
// convolution's groups divide its channels, every window fits its padded input, an image stays
// within 2^24 features, attention heads divide the width, and a residual block without a
// projection ends with the stream it began with. A block's repetitions are walked until one
// leaves the stream as it found it (a dense block: the second), or a rule breaks: a repeated
// strided convolution shrinks the image each time, so the repetitions differ. The op count is
// known to be within its limit, which bounds the walk. The cache keeps nested repeated blocks
// from being walked 2^depth times.
class StreamWalk {
 public:
  explicit StreamWalk(bool image_input) : image_input_(image_input) {}

  // `context` says which repetition of the enclosing blocks is being walked, for messages.
  Found walk(const std::vector<LayerItem>& items, const std::string& prefix, Stream& s,
             const std::string& context) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      const LayerItem& item = items[i];
      if (item.block.empty()) {
        if (Found f = step(item.op, item_path(item, prefix, i), s, context)) return f;
        continue;
      }
      const Key key{&item, s.width, s.image.channels, s.image.height, s.image.width};
      if (const auto it = cache_.find(key); it != cache_.end()) {
        s = it->second;
        continue;
      }
      const std::string path = item_path(item, prefix, i);
      for (int r = 0; r < item.repeat; ++r) {
        std::string inner_context = context;
        if (r == 1) {
          inner_context =
              " (in the second repetition of " + path + ", whose input is the first's output)";
        } else if (r > 1) {
          inner_context = " (in repetition " + std::to_string(r + 1) + " of " + path +
                          ", whose input is the previous one's output)";
        }
        Stream out = s;
        if (Found f = walk(item.block, path + ".block", out, inner_context)) return f;
        if (item.residual && !item.residual->projection && !addable(s, out)) {
          return finding(child(path, "residual"),
                         "the block's input is " + stream_text(s) + " but its output is " +
                             stream_text(out) + ", so the skip path cannot be added to it" +
                             context,
                         "add \"projection\": true to the residual (a fixed orthogonal map P in y "
                         "= P x + scale * F(x)), or make the block end " +
                             (s.image.is_image() ? "as " + stream_text(s) : stream_text(s)),
                         path, {path});
        }
        if (item.residual && item.residual->projection) {
          if (Found f = check_projection(*item.residual, path, s, out, context)) return f;
        }
        const bool same = out == s;
        s = out;
        if (same) break;  // every further repetition leaves it so too
      }
      cache_.emplace(key, s);
    }
    return std::nullopt;
  }

 private:
  using Key = std::tuple<const LayerItem*, int, int, int, int>;

  // A projection on an image stream is a 1x1 convolution with stride in / out on each side, which
  // must divide exactly (torchvision's downsample halves 2k to k); a projection's norm needs it.
  static Found check_projection(const ResidualSpec& r, const std::string& path, const Stream& in,
                                const Stream& out, const std::string& context) {
    const std::string at = child(child(path, "residual"), "projection");
    if (!(in.image.is_image() && out.image.is_image())) {
      if (!r.projection_norm) return std::nullopt;
      return finding(child(at, "norm"),
                     "a norm on the projection of a block from " + stream_text(in) + " to " +
                         stream_text(out) + context +
                         ": only the learned 1x1 convolution of an image stream has one",
                     "remove \"norm\" from the projection (a vector stream's projection is a "
                     "fixed orthogonal map), or keep the block's input and output images",
                     path, {path});
    }
    const auto divides = [](int a, int b) { return b > 0 && a % b == 0; };
    if (!divides(in.image.height, out.image.height) || !divides(in.image.width, out.image.width)) {
      return finding(at,
                     "the block maps " + stream_text(in) + " to " + stream_text(out) + context +
                         ", but its 1x1 projection's stride is in / out on each side, and " +
                         std::to_string(in.image.height) + " x " + std::to_string(in.image.width) +
                         " is not a whole multiple of " + std::to_string(out.image.height) + " x " +
                         std::to_string(out.image.width),
                     "make the branch's output size divide its input's (a stride-2 conv with "
                     "padding 1 and kernel 3 halves an even size exactly)",
                     path, {path});
    }
    return std::nullopt;
  }

  // The skip path adds elementwise: the same features, and two images of one shape.
  static bool addable(const Stream& in, const Stream& out) {
    if (in.width != out.width) return false;
    return !(in.image.is_image() && out.image.is_image()) || in.image == out.image;
  }

  // An image op on a vector: the input gives no image, or a flatten or dense item before made
  // the stream a vector.
  Finding needs_image(const std::string& path, std::string_view what, const Stream& s,
                      const std::string& context) const {
    return finding(path,
                   std::string(what) + " needs an image, but its input here is a vector of " +
                       std::to_string(s.width) + " features" + context,
                   image_input_
                       ? "move it before the flatten or dense item that made the image a vector"
                       : "give the input \"channels\" and \"height\" to make it an image of "
                         "channels x height x width (e.g. \"input\": {\"channels\": 3, "
                         "\"height\": 32, \"width\": 32}), or remove the item",
                   path, {"input"});
  }

  Found step(const OpSpec& op, const std::string& path, Stream& s, const std::string& context) {
    switch (op.kind) {
      case OpKind::kDense:
        s = Stream{op.dense.width, {}};
        return std::nullopt;
      case OpKind::kAttention: {
        if (s.image.is_image()) return vector_only(path, "attention", "an attention", s, context);
        const int heads = op.attention.heads;
        if (heads > 0 && s.width % heads != 0) {
          return finding(child(path, "attention.heads"),
                         std::to_string(heads) + " heads do not divide the width " +
                             std::to_string(s.width) + " the attention receives" + context,
                         "each head takes width / heads features: choose heads dividing " +
                             std::to_string(s.width),
                         path, {path});
        }
        return std::nullopt;
      }
      case OpKind::kGlu:
        if (s.image.is_image()) return vector_only(path, "glu", "a gated MLP", s, context);
        return std::nullopt;
      case OpKind::kConv:
        return conv(op.conv, path, s, context);
      case OpKind::kPool:
        return pool(op.pool, path, s, context);
      case OpKind::kFlatten:
        if (!s.image.is_image()) return needs_image(path, "a flatten", s, context);
        s.image = {};
        return std::nullopt;
      case OpKind::kNorm:  // a batch norm of an image normalises per channel
      case OpKind::kActivation:
      case OpKind::kDropout:
      case OpKind::kResidualBegin:
      case OpKind::kResidualEnd:
        return std::nullopt;
    }
    return std::nullopt;
  }

  static Found vector_only(const std::string& path, std::string_view key, std::string_view what,
                           const Stream& s, const std::string& context) {
    return finding(child(path, key),
                   std::string(what) + " on " + stream_text(s) +
                       ": it acts on vectors (each token's features), not images" + context,
                   "put a flatten before it ({\"flatten\": {}}, the image's C H W features as "
                   "one vector) or a global average pooling and a flatten",
                   path, {path});
  }

  // The image a window of `what` (at path.key) produces, or the problem; `too_big` is checked by
  // the caller.
  static Found fit(const std::string& path, std::string_view what, const ImageShape& in,
                   int kernel_h, int kernel_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                   const std::string& context) {
    for (const auto& [side, size, kernel, pad, dilation] :
         {std::tuple{"height", in.height, kernel_h, pad_h, dilation_h},
          std::tuple{"width", in.width, kernel_w, pad_w, dilation_w}}) {
      if (window_fits(size, kernel, pad, dilation)) continue;
      const std::int64_t span = std::int64_t{dilation} * (kernel - 1) + 1;
      std::string spans = "the kernel spans " + std::to_string(span);
      if (dilation != 1) {
        spans += " (dilation " + std::to_string(dilation) + " x (kernel " + std::to_string(kernel) +
                 " - 1) + 1)";
      }
      return finding(child(path, std::string(what) + ".kernel"),
                     spans + ", more than the padded input's " + side + " " +
                         std::to_string(std::int64_t{size} + 2 * std::int64_t{pad}) + " (" +
                         std::to_string(size) + " + 2 x padding " + std::to_string(pad) + ") of " +
                         image_text(in) + context,
                     "the window must fit the padded image at least once: lower the kernel" +
                         std::string(dilation != 1 ? " or the dilation" : "") +
                         ", add padding, or move the item before the pooling or stride that "
                         "shrank the image",
                     path, {path});
    }
    return std::nullopt;
  }

  static Found too_big(const std::string& path, const ImageShape& out, const std::string& context) {
    const std::int64_t features = std::int64_t{out.channels} * out.height * out.width;
    if (features <= spec_limits::kMaxWidth) return std::nullopt;
    return finding(path,
                   "outputs " + image_text(out) + " = " + std::to_string(features) +
                       " features, more than the " + std::to_string(spec_limits::kMaxWidth) +
                       " an example may have" + context,
                   "lower its channels, or add stride to shrink the image", path);
  }

  Found conv(ConvSpec c, const std::string& path, Stream& s, const std::string& context) const {
    if (!s.image.is_image()) return needs_image(path, "a convolution", s, context);
    c.in = s.image;
    if (c.in.channels % c.groups != 0 || c.channels % c.groups != 0) {
      return finding(child(path, "conv.groups"),
                     std::to_string(c.groups) + " groups do not divide both the input's " +
                         std::to_string(c.in.channels) + " channels and the output's " +
                         std::to_string(c.channels) + context,
                     "each group maps in_channels / groups channels to channels / groups: choose "
                     "groups dividing both (1 is an ordinary convolution)",
                     path, {path});
    }
    if (Found f = fit(path, "conv", c.in, c.kernel_h, c.kernel_w, c.pad_h, c.pad_w, c.dilation_h,
                      c.dilation_w, context)) {
      return f;
    }
    const ImageShape out = c.out();
    if (Found f = too_big(path, out, context)) return f;
    s = Stream{out.size(), out};
    return std::nullopt;
  }

  Found pool(PoolSpec p, const std::string& path, Stream& s, const std::string& context) const {
    if (!s.image.is_image()) return needs_image(path, "a pooling", s, context);
    p.in = s.image;
    if (p.kind != PoolKind::kGlobalAverage) {
      // PyTorch's rule (MaxPool2d, AvgPool2d): a window never lies mostly in the padding.
      for (const auto& [pad, kernel] :
           {std::pair{p.pad_h, p.kernel_h}, std::pair{p.pad_w, p.kernel_w}}) {
        if (pad <= kernel / 2) continue;
        return finding(child(path, "pool.padding"),
                       "padding " + std::to_string(pad) + " is more than half the kernel " +
                           std::to_string(kernel),
                       "PyTorch allows padding at most kernel / 2 (rounded down), here " +
                           std::to_string(kernel / 2) + ": lower the padding or widen the kernel",
                       path, {path});
      }
      if (Found f =
              fit(path, "pool", p.in, p.kernel_h, p.kernel_w, p.pad_h, p.pad_w, 1, 1, context)) {
        return f;
      }
    }
    const ImageShape out = p.out();
    s = Stream{out.size(), out};
    return std::nullopt;
  }

  bool image_input_;
  std::map<Key, Stream> cache_;
};

Found check_layers(const RunSpec& spec) {
  if (Found f = check_shape(spec.layers, "layers")) return f;
  if (Found f = check_softmax(spec.layers, "layers", {})) return f;
  return check_op_count(spec.layers);
}

// ---- The stack, the input and the values of every op

Found check_stack(const RunSpec& spec) {
  if (spec.stack.depth < 1 || spec.stack.depth > spec_limits::kMaxDepth) {
    return finding("stack.depth",
                   "stack depth " + std::to_string(spec.stack.depth) + " is outside [1, " +
                       std::to_string(spec_limits::kMaxDepth) + "]",
                   "a stack has at least one layer");
  }
  if (Problem p = check_layer(spec.stack.layer)) {
    return finding("stack", std::move(p->first), std::move(p->second), "stack");
  }
  const ActivationInfo& info = activation_info(spec.stack.layer.activation.kind);
  if (info.output_only) {
    Finding f = finding(
        "stack.activation",
        std::string(info.name) +
            " normalises across the units of a layer, so it belongs only in "
            "\"output\"",
        "put it in output.activation, e.g. \"output\": {\"width\": 10, "
        "\"activation\": \"" +
            std::string(info.name) +
            "\"}; hidden layers take an elementwise activation: " + hidden_activation_list(),
        "stack");
    f.problem.at_name = true;
    return f;
  }
  if (spec.output) {
    if (Problem p = check_layer(*spec.output)) {
      return finding("output", std::move(p->first), std::move(p->second), "output");
    }
  }
  return std::nullopt;
}

Found check_input(const InputSpec& input) {
  const auto problem = [](std::string what, std::string hint) {
    return finding("input", std::move(what), std::move(hint));
  };
  if (!in_width_range(input.width)) {
    return problem("width " + std::to_string(input.width) + " is outside " + width_range(),
                   "the input needs at least one feature");
  }
  if (!in_width_range(input.batch)) {
    return problem("batch " + std::to_string(input.batch) + " is outside " + width_range(),
                   "use a batch of at least one example");
  }
  if (!in_width_range(input.tokens)) {
    return problem("tokens " + std::to_string(input.tokens) + " is outside " + width_range(),
                   "a sequence has at least one token; 1 is a batch of vectors");
  }
  if (input.image.is_image()) {
    const ImageShape& image = input.image;
    if (!in_width_range(image.height) || !in_width_range(image.width) ||
        !in_width_range(image.channels)) {
      return problem("image " + image_text(image) +
                         ": channels, height and width must each be in " + width_range(),
                     "an image input is channels x height x width, e.g. 3 x 32 x 32");
    }
    const std::int64_t features = std::int64_t{image.channels} * image.height * image.width;
    if (features != input.width) {
      return problem("width " + std::to_string(input.width) + " is not the image's " +
                         image_text(image) + " = " + std::to_string(features) + " features",
                     "for an image input, InputSpec::width holds channels x height x width");
    }
    if (input.tokens != 1) {
      return problem("an image input with " + std::to_string(input.tokens) + " tokens",
                     "an example is one image: tokens must be 1");
    }
  }
  if (std::int64_t{input.batch} * input.tokens > spec_limits::kMaxWidth) {
    return problem("batch x tokens = " + std::to_string(std::int64_t{input.batch} * input.tokens) +
                       " exceeds " + std::to_string(spec_limits::kMaxWidth) + " token vectors",
                   "lower input.batch or input.tokens");
  }
  if (!std::isfinite(input.mean) || !(std::isfinite(input.std) && input.std >= 0)) {
    return problem("the normal distribution needs a finite mean and a finite std >= 0",
                   "the defaults are mean 0, std 1");
  }
  if (!std::isfinite(input.low) || !std::isfinite(input.high)) {
    return problem("the uniform distribution needs finite low < high", "the default is -1 to 1");
  }
  if (input.distribution == InputDistribution::kUniform && !(input.low < input.high)) {
    return finding("input",
                   "low (" + json_number_text(input.low) + ") must be less than high (" +
                       json_number_text(input.high) + ")",
                   "the uniform distribution draws from [low, high); the default is -1 to 1", {},
                   {"input.low", "input.high"});
  }
  return std::nullopt;
}

// The ops `item` expands to; the op count is known to be within the limit.
std::uint64_t ops_of(const LayerItem& item) {
  if (item.block.empty()) return 1;
  std::uint64_t per_repeat = (item.residual ? 2U : 0U) + (item.post_norm ? 1U : 0U);
  for (const LayerItem& inner : item.block) per_repeat += ops_of(inner);
  return per_repeat * static_cast<std::uint64_t>(item.repeat);
}

// Every op's own values, with `first` the index of the first op `items` expand to. A block's
// repetitions repeat its values, so each item is checked once, in the order its first
// repetition's ops run; the network is not expanded. The op count is known to be in the limit.
Found check_values(const std::vector<LayerItem>& items, const std::string& prefix,
                   std::uint64_t first) {
  const auto at = [](const std::string& path, std::uint64_t op, Problem p) {
    Finding f = finding(path, std::move(p->first), std::move(p->second));
    f.problem.op = static_cast<std::size_t>(op);
    return f;
  };
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    const std::string path = item_path(item, prefix, i);
    if (item.block.empty()) {
      if (Problem p = check_op(item.op)) return at(path, first, std::move(p));
      ++first;
      continue;
    }
    std::uint64_t op = first;
    if (item.residual) {
      OpSpec begin;
      begin.kind = OpKind::kResidualBegin;
      begin.residual = *item.residual;
      if (Problem p = check_op(begin)) return at(path, op, std::move(p));
      ++op;
    }
    if (Found f = check_values(item.block, path + ".block", op)) return f;
    if (item.residual && item.post_norm) {
      const std::uint64_t norm = first + ops_of(item) / static_cast<std::uint64_t>(item.repeat) - 1;
      if (Problem p = check_norm(*item.post_norm)) return at(path, norm, std::move(p));
    }
    first += ops_of(item);
  }
  return std::nullopt;
}

// ---- The loss against the network's output

// The op the loss sees at the network's end, looking through dropout.
struct OutputEnd {
  // kOther: a norm or a residual addition; kNothing: no op but dropout (inside a block).
  enum Kind : int { kNothing, kOther, kActivation } kind = kNothing;
  ActivationSpec activation{};
  std::string path;  // of the activation in the config
  std::string item;
};

OutputEnd output_end(const std::vector<LayerItem>& items, const std::string& prefix) {
  for (std::size_t i = items.size(); i-- > 0;) {
    const LayerItem& item = items[i];
    const std::string path = item_path(item, prefix, i);
    if (!item.block.empty()) {
      if (item.residual) return {OutputEnd::kOther, {}, path, path};
      const OutputEnd inner = output_end(item.block, path + ".block");
      if (inner.kind != OutputEnd::kNothing) return inner;
      continue;  // a block of dropouts only
    }
    switch (item.op.kind) {
      case OpKind::kDropout:
        continue;
      case OpKind::kDense:
        return {OutputEnd::kActivation, item.op.dense.activation, child(path, "activation"), path};
      case OpKind::kActivation:
        return {OutputEnd::kActivation, item.op.activation, child(path, "activation"), path};
      case OpKind::kConv:
        return {OutputEnd::kActivation, item.op.conv.activation, child(path, "activation"), path};
      case OpKind::kPool:
      case OpKind::kFlatten:
      case OpKind::kNorm:
      case OpKind::kResidualBegin:
      case OpKind::kResidualEnd:
      case OpKind::kAttention:
      case OpKind::kGlu:
        return {OutputEnd::kOther, {}, path, path};
    }
  }
  return {};
}

Found check_loss(const RunSpec& spec) {
  const LossSpec& loss = spec.loss;
  const int outputs = output_width(spec);
  const bool softmax_ce = loss.kind == LossKind::kSoftmaxCrossEntropy;
  if (softmax_ce && outputs < 2) {
    return finding("loss",
                   "softmax_cross_entropy needs at least 2 output units, the network has " +
                       std::to_string(outputs),
                   "a softmax over one unit is always 1, so the loss and every gradient would be "
                   "0; with one output use \"sigmoid_bce\" or \"mse\"");
  }
  if (softmax_ce && loss.classes != outputs) {
    return finding(
        "loss.classes",
        "classes is " + std::to_string(loss.classes) + " but the network has " +
            std::to_string(outputs) + " output units",
        "the labels pick one output unit each: set \"classes\": " + std::to_string(outputs) +
            " or leave it out (it defaults to the output width)");
  }
  const bool takes_logits = softmax_ce || loss.kind == LossKind::kSigmoidBce;
  OutputEnd end;
  if (!spec.layers.empty()) {
    end = output_end(spec.layers, "layers");
  } else {
    const char* item = spec.output ? "output" : "stack";
    end = {OutputEnd::kActivation,
           spec.output ? spec.output->activation : spec.stack.layer.activation,
           child(item, "activation"), item};
  }
  // A bounded output (sigmoid, tanh) before softmax cross-entropy runs: it is a common mistake
  // the diagnosis names (sigmoid_output_multiclass) with its cost, the loss floor it imposes.
  const Activation k = end.activation.kind;
  const bool diagnosed = softmax_ce && (k == Activation::kSigmoid || k == Activation::kTanh ||
                                        k == Activation::kHardTanh);
  if (!takes_logits || end.kind != OutputEnd::kActivation || k == Activation::kLinear ||
      diagnosed) {
    return std::nullopt;
  }
  const std::string_view applies = softmax_ce ? "softmax" : "sigmoid";
  std::string hint = "the loss applies " + std::string(applies) +
                     " itself; use a linear output (\"activation\": \"linear\")";
  if (end.path == "stack.activation") {
    hint += R"(, e.g. add "output": {"width": 10}, which is linear by default)";
  }
  return finding(end.path,
                 "the network ends in " + std::string(activation_info(k).name) + ", but loss " +
                     quote(loss_name(loss.kind)) + " takes logits",
                 std::move(hint), end.item, {"loss"});
}

// ---- The run's other sections (the config reader refuses a value out of range as it reads it)

Found check_optimizer(const OptimizerSpec& o) {
  for (const auto& [key, value, fraction] :
       {std::tuple{"learning_rate", o.learning_rate, false},
        std::tuple{"momentum", o.momentum, true}, std::tuple{"beta1", o.beta1, true},
        std::tuple{"beta2", o.beta2, true}, std::tuple{"eps", o.eps, false}}) {
    const bool ok = fraction ? value >= 0 && value < 1 : std::isfinite(value) && value > 0;
    if (ok) continue;
    return finding(child("optimizer", key),
                   std::string(key) + " is " + number_text(value) +
                       (fraction ? "; it must be in [0, 1)" : "; it must be a finite number > 0"),
                   "the defaults: learning_rate 0.001, momentum 0.9, beta1 0.9, beta2 0.999, "
                   "eps 1e-8");
  }
  return std::nullopt;
}

Found check_stats(const StatsSpec& s) {
  if (!(s.saturation_threshold > 0 && s.saturation_threshold < 1)) {
    return finding("stats.saturation_threshold",
                   "saturation_threshold is " + number_text(s.saturation_threshold) +
                       "; it must be between 0 and 1 (both excluded)",
                   "an entry counts as saturated when |phi'(h)| < threshold * max |phi'|; the "
                   "default is 0.05");
  }
  if (s.jacobian_examples < 0 || s.jacobian_examples > spec_limits::kMaxJacobianExamples) {
    return finding("stats.jacobian_examples",
                   "jacobian_examples is " + std::to_string(s.jacobian_examples) +
                       "; it must be in [0, " + std::to_string(spec_limits::kMaxJacobianExamples) +
                       "]",
                   "0 computes no Jacobian spectrum");
  }
  return std::nullopt;
}

Found check_diagnosis(const DiagnosisSpec& d) {
  for (const DiagnosisThreshold& t : diagnosis_thresholds()) {
    const double x = d.*t.member;
    if (t.fraction ? x > 0 && x < 1 : x > 0 && std::isfinite(x)) continue;
    return finding(child("diagnosis", t.key),
                   std::string(t.key) + " is " + number_text(x) +
                       (t.fraction ? "; it must be between 0 and 1 (both excluded)"
                                   : "; it must be a positive number"),
                   "the README's diagnosis section gives each threshold's meaning and default");
  }
  if (d.deep_layers < 1 || d.deep_layers > spec_limits::kMaxDepth) {
    return finding("diagnosis.deep_layers",
                   "deep_layers is " + std::to_string(d.deep_layers) + "; it must be in [1, " +
                       std::to_string(spec_limits::kMaxDepth) + "]",
                   "the number of dense layers from which a stack counts as deep; the default is "
                   "10");
  }
  if (d.gradient_error_decades < d.gradient_warning_decades) {
    return finding("diagnosis.gradient_error_decades",
                   "is below diagnosis.gradient_warning_decades",
                   "an error threshold must be at least the warning threshold");
  }
  if (d.activation_error_decades < d.activation_warning_decades) {
    return finding("diagnosis.activation_error_decades",
                   "is below diagnosis.activation_warning_decades",
                   "an error threshold must be at least the warning threshold");
  }
  if (d.update_ratio_max <= d.update_ratio_min) {
    return finding("diagnosis.update_ratio_max", "must exceed diagnosis.update_ratio_min",
                   "the update-to-weight ratio is healthy between the two");
  }
  return std::nullopt;
}

// The rules in the order the config reader used to meet them, so that a config breaking two
// names the same one as before: the architecture's shape, the input, every op's values, the
// residual widths, the loss, the other sections.
Found find(const RunSpec& spec) {
  if (Found f = spec.layers.empty() ? check_stack(spec) : check_layers(spec)) return f;
  if (Found f = check_input(spec.input)) return f;
  if (!spec.layers.empty()) {
    if (Found f = check_values(spec.layers, "layers", 0)) return f;
    Stream stream{spec.input.width, spec.input.image};
    if (Found f = StreamWalk(spec.input.image.is_image()).walk(spec.layers, "layers", stream, {})) {
      return f;
    }
  }
  if (Found f = check_loss(spec)) return f;
  if (Found f = check_optimizer(spec.optimizer)) return f;
  if (Found f = check_stats(spec.stats)) return f;
  return check_diagnosis(spec.diagnosis);
}

// The index of the first op of the item at config path `target`, counting from `first`.
std::optional<std::uint64_t> first_op_in(const std::vector<LayerItem>& items,
                                         const std::string& prefix, const std::string& target,
                                         std::uint64_t first) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    const std::string path = item_path(item, prefix, i);
    if (path == target) return first;
    if (!item.block.empty()) {
      const std::uint64_t inner = first + (item.residual ? 1U : 0U);
      if (const auto op = first_op_in(item.block, path + ".block", target, inner)) return op;
    }
    first += ops_of(item);
  }
  return std::nullopt;
}

// The first op whose config path is `item`, counted without expanding the network; none when
// the network breaks the limits that make counting safe.
std::optional<std::size_t> first_op_of(const RunSpec& spec, const std::string& item) {
  if (spec.layers.empty()) {
    if (spec.stack.depth < 1 || spec.stack.depth > spec_limits::kMaxDepth) return std::nullopt;
    if (item == "stack") return 0;
    if (item == "output" && spec.output) return static_cast<std::size_t>(spec.stack.depth);
    return std::nullopt;
  }
  if (check_shape(spec.layers, "layers") || check_op_count(spec.layers)) return std::nullopt;
  const std::optional<std::uint64_t> op = first_op_in(spec.layers, "layers", item, 0);
  if (!op) return std::nullopt;
  return static_cast<std::size_t>(*op);
}

std::optional<int> last_dense_width(const std::vector<LayerItem>& items) {
  for (auto it = items.rbegin(); it != items.rend(); ++it) {
    if (!it->block.empty()) {
      if (const std::optional<int> width = last_dense_width(it->block)) return width;
    } else if (it->op.kind == OpKind::kDense) {
      return it->op.dense.width;
    }
  }
  return std::nullopt;
}

}  // namespace

std::span<const DiagnosisThreshold> diagnosis_thresholds() {
  static constexpr DiagnosisThreshold kThresholds[] = {
      {"gradient_warning_decades", &DiagnosisSpec::gradient_warning_decades, false},
      {"gradient_error_decades", &DiagnosisSpec::gradient_error_decades, false},
      {"activation_warning_decades", &DiagnosisSpec::activation_warning_decades, false},
      {"activation_error_decades", &DiagnosisSpec::activation_error_decades, false},
      {"dead_fraction", &DiagnosisSpec::dead_fraction, true},
      {"saturated_fraction", &DiagnosisSpec::saturated_fraction, true},
      {"correlation", &DiagnosisSpec::correlation, true},
      {"update_ratio_min", &DiagnosisSpec::update_ratio_min, false},
      {"update_ratio_max", &DiagnosisSpec::update_ratio_max, false},
      {"init_mismatch_factor", &DiagnosisSpec::init_mismatch_factor, false},
      {"token_cosine", &DiagnosisSpec::token_cosine, true},
      {"attention_entropy_fraction", &DiagnosisSpec::attention_entropy_fraction, true},
      {"attention_uniform_fraction", &DiagnosisSpec::attention_uniform_fraction, true},
      {"attention_max_logit", &DiagnosisSpec::attention_max_logit, false},
      {"postnorm_gradient_ratio", &DiagnosisSpec::postnorm_gradient_ratio, false},
      {"residual_growth", &DiagnosisSpec::residual_growth, false},
      {"partial_jacobian_growth", &DiagnosisSpec::partial_jacobian_growth, false},
  };
  return kThresholds;
}

int output_width(const RunSpec& spec) {
  // An image network may end in a convolution or a pooling: its output is then walked to, when
  // the network keeps the rules that bound the walk.
  if (!spec.layers.empty() && spec.input.image.is_image() && !check_shape(spec.layers, "layers") &&
      !check_op_count(spec.layers) && !check_values(spec.layers, "layers", 0)) {
    Stream stream{spec.input.width, spec.input.image};
    if (!StreamWalk(true).walk(spec.layers, "layers", stream, {})) return stream.width;
  }
  if (!spec.layers.empty()) return last_dense_width(spec.layers).value_or(spec.input.width);
  if (spec.output) return spec.output->width;
  return spec.stack.depth > 0 ? spec.stack.layer.width : spec.input.width;
}

std::optional<SpecProblem> find_spec_problem(const RunSpec& spec) {
  Found f = find(spec);
  if (!f) return std::nullopt;
  if (!f->problem.op && !f->item.empty()) f->problem.op = first_op_of(spec, f->item);
  return std::move(f->problem);
}

void validate_run_spec(const RunSpec& spec) {
  const std::optional<SpecProblem> p = find_spec_problem(spec);
  if (!p) return;
  throw Error(p->path.empty() ? p->what : p->path + ": " + p->what, p->hint);
}

}  // namespace gradscope
