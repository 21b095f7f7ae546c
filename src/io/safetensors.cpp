// Reads and writes safetensors files (the format of safetensors.torch.save_file). The JSON half of
// tensor_io: it lives in gradscope_json because the header is parsed with nlohmann.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "io/tensor_io_detail.hpp"

namespace gradscope {
namespace {

namespace detail = tensor_io_detail;
using detail::in_quotes;
// nlohmann::json, not ordered_json: ordered_json finds keys by linear search, so a header of a
// million names would take hours. The order of the tensors is recorded while parsing instead.
using Json = nlohmann::json;

// The reference implementation's limit; a real header is a few hundred bytes per tensor.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::size_t kLengthBytes = 8;  // the u64 header length in front
// Root object -> tensor entry -> "shape" array: anything deeper is not a safetensors header.
constexpr std::size_t kMaxJsonDepth = 3;
// Arrays in a header are shapes and offset pairs. The cap keeps a header of a million zeros from
// growing into a parse tree many times the file's size (a JSON value takes 16 bytes).
constexpr std::size_t kMaxArrayLength = 64;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kDamagedHint =
    "the file is damaged or was not written by safetensors: save it again with "
    "safetensors.torch.save_file(model.state_dict(), path)";
constexpr std::string_view kNonFiniteHint =
    "gradscope measures weights as they are and cannot use a NaN or Inf: the checkpoint is "
    "damaged or its training diverged; check the model that saved it";

[[noreturn]] void fail(const std::string& source, const std::string& what,
                       std::string_view hint = kDamagedHint) {
  throw Error(source + ": " + what, std::string(hint));
}

std::string supported_list() {
  std::string list;
  for (const detail::DTypeInfo& info : detail::kDTypes) {
    if (!list.empty()) list += ", ";
    list += info.name;
  }
  return list;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const detail::DTypeInfo& info : detail::kDTypes) {
    if (info.name == name) return info.dtype;
  }
  return std::nullopt;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string json_reason(const std::string& what) {
  const std::size_t close = what.find("] ");
  return close == std::string::npos ? what : what.substr(close + 2);
}

// `j` as compact JSON text. Names come from the caller; one that is not UTF-8 cannot be written.
std::string json_text(const Json& j) {
  try {
    return j.dump();
  } catch (const Json::type_error&) {
    throw Error("cannot write safetensors: a tensor name or metadata entry is not valid UTF-8 (" +
                    in_quotes(j.get<std::string>()) + ")",
                {}, ExitCode::kInternal);
  }
}

struct Header {
  Json root;
  std::vector<std::string> order;  // the root object's keys as the file lists them
};

// A first pass over the header that builds nothing: it records the order of the root's keys and
// refuses duplicate keys (JSON allows them and nlohmann would keep the last, so a tensor could be
// described twice), nesting deeper than a header has, and arrays longer than a shape. A parser
// callback could do the same in one pass, but nlohmann's callback parser rescans the parent
// object after every child object, which is quadratic in the number of tensors.
class HeaderChecker final : public nlohmann::json_sax<Json> {
 public:
  explicit HeaderChecker(const std::string& source) : source_(source) {}
  std::vector<std::string> take_order() { return std::move(order_); }

  bool null() override { return element(); }
  bool boolean(bool /*value*/) override { return element(); }
  bool number_integer(number_integer_t /*value*/) override { return element(); }
  bool number_unsigned(number_unsigned_t /*value*/) override { return element(); }
  bool number_float(number_float_t /*value*/, const string_t& /*text*/) override {
    return element();
  }
  bool string(string_t& /*value*/) override { return element(); }
  bool binary(binary_t& /*value*/) override { return element(); }
  bool start_object(std::size_t /*elements*/) override { return open(true); }
  bool start_array(std::size_t /*elements*/) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& key) override {
    if (!frames_.back().keys.insert(key).second) {
      if (frames_.size() == 1) fail(source_, "header: tensor " + in_quotes(key) + " appears twice");
      fail(source_, where() + "key " + in_quotes(key) + " appears twice");
    }
    if (frames_.size() == 1) order_.push_back(key);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const Json::exception& e) override {
    fail(source_, "header: invalid JSON at byte " + std::to_string(position) +
                      " of the header: " + json_reason(e.what()));
  }

