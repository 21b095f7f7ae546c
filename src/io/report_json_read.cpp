// The JSON report read back into the Report it was written from (report_json.cpp writes it), so
// that compare and the sweep work on the structs the writers read rather than on a second model.
// Why this file is long: it mirrors the writer section by section (layers, per-tensor parameters,
// summary, findings, remedy, Jacobian, sources), one ReportReader whose reads share its paths.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/version.hpp"
#include "io/json_read.hpp"

namespace gradscope {

namespace {

// `text` as one shell word: as it is when it holds nothing a shell interprets, else single-quoted.
std::string shell_word(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) {
    // Spelled out rather than std::isalnum, which follows the locale.
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.' || ch == '/';
  });
  if (plain) return text;
  std::string out = "'";
  for (const char ch : text) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// What to do with a JSON document that is not a report: a config is run first; a comparison
// names its reports; anything else gets kReportFileHint.
std::string not_a_report_hint(const JsonValue& root, const std::string& file) {
  if (root.contains("comparison_version")) {
    const auto path = [&](const char* key, const char* otherwise) {
      const auto side = root.find(key);
      const bool named = side != root.end() && side->is_object() && side->contains("path") &&
                         (*side)["path"].is_string();
      return named ? shell_word((*side)["path"].get<std::string>()) : std::string(otherwise);
    };
    return "this is a comparison that gradscope compare wrote, not a report; it compared " +
           path("base", "BASE.json") + " with " + path("proposed", "PROPOSED.json");
  }
  // A run config (what `gradscope run` reads) has a stack or a list of layers. The report is
  // named after the config's name, else after the file's stem, as `gradscope run` names it.
  if (root.contains("stack") || root.contains("layers")) {
    const auto name = root.find("name");
    const std::string stem = name != root.end() && name->is_string()
                                 ? name->get<std::string>()
                                 : std::filesystem::path(file).stem().string();
    return "this looks like a config, not a report: `gradscope run " + shell_word(file) +
           " --out reports` writes reports/" + stem + ".json, the report";
  }
  return std::string(kReportFileHint);
}

std::vector<std::string_view> verdict_names() {
  return {verdict_name(Verdict::kHealthy), verdict_name(Verdict::kWarning),
          verdict_name(Verdict::kError)};
}

std::vector<std::string_view> severity_names() {
  return {severity_name(Severity::kInfo), severity_name(Severity::kWarning),
          severity_name(Severity::kError)};
}

// The reported kinds, in OpKind order (a residual begin is never reported).
constexpr OpKind kReportedKinds[] = {
    OpKind::kDense,     OpKind::kNorm, OpKind::kActivation, OpKind::kDropout, OpKind::kResidualEnd,
    OpKind::kAttention, OpKind::kGlu,  OpKind::kConv,       OpKind::kPool,    OpKind::kFlatten};

class ReportReader {
 public:
  explicit ReportReader(const std::string& source) : in_(source, std::string(kReportFileHint)) {}

  Report read(const std::string& text) const {
    const JsonValue root = in_.parse(text);
    check_header(root);
    Report r;
    r.spec = spec(in_.object(root, "", "config"));
    const JsonValue& network = in_.object(root, "", "network");
    r.parameters = in_.int64(network, "network", "parameters");
    r.memory = memory(in_.object(network, "network", "memory"));
    const JsonValue& input = in_.object(root, "", "input");
    r.input = moments(input, "input",
                      std::int64_t{r.spec.input.width} * std::int64_t{r.spec.input.batch});
    const JsonValue& output_grad = in_.object(root, "", "output_grad");
    r.output_grad_rms = magnitude(output_grad, "output_grad", "rms", "log10_rms");
    r.loss = in_.number(in_.object(root, "", "loss"), "loss", "value");
    read_layers(in_.array(root, "", "layers"), r);
    settings_from_config(r);
    r.parameter_list = parameter_list(in_.array(root, "", "parameters"));
    const JsonValue& summary = in_.object(root, "", "summary");
    r.verdict = static_cast<Verdict>(in_.choice(summary, "summary", "verdict", verdict_names()));
    r.summary = read_summary(summary);
    const JsonValue& findings = in_.array(root, "", "findings");
    for (std::size_t i = 0; i < findings.size(); ++i) {
      r.findings.push_back(finding(findings[i], json_element("findings", i)));
    }
    if (const JsonValue& remedy = in_.member(root, "", "remedy"); !remedy.is_null()) {
      r.remedy = read_remedy(remedy, "remedy");
    }
    if (root.contains("jacobian")) r.jacobian = jacobian(in_.object(root, "", "jacobian"));
    if (root.contains("criticality")) {
      r.criticality = criticality(in_.object(root, "", "criticality"));
    }
    if (root.contains("sources")) r.sources = sources(in_.object(root, "", "sources"));
    return r;
  }

