// The time estimate's machine side: one measured speed, and durations read and written the way
// people write them.
#include "gradscope/app/time_estimate.hpp"

#include <fmt/format.h>

#include <Eigen/Core>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#ifdef GRADSCOPE_HAVE_OPENBLAS
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace gradscope {

namespace {

template <class Scalar>
double product_speed() {
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  constexpr Eigen::Index n = 256;
  const Matrix a = Matrix::Constant(n, n, Scalar(0.5));
  const Matrix b = Matrix::Constant(n, n, Scalar(0.25));
  Matrix c(n, n);
  using Clock = std::chrono::steady_clock;
  c.noalias() = a * b;  // the first call sets up what the others reuse
  // The median product: a machine busy with other work runs the run slower too, and every product
  // then shows it, while one preemption in 20 ms, which would swamp a 20 ms total, moves the median
  // by one place.
  std::vector<double> times;
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  while (times.size() < 1000 && (times.size() < 5 || elapsed < 0.02)) {
    const Clock::time_point t0 = Clock::now();
    c.noalias() = a * b;
    const Clock::time_point t1 = Clock::now();
    times.push_back(std::chrono::duration<double>(t1 - t0).count());
    elapsed = std::chrono::duration<double>(t1 - start).count();
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  const double median = times[times.size() / 2];
  // Read once, so that no product can be left out as unused.
  volatile Scalar sink = c(0, 0);
  static_cast<void>(sink);
  return 2.0 * static_cast<double>(n * n * n) / std::max(median, 1e-9);
}

}  // namespace

double measure_product_speed(Precision precision) {
#ifdef GRADSCOPE_HAVE_OPENBLAS
  // One thread per product, as the run's thread pool sets it: the speed of one worker.
  openblas_set_num_threads(1);
#endif
  return precision == Precision::kFloat32 ? product_speed<float>() : product_speed<double>();
}

double estimate_seconds(const RunWork& work, double flops_per_second) {
  return work.critical_path / (kSustainedFraction * flops_per_second);
}

std::optional<double> parse_duration(std::string_view text) {
  struct Unit {
    std::string_view name;
    double seconds;
  };
  static constexpr Unit kUnits[] = {{"s", 1},     {"sec", 1},     {"m", 60},
                                    {"min", 60},  {"h", 3600},    {"hr", 3600},
                                    {"d", 86400}, {"day", 86400}, {"days", 86400}};
  double total = 0;
  std::size_t i = 0;
  if (text.empty()) return std::nullopt;
  while (i < text.size()) {
    const std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    const std::string number(text.substr(start, i - start));
    if (number.empty() || number.front() == '.' ||
        std::count(number.begin(), number.end(), '.') > 1)
      return std::nullopt;
    const std::size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string unit(text.substr(unit_start, i - unit_start));
    for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // A bare number is seconds, and only alone.
    if (unit.empty() && (start != 0 || i != text.size())) return std::nullopt;
    double factor = unit.empty() ? 1.0 : 0.0;
    for (const Unit& u : kUnits) {
      if (unit == u.name) factor = u.seconds;
    }
    if (factor == 0.0) return std::nullopt;
    total += std::stod(number) * factor;
  }
  if (!(total > 0) || !std::isfinite(total)) return std::nullopt;
  return total;
}

std::string format_duration(double seconds) {
  if (!(seconds < 1e12)) return "more than 30,000 years";
  if (seconds < 10) return fmt::format("{:.1f} s", seconds);
  if (seconds < 59.5) return fmt::format("{:.0f} s", seconds);
  const auto whole = static_cast<long long>(std::llround(seconds));
  if (whole < 3600) {
    return whole % 60 == 0 ? fmt::format("{} min", whole / 60)
                           : fmt::format("{} min {} s", whole / 60, whole % 60);
  }
  const long long minutes = (whole + 30) / 60;
  if (minutes < 48 * 60) {
    return minutes % 60 == 0 ? fmt::format("{} h", minutes / 60)
                             : fmt::format("{} h {} min", minutes / 60, minutes % 60);
  }
  return fmt::format("{:.1f} days", seconds / 86400.0);
}

}  // namespace gradscope
