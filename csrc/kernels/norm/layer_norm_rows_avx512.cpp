// The fused layer norm's row arithmetic compiled for AVX-512 (the build adds the flags to *_avx512.cpp).
#include "kernels/norm/layer_norm_rows.h"

namespace dlc {

LnRowOps<float> ln_rows_f32_avx512() { return ln_row_ops<float>(); }
LnRowOps<double> ln_rows_f64_avx512() { return ln_row_ops<double>(); }

}  // namespace dlc
