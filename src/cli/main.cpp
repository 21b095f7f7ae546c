// The gradscope executable: a thin front end over run_cli.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "gradscope/cli/cli.hpp"

int main(int argc, char** argv) {
  gradscope::CliEnvironment env;
  env.stdout_is_terminal = ::isatty(STDOUT_FILENO) != 0;
  env.stderr_is_terminal = ::isatty(STDERR_FILENO) != 0;
  const char* no_color = std::getenv("NO_COLOR");
  env.no_color = no_color != nullptr && no_color[0] != '\0';
  return gradscope::run_cli({argv + 1, argv + argc}, std::cout, std::cerr, env);
}
