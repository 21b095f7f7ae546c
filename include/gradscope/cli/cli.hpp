// The command line as a function: arguments and streams in, exit code out, so tests can call it
// in-process. `main` is a few lines over it.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gradscope {

struct CliEnvironment {
  bool stdout_is_terminal = false;  // colour only on a terminal...
  bool no_color = false;            // ...and never when NO_COLOR is set to a non-empty value
  bool stderr_is_terminal = false;  // progress bars only on a terminal
  // One thread's speed of matrix products for the time estimate; 0: measured when a run might be
  // long. Tests set it, so that no test depends on the machine's speed.
  double product_flops_per_second = 0;
};

// args excludes the program name. Returns the process exit code (see error.hpp).
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
            const CliEnvironment& env);

}  // namespace gradscope
