// Stand-ins for the coordinate check's name functions (src/core/coordcheck.cpp), so that the
// writers' tests link before that file does; removed once gradscope_core defines them.
#include <string_view>

#include "gradscope/core/coordcheck.hpp"

namespace gradscope {

std::string_view parametrization_name(Parametrization p) {
  static constexpr std::string_view kNames[] = {"sp", "mup", "depth_mup", "completep"};
  return kNames[static_cast<int>(p)];
}

std::string_view tensor_role_name(TensorRole r) {
  static constexpr std::string_view kNames[] = {"input", "hidden", "output", "vector"};
  return kNames[static_cast<int>(r)];
}

std::string_view train_optimizer_name(TrainOptimizer o) {
  static constexpr std::string_view kNames[] = {"sgd", "adam", "adamw"};
  return kNames[static_cast<int>(o)];
}

std::string_view coord_quantity_name(CoordQuantity q) {
  static constexpr std::string_view kNames[] = {"size", "change", "update"};
  return kNames[static_cast<int>(q)];
}

std::string_view slope_verdict_name(SlopeVerdict v) {
  static constexpr std::string_view kNames[] = {"FLAT", "GROWS", "SHRINKS"};
  return kNames[static_cast<int>(v)];
}

}  // namespace gradscope
