// What a lesson page is written as: a list of blocks (headings, paragraphs, quotes, a table,
// pictures) that lesson_text.cpp renders as Markdown and as HTML, so the two cannot say different
// things. Each lesson builds its own blocks and pictures from its runs.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/app/lesson.hpp"

namespace gradscope {

struct LessonBlock {
  enum Kind { kHeading, kParagraph, kQuote, kTable, kPicture } kind;
  std::string text;                            // heading, paragraph, quote, picture caption
  std::vector<std::vector<std::string>> rows;  // table: the first row is the header
  std::string file;                            // picture
};

// "Why transformers need residuals and norms" (lesson_residual_text.cpp).
inline constexpr std::string_view kResidualLesson = "why-transformers-need-residuals-and-norms";
inline constexpr std::string_view kResidualLessonTitle =
    "Why transformers need residuals and norms";
std::vector<LessonBlock> residual_lesson_blocks(const Lesson& lesson);
std::vector<std::pair<std::string, std::string>> residual_lesson_plots(const Lesson& lesson);

// "Why ResNets need batch norm or a careful init" (lesson_resnet_text.cpp).
inline constexpr std::string_view kResnetLesson = "why-resnets-need-batch-norm";
inline constexpr std::string_view kResnetLessonTitle =
    "Why ResNets need batch norm or a careful init";
std::vector<LessonBlock> resnet_lesson_blocks(const Lesson& lesson);
std::vector<std::pair<std::string, std::string>> resnet_lesson_plots(const Lesson& lesson);

}  // namespace gradscope
