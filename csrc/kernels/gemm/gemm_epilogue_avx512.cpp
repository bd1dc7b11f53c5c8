// The GEMM epilogue's tile loop for AVX-512 (the build adds the flags to *_avx512.cpp), over that path's
// register tiles.
#include "kernels/gemm/gemm_epilogue_tile.h"
#include "kernels/gemm/gemm_kernels.h"

namespace dlc {

template <typename T>
void tile_epilogue_avx512(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1, int64_t c0,
                          int64_t c1) {
  using Tile = gemm_detail::Avx512Tile<T>;
  run_epilogue_tiles<T, Tile::MR, Tile::NR>(e, tile, ld_tile, r0, r1, c0, c1);
}
template void tile_epilogue_avx512<float>(const TileEpilogue<float>&, const float*, int64_t, int64_t, int64_t, int64_t,
                                          int64_t);
template void tile_epilogue_avx512<double>(const TileEpilogue<double>&, const double*, int64_t, int64_t, int64_t,
                                           int64_t, int64_t);

}  // namespace dlc
