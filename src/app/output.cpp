// Report files written all or nothing: temporary files first, the previous files kept aside,
// renames last, and everything undone when one step fails. Also the check, before a run, that its
// files could be written at all; the temporary files an interrupt removes and the next writer
// sweeps away when their process is gone; and the lock one writer holds on a directory.
#include "gradscope/app/output.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

#include "gradscope/core/error.hpp"

namespace gradscope {

namespace fs = std::filesystem;

namespace {

// ---- The files an interrupt removes
//
// A signal handler may only touch lock-free atomics and call async-signal-safe functions, so the
// registry is a fixed table of pointers to C strings that nothing frees while the handler may read
// them. Registering publishes a path before its file is created; a writer that finds the process
// dying once the file exists removes the file itself. Either way no file outlives the handler.

constexpr std::size_t kLiveSlots = 4096;  // jobs (at most 1024) x files a writer has at once
std::array<std::atomic<const char*>, kLiveSlots> g_live{};
std::atomic<bool> g_dying{false};
static_assert(std::atomic<const char*>::is_always_lock_free);
static_assert(std::atomic<bool>::is_always_lock_free);

constexpr std::array<int, 3> kCleanupSignals{SIGINT, SIGTERM, SIGHUP};

extern "C" void remove_live_files_and_die(int sig) {
  g_dying.store(true);
  for (const std::atomic<const char*>& slot : g_live) {
    if (const char* path = slot.load()) ::unlink(path);
  }
  // The signal's own action, so that the exit status is 128 + sig: raised now, it is blocked
  // until this handler returns, and then ends the process.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
}

// Installed with the first registered file, for each signal still at its default action (an
// ignored SIGINT, as a background job of a shell has, stays ignored; a program's own handler
// stays).
void install_cleanup_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = remove_live_files_and_die;
    sigemptyset(&action.sa_mask);
    for (int sig : kCleanupSignals) sigaddset(&action.sa_mask, sig);
    action.sa_flags = SA_RESTART;
    for (int sig : kCleanupSignals) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) != 0) continue;
      if ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_DFL) {
        ::sigaction(sig, &action, nullptr);
      }
    }
  });
}

// Registers `path` (before its file is created); returns its slot, or -1 when the table is full
// (the file is then only not removed by an interrupt).
int register_live(const fs::path& path) {
  install_cleanup_handlers();
  const std::string& s = path.native();
  char* copy = new char[s.size() + 1];
  std::memcpy(copy, s.c_str(), s.size() + 1);
  for (std::size_t i = 0; i < kLiveSlots; ++i) {
    const char* expected = nullptr;
    if (g_live[i].compare_exchange_strong(expected, copy)) return static_cast<int>(i);
  }
  delete[] copy;
  return -1;
}

// Once the registered file exists: when an interrupt is already removing files, it may have
// passed this one's slot before the file was there, so the writer removes it and waits for the
// end the handler has raised.
void created_live(int slot) {
  if (slot < 0 || !g_dying.load()) return;
  if (const char* path = g_live[static_cast<std::size_t>(slot)].load()) ::unlink(path);
  for (;;) ::pause();
}

// The file is gone or has its final name: the handler must not remove that path any more.
void unregister_live(int slot) {
  if (slot < 0) return;
  const char* path = g_live[static_cast<std::size_t>(slot)].exchange(nullptr);
  // A dying process's handler may be reading the path: let it be (the process ends anyway).
  if (!g_dying.load()) delete[] path;
}

// A registered path, unregistered when it goes out of scope.
class LivePath {
 public:
  explicit LivePath(const fs::path& path) : path_(path), slot_(register_live(path)) {}
  ~LivePath() { unregister_live(slot_); }
  LivePath(LivePath&& other) noexcept : path_(std::move(other.path_)), slot_(other.slot_) {
    other.slot_ = -1;
  }
  LivePath(const LivePath&) = delete;
  LivePath& operator=(const LivePath&) = delete;
  LivePath& operator=(LivePath&&) = delete;
  const fs::path& path() const { return path_; }
  void created() const { created_live(slot_); }

 private:
  fs::path path_;
  int slot_;
};

// ---- Names

std::string host_name_for_files() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  std::string name;
  for (const char* c = buf.data(); *c != '\0' && name.size() < 64; ++c) {
    const bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                       (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
    name += plain ? *c : '_';
  }
  return name.empty() ? "localhost" : name;
}

