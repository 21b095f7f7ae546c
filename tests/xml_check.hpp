// A small XML well-formedness checker for the SVG tests: balanced tags, quoted and unique
// attributes, valid entity and character references, legal characters, one root element. It also
// returns the element tree (references decoded), so tests can read the data-* attributes back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope::testing {

struct XmlElement {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;  // in document order, decoded
  std::vector<XmlElement> children;
  std::string text;  // all character data inside, descendants' included, in document order

  const std::string* attribute(std::string_view key) const {
    for (const auto& [k, v] : attributes) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  // The attribute's value, or "" when absent.
  std::string get(std::string_view key) const {
    const std::string* v = attribute(key);
    return v == nullptr ? std::string() : *v;
  }
  // Whether the class attribute lists `name` among its blank-separated words.
  bool has_class(std::string_view cls) const {
    const std::string* v = attribute("class");
    if (v == nullptr) return false;
    std::size_t i = 0;
    while (i < v->size()) {
      while (i < v->size() && (*v)[i] == ' ') ++i;
      std::size_t j = i;
      while (j < v->size() && (*v)[j] != ' ') ++j;
      if (std::string_view(*v).substr(i, j - i) == cls) return true;
      i = j;
    }
    return false;
  }
  // Every descendant (not this element) for which `match` holds, in document order.
  std::vector<const XmlElement*> find_all(
      const std::function<bool(const XmlElement&)>& match) const {
    std::vector<const XmlElement*> out;
    collect(match, out);
    return out;
  }
  std::vector<const XmlElement*> find_all(std::string_view tag, std::string_view cls = {}) const {
    return find_all(
        [&](const XmlElement& e) { return e.name == tag && (cls.empty() || e.has_class(cls)); });
  }

 private:
  void collect(const std::function<bool(const XmlElement&)>& match,
               std::vector<const XmlElement*>& out) const {
    for (const XmlElement& c : children) {
      if (match(c)) out.push_back(&c);
      c.collect(match, out);
    }
  }
};

struct XmlDocument {
  std::vector<std::string> errors;  // empty when well-formed
  XmlElement root;
};

namespace xml_detail {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  XmlDocument parse() {
    XmlDocument doc;
    check_characters();
    if (!errors_.empty()) {
      doc.errors = errors_;
      return doc;
    }
    skip_misc();
    if (at_end() || peek() != '<') {
      fail("expected the root element");
    } else {
      doc.root = element(0);
      skip_misc();
      if (ok() && !at_end()) {
        fail(peek() == '<' ? "a second root element" : "content after the root element");
      }
    }
    doc.errors = errors_;
    return doc;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
  std::vector<std::string> errors_;

  bool ok() const { return errors_.empty(); }
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return s_[i_]; }
  bool starts(std::string_view t) const { return s_.substr(i_, t.size()) == t; }
  void fail(const std::string& what) {
    if (errors_.empty()) errors_.push_back("at byte " + std::to_string(i_) + ": " + what);
  }

  // XML 1.0 allows no control character but tab, newline and carriage return.
  void check_characters() {
    for (std::size_t k = 0; k < s_.size(); ++k) {
      const auto u = static_cast<unsigned char>(s_[k]);
      if (u < 0x20 && u != '\t' && u != '\n' && u != '\r') {
        i_ = k;
        fail("control character " + std::to_string(u));
        return;
      }
    }
  }

  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  static bool name_start(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || u >= 0x80;
  }
  static bool name_char(char c) {
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
  }

  void skip_space() {
    while (!at_end() && is_space(peek())) ++i_;
  }

  std::string name() {
    if (at_end() || !name_start(peek())) {
      fail("expected a name");
      return {};
    }
    const std::size_t start = i_;
    while (!at_end() && name_char(peek())) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }

  // Comments, processing instructions and blanks, as allowed around the root.
  void skip_misc() {
    while (ok()) {
      skip_space();
      if (starts("<!--")) {
        comment();
      } else if (starts("<?")) {
        processing_instruction();
      } else {
        return;
      }
    }
  }

  void comment() {
    i_ += 4;
    const std::size_t end = s_.find("--", i_);
    if (end == std::string_view::npos || end + 2 >= s_.size() || s_[end + 2] != '>') {
      fail("a comment holds '--' or is not closed");
      return;
    }
    i_ = end + 3;
  }

