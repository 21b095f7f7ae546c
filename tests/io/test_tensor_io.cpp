// Tests for reading and writing tensors: safetensors round trips and the reference layout, exact
// F16/BF16 decoding, .npy in both orders, dtypes and header versions, CSV, and every hostile file
// of tests/corpus giving an Error that names the file and the problem, without crashing and
// without allocating what a lying header claims.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/io/tensor_io.hpp"
#include "support/paths.hpp"

// ---------------------------------------------------------------------------------------------
// The largest single allocation while a scope is measuring: replacing the global operator new
// lets the tests check that a lying size is never passed to an allocator.
namespace {
bool g_measuring = false;
std::size_t g_largest = 0;
}  // namespace

// Every non-aligned form is replaced, so that no memory crosses between this allocator and the
// library's (AddressSanitizer checks that). noinline: inlined into a caller, GCC pairs the
// malloc of one with the free of the other and warns of a mismatch that is not there.
namespace {
void* counted_malloc(std::size_t n) noexcept {
  if (g_measuring && n > g_largest) g_largest = n;
  return std::malloc(n == 0 ? 1 : n);
}
}  // namespace
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_malloc(n);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_malloc(n);
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

namespace fs = std::filesystem;
using gradscope::DType;
using gradscope::Error;
using gradscope::ExitCode;
using gradscope::Tensor;

class LargestAllocation {
 public:
  LargestAllocation() {
    g_largest = 0;
    g_measuring = true;
  }
  ~LargestAllocation() { g_measuring = false; }
  LargestAllocation(const LargestAllocation&) = delete;
  LargestAllocation& operator=(const LargestAllocation&) = delete;
  std::size_t bytes() const { return g_largest; }
};

// The hostile files are at most a few hundred bytes; their messages and parse trees are far
// below this, while anything sized by a lying header would be gigabytes.
constexpr std::size_t kSmallAllocation = 64 * 1024;

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << text << "\"\n  does not contain \"" << part << "\"";
}

// The gradscope::Error that `f` throws; the test fails if it throws none.
Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a gradscope::Error";
  return Error("(no error thrown)");
}

std::string corpus(const std::string& name) {
  return std::string(GRADSCOPE_SOURCE_DIR) + "/tests/corpus/" + name;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string u64_le(std::uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xffU));
  return s;
}

// A safetensors file with the given header text and data.
std::string st(const std::string& header, const std::string& data = {}) {
  return u64_le(header.size()) + header + data;
}

// A version-1 .npy file with the given header dict text and data.
std::string npy(const std::string& header, const std::string& data, int version = 1) {
  std::string h = header + "\n";
  std::string length;
  length.push_back(static_cast<char>(h.size() & 0xffU));
  length.push_back(static_cast<char>((h.size() >> 8) & 0xffU));
  if (version != 1) length += std::string(2, '\0');
  return std::string("\x93NUMPY") + static_cast<char>(version) + '\0' + length + h + data;
}

std::uint64_t element_count(const Tensor& t) {
  std::uint64_t n = 1;
  for (const std::int64_t d : t.shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

// Every element k of the corpus's (3, 4) arrays: (k - 5) / 3 rounded once to the file's dtype.
double corpus_value(std::size_t k, DType dtype) {
  const double v = (static_cast<double>(k) - 5.0) / 3.0;
  return dtype == DType::kF32 ? static_cast<double>(static_cast<float>(v)) : v;
}

// Normals spread over many decades, plus the extremes a double can hold, for round trips.
std::vector<double> spread_values(std::size_t n, std::uint64_t seed) {
  std::vector<double> v(n);
  gradscope::fill_normal(gradscope::stream_key(seed, 0, gradscope::StreamPurpose::kWeights), 0, n,
                         v.data());
  for (std::size_t i = 0; i < n; ++i) v[i] *= std::pow(10.0, static_cast<double>(i % 13) - 6.0);
  return v;
}

void expect_same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(a[i]), std::bit_cast<std::uint64_t>(b[i]))
        << "element " << i << ": " << a[i] << " vs " << b[i];
  }
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("gradscope-tio-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
    return (path_ / name).string();
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

struct HostileCase {
  std::string file;  // under tests/corpus
  std::string part;  // what the message must say
};

// ---------------------------------------------------------------------------------------------
// safetensors: writing and round trips

std::vector<Tensor> round_trip_tensors() {
  const std::vector<std::vector<std::int64_t>> shapes{{2, 3}, {5},       {0},   {3, 0},
                                                      {},     {2, 2, 2}, {1, 1}};
  const std::vector<std::string> names{
      "z", "layers.0.weight", "layers.10.bias", "empty", "scalar", "cube", "one"};
  std::vector<Tensor> tensors;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    Tensor t;
    t.name = names[i];
    t.shape = shapes[i];
    std::size_t n = 1;
    for (const std::int64_t d : t.shape) n *= static_cast<std::size_t>(d);
    t.values = spread_values(n, i + 1);
    tensors.push_back(t);
  }
  return tensors;
}

