// Lessons: a few committed configs run side by side and explained in plain words for learners,
// every number in the text taken from the runs: why sigmoid fails in deep networks, and why
// transformers need residuals and norms.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/core/report.hpp"

namespace gradscope {

// A lesson config compiled into the binary: cmake/embed_lessons.cmake writes one for every
// configs/lessons/LESSON/FILE.json at build time, so a lesson runs from any directory.
struct EmbeddedConfig {
  std::string_view lesson;  // "why-sigmoid-fails"
  std::string_view file;    // "5-gelu.json"
  std::string_view text;    // the JSON as committed
};

// Every embedded config, by lesson then file name (defined in the generated source).
std::span<const EmbeddedConfig> embedded_lesson_configs();

// The names of the lessons built in, sorted.
std::vector<std::string> builtin_lessons();

// One config of a lesson, with the name its errors give it.
struct LessonConfig {
  std::string source;  // built in: "why-sigmoid-fails/5-gelu.json"; from a directory: its path
  std::string text;    // JSON
  bool built_in = false;
};

// The lesson's configs in file-name order: the built-in ones when `configs_dir` is empty, else
// every *.json of that directory. Throws Error (exit code 2) for a lesson not built in (naming
// the ones that are), a missing directory or one without a config.
std::vector<LessonConfig> lesson_configs(const std::string& name, const std::string& configs_dir);

// A run the diagnosis calls an error although its activation is fine, because the init is wrong
// for it (GELU with He's init): the remedy's pieces for its errors applied, and the run again.
struct LessonFix {
  std::size_t run = 0;              // index in Lesson::runs of the run it fixes
  std::vector<std::string> advice;  // the remedy's sentences it applies
  std::vector<ConfigChange> changes;
  Report report;  // the same config with `changes` applied, diagnosed
};

struct Lesson {
  std::string name;              // "why-sigmoid-fails"
  std::vector<Report> runs;      // in the order of the config files' names
  std::vector<LessonFix> fixes;  // in the order of the runs they fix
};

// Runs every config, then each fix (CLI layer). A config's error names its source.
Lesson run_lesson(const std::string& name, const std::vector<LessonConfig>& configs, int threads);

// run_lesson(name, lesson_configs(name, configs_dir), threads): built in when `configs_dir` is
// empty.
Lesson run_lesson(const std::string& name, const std::string& configs_dir, int threads);

// The lesson's pictures as (file name, SVG): the Markdown links them, the HTML inlines them.
std::vector<std::pair<std::string, std::string>> lesson_plots(const Lesson& lesson);

// The lesson as Markdown and as one self-contained HTML page (text layer).
std::string lesson_to_markdown(const Lesson& lesson);
std::string lesson_to_html(const Lesson& lesson);

}  // namespace gradscope
