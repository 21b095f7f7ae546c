// The coordinate check's JSON as a value (private to src/io/: nlohmann/json stays in this layer),
// for io code that embeds or inspects it; coordcheck_json_text is this, dumped.
#pragma once

#include <nlohmann/json.hpp>

#include "gradscope/core/coordcheck.hpp"

namespace gradscope {

// Ordered: the keys stay in the order gradscope/io/coordcheck_json.hpp lists.
nlohmann::ordered_json coordcheck_to_json(const CoordCheckResult& result);

}  // namespace gradscope
