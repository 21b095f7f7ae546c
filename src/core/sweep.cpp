// The sweep's grid: parsing --vary, the combinations, the structural rewrites (residual blocks and
// norms built into a stack, or kept, removed or retyped in a "layers" list), and the shards.
#include "gradscope/core/sweep.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "gradscope/core/error.hpp"

namespace gradscope {

namespace {

// Short names for the keys people vary most.
const std::vector<std::pair<std::string_view, std::string_view>> kAliases{
    {"activation", "stack.activation"}, {"depth", "stack.depth"},
    {"width", "stack.width"},           {"init", "stack.init"},
    {"bias_init", "stack.bias_init"},   {"gain", "stack.init.gain"},
    {"batch", "input.batch"},           {"seed", "seed"},
    {"precision", "precision"},         {"loss", "loss"},
    {"optimizer", "optimizer"},         {"learning_rate", "optimizer.learning_rate"},
};

// Splits on commas outside brackets, braces and quotes, so that JSON values may hold commas.
std::vector<std::string> split_values(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '\\' && i + 1 < text.size()) {
        current += c;
        current += text[++i];
        continue;
      }
      if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 0) {
      out.push_back(current);
      current.clear();
      continue;
    }
    current += c;
  }
  out.push_back(current);
  return out;
}

LayerItem dense_item(const LayerSpec& layer) {
  LayerItem item;
  item.op.kind = OpKind::kDense;
  item.op.dense = layer;
  return item;
}

LayerItem norm_item(NormKind kind) {
  LayerItem item;
  item.op.kind = OpKind::kNorm;
  item.op.norm.kind = kind;
  return item;
}

}  // namespace

SweepAxis parse_sweep_axis(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw Error("--vary " + text + ": expected KEY=VALUE1,VALUE2,...",
                "for example --vary activation=sigmoid,tanh,relu,gelu or --vary depth=10,20,50");
  }
  SweepAxis axis;
  axis.key = text.substr(0, eq);
  std::string values = text.substr(eq + 1);
  // A JSON array of values: the brackets are the list's, not a value's.
  if (values.size() >= 2 && values.front() == '[' && values.back() == ']') {
    values = values.substr(1, values.size() - 2);
  }
  for (std::string v : split_values(values)) {
    const auto first = v.find_first_not_of(' ');
    const auto last = v.find_last_not_of(' ');
    v = first == std::string::npos ? std::string() : v.substr(first, last - first + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"' && v.find('"', 1) == v.size() - 1) {
      v = v.substr(1, v.size() - 2);  // a JSON string in an array: its bare form
    }
    if (v.empty()) {
      throw Error("--vary " + text + ": an empty value", "separate values by single commas");
    }
    if (std::find(axis.values.begin(), axis.values.end(), v) != axis.values.end()) {
      throw Error("--vary " + text + ": the value " + v + " appears twice", "list each value once");
    }
    axis.values.push_back(v);
  }
  if (axis.key == "residual") {
    for (const std::string& v : axis.values) {
      if (v != "on" && v != "off") {
        throw Error("--vary residual: unknown value \"" + v + "\"", "use on and/or off");
      }
    }
  } else if (axis.key == "norm") {
    for (const std::string& v : axis.values) {
      if (v != "none" && v != "batch_norm" && v != "layer_norm" && v != "rms_norm") {
        throw Error("--vary norm: unknown value \"" + v + "\"",
                    "use none, batch_norm, layer_norm or rms_norm");
      }
    }
  } else {
    axis.path = axis.key;
    for (const auto& [alias, path] : kAliases) {
      if (axis.key == alias) axis.path = std::string(path);
    }
  }
  return axis;
}

std::vector<SweepPoint> sweep_points(const std::vector<SweepAxis>& axes) {
  std::vector<SweepPoint> points(1);
  for (const SweepAxis& axis : axes) {
    std::vector<SweepPoint> next;
    for (const SweepPoint& p : points) {
      for (const std::string& v : axis.values) {
        SweepPoint q = p;
        q.settings.emplace_back(axis.key, v);
        next.push_back(std::move(q));
      }
    }
    points = std::move(next);
  }
  for (std::size_t i = 0; i < points.size(); ++i) {
    points[i].index = static_cast<int>(i);
    for (const auto& [key, value] : points[i].settings) {
      if (!points[i].label.empty()) points[i].label += ' ';
      points[i].label += key + "=" + value;
    }
    if (points[i].label.empty()) points[i].label = "base";
  }
  return points;
}

