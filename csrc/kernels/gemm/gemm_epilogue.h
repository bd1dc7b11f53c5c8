// A fused elementwise epilogue (an "ew" program: bias, activation, its gradient, residual, scale, extra stores)
// prepared once per GEMM call to run on the GEMM's register tiles while they are in L1, instead of as a second
// pass over finished MC x 256 blocks in L2.
//
// The GEMM (gemm(..., tile_epilogue)) hands every finished MR x NR tile to the epilogue in an L1 buffer instead
// of storing it to C. The tile evaluator copies the other operands' part of the tile into L1 buffers of
// exactly the register-tile shape of the active kernel path, runs the program over whole buffers (loops of a
// compile-time length, vectorized for the path's ISA, the same instruction bodies as the "ew" kernel), and
// stores the outputs' valid rows and columns. Common pairs get one loop of their own (gelu and its gradient
// of the same value share erf and exp). A program the tile form cannot take (other dtypes, a broadcast the
// rows cannot address with one stride, random numbers) keeps the general evaluator (ew_run_window) on blocks.
#pragma once
#include <cstdint>
#include <string>

#include "dispatch.h"

namespace dlc {

constexpr int kEpilogueMaxIn = 16;
constexpr int kEpilogueMaxOut = 16;
constexpr int kEpilogueMaxSteps = 64;

// Element (r, c) of an operand viewed as [rows, cols] (cols = the output's last dimension) is at
// base + r * rs + c * cs; cs is 1, or 0 for an operand broadcast along the columns.
template <typename T>
struct EpilogueOperand {
  const T* base = nullptr;
  int64_t rs = 0, cs = 0;
};

// What the tile loop does, in program order: run a stretch of plain instructions, fuse a pair, or store.
struct EpilogueStep {
  enum Kind : uint8_t { kRun, kGeluPair, kStore } kind;
  int first = 0, count = 0;  // kRun: instructions [first, first + count)
  int64_t src = 0;           // kGeluPair: the operand; kStore: the stored operand
  int64_t dst = 0, dst2 = 0; // kGeluPair: registers of gelu(src) (-1: not wanted) and gelu'(src); kStore: output
};

template <typename T>
struct TileEpilogue;

// Runs the epilogue on rows [r0, r1) x columns [c0, c1) of the [rows, cols] view, in tiles of the GEMM path's
// register-tile shape. Input 0 (the GEMM result) comes from `tile` (row i at tile + i * ld_tile, relative to
// (r0, c0)) when it is given, else from its tensor.
template <typename T>
using TileEpilogueRun = void (*)(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1,
                                 int64_t c0, int64_t c1);

template <typename T>
struct TileEpilogue {
  const int64_t* instr = nullptr;  // the program's instructions (5 ints each) and immediates
  const double* imm = nullptr;
  const KernelArgs* args = nullptr;
  int n_in = 0, n_out = 0;
  EpilogueOperand<T> in[kEpilogueMaxIn];
  uint32_t used_in = 0;  // bit k: the program reads input k
  T* out[kEpilogueMaxOut] = {};
  uint32_t stored_out = 0;  // bit j: a STORE writes output j and no earlier output shares its memory
  int64_t rows = 0, ldo = 0;  // outputs are contiguous [rows, ldo]
  int n_steps = 0;
  EpilogueStep steps[kEpilogueMaxSteps];
  TileEpilogueRun<T> run = nullptr;  // the tile loop of the GEMM path chosen when it was prepared
  bool per_tile = true;  // run on each register tile (else on the GEMM's finished blocks, C in memory)
};

// Prepares the tile form of program `code` (the "ew" layout) over `a` (inputs: the program's; outputs: the
// step's, all of the shape of out[0]) for the GEMM path in use. False when the program needs the general
// evaluator.
template <typename T>
bool prepare_tile_epilogue(const KernelArgs& a, const int64_t* code, int n_code, const double* imm,
                           TileEpilogue<T>* e);

// Prepared programs store the GEMM result themselves when no STORE overwrites its memory (out[0] unless an
// output aliases it): with `tile`, C itself is never written by the GEMM.

// Forces one form for every later epilogue (tests and benchmarks compare them). Process-wide. "tile": on each
// register tile in L1; "block": the prepared program on finished MC x 256 blocks of C; "general": the general
// evaluator on those blocks; "" restores the automatic choice (see prepare_tile_epilogue).
void gemm_epilogue_force_form(const std::string& form);

// The tile loops, one per kernel path (gemm_epilogue_{generic,avx2,avx512}.cpp; float and double).
template <typename T>
void tile_epilogue_generic(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1,
                           int64_t c0, int64_t c1);
template <typename T>
void tile_epilogue_avx2(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1, int64_t c0,
                        int64_t c1);
template <typename T>
void tile_epilogue_avx512(const TileEpilogue<T>& e, const T* tile, int64_t ld_tile, int64_t r0, int64_t r1,
                          int64_t c0, int64_t c1);

}  // namespace dlc
