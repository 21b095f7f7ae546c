// A small fixed pool of threads that runs numbered tasks. Results never depend on the number of
// threads: callers cut work into tasks by the problem's shape alone, each task writes its own
// slot, and partial results are combined in task order.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gradscope {

class ThreadPool {
 public:
  // threads <= 0 means one per hardware core. The calling thread counts as one of them.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(0) .. fn(tasks - 1), each exactly once, and returns when all are done. The first
  // exception a task throws is rethrown here after the others finish.
  void run(std::int64_t tasks, const std::function<void(std::int64_t)>& fn);

 private:
  void worker_loop();
  void drain(std::unique_lock<std::mutex>& lock);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(std::int64_t)>* fn_ = nullptr;
  std::int64_t tasks_ = 0;
  std::int64_t next_ = 0;
  std::int64_t finished_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// The number of hardware threads (at least 1).
int hardware_threads();

}  // namespace gradscope