SweepGridSize sweep_grid_size(const std::vector<SweepAxis>& axes) {
  SweepGridSize size;
  // The exact count in decimal digits, least significant first: no product can overflow it.
  std::vector<int> digits{1};
  for (const SweepAxis& axis : axes) {
    const std::uint64_t n = axis.values.size();
    if (!size.product.empty()) size.product += " x ";
    size.product += std::to_string(n);
    size.count = n != 0 && size.count > UINT64_MAX / n ? UINT64_MAX : size.count * n;
    // Each step keeps carry < n, so 9n + carry stays below 10n, far from overflowing.
    std::uint64_t carry = 0;
    for (int& d : digits) {
      const std::uint64_t v = static_cast<std::uint64_t>(d) * n + carry;
      d = static_cast<int>(v % 10);
      carry = v / 10;
    }
    for (; carry > 0; carry /= 10) digits.push_back(static_cast<int>(carry % 10));
    while (digits.size() > 1 && digits.back() == 0) digits.pop_back();
  }
  for (std::size_t i = digits.size(); i-- > 0;) {
    size.text += static_cast<char>('0' + digits[i]);
    if (i > 0 && i % 3 == 0) size.text += ',';
  }
  return size;
}

SweepShard parse_sweep_shard(const std::string& text) {
  const std::string hint =
      "write I/N with 0 <= I < N: shards are numbered from 0, e.g. --shard 0/4 to --shard 3/4; in "
      "a Slurm job array use --array=0-(N-1) and --shard $SLURM_ARRAY_TASK_ID/N";
  const auto slash = text.find('/');
  const auto is_number = [](const std::string& s) {
    return !s.empty() && s.size() <= 9 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (slash == std::string::npos || !is_number(text.substr(0, slash)) ||
      !is_number(text.substr(slash + 1))) {
    throw Error("--shard " + text + ": expected I/N, two whole numbers", hint);
  }
  SweepShard shard;
  shard.index = std::stoi(text.substr(0, slash));
  shard.count = std::stoi(text.substr(slash + 1));
  if (shard.count < 1) throw Error("--shard " + text + ": N must be at least 1", hint);
  if (shard.count > kMaxSweepShards) {
    throw Error("--shard " + text + ": more than " + std::to_string(kMaxSweepShards) + " shards",
                "use fewer shards; each shard runs every k-th run, so N above the number of runs "
                "only adds empty shards");
  }
  if (shard.index >= shard.count) {
    throw Error("--shard " + text + ": I must be below N (the shards of " +
                    std::to_string(shard.count) + " are 0 to " + std::to_string(shard.count - 1) +
                    ")",
                hint);
  }
  return shard;
}

std::string sweep_shard_dir(const SweepShard& shard) {
  return "shards/" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count);
}