 private:
  struct Frame {
    std::set<std::string> keys;
    bool is_object = false;
    std::size_t length = 0;  // elements so far, in an array
  };

  std::string where() const {
    // order_ is empty when the root is an array rather than an object.
    if (frames_.size() < 2 || order_.empty()) return "header: ";
    if (order_.back() == kMetadataKey) return "header: __metadata__: ";
    return "header: tensor " + in_quotes(order_.back()) + ": ";
  }

  bool element() {
    if (frames_.empty() || frames_.back().is_object) return true;
    if (++frames_.back().length > kMaxArrayLength) {
      fail(source_, where() + "an array of more than " + std::to_string(kMaxArrayLength) +
                        " elements (no tensor has that many dimensions)");
    }
    return true;
  }

  bool open(bool is_object) {
    element();
    if (frames_.size() >= kMaxJsonDepth) {
      fail(source_, where() + "nested deeper than a safetensors header is");
    }
    frames_.push_back(Frame{{}, is_object, 0});
    return true;
  }

  bool close() {
    frames_.pop_back();
    return true;
  }

  const std::string& source_;
  std::vector<Frame> frames_;
  std::vector<std::string> order_;
};

Header parse_header(std::string_view text, const std::string& source) {
  HeaderChecker checker(source);
  Header header;
  try {
    Json::sax_parse(text.begin(), text.end(), &checker);
    header.order = checker.take_order();
    header.root = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    fail(source, "header: invalid JSON: " + json_reason(e.what()));
  }
  return header;
}

std::string kind_of(const Json& j) {
  if (j.is_object()) return "an object";
  if (j.is_array()) return "an array";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_null()) return "null";
  return "a number";
}

// A JSON number that is a non-negative integer; `what()` names it in messages (built only for
// one, since a header holds millions of these).
template <typename What>
std::uint64_t non_negative_integer(const Json& j, const std::string& source, const What& what) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer()) fail(source, what() + " is negative (" + j.dump() + ")");
  if (j.is_number_float()) {
    fail(source, what() + " is not an integer below 2^64 (" + j.dump() + ")");
  }
  fail(source, what() + " must be an integer, not " + kind_of(j));
}

// A tensor as its header entry describes it, validated on its own.
struct Entry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::uint64_t count = 0;  // elements
  std::uint64_t begin = 0;  // data_offsets, relative to the start of the data
  std::uint64_t end = 0;
};

