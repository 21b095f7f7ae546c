// The sweep's grid: parsing --vary, the combinations, the structural rewrites (residual blocks, a
// norm per layer) that turn one stack config into its variants, and the slicing into shards.
#include "gradscope/sweep.hpp"

#include <algorithm>
#include <utility>

#include "gradscope/error.hpp"

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

RunSpec with_structure(const RunSpec& spec, const Structure& structure) {
  if (!structure.residual && !structure.norm) return spec;
  if (!spec.layers.empty()) {
    throw Error("--vary residual/norm: the config already has a \"layers\" list",
                "these keys rewrite a stack config; vary keys inside \"layers\" instead, e.g. "
                "--vary layers[1].repeat=10,20");
  }
  if (spec.stack.depth < 2) {
    throw Error("--vary residual/norm: the stack needs at least 2 layers", "raise stack.depth");
  }
  RunSpec out = spec;
  out.layers.clear();
  const LayerSpec& layer = spec.stack.layer;
  if (structure.residual) {
    // As the diagnosis advises: the first layer maps the input to the stack's width, the others
    // are x + F(Norm(x)), and a final norm precedes the output.
    const NormKind kind = structure.norm.value_or(NormKind::kLayerNorm);
    out.layers.push_back(dense_item(layer));
    LayerItem block;
    block.repeat = spec.stack.depth - 1;
    block.residual = ResidualSpec{};
    block.block.push_back(norm_item(kind));
    block.block.push_back(dense_item(layer));
    out.layers.push_back(std::move(block));
    out.layers.push_back(norm_item(kind));
  } else {
    // A norm after every hidden layer's activation.
    LayerItem block;
    block.repeat = spec.stack.depth;
    block.block.push_back(dense_item(layer));
    block.block.push_back(norm_item(*structure.norm));
    out.layers.push_back(std::move(block));
  }
  if (spec.output) out.layers.push_back(dense_item(*spec.output));
  out.output.reset();
  out.stack = StackSpec{};
  return out;
}

}  // namespace gradscope
