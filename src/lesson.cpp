// Running a lesson's configs: every *.json of its directory, in file-name order.
#include "gradscope/lesson.hpp"

#include <algorithm>
#include <filesystem>

#include "gradscope/config.hpp"
#include "gradscope/engine.hpp"
#include "gradscope/error.hpp"

namespace gradscope {

Lesson run_lesson(const std::string& name, const std::string& configs_dir, int threads) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(configs_dir, ec)) {
    throw Error("lesson " + name + ": no config directory " + configs_dir,
                "run from the repository root, or pass --configs DIR");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(configs_dir)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  if (files.empty()) {
    throw Error("lesson " + name + ": " + configs_dir + " holds no *.json config",
                "the lesson's configs live in configs/lessons/" + name + "/");
  }
  std::sort(files.begin(), files.end());
  Lesson lesson;
  lesson.name = name;
  RunOptions options;
  options.threads = threads;
  for (const fs::path& f : files)
    lesson.runs.push_back(run_diagnostic(load_run_spec(f.string()), options));
  return lesson;
}

}  // namespace gradscope
