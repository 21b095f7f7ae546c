// Atomic report writing: temporary files first, renames last.
#include "gradscope/output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "gradscope/error.hpp"

namespace gradscope {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& reason) {
  throw Error("cannot write " + path.string() + ": " + reason,
              "choose a writable directory with --out, or fix its permissions");
}

}  // namespace

void write_files_atomically(const std::vector<std::pair<fs::path, std::string>>& files) {
  std::vector<fs::path> temps;
  auto cleanup = [&] {
    std::error_code ignored;
    for (const fs::path& t : temps) fs::remove(t, ignored);
  };
  try {
    for (const auto& [path, content] : files) {
      const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) fail(path, ec.message());
      if (!fs::is_directory(dir)) fail(path, dir.string() + " is not a directory");
      // Built by appending: GCC 12 warns falsely (-Wrestrict) on a chain of string additions.
      std::string name = ".";
      name += path.filename().string();
      name += ".tmp.";
      name += std::to_string(::getpid());
      const fs::path temp = dir / name;
      temps.push_back(temp);
      std::ofstream f(temp, std::ios::binary | std::ios::trunc);
      if (!f) fail(path, std::strerror(errno));
      f.write(content.data(), static_cast<std::streamsize>(content.size()));
      f.flush();
      if (!f) fail(path, std::strerror(errno));
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      std::error_code ec;
      fs::rename(temps[i], files[i].first, ec);
      if (ec) fail(files[i].first, ec.message());
    }
  } catch (...) {
    cleanup();
    throw;
  }
}

}  // namespace gradscope