TEST(SafetensorsWrite, F64RoundTripKeepsOrderNamesShapesAndEveryBit) {
  std::vector<Tensor> tensors = round_trip_tensors();
  // The extremes: the smallest subnormal, the largest double, a negative zero.
  tensors[0].values[0] = std::numeric_limits<double>::denorm_min();
  tensors[0].values[1] = std::numeric_limits<double>::max();
  tensors[0].values[2] = -0.0;
  const std::vector<Tensor> back =
      gradscope::parse_safetensors(gradscope::safetensors_bytes(tensors, DType::kF64), "rt");
  ASSERT_EQ(back.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(back[i].name, tensors[i].name);
    EXPECT_EQ(back[i].dtype, DType::kF64);
    EXPECT_EQ(back[i].shape, tensors[i].shape);
    expect_same_bits(back[i].values, tensors[i].values);
  }
}

TEST(SafetensorsWrite, F32RoundTripRoundsEachValueOnceToTheNearestFloat) {
  std::vector<Tensor> tensors = round_trip_tensors();
  tensors[0].values[0] = 1e-40;  // an F32 subnormal
  const std::vector<Tensor> back =
      gradscope::parse_safetensors(gradscope::safetensors_bytes(tensors, DType::kF32), "rt");
  ASSERT_EQ(back.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(back[i].name, tensors[i].name);
    EXPECT_EQ(back[i].dtype, DType::kF32);
    EXPECT_EQ(back[i].shape, tensors[i].shape);
    std::vector<double> rounded;
    for (const double v : tensors[i].values) {
      rounded.push_back(static_cast<double>(static_cast<float>(v)));
    }
    expect_same_bits(back[i].values, rounded);
  }
  EXPECT_NE(back[0].values[0], 0.0);
}

