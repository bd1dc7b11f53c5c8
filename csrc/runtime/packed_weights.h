// Constant GEMM operands packed once: a matmul step whose right operand is a parameter (persistent) or a
// constant reads it packed in the layout its GEMM path reads, made once with the version of the buffer it was
// packed from, and made again only when the version has moved (or the kernel path changed). Versions live in a
// ParamVersions table shared by every plan that reads or writes the buffers (a program's inference and training
// plans): a plan advances the version of each persistent buffer its own steps write, and whoever writes one
// from outside (set_params, loading a checkpoint) must advance it too. The packed copies of persistent buffers
// live in that table too (ParamVersions::packed), so every plan over the buffers shares one copy per layout
// (an inference plan per batch size packs nothing its siblings packed); a plan's constants are its own.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "dispatch.h"
#include "runtime/tensor.h"

namespace dlc {


// A packed operand: a GemmPackedB<float> or <double>, a Bf16PackedB or a QgemmPackedB (type-erased), and what it
// was packed from.
struct PackedOperand {
  std::shared_ptr<const void> packed;
  uint64_t version = 0;
  std::string path;  // gemm_kernel_name() when packed (a packed input: its form)
  size_t bytes = 0;
};

class PackedWeights {
 public:
  // The packed copy of `b`, the right operand of a matmul step (a its left operand, c its output, ints its
  // ints), current at `version`, with its bytes; none (packed == nullptr) when the step's GEMM would not read one
  // (it streams B, B is batched, another dtype), and then the cache is left as it is. `id` names the operand (a
  // persistent buffer's index, or a plan's constant by step); a copy is kept per id and layout (op(B)'s shape
  // and transposition, f32/bf16/int8), made on first use and again whenever the version or the kernel path has
  // changed. *made is set when this call packed. Thread-safe. With bf16 (a "matmul_bf16" step) the copy is a
  // Bf16PackedB (kernels/gemm/gemm_bf16.h): the weight rounded to bf16 once, at half the bytes.
  PackedOperand get(int64_t id, const Tensor& a, const Tensor& b, const Tensor& c, const std::vector<int64_t>& ints,
                    uint64_t version, bool bf16 = false, bool* made = nullptr) const;
  // The int8 copy (a QgemmPackedB, kernels/qgemm/qgemm.h) of weight `b` for a "matmul_int8" or "conv2d_int8"
  // step: quantized per output channel and packed on first use and whenever the version has moved. b is
  // [K, N], or when `channels_first` [N, ...] (a transposed matmul weight, a convolution's [O, C, KH, KW]).
  PackedOperand get_int8(int64_t id, const Tensor& b, bool channels_first, uint64_t version,
                         bool* made = nullptr) const;
  // The filter of a "conv2d_nchwc" step (x = in[0], w = in[1], y = out[0], ints its ints) reordered for the
  // blocked kernels (kernels/conv/nchwc.h nchwc_pack_filter), kept per id and layout (block size, blocked or
  // NCHW input, input plane size) like the others.
  PackedOperand get_conv(int64_t id, const Tensor& x, const Tensor& w, const Tensor& y,
                         const std::vector<int64_t>& ints, uint64_t version, bool* made = nullptr) const;
  size_t bytes() const;  // of every copy held
  // Input `input` of a kernel (KernelArgs::input_packs) in the packed form `form` (its layout, shape and kernel
  // path; each form is a copy of its own), current at `version`: made by `pack` on first use and whenever the
  // version has moved. `id` and `input` name the operand as for get (a persistent buffer: its index and input -1; a constant: its
  // step and input). *made is set when this call packed. Thread-safe.
  PackedOperand get_input(int64_t id, int input, const std::string& form, uint64_t version, const PackInputFn& pack,
                          bool* made = nullptr) const;
  int64_t packs() const { return packs_.load(); }

 private:
  enum class Layout { kGemm, kBf16, kInt8, kNchwc };
  // id, layout, transposed, K, N (kNchwc: id, layout, blocked input, input plane, block)
  using Key = std::tuple<int64_t, Layout, bool, int64_t, int64_t>;
  mutable std::mutex mu_;
  mutable std::map<Key, PackedOperand> by_key_;
  // Kept packed inputs of other kernels (get_input), by (id, input, form).
  mutable std::map<std::tuple<int64_t, int, std::string>, PackedOperand> inputs_;
  mutable std::atomic<int64_t> packs_{0};
};

class ParamVersions {
 public:
  explicit ParamVersions(size_t n);
  size_t size() const { return n_; }
  uint64_t get(size_t i) const;
  void advance(size_t i);
  void advance_all();
  // The packed copies of these buffers, shared by every plan holding this table (operand id: buffer index).
  const PackedWeights& packed() const { return packed_; }

 private:
  size_t n_;
  std::unique_ptr<std::atomic<uint64_t>[]> v_;
  PackedWeights packed_;
};

}  // namespace dlc