 private:
  // A report says what it is before anything else is read, so that a config or another tool's
  // JSON gets this message rather than one about a missing key deep inside.
  void check_header(const JsonValue& root) const {
    const std::string& file = in_.source();
    if (!root.is_object()) {
      in_.fail("", "not a gradscope report: the document is " + json_type_name(root) +
                       ", not an object");
    }
    const auto version = root.find("schema_version");
    const auto tool = root.find("tool");
    if (version == root.end()) {
      throw Error(file + ": not a gradscope report: it has no schema_version",
                  not_a_report_hint(root, file));
    }
    if (tool == root.end() || !tool->is_object() ||
        tool->value("name", JsonValue()) != "gradscope") {
      in_.fail("", "not a gradscope report: its tool.name is not \"gradscope\"");
    }
    if (!version->is_number_integer() || version->get<long long>() != kSchemaVersion) {
      throw Error(file + ": schema_version: " + version->dump() + ", but this gradscope reads " +
                      std::to_string(kSchemaVersion),
                  "a report is read by the same gradscope that wrote it: run its config again "
                  "with this version (`gradscope run CONFIG --out DIR` writes DIR/<name>.json)");
    }
  }

  // The resolved config, read by the config reader. The name is taken as it is: the run checked
  // it, and reports built in code (tests, other tools) may carry any name.
  RunSpec spec(const JsonValue& config) const {
    const std::string name = in_.string(config, "config", "name");
    JsonValue checked = config;
    checked["name"] = "report";
    RunSpec s = parse_run_spec(checked.dump(), in_.source() + ": config", "report");
    s.name = name;
    return s;
  }

  MemoryEstimate memory(const JsonValue& j) const {
    const std::string path = "network.memory";
    MemoryEstimate m;
    m.weights_bytes = in_.int64(j, path, "weights_bytes");
    m.cache_bytes = in_.int64(j, path, "cache_bytes");
    m.work_bytes = in_.int64(j, path, "work_bytes");
    m.report_bytes = in_.int64(j, path, "report_bytes");
    const JsonValue& plan = in_.object(j, path, "plan");
    const std::string plan_path = json_child(path, "plan");
    m.plan.weights = in_.choice(plan, plan_path, "weights", {"kept", "regenerated"}) == 1
                         ? WeightStorage::kRegenerated
                         : WeightStorage::kKept;
    m.plan.checkpoint_every = in_.integer(plan, plan_path, "checkpoint_every");
    m.plan.segments = in_.int64(plan, plan_path, "segments");
    m.plan.recomputed_ops = in_.int64(plan, plan_path, "recomputed_ops");
    m.plan.peak_bytes = in_.int64(plan, plan_path, "expected_peak_bytes");
    return m;
  }

  Magnitude magnitude(const JsonValue& j, std::string_view path, std::string_view key,
                      std::string_view log10_key) const {
    const double value = in_.number(j, path, key);
    return {value, in_.number(j, path, log10_key)};
  }

