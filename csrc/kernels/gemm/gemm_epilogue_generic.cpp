// The GEMM epilogue's tile loop for any x86-64 CPU, over the scalar GEMM path's register tiles.
#include "kernels/gemm/gemm_epilogue_tile.h"
#include "kernels/gemm/gemm_kernels.h"

namespace dlc {

template <typename T>
void tile_epilogue_generic(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1, int64_t c0,
                           int64_t c1) {
  run_epilogue_tiles<T, gemm_detail::Avx2Tile<T>::MR, gemm_detail::Avx2Tile<T>::NR>(e, tile, ld_tile, r0, r1, c0, c1);
}
template void tile_epilogue_generic<float>(const TileEpilogue<float>&, const float*, int64_t, int64_t, int64_t, int64_t,
                                           int64_t);
template void tile_epilogue_generic<double>(const TileEpilogue<double>&, const double*, int64_t, int64_t, int64_t,
                                            int64_t, int64_t);

}  // namespace dlc
