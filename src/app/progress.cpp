// Progress bars on stderr: the sweep's, over finished runs, and the run's, over its pass's work.
#include "gradscope/app/progress.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>

namespace gradscope {

namespace {

// "0:45", "12:03", "1:02:03".
std::string clock_time(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, std::round(seconds)));
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

}  // namespace

std::string progress_bar(double fraction, int width) {
  const double f = std::isnan(fraction) ? 0.0 : std::clamp(fraction, 0.0, 1.0);
  const auto filled = static_cast<int>(std::floor(f * width));
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), '-');
  return bar;
}

void draw_sweep_progress(std::ostream& err, int done, int total, const std::string& label) {
  const double fraction = total > 0 ? static_cast<double>(done) / total : 1.0;
  const std::string shown = label.size() > 60 ? label.substr(0, 57) + "..." : label;
  fmt::print(err, "\r[{}] {:>4}/{:<4} {:<60}", progress_bar(fraction), done, total, shown);
  if (done == total) fmt::print(err, "\n");
  err.flush();
}

std::string run_progress_line(double elapsed_seconds, double estimated_seconds) {
  const double fraction =
      estimated_seconds > 0 ? std::min(elapsed_seconds / estimated_seconds, 0.99) : 0.0;
  return fmt::format("[{}] ~{:>2.0f}%  {} of about {}", progress_bar(fraction), 100.0 * fraction,
                     clock_time(elapsed_seconds), clock_time(estimated_seconds));
}

std::string run_progress_line(double elapsed_seconds, double estimated_seconds, double done) {
  const double f = std::clamp(done, 0.0, 1.0);
  const double left = f >= 0.05 ? elapsed_seconds * (1.0 - f) / f
                                : std::max(0.0, estimated_seconds - elapsed_seconds);
  return fmt::format("[{}] {:>3.0f}%  {}, about {} left", progress_bar(f), 100.0 * f,
                     clock_time(elapsed_seconds), clock_time(left));
}

RunProgress::RunProgress(std::ostream& err, double estimated_seconds, double before_pass)
    : err_(err),
      estimated_seconds_(estimated_seconds),
      before_pass_(std::clamp(before_pass, 0.0, 1.0)),
      start_(std::chrono::steady_clock::now()),
      thread_([this] { loop(); }) {}

RunProgress::~RunProgress() { stop(); }

void RunProgress::stop() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (drawn_) {
    // Erased, so that what follows on the terminal starts on a clean line.
    fmt::print(err_, "\r{}\r", std::string(60, ' '));
    err_.flush();
  }
}

void RunProgress::loop() {
  using namespace std::chrono_literals;
  std::unique_lock<std::mutex> lock(mutex_);
  // A run that ends within half a second draws nothing.
  if (wake_.wait_for(lock, 500ms, [this] { return stopping_; })) return;
  do {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double pass = done_.load(std::memory_order_relaxed);
    // Before the pass: time against the estimate, up to the share the building takes.
    const double done =
        pass < 0
            ? std::min(before_pass_, estimated_seconds_ > 0 ? elapsed / estimated_seconds_ : 0.0)
            : before_pass_ + (1.0 - before_pass_) * pass;
    fmt::print(err_, "\r{}", run_progress_line(elapsed, estimated_seconds_, done));
    err_.flush();
    drawn_ = true;
  } while (!wake_.wait_for(lock, 250ms, [this] { return stopping_; }));
}

}  // namespace gradscope
