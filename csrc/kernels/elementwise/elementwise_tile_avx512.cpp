// The elementwise tile loop compiled for AVX-512 (the build adds the AVX-512 flags to *_avx512.cpp).
#include "kernels/elementwise/elementwise_tile.h"

namespace dlc {

void ew_tile_f32_avx512(const TileArgs<float>& t) { run_tile<float>(t); }
void ew_tile_f64_avx512(const TileArgs<double>& t) { run_tile<double>(t); }

}  // namespace dlc
