// The one dispatch point: (kernel key, device) -> function. Kernel families register themselves at load
// time with DLC_REGISTER_KERNEL; the plan builder looks each step's key up once, when the plan is built,
// so an unknown pair is a clear error at compile time and costs nothing per call.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace dlc {

enum class Device : int32_t { CPU = 0, CUDA = 1 };

// Per-run facts a kernel may need besides its operands: the training-step counter and seed make dropout
// masks a pure function of (seed, step, op, element), so a resumed run draws the same masks.
struct RunContext {
  uint64_t seed = 0;
  uint64_t step = 0;
  bool training = false;
};

struct KernelArgs {
  const Tensor* in = nullptr;
  int n_in = 0;
  const Tensor* out = nullptr;
  int n_out = 0;
  const int64_t* ints = nullptr;  // integer attributes, layout fixed per kernel (see its lowering in ops/)
  int n_ints = 0;
  const double* floats = nullptr;  // float attributes, same convention
  int n_floats = 0;
  void* workspace = nullptr;  // planned scratch memory for this step (arena), or nullptr
  const RunContext* ctx = nullptr;
};

using KernelFn = void (*)(const KernelArgs&);

void register_kernel(const std::string& key, Device device, KernelFn fn);
// Throws std::invalid_argument naming the key and device when nothing is registered.
KernelFn find_kernel(const std::string& key, Device device);
std::vector<std::string> kernel_keys(Device device);

struct KernelRegistrar {
  KernelRegistrar(const char* key, Device device, KernelFn fn) { register_kernel(key, device, fn); }
};

#define DLC_CONCAT_INNER(a, b) a##b
#define DLC_CONCAT(a, b) DLC_CONCAT_INNER(a, b)
#define DLC_REGISTER_KERNEL(key, device, fn) \
  static ::dlc::KernelRegistrar DLC_CONCAT(dlc_kernel_registrar_, __COUNTER__)(key, device, fn)

// Small helpers shared by kernels: argument checks are the compiler's job, so these only guard against
// a lowering bug turning into memory corruption.
void kernel_check(bool ok, const char* what);

}  // namespace dlc