  // The moments of a (width x batch) matrix of `entries` entries; see report_json.hpp for the
  // finite count, which the JSON does not carry.
  MomentStats moments(const JsonValue& j, std::string_view path, std::int64_t entries) const {
    MomentStats s;
    std::string status;
    s.mean = in_.number(j, path, "mean", &status);
    s.std = in_.number(j, path, "std");
    s.rms = in_.number(j, path, "rms");
    s.min = in_.number(j, path, "min");
    s.max = in_.number(j, path, "max");
    s.nonfinite = in_.int64(j, path, "nonfinite");
    s.finite = status == "no_finite_values" ? 0 : std::max<std::int64_t>(entries - s.nonfinite, 1);
    return s;
  }

  // saturated_units, null where saturation does not apply (then 0, as the engine leaves it).
  std::int64_t saturated_units(const JsonValue& j, std::string_view path) const {
    if (in_.member(j, path, "saturated_units").is_null()) {
      in_.number(j, path, "saturated_units");  // a null must still say why
      return 0;
    }
    return in_.int64(j, path, "saturated_units");
  }

  ForwardStats forward(const JsonValue& j, const std::string& path, std::int64_t entries) const {
    ForwardStats f;
    const std::string preact_path = json_child(path, "preact");
    f.preact = moments(in_.object(j, path, "preact"), preact_path, entries);
    const std::string act_path = json_child(path, "act");
    const JsonValue& act = in_.object(j, path, "act");
    f.act = moments(act, act_path, entries);
    f.zero_fraction = in_.number(act, act_path, "zero_fraction");
    f.saturated_fraction = in_.number(act, act_path, "saturated_fraction");
    // The histogram's range repeats act.min and act.max: only its counts are read.
    f.act_histogram = in_.int64s(in_.object(act, act_path, "histogram"),
                                 json_child(act_path, "histogram"), "counts");
    f.dead_units = in_.int64(j, path, "dead_units");
    f.dead_fraction = in_.number(j, path, "dead_fraction");
    f.saturated_units = saturated_units(j, path);
    f.nonfinite = in_.int64(j, path, "nonfinite");
    f.correlation = in_.number(j, path, "correlation");
    f.has_tokens = j.contains("tokens");
    if (f.has_tokens) {
      const std::string at = json_child(path, "tokens");
      const JsonValue& tokens = in_.object(j, path, "tokens");
      f.token_mean_cosine = in_.number(tokens, at, "mean_cosine");
      f.token_centered_rms = in_.number(tokens, at, "centered_rms");
    }
    f.has_attention = j.contains("attention");
    if (f.has_attention) {
      const std::string at = json_child(path, "attention");
      const JsonValue& attention = in_.object(j, path, "attention");
      f.attention_entropy = in_.number(attention, at, "entropy");
      f.attention_max_logit = in_.number(attention, at, "max_logit");
      f.attention_peaked_fraction = in_.number(attention, at, "peaked_fraction");
    }
    f.has_channels = j.contains("channels");
    if (f.has_channels) {
      const std::string at = json_child(path, "channels");
      const JsonValue& channels = in_.object(j, path, "channels");
      f.channel_mean_sq = magnitude(channels, at, "mean_sq", "log10_mean_sq");
      f.channel_var = magnitude(channels, at, "var", "log10_var");
      f.channels_nonfinite = in_.int64(channels, at, "nonfinite");
      f.zero_channels = in_.int64(channels, at, "zero");
      f.has_branch_var = channels.contains("branch_var");
      if (f.has_branch_var) {
        f.branch_var = magnitude(channels, at, "branch_var", "log10_branch_var");
      }
    }
    return f;
  }

  // One parameter tensor's keys (report_json.cpp's put_param).
  ParamStats param(const JsonValue& j, const std::string& path) const {
    ParamStats p;
    p.role = in_.string(j, path, "role");
    p.shape = in_.int64s(j, path, "shape");
    p.norm = in_.number(j, path, "norm");
    p.grad_norm = magnitude(j, path, "grad_norm", "log10_grad_norm");
    p.grad_nonfinite = in_.int64(j, path, "grad_nonfinite");
    p.has_update = j.contains("update_to_weight");
    if (p.has_update)
      p.update_to_weight = magnitude(j, path, "update_to_weight", "log10_update_to_weight");
    return p;
  }

