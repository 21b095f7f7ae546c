// Report files written all or nothing: temporary files first, the previous files kept aside,
// renames last, and everything undone when one step fails. Also the check, before a run, that its
// files could be written at all.
#include "gradscope/output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <system_error>

#include "gradscope/error.hpp"

namespace gradscope {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& reason,
                       const std::string& hint =
                           "choose a writable directory with --out, or fix its permissions") {
  throw Error("cannot write " + path.string() + ": " + reason, hint);
}

fs::path directory_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// A name beside `path` for one of its stages ("tmp": the new content, "old": the previous file).
// Built by appending: GCC 12 warns falsely (-Wrestrict) on a chain of string additions.
fs::path beside(const fs::path& path, const char* stage) {
  std::string name = ".";
  name += path.filename().string();
  name += '.';
  name += stage;
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
void keep_aside(const fs::path& target, const fs::path& backup) {
  std::error_code ec;
  fs::remove(backup, ec);
  if (::link(target.c_str(), backup.c_str()) == 0) return;
  fs::copy_file(target, backup, fs::copy_options::overwrite_existing, ec);
  if (ec) fail(target, "cannot keep the previous file while replacing it: " + ec.message());
}

}  // namespace

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
    // Trying is the only answer that holds for root, ACLs and read-only mounts alike.
    std::string probe = (existing / ".gradscope-check-XXXXXX").string();
    const int fd = ::mkstemp(probe.data());
    if (fd < 0) {
      const std::string reason = std::strerror(errno);
      fail(path, existing == dir
                     ? reason
                     : reason + " (creating " + dir.string() + " in " + existing.string() + ")");
    }
    ::close(fd);
    ::unlink(probe.c_str());
  }
}

void write_files_atomically(const std::vector<std::pair<fs::path, std::string>>& files) {
  std::vector<fs::path> made;                   // directories created, outermost first
  std::vector<fs::path> temps;                  // the new contents, written so far
  std::vector<fs::path> backups(files.size());  // the previous files, where there were any
  std::size_t renamed = 0;
  auto undo = [&] {
    std::error_code ignored;
    for (std::size_t i = 0; i < renamed; ++i) {
      if (!backups[i].empty()) {
        fs::rename(backups[i], files[i].first, ignored);
      } else {
        fs::remove(files[i].first, ignored);
      }
    }
    for (const fs::path& t : temps) fs::remove(t, ignored);
    for (const fs::path& b : backups) {
      if (!b.empty()) fs::remove(b, ignored);
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
    }
    for (const auto& [path, content] : files) {
      const fs::path temp = beside(path, "tmp");
      temps.push_back(temp);
      std::ofstream f(temp, std::ios::binary | std::ios::trunc);
      if (!f) fail(path, std::strerror(errno));
      f.write(content.data(), static_cast<std::streamsize>(content.size()));
      f.flush();
      if (!f) fail(path, std::strerror(errno));
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      std::error_code ec;
      if (fs::exists(files[i].first, ec)) {
        backups[i] = beside(files[i].first, "old");
        keep_aside(files[i].first, backups[i]);
      }
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      std::error_code ec;
      fs::rename(temps[i], files[i].first, ec);
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
  for (const fs::path& b : backups) {
    if (!b.empty()) fs::remove(b, ignored);
  }
}

}  // namespace gradscope
