// The fused layer norm's row arithmetic compiled for AVX2+FMA (the build adds the flags to *_avx2.cpp).
#include "kernels/norm/layer_norm_rows.h"

namespace dlc {

LnRowOps<float> ln_rows_f32_avx2() { return ln_row_ops<float>(); }
LnRowOps<double> ln_rows_f64_avx2() { return ln_row_ops<double>(); }

}  // namespace dlc
