// The f32 recurrent cells built with AVX2/FMA (CMake compiles *_avx2.cpp with -mavx2 -mfma); see cells.h.
#include "kernels/recurrent/cells.h"

namespace dlc {

const CellTable<float>& cells_avx2_f32() {
  static const CellTable<float> table = make_cell_table<float>();
  return table;
}

}  // namespace dlc
