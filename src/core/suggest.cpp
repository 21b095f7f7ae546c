// "Did you mean ...?" for misspelt names: optimal-string-alignment distance and the closest
// candidate within a typo-sized distance.
#include "gradscope/core/suggest.hpp"

#include <algorithm>

namespace gradscope {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t m = a.size();
  const std::size_t n = b.size();
  // d(i, j) = distance between the first i characters of a and the first j of b, row-major.
  std::vector<std::size_t> d((m + 1) * (n + 1));
  const auto at = [n, &d](std::size_t i, std::size_t j) -> std::size_t& {
    return d[i * (n + 1) + j];
  };
  for (std::size_t i = 0; i <= m; ++i) at(i, 0) = i;
  for (std::size_t j = 0; j <= n; ++j) at(0, j) = j;
  for (std::size_t i = 1; i <= m; ++i) {
    for (std::size_t j = 1; j <= n; ++j) {
      const std::size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      std::size_t best =
          std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + substitution});
      // Swapping two adjacent characters is one typo, not two substitutions. "Optimal string
      // alignment": a transposed pair is not edited again (unlike full Damerau-Levenshtein).
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        best = std::min(best, at(i - 2, j - 2) + 1);
      }
      at(i, j) = best;
    }
  }
  return at(m, n);
}

std::optional<std::string> closest_name(std::string_view word,
                                        const std::vector<std::string_view>& candidates) {
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  std::optional<std::string_view> best;
  std::size_t best_distance = limit + 1;
  for (std::string_view candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    // Strictly smaller, so that a tie keeps the earlier candidate.
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (!best) return std::nullopt;
  return std::string(*best);
}

}  // namespace gradscope