TEST(SafetensorsWrite, LayoutMatchesTheReferenceByteForByte) {
  Tensor w;
  w.name = "w";
  w.shape = {2};
  w.values = {1.5, -2.0};
  const std::string bytes = gradscope::safetensors_bytes({w}, DType::kF32, {{"format", "pt"}});
  // The reference's serialize(): compact JSON, metadata first, spaces up to a multiple of 8.
  std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  // 1.5f is 0x3fc00000 and -2.0f is 0xc0000000, little-endian.
  const std::string data("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8);
  EXPECT_EQ(bytes, u64_le(header.size()) + header + data);
}

TEST(SafetensorsWrite, DataStartsEightByteAlignedForEveryNameLength) {
  for (std::size_t length = 1; length <= 16; ++length) {
    Tensor t;
    t.name = std::string(length, 'n');
    t.shape = {1};
    t.values = {1.0};
    const std::string bytes = gradscope::safetensors_bytes({t}, DType::kF64);
    const std::size_t header = bytes.size() - 8 - 8;
    EXPECT_EQ(header % 8, 0U) << "name length " << length;
    EXPECT_EQ(bytes.substr(0, 8), u64_le(header));
  }
}

TEST(SafetensorsWrite, RefusesWhatTheReaderWouldRefuse) {
  const auto one = [](std::string name, double v) {
    Tensor t;
    t.name = std::move(name);
    t.shape = {1};
    t.values = {v};
    return t;
  };
  const auto write = [](const std::vector<Tensor>& ts, DType d = DType::kF32,
                        const std::vector<std::pair<std::string, std::string>>& meta = {}) {
    return error_of([&] { (void)gradscope::safetensors_bytes(ts, d, meta); });
  };
  EXPECT_TRUE(Contains(write({one("w", std::nan(""))}).what(), "element 0 (index [0]) is NaN"));
  EXPECT_TRUE(Contains(write({one("w", -INFINITY)}).what(), "is -Inf"));
  EXPECT_TRUE(Contains(write({one("w", 1e39)}).what(), "1e+39 does not fit in F32"));
  EXPECT_TRUE(Contains(write({one("w", 1.0), one("w", 2.0)}).what(), "given twice"));
  EXPECT_TRUE(Contains(write({one("", 1.0)}).what(), "empty name"));
  EXPECT_TRUE(Contains(write({one("__metadata__", 1.0)}).what(), "reserved"));
  EXPECT_TRUE(Contains(write({one("w", 1.0)}, DType::kF16).what(), "F32 or F64, not F16"));
  EXPECT_TRUE(
      Contains(write({one("w", 1.0)}, DType::kF32, {{"k", "a"}, {"k", "b"}}).what(), "twice"));
  Tensor wrong = one("w", 1.0);
  wrong.shape = {2, 3};
  EXPECT_TRUE(Contains(write({wrong}).what(), "shape (2, 3) but 1 values"));
}

// ---------------------------------------------------------------------------------------------
// safetensors: reading strangers' files

TEST(SafetensorsRead, ReadsTheReferenceLayoutWithMetadataAndAnEmptyTensor) {
  const std::vector<Tensor> ts =
      gradscope::read_safetensors(corpus("safetensors/valid_mixed.safetensors"));
  ASSERT_EQ(ts.size(), 3U);
  EXPECT_EQ(ts[0].name, "bias");
  EXPECT_EQ(ts[0].dtype, DType::kF64);
  EXPECT_EQ(ts[0].shape, (std::vector<std::int64_t>{4}));
  EXPECT_EQ(ts[1].name, "empty");
  EXPECT_EQ(ts[1].shape, (std::vector<std::int64_t>{0, 4}));
  EXPECT_TRUE(ts[1].values.empty());
  EXPECT_EQ(ts[2].name, "weight");
  EXPECT_EQ(ts[2].dtype, DType::kF32);
  EXPECT_EQ(ts[2].shape, (std::vector<std::int64_t>{3, 4}));
  std::vector<double> bias, weight;
  for (std::size_t k = 0; k < 4; ++k) bias.push_back(corpus_value(k, DType::kF64));
  for (std::size_t k = 0; k < 12; ++k) weight.push_back(corpus_value(k, DType::kF32));
  expect_same_bits(ts[0].values, bias);
  expect_same_bits(ts[2].values, weight);
}

TEST(SafetensorsRead, DecodesHandMadeF16AndBF16ExactlyIncludingSubnormals) {
  const std::vector<Tensor> ts =
      gradscope::read_safetensors(corpus("safetensors/f16_bf16.safetensors"));
  ASSERT_EQ(ts.size(), 2U);
  EXPECT_EQ(ts[0].name, "half");
  EXPECT_EQ(ts[0].dtype, DType::kF16);
  EXPECT_EQ(ts[0].shape, (std::vector<std::int64_t>{2, 4}));
  // binary16 bits 0x0001, 0x03ff (subnormals m * 2^-24), 0x0400 (smallest normal), 0x3c00,
  // 0xc000, 0x7bff (largest, 2047 * 2^5), 0x3555 ((1024 + 341) * 2^-12), 0x8000 (-0).
  const std::vector<double> half{std::ldexp(1.0, -24),
                                 std::ldexp(1023.0, -24),
                                 std::ldexp(1.0, -14),
                                 1.0,
                                 -2.0,
                                 std::ldexp(2047.0, 5),
                                 std::ldexp(1365.0, -12),
                                 -0.0};
  expect_same_bits(ts[0].values, half);
  EXPECT_EQ(ts[1].name, "brain");
  EXPECT_EQ(ts[1].dtype, DType::kBF16);
  // bfloat16 bits 0x3f80, 0xc0a0, 0x0001 (smallest subnormal, 2^-133), 0x7f7f (largest,
  // 255 * 2^120), 0x3eab (171 * 2^-9), 0x0000.
  const std::vector<double> brain{
      1.0, -5.0, std::ldexp(1.0, -133), std::ldexp(255.0, 120), std::ldexp(171.0, -9), 0.0};
  expect_same_bits(ts[1].values, brain);
}

TEST(SafetensorsRead, HostileFilesGiveErrorsNamingTheFileAndTheProblem) {
  const std::vector<HostileCase> cases{
      {"header_2pow60.safetensors", "the header length says 1152921504606846976 bytes"},
      {"too_short.safetensors", "too short for a safetensors file"},
      {"overlap.safetensors", "tensors \"a\" (bytes [0, 16)) and \"b\" (bytes [8, 16)) overlap"},
      {"out_of_bounds.safetensors", "tensor \"a\": data_offsets [0, 32) reach past the end"},
      {"hole.safetensors", "data bytes [4, 8) belong to no tensor"},
      {"trailing_bytes.safetensors", "data bytes [8, 16) after the last tensor"},
      {"lying_size.safetensors", "hold 16 bytes, but shape (3,) of F32 needs 12"},
      {"unknown_dtype.safetensors",
       "tensor \"step\": dtype \"C64\" is not supported; gradscope reads F32, F64, F16, BF16, I64, "
       "I32"},
      {"shape_overflow.safetensors", "holds more bytes than 64 bits can count"},
      {"negative_shape.safetensors", "shape[0] is negative (-4)"},
      {"nan_weight.safetensors", "tensor \"layers.0.weight\": element 2 (index [1, 0]) is NaN"},
      {"inf_f16.safetensors", "tensor \"h\": element 1 (index [1]) is -Inf"},
      {"duplicate_tensor.safetensors", "tensor \"a\" appears twice"},
      {"not_an_object.safetensors", "must be a JSON object"},
      {"bad_json.safetensors", "invalid JSON"},
      {"extra_key.safetensors", "unknown key \"scale\""},
      {"metadata_not_string.safetensors", "__metadata__: \"epoch\" must be a string"},
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = corpus("safetensors/" + c.file);
    LargestAllocation largest;
    const Error e = error_of([&] { (void)gradscope::read_safetensors(path); });
    EXPECT_TRUE(Contains(e.what(), path + ": "));
    EXPECT_TRUE(Contains(e.what(), c.part));
    EXPECT_FALSE(e.hint().empty());
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_LT(largest.bytes(), kSmallAllocation);
  }
}

TEST(SafetensorsRead, MalformedHeadersGiveErrorsNamingTheProblem) {
  const std::string f32x1("\x00\x00\x80\x3f", 4);
  std::vector<std::pair<std::string, std::string>> cases{
      {"", "invalid JSON"},
      {R"({"a":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,4]}})", "nested deeper"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", "tensor \"a\": no \"data_offsets\""},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "must be an array [begin, end]"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "end before they begin"},
      {R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", "dtype must be a string"},
      {R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}})", "not an integer"},
      {R"({"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}})", "not an integer"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"dtype":"F64"}})",
       "key \"dtype\" appears twice"},
      {R"({"a":[1]})", "tensor \"a\" must be an object"},
      {R"([{"a":1,"a":2}])", "header: key \"a\" appears twice"},
      {R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "empty name"},
      {R"({"__metadata__":[],"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       "__metadata__ must be an object"},
      {"{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "invalid JSON"},
      {R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})",
       "larger than 2^63 - 1"},
  };
  std::string ones;
  for (int i = 0; i < 65; ++i) ones += i == 0 ? "1" : ",1";
  cases.emplace_back(R"({"a":{"dtype":"F32","shape":[)" + ones + R"(],"data_offsets":[0,4]}})",
                     "an array of more than 64 elements");
  for (const auto& [header, part] : cases) {
    SCOPED_TRACE(header);
    const Error e =
        error_of([&] { (void)gradscope::parse_safetensors(st(header, f32x1), "m.st"); });
    EXPECT_TRUE(Contains(e.what(), "m.st: "));
    EXPECT_TRUE(Contains(e.what(), part));
  }
}

