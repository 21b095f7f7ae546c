// Root causes: one cause often shows as several findings; the diagnosis names it once and folds
// the symptoms under it.
#pragma once

#include <vector>

#include "diagnosis/rules.hpp"

namespace gradscope::diagnosis_detail {

// Sets each draft's `cause` to the index of the root draft that explains it, or leaves it -1.
void assign_causes(std::vector<Draft>& drafts, const Report& report, const Shape& shape);

}  // namespace gradscope::diagnosis_detail
