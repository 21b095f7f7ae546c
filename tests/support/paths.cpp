// The one translation unit that holds the checkout's absolute paths (see paths.hpp).
#include "support/paths.hpp"

namespace gradscope::test_paths {
const char* source_dir() { return GRADSCOPE_SOURCE_DIR_PATH; }
const char* gradscope_exe() { return GRADSCOPE_EXE_PATH; }
}  // namespace gradscope::test_paths
