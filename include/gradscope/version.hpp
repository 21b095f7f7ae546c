// The tool's version, written into every report.
#pragma once

namespace gradscope {
inline constexpr const char* kVersion = "0.1.0";
// Bumped whenever a report key is renamed, removed or changes meaning.
inline constexpr int kSchemaVersion = 6;
}  // namespace gradscope
