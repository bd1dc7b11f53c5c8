// The one dispatch point: (kernel key, device) -> function. Kernel families register themselves at load
// time with DLC_REGISTER_KERNEL; the plan builder looks each step's key up once, when the plan is built,
// so an unknown pair is a clear error at compile time and costs nothing per call.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace dlc {

enum class Device : int32_t { CPU = 0, CUDA = 1 };

// Per-run facts a kernel may need besides its operands: the training-step counter and seed make dropout
// masks a pure function of (seed, step, op, element), so a resumed run draws the same masks.
// Sums n doubles over every data-parallel rank, in place (an MPI allreduce, called from the run's thread).
using RankSum = std::function<void(double* values, int64_t n)>;

// A data-parallel rank runs rows [sample_offset, sample_offset + local_batch) of the global batch; dropout
// shifts its element indices by the samples before them, so every rank draws the masks one process running
// the whole batch would (local_batch 0: a plain run). With sum_across_ranks set, batch normalization uses
// statistics of the global batch (synchronized); shard_weight is local_batch / global batch, the weight the
// rank's gradients get when they are averaged.
struct RunContext {
  uint64_t seed = 0;
  uint64_t step = 0;
  bool training = false;
  int64_t sample_offset = 0;
  int64_t local_batch = 0;
  const RankSum* sum_across_ranks = nullptr;
  double shard_weight = 1.0;
};

// Inputs packed ahead for kernels other than matmul (the recurrent layers' weights), kept by the plan across runs
// while the input's values are unchanged (runtime/packed_weights.h). `get` returns input `input` in the packed
// form named `form` (its layout and the kernel path it is for): the kept copy when it was made from the input's
// current version, else a new one made by `pack` (kept when the input is a parameter or a constant).
struct PackedInput {
  std::shared_ptr<const void> data;
  size_t bytes = 0;
};
using PackInputFn = std::function<PackedInput()>;
class InputPacks {
 public:
  virtual ~InputPacks() = default;
  virtual std::shared_ptr<const void> get(int input, const std::string& form, const PackInputFn& pack) const = 0;
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
  const void* packed_b = nullptr;  // matmul: a GemmPackedB<T> of in[1], current for this run, or nullptr
  // (conv2d_nchwc: its filter reordered for the blocked kernels, see kernels/conv/nchwc.h)
  const InputPacks* input_packs = nullptr;  // the plan's kept packed inputs, or nullptr (pack per call)
};

using KernelFn = void (*)(const KernelArgs&);

void register_kernel(const std::string& key, Device device, KernelFn fn);
// Throws std::invalid_argument naming the key and device when nothing is registered.
KernelFn find_kernel(const std::string& key, Device device);
std::vector<std::string> kernel_keys(Device device);

// A kernel's prepack function (optional): given the step's inputs (the data of constants and parameters, the
// shapes alone of the others: their data is nullptr), outputs absent, and input_packs, it packs into
// input_packs what the kernel's first run would, so a plan packs its weights when it is built (Plan::prepack).
void register_prepack(const std::string& key, Device device, KernelFn fn);
KernelFn find_prepack(const std::string& key, Device device);  // nullptr when the kernel has none

struct KernelRegistrar {
  KernelRegistrar(const char* key, Device device, KernelFn fn) { register_kernel(key, device, fn); }
};

#define DLC_CONCAT_INNER(a, b) a##b
#define DLC_CONCAT(a, b) DLC_CONCAT_INNER(a, b)
#define DLC_REGISTER_KERNEL(key, device, fn) \
  static ::dlc::KernelRegistrar DLC_CONCAT(dlc_kernel_registrar_, __COUNTER__)(key, device, fn)

struct PrepackRegistrar {
  PrepackRegistrar(const char* key, Device device, KernelFn fn) { register_prepack(key, device, fn); }
};
#define DLC_REGISTER_PREPACK(key, device, fn) \
  static ::dlc::PrepackRegistrar DLC_CONCAT(dlc_prepack_registrar_, __COUNTER__)(key, device, fn)

// Small helpers shared by kernels: argument checks are the compiler's job, so these only guard against
// a lowering bug turning into memory corruption.
void kernel_check(bool ok, const char* what);

}  // namespace dlc
