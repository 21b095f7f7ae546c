// What the tensor readers (safetensors.cpp, npy.cpp, csv.cpp) share: the dtype table, reading a
// whole file, overflow-checked sizes, little-endian decoding and the wording of their messages.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"

namespace gradscope::tensor_io_detail {

// One row per DType, in enum order: adding a dtype without a row fails the static_assert.
struct DTypeInfo {
  DType dtype;
  std::string_view name;  // the safetensors spelling
  std::size_t itemsize;   // bytes per element
};
inline constexpr std::array<DTypeInfo, 6> kDTypes{{
    {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8},
    {DType::kI32, "I32", 4},
}};
static_assert(static_cast<std::size_t>(DType::kI32) + 1 == kDTypes.size(),
              "every DType needs a row in kDTypes");

constexpr const DTypeInfo& dtype_info(DType dtype) {
  return kDTypes[static_cast<std::size_t>(dtype)];
}

// a * b, or nothing when it does not fit in 64 bits.
constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

// The number of elements of `shape`, or nothing when it overflows. A zero anywhere makes the
// product zero whatever the other dimensions are, so it is looked for first.
inline std::optional<std::uint64_t> element_count(std::span<const std::uint64_t> shape) {
  for (const std::uint64_t d : shape) {
    if (d == 0) return std::uint64_t{0};
  }
  std::uint64_t count = 1;
  for (const std::uint64_t d : shape) {
    const std::optional<std::uint64_t> next = checked_mul(count, d);
    if (!next) return std::nullopt;
    count = *next;
  }
  return count;
}

// Unsigned little-endian integer of `n` bytes at `p`, whatever the machine's byte order.
inline std::uint64_t load_le(const char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

inline void store_le(std::string& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffU));
}

// IEEE binary16: sign, 5 exponent bits (bias 15), 10 mantissa bits. Each case is exact in double.
inline double f16_to_double(std::uint16_t bits) {
  const unsigned exponent = (bits >> 10) & 0x1fU;
  const unsigned mantissa = bits & 0x3ffU;
  double magnitude = 0.0;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<double>(mantissa), -24);  // subnormal: m * 2^-24
  } else if (exponent == 0x1f) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else {
    // (1 + m / 2^10) * 2^(e - 15)
    magnitude = std::ldexp(static_cast<double>(mantissa + 0x400U), static_cast<int>(exponent) - 25);
  }
  return (bits & 0x8000U) != 0 ? -magnitude : magnitude;
}

// bfloat16 is the upper half of a binary32.
inline double bf16_to_double(std::uint16_t bits) {
  return static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16));
}

inline double f32_to_double(std::uint32_t bits) {
  return static_cast<double>(std::bit_cast<float>(bits));
}

inline double f64_to_double(std::uint64_t bits) { return std::bit_cast<double>(bits); }

// The index of the first NaN or Inf, in row-major order.
inline std::optional<std::size_t> first_non_finite(std::span<const double> values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return i;
  }
  return std::nullopt;
}

inline std::string non_finite_word(double v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

// The shortest text that reads back as `v` ("0.1", "1e+300").
inline std::string number_text(double v) {
  std::array<char, 32> buffer{};
  const std::to_chars_result r = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
  return std::string(buffer.data(), r.ptr);
}

// "(256, 64)"; a 1-D shape reads "(7,)" as in NumPy, so that it is never taken for a scalar.
template <typename Int>
std::string shape_text(std::span<const Int> shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";
  return text + ")";
}

// The multi-index "[1, 2]" of row-major element `flat` of `shape`.
inline std::string index_text(std::size_t flat, std::span<const std::int64_t> shape) {
  std::vector<std::uint64_t> index(shape.size(), 0);
  std::uint64_t rest = flat;
  for (std::size_t k = shape.size(); k-- > 0;) {
    const auto extent = static_cast<std::uint64_t>(shape[k]);
    index[k] = rest % extent;
    rest /= extent;
  }
  std::string text = "[";
  for (std::size_t k = 0; k < index.size(); ++k) {
    if (k > 0) text += ", ";
    text += std::to_string(index[k]);
  }
  return text + "]";
}

// A name or field from a file, double-quoted for a message: control characters and quotes are
// escaped and anything past 60 bytes cut, so that a hostile name cannot garble the terminal.
inline std::string in_quotes(std::string_view text) {
  constexpr std::size_t kMaxShown = 60;
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      constexpr std::string_view kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xfU];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  return out + "\"";
}

// The name a tensor read from a single-tensor file gets: the file name without its extension.
inline std::string name_from_source(const std::string& source) {
  return std::filesystem::path(source).stem().string();
}

// The size of the regular file at `path`; /dev/zero, pipes and directories are refused, since
// their size says nothing about what reading them gives.
inline std::uintmax_t regular_file_size(const std::string& path, std::string_view kind) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) {
    throw Error(path + ": no such file", "check the path of the " + std::string(kind));
  }
  if (ec) throw Error(path + ": cannot be read: " + ec.message(), "check its permissions");
  if (fs::is_directory(status)) {
    throw Error(path + ": is a directory, not a " + std::string(kind), "give the file's path");
  }
  if (!fs::is_regular_file(status)) {
    throw Error(path + ": not a regular file (a device or a pipe?)",
                "save the " + std::string(kind) + " to a file and give its path");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error(path + ": cannot be read: " + ec.message(), "check its permissions");
  return size;
}

// The first min(n, file size) bytes of a regular file: what a reader checks a header with before
// it reads, and allocates for, the rest.
inline std::string read_file_prefix(const std::string& path, std::uintmax_t n,
                                    std::string_view kind) {
  const std::uintmax_t size = regular_file_size(path, kind);
  const auto count = static_cast<std::size_t>(std::min(n, size));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot be opened", "check its permissions");
  std::string bytes(count, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(count));
  if (static_cast<std::size_t>(in.gcount()) != count) {
    throw Error(path + ": changed size while being read",
                "read it again once whatever writes it has finished");
  }
  return bytes;
}

// The whole of a regular file. Its size comes from the file system, so the one allocation is
// exactly as large as the file.
inline std::string read_file_bytes(const std::string& path, std::string_view kind) {
  const std::uintmax_t size = regular_file_size(path, kind);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot be opened", "check its permissions");
  std::string bytes;
  try {
    bytes.resize(static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    throw Error(path + ": " + std::to_string(size) + " bytes do not fit in memory",
                "free memory or use a smaller file");
  } catch (const std::length_error&) {
    throw Error(path + ": " + std::to_string(size) + " bytes do not fit in memory",
                "free memory or use a smaller file");
  }
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  const bool short_read = static_cast<std::uintmax_t>(in.gcount()) != size;
  if (short_read || in.peek() != std::ifstream::traits_type::eof()) {
    throw Error(path + ": changed size while being read",
                "read it again once whatever writes it has finished");
  }
  return bytes;
}

}  // namespace gradscope::tensor_io_detail
