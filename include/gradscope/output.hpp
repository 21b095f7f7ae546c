// Writing report files so that a reader never sees half of one: every file is written to a
// temporary name beside its target and renamed into place only when all of them are complete.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

// Writes each (path, content) pair, creating the directories. Throws gradscope::Error (exit code
// 2) naming the path and the reason when anything cannot be written; nothing is left behind then.
void write_files_atomically(
    const std::vector<std::pair<std::filesystem::path, std::string>>& files);

}  // namespace gradscope