[[noreturn]] void fail(
    const fs::path& path, const std::string& reason,
    const std::string& hint = "choose a writable directory with --out, or fix its permissions") {
  throw Error("cannot write " + path.string() + ": " + reason, hint);
}

fs::path directory_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// A name beside `path` for one of its stages ("tmp": the new content, "old": the previous file):
// ".NAME.STAGE.HOST.PID". Built by appending: GCC 12 warns falsely (-Wrestrict) on a chain of
// string additions.
fs::path beside(const fs::path& path, const char* stage) {
  std::string name = ".";
  name += path.filename().string();
  name += '.';
  name += stage;
  name += '.';
  name += temp_host_name();
  name += '.';
  name += std::to_string(::getpid());
  return directory_of(path) / name;
}

// The directory itself when it exists, else its nearest existing ancestor: the one a new file or
// directory would be created in. Empty when a file stands where a directory must be.
fs::path nearest_existing(const fs::path& dir) {
  fs::path p = dir;
  std::error_code ec;
  while (!p.empty() && !fs::exists(p, ec)) p = p.parent_path();
  if (p.empty()) p = ".";
  return p;
}

// Creates `dir` and its missing ancestors, recording each one created (outermost first), so that
// a failed write removes them again.
void make_directories(const fs::path& dir, std::vector<fs::path>& made) {
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (fs::create_directory(*it, ec)) made.push_back(*it);
    if (ec) {
      const fs::path existing = nearest_existing(*it);
      if (!fs::is_directory(existing)) fail(dir, existing.string() + " is not a directory");
      fail(dir, ec.message());
    }
  }
  if (!fs::is_directory(dir, ec)) fail(dir, dir.string() + " is not a directory");
}

// Keeps the file at `target` under `backup`: a second name for the same file when the file system
// allows it (nothing copied), else a copy.
void keep_aside(const fs::path& target, const LivePath& backup) {
  std::error_code ec;
  fs::remove(backup.path(), ec);
  if (::link(target.c_str(), backup.path().c_str()) == 0) {
    backup.created();
    return;
  }
  fs::copy_file(target, backup.path(), fs::copy_options::overwrite_existing, ec);
  backup.created();
  if (ec) fail(target, "cannot keep the previous file while replacing it: " + ec.message());
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Whether `name` is a temporary file of a writer that is gone (the rule remove_stale_temps
// states). `old_enough`: the file is older than an hour.
bool is_stale_temp(const std::string& name, const std::function<bool()>& old_enough) {
  if (name.size() < 2 || name.front() != '.') return false;
  if (name.rfind(".gradscope-check-", 0) == 0) return old_enough();  // earlier probes' names
  for (const std::string_view stage : {".tmp.", ".old."}) {
    const std::size_t at = name.rfind(stage);
    if (at == std::string::npos || at == 0) continue;
    const std::string_view tail = std::string_view(name).substr(at + stage.size());
    if (all_digits(tail)) return old_enough();  // no host: another machine's process, perhaps
    const std::string& host = temp_host_name();
    if (tail.size() <= host.size() + 1 || tail.substr(0, host.size()) != host ||
        tail[host.size()] != '.') {
      continue;  // another host's: its writer may be alive there
    }
    const std::string_view pid = tail.substr(host.size() + 1);
    if (!all_digits(pid)) continue;
    const long id = std::stol(std::string(pid));
    return id > 0 && ::kill(static_cast<pid_t>(id), 0) != 0 && errno == ESRCH;
  }
  return false;
}

// The directories remove_stale_temps has swept in this process, so that a sweep's thousands of
// writes into one directory read it once.
bool first_write_into(const fs::path& dir) {
  static std::mutex mutex;
  static std::set<fs::path> swept;
  std::error_code ec;
  fs::path key = fs::absolute(dir, ec);
  if (ec) key = dir;
  const std::lock_guard<std::mutex> lock(mutex);
  return swept.insert(key.lexically_normal()).second;
}

}  // namespace

const std::string& temp_host_name() {
  static const std::string name = host_name_for_files();
  return name;
}

int remove_stale_temps(const fs::path& dir) {
  first_write_into(dir);
  int removed = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    const auto old_enough = [&] {
      std::error_code time_ec;
      const auto written = fs::last_write_time(path, time_ec);
      return !time_ec && now - written > std::chrono::hours(1);
    };
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || !is_stale_temp(path.filename().string(), old_enough)) {
      continue;
    }
    std::error_code remove_ec;
    if (fs::remove(path, remove_ec)) ++removed;
  }
  return removed;
}

