#pragma once
#include <cstdint>
#include <memory>

namespace dlc {

// Called once for every finished block of C (after the last K block has been accumulated into it), with
// C pointing at element (0,0) of the whole matrix: the block is rows [i0, i0+m) x cols [j0, j0+n).
// Several threads may call it at once for disjoint blocks. ctx is passed through untouched.
// It lets the graph compiler apply a fused elementwise epilogue (bias, activation, residual) while the
// block is still in cache. Blocks are at most MC rows x a few hundred columns, so they sit in L2.
template <typename T>
using GemmEpilogueFn = void (*)(void* ctx, T* C, int64_t ldc, int64_t i0, int64_t j0, int64_t m, int64_t n);

// Called instead of storing a finished register tile (at most MR x NR of the kernel path in use) of the
// blocked path: the micro-kernel has written the tile's final values to `tile` (row i at tile + i * ld_tile,
// rows [i0, i0+m) x cols [j0, j0+n) of C, in L1) and not to C, so the epilogue reads them without waiting for
// C's cache lines and writes to memory only what it stores (C too, if C is wanted). Several threads call it
// at once for disjoint tiles.
template <typename T>
using GemmTileEpilogueFn = void (*)(void* ctx, const T* tile, int64_t ld_tile, int64_t i0, int64_t j0, int64_t m,
                                    int64_t n);

// The GEMM's unit of the thread cost model (runtime/thread_pool.h, threads_for): multiply-adds per thread. A
// product of M x N x K gets 1 + M*N*K / kGemmMacsPerThread threads, at most the configured ones, and runs
// inline on the caller when that is one. Measured with benchmarks/threads_bench.py.
constexpr double kGemmMacsPerThread = 131072;

// op(B) packed ahead of the calls that read it (a constant weight): every KC x NR micro-panel of every NC block,
// in the layout the blocked loop of the kernel path in use reads. Made by gemm_pack_b; valid for that path, the
// same trans_b, K and N, and only while B's values are those it was packed from (the caller's business: see
// Plan's weight versions).
template <typename T>
struct GemmPackedB {
  int isa = -1;
  bool trans_b = false;
  int64_t K = 0, N = 0;
  std::unique_ptr<T, void (*)(void*)> data{nullptr, nullptr};
  int64_t elements = 0;
  size_t bytes() const { return static_cast<size_t>(elements) * sizeof(T); }
};

// Packs op(B) (K x N; stored N x K when trans_b) for the kernel path in use.
template <typename T>
GemmPackedB<T> gemm_pack_b(bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb);

// Whether an M x N x K product on the kernel path in use would read a GemmPackedB (false where it streams B even
// when B is packed ahead: one row or column, or few rows on a path where streaming measures faster).
template <typename T>
bool gemm_reads_packed_b(bool trans_b, int64_t M, int64_t N, int64_t K);

// C[M,N] = alpha * op(A) @ op(B) + beta * C, then epilogue on each finished block (if fn != nullptr).
// With packed_b made from this B for this path, trans_b, K and N, the blocked loop reads it instead of packing
// B (same arithmetic, same bits); B itself must still be given (the streaming paths read it).
// With a tile_epilogue, the blocked path hands it every finished tile instead (see GemmTileEpilogueFn) when K
// fits one K block; with several K blocks, and on the matrix-vector and K == 0 paths, C is stored and
// `epilogue` is called on its blocks, so it must be given too.
// op(A) is A (M x K, row-major, leading dim lda) or, if trans_a, A is stored K x M (row-major, lda) and used transposed.
// op(B) is B (K x N, row-major, ldb) or, if trans_b, B is stored N x K (row-major, ldb).
// beta == 0 must not read C (it may hold NaN garbage). alpha == 0 does not read A or B.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
          GemmEpilogueFn<T> epilogue = nullptr, void* epilogue_ctx = nullptr,
          GemmTileEpilogueFn<T> tile_epilogue = nullptr, const GemmPackedB<T>* packed_b = nullptr);
// explicit instantiations for float and double exist in gemm_cpu.cpp

// Forces the portable scalar micro-kernel (for tests comparing the SIMD and scalar paths). Process-wide;
// off means automatic selection again. Same as gemm_force_isa(on ? "scalar" : "").
void gemm_force_scalar(bool on);
// Forces one kernel path for all later GEMMs (tests and benchmarks comparing the paths). Process-wide.
// "avx512", "avx2" or "scalar"; "" (or nullptr) restores automatic selection, which takes the best the CPU
// supports in that order. An ISA the CPU lacks falls back to the best one below it (gemm_kernel_name()
// says which runs); an unknown name throws std::invalid_argument.
void gemm_force_isa(const char* isa);
// How products with few rows of C treat B (tests and benchmarks comparing the forms). Process-wide. "packed":
// always pack B into panels; "stream": read B in place whenever a kernel can (not transposed: the blocked
// loop's direct-B kernels; transposed: the small-M dot kernels), whatever M is; "" restores the automatic
// choice by the row limits measured per path. An unknown name throws std::invalid_argument.
void gemm_force_small_m(const char* mode);
// Name of the kernel path in use: "avx512", "avx2" or "scalar".
const char* gemm_kernel_name();

// Threads that ran the most recent GEMM large enough to go parallel (a test hook: a plan must not run its
// GEMMs inside another parallel region, where they would get one thread).
int gemm_last_team_size();

// Where the fused epilogue of the calling thread's most recent GEMM ran (a test hook for the blocked loop's
// rule, docs/optimizer.md): "tile" on register tiles in L1, "block" on finished blocks of C, "" without one.
const char* gemm_last_epilogue_form();

}  // namespace dlc
