// libFuzzer target for parse_safetensors: any bytes either give tensors that keep the reader's
// promises (and survive a write and a second read unchanged) or a gradscope::Error.
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"

namespace {

using gradscope_fuzz::require;

void check_tensor(const gradscope::Tensor& t) {
  require(!t.name.empty() && t.name != "__metadata__", "a tensor has an empty or reserved name");
  // The element count, computed apart from the reader: zero if any dimension is, else a product
  // that must fit in 64 bits (1 for a scalar's empty shape).
  bool has_zero = false;
  for (const std::int64_t d : t.shape) {
    require(d >= 0, "a negative dimension");
    has_zero = has_zero || d == 0;
  }
  std::uint64_t count = has_zero ? 0 : 1;
  for (std::size_t k = 0; k < t.shape.size() && !has_zero; ++k) {
    const auto d = static_cast<std::uint64_t>(t.shape[k]);
    require(count <= std::numeric_limits<std::uint64_t>::max() / d,
            "a shape whose element count does not fit in 64 bits");
    count *= d;
  }
  require(t.values.size() == count, "values do not match the shape");
  for (const double v : t.values) require(std::isfinite(v), "a NaN or Inf was returned");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const gradscope_fuzz::AllocationLimit limit(size);
  std::vector<gradscope::Tensor> tensors;
  try {
    tensors = gradscope::parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const gradscope::Error&) {
    return 0;  // the expected answer to bad bytes
  }

  std::set<std::string> names;
  for (const gradscope::Tensor& t : tensors) {
    check_tensor(t);
    require(names.insert(t.name).second, "two tensors share a name");
  }

  // Every stored dtype converts exactly to double, so F64 must carry the values through unchanged.
  std::vector<gradscope::Tensor> again;
  try {
    again = gradscope::parse_safetensors(
        gradscope::safetensors_bytes(tensors, gradscope::DType::kF64), "round-trip.safetensors");
  } catch (const gradscope::Error& e) {
    gradscope_fuzz::broken(std::string("tensors it accepted do not write and read back: ") +
                           e.what());
  }
  require(again.size() == tensors.size(), "the round trip changed the number of tensors");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    require(again[i].name == tensors[i].name, "the round trip changed a name or the order");
    require(again[i].shape == tensors[i].shape, "the round trip changed a shape");
    require(again[i].values.size() == tensors[i].values.size(), "the round trip lost values");
    for (std::size_t k = 0; k < tensors[i].values.size(); ++k) {
      require(std::bit_cast<std::uint64_t>(again[i].values[k]) ==
                  std::bit_cast<std::uint64_t>(tensors[i].values[k]),
              "the round trip changed a value");
    }
  }
  return 0;
}
