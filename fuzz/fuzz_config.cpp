// libFuzzer target for parse_run_spec: any config text and overrides either give a RunSpec whose
// resolved config parses back to itself, or a gradscope::Error.
//
// Input: the config text, optionally followed by a line "%%" and one override a line, as --set
// takes it (PATH=VALUE). JSON has no use for "%%" on a line of its own, so seeds stay readable.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/config.hpp"

namespace {

constexpr std::string_view kSeparator = "\n%%\n";

std::vector<gradscope::ConfigOverride> parse_overrides(std::string_view text) {
  std::vector<gradscope::ConfigOverride> overrides;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    // A line without '=' still reaches the library: the CLI refuses it, other callers may not.
    const std::size_t eq = line.find('=');
    const std::string_view path = line.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : line.substr(eq + 1);
    overrides.push_back({std::string(path), std::string(value), "--set " + std::string(path)});
  }
  return overrides;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find(kSeparator);
  const std::string_view text = input.substr(0, split);
  const std::vector<gradscope::ConfigOverride> overrides =
      split == std::string_view::npos ? std::vector<gradscope::ConfigOverride>{}
                                      : parse_overrides(input.substr(split + kSeparator.size()));

  const gradscope_fuzz::AllocationLimit limit(size);
  gradscope::RunSpec spec;
  try {
    spec = gradscope::parse_run_spec(text, "fuzz.json", "fuzz", overrides);
  } catch (const gradscope::Error&) {
    return 0;  // the expected answer to a bad config
  }

  // config.hpp: parsing the resolved config gives back the same RunSpec; its resolved config is
  // then the same text.
  const std::string resolved = gradscope::run_spec_to_json(spec);
  std::string again;
  try {
    again = gradscope::run_spec_to_json(gradscope::parse_run_spec(resolved, "resolved.json", "x"));
  } catch (const gradscope::Error& e) {
    gradscope_fuzz::broken(std::string("the resolved config does not parse: ") + e.what() + "\n" +
                           resolved);
  }
  if (again != resolved) {
    gradscope_fuzz::broken("the resolved config reads back as a different spec:\n" + resolved +
                           "\nthen\n" + again);
  }
  return 0;
}
