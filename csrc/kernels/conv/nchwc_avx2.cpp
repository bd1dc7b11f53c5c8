// The blocked-layout kernels compiled for AVX2 + FMA (16 registers of 32 bytes; see nchwc_impl.h).
#include "kernels/conv/nchwc_impl.h"

namespace dlc::conv {

NchwcKernels nchwc_kernels_avx2(int64_t block) { return nchwc_table<16, 32>(block); }

}  // namespace dlc::conv