  std::vector<ParameterReport> parameter_list(const JsonValue& list) const {
    std::vector<ParameterReport> out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string at = json_element("parameters", i);
      in_.expect_object(list[i], at);
      ParameterReport p;
      p.name = in_.string(list[i], at, "name");
      p.layer = in_.integer(list[i], at, "layer");
      p.stats = param(list[i], at);
      out.push_back(std::move(p));
    }
    return out;
  }

  BackwardStats backward(const JsonValue& j, const std::string& path) const {
    BackwardStats b;
    b.grad_preact_rms = magnitude(in_.object(j, path, "grad_preact"),
                                  json_child(path, "grad_preact"), "rms", "log10_rms");
    // Ops without parameters have no weight keys (report_json.cpp).
    b.has_weights = j.contains("grad_weight");
    if (b.has_weights) {
      const std::string weight_path = json_child(path, "grad_weight");
      const JsonValue& weight = in_.object(j, path, "grad_weight");
      b.grad_weight_norm = magnitude(weight, weight_path, "norm", "log10_norm");
      b.grad_weight_nonfinite = in_.int64(weight, weight_path, "nonfinite");
      const std::string bias_path = json_child(path, "grad_bias");
      const JsonValue& bias = in_.object(j, path, "grad_bias");
      b.grad_bias_norm = magnitude(bias, bias_path, "norm", "log10_norm");
      b.grad_bias_nonfinite = in_.int64(bias, bias_path, "nonfinite");
      b.weight_norm = in_.number(j, path, "weight_norm");
      b.grad_weight_to_weight =
          magnitude(j, path, "grad_weight_to_weight", "log10_grad_weight_to_weight");
    }
    b.has_update = j.contains("update");
    if (b.has_update) {
      b.update_to_weight = magnitude(in_.object(j, path, "update"), json_child(path, "update"),
                                     "ratio", "log10_ratio");
    }
    b.gain = magnitude(j, path, "gain", "log10_gain");
    b.nonfinite = in_.int64(j, path, "nonfinite");
    if (j.contains("parameters")) {
      const std::string params_path = json_child(path, "parameters");
      const JsonValue& params = in_.array(j, path, "parameters");
      for (std::size_t i = 0; i < params.size(); ++i) {
        const std::string at = json_element(params_path, i);
        in_.expect_object(params[i], at);
        b.params.push_back(param(params[i], at));
      }
    }
    return b;
  }

  LayerTheory theory(const JsonValue& j, std::string_view path) const {
    LayerTheory t;
    t.forward = in_.boolean(j, path, "forward");
    t.backward = in_.boolean(j, path, "backward");
    if (j.contains("reason")) t.reason = in_.string(j, path, "reason");
    if (t.forward) {
      t.q = in_.number(j, path, "q");
      t.act_second_moment = in_.number(j, path, "act_second_moment");
      t.correlation = in_.number(j, path, "correlation");
      t.log_q_deviation = in_.number(j, path, "log_q_deviation");
      t.log_q_spread = in_.number(j, path, "log_q_spread");
    }
    if (t.backward) {
      t.grad_factor = in_.number(j, path, "chi");
      t.log10_grad_rel_last = in_.number(j, path, "log10_grad_rel_last");
      t.measured_log10_grad_rel_last = in_.number(j, path, "measured_log10_grad_rel_last");
      t.log10_grad_deviation = in_.number(j, path, "log10_grad_deviation");
      t.log10_grad_spread = in_.number(j, path, "log10_grad_spread");
    }
    t.flagged = in_.boolean(j, path, "flagged");
    return t;
  }

