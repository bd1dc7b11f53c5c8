// Which instruction set runs the blocked-layout kernels (see nchwc.h), and the block size the compiler asks for.
#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "kernels/conv/nchwc.h"

namespace dlc::conv {
namespace {

enum Level { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

Level cpu_level() {
  static const Level best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
      return kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
    return kPortable;
  }();
  return best;
}

std::atomic<int> g_cap{kAvx512};  // nchwc_force_isa's cap

Level level() { return static_cast<Level>(std::min<int>(cpu_level(), g_cap.load(std::memory_order_relaxed))); }

}  // namespace

NchwcKernels nchwc_kernels(int64_t block) {
  switch (level()) {
    case kAvx512: return nchwc_kernels_avx512(block);
    case kAvx2: return nchwc_kernels_avx2(block);
    default: return nchwc_kernels_portable(block);
  }
}

void nchwc_force_isa(const std::string& name) {
  if (name.empty() || name == "avx512")
    g_cap.store(kAvx512);
  else if (name == "avx2")
    g_cap.store(kAvx2);
  else if (name == "portable")
    g_cap.store(kPortable);
  else
    throw std::invalid_argument("nchwc_force_isa: unknown instruction set '" + name +
                                "' (avx512, avx2, portable or empty)");
}

std::string nchwc_isa() {
  switch (level()) {
    case kAvx512: return "avx512";
    case kAvx2: return "avx2";
    default: return "portable";
  }
}

int64_t nchwc_block_size() {
  switch (cpu_level()) {
    case kAvx512: return 16;
    case kAvx2: return 8;
    default: return 0;
  }
}

}  // namespace dlc::conv
