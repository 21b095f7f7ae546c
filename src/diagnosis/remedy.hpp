// The remedy's limits, shared by the diagnosis that composes it and the check that re-runs it.
#pragma once

#include <cstddef>

namespace gradscope::diagnosis_detail {

// Beyond this many pieces the check keeps them all rather than search 2^n subsets.
inline constexpr std::size_t kMaxRemedyPieces = 8;
// Rounds of fixes the check may add from the re-run's own diagnosis.
inline constexpr int kRemedyRounds = 2;

}  // namespace gradscope::diagnosis_detail
