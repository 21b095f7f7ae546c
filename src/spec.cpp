// The validated run description's helpers: the layer list the engine builds, and the names of
// the small enums (shared by the config reader and the report writers).
#include "gradscope/spec.hpp"

#include <algorithm>

namespace gradscope {

std::vector<LayerSpec> expand_layers(const RunSpec& spec) {
  std::vector<LayerSpec> layers(static_cast<std::size_t>(std::max(spec.stack.depth, 0)),
                                spec.stack.layer);
  if (spec.output) layers.push_back(*spec.output);
  return layers;
}

std::string_view precision_name(Precision p) {
  // No default label: -Wswitch then flags a new enumerator that has no name here.
  switch (p) {
    case Precision::kFloat32:
      return "float32";
    case Precision::kFloat64:
      return "float64";
  }
  return "invalid";
}

std::string_view input_distribution_name(InputDistribution d) {
  switch (d) {
    case InputDistribution::kNormal:
      return "normal";
    case InputDistribution::kUniform:
      return "uniform";
  }
  return "invalid";
}

}  // namespace gradscope
