// The JSON report writer: one ordered document per run, keys in a fixed order that scripts rely
// on, and no value silently turned into null (see put() below). Schema: schema/report.schema.json.
// Why this file is long: it writes every section of the report (layers of every op kind, theory,
// parameters, criticality, diagnosis, sources), each a short function in the document's order;
// split, the order and the put() conventions would be read across files.
#include "gradscope/io/report_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/version.hpp"

namespace gradscope {

namespace {

using Json = nlohmann::ordered_json;

// A number on its way into the document: `status` is empty when `value` is written as it is, and
// otherwise says why it is written as null ("nan", "inf", "-inf", "underflow", "overflow",
// "no_finite_values").
struct Num {
  double value = 0.0;
  std::string_view status;
};

Num number(double v) {
  if (std::isnan(v)) return {v, "nan"};
  if (std::isinf(v)) return {v, v > 0 ? "inf" : "-inf"};
  return {v, {}};
}

// The value half of a Magnitude: 0 or inf with a finite log10 means the double range was
// exceeded, and the exact size lives in the sibling log10 key.
Num magnitude_value(const Magnitude& m) {
  if (std::isfinite(m.log10)) {
    if (m.value == 0.0) return {m.value, "underflow"};
    if (std::isinf(m.value)) return {m.value, "overflow"};
  }
  return number(m.value);
}

// The one place every number enters the document. JSON has no NaN or Inf, and a bare null would
// be ambiguous, so a non-representable value becomes null followed by "<key>_status".
void put(Json& obj, const std::string& key, Num n) {
  if (n.status.empty()) {
    obj[key] = n.value;
  } else {
    obj[key] = nullptr;
    obj[key + "_status"] = std::string(n.status);
  }
}

// A Magnitude as two keys: `key` (the value) and `log10_key` (its exact log10).
void put_magnitude(Json& obj, const std::string& key, const std::string& log10_key,
                   const Magnitude& m) {
  put(obj, key, magnitude_value(m));
  put(obj, log10_key, number(m.log10));
}

// A gradient's norm or rms over its finite entries: when every entry is NaN or infinite it is
// undefined, which the status says instead of a bare "nan" (and never a 0 that reads as vanished).
void put_gradient(Json& obj, const std::string& key, const std::string& log10_key,
                  const Magnitude& m, std::int64_t nonfinite) {
  if (nonfinite > 0 && std::isnan(m.log10)) {
    put(obj, key, Num{m.value, "no_finite_values"});
    put(obj, log10_key, Num{m.log10, "no_finite_values"});
    return;
  }
  put_magnitude(obj, key, log10_key, m);
}

// Saturation is defined only for activations that saturate (not the relu family, not norms):
// elsewhere the fraction is NaN and both keys say "not_applicable".
Num saturation_number(double fraction) {
  return std::isnan(fraction) ? Num{fraction, "not_applicable"} : number(fraction);
}

void put_saturated_units(Json& obj, std::int64_t units, double fraction) {
  if (std::isnan(fraction)) {
    put(obj, "saturated_units", Num{fraction, "not_applicable"});
  } else {
    obj["saturated_units"] = units;
  }
}

// A moment of a set of entries (or a bound of their range): without a finite entry it is
// undefined, which says more than the NaN it holds.
Num moment_number(const MomentStats& s, double v) {
  return s.finite == 0 ? Num{v, "no_finite_values"} : number(v);
}

Json moment_json(const MomentStats& s) {
  Json j = Json::object();
  put(j, "mean", moment_number(s, s.mean));
  put(j, "std", moment_number(s, s.std));
  put(j, "rms", moment_number(s, s.rms));
  put(j, "min", moment_number(s, s.min));
  put(j, "max", moment_number(s, s.max));
  return j;
}

// The output's histogram, its range repeated beside the counts so that a plotting script needs
// nothing else. Without a finite entry the range is undefined and there are no counts.
Json histogram_json(const MomentStats& act, const std::vector<std::int64_t>& counts) {
  Json j = Json::object();
  put(j, "min", moment_number(act, act.min));
  put(j, "max", moment_number(act, act.max));
  j["counts"] = counts;
  return j;
}

Json forward_json(const ForwardStats& f) {
  Json j = Json::object();
  Json preact = moment_json(f.preact);
  preact["nonfinite"] = f.preact.nonfinite;
  Json act = moment_json(f.act);
  put(act, "zero_fraction", number(f.zero_fraction));
  put(act, "saturated_fraction", saturation_number(f.saturated_fraction));
  act["nonfinite"] = f.act.nonfinite;
  act["histogram"] = histogram_json(f.act, f.act_histogram);
  j["preact"] = std::move(preact);
  j["act"] = std::move(act);
  j["dead_units"] = f.dead_units;
  put(j, "dead_fraction", number(f.dead_fraction));
  put_saturated_units(j, f.saturated_units, f.saturated_fraction);
  j["nonfinite"] = f.nonfinite;
  put(j, "correlation", number(f.correlation));
  // Sequence inputs and attention ops only: a key absent says the statistic does not apply.
  if (f.has_tokens) {
    Json tokens = Json::object();
    put(tokens, "mean_cosine", number(f.token_mean_cosine));
    put(tokens, "centered_rms", number(f.token_centered_rms));
    j["tokens"] = std::move(tokens);
  }
  if (f.has_attention) {
    Json attention = Json::object();
    put(attention, "entropy", number(f.attention_entropy));
    put(attention, "max_logit", number(f.attention_max_logit));
    put(attention, "peaked_fraction", number(f.attention_peaked_fraction));
    j["attention"] = std::move(attention);
  }
  // Image outputs only: the signal-propagation plot's channel moments.
  if (f.has_channels) {
    Json channels = Json::object();
    put_magnitude(channels, "mean_sq", "log10_mean_sq", f.channel_mean_sq);
    put_magnitude(channels, "var", "log10_var", f.channel_var);
    channels["nonfinite"] = f.channels_nonfinite;
    channels["zero"] = f.zero_channels;
    if (f.has_branch_var) put_magnitude(channels, "branch_var", "log10_branch_var", f.branch_var);
    j["channels"] = std::move(channels);
  }
  return j;
}

// One parameter tensor's keys (a layer's "parameters" entries and the top-level list's).
void put_param(Json& j, const ParamStats& p) {
  j["role"] = p.role;
  j["shape"] = p.shape;
  put(j, "norm", number(p.norm));
  put_gradient(j, "grad_norm", "log10_grad_norm", p.grad_norm, p.grad_nonfinite);
  j["grad_nonfinite"] = p.grad_nonfinite;
  if (p.has_update) {
    put_magnitude(j, "update_to_weight", "log10_update_to_weight", p.update_to_weight);
  }
}

Json backward_json(const BackwardStats& b) {
  Json j = Json::object();
  Json grad_preact = Json::object();
  put_gradient(grad_preact, "rms", "log10_rms", b.grad_preact_rms, b.nonfinite);
  j["grad_preact"] = std::move(grad_preact);
  // Ops without parameters (activation, dropout, residual end) omit the weight keys rather than
  // write zeros or nulls a script could mistake for a measurement.
  if (b.has_weights) {
    Json grad_weight = Json::object();
    put_gradient(grad_weight, "norm", "log10_norm", b.grad_weight_norm, b.grad_weight_nonfinite);
    grad_weight["nonfinite"] = b.grad_weight_nonfinite;
    Json grad_bias = Json::object();
    put_gradient(grad_bias, "norm", "log10_norm", b.grad_bias_norm, b.grad_bias_nonfinite);
    grad_bias["nonfinite"] = b.grad_bias_nonfinite;
    j["grad_weight"] = std::move(grad_weight);
    j["grad_bias"] = std::move(grad_bias);
    put(j, "weight_norm", number(b.weight_norm));
    // log10(0) = -inf: an all-zero weight matrix is reported as null with status "-inf".
    put(j, "log10_weight_norm", number(std::log10(b.weight_norm)));
    put_magnitude(j, "grad_weight_to_weight", "log10_grad_weight_to_weight",
                  b.grad_weight_to_weight);
  }
  if (b.has_update) {
    Json update = Json::object();
    put_magnitude(update, "ratio", "log10_ratio", b.update_to_weight);
    j["update"] = std::move(update);
  }
  put_magnitude(j, "gain", "log10_gain", b.gain);
  j["nonfinite"] = b.nonfinite;
  // Attention and GLU: each weight and bias on its own (the keys above are over all of them).
  if (!b.params.empty()) {
    Json params = Json::array();
    for (const ParamStats& p : b.params) {
      Json entry = Json::object();
      put_param(entry, p);
      params.push_back(std::move(entry));
    }
    j["parameters"] = std::move(params);
  }
  return j;
}

// A direction without a prediction writes none of its keys: a number there would be made up, and
// "reason" says what is unknown instead.
Json theory_json(const LayerTheory& t) {
  Json j = Json::object();
  j["forward"] = t.forward;
  j["backward"] = t.backward;
  if (!t.reason.empty()) j["reason"] = t.reason;
  if (t.forward) {
    put(j, "q", number(t.q));
    put(j, "act_second_moment", number(t.act_second_moment));
    put(j, "correlation", number(t.correlation));
    put(j, "log_q_deviation", number(t.log_q_deviation));
    put(j, "log_q_spread", number(t.log_q_spread));
  }
  if (t.backward) {
    put(j, "chi", number(t.grad_factor));
    put(j, "log10_grad_rel_last", number(t.log10_grad_rel_last));
    put(j, "measured_log10_grad_rel_last", number(t.measured_log10_grad_rel_last));
    put(j, "log10_grad_deviation", number(t.log10_grad_deviation));
    put(j, "log10_grad_spread", number(t.log10_grad_spread));
  }
  j["flagged"] = t.flagged;
  return j;
}

std::string_view attention_scale_kind_name(AttentionScaleKind kind) {
  switch (kind) {
    case AttentionScaleKind::kInvSqrtHead:
      return "1/sqrt(d_head)";
    case AttentionScaleKind::kInvHead:
      return "1/d_head";
    case AttentionScaleKind::kConstant:
      return "constant";
  }
  return "constant";
}

// `op` is the config's op the layer reports, when the report's config lists them (attention and
// GLU settings are read from it); null otherwise.
Json layer_json(const LayerReport& layer, const OpSpec* op) {
  Json j = Json::object();
  j["index"] = layer.index;
  j["kind"] = std::string(layer_kind_name(layer.kind));
  j["width"] = layer.width;
  j["fan_in"] = layer.fan_in;
  // An image's shape, [channels, height, width]: only for layers whose output is one.
  if (layer.image.is_image()) {
    j["image"] = {layer.image.channels, layer.image.height, layer.image.width};
  }
  switch (layer.kind) {
    case OpKind::kDense:
    case OpKind::kActivation:
      j["activation"] = std::string(activation_info(layer.activation.kind).name);
      break;
    case OpKind::kNorm: {
      Json norm = Json::object();
      norm["name"] = std::string(norm_name(layer.norm.kind));
      put(norm, "eps", number(layer.norm.eps));
      j["norm"] = std::move(norm);
      break;
    }
    case OpKind::kDropout:
      put(j, "dropout", number(layer.dropout));
      break;
    case OpKind::kResidualBegin:  // not reported: its block is reported at its end
      break;
    case OpKind::kResidualEnd: {
      Json residual = Json::object();
      put(residual, "scale", number(layer.residual.scale));
      // Only when set, so that the reports of residuals without it read as before.
      if (layer.residual.skip != 1.0) put(residual, "skip", number(layer.residual.skip));
      residual["projection"] = layer.residual.projection;
      // Only for an image's learned projection, so that other reports read as before.
      if (layer.residual.conv_projection()) {
        residual["learned_projection"] = true;
        residual["projection_norm"] =
            layer.residual.projection_norm
                ? Json(std::string(norm_name(layer.residual.projection_norm->kind)))
                : Json(nullptr);
      }
      j["residual"] = std::move(residual);
      break;
    }
    case OpKind::kAttention:
      if (op != nullptr) {
        const AttentionSpec& a = op->attention;
        Json attention = Json::object();
        attention["heads"] = a.heads;
        attention["causal"] = a.causal;
        // The scale the logits were multiplied by, and the rule it came from.
        put(attention, "scale", number(attention_scale(a, layer.width)));
        attention["scale_kind"] = std::string(attention_scale_kind_name(a.scale_kind));
        attention["bias"] = a.bias;
        attention["output_projection"] = a.output_projection;
        j["attention"] = std::move(attention);
      }
      break;
    case OpKind::kConv: {
      j["activation"] = std::string(activation_info(layer.activation.kind).name);
      const ConvSpec& c = layer.conv;
      Json conv = Json::object();
      conv["channels"] = c.channels;
      conv["kernel"] = {c.kernel_h, c.kernel_w};
      conv["stride"] = {c.stride_h, c.stride_w};
      conv["padding"] = {c.pad_h, c.pad_w};
      conv["dilation"] = {c.dilation_h, c.dilation_w};
      conv["groups"] = c.groups;
      conv["bias"] = c.bias;
      j["conv"] = std::move(conv);
      break;
    }
    case OpKind::kPool: {
      const PoolSpec& p = layer.pool;
      Json pool = Json::object();
      pool["kind"] = std::string(pool_kind_name(p.kind));
      if (p.kind != PoolKind::kGlobalAverage) {
        pool["kernel"] = {p.kernel_h, p.kernel_w};
        pool["stride"] = {p.stride_h, p.stride_w};
        pool["padding"] = {p.pad_h, p.pad_w};
      }
      j["pool"] = std::move(pool);
      break;
    }
    case OpKind::kFlatten:
      break;
    case OpKind::kGlu:
      if (op != nullptr) {
        const GluSpec& g = op->glu;
        Json glu = Json::object();
        glu["hidden"] = g.hidden;
        glu["activation"] = std::string(activation_info(g.activation.kind).name);
        glu["bias"] = g.bias;
        j["glu"] = std::move(glu);
      }
      break;
  }
  j["forward"] = forward_json(layer.forward);
  j["backward"] = backward_json(layer.backward);
  j["theory"] = theory_json(layer.theory);
  return j;
}

// The input-output Jacobian's singular values, as log10 (exact beyond double's range).
Json jacobian_json(const JacobianStats& j) {
  Json out;
  out["examples"] = j.examples;
  out["singular_values_per_example"] = j.singular_values_per_example;
  put(out, "log10_max", number(j.log10_max));
  put(out, "log10_min", number(j.log10_min));
  put(out, "log10_mean_square", number(j.log10_mean_square));
  put(out, "log10_condition", number(j.log10_condition));
  if (j.has_prediction)
    put(out, "predicted_log10_mean_square", number(j.predicted_log10_mean_square));
  Json hist;
  Json edges = Json::array();
  for (double e : j.histogram_edges) edges.push_back(e);
  hist["log10_edges"] = std::move(edges);
  hist["counts"] = j.histogram_counts;
  out["histogram"] = std::move(hist);
  return out;
}

// The partial Jacobian norm along the stream and the law it follows; only the reason when it was
// not measured.
Json criticality_json(const CriticalityStats& c) {
  Json out = Json::object();
  out["measured"] = c.measured();
  if (!c.measured()) {
    out["reason"] = c.reason;
    return out;
  }
  out["examples"] = c.examples;
  out["tangents"] = c.tangents;
  out["fit"] = std::string(apjn_fit_name(c.fit));
  put(out, "power_exponent", number(c.power_exponent));
  put(out, "power_rss", number(c.power_rss));
  put(out, "exponential_rate", number(c.exponential_rate));
  put(out, "exponential_rss", number(c.exponential_rss));
  put_magnitude(out, "growth", "log10_growth", c.growth);
  Json layers = Json::array();
  for (std::size_t i = 0; i < c.layers.size(); ++i) {
    Json l = Json::object();
    l["layer"] = c.layers[i];
    put_magnitude(l, "apjn", "log10_apjn", c.apjn[i]);
    l["fitted"] = c.fitted.empty() || (i < c.fitted.size() && c.fitted[i]);
    layers.push_back(std::move(l));
  }
  out["layers"] = std::move(layers);
  return out;
}

Json summary_json(const Summary& s, Verdict verdict) {
  Json j = Json::object();
  // First: the one word a script (or a CI gate) reads before anything else.
  j["verdict"] = std::string(verdict_name(verdict));
  put(j, "log10_grad_ratio_first_to_last", number(s.log10_grad_ratio_first_to_last));
  put(j, "mean_log10_gain", number(s.mean_log10_gain));
  put(j, "geometric_mean_gain", magnitude_value(magnitude_from_log10(s.mean_log10_gain)));
  j["dead_units"] = s.dead_units;
  put_saturated_units(j, s.saturated_units, s.saturated_fraction);
  put(j, "saturated_fraction", saturation_number(s.saturated_fraction));
  j["nonfinite_layers"] = s.nonfinite_layers;
  // null when every value is finite (documented in the schema).
  if (s.first_nonfinite_layer == 0) {
    j["first_nonfinite_layer"] = nullptr;
    j["first_nonfinite_pass"] = nullptr;
    j["backward_nonfinite_above"] = nullptr;
  } else {
    j["first_nonfinite_layer"] = s.first_nonfinite_layer;
    j["first_nonfinite_pass"] = s.nonfinite_in_forward ? "forward" : "backward";
    if (s.nonfinite_in_forward) {
      j["backward_nonfinite_above"] = s.backward_nonfinite_above;
    } else {
      j["backward_nonfinite_above"] = nullptr;
    }
  }
  j["theory_flagged_layers"] = s.theory_flagged_layers;
  return j;
}

// A threshold of NaN marks evidence that is context rather than a test: it is written as null with
// status "nan" like any other non-finite number, so no reader has to know a second convention.
Json evidence_json(const Evidence& e) {
  Json j = Json::object();
  j["quantity"] = e.quantity;
  put(j, "value", number(e.value));
  j["relation"] = e.relation;
  put(j, "threshold", number(e.threshold));
  j["layer"] = e.layer;
  return j;
}

Json advice_json(const Advice& a) {
  Json j = Json::object();
  j["text"] = a.text;
  j["addresses"] = a.addresses;
  Json changes = Json::array();
  // The value stays the JSON text that `--set PATH=VALUE` takes, not a parsed value: what the
  // user types is what the report shows, and "null" (drop a section) stays distinguishable.
  for (const ConfigChange& c : a.changes)
    changes.push_back(Json{{"path", c.path}, {"value", c.value}});
  j["changes"] = std::move(changes);
  if (a.check) {
    const AdviceCheck& c = *a.check;
    Json check = Json::object();
    check["metric"] = c.metric;
    put(check, "before", number(c.before));
    put(check, "after", number(c.after));
    check["helped"] = c.helped;
    check["verdict_after"] = std::string(verdict_name(c.verdict_after));
    check["findings_after"] = c.findings_after;
    j["check"] = std::move(check);
  }
  return j;
}

Json finding_json(const Finding& f) {
  Json j = Json::object();
  j["code"] = f.code;
  j["severity"] = std::string(severity_name(f.severity));
  j["layer"] = f.layer;
  // Root causes have cause null and list the codes of their consequences, which follow them.
  if (f.cause.empty()) {
    j["cause"] = nullptr;
  } else {
    j["cause"] = f.cause;
  }
  j["consequences"] = f.consequences;
  Json evidence = Json::array();
  for (const Evidence& e : f.evidence) evidence.push_back(evidence_json(e));
  j["evidence"] = std::move(evidence);
  j["explanation"] = f.explanation;
  Json advice = Json::array();
  for (const Advice& a : f.advice) advice.push_back(advice_json(a));
  j["advice"] = std::move(advice);
  Json rejected = Json::array();
  for (const Advice& a : f.rejected_advice) rejected.push_back(advice_json(a));
  j["rejected_advice"] = std::move(rejected);
  return j;
}

Json changes_json(const std::vector<ConfigChange>& changes) {
  Json out = Json::array();
  for (const ConfigChange& c : changes) out.push_back(Json{{"path", c.path}, {"value", c.value}});
  return out;
}

Json remedy_json(const Remedy& r) {
  Json j = Json::object();
  Json pieces = Json::array();
  for (const RemedyPiece& p : r.pieces) {
    pieces.push_back(
        Json{{"text", p.text}, {"addresses", p.addresses}, {"changes", changes_json(p.changes)}});
  }
  j["pieces"] = std::move(pieces);
  j["addresses"] = r.addresses;
  j["changes"] = changes_json(r.changes);
  Json args = Json::array();
  for (const ConfigChange& c : r.changes) args.push_back(set_argument(c));
  j["set_arguments"] = std::move(args);
  j["not_addressed"] = r.not_addressed;
  if (r.check) {
    const RemedyCheck& c = *r.check;
    j["check"] = Json{{"verdict_before", std::string(verdict_name(c.verdict_before))},
                      {"verdict_after", std::string(verdict_name(c.verdict_after))},
                      {"findings_after", c.findings_after},
                      {"dropped", c.dropped},
                      {"added", c.added}};
  } else {
    j["check"] = nullptr;
  }
  return j;
}

}  // namespace

std::string report_to_json(const Report& report) {
  Json doc = Json::object();
  doc["schema_version"] = kSchemaVersion;
  doc["tool"] = Json{{"name", "gradscope"}, {"version", kVersion}};
  doc["config"] = Json::parse(run_spec_to_json(report.spec));

  Json memory = Json::object();
  memory["estimate_bytes"] = report.memory.estimate_bytes();
  memory["weights_bytes"] = report.memory.weights_bytes;
  memory["cache_bytes"] = report.memory.cache_bytes;
  memory["work_bytes"] = report.memory.work_bytes;
  memory["report_bytes"] = report.memory.report_bytes;
  const MemoryPlan& plan = report.memory.plan;
  memory["plan"] =
      Json{{"weights", plan.weights == WeightStorage::kRegenerated ? "regenerated" : "kept"},
           {"activations", plan.checkpointed() ? "checkpointed" : "kept"},
           {"checkpoint_every", plan.checkpoint_every},
           {"segments", plan.segments},
           {"recomputed_ops", plan.recomputed_ops},
           {"expected_peak_bytes", plan.peak_bytes}};
  Json network = Json::object();
  // depth keeps its meaning, the number of dense layers; layers[] has one entry per reported op.
  network["depth"] = std::count_if(report.layers.begin(), report.layers.end(),
                                   [](const LayerReport& l) { return l.kind == OpKind::kDense; });
  network["parameters"] = report.parameters;
  network["precision"] = std::string(precision_name(report.spec.precision));
  network["memory"] = std::move(memory);
  doc["network"] = std::move(network);

  // The input batch as measured: a generated one's sample moments, or a loaded file's.
  Json input = moment_json(report.input);
  input["nonfinite"] = report.input.nonfinite;
  doc["input"] = std::move(input);

  Json output_grad = Json::object();
  put_magnitude(output_grad, "rms", "log10_rms", report.output_grad_rms);
  doc["output_grad"] = std::move(output_grad);

  Json loss = Json::object();
  loss["name"] = std::string(loss_name(report.spec.loss.kind));
  put(loss, "value", number(report.loss));
  doc["loss"] = std::move(loss);

  // The config's ops as the layers report them (residual begins are not reported); when they do
  // not line up (a report built in code), the layers' attention and GLU settings are left out.
  std::vector<OpSpec> ops = expand_ops(report.spec);
  std::erase_if(ops, [](const OpSpec& op) { return op.kind == OpKind::kResidualBegin; });
  const bool aligned = ops.size() == report.layers.size();
  Json layers = Json::array();
  for (std::size_t i = 0; i < report.layers.size(); ++i) {
    const LayerReport& layer = report.layers[i];
    const bool matches = aligned && ops[i].kind == layer.kind;
    layers.push_back(layer_json(layer, matches ? &ops[i] : nullptr));
  }
  doc["layers"] = std::move(layers);
  // Every learned tensor on its own, as PyTorch's named_parameters() lists them.
  Json parameters = Json::array();
  for (const ParameterReport& p : report.parameter_list) {
    Json entry = Json::object();
    entry["name"] = p.name;
    entry["layer"] = p.layer;
    put_param(entry, p.stats);
    parameters.push_back(std::move(entry));
  }
  doc["parameters"] = std::move(parameters);
  doc["summary"] = summary_json(report.summary, report.verdict);
  Json findings = Json::array();
  for (const Finding& f : report.findings) findings.push_back(finding_json(f));
  doc["findings"] = std::move(findings);
  if (report.remedy) {
    doc["remedy"] = remedy_json(*report.remedy);
  } else {
    doc["remedy"] = nullptr;
  }
  if (report.jacobian) doc["jacobian"] = jacobian_json(*report.jacobian);
  if (report.criticality) doc["criticality"] = criticality_json(*report.criticality);
  if (report.sources) {
    const ExternalSources& src = *report.sources;
    Json sources = Json::object();
    sources["weights_file"] = src.weights_file;
    Json assignments = Json::array();
    for (const TensorAssignment& a : src.assignments) {
      assignments.push_back(
          {{"tensor", a.tensor}, {"layer", a.layer}, {"role", a.role}, {"shape", a.shape}});
    }
    sources["assignments"] = std::move(assignments);
    sources["ignored"] = src.ignored;
    sources["input_file"] = src.input_file;
    sources["targets_file"] = src.targets_file;
    doc["sources"] = std::move(sources);
  }

  // Replace rather than throw on invalid UTF-8 in a run name: the report must still be written.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace gradscope