  void processing_instruction() {
    const std::size_t end = s_.find("?>", i_ + 2);
    if (end == std::string_view::npos) {
      fail("a processing instruction is not closed");
      return;
    }
    i_ = end + 2;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // At '&': one of the five predefined entities or a character reference, decoded into `out`.
  void reference(std::string& out) {
    const std::size_t semi = s_.find(';', i_);
    if (semi == std::string_view::npos || semi - i_ > 12) {
      fail("'&' that starts no reference");
      return;
    }
    const std::string_view body = s_.substr(i_ + 1, semi - i_ - 1);
    if (body == "amp") {
      out += '&';
    } else if (body == "lt") {
      out += '<';
    } else if (body == "gt") {
      out += '>';
    } else if (body == "quot") {
      out += '"';
    } else if (body == "apos") {
      out += '\'';
    } else if (body.size() >= 2 && body[0] == '#') {
      const bool hex = body[1] == 'x';
      const std::string_view digits = body.substr(hex ? 2 : 1);
      if (digits.empty()) {
        fail("an empty character reference");
        return;
      }
      std::uint32_t cp = 0;
      for (const char c : digits) {
        std::uint32_t d = 0;
        if (c >= '0' && c <= '9') {
          d = static_cast<std::uint32_t>(c - '0');
        } else if (hex && c >= 'a' && c <= 'f') {
          d = static_cast<std::uint32_t>(c - 'a' + 10);
        } else if (hex && c >= 'A' && c <= 'F') {
          d = static_cast<std::uint32_t>(c - 'A' + 10);
        } else {
          fail("a bad digit in a character reference");
          return;
        }
        cp = cp * (hex ? 16u : 10u) + d;
        if (cp > 0x10FFFF) break;
      }
      const bool legal = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
      if (!legal) {
        fail("a character reference to an illegal character");
        return;
      }
      append_utf8(out, cp);
    } else {
      fail("unknown entity '&" + std::string(body) + ";'");
      return;
    }
    i_ = semi + 1;
  }

  void attributes(XmlElement& e) {
    while (ok()) {
      const std::size_t before = i_;
      skip_space();
      if (at_end()) {
        fail("a start tag is not closed");
        return;
      }
      if (peek() == '>' || starts("/>")) return;
      if (i_ == before) {
        fail("attributes must be separated by blanks");
        return;
      }
      std::string key = name();
      if (!ok()) return;
      skip_space();
      if (at_end() || peek() != '=') {
        fail("attribute '" + key + "' has no '='");
        return;
      }
      ++i_;
      skip_space();
      if (at_end() || (peek() != '"' && peek() != '\'')) {
        fail("attribute '" + key + "' is not quoted");
        return;
      }
      const char quote = peek();
      ++i_;
      std::string value;
      while (ok()) {
        if (at_end()) {
          fail("attribute '" + key + "' is not closed");
          return;
        }
        const char c = peek();
        if (c == quote) {
          ++i_;
          break;
        }
        if (c == '<') {
          fail("'<' in the value of attribute '" + key + "'");
          return;
        }
        if (c == '&') {
          reference(value);
        } else {
          value += c;
          ++i_;
        }
      }
      if (e.attribute(key) != nullptr) {
        fail("attribute '" + key + "' given twice");
        return;
      }
      e.attributes.emplace_back(std::move(key), std::move(value));
    }
  }

  XmlElement element(int depth) {
    XmlElement e;
    if (depth > 200) {
      fail("elements nested deeper than 200");
      return e;
    }
    ++i_;  // '<'
    e.name = name();
    attributes(e);
    if (!ok()) return e;
    if (starts("/>")) {
      i_ += 2;
      return e;
    }
    ++i_;  // '>'
    while (ok()) {
      if (at_end()) {
        fail("element <" + e.name + "> is not closed");
        return e;
      }
      if (starts("</")) {
        i_ += 2;
        const std::string closing = name();
        if (!ok()) return e;
        if (closing != e.name) {
          fail("</" + closing + "> closes <" + e.name + ">");
          return e;
        }
        skip_space();
        if (at_end() || peek() != '>') {
          fail("end tag </" + closing + "> is not closed");
          return e;
        }
        ++i_;
        return e;
      }
      if (starts("<!--")) {
        comment();
      } else if (starts("<![CDATA[")) {
        const std::size_t end = s_.find("]]>", i_);
        if (end == std::string_view::npos) {
          fail("a CDATA section is not closed");
          return e;
        }
        e.text += s_.substr(i_ + 9, end - i_ - 9);
        i_ = end + 3;
      } else if (starts("<?")) {
        processing_instruction();
      } else if (peek() == '<') {
        XmlElement child = element(depth + 1);
        e.text += child.text;
        e.children.push_back(std::move(child));
      } else if (peek() == '&') {
        reference(e.text);
      } else {
        if (starts("]]>")) {
          fail("']]>' in character data");
          return e;
        }
        e.text += peek();
        ++i_;
      }
    }
    return e;
  }
};

}  // namespace xml_detail

inline XmlDocument parse_xml(std::string_view text) { return xml_detail::Parser(text).parse(); }

// The well-formedness errors of `text` (empty when well-formed): the first one found, with its
// byte offset.
inline std::vector<std::string> xml_errors(std::string_view text) { return parse_xml(text).errors; }

}  // namespace gradscope::testing