void check_writable(const std::vector<fs::path>& files) {
  std::set<fs::path> tried;
  for (const fs::path& path : files) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      fail(path, "a directory of that name is in the way",
           "move or remove " + path.string() + ", or choose another directory with --out");
    }
    const fs::path dir = directory_of(path);
    const fs::path existing = nearest_existing(dir);
    if (!fs::is_directory(existing, ec)) {
      fail(path, existing.string() + " is not a directory",
           "--out names a directory (created if missing): choose one that is not a file");
    }
    if (!tried.insert(existing).second) continue;
    // Trying is the only answer that holds for root, ACLs and read-only mounts alike. The probe
    // is a temporary file like the others (".gradscope-check.tmp.HOST.PID"), removed by an
    // interrupt; one thread probes at a time, since the name is the process's.
    static std::mutex probing;
    const std::lock_guard<std::mutex> lock(probing);
    const LivePath probe(beside(existing / "gradscope-check", "tmp"));
    const int fd = ::open(probe.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      const std::string reason = std::strerror(errno);
      fail(path, existing == dir
                     ? reason
                     : reason + " (creating " + dir.string() + " in " + existing.string() + ")");
    }
    probe.created();
    ::close(fd);
    ::unlink(probe.path().c_str());
  }
}

// Why this is long: the all-or-nothing protocol reads as one sequence (check every path, write
// every temporary, set the old files aside, rename the new ones in, undo everything on the first
// failure); each step's failure path needs what the steps before it put in place.
void write_files_atomically(const std::vector<std::pair<fs::path, std::string>>& files) {
  std::vector<fs::path> made;   // directories created, outermost first
  std::vector<LivePath> temps;  // the new contents, written so far
  std::vector<std::optional<LivePath>> backups(files.size());  // the previous files, if any
  std::size_t renamed = 0;
  auto undo = [&] {
    std::error_code ignored;
    for (std::size_t i = 0; i < renamed; ++i) {
      if (backups[i]) {
        fs::rename(backups[i]->path(), files[i].first, ignored);
      } else {
        fs::remove(files[i].first, ignored);
      }
    }
    for (const LivePath& t : temps) fs::remove(t.path(), ignored);
    for (const std::optional<LivePath>& b : backups) {
      if (b) fs::remove(b->path(), ignored);
    }
    for (auto it = made.rbegin(); it != made.rend(); ++it) fs::remove(*it, ignored);
  };
  try {
    std::set<fs::path> targets;
    for (const auto& [path, content] : files) {
      if (!targets.insert(path.lexically_normal()).second) {
        fail(path, "two of the files to write have that name");
      }
    }
    for (const auto& [path, content] : files) {
      make_directories(directory_of(path), made);
      std::error_code ec;
      if (fs::is_directory(path, ec)) {
        fail(path, "a directory of that name is in the way",
             "move or remove " + path.string() + ", or choose another directory with --out");
      }
      // What killed writers left here goes first (once per directory and process).
      if (first_write_into(directory_of(path))) remove_stale_temps(directory_of(path));
    }
    temps.reserve(files.size());
    for (const auto& [path, content] : files) {
      temps.emplace_back(beside(path, "tmp"));
      std::ofstream f(temps.back().path(), std::ios::binary | std::ios::trunc);
      temps.back().created();
      if (!f) fail(path, std::strerror(errno));
      f.write(content.data(), static_cast<std::streamsize>(content.size()));
      f.flush();
      if (!f) {
        const int error = errno;
        if (error == ENOSPC || error == EDQUOT) {
          fail(path, std::strerror(error),
               "free some space there (or raise the quota), or choose another directory with "
               "--out");
        }
        fail(path, std::strerror(error));
      }
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      std::error_code ec;
      if (fs::exists(files[i].first, ec)) {
        backups[i].emplace(beside(files[i].first, "old"));
        keep_aside(files[i].first, *backups[i]);
      }
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      std::error_code ec;
      fs::rename(temps[i].path(), files[i].first, ec);
      if (ec) fail(files[i].first, ec.message());
      ++renamed;
    }
  } catch (const Error& e) {
    undo();
    if (files.size() < 2) throw;
    throw Error(std::string(e.what()) + "; none of the " + std::to_string(files.size()) +
                    " files was written",
                e.hint());
  } catch (...) {
    undo();
    throw;
  }
  std::error_code ignored;
  for (const std::optional<LivePath>& b : backups) {
    if (b) fs::remove(b->path(), ignored);
  }
}

