// Progress on a terminal's stderr, drawn in place with a carriage return: a sweep's bar over its
// finished runs, and a run's bar over the work its pass has done (its estimated time until then).
// Never in a report, never when piped.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

namespace gradscope {

// "########----------------": `fraction` (clamped to 0..1) of `width` characters filled.
std::string progress_bar(double fraction, int width = 24);

// "\r[#########-----------]  12/40   activation=relu depth=50", and a newline when done == total.
void draw_sweep_progress(std::ostream& err, int done, int total, const std::string& label);

// "[######------------------] ~25%  0:45 of about 3:00": the run's elapsed time against its
// estimate. The fraction stops at 99% until the run is done: the estimate is only an estimate.
std::string run_progress_line(double elapsed_seconds, double estimated_seconds);

// "[##########--------------]  42%  0:45, about 1:02 left": the share of the pass's work done, as
// the pass reports it, and the time left at the pace so far (from the estimate until 5% is done).
std::string run_progress_line(double elapsed_seconds, double estimated_seconds, double done);

// Redraws the run's bar on `err` from a thread of its own, a few times a second from half a
// second after it starts, until stop() (or destruction) erases the line. The first
// `before_pass` of the work (the weights drawn as the network is built) is shown against the
// estimated time; from the pass's first update() on, the rest follows the pass's own report.
class RunProgress {
 public:
  RunProgress(std::ostream& err, double estimated_seconds, double before_pass = 0.0);
  ~RunProgress();
  RunProgress(const RunProgress&) = delete;
  RunProgress& operator=(const RunProgress&) = delete;
  void stop();
  // The share of the work done (0 to 1), from any thread; the bar shows it from then on.
  void update(double done) { done_.store(done, std::memory_order_relaxed); }

 private:
  void loop();

  std::ostream& err_;
  double estimated_seconds_;
  double before_pass_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool drawn_ = false;
  std::atomic<double> done_{-1.0};  // < 0: not reported yet
  std::thread thread_;
};

}  // namespace gradscope
