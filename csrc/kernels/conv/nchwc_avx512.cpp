// The blocked-layout kernels compiled for AVX-512 (32 registers of 64 bytes; see nchwc_impl.h).
#include "kernels/conv/nchwc_impl.h"

namespace dlc::conv {

NchwcKernels nchwc_kernels_avx512(int64_t block) { return nchwc_table<32, 64>(block); }

}  // namespace dlc::conv
