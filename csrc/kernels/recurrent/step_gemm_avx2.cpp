// The portable step kernels built with AVX2/FMA (CMake compiles *_avx2.cpp with -mavx2 -mfma); see
// step_gemm_portable.h.
#include "kernels/recurrent/step_gemm_portable.h"

namespace dlc {

template <class T>
const StepKernel<T>& step_kernel_avx2() {
  static const StepKernel<T> table = make_step_kernel<T>();
  return table;
}
template const StepKernel<float>& step_kernel_avx2<float>();
template const StepKernel<double>& step_kernel_avx2<double>();

}  // namespace dlc
