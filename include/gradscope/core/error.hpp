// The one error type gradscope throws for anything a user can fix; it carries the exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace gradscope {

// Exit codes, documented in the README and in `gradscope --help`.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,  // a bug or an environment failure the user cannot fix by editing input
  kUsage = 2,     // bad command line, bad config, refused run, unwritable output
  kFindings = 3,  // `run --fail-on`: a listed finding is present (the reports are still written)
};

// `what()` says what was wrong and where; `hint()` says what to do (may be empty).
class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string hint = {}, ExitCode code = ExitCode::kUsage)
      : std::runtime_error(std::move(message)), hint_(std::move(hint)), code_(code) {}
  const std::string& hint() const { return hint_; }
  ExitCode code() const { return code_; }

 private:
  std::string hint_;
  ExitCode code_;
};

// A library function called outside its contract (buffers of the wrong shape, a negative variance
// handed to a mean-field map): a bug in the caller, not a fault in the user's input, so it carries
// exit code 1 and says so. The message names the function and the values.
inline Error contract_error(std::string message) {
  return Error("internal error: " + std::move(message),
               "this is a bug in gradscope; please report it with the config that caused it",
               ExitCode::kInternal);
}

}  // namespace gradscope