Entry read_entry(const std::string& name, const Json& j, std::uint64_t data_size,
                 const std::string& source) {
  const std::string where = "tensor " + in_quotes(name);
  if (name.empty()) fail(source, "header: a tensor has an empty name");
  if (!j.is_object()) {
    fail(source, "header: " + where +
                     " must be an object {\"dtype\", \"shape\", \"data_offsets\"}, not " +
                     kind_of(j));
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail(source, "header: " + where + ": unknown key " + in_quotes(key) +
                       " (an entry has exactly \"dtype\", \"shape\" and \"data_offsets\")");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!j.contains(key)) fail(source, "header: " + where + ": no \"" + key + "\"");
  }

  Entry e;
  e.name = name;
  const Json& dtype = j.at("dtype");
  if (!dtype.is_string()) fail(source, where + ": dtype must be a string, not " + kind_of(dtype));
  const std::optional<DType> known = dtype_from_name(dtype.get<std::string>());
  if (!known) {
    throw Error(source + ": " + where + ": dtype " + in_quotes(dtype.get<std::string>()) +
                    " is not supported; gradscope reads " + supported_list(),
                "convert the weights to floating point before saving, e.g. "
                "save_file({k: v.float() for k, v in model.state_dict().items()}, path)");
  }
  e.dtype = *known;
  const std::size_t itemsize = detail::dtype_info(e.dtype).itemsize;

  const Json& shape = j.at("shape");
  if (!shape.is_array()) fail(source, where + ": shape must be an array, not " + kind_of(shape));
  std::vector<std::uint64_t> dims;
  dims.reserve(shape.size());
  for (std::size_t k = 0; k < shape.size(); ++k) {
    const std::uint64_t d = non_negative_integer(
        shape[k], source, [&] { return where + ": shape[" + std::to_string(k) + "]"; });
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(source, where + ": shape[" + std::to_string(k) + "] = " + std::to_string(d) +
                       " is larger than 2^63 - 1");
    }
    dims.push_back(d);
    e.shape.push_back(static_cast<std::int64_t>(d));
  }
  const std::optional<std::uint64_t> count = detail::element_count(dims);
  const std::optional<std::uint64_t> nbytes =
      count ? detail::checked_mul(*count, itemsize) : std::nullopt;
  if (!nbytes) {
    fail(source, where + ": shape " + detail::shape_text<std::uint64_t>(dims) + " of " +
                     std::string(detail::dtype_info(e.dtype).name) +
                     " holds more bytes than 64 bits can count");
  }
  e.count = *count;

  const Json& offsets = j.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(source, where + ": data_offsets must be an array [begin, end]");
  }
  e.begin = non_negative_integer(offsets[0], source, [&] { return where + ": data_offsets[0]"; });
  e.end = non_negative_integer(offsets[1], source, [&] { return where + ": data_offsets[1]"; });
  const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ")";
  if (e.begin > e.end) fail(source, where + ": data_offsets " + range + " end before they begin");
  if (e.end > data_size) {
    fail(source, where + ": data_offsets " + range + " reach past the end of the data (" +
                     std::to_string(data_size) + " bytes)");
  }
  if (e.end - e.begin != *nbytes) {
    fail(source, where + ": data_offsets " + range + " hold " + std::to_string(e.end - e.begin) +
                     " bytes, but shape " + detail::shape_text<std::uint64_t>(dims) + " of " +
                     std::string(detail::dtype_info(e.dtype).name) + " needs " +
                     std::to_string(*nbytes));
  }
  return e;
}

// "__metadata__": free-form string -> string pairs. gradscope does not use them, but a file whose
// metadata is not that is not a safetensors file.
void check_metadata(const Json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "header: __metadata__ must be an object, not " + kind_of(j));
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      fail(source,
           "header: __metadata__: " + in_quotes(key) + " must be a string, not " + kind_of(value));
    }
  }
}

// Like the reference implementation, the tensors must tile the data exactly: sorted by offset,
// each begins where the previous one ended and the last ends with the file. An overlap lets one
// region be read as two tensors; a hole or trailing bytes hide data no tensor accounts for.
void check_layout(const std::vector<Entry>& entries, std::uint64_t data_size,
                  const std::string& source) {
  std::vector<std::size_t> order(entries.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::pair(entries[a].begin, entries[a].end) <
           std::pair(entries[b].begin, entries[b].end);
  });
  std::uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const std::size_t i : order) {
    const Entry& e = entries[i];
    if (e.begin < covered) {
      fail(source, "tensors " + in_quotes(previous->name) + " (bytes [" +
                       std::to_string(previous->begin) + ", " + std::to_string(previous->end) +
                       ")) and " + in_quotes(e.name) + " (bytes [" + std::to_string(e.begin) +
                       ", " + std::to_string(e.end) + ")) overlap");
    }
    if (e.begin > covered) {
      fail(source, "data bytes [" + std::to_string(covered) + ", " + std::to_string(e.begin) +
                       ") belong to no tensor (the format allows no holes)");
    }
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size) {
    fail(source, "data bytes [" + std::to_string(covered) + ", " + std::to_string(data_size) +
                     ") after the last tensor belong to no tensor");
  }
}

