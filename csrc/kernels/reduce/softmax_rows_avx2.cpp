// softmax_rows.h compiled for AVX2 (the build adds its flags to *_avx2.cpp).
#include "kernels/reduce/softmax_rows.h"

namespace dlc {

SoftmaxRowsF32 softmax_rows_f32_avx2() { return {&softmax_row_f32, &log_softmax_row_f32, &log_softmax_grad_row_f32}; }

}  // namespace dlc
