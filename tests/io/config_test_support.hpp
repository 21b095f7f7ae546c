// Helpers shared by the config reader's tests (test_config_*.cpp): parsing a config text,
// catching its error, comparing specs field by field, a scratch directory.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/io/config.hpp"

namespace config_test {

using gradscope::Activation;
using gradscope::BiasInit;
using gradscope::ConfigOverride;
using gradscope::Error;
using gradscope::FanMode;
using gradscope::Init;
using gradscope::InputDistribution;
using gradscope::LayerItem;
using gradscope::LayerSpec;
using gradscope::LossKind;
using gradscope::NormKind;
using gradscope::OpKind;
using gradscope::OpSpec;
using gradscope::OptimizerKind;
using gradscope::Precision;
using gradscope::RunSpec;
using Json = nlohmann::ordered_json;

inline ::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << text << "\"\n  does not contain \"" << part << "\"";
}

// The gradscope::Error that `f` throws; the test fails if it throws none.
inline Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a gradscope::Error";
  return Error("(no error thrown)");
}

inline RunSpec parse(std::string_view text, const std::vector<ConfigOverride>& overrides = {}) {
  return gradscope::parse_run_spec(text, "cfg.json", "cfg", overrides);
}

inline Error config_error(std::string_view text,
                          const std::vector<ConfigOverride>& overrides = {}) {
  return error_of([&] { parse(text, overrides); });
}

inline std::string what(const Error& e) { return e.what(); }

inline void expect_same_layer(const LayerSpec& a, const LayerSpec& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.activation.kind, b.activation.kind);
  EXPECT_EQ(a.activation.param, b.activation.param);
  EXPECT_EQ(a.init.kind, b.init.kind);
  EXPECT_EQ(a.init.gain, b.init.gain);
  EXPECT_EQ(a.init.std, b.init.std);
  EXPECT_EQ(a.init.limit, b.init.limit);
  EXPECT_EQ(a.init.mode, b.init.mode);
  EXPECT_EQ(a.init.weight_var, b.init.weight_var);
  EXPECT_EQ(a.bias.kind, b.bias.kind);
  EXPECT_EQ(a.bias.value, b.bias.value);
  EXPECT_EQ(a.bias.std, b.bias.std);
}

inline void expect_same_init(const gradscope::InitSpec& a, const gradscope::InitSpec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.gain, b.gain);
  EXPECT_EQ(a.std, b.std);
  EXPECT_EQ(a.limit, b.limit);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.weight_var, b.weight_var);
}

inline void expect_same_norm(const gradscope::NormSpec& a, const gradscope::NormSpec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.eps, b.eps);
}

inline void expect_same_items(const std::vector<LayerItem>& a, const std::vector<LayerItem>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("item " + std::to_string(i));
    EXPECT_EQ(a[i].repeat, b[i].repeat);
    ASSERT_EQ(a[i].residual.has_value(), b[i].residual.has_value());
    if (a[i].residual) {
      EXPECT_EQ(a[i].residual->scale, b[i].residual->scale);
      EXPECT_EQ(a[i].residual->skip, b[i].residual->skip);
      EXPECT_EQ(a[i].residual->projection, b[i].residual->projection);
      expect_same_init(a[i].residual->projection_init, b[i].residual->projection_init);
    }
    ASSERT_EQ(a[i].post_norm.has_value(), b[i].post_norm.has_value());
    if (a[i].post_norm) expect_same_norm(*a[i].post_norm, *b[i].post_norm);
    expect_same_items(a[i].block, b[i].block);
    if (!a[i].block.empty()) continue;
    const OpSpec& x = a[i].op;
    const OpSpec& y = b[i].op;
    ASSERT_EQ(x.kind, y.kind);
    if (x.kind == OpKind::kDense) expect_same_layer(x.dense, y.dense);
    if (x.kind == OpKind::kNorm) expect_same_norm(x.norm, y.norm);
    if (x.kind == OpKind::kActivation) {
      EXPECT_EQ(x.activation.kind, y.activation.kind);
      EXPECT_EQ(x.activation.param, y.activation.param);
    }
    if (x.kind == OpKind::kDropout) {
      EXPECT_EQ(x.dropout, y.dropout);
    }
    if (x.kind == OpKind::kAttention) {
      EXPECT_EQ(x.attention.heads, y.attention.heads);
      EXPECT_EQ(x.attention.causal, y.attention.causal);
      EXPECT_EQ(x.attention.scale_kind, y.attention.scale_kind);
      EXPECT_EQ(x.attention.scale, y.attention.scale);
      EXPECT_EQ(x.attention.bias, y.attention.bias);
      EXPECT_EQ(x.attention.output_projection, y.attention.output_projection);
      for (std::size_t k = 0; k < x.attention.init.size(); ++k) {
        expect_same_init(x.attention.init[k], y.attention.init[k]);
      }
    }
    if (x.kind == OpKind::kGlu) {
      EXPECT_EQ(x.glu.hidden, y.glu.hidden);
      EXPECT_EQ(x.glu.activation.kind, y.glu.activation.kind);
      EXPECT_EQ(x.glu.activation.param, y.glu.activation.param);
      EXPECT_EQ(x.glu.bias, y.glu.bias);
      for (std::size_t k = 0; k < x.glu.init.size(); ++k) {
        expect_same_init(x.glu.init[k], y.glu.init[k]);
      }
    }
  }
}

