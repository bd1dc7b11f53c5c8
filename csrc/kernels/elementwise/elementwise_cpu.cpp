// The elementwise family: one tile evaluator that runs a small register program. A single op (unfused) is a
// one-instruction program; a fused chain is one program, so it makes one pass over memory and its
// intermediates never leave L1. The same evaluator is the matmul kernel's epilogue.
//
// Program layout (kernel "ew"): ints = [compute (0 f32 | 1 f64), n_regs, n_instr, (op, dst, a, b, c) * n_instr],
// floats = one immediate per instruction. Operand r >= 0 is register r; r < 0 is input (-r - 1). STORE's dst is
// an output index. DROPOUT_MASK's b is the op's salt and its immediate the keep probability. Inputs broadcast to
// the output shape (NumPy rules); every output has the output shape and is written contiguously.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/elementwise/elementwise.h"

namespace dlc {
namespace {

constexpr int64_t kTile = 256;
constexpr int kMaxRegs = 32;
constexpr int kMaxIn = 16;
constexpr int kHeader = 3;
constexpr int kInstrInts = 5;

struct Geometry {
  int nd = 1;
  int64_t dims[kMaxRank] = {1};
  int64_t strides[kMaxIn][kMaxRank] = {};
};

// Collapses the output shape and each input's broadcast strides into the fewest dimensions, so that a plain
// [rows, cols] loop walks memory contiguously. keep_last stops merges into the last dim, whose column
// windows the matmul epilogue addresses.
Geometry make_geometry(const KernelArgs& a, bool keep_last) {
  const Tensor& o = a.out[0];
  int nd = 0;
  int64_t dims[kMaxRank];
  int64_t strides[kMaxIn][kMaxRank];
  for (int d = 0; d < o.ndim; ++d) {
    bool last = d == o.ndim - 1;
    if (o.shape[d] == 1 && !(keep_last && last)) continue;
    dims[nd] = o.shape[d];
    for (int k = 0; k < a.n_in; ++k) {
      const Tensor& t = a.in[k];
      int kd = d - (o.ndim - t.ndim);  // right-aligned broadcasting
      int64_t stride = 0;
      if (kd >= 0 && t.shape[kd] != 1) {
        stride = 1;
        for (int e = kd + 1; e < t.ndim; ++e) stride *= t.shape[e];
      }
      strides[k][nd] = stride;
    }
    ++nd;
  }
  Geometry g;
  if (nd == 0) {
    g.nd = 1;
    g.dims[0] = 1;
    for (int k = 0; k < a.n_in; ++k) g.strides[k][0] = 0;
    return g;
  }
  g.nd = 1;
  g.dims[0] = dims[0];
  for (int k = 0; k < a.n_in; ++k) g.strides[k][0] = strides[k][0];
  for (int d = 1; d < nd; ++d) {
    bool mergeable = !(keep_last && d == nd - 1);
    for (int k = 0; k < a.n_in && mergeable; ++k)
      mergeable = g.strides[k][g.nd - 1] == strides[k][d] * dims[d];
    if (mergeable) {
      g.dims[g.nd - 1] *= dims[d];
      for (int k = 0; k < a.n_in; ++k) g.strides[k][g.nd - 1] = strides[k][d];
    } else {
      g.dims[g.nd] = dims[d];
      for (int k = 0; k < a.n_in; ++k) g.strides[k][g.nd] = strides[k][d];
      ++g.nd;
    }
  }
  return g;
}

template <typename S, typename T>
inline void load_convert(const void* base, int64_t off, int64_t stride, int64_t n, T* dst) {
  const S* p = static_cast<const S*>(base) + off;
  if (stride == 0) {
    T v = static_cast<T>(p[0]);
    for (int64_t t = 0; t < n; ++t) dst[t] = v;
  } else {
    for (int64_t t = 0; t < n; ++t) dst[t] = static_cast<T>(p[t]);
  }
}

template <typename T>
void load_any(const Tensor& in, int64_t off, int64_t stride, int64_t n, T* dst) {
  switch (in.dtype) {
    case DType::F32: load_convert<float>(in.data, off, stride, n, dst); break;
    case DType::F64: load_convert<double>(in.data, off, stride, n, dst); break;
    case DType::I32: load_convert<int32_t>(in.data, off, stride, n, dst); break;
    case DType::I64: load_convert<int64_t>(in.data, off, stride, n, dst); break;
    case DType::Bool: load_convert<uint8_t>(in.data, off, stride, n, dst); break;
  }
}

template <typename D, typename T>
inline void store_convert(void* base, int64_t off, int64_t n, const T* src) {
  D* p = static_cast<D*>(base) + off;
  if constexpr (std::is_same_v<D, uint8_t>) {
    for (int64_t t = 0; t < n; ++t) p[t] = src[t] != T(0);
  } else {
    for (int64_t t = 0; t < n; ++t) p[t] = static_cast<D>(src[t]);
  }
}

template <typename T>
void store_any(const Tensor& out, int64_t off, int64_t n, const T* src) {
  switch (out.dtype) {
    case DType::F32: store_convert<float>(out.data, off, n, src); break;
    case DType::F64: store_convert<double>(out.data, off, n, src); break;
    case DType::I32: store_convert<int32_t>(out.data, off, n, src); break;
    case DType::I64: store_convert<int64_t>(out.data, off, n, src); break;
    case DType::Bool: store_convert<uint8_t>(out.data, off, n, src); break;
  }
}

template <typename T>
constexpr DType dtype_of() {
  return std::is_same_v<T, float> ? DType::F32 : DType::F64;
}

// Executes the program on one tile of n elements. src[k] points at input k's n values, reg[r] at register r.
template <typename T>
void run_tile(const int64_t* instr, int n_instr, const double* imm, const T* const* src, T (*reg)[kTile],
              int64_t n, const KernelArgs& a, int64_t out_off, int64_t flat0) {
  auto operand = [&](int64_t r) -> const T* { return r >= 0 ? reg[r] : src[-r - 1]; };
  for (int i = 0; i < n_instr; ++i) {
    const int64_t* ins = instr + i * kInstrInts;
    const EwOp op = static_cast<EwOp>(ins[0]);
    const T c = static_cast<T>(imm[i]);
    if (op == EwOp::STORE) {
      store_any<T>(a.out[ins[1]], out_off, n, operand(ins[2]));
      continue;
    }
    T* d = reg[ins[1]];
    // Operand fields beyond an opcode's arity may hold anything (a salt): resolve only what it reads.
    const T* x = ins[0] != static_cast<int64_t>(EwOp::DROPOUT_MASK) && ins[0] != static_cast<int64_t>(EwOp::CONST)
                     ? operand(ins[2]) : nullptr;
    const T* y = op >= EwOp::ADD && op <= EwOp::WHERE ? operand(ins[3]) : nullptr;
#define UNARY(expr)                                 \
  for (int64_t t = 0; t < n; ++t) { const T v = x[t]; d[t] = (expr); } \
  break;
#define BINARY(expr)                                                     \
  for (int64_t t = 0; t < n; ++t) { const T u = x[t], v = y[t]; d[t] = (expr); } \
  break;
    switch (op) {
      case EwOp::CONST: for (int64_t t = 0; t < n; ++t) d[t] = c; break;
      case EwOp::COPY: UNARY(v)
      case EwOp::NEG: UNARY(-v)
      case EwOp::EXP: UNARY(std::exp(v))
      case EwOp::LOG: UNARY(std::log(v))
      case EwOp::SQRT: UNARY(std::sqrt(v))
      case EwOp::RSQRT: UNARY(T(1) / std::sqrt(v))
      case EwOp::ABS: UNARY(std::fabs(v))
      case EwOp::SIGN: UNARY(T((v > T(0)) - (v < T(0))))
      case EwOp::RECIP: UNARY(T(1) / v)
      case EwOp::SQUARE: UNARY(v * v)
      case EwOp::RELU: UNARY(v > T(0) ? v : T(0))
      case EwOp::STEP: UNARY(v > T(0) ? T(1) : T(0))
      case EwOp::LEAKY_RELU: UNARY(v > T(0) ? v : c * v)
      case EwOp::LEAKY_STEP: UNARY(v > T(0) ? T(1) : c)
      case EwOp::SIGMOID: UNARY(ew::sigmoid(v))
      case EwOp::TANH: UNARY(std::tanh(v))
      case EwOp::GELU_ERF: UNARY(ew::gelu_erf(v))
      case EwOp::GELU_ERF_GRAD: UNARY(ew::gelu_erf_grad(v))
      case EwOp::GELU_TANH: UNARY(ew::gelu_tanh(v))
      case EwOp::GELU_TANH_GRAD: UNARY(ew::gelu_tanh_grad(v))
      case EwOp::SOFTPLUS: UNARY(ew::softplus(v))
      case EwOp::ERF: UNARY(std::erf(v))
      case EwOp::ADD_SCALAR: UNARY(v + c)
      case EwOp::MUL_SCALAR: UNARY(v * c)
      case EwOp::POW_SCALAR: UNARY(std::pow(v, c))
      case EwOp::CLAMP_ABS: UNARY(v > c ? c : (v < -c ? -c : v))
      case EwOp::ADD: BINARY(u + v)
      case EwOp::SUB: BINARY(u - v)
      case EwOp::MUL: BINARY(u * v)
      case EwOp::DIV: BINARY(u / v)
      case EwOp::POW: BINARY(std::pow(u, v))
      case EwOp::MIN: BINARY(u < v ? u : v)
      case EwOp::MAX: BINARY(u > v ? u : v)
      case EwOp::EQ: BINARY(T(u == v))
      case EwOp::NE: BINARY(T(u != v))
      case EwOp::LT: BINARY(T(u < v))
      case EwOp::LE: BINARY(T(u <= v))
      case EwOp::GT: BINARY(T(u > v))
      case EwOp::GE: BINARY(T(u >= v))
      case EwOp::WHERE: {
        const T* z = operand(ins[4]);
        for (int64_t t = 0; t < n; ++t) d[t] = x[t] != T(0) ? y[t] : z[t];
        break;
      }
      case EwOp::DROPOUT_MASK: {
        const double keep = imm[i];
        const T scale = keep > 0 ? T(1.0 / keep) : T(0);
        const uint64_t salt = static_cast<uint64_t>(ins[3]);
        for (int64_t t = 0; t < n; ++t)
          d[t] = ew::uniform01(a.ctx->seed, a.ctx->step, salt, static_cast<uint64_t>(flat0 + t)) < keep ? scale : T(0);
        break;
      }
      case EwOp::STORE: break;
    }
#undef UNARY
#undef BINARY
  }
}

void validate_program(const KernelArgs& a, const int64_t* code, int n_code, int n_imm) {
  kernel_check(n_code >= kHeader, "ew program header");
  const int n_regs = static_cast<int>(code[1]), n_instr = static_cast<int>(code[2]);
  kernel_check(n_regs >= 0 && n_regs <= kMaxRegs, "ew register count");
  kernel_check(a.n_in <= kMaxIn, "ew input count");
  kernel_check(n_code == kHeader + n_instr * kInstrInts && n_imm >= n_instr, "ew program length");
  const int64_t n_ops = static_cast<int64_t>(EwOp::DROPOUT_MASK) + 1;
  for (int i = 0; i < n_instr; ++i) {
    const int64_t* ins = code + kHeader + i * kInstrInts;
    kernel_check(ins[0] >= 0 && ins[0] < n_ops, "ew opcode");
    if (static_cast<EwOp>(ins[0]) == EwOp::STORE) {
      kernel_check(ins[1] >= 0 && ins[1] < a.n_out, "ew store target");
      kernel_check(a.out[ins[1]].numel() == a.out[0].numel(), "ew output size");
    } else {
      kernel_check(ins[1] >= 0 && ins[1] < n_regs, "ew destination register");
    }
    // Only real operands are checked: DROPOUT_MASK keeps its salt in the b field.
    static const int kArity[] = {
#define DLC_EW_ARITY_ENTRY(name, arity) arity,
        DLC_EW_OPCODES(DLC_EW_ARITY_ENTRY)
#undef DLC_EW_ARITY_ENTRY
    };
    for (int j = 2; j < 2 + kArity[ins[0]]; ++j) kernel_check(ins[j] < n_regs && ins[j] >= -a.n_in, "ew operand");
  }
  if (a.n_out > 0)
    for (int k = 0; k < a.n_in; ++k) kernel_check(a.in[k].ndim <= a.out[0].ndim, "ew input rank");
}

template <typename T>
void run_window(const KernelArgs& a, const int64_t* code, const double* imm, int64_t row0, int64_t row1,
                int64_t col0, int64_t col1, bool keep_last, bool parallel) {
  const Geometry g = make_geometry(a, keep_last);
  const int n_instr = static_cast<int>(code[2]);
  const int64_t* instr = code + kHeader;
  const int64_t L = g.dims[g.nd - 1];
  if (row1 < 0) {
    row1 = a.out[0].numel() / std::max<int64_t>(L, 1);
    col1 = L;
  }
  if (row1 <= row0 || col1 <= col0 || L == 0) return;
  const int64_t tiles_per_row = (col1 - col0 + kTile - 1) / kTile;
  const int64_t n_tasks = (row1 - row0) * tiles_per_row;
  const bool go_parallel = parallel && (row1 - row0) * (col1 - col0) > 32768;

#pragma omp parallel if (go_parallel)
  {
    alignas(64) T reg[kMaxRegs][kTile];
    alignas(64) T inbuf[kMaxIn][kTile];
    const T* src[kMaxIn];
#pragma omp for schedule(static)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t r = row0 + task / tiles_per_row;
      const int64_t j0 = col0 + (task % tiles_per_row) * kTile;
      const int64_t n = std::min(kTile, col1 - j0);
      for (int k = 0; k < a.n_in; ++k) {
        int64_t off = 0, rem = r;
        for (int d = g.nd - 2; d >= 0; --d) {
          off += (rem % g.dims[d]) * g.strides[k][d];
          rem /= g.dims[d];
        }
        const int64_t inner = g.strides[k][g.nd - 1];
        off += j0 * inner;
        if (a.in[k].dtype == dtype_of<T>() && inner == 1) {
          src[k] = static_cast<const T*>(a.in[k].data) + off;
        } else {
          load_any<T>(a.in[k], off, inner, n, inbuf[k]);
          src[k] = inbuf[k];
        }
      }
      run_tile<T>(instr, n_instr, imm, src, reg, n, a, r * L + j0, r * L + j0);
    }
  }
}

void ew_kernel(const KernelArgs& a) {
  kernel_check(a.n_out >= 1, "ew needs an output");
  validate_program(a, a.ints, a.n_ints, a.n_floats);
  if (a.out[0].numel() == 0) return;
  if (a.ints[0] == 1)
    run_window<double>(a, a.ints, a.floats, 0, -1, 0, -1, false, true);
  else
    run_window<float>(a, a.ints, a.floats, 0, -1, 0, -1, false, true);
}

}  // namespace

void ew_run_window(const KernelArgs& a, const int64_t* code, int n_code, const double* imm, int n_imm,
                   int64_t row0, int64_t row1, int64_t col0, int64_t col1, bool parallel) {
  if (code[0] == 1)
    run_window<double>(a, code, imm, row0, row1, col0, col1, true, parallel);
  else
    run_window<float>(a, code, imm, row0, row1, col0, col1, true, parallel);
}

void ew_validate(const KernelArgs& a, const int64_t* code, int n_code, int n_imm) {
  validate_program(a, code, n_code, n_imm);
}

std::vector<std::string> ew_opcode_names() {
  return {
#define DLC_EW_NAME(name, arity) #name,
      DLC_EW_OPCODES(DLC_EW_NAME)
#undef DLC_EW_NAME
  };
}

std::vector<int> ew_opcode_arities() {
  return {
#define DLC_EW_ARITY(name, arity) arity,
      DLC_EW_OPCODES(DLC_EW_ARITY)
#undef DLC_EW_ARITY
  };
}

DLC_REGISTER_KERNEL("ew", Device::CPU, ew_kernel);

}  // namespace dlc
