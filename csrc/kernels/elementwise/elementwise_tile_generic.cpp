// The elementwise tile loop compiled for any x86-64 CPU.
#include "kernels/elementwise/elementwise_tile.h"

namespace dlc {

void ew_tile_f32_generic(const TileArgs<float>& t) { run_tile<float>(t); }
void ew_tile_f64_generic(const TileArgs<double>& t) { run_tile<double>(t); }

}  // namespace dlc