TEST(SafetensorsRead, ClaimsOfTerabytesAllocateNothingLikeThem) {
  LargestAllocation largest;
  // A header length of 2^60 bytes.
  EXPECT_THROW((void)gradscope::parse_safetensors(u64_le(std::uint64_t{1} << 60) + "{}", "big"),
               Error);
  // A 2^40-element tensor whose offsets claim 4 TiB of a 16-byte data area.
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}})";
  const Error e = error_of(
      [&] { (void)gradscope::parse_safetensors(st(header, std::string(16, '\0')), "big"); });
  EXPECT_TRUE(Contains(e.what(), "reach past the end of the data (16 bytes)"));
  EXPECT_LT(largest.bytes(), kSmallAllocation);
}

TEST(SafetensorsRead, ShapesWhoseByteCountWrapsPast2To64AreRefused) {
  LargestAllocation largest;
  // (2^62 + 1) * 4 elements wraps to 4; and 2^62 F32 elements are 2^64 bytes, which wraps to 0.
  for (const std::string& shape :
       {std::string("[4611686018427387905,4]"), std::string("[4611686018427387904]")}) {
    SCOPED_TRACE(shape);
    const std::string header =
        R"({"a":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,16]}})";
    const Error e = error_of(
        [&] { (void)gradscope::parse_safetensors(st(header, std::string(16, '\0')), "w.st"); });
    EXPECT_TRUE(Contains(e.what(), "holds more bytes than 64 bits can count"));
  }
  EXPECT_LT(largest.bytes(), kSmallAllocation);
}

