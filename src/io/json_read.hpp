// Reading JSON that gradscope wrote and a user may have edited: parsing with file:line:column
// errors, and typed access to keys where every failure names the file and the JSON path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gradscope {

// ordered_json: a document written back keeps its key order, and the first problem reported is
// the first one in the file.
using JsonValue = nlohmann::ordered_json;

// "file:line:column" of byte `offset` (1-based; columns count UTF-8 characters, as editors do).
std::string json_text_position(std::string_view source, std::string_view text, std::size_t offset);
// nlohmann's parse error message without its "[json.exception...] parse error at line 3, column
// 7: " prefix: the position is ours.
std::string json_parse_reason(const std::string& what);
// "null", "a boolean", "a number", "a string", "an array", "an object".
std::string json_type_name(const JsonValue& value);
// "path.key" ("key" at the root) and "path[i]": the JSON paths errors name.
std::string json_child(std::string_view path, std::string_view key);
std::string json_element(std::string_view path, std::size_t index);

// Typed reads from one document. A failure throws gradscope::Error (exit code 2, usage) saying
// "<source>: <path>: <what>" with `hint`.
class JsonReader {
 public:
  JsonReader(std::string source, std::string hint);

  // The document; text that is not JSON fails with "<source>:<line>:<column>: not JSON: <why>".
  JsonValue parse(const std::string& text) const;

  [[noreturn]] void fail(std::string_view path, const std::string& what) const;
  void expect_object(const JsonValue& value, std::string_view path) const;

  // object[key], which must be present; `path` is the object's.
  const JsonValue& member(const JsonValue& object, std::string_view path,
                          std::string_view key) const;
  const JsonValue& object(const JsonValue& object, std::string_view path,
                          std::string_view key) const;
  const JsonValue& array(const JsonValue& object, std::string_view path,
                         std::string_view key) const;
  std::string string(const JsonValue& object, std::string_view path, std::string_view key) const;
  // A string or null (null: empty).
  std::string string_or_null(const JsonValue& object, std::string_view path,
                             std::string_view key) const;
  bool boolean(const JsonValue& object, std::string_view path, std::string_view key) const;
  // Whole numbers in the range of the type.
  int integer(const JsonValue& value, std::string_view path) const;
  int integer(const JsonValue& object, std::string_view path, std::string_view key) const;
  // A whole number from low to high (inclusive); outside, "must be a whole number from L to H".
  int bounded(const JsonValue& object, std::string_view path, std::string_view key, int low,
              int high) const;
  std::int64_t int64(const JsonValue& value, std::string_view path) const;
  std::int64_t int64(const JsonValue& object, std::string_view path, std::string_view key) const;
  // A string that must be one of `names`; its position there.
  std::size_t choice(const JsonValue& object, std::string_view path, std::string_view key,
                     const std::vector<std::string_view>& names) const;

  // A number as the report writers put it: a value, or null with a "<key>_status" sibling saying
  // what it stands for: "nan", "no_finite_values", "not_applicable" (NaN), "inf", "overflow"
  // (+inf), "-inf", "underflow" (0). The status, empty for a plain value, goes to `status`.
  double number(const JsonValue& object, std::string_view path, std::string_view key,
                std::string* status = nullptr) const;

  // Arrays of one kind of element.
  std::vector<int> integers(const JsonValue& object, std::string_view path,
                            std::string_view key) const;
  std::vector<std::int64_t> int64s(const JsonValue& object, std::string_view path,
                                   std::string_view key) const;
  std::vector<std::string> strings(const JsonValue& object, std::string_view path,
                                   std::string_view key) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::string hint_;
};

}  // namespace gradscope
