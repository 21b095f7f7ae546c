// "Did you mean ...?": the closest valid spelling of a misspelt name.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gradscope {

// Optimal-string-alignment edit distance (insertions, deletions, substitutions, transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, if it is close enough to be a plausible typo
// (distance <= max(2, |word| / 3)); ties go to the earlier candidate.
std::optional<std::string> closest_name(std::string_view word,
                                        const std::vector<std::string_view>& candidates);

}  // namespace gradscope