std::vector<double> decode(const char* p, DType dtype, std::size_t count) {
  std::vector<double> values(count);
  switch (dtype) {
    case DType::kF32:
      for (std::size_t i = 0; i < count; ++i) {
        values[i] =
            detail::f32_to_double(static_cast<std::uint32_t>(detail::load_le(p + 4 * i, 4)));
      }
      break;
    case DType::kF64:
      for (std::size_t i = 0; i < count; ++i) {
        values[i] = detail::f64_to_double(detail::load_le(p + 8 * i, 8));
      }
      break;
    case DType::kF16:
      for (std::size_t i = 0; i < count; ++i) {
        values[i] =
            detail::f16_to_double(static_cast<std::uint16_t>(detail::load_le(p + 2 * i, 2)));
      }
      break;
    case DType::kBF16:
      for (std::size_t i = 0; i < count; ++i) {
        values[i] =
            detail::bf16_to_double(static_cast<std::uint16_t>(detail::load_le(p + 2 * i, 2)));
      }
      break;
    case DType::kI64:
      // Two's complement, little-endian; exact up to 2^53 (counters, not weights).
      for (std::size_t i = 0; i < count; ++i) {
        values[i] = static_cast<double>(static_cast<std::int64_t>(detail::load_le(p + 8 * i, 8)));
      }
      break;
    case DType::kI32:
      for (std::size_t i = 0; i < count; ++i) {
        values[i] = static_cast<double>(
            static_cast<std::int32_t>(static_cast<std::uint32_t>(detail::load_le(p + 4 * i, 4))));
      }
      break;
  }
  return values;
}

}  // namespace

std::vector<Tensor> parse_safetensors(std::string_view bytes, const std::string& source) {
  if (bytes.size() < kLengthBytes) {
    fail(source, "only " + std::to_string(bytes.size()) +
                     " bytes: too short for a safetensors file (it starts with an 8-byte header "
                     "length)");
  }
  const std::uint64_t header_size = detail::load_le(bytes.data(), kLengthBytes);
  const std::uint64_t after_length = bytes.size() - kLengthBytes;
  if (header_size > after_length) {
    fail(source, "the header length says " + std::to_string(header_size) + " bytes, but only " +
                     std::to_string(after_length) + " follow it (truncated or not safetensors)");
  }
  if (header_size > kMaxHeaderBytes) {
    fail(source, "the header length says " + std::to_string(header_size) +
                     " bytes, more than the 100 MB that safetensors allows");
  }
  const std::string_view header_text = bytes.substr(kLengthBytes, header_size);
  const std::string_view data = bytes.substr(kLengthBytes + header_size);

  const Header header = parse_header(header_text, source);
  if (!header.root.is_object()) {
    fail(source, "header: must be a JSON object {name: {dtype, shape, data_offsets}}, not " +
                     kind_of(header.root));
  }
  std::vector<Entry> entries;
  for (const std::string& key : header.order) {
    const Json& value = header.root.at(key);
    if (key == kMetadataKey) {
      check_metadata(value, source);
    } else {
      entries.push_back(read_entry(key, value, data.size(), source));
    }
  }
  check_layout(entries, data.size(), source);

  // Everything the header claims is now checked against the bytes present: the allocations
  // below hold at most data.size() / 2 values.
  std::vector<Tensor> tensors;
  tensors.reserve(entries.size());
  for (Entry& e : entries) {
    Tensor t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.values = decode(data.data() + e.begin, e.dtype, static_cast<std::size_t>(e.count));
    if (const std::optional<std::size_t> bad = detail::first_non_finite(t.values)) {
      fail(source,
           "tensor " + in_quotes(t.name) + ": element " + std::to_string(*bad) + " (index " +
               detail::index_text(*bad, t.shape) + ") is " +
               detail::non_finite_word(t.values[*bad]),
           kNonFiniteHint);
    }
    tensors.push_back(std::move(t));
  }
  return tensors;
}

std::vector<Tensor> read_safetensors(const std::string& path) {
  return parse_safetensors(detail::read_file_bytes(path, "safetensors file"), path);
}

