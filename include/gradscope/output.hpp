// Writing report files so that a reader never sees half of one, and a run's set of files is
// written all or nothing: every file goes to a temporary name beside its target, and the targets
// are replaced only when all of them are complete. Where a long run will write is checked before
// it starts, so that an unwritable --out costs nothing.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

// Checks that each file could be written now: its directory exists or could be created (no file
// stands where a directory must be), no directory stands where the file goes, and the nearest
// existing directory accepts a new file (tried with a file created and removed at once, so that
// read-only mounts, ACLs and root alike give the true answer). Creates nothing and leaves nothing.
// Throws gradscope::Error (exit code 2) naming the first file that could not be written and why.
void check_writable(const std::vector<std::filesystem::path>& files);

// Writes each (path, content) pair, creating the directories, all or nothing: when any file
// cannot be written, the files that existed before are left as they were (or put back), no new
// file, temporary file or new directory is left behind, and gradscope::Error (exit code 2) names
// the path, the reason, and that none of the set was written.
void write_files_atomically(
    const std::vector<std::pair<std::filesystem::path, std::string>>& files);

}  // namespace gradscope
