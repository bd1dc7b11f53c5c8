// The blocked-layout kernels for any x86-64 (SSE2: 16 registers of 16 bytes; see nchwc_impl.h). The compiler
// keeps NCHW on such CPUs (nchwc_block_size is 0); this copy lets tests run every block size anywhere.
#include "kernels/conv/nchwc_impl.h"

namespace dlc::conv {

NchwcKernels nchwc_kernels_portable(int64_t block) { return nchwc_table<16, 16>(block); }

}  // namespace dlc::conv