  // The op-specific keys of a layer: its activation, norm, dropout rate or residual.
  void op_keys(const JsonValue& j, const std::string& path, LayerReport& l) const {
    if (j.contains("image")) {
      const std::vector<int> image = in_.integers(j, path, "image");
      if (image.size() != 3)
        in_.fail(json_child(path, "image"), "must be [channels, height, width]");
      l.image = {image[0], image[1], image[2]};
    }
    switch (l.kind) {
      case OpKind::kPool: {
        const std::string at = json_child(path, "pool");
        const JsonValue& p = in_.object(j, path, "pool");
        l.pool.kind =
            static_cast<PoolKind>(in_.choice(p, at, "kind", {"max", "average", "global_average"}));
        break;
      }
      case OpKind::kFlatten:
        break;
      case OpKind::kDense:
      case OpKind::kConv:
      case OpKind::kActivation: {
        const std::string name = in_.string(j, path, "activation");
        const std::optional<Activation> kind = activation_from_name(name);
        if (!kind) {
          in_.fail(json_child(path, "activation"),
                   "\"" + name + "\" is not an activation this gradscope knows");
        }
        l.activation.kind = *kind;
        break;
      }
      case OpKind::kNorm: {
        const std::string norm_path = json_child(path, "norm");
        const JsonValue& norm = in_.object(j, path, "norm");
        std::vector<std::string_view> names;
        for (int k = 0; k < kNormKindCount; ++k)
          names.push_back(norm_name(static_cast<NormKind>(k)));
        l.norm.kind = static_cast<NormKind>(in_.choice(norm, norm_path, "name", names));
        l.norm.eps = in_.number(norm, norm_path, "eps");
        break;
      }
      case OpKind::kDropout:
        l.dropout = in_.number(j, path, "dropout");
        break;
      case OpKind::kResidualBegin:  // never reported
        break;
      case OpKind::kResidualEnd: {
        const std::string residual_path = json_child(path, "residual");
        const JsonValue& residual = in_.object(j, path, "residual");
        l.residual.scale = in_.number(residual, residual_path, "scale");
        if (residual.contains("skip"))
          l.residual.skip = in_.number(residual, residual_path, "skip");
        l.residual.projection = in_.boolean(residual, residual_path, "projection");
        // An image's learned projection: its shapes come with the config's op (settings are the
        // config's); the key is checked here.
        if (residual.contains("learned_projection")) {
          in_.boolean(residual, residual_path, "learned_projection");
        }
        break;
      }
      case OpKind::kAttention:
        // The settings are the config's (settings_from_config); the keys are checked here.
        if (j.contains("attention")) {
          const std::string at = json_child(path, "attention");
          const JsonValue& a = in_.object(j, path, "attention");
          in_.integer(a, at, "heads");
          in_.boolean(a, at, "causal");
          in_.number(a, at, "scale");
          in_.choice(a, at, "scale_kind", {"1/sqrt(d_head)", "1/d_head", "constant"});
          in_.boolean(a, at, "bias");
          in_.boolean(a, at, "output_projection");
        }
        break;
      case OpKind::kGlu:
        if (j.contains("glu")) {
          const std::string at = json_child(path, "glu");
          const JsonValue& g = in_.object(j, path, "glu");
          in_.integer(g, at, "hidden");
          in_.string(g, at, "activation");
          in_.boolean(g, at, "bias");
        }
        break;
    }
  }

  LayerReport layer(const JsonValue& j, const std::string& path, int batch) const {
    in_.expect_object(j, path);
    LayerReport l;
    l.index = in_.integer(j, path, "index");
    std::vector<std::string_view> kinds;
    for (const OpKind kind : kReportedKinds) kinds.push_back(layer_kind_name(kind));
    l.kind = kReportedKinds[in_.choice(j, path, "kind", kinds)];
    l.width = in_.integer(j, path, "width");
    l.fan_in = in_.integer(j, path, "fan_in");
    op_keys(j, path, l);
    const std::int64_t entries = std::int64_t{l.width} * std::int64_t{batch};
    l.forward = forward(in_.object(j, path, "forward"), json_child(path, "forward"), entries);
    l.backward = backward(in_.object(j, path, "backward"), json_child(path, "backward"));
    l.theory = theory(in_.object(j, path, "theory"), json_child(path, "theory"));
    return l;
  }