TEST(SafetensorsRead, EveryTruncationOfAValidFileIsAnError) {
  const std::string bytes = file_bytes(corpus("safetensors/valid_mixed.safetensors"));
  ASSERT_NO_THROW((void)gradscope::parse_safetensors(bytes, "whole"));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW((void)gradscope::parse_safetensors(bytes.substr(0, n), "cut"), Error)
        << "cut after " << n << " bytes";
  }
}

TEST(SafetensorsRead, EverySingleByteCorruptionGivesAnErrorOrAConsistentResult) {
  const std::string bytes = file_bytes(corpus("safetensors/f16_bf16.safetensors"));
  std::size_t errors = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (const unsigned mask : {0x01U, 0x20U, 0x80U, 0xffU}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      try {
        for (const Tensor& t : gradscope::parse_safetensors(bad, "flip")) {
          EXPECT_EQ(t.values.size(), element_count(t)) << "byte " << i;
        }
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  // Flips in the header mostly break it; flips in the data mostly just change values.
  EXPECT_GT(errors, 0U);
}

TEST(SafetensorsRead, MissingDirectoryAndDeviceFilesAreErrors) {
  EXPECT_TRUE(Contains(
      error_of([] { (void)gradscope::read_safetensors("/nonexistent/w.safetensors"); }).what(),
      "/nonexistent/w.safetensors: no such file"));
  EXPECT_TRUE(Contains(error_of([] { (void)gradscope::read_safetensors(corpus("npy")); }).what(),
                       "is a directory"));
  if (fs::exists("/dev/zero")) {
    EXPECT_TRUE(Contains(error_of([] { (void)gradscope::read_safetensors("/dev/zero"); }).what(),
                         "not a regular file"));
  }
}

TEST(DType, NamesAreTheSafetensorsSpellings) {
  EXPECT_EQ(gradscope::dtype_name(DType::kF32), "F32");
  EXPECT_EQ(gradscope::dtype_name(DType::kF64), "F64");
  EXPECT_EQ(gradscope::dtype_name(DType::kF16), "F16");
  EXPECT_EQ(gradscope::dtype_name(DType::kBF16), "BF16");
}

// ---------------------------------------------------------------------------------------------
// .npy

TEST(Npy, ReadsFloat32AndFloat64InCAndFortranOrderAndHeaderVersions1To3) {
  const std::vector<std::pair<std::string, DType>> files{
      {"f4_c", DType::kF32},       {"f8_c", DType::kF64},  {"f4_fortran", DType::kF32},
      {"f8_fortran", DType::kF64}, {"f8_v2", DType::kF64}, {"f4_v3", DType::kF32}};
  for (const auto& [name, dtype] : files) {
    SCOPED_TRACE(name);
    const Tensor t = gradscope::read_npy(corpus("npy/" + name + ".npy"));
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.dtype, dtype);
    EXPECT_EQ(t.shape, (std::vector<std::int64_t>{3, 4}));
    std::vector<double> expected;
    for (std::size_t k = 0; k < 12; ++k) expected.push_back(corpus_value(k, dtype));
    expect_same_bits(t.values, expected);
  }
}

TEST(Npy, ReadsOneDimensionalAndEmptyArrays) {
  const Tensor line = gradscope::read_npy(corpus("npy/f4_1d.npy"));
  EXPECT_EQ(line.shape, (std::vector<std::int64_t>{5}));
  std::vector<double> expected;
  for (std::size_t k = 0; k < 5; ++k) expected.push_back(corpus_value(k, DType::kF32));
  expect_same_bits(line.values, expected);
  const Tensor empty = gradscope::read_npy(corpus("npy/empty_0x4.npy"));
  EXPECT_EQ(empty.shape, (std::vector<std::int64_t>{0, 4}));
  EXPECT_TRUE(empty.values.empty());
}

TEST(Npy, ThreeDimensionalSequencesReadInCOrderFromEitherLayout) {
  // (examples, tokens, features) for sequence models; Fortran order is reordered to C order.
  const Tensor fortran = gradscope::read_npy(corpus("npy/sequence_fortran.npy"));
  EXPECT_EQ(fortran.shape, (std::vector<std::int64_t>{2, 3, 4}));
  for (std::size_t k = 0; k < 24; ++k) EXPECT_EQ(fortran.values[k], static_cast<double>(k));
  EXPECT_EQ(gradscope::read_npy(corpus("npy/rank3.npy")).shape,
            (std::vector<std::int64_t>{2, 2, 2}));
}

TEST(Npy, HostileFilesGiveErrorsNamingTheFileAndTheProblem) {
  const std::vector<HostileCase> cases{
      {"big_endian.npy", "dtype \">f4\" is big-endian"},
      {"object.npy", "dtype \"|O\" is an object array"},
      {"int64.npy", "dtype \"<i8\" (int64) is not supported"},
      {"float16.npy", "dtype \"<f2\" (float16) is not supported"},
      {"scalar.npy", "a 0-d array"},
      {"rank4.npy", "a 4-D array of shape (2, 2, 2, 2)"},
      {"structured.npy", "structured (record) dtype"},
      {"truncated.npy", "the data holds 43 bytes, but shape (3, 4) of float32 needs 48"},
      {"extra_bytes.npy", "8 bytes follow the 48 that shape (3, 4) of float32 needs"},
      {"nan.npy", "element 9 (index [2, 1]) is NaN"},
      {"inf_fortran.npy", "element 7 (index [1, 3]) is -Inf"},
      {"shape_overflow.npy", "holds more bytes than 64 bits count"},
      {"unknown_key.npy", "unknown key \"eval\""},
      {"python_call.npy", "'fortran_order' must be True or False"},
      {"header_past_end.npy", "the .npy header length says 32767 bytes"},
      {"not_npy.npy", "not a .npy file"},
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = corpus("npy/" + c.file);
    LargestAllocation largest;
    const Error e = error_of([&] { (void)gradscope::read_npy(path); });
    EXPECT_TRUE(Contains(e.what(), path + ": "));
    EXPECT_TRUE(Contains(e.what(), c.part));
    EXPECT_FALSE(e.hint().empty());
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_LT(largest.bytes(), kSmallAllocation);
  }
  const Error big = error_of([] { (void)gradscope::read_npy(corpus("npy/big_endian.npy")); });
  EXPECT_TRUE(Contains(big.hint(), "numpy.ascontiguousarray(x, dtype='<f4')"));
}

TEST(Npy, HeaderParserIsStrict) {
  const std::string two(8, '\0');  // two float32 zeros
  std::vector<std::pair<std::string, std::string>> cases{
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,), }", "appears twice"},
      {"{'descr': '<f4', 'fortran_order': False, }", "no 'shape' key"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", "unexpected text"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }",
       "expected ',' or '}', found \"f\""},
      {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,), }", "escape"},
      {"{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", "(float32) is not supported"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", "True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "a number, not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
       "does not fit in 64 bits"},
      {"['descr', '<f4']", "must be a dict"},
  };
  std::string many;
  for (int i = 0; i < 65; ++i) many += "1, ";
  cases.emplace_back("{'descr': '<f4', 'fortran_order': False, 'shape': (" + many + "), }",
                     "more than 64 dimensions");
  for (const auto& [header, part] : cases) {
    SCOPED_TRACE(header);
    const Error e = error_of([&] { (void)gradscope::parse_npy(npy(header, two), "h.npy"); });
    EXPECT_TRUE(Contains(e.what(), "h.npy: "));
    EXPECT_TRUE(Contains(e.what(), part));
  }
  EXPECT_TRUE(Contains(
      error_of([&] {
        (void)gradscope::parse_npy(
            npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", two, 9), "h.npy");
      }).what(),
      "format version 9.0 is unknown"));
}

