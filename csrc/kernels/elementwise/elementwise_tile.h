// The instruction loop of the elementwise evaluator, over one tile. It is compiled three times, into generic,
// AVX2+FMA and AVX-512 translation units (elementwise_tile_*.cpp), and elementwise_cpu.cpp picks one at run
// time. Internal linkage throughout (see fastmath.h): the copies must never be merged by the linker.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/elementwise/elementwise.h"
#include "kernels/elementwise/formulas.h"

namespace dlc {

constexpr int64_t kTile = 256;
constexpr int kInstrInts = 5;

// What one tile needs: the program, where each input's n values are, the register file, where to store.
template <typename T>
struct TileArgs {
  const int64_t* instr;
  int n_instr;
  const double* imm;
  const T* const* src;
  T (*reg)[kTile];
  int64_t n;
  const KernelArgs* a;
  int64_t out_off;
  int64_t flat0;
};

void ew_tile_f32_generic(const TileArgs<float>& t);
void ew_tile_f64_generic(const TileArgs<double>& t);
void ew_tile_f32_avx2(const TileArgs<float>& t);
void ew_tile_f64_avx2(const TileArgs<double>& t);
void ew_tile_f32_avx512(const TileArgs<float>& t);
void ew_tile_f64_avx512(const TileArgs<double>& t);

namespace {

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
inline void load_any(const Tensor& in, int64_t off, int64_t stride, int64_t n, T* dst) {
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
inline void store_any(const Tensor& out, int64_t off, int64_t n, const T* src) {
  switch (out.dtype) {
    case DType::F32: store_convert<float>(out.data, off, n, src); break;
    case DType::F64: store_convert<double>(out.data, off, n, src); break;
    case DType::I32: store_convert<int32_t>(out.data, off, n, src); break;
    case DType::I64: store_convert<int64_t>(out.data, off, n, src); break;
    case DType::Bool: store_convert<uint8_t>(out.data, off, n, src); break;
  }
}


// Executes the program on one tile of n elements. src[k] points at input k's n values, reg[r] at register r.
template <typename T>
inline void run_tile(const TileArgs<T>& ta) {
  const int64_t* instr = ta.instr;
  const int n_instr = ta.n_instr;
  const double* imm = ta.imm;
  const T* const* src = ta.src;
  T(*reg)[kTile] = ta.reg;
  const int64_t n = ta.n;
  const KernelArgs& a = *ta.a;
  const int64_t out_off = ta.out_off, flat0 = ta.flat0;
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
    const int arity = kEwArity[ins[0]];
    const T* x = arity >= 1 ? operand(ins[2]) : nullptr;
    const T* y = arity >= 2 ? operand(ins[3]) : nullptr;
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
      case EwOp::EXP: UNARY(m_exp(v))
      case EwOp::LOG: UNARY(m_log(v))
      case EwOp::SQRT: UNARY(std::sqrt(v))
      case EwOp::RSQRT: UNARY(T(1) / std::sqrt(v))
      case EwOp::ABS: UNARY(std::fabs(v))
      case EwOp::SIGN: UNARY(v != v ? v : T((v > T(0)) - (v < T(0))))  // sign(NaN) is NaN
      case EwOp::RECIP: UNARY(T(1) / v)
      case EwOp::SQUARE: UNARY(v * v)
      case EwOp::RELU: UNARY(v < T(0) ? T(0) : v)  // written so that relu(NaN) is NaN, as in IEEE and PyTorch
      case EwOp::STEP: UNARY(v > T(0) ? T(1) : T(0))
      case EwOp::LEAKY_RELU: UNARY(v > T(0) ? v : c * v)
      case EwOp::LEAKY_STEP: UNARY(v > T(0) ? T(1) : c)
      case EwOp::SIGMOID: UNARY(m_sigmoid(v))
      case EwOp::TANH: UNARY(m_tanh(v))
      case EwOp::GELU_ERF: UNARY(m_gelu_erf(v))
      case EwOp::GELU_ERF_GRAD: UNARY(m_gelu_erf_grad(v))
      case EwOp::GELU_TANH: UNARY(m_gelu_tanh(v))
      case EwOp::GELU_TANH_GRAD: UNARY(m_gelu_tanh_grad(v))
      case EwOp::SOFTPLUS: UNARY(m_softplus(v))
      case EwOp::ERF: UNARY(m_erf(v))
      case EwOp::ADD_SCALAR: UNARY(v + c)
      case EwOp::MUL_SCALAR: UNARY(v * c)
      case EwOp::POW_SCALAR: UNARY(std::pow(v, c))
      case EwOp::CLAMP_ABS: UNARY(v > c ? c : (v < -c ? -c : v))
      case EwOp::ADD: BINARY(u + v)
      case EwOp::SUB: BINARY(u - v)
      case EwOp::MUL: BINARY(u * v)
      case EwOp::DIV: BINARY(u / v)
      case EwOp::POW: BINARY(std::pow(u, v))
      case EwOp::MIN: BINARY(u < v || u != u ? u : v)  // a NaN on either side wins
      case EwOp::MAX: BINARY(u > v || u != u ? u : v)
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
      case EwOp::RAND_UNIFORM: {
        const uint64_t salt = static_cast<uint64_t>(ins[3]);
        for (int64_t t = 0; t < n; ++t)
          d[t] = T(ew::uniform01(a.ctx->seed, a.ctx->step, salt, static_cast<uint64_t>(flat0 + t)));
        break;
      }
      case EwOp::RAND_NORMAL: {
        const uint64_t salt = static_cast<uint64_t>(ins[3]);
        for (int64_t t = 0; t < n; ++t)
          d[t] = T(ew::normal01(a.ctx->seed, a.ctx->step, salt, static_cast<uint64_t>(flat0 + t)));
        break;
      }
      case EwOp::STORE: break;
    }
#undef UNARY
#undef BINARY
  }
}

}  // namespace
}  // namespace dlc
