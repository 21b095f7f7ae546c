// What the fuzz targets share: failing loudly on a broken promise, and failing on an allocation
// larger than the input can justify (the readers promise never to size one by a claimed number).
#pragma once

#include <sanitizer/allocator_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace gradscope_fuzz {

// A reader returned something that breaks its documented contract: libFuzzer saves the input.
[[noreturn]] inline void broken(std::string_view what) {
  std::fprintf(stderr, "==gradscope-fuzz== contract broken: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

inline void require(bool ok, std::string_view what) {
  if (!ok) broken(what);
}

// Decoding widens a 2-byte F16 to an 8-byte double, and nlohmann's DOM spends 16 bytes (times 2
// for vector growth) on a 2-byte JSON element such as "0,": 32 bytes per input byte bound every
// allocation that grows with the input. A size the file merely claims does not grow with it.
inline constexpr std::size_t kBytesPerInputByte = 32;
// What any call costs whatever its input (the first capacities, message strings).
inline constexpr std::size_t kFixedBytes = std::size_t{1} << 20;

inline std::size_t g_allocation_limit = 0;  // 0: not watching

// Runs inside the sanitizer's allocator after each successful allocation; larger requests than
// the sanitizer can serve are reported by the sanitizer itself.
inline void on_malloc(const volatile void* /*pointer*/, std::size_t size) {
  if (g_allocation_limit == 0 || size <= g_allocation_limit) return;
  g_allocation_limit = 0;  // writing the report may allocate
  constexpr std::string_view kMessage =
      "==gradscope-fuzz== an allocation is larger than the input justifies "
      "(sized by a number the input claims?)\n";
  [[maybe_unused]] const ssize_t written = write(2, kMessage.data(), kMessage.size());
  __sanitizer_print_stack_trace();
  std::abort();
}

// The sanitizer installs no hook pair with a null half.
inline void on_free(const volatile void* /*pointer*/) {}

// Watches every allocation while it lives, against a limit proportional to `input_size`.
class AllocationLimit {
 public:
  explicit AllocationLimit(std::size_t input_size) {
    static const int installed = __sanitizer_install_malloc_and_free_hooks(&on_malloc, &on_free);
    if (installed == 0) broken("cannot install the allocation hooks");
    g_allocation_limit = kBytesPerInputByte * input_size + kFixedBytes;
  }
  ~AllocationLimit() { g_allocation_limit = 0; }
  AllocationLimit(const AllocationLimit&) = delete;
  AllocationLimit& operator=(const AllocationLimit&) = delete;
};

}  // namespace gradscope_fuzz