namespace {

// A stack config has no skip connections and no norms: the structure builds them.
RunSpec stack_with_structure(const RunSpec& spec, const Structure& structure) {
  const bool residual = structure.residual.value_or(false);
  const bool norm = structure.norm_given && structure.norm.has_value();
  // A plain value rather than the optional: GCC cannot see that it is set where it is read.
  const NormKind kind = norm ? *structure.norm : NormKind::kLayerNorm;
  if (!residual && !norm) return spec;
  RunSpec out = spec;
  out.layers.clear();
  const LayerSpec& layer = spec.stack.layer;
  if (residual) {
    if (spec.stack.depth < 2) {
      throw Error(
          "--vary residual=on: the stack needs at least 2 layers (the first maps the "
          "input to the stack's width, the others are residual blocks)",
          "raise stack.depth");
    }
    // The first layer maps the input to the stack's width, the others are x + F(Norm(x)), and a
    // final norm precedes the output; without a norm, x + F(x).
    out.layers.push_back(dense_item(layer));
    LayerItem block;
    block.repeat = spec.stack.depth - 1;
    block.residual = ResidualSpec{};
    if (norm) block.block.push_back(norm_item(kind));
    block.block.push_back(dense_item(layer));
    out.layers.push_back(std::move(block));
    if (norm) out.layers.push_back(norm_item(kind));
  } else {
    // A norm after every hidden layer's activation.
    LayerItem block;
    block.repeat = spec.stack.depth;
    block.block.push_back(dense_item(layer));
    block.block.push_back(norm_item(kind));
    out.layers.push_back(std::move(block));
  }
  if (spec.output) out.layers.push_back(dense_item(*spec.output));
  out.output.reset();
  out.stack = StackSpec{};
  return out;
}

int count_residual_blocks(const std::vector<LayerItem>& items) {
  int n = 0;
  for (const LayerItem& item : items) {
    n += (item.residual ? 1 : 0) + count_residual_blocks(item.block);
  }
  return n;
}

int count_norms(const std::vector<LayerItem>& items) {
  int n = 0;
  for (const LayerItem& item : items) {
    n += (item.block.empty() && item.op.kind == OpKind::kNorm ? 1 : 0) + (item.post_norm ? 1 : 0) +
         count_norms(item.block);
  }
  return n;
}

// residual=off: each block loses its skip connection. A post-norm, norm(x + F(x)), stays as a
// norm after F: whether norms stay is the norm axis's to say.
void drop_residuals(std::vector<LayerItem>& items) {
  for (LayerItem& item : items) {
    if (item.block.empty()) continue;
    drop_residuals(item.block);
    if (item.post_norm) {
      LayerItem norm = norm_item(item.post_norm->kind);
      norm.op.norm = *item.post_norm;
      norm.path = item.path;
      item.block.push_back(std::move(norm));
    }
    item.residual.reset();
    item.post_norm.reset();
  }
}

// norm=none: every norm goes. The config reader turns a dense item whose norm comes before its
// activation into dense (linear), norm, activation under the item's one path; without the norm
// that is the item's dense layer again, so it becomes one. A block of norms alone goes too.
void drop_norms(std::vector<LayerItem>& items) {
  std::vector<LayerItem> kept;
  for (LayerItem& item : items) {
    if (!item.block.empty()) {
      item.post_norm.reset();
      drop_norms(item.block);
      if (!item.block.empty()) kept.push_back(std::move(item));
      continue;
    }
    if (item.op.kind == OpKind::kNorm) continue;
    if (item.op.kind == OpKind::kActivation && !item.path.empty() && !kept.empty()) {
      LayerItem& dense = kept.back();
      if (dense.block.empty() && dense.op.kind == OpKind::kDense && dense.path == item.path &&
          dense.op.dense.activation.kind == Activation::kLinear) {
        dense.op.dense.activation = item.op.activation;
        continue;
      }
    }
    kept.push_back(std::move(item));
  }
  items = std::move(kept);
}

// norm=KIND: every norm becomes that kind, its eps kept.
void set_norm_kind(std::vector<LayerItem>& items, NormKind kind) {
  for (LayerItem& item : items) {
    if (item.block.empty() && item.op.kind == OpKind::kNorm) item.op.norm.kind = kind;
    if (item.post_norm) item.post_norm->kind = kind;
    set_norm_kind(item.block, kind);
  }
}

// A "layers" config has its own blocks and norms: the structure keeps, removes or retypes them,
// but does not guess where new ones would go.
RunSpec layers_with_structure(const RunSpec& spec, const Structure& structure) {
  RunSpec out = spec;
  if (structure.residual) {
    if (!*structure.residual) {
      drop_residuals(out.layers);
    } else if (count_residual_blocks(out.layers) == 0) {
      throw Error("--vary residual=on: the config's \"layers\" list has no residual block to keep",
                  "residual=on builds residual blocks from a stack config only; in a \"layers\" "
                  "config write them in (\"residual\": {\"scale\": 1} on a block), and "
                  "residual=off,on then compares them with plain blocks");
    }
  }
  if (structure.norm_given) {
    if (!structure.norm) {
      drop_norms(out.layers);
    } else if (count_norms(out.layers) == 0) {
      const std::string name(norm_name(*structure.norm));
      throw Error(
          "--vary norm=" + name + ": the config's \"layers\" list has no norm to make a " + name,
          "norm=KIND adds norms to a stack config only; in a \"layers\" config it "
          "changes the kind of the norms the list has (and none removes them): write the "
          "norms into \"layers\", e.g. {\"norm\": \"layer_norm\"}");
    } else {
      set_norm_kind(out.layers, *structure.norm);
    }
  }
  return out;
}

}  // namespace

RunSpec with_structure(const RunSpec& spec, const Structure& structure) {
  return spec.layers.empty() ? stack_with_structure(spec, structure)
                             : layers_with_structure(spec, structure);
}

}  // namespace gradscope
