// The fused layer norm's row arithmetic compiled portable (no ISA flags).
#include "kernels/norm/layer_norm_rows.h"

namespace dlc {

LnRowOps<float> ln_rows_f32_generic() { return ln_row_ops<float>(); }
LnRowOps<double> ln_rows_f64_generic() { return ln_row_ops<double>(); }

}  // namespace dlc
