// The machine, asked: free disk space where reports go, and the memory available to a run (the
// engine's one OS query: /proc/meminfo, or the physical memory where it is missing).
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "gradscope/core/error.hpp"
#include "gradscope/core/number_format.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/engine/memory.hpp"

namespace gradscope {

namespace {

// `dir`, or its nearest existing parent (the directory --out would be created in).
std::filesystem::path nearest_existing(const std::filesystem::path& dir) {
  std::filesystem::path p = dir.empty() ? std::filesystem::path(".") : dir;
  std::error_code ec;
  while (!std::filesystem::exists(p, ec)) {
    if (!p.has_relative_path() || p.parent_path() == p) return p;
    p = p.parent_path();
    if (p.empty()) return ".";
  }
  return p;
}

// As memory.cpp's: a free-space figure beyond int64 (no file system has one) is clamped.
std::int64_t clamp_bytes(double bytes) {
  constexpr double kMax = 3.0e18;
  return static_cast<std::int64_t>(std::min(bytes, kMax));
}

}  // namespace

std::int64_t available_disk_bytes(const std::filesystem::path& dir) {
  struct statvfs s {};
  if (::statvfs(nearest_existing(dir).c_str(), &s) != 0) return -1;
  return clamp_bytes(static_cast<double>(s.f_bavail) * static_cast<double>(s.f_frsize));
}

void check_disk_space(const std::filesystem::path& dir, std::int64_t bytes) {
  const std::int64_t free = available_disk_bytes(dir);
  if (free < 0 || bytes <= free) return;
  throw Error("not enough disk space for the report: its files need an estimated " +
                  format_bytes(bytes) + " but " + nearest_existing(dir).string() + " has " +
                  format_bytes(free) + " free",
              "free some space or write elsewhere with --out; the JSON report takes about 3.3 KB "
              "per layer, so fewer layers (stack.depth) need less");
}

std::int64_t available_memory_bytes() {
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    long long kib = -1;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "MemAvailable: %lld kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib >= 0) return static_cast<std::int64_t>(kib) * 1024;
  }
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) return static_cast<std::int64_t>(pages) * page;
  return -1;
}

}  // namespace gradscope
