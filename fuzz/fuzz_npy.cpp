// libFuzzer target for parse_npy: any bytes either give a 1-D or 2-D tensor of finite values that
// are the file's last bytes read in C or Fortran order, or a gradscope::Error.
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"

namespace {

using gradscope_fuzz::require;

// Element k of the data, decoded independently of the reader (little-endian, as accepted).
double stored(std::string_view data, gradscope::DType dtype, std::size_t k) {
  if (dtype == gradscope::DType::kF32) {
    std::uint32_t bits = 0;
    for (std::size_t b = 0; b < 4; ++b) {
      bits |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[4 * k + b])) << (8 * b);
    }
    return static_cast<double>(std::bit_cast<float>(bits));
  }
  std::uint64_t bits = 0;
  for (std::size_t b = 0; b < 8; ++b) {
    bits |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[8 * k + b])) << (8 * b);
  }
  return std::bit_cast<double>(bits);
}

bool same(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const gradscope_fuzz::AllocationLimit limit(size);
  gradscope::Tensor t;
  try {
    t = gradscope::parse_npy(bytes, "dir/fuzz.npy");
  } catch (const gradscope::Error&) {
    return 0;  // the expected answer to bad bytes
  }

  require(t.name == "fuzz", "the name is not the file name without its extension");
  require(t.dtype == gradscope::DType::kF32 || t.dtype == gradscope::DType::kF64,
          "a dtype other than float32 or float64");
  require(t.shape.size() >= 1 && t.shape.size() <= 3, "neither 1-D, 2-D nor 3-D");
  for (const std::int64_t d : t.shape) require(d >= 0, "a negative dimension");
  const auto rows = static_cast<std::size_t>(t.shape[0]);
  const auto n1 = t.shape.size() >= 2 ? static_cast<std::size_t>(t.shape[1]) : std::size_t{1};
  const auto n2 = t.shape.size() == 3 ? static_cast<std::size_t>(t.shape[2]) : std::size_t{1};
  // C order: (rows, cols), a 3-D array's last two together. Their product may overflow only
  // beside a zero first dimension, where there is nothing to compare.
  std::size_t cols = 0;
  if (__builtin_mul_overflow(n1, n2, &cols)) {
    require(rows == 0 && t.values.empty(), "a shape that overflows holds values");
    return 0;
  }
  require(cols == 0 || rows <= t.values.size() / cols, "fewer values than the shape holds");
  require(t.values.size() == rows * cols, "values do not match the shape");
  for (const double v : t.values) require(std::isfinite(v), "a NaN or Inf was returned");

  // Trailing bytes are refused, so the data is exactly the file's last bytes.
  const std::size_t itemsize = t.dtype == gradscope::DType::kF32 ? 4 : 8;
  require(t.values.size() <= size / itemsize, "more values than bytes");
  const std::string_view stored_data = bytes.substr(size - t.values.size() * itemsize);
  bool c_order = true;
  bool fortran_order = true;
  // Over the values, not the shape: (10^13, 0) holds none.
  for (std::size_t k = 0; k < t.values.size(); ++k) {
    // C index k = (i0 n1 + i1) n2 + i2; Fortran stores it at i0 + n0 (i1 + n1 i2).
    const std::size_t i0 = k / cols;
    const std::size_t i1 = (k % cols) / n2;
    const std::size_t i2 = k % n2;
    c_order = c_order && same(t.values[k], stored(stored_data, t.dtype, k));
    fortran_order = fortran_order &&
                    same(t.values[k], stored(stored_data, t.dtype, i0 + rows * (i1 + n1 * i2)));
  }
  require(c_order || fortran_order, "the values are not the data in C or in Fortran order");
  return 0;
}