// Field by field, with exact floating-point equality: the writer must round-trip every double.
inline void expect_same_spec(const RunSpec& a, const RunSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.input.width, b.input.width);
  EXPECT_EQ(a.input.batch, b.input.batch);
  EXPECT_EQ(a.input.tokens, b.input.tokens);
  EXPECT_EQ(a.input.distribution, b.input.distribution);
  EXPECT_EQ(a.input.mean, b.input.mean);
  EXPECT_EQ(a.input.std, b.input.std);
  EXPECT_EQ(a.input.low, b.input.low);
  EXPECT_EQ(a.input.high, b.input.high);
  EXPECT_EQ(a.stack.depth, b.stack.depth);
  {
    SCOPED_TRACE("stack layer");
    expect_same_layer(a.stack.layer, b.stack.layer);
  }
  ASSERT_EQ(a.output.has_value(), b.output.has_value());
  if (a.output) {
    SCOPED_TRACE("output layer");
    expect_same_layer(*a.output, *b.output);
  }
  {
    SCOPED_TRACE("layers");
    expect_same_items(a.layers, b.layers);
  }
  EXPECT_EQ(a.loss.kind, b.loss.kind);
  EXPECT_EQ(a.loss.classes, b.loss.classes);
  EXPECT_EQ(a.optimizer.kind, b.optimizer.kind);
  EXPECT_EQ(a.optimizer.learning_rate, b.optimizer.learning_rate);
  EXPECT_EQ(a.optimizer.momentum, b.optimizer.momentum);
  EXPECT_EQ(a.optimizer.beta1, b.optimizer.beta1);
  EXPECT_EQ(a.optimizer.beta2, b.optimizer.beta2);
  EXPECT_EQ(a.optimizer.eps, b.optimizer.eps);
  EXPECT_EQ(a.stats.saturation_threshold, b.stats.saturation_threshold);
}

// Writes the spec out, reads it back, and checks both the spec and the text are unchanged.
inline void expect_round_trip(const RunSpec& spec) {
  const std::string text = gradscope::run_spec_to_json(spec);
  SCOPED_TRACE(text);
  const RunSpec back = gradscope::parse_run_spec(text, "<resolved>", "unused");
  expect_same_spec(spec, back);
  EXPECT_EQ(gradscope::run_spec_to_json(back), text);
  expect_same_spec(spec, gradscope::parse_run_spec(gradscope::run_spec_to_json(spec, -1),
                                                   "<resolved>", "unused"));
}

inline std::vector<std::string> keys_of(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("gradscope-test-config-" + name)) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string write(const std::string& file, const std::string& text) const {
    const std::filesystem::path p = path_ / file;
    std::ofstream(p) << text;
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// ---- "layers"

// The architecture of the issue that asked for "layers": a pre-norm residual GELU MLP.
inline constexpr const char* kIssueExample = R"({
  "layers": [
    { "width": 512, "activation": "gelu", "init": "he_normal" },
    { "repeat": 24, "residual": { "scale": 1.0 },
      "block": [ { "norm": "layer_norm" },
                 { "width": 2048, "activation": "gelu", "init": "he_normal" },
                 { "width": 512, "activation": "linear", "init": "xavier_normal" } ] },
    { "width": 10, "activation": "softmax" }
  ]
})";

// A config with these layers, as JSON text.
inline std::string with_layers(const std::string& layers) {
  std::string text = R"({"layers": )";
  text += layers;
  text += "}";
  return text;
}

inline std::vector<OpKind> kinds_of(const std::vector<OpSpec>& ops) {
  std::vector<OpKind> kinds;
  for (const OpSpec& op : ops) kinds.push_back(op.kind);
  return kinds;
}

inline std::vector<OpKind> op_kinds(const RunSpec& spec) {
  return kinds_of(gradscope::expand_ops(spec));
}

inline std::vector<int> widths_of(const RunSpec& spec) {
  return gradscope::op_widths(spec, gradscope::expand_ops(spec));
}

}  // namespace config_test