  void read_layers(const JsonValue& list, Report& r) const {
    std::set<int> seen;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string path = json_element("layers", i);
      LayerReport l = layer(list[i], path, r.spec.input.batch);
      // Layers are matched by index (compare): one index, one layer.
      if (!seen.insert(l.index).second) {
        in_.fail(json_child(path, "index"), std::to_string(l.index) + " appears twice");
      }
      r.layers.push_back(std::move(l));
    }
  }

  // Whether `op` is the op that `l` reports: its kind, and the settings the layer states.
  static bool states(const OpSpec& op, const LayerReport& l) {
    if (op.kind != l.kind) return false;
    switch (l.kind) {
      case OpKind::kDense:
        return op.dense.activation.kind == l.activation.kind;
      case OpKind::kActivation:
        return op.activation.kind == l.activation.kind;
      case OpKind::kNorm:
        return op.norm.kind == l.norm.kind && op.norm.eps == l.norm.eps;
      case OpKind::kDropout:
        return op.dropout == l.dropout;
      case OpKind::kResidualBegin:
        return false;
      case OpKind::kResidualEnd:
        return op.residual.scale == l.residual.scale && op.residual.skip == l.residual.skip &&
               op.residual.projection == l.residual.projection;
      case OpKind::kConv:
        return op.conv.activation.kind == l.activation.kind;
      case OpKind::kPool:
        return op.pool.kind == l.pool.kind;
      case OpKind::kAttention:
      case OpKind::kGlu:
      case OpKind::kFlatten:
        return true;  // their settings are the config's alone
    }
    return false;
  }

  // The settings a layer's JSON leaves to the config section (init, bias init, the activation's
  // parameter, a projection's init), from the config's ops as the engine copied them into the
  // report; only where those ops are the reported layers, else they stay default.
  static void settings_from_config(Report& r) {
    std::vector<OpSpec> ops = expand_ops(r.spec);
    std::erase_if(ops, [](const OpSpec& op) { return op.kind == OpKind::kResidualBegin; });
    if (ops.size() != r.layers.size()) return;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (!states(ops[i], r.layers[i])) return;
    }
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const OpSpec& op = ops[i];
      LayerReport& l = r.layers[i];
      if (op.kind == OpKind::kDense) {
        l.activation = op.dense.activation;
        l.init = op.dense.init;
        l.bias = op.dense.bias;
      }
      if (op.kind == OpKind::kActivation) l.activation = op.activation;
      if (op.kind == OpKind::kConv) {
        l.activation = op.conv.activation;
        l.init = op.conv.init;
        l.bias = op.conv.bias_init;
      }
      l.conv = op.conv;
      l.pool = op.pool;
      l.norm = op.norm;
      l.dropout = op.dropout;
      l.residual = op.residual;
    }
  }

  Summary read_summary(const JsonValue& j) const {
    const std::string path = "summary";
    Summary s;
    s.log10_grad_ratio_first_to_last = in_.number(j, path, "log10_grad_ratio_first_to_last");
    s.mean_log10_gain = in_.number(j, path, "mean_log10_gain");
    s.dead_units = in_.int64(j, path, "dead_units");
    s.saturated_units = saturated_units(j, path);
    s.saturated_fraction = in_.number(j, path, "saturated_fraction");
    s.nonfinite_layers = in_.integers(j, path, "nonfinite_layers");
    // All three null when every value is finite.
    if (!in_.member(j, path, "first_nonfinite_layer").is_null()) {
      s.first_nonfinite_layer = in_.integer(j, path, "first_nonfinite_layer");
      s.nonfinite_in_forward =
          in_.choice(j, path, "first_nonfinite_pass", {"forward", "backward"}) == 0;
      if (s.nonfinite_in_forward) {
        s.backward_nonfinite_above = in_.boolean(j, path, "backward_nonfinite_above");
      }
    }
    s.theory_flagged_layers = in_.integers(j, path, "theory_flagged_layers");
    return s;
  }

  std::vector<ConfigChange> changes(const JsonValue& j, std::string_view path) const {
    const JsonValue& list = in_.array(j, path, "changes");
    const std::string list_path = json_child(path, "changes");
    std::vector<ConfigChange> out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string at = json_element(list_path, i);
      in_.expect_object(list[i], at);
      out.push_back({in_.string(list[i], at, "path"), in_.string(list[i], at, "value")});
    }
    return out;
  }

  Advice advice(const JsonValue& j, const std::string& path) const {
    in_.expect_object(j, path);
    Advice a;
    a.text = in_.string(j, path, "text");
    a.addresses = in_.string(j, path, "addresses");
    a.changes = changes(j, path);
    if (j.contains("check")) {
      const std::string at = json_child(path, "check");
      const JsonValue& c = in_.object(j, path, "check");
      AdviceCheck check;
      check.metric = in_.string(c, at, "metric");
      check.before = in_.number(c, at, "before");
      check.after = in_.number(c, at, "after");
      check.helped = in_.boolean(c, at, "helped");
      check.verdict_after =
          static_cast<Verdict>(in_.choice(c, at, "verdict_after", verdict_names()));
      check.findings_after = in_.strings(c, at, "findings_after");
      a.check = std::move(check);
    }
    return a;
  }

  std::vector<Advice> advice_list(const JsonValue& j, const std::string& path,
                                  std::string_view key) const {
    const JsonValue& list = in_.array(j, path, key);
    std::vector<Advice> out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      out.push_back(advice(list[i], json_element(json_child(path, key), i)));
    }
    return out;
  }

  Finding finding(const JsonValue& j, const std::string& path) const {
    in_.expect_object(j, path);
    Finding f;
    f.code = in_.string(j, path, "code");
    f.severity = static_cast<Severity>(in_.choice(j, path, "severity", severity_names()));
    f.layer = in_.integer(j, path, "layer");
    f.cause = in_.string_or_null(j, path, "cause");  // null for a root
    f.consequences = in_.strings(j, path, "consequences");
    const JsonValue& evidence = in_.array(j, path, "evidence");
    for (std::size_t i = 0; i < evidence.size(); ++i) {
      const std::string at = json_element(json_child(path, "evidence"), i);
      in_.expect_object(evidence[i], at);
      Evidence e;
      e.quantity = in_.string(evidence[i], at, "quantity");
      e.value = in_.number(evidence[i], at, "value");
      e.relation = in_.string(evidence[i], at, "relation");
      e.threshold = in_.number(evidence[i], at, "threshold");
      e.layer = in_.integer(evidence[i], at, "layer");
      f.evidence.push_back(std::move(e));
    }
    f.explanation = in_.string(j, path, "explanation");
    f.advice = advice_list(j, path, "advice");
    f.rejected_advice = advice_list(j, path, "rejected_advice");
    return f;
  }

  Remedy read_remedy(const JsonValue& j, const std::string& path) const {
    in_.expect_object(j, path);
    Remedy r;
    const JsonValue& pieces = in_.array(j, path, "pieces");
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const std::string at = json_element(json_child(path, "pieces"), i);
      in_.expect_object(pieces[i], at);
      RemedyPiece p;
      p.text = in_.string(pieces[i], at, "text");
      p.addresses = in_.strings(pieces[i], at, "addresses");
      p.changes = changes(pieces[i], at);
      r.pieces.push_back(std::move(p));
    }
    r.addresses = in_.strings(j, path, "addresses");
    r.changes = changes(j, path);
    r.not_addressed = in_.strings(j, path, "not_addressed");
    if (const JsonValue& c = in_.member(j, path, "check"); !c.is_null()) {
      const std::string at = json_child(path, "check");
      in_.expect_object(c, at);
      RemedyCheck check;
      check.verdict_before =
          static_cast<Verdict>(in_.choice(c, at, "verdict_before", verdict_names()));
      check.verdict_after =
          static_cast<Verdict>(in_.choice(c, at, "verdict_after", verdict_names()));
      check.findings_after = in_.strings(c, at, "findings_after");
      check.dropped = in_.strings(c, at, "dropped");
      check.added = in_.strings(c, at, "added");
      r.check = std::move(check);
    }
    return r;
  }

  JacobianStats jacobian(const JsonValue& j) const {
    const std::string path = "jacobian";
    JacobianStats s;
    s.examples = in_.integer(j, path, "examples");
    s.singular_values_per_example = in_.integer(j, path, "singular_values_per_example");
    s.log10_max = in_.number(j, path, "log10_max");
    s.log10_min = in_.number(j, path, "log10_min");
    s.log10_mean_square = in_.number(j, path, "log10_mean_square");
    s.log10_condition = in_.number(j, path, "log10_condition");
    s.has_prediction = j.contains("predicted_log10_mean_square");
    if (s.has_prediction) {
      s.predicted_log10_mean_square = in_.number(j, path, "predicted_log10_mean_square");
    }
    const std::string hist_path = json_child(path, "histogram");
    const JsonValue& hist = in_.object(j, path, "histogram");
    const JsonValue& edges = in_.array(hist, hist_path, "log10_edges");
    for (std::size_t i = 0; i < edges.size(); ++i) {
      // The edges are written as plain doubles: a non-finite one came out as a bare null.
      if (edges[i].is_null()) {
        s.histogram_edges.push_back(std::numeric_limits<double>::quiet_NaN());
      } else if (edges[i].is_number()) {
        s.histogram_edges.push_back(edges[i].get<double>());
      } else {
        in_.fail(json_element(json_child(hist_path, "log10_edges"), i),
                 "expected a number or null, got " + json_type_name(edges[i]));
      }
    }
    s.histogram_counts = in_.int64s(hist, hist_path, "counts");
    return s;
  }

  CriticalityStats criticality(const JsonValue& j) const {
    const std::string path = "criticality";
    CriticalityStats c;
    if (!in_.boolean(j, path, "measured")) {
      c.reason = in_.string(j, path, "reason");
      if (c.reason.empty()) in_.fail(json_child(path, "reason"), "expected a non-empty reason");
      return c;
    }
    c.examples = in_.integer(j, path, "examples");
    c.tangents = in_.integer(j, path, "tangents");
    c.fit = static_cast<ApjnFit>(in_.choice(j, path, "fit", {"none", "power_law", "exponential"}));
    c.power_exponent = in_.number(j, path, "power_exponent");
    c.power_rss = in_.number(j, path, "power_rss");
    c.exponential_rate = in_.number(j, path, "exponential_rate");
    c.exponential_rss = in_.number(j, path, "exponential_rss");
    c.growth = magnitude(j, path, "growth", "log10_growth");
    const JsonValue& layers = in_.array(j, path, "layers");
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const std::string at = json_element(json_child(path, "layers"), i);
      in_.expect_object(layers[i], at);
      c.layers.push_back(in_.integer(layers[i], at, "layer"));
      c.apjn.push_back(magnitude(layers[i], at, "apjn", "log10_apjn"));
      c.fitted.push_back(in_.boolean(layers[i], at, "fitted"));
    }
    // Every layer fitted: the same as none marked.
    if (std::all_of(c.fitted.begin(), c.fitted.end(), [](bool f) { return f; })) c.fitted.clear();
    return c;
  }

  ExternalSources sources(const JsonValue& j) const {
    const std::string path = "sources";
    ExternalSources s;
    s.weights_file = in_.string(j, path, "weights_file");
    const JsonValue& assignments = in_.array(j, path, "assignments");
    for (std::size_t i = 0; i < assignments.size(); ++i) {
      const std::string at = json_element(json_child(path, "assignments"), i);
      in_.expect_object(assignments[i], at);
      TensorAssignment a;
      a.tensor = in_.string(assignments[i], at, "tensor");
      a.layer = in_.integer(assignments[i], at, "layer");
      a.role = in_.string(assignments[i], at, "role");
      a.shape = in_.int64s(assignments[i], at, "shape");
      s.assignments.push_back(std::move(a));
    }
    s.ignored = in_.strings(j, path, "ignored");
    s.input_file = in_.string(j, path, "input_file");
    s.targets_file = in_.string(j, path, "targets_file");
    return s;
  }

  JsonReader in_;
};

}  // namespace

Report report_from_json(const std::string& text, const std::string& source) {
  return ReportReader(source).read(text);
}

}  // namespace gradscope
