// The thread pool. OpenBLAS is pinned to one thread per call: our tasks are the parallelism, and
// a BLAS that split work by its own thread count would make results depend on it.
#include "gradscope/core/parallel.hpp"

#include <algorithm>

#ifdef GRADSCOPE_HAVE_OPENBLAS
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace gradscope {

int hardware_threads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int threads) {
#ifdef GRADSCOPE_HAVE_OPENBLAS
  openblas_set_num_threads(1);
#endif
  const int n = threads <= 0 ? hardware_threads() : threads;
  for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims and runs tasks until none are left. `lock` holds mutex_ on entry and on return.
void ThreadPool::drain(std::unique_lock<std::mutex>& lock) {
  while (next_ < tasks_) {
    const std::int64_t task = next_++;
    const auto* fn = fn_;
    lock.unlock();
    try {
      (*fn)(task);
    } catch (...) {
      lock.lock();
      if (!error_) error_ = std::current_exception();
      lock.unlock();
    }
    lock.lock();
    if (++finished_ == tasks_) done_.notify_all();
  }
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    drain(lock);
  }
}

void ThreadPool::run(std::int64_t tasks, const std::function<void(std::int64_t)>& fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (std::int64_t t = 0; t < tasks; ++t) fn(t);
    return;
  }
  std::unique_lock lock(mutex_);
  fn_ = &fn;
  tasks_ = tasks;
  next_ = 0;
  finished_ = 0;
  error_ = nullptr;
  ++generation_;
  wake_.notify_all();
  drain(lock);
  done_.wait(lock, [&] { return finished_ == tasks_; });
  fn_ = nullptr;
  tasks_ = 0;
  if (error_) {
    auto e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace gradscope