TEST(Npy, AcceptsWhatNumpyAcceptsBeyondItsOwnOutput) {
  const std::string two(8, '\0');
  // Python 2's long suffix, double quotes, keys in another order, no trailing comma.
  const Tensor t = gradscope::parse_npy(
      npy("{\"shape\": (1L, 2L), 'fortran_order': True, 'descr': '<f4'}", two), "dir/x.npy");
  EXPECT_EQ(t.name, "x");
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{1, 2}));
  if constexpr (std::endian::native == std::endian::little) {
    // Native byte order ('=') and no byte order are little-endian here.
    EXPECT_EQ(gradscope::parse_npy(
                  npy("{'descr': '=f8', 'fortran_order': False, 'shape': (1,), }", two), "n.npy")
                  .dtype,
              DType::kF64);
    EXPECT_EQ(gradscope::parse_npy(
                  npy("{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }", two), "n.npy")
                  .dtype,
              DType::kF32);
  }
}

TEST(Npy, AShapeClaimingTerabytesAllocatesNothingLikeIt) {
  LargestAllocation largest;
  const Error e = error_of([] {
    (void)gradscope::parse_npy(
        npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 8), }",
            std::string(64, '\0')),
        "big.npy");
  });
  EXPECT_TRUE(Contains(e.what(), "the data holds 64 bytes, but shape (1099511627776, 8)"));
  EXPECT_LT(largest.bytes(), kSmallAllocation);
}

