// Scalar math of the elementwise family, written once. The tile evaluator (elementwise_cpu.cpp) runs these
// over tiles; a CUDA evaluator can include the same functors (DLC_HD marks them host/device).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dispatch.h"

#ifdef __CUDACC__
#define DLC_HD __host__ __device__
#else
#define DLC_HD
#endif

namespace dlc {

// The opcode list is the single source of truth: Python reads the names through the binding
// `ew_opcodes()` and encodes programs by position, so the two sides cannot drift apart.
// Columns: name, arity. Immediate operands (leaky slope, scalar constants, keep probability) come from the
// instruction's float.
#define DLC_EW_OPCODES(X) \
  X(STORE, 1)             \
  X(CONST, 0)             \
  X(COPY, 1)              \
  X(NEG, 1)               \
  X(EXP, 1)               \
  X(LOG, 1)               \
  X(SQRT, 1)              \
  X(RSQRT, 1)             \
  X(ABS, 1)               \
  X(SIGN, 1)              \
  X(RECIP, 1)             \
  X(SQUARE, 1)            \
  X(RELU, 1)              \
  X(STEP, 1)              \
  X(LEAKY_RELU, 1)        \
  X(LEAKY_STEP, 1)        \
  X(SIGMOID, 1)           \
  X(TANH, 1)              \
  X(GELU_ERF, 1)          \
  X(GELU_ERF_GRAD, 1)     \
  X(GELU_TANH, 1)         \
  X(GELU_TANH_GRAD, 1)    \
  X(SOFTPLUS, 1)          \
  X(ERF, 1)               \
  X(ADD_SCALAR, 1)        \
  X(MUL_SCALAR, 1)        \
  X(POW_SCALAR, 1)        \
  X(CLAMP_ABS, 1)         \
  X(ADD, 2)               \
  X(SUB, 2)               \
  X(MUL, 2)               \
  X(DIV, 2)               \
  X(POW, 2)               \
  X(MIN, 2)               \
  X(MAX, 2)               \
  X(EQ, 2)                \
  X(NE, 2)                \
  X(LT, 2)                \
  X(LE, 2)                \
  X(GT, 2)                \
  X(GE, 2)                \
  X(WHERE, 3)             \
  X(DROPOUT_MASK, 0)      \
  X(RAND_UNIFORM, 0)      \
  X(RAND_NORMAL, 0)

enum class EwOp : int64_t {
#define DLC_EW_ENUM(name, arity) name,
  DLC_EW_OPCODES(DLC_EW_ENUM)
#undef DLC_EW_ENUM
};

// Operand count of each opcode; fields past it hold data (a random op's salt), never register numbers.
inline constexpr int kEwArity[] = {
#define DLC_EW_ARITY_ENTRY(name, arity) arity,
    DLC_EW_OPCODES(DLC_EW_ARITY_ENTRY)
#undef DLC_EW_ARITY_ENTRY
};
inline constexpr int64_t kEwOpCount = sizeof(kEwArity) / sizeof(kEwArity[0]);

namespace ew {

// Counter-based dropout: the mask of element i is a pure function of (seed, step, salt, i), so it is the
// same for any thread count, is recomputed by the backward pass instead of stored, and resumes exactly.
DLC_HD inline double uniform01(uint64_t seed, uint64_t step, uint64_t salt, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL ^ (step + 1) * 0xBF58476D1CE4E5B9ULL ^ (salt + 1) * 0x94D049BB133111EBULL;
  z += i * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

// A standard normal draw for element i from the same counter stream (Box-Muller on the uniforms of
// counters 2i and 2i+1), so random tensors share dropout's guarantees: any thread count, resumable.
DLC_HD inline double normal01(uint64_t seed, uint64_t step, uint64_t salt, uint64_t i) {
  const double u1 = 1.0 - uniform01(seed, step, salt, 2 * i);  // (0, 1]: log stays finite
  const double u2 = uniform01(seed, step, salt, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace ew

// Runs an elementwise program over the rows [row0, row1) and columns [col0, col1) of `out` viewed as
// [rows, last_dim]. The matmul kernel calls it as its fused epilogue on finished GEMM blocks; with the
// whole range it is the "ew" kernel. See elementwise_cpu.cpp for the program layout.
void ew_run_window(const KernelArgs& a, const int64_t* code, int n_code, const double* imm, int n_imm,
                   int64_t row0, int64_t row1, int64_t col0, int64_t col1, bool parallel);
// Checks a program against its operands before anything runs (bad programs throw, never corrupt memory).
void ew_validate(const KernelArgs& a, const int64_t* code, int n_code, int n_imm);
// Row-wise access to the evaluator, for kernels that walk the rows of their iteration space themselves and
// do row work between programs (layer norm with its elementwise producers and consumers fused,
// kernels/norm/layer_norm_fused_cpu.cpp). The space is a.out[0]'s shape viewed as [rows, last dim]; inputs
// broadcast to it as in "ew"; STORE k writes a.out[k] at the element's offset in the space.
constexpr int64_t kEwTileWidth = 256;
constexpr int kEwMaxRegs = 32;
constexpr int kEwMaxInputs = 16;

struct EwRowProgram {
  KernelArgs args;  // the operands (pointers into the caller's arrays, which must outlive this)
  const int64_t* instr = nullptr;
  int n_instr = 0;
  const double* imm = nullptr;
  bool f64 = false;
  int nd = 1;
  int64_t dims[kMaxRank] = {1};
  int64_t strides[kEwMaxInputs][kMaxRank] = {};
  int64_t cols = 0;
  int64_t mask_base = 0;
  // Register written by instruction i (the caller reads results from there after ew_row_tile).
  int64_t result_reg(int i) const { return instr[i * 5 + 1]; }
};

template <typename T>
struct EwTileRegs {
  alignas(64) T reg[kEwMaxRegs][kEwTileWidth];
  alignas(64) T inbuf[kEwMaxInputs][kEwTileWidth];
};

// Validates `code` ("ew" layout) against the operands and binds them (throws on a bad program).
EwRowProgram ew_row_program(const KernelArgs& a, const int64_t* code, int n_code, const double* imm, int n_imm);
// Runs the program on columns [j0, j0 + n) of row r, n <= kEwTileWidth. in0, when not null, holds input 0's n
// values (a value the caller computed, e.g. the normalized row); the others are read from their tensors.
void ew_row_tile(const EwRowProgram& p, EwTileRegs<float>& regs, int64_t r, int64_t j0, int64_t n, const float* in0);
void ew_row_tile(const EwRowProgram& p, EwTileRegs<double>& regs, int64_t r, int64_t j0, int64_t n,
                 const double* in0);
std::vector<std::string> ew_opcode_names();
// Forces a tile loop: "generic", "avx2", "avx512" (capped at what the CPU has), or "" for the best. Tests
// compare the paths. Process-wide.
void ew_force_isa(const std::string& name);
const char* ew_kernel_name();
// The tile loop in use as a number (0 generic, 1 AVX2, 2 AVX-512), for kernels that pick their own per-ISA
// code to match it (so forcing a path in a test forces theirs too).
int ew_isa_level();
std::vector<int> ew_opcode_arities();

}  // namespace dlc
