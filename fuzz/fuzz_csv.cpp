// libFuzzer target for read_csv: any bytes either give a (rows, columns) tensor of finite values
// or a gradscope::Error. read_csv takes a path, so each input is written to a private temp file.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_support.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/tensor_io.hpp"

namespace {

using gradscope_fuzz::require;

// One directory per fuzzing process, removed when it exits.
const std::filesystem::path& input_path() {
  static const std::filesystem::path path = [] {
    std::string dir =
        (std::filesystem::temp_directory_path() / "gradscope-fuzz-csv-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) gradscope_fuzz::broken("cannot create a temp directory");
    static std::string to_remove = dir;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(to_remove, ignored);
    });
    return std::filesystem::path(dir) / "fuzz.csv";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path& path = input_path();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    require(static_cast<bool>(out), "cannot write the temp file");
  }
  const gradscope_fuzz::AllocationLimit limit(size);
  gradscope::Tensor t;
  try {
    t = gradscope::read_csv(path.string());
  } catch (const gradscope::Error&) {
    return 0;  // the expected answer to bad bytes
  }

  require(t.name == "fuzz", "the name is not the file name without its extension");
  require(t.dtype == gradscope::DType::kF64, "a dtype other than F64");
  require(t.shape.size() == 2 && t.shape[0] > 0 && t.shape[1] > 0,
          "not (rows, columns) with at least one of each");
  const auto rows = static_cast<std::size_t>(t.shape[0]);
  const auto cols = static_cast<std::size_t>(t.shape[1]);
  require(rows <= t.values.size() / cols && t.values.size() == rows * cols,
          "values do not match the shape");
  // Each number takes at least one byte and one separator, but the last.
  require(t.values.size() <= size / 2 + 1, "more numbers than the text can hold");
  for (const double v : t.values) require(std::isfinite(v), "a NaN or Inf was returned");
  return 0;
}