std::string safetensors_bytes(const std::vector<Tensor>& tensors, DType dtype,
                              const std::vector<std::pair<std::string, std::string>>& metadata) {
  if (dtype != DType::kF32 && dtype != DType::kF64) {
    throw Error("safetensors_bytes writes F32 or F64, not " + std::string(dtype_name(dtype)), {},
                ExitCode::kInternal);
  }
  const std::size_t itemsize = detail::dtype_info(dtype).itemsize;

  // The header is written piece by piece in the order given; a set finds repeated names.
  std::string text = "{";
  if (!metadata.empty()) {
    std::set<std::string_view> keys;
    std::string meta;
    for (const auto& [key, value] : metadata) {
      if (!keys.insert(key).second) {
        throw Error("safetensors metadata: key " + in_quotes(key) + " given twice", {},
                    ExitCode::kInternal);
      }
      if (!meta.empty()) meta += ',';
      meta += json_text(Json(key));
      meta += ':';
      meta += json_text(Json(value));
    }
    text += json_text(Json(kMetadataKey)) + ":{" + meta + "}";
  }
  std::set<std::string_view> names;
  std::uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    const std::string where = "cannot write tensor " + in_quotes(t.name);
    if (t.name.empty()) {
      throw Error("cannot write a tensor with an empty name", {}, ExitCode::kInternal);
    }
    if (t.name == kMetadataKey) {
      throw Error(where + ": the name is reserved for the file's metadata", {},
                  ExitCode::kInternal);
    }
    if (!names.insert(t.name).second) {
      throw Error(where + ": the name is given twice", {}, ExitCode::kInternal);
    }
    std::vector<std::uint64_t> dims;
    for (const std::int64_t d : t.shape) {
      if (d < 0) throw Error(where + ": negative dimension in its shape", {}, ExitCode::kInternal);
      dims.push_back(static_cast<std::uint64_t>(d));
    }
    const std::optional<std::uint64_t> count = detail::element_count(dims);
    if (!count || *count != t.values.size()) {
      throw Error(where + ": shape " + detail::shape_text<std::int64_t>(t.shape) + " but " +
                      std::to_string(t.values.size()) + " values",
                  {}, ExitCode::kInternal);
    }
    // values.size() elements exist in memory, so neither product nor sum can overflow.
    const std::uint64_t end = offset + *count * itemsize;
    // Keys in the reference's order: dtype, shape, data_offsets.
    if (text.back() != '{') text += ',';
    text += json_text(Json(t.name));
    text += ":{\"dtype\":\"";
    text += dtype_name(dtype);
    text += "\",\"shape\":[";
    for (std::size_t k = 0; k < t.shape.size(); ++k) {
      if (k > 0) text += ',';
      text += std::to_string(t.shape[k]);
    }
    text += "],\"data_offsets\":[";
    text += std::to_string(offset);
    text += ',';
    text += std::to_string(end);
    text += "]}";
    offset = end;
  }
  text += "}";
  // Spaces pad the header so that the data starts at a multiple of 8, as the reference writes.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(kLengthBytes + text.size() + static_cast<std::size_t>(offset));
  detail::store_le(out, text.size(), kLengthBytes);
  out += text;
  for (const Tensor& t : tensors) {
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      const double v = t.values[i];
      const auto where = [&] {
        return "cannot write tensor " + in_quotes(t.name) + ": element " + std::to_string(i) +
               " (index " + detail::index_text(i, t.shape) + ")";
      };
      if (!std::isfinite(v)) {
        throw Error(where() + " is " + detail::non_finite_word(v),
                    "safetensors files gradscope writes hold finite values only");
      }
      if (dtype == DType::kF64) {
        detail::store_le(out, std::bit_cast<std::uint64_t>(v), 8);
      } else {
        const auto f = static_cast<float>(v);
        if (!std::isfinite(f)) {
          throw Error(where() + " = " + detail::number_text(v) + " does not fit in F32",
                      "write F64 instead");
        }
        detail::store_le(out, std::bit_cast<std::uint32_t>(f), 4);
      }
    }
  }
  return out;
}

}  // namespace gradscope