TEST(Npy, AShapeWhoseByteCountWrapsPast2To64IsRefused) {
  // (2^62 + 1) * 4 elements * 4 bytes wraps to 64; 64 bytes of data are there.
  LargestAllocation largest;
  const Error e = error_of([] {
    (void)gradscope::parse_npy(
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387905, 4), }",
            std::string(64, '\0')),
        "wrap.npy");
  });
  EXPECT_TRUE(Contains(e.what(), "shape (4611686018427387905, 4) of float32 holds more bytes"));
  EXPECT_LT(largest.bytes(), kSmallAllocation);
}

TEST(Npy, AFileOfAFewBytesClaimingTerabytesIsRefusedWithoutAllocating) {
  const TempDir dir;
  const std::string path =
      dir.write("claims.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                                  "(1099511627776,), }",
                                  std::string(4, '\0')));
  LargestAllocation largest;
  const Error e = error_of([&] { (void)gradscope::read_npy(path); });
  EXPECT_TRUE(Contains(e.what(), "the data holds 4 bytes, but shape (1099511627776,) of float32"));
  EXPECT_EQ(e.code(), ExitCode::kUsage);
  EXPECT_LT(largest.bytes(), kSmallAllocation);
}

TEST(Npy, ABigFileIsRefusedFromItsHeaderBeforeItsDataIsRead) {
  // 64 MiB (sparse on disk) behind a header that says (3,) float32, or int64: the header alone
  // refuses them, so nothing near the file's size is allocated.
  const TempDir dir;
  constexpr std::uintmax_t kBig = std::uintmax_t{64} << 20;
  for (const auto& [descr, part] :
       {std::pair{std::string("<f4"), std::string("bytes follow the 12 that shape (3,)")},
        std::pair{std::string("<i8"), std::string("(int64) is not supported")}}) {
    SCOPED_TRACE(descr);
    const std::string path =
        dir.write("big" + descr.substr(1) + ".npy",
                  npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (3,), }", ""));
    fs::resize_file(path, kBig);
    LargestAllocation largest;
    const Error e = error_of([&] { (void)gradscope::read_npy(path); });
    EXPECT_TRUE(Contains(e.what(), part));
    EXPECT_LT(largest.bytes(), kSmallAllocation);
  }
}