// ---- The lock

std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("_-./=,:+@%").find(c) != std::string_view::npos;
  });
  if (plain) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

namespace {

// This process's command line, as a shell would read it back.
std::string own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string line;
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    std::string word = all.substr(start, end - start);
    if (line.empty()) word = fs::path(word).filename().string();  // the program, without its path
    if (!line.empty()) line += ' ';
    line += shell_word(word);
    start = end + 1;
  }
  return line;
}

std::string local_time_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::array<char, 64> buf{};
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf.data(), n);
}

// The lock file's content: one "key value" line each, for people and for another writer's
// message.
std::string holder_record(const std::string& what) {
  return "what " + what + "\npid " + std::to_string(::getpid()) + "\nhost " + temp_host_name() +
         "\nstarted " + local_time_now() + "\ncommand " + own_command_line() + "\n";
}

std::map<std::string, std::string> read_holder(int fd) {
  std::map<std::string, std::string> fields;
  // The holder writes its record right after it locks: give it a moment when it is not there yet.
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::string text;
    std::array<char, 4096> buf{};
    off_t at = 0;
    for (;;) {
      const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
      if (n <= 0) break;
      text.append(buf.data(), static_cast<std::size_t>(n));
      at += n;
    }
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      const std::size_t space = line.find(' ');
      if (space != std::string::npos) fields[line.substr(0, space)] = line.substr(space + 1);
    }
    if (fields.count("pid") != 0 && fields.count("command") != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return fields;
}

[[noreturn]] void refuse(const fs::path& dir, int fd, const std::string& hint) {
  std::map<std::string, std::string> holder = read_holder(fd);
  ::close(fd);
  std::string who = "another gradscope " + (holder.count("what") != 0 ? holder["what"] : "process");
  std::string details = holder.count("pid") != 0 ? "pid " + holder["pid"] : "pid unknown";
  if (holder.count("host") != 0 && holder["host"] != temp_host_name()) {
    details += " on host " + holder["host"];
  }
  if (holder.count("started") != 0) details += ", started " + holder["started"];
  std::string full_hint = hint;
  if (holder.count("command") != 0) full_hint += " (it runs: " + holder["command"] + ")";
  throw Error(who + " (" + details + ") is writing " + dir.string(), full_hint);
}

}  // namespace

OutputLock::OutputLock(const fs::path& dir, const std::string& what, const std::string& hint)
    : file_(dir / kOutputLockFile) {
  for (int attempt = 0;; ++attempt) {
    make_directories(dir, made_);
    const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      // The directory went away between (a writer that created it released it): once more.
      if (errno == ENOENT && attempt < 10) continue;
      fail(file_, std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) refuse(dir, fd, hint);
      if (errno == EINTR && attempt < 10) {
        ::close(fd);
        continue;
      }
      // No locks on this file system: written unlocked, as before locks existed.
      ::close(fd);
      ::unlink(file_.c_str());
      return;
    }
    // The holder before us removes the file when it releases it: a lock on a file that no longer
    // has this name holds nothing, so try again with the file the name now gives.
    struct stat by_fd {};
    struct stat by_name {};
    if (::fstat(fd, &by_fd) != 0 || ::stat(file_.c_str(), &by_name) != 0 ||
        by_fd.st_dev != by_name.st_dev || by_fd.st_ino != by_name.st_ino) {
      ::close(fd);
      if (attempt < 100) continue;
      fail(file_, "the lock file keeps being replaced");
    }
    fd_ = fd;
    break;
  }
  slot_ = register_live(file_);
  const std::string record = holder_record(what);
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
    // The lock holds all the same; only another writer's message will lack the details.
  }
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) {
    // Removed while still locked, so that no one locks a file about to lose its name.
    ::unlink(file_.c_str());
    unregister_live(slot_);
    ::close(fd_);
  }
  std::error_code ignored;
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) fs::remove(*it, ignored);
}

}  // namespace gradscope
