// Tensor views over memory the plan owns (arena, persistent region, inputs). Kernels never allocate tensors:
// every operand is a view whose pointer the executor resolves just before the plan runs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace dlc {

enum class DType : int32_t { F32 = 0, F64 = 1, I32 = 2, I64 = 3, Bool = 4 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::Bool: return 1;
  }
  throw std::invalid_argument("unknown dtype");
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::Bool: return "bool";
  }
  return "?";
}

// Ranks above this are rejected by the compiler; a fixed array keeps a view allocation-free.
constexpr int kMaxRank = 8;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  int32_t ndim = 0;
  int64_t shape[kMaxRank] = {0};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? i + ndim : i]; }
  template <typename T> T* ptr() const { return static_cast<T*>(data); }
};

}  // namespace dlc
