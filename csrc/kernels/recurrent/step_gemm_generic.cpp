// The portable step kernels for the GEMM's scalar path (no SIMD flags); see step_gemm_portable.h.
#include "kernels/recurrent/step_gemm_portable.h"

namespace dlc {

template <class T>
const StepKernel<T>& step_kernel_generic() {
  static const StepKernel<T> table = make_step_kernel<T>();
  return table;
}
template const StepKernel<float>& step_kernel_generic<float>();
template const StepKernel<double>& step_kernel_generic<double>();

}  // namespace dlc
