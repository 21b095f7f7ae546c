// The validated description of a run: what the config file and flags resolve to. Plain data; the
// config reader (config.hpp) builds it and checks every field, the engine trusts it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gradscope/activation.hpp"
#include "gradscope/init.hpp"

namespace gradscope {

enum class Precision : int { kFloat32, kFloat64 };
enum class InputDistribution : int { kNormal, kUniform };

struct InputSpec {
  int width = 256;
  int batch = 256;
  InputDistribution distribution = InputDistribution::kNormal;
  double mean = 0.0;  // normal
  double std = 1.0;   // normal
  double low = -1.0;  // uniform
  double high = 1.0;  // uniform
};

// One dense layer: h = W x + b, y = phi(h).
struct LayerSpec {
  int width = 256;
  ActivationSpec activation{};
  InitSpec init{};
  BiasInitSpec bias{};
};

// `depth` identical hidden layers.
struct StackSpec {
  int depth = 50;
  LayerSpec layer{};
};

struct StatsSpec {
  // An entry is saturated when |phi'(h)| < saturation_threshold * max |phi'|.
  double saturation_threshold = 0.05;
};

struct RunSpec {
  std::string name = "default";
  std::uint64_t seed = 0;
  Precision precision = Precision::kFloat32;
  InputSpec input{};
  StackSpec stack{};
  std::optional<LayerSpec> output;  // an optional final layer (the only place softmax may go)
  StatsSpec stats{};
};

// The layers in order, input side first: the stack's `depth` layers, then the output layer.
std::vector<LayerSpec> expand_layers(const RunSpec& spec);

std::string_view precision_name(Precision p);
std::string_view input_distribution_name(InputDistribution d);

}  // namespace gradscope
