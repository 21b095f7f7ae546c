// A small JSON Schema validator for the tests: the draft 2020-12 keywords that
// schema/report.schema.json uses, and an error for any other keyword, so that the schema cannot
// silently rely on something this validator would ignore.
#pragma once

#include <cmath>
#include <set>
#include <string>
#include <vector>

namespace gradscope::testing {

// Validates `instance` against `schema`; returns one message per violation, each starting with
// the JSON path of the offending value ("$.layers[3].backward.gain: ..."). Empty means valid.
// Json is nlohmann::json or nlohmann::ordered_json.
template <class Json>
class SchemaValidator {
 public:
  explicit SchemaValidator(const Json& root) : root_(root) {}

  std::vector<std::string> validate(const Json& instance) {
    errors_.clear();
    check(root_, instance, "$", 0);
    return errors_;
  }

 private:
  // Deep enough for any real schema; stops a $ref cycle from recursing forever.
  static constexpr int kMaxDepth = 64;

  void fail(const std::string& path, const std::string& message) {
    errors_.push_back(path + ": " + message);
  }

  static std::string type_of(const Json& v) {
    if (v.is_null()) return "null";
    if (v.is_boolean()) return "boolean";
    if (v.is_number_integer()) return "integer";
    if (v.is_number()) return "number";
    if (v.is_string()) return "string";
    if (v.is_array()) return "array";
    return "object";
  }

  static bool has_type(const Json& v, const std::string& type) {
    if (type == "null") return v.is_null();
    if (type == "boolean") return v.is_boolean();
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "number") return v.is_number();
    if (type == "integer") {
      // JSON Schema counts 2.0 as an integer: the type is about the value, not the spelling.
      if (v.is_number_integer()) return true;
      if (!v.is_number_float()) return false;
      const double d = v.template get<double>();
      return std::isfinite(d) && std::floor(d) == d;
    }
    return false;
  }

  const Json* resolve(const std::string& ref, const std::string& path) {
    const std::string prefix = "#/$defs/";
    if (ref.rfind(prefix, 0) != 0) {
      fail(path, "schema error: unsupported $ref '" + ref + "' (only #/$defs/NAME)");
      return nullptr;
    }
    const std::string name = ref.substr(prefix.size());
    if (!root_.contains("$defs") || !root_["$defs"].contains(name)) {
      fail(path, "schema error: $ref '" + ref + "' does not resolve");
      return nullptr;
    }
    return &root_["$defs"][name];
  }

  void check(const Json& schema, const Json& v, const std::string& path, int depth) {
    if (depth > kMaxDepth) {
      fail(path,
           "schema error: nesting deeper than " + std::to_string(kMaxDepth) + " ($ref cycle?)");
      return;
    }
    if (schema.is_boolean()) {
      if (!schema.template get<bool>()) fail(path, "no value is allowed here (schema false)");
      return;
    }
    if (!schema.is_object()) {
      fail(path, "schema error: a schema must be an object or a boolean");
      return;
    }
    static const std::set<std::string> kKnown = {
        "$schema",    "$id",         "$defs",
        "title",      "description", "type",
        "properties", "required",    "additionalProperties",
        "items",      "enum",        "const",
        "minimum",    "maximum",     "$ref",
        "minItems",   "maxItems"};
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (kKnown.count(it.key()) == 0)
        fail(path, "schema error: unsupported keyword '" + it.key() + "'");
    }

    if (schema.contains("$ref")) {
      if (const Json* target = resolve(schema["$ref"].template get<std::string>(), path)) {
        check(*target, v, path, depth + 1);
      }
    }
    if (schema.contains("type")) check_type(schema["type"], v, path);
    if (schema.contains("const") && !(schema["const"] == v)) {
      fail(path, "expected " + schema["const"].dump() + ", found " + v.dump());
    }
    if (schema.contains("enum")) {
      bool found = false;
      for (const Json& option : schema["enum"]) found = found || option == v;
      if (!found) fail(path, v.dump() + " is not one of " + schema["enum"].dump());
    }
    if (v.is_number()) {
      const double d = v.template get<double>();
      if (schema.contains("minimum") && d < schema["minimum"].template get<double>()) {
        fail(path, v.dump() + " is below the minimum " + schema["minimum"].dump());
      }
      if (schema.contains("maximum") && d > schema["maximum"].template get<double>()) {
        fail(path, v.dump() + " is above the maximum " + schema["maximum"].dump());
      }
    }
    if (v.is_object()) check_object(schema, v, path, depth);
    if (v.is_array() && schema.contains("minItems") &&
        v.size() < schema["minItems"].template get<std::size_t>()) {
      fail(path, "an array of " + std::to_string(v.size()) + " items, fewer than minItems " +
                     schema["minItems"].dump());
    }
    if (v.is_array() && schema.contains("maxItems") &&
        v.size() > schema["maxItems"].template get<std::size_t>()) {
      fail(path, "an array of " + std::to_string(v.size()) + " items, more than maxItems " +
                     schema["maxItems"].dump());
    }
    if (v.is_array() && schema.contains("items")) {
      for (std::size_t i = 0; i < v.size(); ++i) {
        check(schema["items"], v[i], path + "[" + std::to_string(i) + "]", depth + 1);
      }
    }
  }

  void check_type(const Json& type, const Json& v, const std::string& path) {
    bool ok = false;
    if (type.is_string()) {
      ok = has_type(v, type.template get<std::string>());
    } else {
      for (const Json& t : type) ok = ok || has_type(v, t.template get<std::string>());
    }
    if (!ok) fail(path, "expected type " + type.dump() + ", found " + type_of(v));
  }

  void check_object(const Json& schema, const Json& v, const std::string& path, int depth) {
    if (schema.contains("required")) {
      for (const Json& key : schema["required"]) {
        const std::string k = key.template get<std::string>();
        if (!v.contains(k)) fail(path, "missing required key '" + k + "'");
      }
    }
    const bool has_props = schema.contains("properties");
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string child = path + "." + it.key();
      if (has_props && schema["properties"].contains(it.key())) {
        check(schema["properties"][it.key()], it.value(), child, depth + 1);
      } else if (schema.contains("additionalProperties")) {
        const Json& extra = schema["additionalProperties"];
        if (extra.is_boolean() && !extra.template get<bool>()) {
          fail(child, "key not allowed (additionalProperties is false)");
        } else if (extra.is_object()) {
          check(extra, it.value(), child, depth + 1);
        }
      }
    }
  }

  const Json& root_;
  std::vector<std::string> errors_;
};

template <class Json>
std::vector<std::string> validate_schema(const Json& schema, const Json& instance) {
  return SchemaValidator<Json>(schema).validate(instance);
}

}  // namespace gradscope::testing
