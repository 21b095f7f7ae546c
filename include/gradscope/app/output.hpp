// Writing report files so that a reader never sees half of one, and a run's set of files is
// written all or nothing: every file goes to a temporary name beside its target, and the targets
// are replaced only when all of them are complete. Where a long run will write is checked before
// it starts, so that an unwritable --out costs nothing. An interrupt leaves no temporary file, and
// one writer at a time holds a directory that several could otherwise write into (a sweep's).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

// Checks that each file could be written now: its directory exists or could be created (no file
// stands where a directory must be), no directory stands where the file goes, and the nearest
// existing directory accepts a new file (tried with a file created and removed at once, so that
// read-only mounts, ACLs and root alike give the true answer). Creates nothing and leaves nothing.
// Throws gradscope::Error (exit code 2) naming the first file that could not be written and why.
void check_writable(const std::vector<std::filesystem::path>& files);

// Writes each (path, content) pair, creating the directories, all or nothing: when any file
// cannot be written, the files that existed before are left as they were (or put back), no new
// file, temporary file or new directory is left behind, and gradscope::Error (exit code 2) names
// the path, the reason, and that none of the set was written.
void write_files_atomically(
    const std::vector<std::pair<std::filesystem::path, std::string>>& files);

// ---- Temporary files: named for their writer, removed on an interrupt, swept when stale
//
// A file being written is ".NAME.tmp.HOST.PID" beside its target NAME, and the previous file kept
// aside while a set is replaced ".NAME.old.HOST.PID" (HOST: this machine's name, PID: the
// writer's process). While one exists its path is registered: SIGINT, SIGTERM and SIGHUP remove
// every registered file, then end the process as the signal would have (exit status 128 + N), so
// an interrupt leaves the final files as they were or whole, never a temporary file. (The handler
// is installed with the first write, and only for a signal whose action is still the default.)
// A writer killed outright (kill -9, a crash, a lost node) leaves its temporary files: the next
// write into the directory removes them (remove_stale_temps).

// This machine's name as temporary files carry it: the host name, characters other than letters,
// digits, '-' and '_' as '_', at most 64 of them.
const std::string& temp_host_name();

// Removes from `dir` (not its subdirectories) the temporary files whose writer is gone:
//  - ".NAME.tmp.HOST.PID" and ".NAME.old.HOST.PID" of this host whose process no longer exists;
//  - ".NAME.tmp.PID" and ".NAME.old.PID" (earlier gradscopes named them without the host, so the
//    process may be another machine's) and ".gradscope-check-*" probes, when older than an hour.
// Files of another host are left alone: on a shared file system their writer may be alive there.
// Returns how many were removed; a directory that cannot be read is left as it is. Every
// write_files_atomically does this once per directory and process.
int remove_stale_temps(const std::filesystem::path& dir);

// ---- One writer per directory

// The file in a directory that its writer holds locked: `OutputLock`.
inline constexpr const char* kOutputLockFile = ".gradscope.lock";

// Holds `dir` for the life of the object: an exclusive flock(2) on dir/.gradscope.lock, a file
// that records the holder (what it is, pid, host, start time, command line). The kernel releases
// the lock when its process ends, however it ends, so a lock file left by a killed process is
// stale and the next writer takes it over. Where the file system has no locks (flock fails with
// ENOLCK or EOPNOTSUPP) the directory is written unlocked, as before locks existed.
class OutputLock {
 public:
  // Creates `dir` when missing. `what` names this writer for another one's message ("sweep",
  // "sweep shard 1/4", "merge"). When a live process holds the lock, throws Error (exit code 2):
  // "another gradscope WHAT (pid N, started T) is writing DIR", with `hint` and the holder's
  // command line as the hint.
  OutputLock(const std::filesystem::path& dir, const std::string& what, const std::string& hint);
  // Releases the lock and removes the lock file, and the directories it created when empty.
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::filesystem::path file_;
  std::vector<std::filesystem::path> made_;  // directories created, outermost first
  int fd_ = -1;
  int slot_ = -1;  // its place among the files an interrupt removes
};

// A word a POSIX shell reads back unchanged: as it is when plain, else single-quoted.
std::string shell_word(const std::string& s);

}  // namespace gradscope
