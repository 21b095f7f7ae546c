// Reads run configs (JSON files, the built-in default, command-line overrides) into a validated
// RunSpec, and writes a RunSpec back as the fully resolved config. Every error names the file,
// the line and column or the JSON path, what was expected, and the closest valid name.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/spec.hpp"

namespace gradscope {

// One override of a config value: `path` is dotted, with [i] for an existing array element
// ("stack.depth", "stack.init.gain", "layers[1].repeat"); `value` is
// parsed as JSON when it is valid JSON (50, 0.5, true, {"name": "orthogonal"}) and taken as a
// string otherwise (sigmoid). `origin` names where it came from ("--depth") for error messages.
struct ConfigOverride {
  std::string path;
  std::string value;
  std::string origin;
};

// The built-in default config, as JSON text.
std::string default_config_text();

// Parses `text` (named `source` in messages: a file path, or "<default>"), applies `overrides`
// in order, validates, and returns the spec. `default_name` is used when the config has no
// "name". Throws gradscope::Error (exit code 2) on any problem.
RunSpec parse_run_spec(std::string_view text, std::string_view source,
                       std::string_view default_name,
                       const std::vector<ConfigOverride>& overrides = {});

// Reads the file at `path` (or the built-in default when empty) and calls parse_run_spec; the
// default name is the file's stem, or "default".
RunSpec load_run_spec(const std::optional<std::string>& path,
                      const std::vector<ConfigOverride>& overrides = {});

// The fully resolved config: every field with its value, defaults filled in, parameters that the
// chosen activation or init ignores left out. Parsing it gives back the same RunSpec.
std::string run_spec_to_json(const RunSpec& spec, int indent = 2);

}  // namespace gradscope
