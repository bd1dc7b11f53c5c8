// Constant GEMM operands packed once per plan: a matmul step whose right operand is a parameter (persistent) or a
// constant keeps that operand packed in the layout its GEMM path reads, with the version of the buffer it was
// packed from, and repacks only when the version has moved (or the kernel path changed). Versions live in a
// ParamVersions table shared by every plan that reads or writes the buffers (a program's inference and training
// plans): a plan advances the version of each persistent buffer its own steps write, and whoever writes one
// from outside (set_params, loading a checkpoint) must advance it too.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace dlc {

class ParamVersions {
 public:
  explicit ParamVersions(size_t n);
  size_t size() const { return n_; }
  uint64_t get(size_t i) const;
  void advance(size_t i);
  void advance_all();

 private:
  size_t n_;
  std::unique_ptr<std::atomic<uint64_t>[]> v_;
};

// One step's packed operand: a GemmPackedB<float> or <double>, a Bf16PackedB or a QgemmPackedB (type-erased), and
// what it was packed from.
struct PackedOperand {
  std::shared_ptr<const void> packed;
  uint64_t version = 0;
  std::string path;  // gemm_kernel_name() when packed
  size_t bytes = 0;
};

class PackedWeights {
 public:
  // The packed copy of `b` for a matmul step (ints = its ints, c = its output), current at `version`; nullptr
  // when the step's GEMM would not read one (it streams B, B is batched, another dtype). Packs on first use
  // and whenever the version or the kernel path has changed; thread-safe. With bf16 (a "matmul_bf16" step) the
  // copy is a Bf16PackedB (kernels/gemm/gemm_bf16.h): the weight rounded to bf16 once, at half the bytes.
  std::shared_ptr<const void> get(size_t step, const Tensor& a, const Tensor& b, const Tensor& c,
                                  const std::vector<int64_t>& ints, uint64_t version, bool bf16 = false) const;
  // The int8 copy (a QgemmPackedB, kernels/qgemm/qgemm.h) of weight `b` for a "matmul_int8" or "conv2d_int8"
  // step: quantized per output channel and packed on first use and whenever the version has moved. b is
  // [K, N], or when `channels_first` [N, ...] (a transposed matmul weight, a convolution's [O, C, KH, KW]).
  std::shared_ptr<const void> get_int8(size_t step, const Tensor& b, bool channels_first, uint64_t version) const;
  size_t bytes() const;
  std::vector<size_t> step_bytes(size_t steps) const;  // each step's packed bytes, 0 where none
  int64_t packs() const { return packs_.load(); }

 private:
  mutable std::mutex mu_;
  mutable std::vector<PackedOperand> by_step_;
  mutable std::atomic<int64_t> packs_{0};
};

}  // namespace dlc
