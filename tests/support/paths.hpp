// Where the tests find the repository and the built executable. The paths are compiled into one
// translation unit (paths.cpp) and nowhere else, so every other test file compiles to the same
// object in any checkout: a second copy of the repository (the set-up test's fresh clone) reuses
// the compiler cache of the first.
#pragma once

namespace gradscope::test_paths {
const char* source_dir();     // the repository's root
const char* gradscope_exe();  // the gradscope executable of this build
}  // namespace gradscope::test_paths

#define GRADSCOPE_SOURCE_DIR (::gradscope::test_paths::source_dir())
#define GRADSCOPE_EXE (::gradscope::test_paths::gradscope_exe())
