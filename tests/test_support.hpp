// Small builders shared by several test files.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/spec.hpp"
#include "support/paths.hpp"

namespace gradscope::testing {

// A uniform stack: `depth` layers of `width` units with this activation and init, input of the
// same width, zero biases, float32.
inline RunSpec uniform_stack(Activation act, Init init, int depth, int width, int batch,
                             std::uint64_t seed) {
  RunSpec spec;
  spec.seed = seed;
  spec.input.width = width;
  spec.input.batch = batch;
  spec.stack.depth = depth;
  spec.stack.layer.width = width;
  spec.stack.layer.activation = default_spec(act);
  spec.stack.layer.init.kind = init;
  return spec;
}

// Items of a `layers` list, as a config's {"width": ..., "activation": ...}, {"norm": ...},
// {"activation": ...} and a residual block of `repeat` repetitions would give.
inline LayerItem dense_item(int width, Activation act) {
  LayerItem item;
  item.op.kind = OpKind::kDense;
  item.op.dense.width = width;
  item.op.dense.activation = default_spec(act);
  return item;
}
inline LayerItem norm_item(NormKind kind) {
  LayerItem item;
  item.op.kind = OpKind::kNorm;
  item.op.norm.kind = kind;
  return item;
}
inline LayerItem activation_item(Activation act) {
  LayerItem item;
  item.op.kind = OpKind::kActivation;
  item.op.activation = default_spec(act);
  return item;
}
inline LayerItem residual_block(int repeat, std::vector<LayerItem> block) {
  LayerItem item;
  item.repeat = repeat;
  item.residual = ResidualSpec{};
  item.block = std::move(block);
  return item;
}

// Every elementwise activation at its default parameter, plus non-default parameters for the two
// that have one (including elu with alpha > 1, where the slope peaks on the negative side, and a
// negative leaky slope).
inline std::vector<ActivationSpec> elementwise_specs() {
  std::vector<ActivationSpec> specs;
  for (const ActivationInfo& info : activation_table()) {
    if (!info.output_only) specs.push_back(default_spec(info.kind));
  }
  specs.push_back({Activation::kLeakyRelu, 0.2});
  specs.push_back({Activation::kLeakyRelu, -0.5});
  specs.push_back({Activation::kElu, 0.5});
  specs.push_back({Activation::kElu, 2.0});
  return specs;
}

// The content of tests/golden/NAME (empty when missing); with GRADSCOPE_UPDATE_GOLDEN=1 it is
// first rewritten with `actual`, so that a deliberate change of output is one command.
inline std::string golden(const std::string& actual, const std::string& name) {
  const std::string path = std::string(GRADSCOPE_SOURCE_DIR) + "/tests/golden/" + name;
  const char* update = std::getenv("GRADSCOPE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << actual;
    std::cout << "rewrote " << path << "\n";
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace gradscope::testing
