// Reads NumPy .npy files (numpy.save): float32 or float64, 1-D or 2-D, C or Fortran order. The
// header, a Python dict literal, is read by a small strict parser; nothing is evaluated.
#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "io/tensor_io_detail.hpp"

namespace gradscope {
namespace {

namespace detail = tensor_io_detail;
using detail::in_quotes;

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kMaxDims = 64;
// numpy writes headers of a few hundred bytes and by default refuses to read one over 10,000
// (numpy.load's max_header_size); 1 MiB keeps a lying length from being read as a header.
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{1} << 20;
// The magic string, the version and a u32 header length: enough to find where the header ends.
constexpr std::size_t kPreambleBytes = 12;
constexpr std::string_view kHeaderExample =
    "numpy.save writes a header like {'descr': '<f4', 'fortran_order': False, "
    "'shape': (256, 64), }; save the array again with numpy.save(path, x)";
constexpr std::string_view kConvertHint =
    "convert it first: numpy.save(path, numpy.ascontiguousarray(x, dtype='<f4'))";

[[noreturn]] void fail(const std::string& source, const std::string& what,
                       std::string_view hint = kHeaderExample) {
  throw Error(source + ": " + what, std::string(hint));
}

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;
};

// The header dict as numpy writes it: {'descr': ..., 'fortran_order': ..., 'shape': (...), }
// with each key exactly once, in any order, and spaces or a newline after it. Strings are
// single- or double-quoted without escapes; integers may carry Python 2's 'L' suffix.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  NpyHeader parse() {
    NpyHeader header;
    bool seen_descr = false;
    bool seen_order = false;
    bool seen_shape = false;
    skip_spaces();
    expect('{', "the header must be a dict {...}");
    skip_spaces();
    while (!at('}')) {
      const std::size_t key_pos = pos_;
      const std::string key = parse_string("a key");
      skip_spaces();
      expect(':', "':' after the key");
      skip_spaces();
      bool* seen = nullptr;
      if (key == "descr") {
        seen = &seen_descr;
        if (at('[')) {
          fail(
              "'descr' is a list: a structured (record) dtype; gradscope reads plain float32 or "
              "float64 arrays");
        }
        header.descr = parse_string("the dtype string of 'descr'");
      } else if (key == "fortran_order") {
        seen = &seen_order;
        header.fortran_order = parse_bool();
      } else if (key == "shape") {
        seen = &seen_shape;
        header.shape = parse_tuple();
      } else {
        pos_ = key_pos;
        fail("unknown key " + in_quotes(key) +
             " (a .npy header has 'descr', 'fortran_order' and "
             "'shape')");
      }
      if (*seen) {
        pos_ = key_pos;
        fail("key " + in_quotes(key) + " appears twice");
      }
      *seen = true;
      skip_spaces();
      if (!at(',')) break;
      ++pos_;
      skip_spaces();
    }
    expect('}', "',' or '}'");
    skip_spaces();
    if (pos_ != text_.size()) fail("unexpected text after the dict");
    if (!seen_descr) fail("no 'descr' key (the dtype)");
    if (!seen_order) fail("no 'fortran_order' key");
    if (!seen_shape) fail("no 'shape' key");
    return header;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    gradscope::fail(source_, ".npy header, byte " + std::to_string(pos_) + ": " + what);
  }

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  // numpy pads the header with spaces and ends it with a newline.
  void skip_spaces() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  void expect(char c, std::string_view what) {
    if (!at(c)) fail("expected " + std::string(what) + ", found " + found());
    ++pos_;
  }

  std::string found() const {
    if (pos_ >= text_.size()) return "the end of the header";
    return in_quotes(text_.substr(pos_, 1));
  }

  std::string parse_string(std::string_view what) {
    if (!at('\'') && !at('"')) fail("expected " + std::string(what) + ", found " + found());
    const char quote = text_[pos_++];
    const std::size_t begin = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') fail("escape sequences are not part of a .npy header");
      if (text_[pos_] == '\n') break;
      ++pos_;
    }
    if (!at(quote)) fail("unterminated string");
    return std::string(text_.substr(begin, pos_++ - begin));
  }

  bool parse_bool() {
    for (const auto& [word, value] :
         {std::pair{std::string_view("True"), true}, std::pair{std::string_view("False"), false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    fail("'fortran_order' must be True or False, found " + found());
  }

  std::uint64_t parse_integer() {
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') {
      fail("expected a non-negative integer in 'shape', found " + found());
    }
    std::uint64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const auto digit = static_cast<std::uint64_t>(text_[pos_] - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
        fail("a dimension in 'shape' does not fit in 64 bits");
      }
      v = v * 10 + digit;
      ++pos_;
    }
    if (at('L')) ++pos_;
    return v;
  }

  // (), (7,), (256, 64), with an optional trailing comma after the last dimension. "(7)" is the
  // number 7 in Python, not a tuple, so it is refused as numpy would.
  std::vector<std::uint64_t> parse_tuple() {
    expect('(', "a tuple '(...)' for 'shape'");
    std::vector<std::uint64_t> dims;
    bool trailing_comma = false;
    skip_spaces();
    while (!at(')')) {
      // The cap is far above the 2 dimensions gradscope reads, so a 3-D array still gets its own
      // message, yet a header listing a million dimensions cannot make `dims` outgrow the file.
      if (dims.size() == kMaxDims) {
        fail("'shape' has more than " + std::to_string(kMaxDims) + " dimensions");
      }
      dims.push_back(parse_integer());
      skip_spaces();
      trailing_comma = at(',');
      if (!trailing_comma) break;
      ++pos_;
      skip_spaces();
    }
    if (dims.size() == 1 && !trailing_comma && at(')')) {
      fail("'shape' (" + std::to_string(dims[0]) + ") is a number, not a tuple; a 1-D shape is (" +
           std::to_string(dims[0]) + ",)");
    }
    expect(')', "',' or ')' in 'shape'");
    return dims;
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

// What a dtype string means, for messages about the ones gradscope refuses.
std::string describe(std::string_view descr) {
  const std::string_view type =
      descr.empty() || std::string_view("<>=|").find(descr[0]) == std::string_view::npos
          ? descr
          : descr.substr(1);
  if (type.empty()) return "an empty dtype";
  const std::string_view size = type.substr(1);
  const auto bits = [&] {
    std::uint64_t n = 0;
    for (const char c : size) {
      if (c < '0' || c > '9' || n > 1000) return std::string();
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return std::to_string(n * 8);
  };
  switch (type[0]) {
    case 'f':
      return "float" + bits();
    case 'i':
      return "int" + bits();
    case 'u':
      return "uint" + bits();
    case 'c':
      return "complex" + bits();
    case 'b':
    case '?':
      return "bool";
    case 'U':
    case 'S':
    case 'a':
      return "strings";
    case 'M':
    case 'm':
      return "dates or times";
    case 'V':
      return "raw bytes (void)";
    default:
      return "an unknown dtype";
  }
}

// Accepts exactly float32 and float64 in the machine's byte order when that is little-endian;
// everything else is an error saying what it is and how to convert it.
DType dtype_of(std::string_view descr, const std::string& source) {
  constexpr bool kLittle = std::endian::native == std::endian::little;
  if (descr == "<f4" || (kLittle && (descr == "=f4" || descr == "f4"))) return DType::kF32;
  if (descr == "<f8" || (kLittle && (descr == "=f8" || descr == "f8"))) return DType::kF64;
  if (descr == ">f4" || descr == ">f8" ||
      (!kLittle && (descr == "=f4" || descr == "=f8" || descr == "f4" || descr == "f8"))) {
    fail(source, "dtype " + in_quotes(descr) + " is big-endian; gradscope reads little-endian data",
         "save with numpy.ascontiguousarray(x, dtype='<f4')");
  }
  if (descr.find('O') != std::string_view::npos) {
    fail(source,
         "dtype " + in_quotes(descr) +
             " is an object array (Python objects, stored as a pickle); gradscope reads numbers "
             "only and never unpickles",
         kConvertHint);
  }
  fail(source,
       "dtype " + in_quotes(descr) + " (" + describe(descr) +
           ") is not supported; gradscope reads float32 or float64 ('<f4' or '<f8')",
       kConvertHint);
}

}  // namespace

// Here rather than in safetensors.cpp so that it is part of gradscope_core, like the DType table.
std::string_view dtype_name(DType dtype) { return tensor_io_detail::dtype_info(dtype).name; }

namespace {

// What a .npy file's preamble and header say, checked against the whole file's size.
struct NpyLayout {
  Tensor tensor;  // name, dtype and shape; no values yet
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;
  std::size_t data_begin = 0;  // bytes before the data
  std::size_t count = 0;       // elements; the data is exactly count * itemsize bytes
};

// Where the header ends, when the preamble at the start of `head` is complete and known.
std::optional<std::uint64_t> header_end(std::string_view head) {
  if (head.size() < kMagic.size() + 4 || head.substr(0, kMagic.size()) != kMagic) return {};
  const auto major = static_cast<unsigned char>(head[6]);
  const std::size_t length_bytes = major == 1 ? 2 : (major == 2 || major == 3 ? 4 : 0);
  if (length_bytes == 0 || head.size() < kMagic.size() + 2 + length_bytes) return {};
  return kMagic.size() + 2 + length_bytes + detail::load_le(head.data() + 8, length_bytes);
}

// Checks everything but the values. `head` is the file's first bytes: all of them, or at least
// min(file_size, kPreambleBytes) and, when the header fits in the file, through its end. Why this
// is long: every field of a stranger's header is checked in the order the format defines it.
NpyLayout read_layout(std::string_view head, std::uint64_t file_size, const std::string& source) {
  if (file_size < kMagic.size() && kMagic.starts_with(head)) {
    fail(source, head.empty() ? "empty file" : "truncated in the .npy magic string",
         "save the array with numpy.save(path, x)");
  }
  if (head.substr(0, kMagic.size()) != kMagic) {
    if (head.substr(0, 2) == "PK") {
      fail(source, "a .npz archive (a zip of .npy files), not a .npy file",
           "take one array out of it: numpy.save('x.npy', numpy.load(path)['name'])");
    }
    fail(source, "not a .npy file (it does not start with \"\\x93NUMPY\")",
         "save the array with numpy.save(path, x)");
  }
  if (file_size < kMagic.size() + 2) fail(source, "truncated in the .npy preamble");
  const auto major = static_cast<unsigned char>(head[6]);
  const auto minor = static_cast<unsigned char>(head[7]);
  // Version 1 counts the header's bytes in a u16, versions 2 and 3 in a u32 (3: UTF-8 header).
  std::size_t length_bytes = 0;
  if (major == 1) {
    length_bytes = 2;
  } else if (major == 2 || major == 3) {
    length_bytes = 4;
  } else {
    fail(source,
         ".npy format version " + std::to_string(major) + "." + std::to_string(minor) +
             " is unknown; gradscope reads versions 1, 2 and 3",
         "save the array with numpy.save(path, x)");
  }
  const std::size_t header_begin = kMagic.size() + 2 + length_bytes;
  if (file_size < header_begin) fail(source, "truncated in the .npy preamble");
  const std::uint64_t header_size = detail::load_le(head.data() + 8, length_bytes);
  if (header_size > file_size - header_begin) {
    fail(source, "the .npy header length says " + std::to_string(header_size) +
                     " bytes, but only " + std::to_string(file_size - header_begin) +
                     " follow (truncated)");
  }
  if (header_size > kMaxHeaderBytes) {
    fail(source, "the .npy header length says " + std::to_string(header_size) +
                     " bytes; numpy writes a few hundred and reads at most 10,000");
  }
  if (head.size() < header_begin + header_size) {
    throw Error(source + ": read_layout was given too little of the file", {}, ExitCode::kInternal);
  }
  const std::string_view header_text = head.substr(header_begin, header_size);
  const std::uint64_t data_size = file_size - header_begin - header_size;

  const NpyHeader header = HeaderParser(header_text, source).parse();
  NpyLayout layout;
  Tensor& t = layout.tensor;
  t.name = detail::name_from_source(source);
  t.dtype = dtype_of(header.descr, source);
  const std::string shape = detail::shape_text<std::uint64_t>(header.shape);
  if (header.shape.empty()) {
    fail(source, "a 0-d array (a single number); gradscope reads 1-D or 2-D arrays",
         "save numpy.atleast_1d(x) or numpy.atleast_2d(x)");
  }
  if (header.shape.size() > 3) {
    fail(source,
         "a " + std::to_string(header.shape.size()) + "-D array of shape " + shape +
             "; gradscope reads 1-D, 2-D (examples, features) or 3-D (examples, tokens, "
             "features) arrays",
         "reshape it to (examples, features): numpy.save(path, x.reshape(x.shape[0], -1))");
  }
  for (const std::uint64_t d : header.shape) {
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(source, "shape " + shape + ": a dimension is larger than 2^63 - 1");
    }
    t.shape.push_back(static_cast<std::int64_t>(d));
  }
  const std::size_t itemsize = detail::dtype_info(t.dtype).itemsize;
  const std::optional<std::uint64_t> count = detail::element_count(header.shape);
  const std::optional<std::uint64_t> nbytes =
      count ? detail::checked_mul(*count, itemsize) : std::nullopt;
  const std::string type = t.dtype == DType::kF32 ? "float32" : "float64";
  if (!nbytes)
    fail(source, "shape " + shape + " of " + type + " holds more bytes than 64 bits count");
  if (data_size < *nbytes) {
    fail(source,
         "the data holds " + std::to_string(data_size) + " bytes, but shape " + shape + " of " +
             type + " needs " + std::to_string(*nbytes) + " (the file is truncated)",
         "save the array again with numpy.save(path, x)");
  }
  if (data_size > *nbytes) {
    fail(source,
         std::to_string(data_size - *nbytes) + " bytes follow the " + std::to_string(*nbytes) +
             " that shape " + shape + " of " + type + " needs",
         "the file is damaged or not a single array; save it again with numpy.save(path, x)");
  }
  layout.fortran_order = header.fortran_order;
  layout.shape = header.shape;
  layout.data_begin = static_cast<std::size_t>(header_begin + header_size);
  layout.count = static_cast<std::size_t>(*count);
  return layout;
}

}  // namespace

Tensor parse_npy(std::string_view bytes, const std::string& source) {
  NpyLayout layout = read_layout(bytes, bytes.size(), source);
  Tensor t = std::move(layout.tensor);
  const std::string_view data = bytes.substr(layout.data_begin);
  const std::size_t itemsize = detail::dtype_info(t.dtype).itemsize;
  // The data is now known to be exactly count * itemsize bytes of the file.
  const std::size_t n = layout.count;
  t.values.resize(n);
  // Fortran order stores the first index fastest: stored element k has index (i0, i1, i2) with
  // k = i0 + n0 (i1 + n1 i2), which C order places at (i0 n1 + i1) n2 + i2.
  const auto n0 = static_cast<std::size_t>(layout.shape[0]);
  const std::size_t n1 = layout.shape.size() >= 2 ? static_cast<std::size_t>(layout.shape[1]) : 1;
  const std::size_t n2 = layout.shape.size() >= 3 ? static_cast<std::size_t>(layout.shape[2]) : 1;
  for (std::size_t k = 0; k < n; ++k) {
    const char* p = data.data() + k * itemsize;
    const double v = t.dtype == DType::kF32
                         ? detail::f32_to_double(static_cast<std::uint32_t>(detail::load_le(p, 4)))
                         : detail::f64_to_double(detail::load_le(p, 8));
    const std::size_t i0 = k % n0;
    const std::size_t i1 = (k / n0) % n1;
    const std::size_t i2 = k / (n0 * n1);
    const std::size_t at = layout.fortran_order ? (i0 * n1 + i1) * n2 + i2 : k;
    t.values[at] = v;
  }
  if (const std::optional<std::size_t> bad = detail::first_non_finite(t.values)) {
    fail(source,
         "element " + std::to_string(*bad) + " (index " + detail::index_text(*bad, t.shape) +
             ") is " + detail::non_finite_word(t.values[*bad]),
         "gradscope needs finite inputs: replace them first, e.g. numpy.nan_to_num(x) or drop "
         "those rows");
  }
  return t;
}

Tensor read_npy(const std::string& path) {
  // The header first, checked against the file's size: a file that is not what it claims is
  // refused before its data is read or anything is allocated for it.
  const std::uintmax_t file_size = detail::regular_file_size(path, ".npy file");
  std::string head = detail::read_file_prefix(path, kPreambleBytes, ".npy file");
  if (const std::optional<std::uint64_t> end = header_end(head);
      end && *end <= file_size && *end <= kPreambleBytes + kMaxHeaderBytes) {
    head = detail::read_file_prefix(path, *end, ".npy file");
  }
  (void)read_layout(head, file_size, path);
  return parse_npy(detail::read_file_bytes(path, ".npy file"), path);
}

}  // namespace gradscope
