// Running a lesson: its configs (built into the binary, or every *.json of a directory) in
// file-name order, then the diagnosis's own fix for each run that fails only for its init.
#include "gradscope/app/lesson.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"

namespace gradscope {

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::vector<LessonConfig> configs_in(const std::string& name, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error("lesson " + name + ": no config directory " + dir,
                "omit --configs to run the configs built into gradscope");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  if (files.empty()) {
    throw Error("lesson " + name + ": " + dir + " holds no *.json config",
                "the lesson's configs live in configs/lessons/" + name + "/");
  }
  std::sort(files.begin(), files.end());
  std::vector<LessonConfig> out;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw Error("lesson " + name + ": cannot read " + f.string());
    std::ostringstream text;
    text << in.rdbuf();
    out.push_back({f.string(), text.str(), false});
  }
  return out;
}

// The file's stem, the name a config without "name" gets.
std::string stem_of(const std::string& source) {
  return std::filesystem::path(source).stem().string();
}

RunSpec spec_of(const std::string& name, const LessonConfig& config,
                const std::vector<ConfigOverride>& overrides = {}) {
  try {
    return parse_run_spec(config.text, config.source, stem_of(config.source), overrides);
  } catch (const Error& e) {
    if (!config.built_in) throw;
    throw Error(
        "lesson " + name + ", built-in config " + e.what(),
        "it is compiled from configs/lessons/" + config.source + ": fix it there and build again");
  }
}

// stack.init, stack.bias_init, layers[i].init: new weights for the same network.
bool is_init_path(const std::string& path) {
  return path.size() >= 4 && path.compare(path.size() - 4, 4, "init") == 0;
}

// The remedy's pieces for the run's errors, when every one of them changes only the init: the
// activation is fine, its init is not. Empty otherwise (sigmoid's fix is another activation,
// which is the lesson itself).
std::vector<const RemedyPiece*> init_fix_of(const Report& r) {
  if (r.verdict != Verdict::kError || !r.remedy) return {};
  const auto is_error_root = [&](const std::string& code) {
    return std::any_of(r.findings.begin(), r.findings.end(), [&](const Finding& f) {
      return f.code == code && f.cause.empty() && f.severity == Severity::kError;
    });
  };
  std::vector<const RemedyPiece*> pieces;
  for (const RemedyPiece& p : r.remedy->pieces) {
    if (std::none_of(p.addresses.begin(), p.addresses.end(), is_error_root)) continue;
    for (const ConfigChange& c : p.changes) {
      if (!is_init_path(c.path)) return {};
    }
    pieces.push_back(&p);
  }
  return pieces;
}

}  // namespace

std::vector<std::string> builtin_lessons() {
  std::vector<std::string> names;
  for (const EmbeddedConfig& c : embedded_lesson_configs()) {
    if (std::find(names.begin(), names.end(), c.lesson) == names.end())
      names.emplace_back(c.lesson);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<LessonConfig> lesson_configs(const std::string& name, const std::string& configs_dir) {
  const std::vector<std::string> known = builtin_lessons();
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    throw Error("no lesson called '" + name + "'; the lessons built in: " +
                    (known.empty() ? std::string("none") : joined(known)),
                "gradscope lesson NAME, with one of them");
  }
  if (!configs_dir.empty()) return configs_in(name, configs_dir);
  std::vector<LessonConfig> out;
  for (const EmbeddedConfig& c : embedded_lesson_configs()) {
    if (c.lesson == name) {
      out.push_back({std::string(c.lesson) + "/" + std::string(c.file), std::string(c.text), true});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const LessonConfig& a, const LessonConfig& b) { return a.source < b.source; });
  return out;
}

Lesson run_lesson(const std::string& name, const std::vector<LessonConfig>& configs, int threads) {
  if (configs.empty()) throw Error("lesson " + name + ": no config to run");
  Lesson lesson;
  lesson.name = name;
  RunOptions options;
  options.threads = threads;
  for (const LessonConfig& c : configs)
    lesson.runs.push_back(run_diagnostic(spec_of(name, c), options));
  for (std::size_t i = 0; i < lesson.runs.size(); ++i) {
    const std::vector<const RemedyPiece*> pieces = init_fix_of(lesson.runs[i]);
    if (pieces.empty()) continue;
    LessonFix fix;
    fix.run = i;
    std::vector<ConfigOverride> overrides;
    for (const RemedyPiece* p : pieces) {
      fix.advice.push_back(p->text);
      for (const ConfigChange& c : p->changes) {
        fix.changes.push_back(c);
        overrides.push_back({c.path, c.value, "the remedy's " + c.path});
      }
    }
    fix.report = run_diagnostic(spec_of(name, configs[i], overrides), options);
    lesson.fixes.push_back(std::move(fix));
  }
  return lesson;
}

Lesson run_lesson(const std::string& name, const std::string& configs_dir, int threads) {
  return run_lesson(name, lesson_configs(name, configs_dir), threads);
}

}  // namespace gradscope
