// `gradscope lesson`: a lesson's configs run side by side, written as an HTML page and Markdown
// with their charts.
#include "gradscope/app/lesson.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <filesystem>

#include "cli/commands.hpp"
#include "gradscope/app/output.hpp"

namespace gradscope {

CLI::App* add_lesson(CLI::App& app, LessonArgs& args) {
  CLI::App* lesson = app.add_subcommand(
      "lesson",
      "Run a lesson's committed configs side by side and write OUT/NAME.html and OUT/NAME.md: "
      "pictures and a plain-words explanation for learners, every number from the runs. "
      "Lessons: why-sigmoid-fails, why-transformers-need-residuals-and-norms.");
  lesson->add_option("name", args.name, "the lesson")->required();
  lesson->add_option("--configs", args.configs,
                     "run the *.json configs of this directory instead of the ones built into "
                     "gradscope (from configs/lessons/NAME)");
  lesson->add_option("-o,--out", args.out_dir, "directory for the lesson's files")
      ->capture_default_str();
  lesson->add_option("--threads", args.threads, "worker threads, 0 = one per core")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  return lesson;
}

int do_lesson(const LessonArgs& a, std::ostream& out) {
  // Without --configs, the ones built into the binary: the lesson runs from any directory. An
  // unknown lesson is refused here, naming the ones built in.
  const std::vector<LessonConfig> configs = lesson_configs(a.name, a.configs);
  const std::filesystem::path dir(a.out_dir);
  const std::filesystem::path html = dir / file_name(a.name, Format::kHtml);
  const std::filesystem::path markdown = dir / file_name(a.name, Format::kMarkdown);
  check_writable({html, markdown});
  const Lesson lesson = run_lesson(a.name, configs, a.threads);
  // Its writers are the app layer's (lesson_text.cpp), above the report layer's registry.
  std::vector<std::pair<std::filesystem::path, std::string>> files{
      {html, lesson_to_html(lesson)}, {markdown, lesson_to_markdown(lesson)}};
  for (const auto& [file, svg] : lesson_plots(lesson)) files.emplace_back(dir / file, svg);
  write_files_atomically(files);
  for (const auto& [path, content] : files) fmt::print(out, "wrote {}\n", path.string());
  return 0;
}

}  // namespace gradscope
