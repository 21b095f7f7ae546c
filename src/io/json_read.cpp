// The checks every reader of gradscope's JSON shares: where in the text parsing failed, and which
// key at which JSON path is missing or of the wrong type.
#include "io/json_read.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "gradscope/core/error.hpp"

namespace gradscope {

std::string json_text_position(std::string_view source, std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0U) != 0x80U) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  return std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string json_parse_reason(const std::string& what) {
  const std::size_t start = what.find("parse error");
  const std::size_t colon = what.find(": ", start == std::string::npos ? 0 : start);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

std::string json_type_name(const JsonValue& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

std::string json_child(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

std::string json_element(std::string_view path, std::size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

JsonReader::JsonReader(std::string source, std::string hint)
    : source_(std::move(source)), hint_(std::move(hint)) {}

JsonValue JsonReader::parse(const std::string& text) const {
  try {
    return JsonValue::parse(text);
  } catch (const JsonValue::parse_error& e) {
    // e.byte is the 1-based position of the character that failed (size + 1 at end of input).
    const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    throw Error(
        json_text_position(source_, text, offset) + ": not JSON: " + json_parse_reason(e.what()),
        hint_);
  } catch (const JsonValue::exception& e) {
    throw Error(source_ + ": not JSON: " + e.what(), hint_);
  }
}

void JsonReader::fail(std::string_view path, const std::string& what) const {
  throw Error(source_ + ": " + (path.empty() ? std::string() : std::string(path) + ": ") + what,
              hint_);
}

void JsonReader::expect_object(const JsonValue& value, std::string_view path) const {
  if (!value.is_object()) fail(path, "expected an object, got " + json_type_name(value));
}

const JsonValue& JsonReader::member(const JsonValue& object, std::string_view path,
                                    std::string_view key) const {
  const auto it = object.find(std::string(key));
  if (it == object.end()) fail(json_child(path, key), "missing");
  return *it;
}

const JsonValue& JsonReader::object(const JsonValue& object, std::string_view path,
                                    std::string_view key) const {
  const JsonValue& v = member(object, path, key);
  expect_object(v, json_child(path, key));
  return v;
}

const JsonValue& JsonReader::array(const JsonValue& object, std::string_view path,
                                   std::string_view key) const {
  const JsonValue& v = member(object, path, key);
  if (!v.is_array()) fail(json_child(path, key), "expected an array, got " + json_type_name(v));
  return v;
}

std::string JsonReader::string(const JsonValue& object, std::string_view path,
                               std::string_view key) const {
  const JsonValue& v = member(object, path, key);
  if (!v.is_string()) fail(json_child(path, key), "expected a string, got " + json_type_name(v));
  return v.get<std::string>();
}

std::string JsonReader::string_or_null(const JsonValue& object, std::string_view path,
                                       std::string_view key) const {
  const JsonValue& v = member(object, path, key);
  if (v.is_null()) return {};
  if (!v.is_string())
    fail(json_child(path, key), "expected a string or null, got " + json_type_name(v));
  return v.get<std::string>();
}

bool JsonReader::boolean(const JsonValue& object, std::string_view path,
                         std::string_view key) const {
  const JsonValue& v = member(object, path, key);
  if (!v.is_boolean()) fail(json_child(path, key), "expected a boolean, got " + json_type_name(v));
  return v.get<bool>();
}

std::int64_t JsonReader::int64(const JsonValue& value, std::string_view path) const {
  if (!value.is_number_integer()) fail(path, "expected an integer, got " + json_type_name(value));
  // An unsigned value beyond int64 would wrap in get<std::int64_t>().
  if (value.is_number_unsigned() &&
      value.get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    fail(path, value.dump() + " is out of range");
  }
  return value.get<std::int64_t>();
}

std::int64_t JsonReader::int64(const JsonValue& object, std::string_view path,
                               std::string_view key) const {
  return int64(member(object, path, key), json_child(path, key));
}

int JsonReader::integer(const JsonValue& value, std::string_view path) const {
  const std::int64_t v = int64(value, path);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    fail(path, std::to_string(v) + " is out of range");
  }
  return static_cast<int>(v);
}

int JsonReader::integer(const JsonValue& object, std::string_view path,
                        std::string_view key) const {
  return integer(member(object, path, key), json_child(path, key));
}

int JsonReader::bounded(const JsonValue& object, std::string_view path, std::string_view key,
                        int low, int high) const {
  const int v = integer(object, path, key);
  if (v < low || v > high) {
    fail(json_child(path, key),
         "must be a whole number from " + std::to_string(low) + " to " + std::to_string(high));
  }
  return v;
}

std::size_t JsonReader::choice(const JsonValue& object, std::string_view path, std::string_view key,
                               const std::vector<std::string_view>& names) const {
  const std::string value = string(object, path, key);
  const auto it = std::find(names.begin(), names.end(), value);
  if (it == names.end()) {
    std::string listed;
    for (const std::string_view name : names) {
      listed += (listed.empty() ? "" : ", ") + std::string(name);
    }
    fail(json_child(path, key), "\"" + value + "\" is not one of " + listed);
  }
  return static_cast<std::size_t>(it - names.begin());
}

double JsonReader::number(const JsonValue& object, std::string_view path, std::string_view key,
                          std::string* status) const {
  if (status != nullptr) status->clear();
  const JsonValue& v = member(object, path, key);
  if (v.is_number()) return v.get<double>();
  if (!v.is_null()) {
    fail(json_child(path, key), "expected a number or null, got " + json_type_name(v));
  }
  const std::string status_key = std::string(key) + "_status";
  const auto it = object.find(status_key);
  if (it == object.end() || !it->is_string()) {
    fail(json_child(path, key), "null without a " + status_key + " saying why");
  }
  const std::string s = it->get<std::string>();
  if (status != nullptr) *status = s;
  if (s == "nan" || s == "no_finite_values" || s == "not_applicable") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (s == "inf" || s == "overflow") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "underflow") return 0.0;
  fail(json_child(path, status_key), "\"" + s + "\" is not a known status");
}

std::vector<int> JsonReader::integers(const JsonValue& object, std::string_view path,
                                      std::string_view key) const {
  const JsonValue& a = array(object, path, key);
  const std::string at = json_child(path, key);
  std::vector<int> out;
  for (std::size_t i = 0; i < a.size(); ++i) out.push_back(integer(a[i], json_element(at, i)));
  return out;
}

std::vector<std::int64_t> JsonReader::int64s(const JsonValue& object, std::string_view path,
                                             std::string_view key) const {
  const JsonValue& a = array(object, path, key);
  const std::string at = json_child(path, key);
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < a.size(); ++i) out.push_back(int64(a[i], json_element(at, i)));
  return out;
}

std::vector<std::string> JsonReader::strings(const JsonValue& object, std::string_view path,
                                             std::string_view key) const {
  const JsonValue& a = array(object, path, key);
  const std::string at = json_child(path, key);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string()) {
      fail(json_element(at, i), "expected a string, got " + json_type_name(a[i]));
    }
    out.push_back(a[i].get<std::string>());
  }
  return out;
}

}  // namespace gradscope
