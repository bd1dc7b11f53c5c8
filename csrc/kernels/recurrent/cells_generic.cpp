// The recurrent cells for CPUs without AVX2 (and all f64 cells); see cells.h.
#include "kernels/recurrent/cells.h"

namespace dlc {

template <class T>
const CellTable<T>& cells_generic() {
  static const CellTable<T> table = make_cell_table<T>();
  return table;
}
template const CellTable<float>& cells_generic<float>();
template const CellTable<double>& cells_generic<double>();

}  // namespace dlc
