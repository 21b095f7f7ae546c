// Lessons: a few committed configs run side by side and explained in plain words for learners,
// every number in the text taken from the runs. The first: why sigmoid fails in deep networks.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gradscope/report.hpp"

namespace gradscope {

struct Lesson {
  std::string name;          // "why-sigmoid-fails"
  std::vector<Report> runs;  // in the order of the config files' names
};

// Runs every *.json config in `configs_dir`, in file-name order (CLI layer). Throws Error when
// the directory is missing or holds no config.
Lesson run_lesson(const std::string& name, const std::string& configs_dir, int threads);

// The lesson's pictures as (file name, SVG): the Markdown links them, the HTML inlines them.
std::vector<std::pair<std::string, std::string>> lesson_plots(const Lesson& lesson);

// The lesson as Markdown and as one self-contained HTML page (text layer).
std::string lesson_to_markdown(const Lesson& lesson);
std::string lesson_to_html(const Lesson& lesson);

}  // namespace gradscope
