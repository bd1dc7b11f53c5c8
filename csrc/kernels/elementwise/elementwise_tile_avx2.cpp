// The elementwise tile loop compiled for AVX2+FMA (the build adds -mavx2 -mfma to *_avx2.cpp).
#include "kernels/elementwise/elementwise_tile.h"

namespace dlc {

void ew_tile_f32_avx2(const TileArgs<float>& t) { run_tile<float>(t); }
void ew_tile_f64_avx2(const TileArgs<double>& t) { run_tile<double>(t); }

}  // namespace dlc
