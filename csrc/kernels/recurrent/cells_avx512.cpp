// The f32 recurrent cells built with AVX-512 (CMake compiles *_avx512.cpp with AVX-512 flags and 512-bit
// vectors): the gate math's exp and tanh on 16 lanes; see cells.h.
#include "kernels/recurrent/cells.h"

namespace dlc {

const CellTable<float>& cells_avx512_f32() {
  static const CellTable<float> table = make_cell_table<float>();
  return table;
}

}  // namespace dlc