TEST(Npy, AHeaderLengthOfMoreThanAMegabyteIsRefused) {
  // Version 2 counts the header in a u32: 2 MiB of spaces is a header numpy would never write.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
  header.resize(std::size_t{2} << 20, ' ');
  const std::string bytes = std::string("\x93NUMPY\x02", 7) + '\0' +
                            u64_le(header.size()).substr(0, 4) + header + std::string(4, '\0');
  EXPECT_TRUE(Contains(error_of([&] { (void)gradscope::parse_npy(bytes, "h.npy"); }).what(),
                       "the .npy header length says 2097152 bytes"));
}

TEST(Npy, EveryTruncationOfAValidFileIsAnError) {
  const std::string bytes = file_bytes(corpus("npy/f8_fortran.npy"));
  ASSERT_NO_THROW((void)gradscope::parse_npy(bytes, "whole.npy"));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW((void)gradscope::parse_npy(bytes.substr(0, n), "cut.npy"), Error)
        << "cut after " << n << " bytes";
  }
}

TEST(Npy, EverySingleByteCorruptionGivesAnErrorOrAConsistentResult) {
  const std::string bytes = file_bytes(corpus("npy/f4_c.npy"));
  std::size_t errors = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (const unsigned mask : {0x01U, 0x20U, 0x80U, 0xffU}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      try {
        const Tensor t = gradscope::parse_npy(bad, "flip.npy");
        EXPECT_EQ(t.values.size(), element_count(t)) << "byte " << i;
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0U);
}

// ---------------------------------------------------------------------------------------------
// CSV

TEST(Csv, SkipsAHeaderRowOfColumnNames) {
  const Tensor t = gradscope::read_csv(corpus("csv/with_header.csv"));
  EXPECT_EQ(t.name, "with_header");
  EXPECT_EQ(t.dtype, DType::kF64);
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{2, 3}));
  expect_same_bits(t.values, {0.5, -1.25, 3e-2, 4.0, 5.0, 0.5});
}

TEST(Csv, ReadsCrlfByteOrderMarkSpacesAndBlankLinesWithoutAHeader) {
  const Tensor t = gradscope::read_csv(corpus("csv/no_header.csv"));
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{3, 2}));
  expect_same_bits(t.values, {1.0, 2.0, 3.0, 4.0, -5e-3, 6.0});
}

TEST(Csv, ErrorsNameFileAndLine) {
  const std::vector<HostileCase> cases{
      {"ragged.csv", ":3: 2 fields, but line 1 has 3"},
      {"non_number.csv", ":3: column 2: \"abc\" is not a number"},
      {"nan.csv", ":2: column 2: NaN (index [1, 1])"},
      {"empty_field.csv", ":2: column 2 is empty"},
      {"out_of_range.csv", ":2: column 1: \"1e999\" is outside the range of a double"},
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = corpus("csv/" + c.file);
    const Error e = error_of([&] { (void)gradscope::read_csv(path); });
    EXPECT_TRUE(Contains(e.what(), path + c.part));
    EXPECT_FALSE(e.hint().empty());
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
  EXPECT_TRUE(
      Contains(error_of([] { (void)gradscope::read_csv(corpus("csv/only_header.csv")); }).what(),
               "only_header.csv: no rows of numbers (line 1 holds no number and was taken for "
               "column names)"));
}

TEST(Csv, EmptyFilesAndHalfNumericHeadersAreErrors) {
  const TempDir dir;
  const std::string empty = dir.write("empty.csv", "");
  EXPECT_TRUE(Contains(error_of([&] { (void)gradscope::read_csv(empty); }).what(),
                       "no rows of numbers (the file is empty)"));
  // A first line with one number is data, so its other field is an error, not a column name.
  const std::string mixed = dir.write("mixed.csv", "a,1\n2,3\n");
  EXPECT_TRUE(Contains(error_of([&] { (void)gradscope::read_csv(mixed); }).what(),
                       mixed + ":1: column 1: \"a\" is not a number"));
  // Tab-separated: the first line has no number and reads as column names, the second fails.
  const std::string tabs = dir.write("tabs.csv", "1\t2\n3\t4\n");
  const Error tab_error = error_of([&] { (void)gradscope::read_csv(tabs); });
  EXPECT_TRUE(Contains(tab_error.what(), tabs + ":2: column 1: \"3\\x094\" is not a number"));
  EXPECT_TRUE(Contains(tab_error.hint(), "separate fields with commas"));
}

}  // namespace
