// Blocked GEMM driver (BLIS-style): the operands are copied into cache-sized, zero-padded micro-panels
// and a register-blocked micro-kernel runs over them.
//
//   for jc in N step NC:              B block (KC x NC) lives in L3, shared by all threads
//     for pc in K step KC:            pack B once, cooperatively
//       for ic in (this thread's rows) step MC:   A block (MC x KC) lives in this core's L2
//         pack A
//         for jr in (this thread's cols) step NR:  B micro-panel (KC x NR) stays in L1
//           for ir in mc step MR:     micro-kernel on an MR x NR tile of C
//
// Threads split the M (ic) and/or N (jr) range of each jc block, so every element of C is produced by
// exactly one thread in a fixed order: results do not depend on scheduling.

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

#include "gemm.h"
#include "gemm_kernels.h"
#include "gemm_portable.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace gemm_detail {
namespace {

// Which micro-kernels run. Ordered: a CPU that has an ISA has every one before it.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Cache blocking per register tile. KC x NR of B (the micro-panel every row tile of a block reuses) plus
// the MR x KC A panel streaming past it must sit in the 32-48 KiB L1; MC x KC of A in the private L2 next
// to the C tiles being updated; KC x NC of B in L3. KC = 256 keeps the B micro-panel at 16 KiB for the
// AVX2 tiles and 32 KiB for the twice-as-wide AVX-512 ones (of Zen 5's 48 KiB). For the AVX-512 path,
// KC in 192..320 and MC in 192..512 measured the same within noise.
template <int64_t MR_, int64_t NR_, int64_t KC_, int64_t MC_, int64_t NC_>
struct Blocking {
  static constexpr int64_t MR = MR_, NR = NR_, KC = KC_, MC = MC_, NC = NC_;
  static_assert(MC % MR == 0 && NC % NR == 0, "blocks hold whole tiles");
};

// Width of the blocks handed to the epilogue: MC x 256 elements stay in L2 between the micro-kernel
// writing them and the epilogue reading them. A multiple of both NR values.
constexpr int64_t kEpilogueCols = 256;


constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Grow-only 64-byte aligned scratch, one per thread, so packing never allocates in steady state.
class ScratchBuffer {
 public:
  ~ScratchBuffer() { std::free(ptr_); }
  template <typename T>
  T* get(int64_t count) {
    const size_t bytes = static_cast<size_t>(round_up(count * static_cast<int64_t>(sizeof(T)), 64));
    if (bytes > capacity_) {
      std::free(ptr_);
      ptr_ = std::aligned_alloc(64, bytes);
      if (!ptr_) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
      capacity_ = bytes;
    }
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t capacity_ = 0;
};
thread_local ScratchBuffer tls_pack_a;
thread_local ScratchBuffer tls_pack_b;

// One GEMM path: its tile and blocking, its micro-kernels, packing kernels, matrix-vector and small-M kernels.
// A nullptr edge kernel means the driver runs the full kernel into a scratch tile; nullptr packing kernels mean
// the portable loops.
//
// Few rows of C: each packed B panel would serve at most M / MR row tiles, too few to repay copying it, so up
// to `direct_b_rows` rows the blocked loop reads op(B) in place (direct_b) when it is not transposed, and up to
// `small_dot_rows` rows a transposed B (stored N x K) is read in place by the dot-form kernel. The row limits
// are where streaming stopped measuring faster than packing (benchmarks/small_m_bench.py, f32, K and N of the
// workloads' dense layers). A B packed ahead (gemm_pack_b) costs nothing to pack, so its limits are lower
// (`packed_direct_b_rows`, `packed_small_dot_rows`): where the packed micro-kernel beat streaming at every row
// count from 2 (AVX-512, benchmarks/packing_bench.py --part small-m), 1; elsewhere streaming still wins, and they
// are the streaming limits.
template <Isa I, typename T>
struct Path;
template <typename T>
struct ScalarKernels {
  static constexpr MicroKernel<T> kernel = &microkernel_scalar<T>;
  static constexpr EdgeKernel<T> edge = nullptr;
  static constexpr DirectBKernel<T> direct_b = &microkernel_direct_b_scalar<T>;
  static constexpr SmallDotKernel<T> small_dot = &small_dot_scalar<T>;
  static constexpr PackKernel<T> pack_copy = nullptr, pack_transpose = nullptr;
  static constexpr GemvKernel<T> dot = &gemv_dot_scalar<T>, axpy = &gemv_axpy_scalar<T>;
  static constexpr int64_t direct_b_rows = 64, small_dot_rows = 64;
  static constexpr int64_t packed_direct_b_rows = direct_b_rows, packed_small_dot_rows = small_dot_rows;
};
template <>
struct Path<Isa::kScalar, float> : Blocking<Avx2Tile<float>::MR, Avx2Tile<float>::NR, 256, 288, 4096>,
                                   ScalarKernels<float> {};
template <>
struct Path<Isa::kScalar, double> : Blocking<Avx2Tile<double>::MR, Avx2Tile<double>::NR, 256, 144, 2048>,
                                    ScalarKernels<double> {};
template <typename T>
struct Path<Isa::kAvx2, T> : Path<Isa::kScalar, T> {
  static constexpr MicroKernel<T> kernel = &microkernel_avx2;
  static constexpr DirectBKernel<T> direct_b = &microkernel_direct_b_avx2;
  static constexpr SmallDotKernel<T> small_dot = &small_dot_avx2;
  static constexpr GemvKernel<T> dot = &gemv_dot_avx2, axpy = &gemv_axpy_avx2;
  static constexpr int64_t direct_b_rows = 32, small_dot_rows = 32;
  static constexpr int64_t packed_direct_b_rows = direct_b_rows, packed_small_dot_rows = small_dot_rows;
};
template <typename T>
struct Avx512Kernels {
  static constexpr MicroKernel<T> kernel = &microkernel_avx512;
  static constexpr EdgeKernel<T> edge = &microkernel_edge_avx512;
  static constexpr DirectBKernel<T> direct_b = &microkernel_direct_b_avx512;
  static constexpr SmallDotKernel<T> small_dot = &small_dot_avx512;
  static constexpr PackKernel<T> pack_copy = &pack_copy_avx512, pack_transpose = &pack_transpose_avx512;
  static constexpr GemvKernel<T> dot = &gemv_dot_avx512, axpy = &gemv_axpy_avx512;
  static constexpr int64_t direct_b_rows = 64, small_dot_rows = 16;
  static constexpr int64_t packed_direct_b_rows = 1, packed_small_dot_rows = 1;
};
template <>
struct Path<Isa::kAvx512, float> : Blocking<Avx512Tile<float>::MR, Avx512Tile<float>::NR, 256, 256, 4096>,
                                   Avx512Kernels<float> {
  static_assert(MR % 8 == 0 && NR % 8 == 0, "the AVX-512 packing kernels work in blocks of 8");
};
template <>
struct Path<Isa::kAvx512, double> : Blocking<Avx512Tile<double>::MR, Avx512Tile<double>::NR, 256, 128, 2048>,
                                    Avx512Kernels<double> {
  static_assert(MR % 8 == 0 && NR % 8 == 0, "the AVX-512 packing kernels work in blocks of 8");
};

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-row micro-panels: panel r holds
// element (i, p) at r*kc*MR + p*MR + i. Rows past mc are zero so the kernel can always run full tiles.
template <typename P, typename T>
void pack_a(bool trans, const T* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, T* dst) {
  constexpr int64_t MR = P::MR;
  for (int64_t ir = 0; ir < mc; ir += MR, dst += kc * MR) {
    const int64_t mr = std::min(MR, mc - ir);
    if (trans) {
      // A is stored K x M: the MR values for one p are contiguous.
      const T* src = A + p0 * lda + i0 + ir;
      if constexpr (P::pack_copy != nullptr)
        P::pack_copy(src, lda, mr, kc, MR, dst);
      else
        pack_copy_portable<MR>(src, lda, mr, kc, dst);
    } else {
      const T* src = A + (i0 + ir) * lda + p0;
      if constexpr (P::pack_transpose != nullptr)
        P::pack_transpose(src, lda, mr, kc, MR, dst);
      else
        pack_transpose_portable<MR>(src, lda, mr, kc, dst);
    }
  }
}

// Packs one NR-column micro-panel of op(B): rows [p0, p0+kc) x cols [j0, j0+nr), element (p, j) at
// p*NR + j, columns past nr zero.
template <typename P, typename T>
void pack_b_panel(bool trans, const T* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nr, T* dst) {
  constexpr int64_t NR = P::NR;
  if (trans) {
    // B is stored N x K.
    const T* src = B + j0 * ldb + p0;
    if constexpr (P::pack_transpose != nullptr)
      P::pack_transpose(src, ldb, nr, kc, NR, dst);
    else
      pack_transpose_portable<NR>(src, ldb, nr, kc, dst);
  } else {
    const T* src = B + p0 * ldb + j0;
    if constexpr (P::pack_copy != nullptr)
      P::pack_copy(src, ldb, nr, kc, NR, dst);
    else
      pack_copy_portable<NR>(src, ldb, nr, kc, dst);
  }
}

// -1: the best the CPU supports; otherwise an Isa value set by gemm_force_isa / gemm_force_scalar.
std::atomic<int> g_forced_isa{-1};
std::atomic<int> g_last_team{0};  // threads of the most recent large GEMM (tests check plans use them all)
// Where the epilogue of this thread's most recent GEMM ran (gemm_last_epilogue_form): per thread, written once
// per call, so the hook costs the kernel nothing.
enum EpilogueForm : int { kNoEpilogue = 0, kOnTiles, kOnBlocks };
thread_local int t_epilogue_form = kNoEpilogue;
// gemm_force_small_m: -1 automatic, 0 always pack B, 1 read B in place whenever a kernel can.
std::atomic<int> g_small_m{-1};

// Whether a product with M rows reads B in place rather than packing it (see Path).
bool stream_b(int64_t M, int64_t max_rows) {
  const int forced = g_small_m.load(std::memory_order_relaxed);
  return forced < 0 ? M <= max_rows : forced == 1;
}

Isa cpu_isa() {
  static const Isa best = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::kScalar;
    // gemm_avx512.cpp is compiled for all four; __builtin_cpu_supports also checks that the OS saves the
    // zmm and mask registers.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
      return Isa::kAvx512;
    return Isa::kAvx2;
  }();
  return best;
}

// A forced ISA the CPU lacks falls back to the best one it has.
Isa active_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  const Isa best = cpu_isa();
  return forced < 0 ? best : std::min(static_cast<Isa>(forced), best);
}

// K == 0 or alpha == 0: C = beta * C, then the epilogue over blocks of the size the main path uses.
template <typename P, typename T>
void scale_only(int64_t M, int64_t N, T beta, T* C, int64_t ldc, GemmEpilogueFn<T> epilogue, void* ctx) {
  for (int64_t i0 = 0; i0 < M; i0 += P::MC) {
    const int64_t m = std::min(P::MC, M - i0);
    for (int64_t j0 = 0; j0 < N; j0 += kEpilogueCols) {
      const int64_t n = std::min(kEpilogueCols, N - j0);
      for (int64_t i = i0; i < i0 + m; ++i) {
        T* c = C + i * ldc;
        for (int64_t j = j0; j < j0 + n; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
      }
      if (epilogue) epilogue(ctx, C, ldc, i0, j0, m, n);
    }
  }
}

// M == 1 or N == 1: every element of the matrix operand is used once, so the product is bound by reading
// it; stream it directly instead of packing. The vector operand is made contiguous, the outputs are split
// into chunks across threads and each finished chunk goes to the epilogue.
template <typename P, typename T>
void gemv(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, GemmEpilogueFn<T> epilogue, void* ctx) {
  // Outputs per chunk: a multiple of the SIMD kernels' column block, small enough to give both cores work.
  constexpr int64_t kChunk = 256;
  const bool row = M == 1;  // C is one row: y = op(A) row . op(B); otherwise one column: y = op(A) . op(B) col
  const int64_t n = row ? N : M;
  const int64_t incy = row ? 1 : ldc;
  const T* w = row ? B : A;
  const int64_t ldw = row ? ldb : lda;
  // W(p, j) = w[j*ldw + p] when op(B) is stored transposed (row case) or op(A) is not (column case).
  const bool dot_form = row ? trans_b : !trans_a;
  const T* x = row ? A : B;
  const int64_t incx = row ? (trans_a ? lda : 1) : (trans_b ? 1 : ldb);
  if (incx != 1) {
    T* xc = tls_pack_a.get<T>(K);
    for (int64_t p = 0; p < K; ++p) xc[p] = x[p * incx];
    x = xc;
  }
  const GemvKernel<T> kernel = dot_form ? P::dot : P::axpy;
  const int64_t chunks = ceil_div(n, kChunk);
  const Threads parallel = threads_for(static_cast<double>(n) * K, kGemmMacsPerThread);
  parallel_items(chunks, [&](int64_t c, int) {
    const int64_t j0 = c * kChunk, nb = std::min(kChunk, n - j0);
    kernel(nb, K, dot_form ? w + j0 * ldw : w + j0, ldw, x, alpha, beta, C + j0 * incy, incy);
    if (epilogue) {
      if (row)
        epilogue(ctx, C, ldc, 0, j0, 1, nb);
      else
        epilogue(ctx, C, ldc, j0, 0, nb, 1);
    }
  }, parallel);
}

// Few rows of C and op(B) stored transposed: every output is a dot product of a row of A with a row of B, and
// B is read in place once (see SmallDotKernel) instead of being transposed into packed panels. The columns
// of C are split into chunks across threads; each finished chunk goes to the epilogue.
template <typename P, typename T>
void small_m_dot(bool trans_a, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                 int64_t ldb, T beta, T* C, int64_t ldc, GemmEpilogueFn<T> epilogue, void* ctx) {
  // Columns per chunk: C blocks of at most small_dot_rows x 64 stay in L1 for the epilogue.
  constexpr int64_t kChunk = 64;
  if (trans_a) {  // the kernel wants rows of A contiguous: copy the few of them (M x K) once
    T* ac = tls_pack_a.get<T>(M * K);
    for (int64_t p = 0; p < K; ++p)
      for (int64_t i = 0; i < M; ++i) ac[i * K + p] = A[p * lda + i];
    A = ac;
    lda = K;
  }
  const int64_t chunks = ceil_div(N, kChunk);
  const Threads parallel = threads_for(static_cast<double>(M) * N * K, kGemmMacsPerThread);
  parallel_items(chunks, [&](int64_t c, int) {
    const int64_t j0 = c * kChunk, nb = std::min(kChunk, N - j0);
    P::small_dot(M, nb, K, A, lda, B + j0 * ldb, ldb, alpha, beta, C + j0, ldc);
    if (epilogue) epilogue(ctx, C, ldc, 0, j0, M, nb);
  }, parallel);
}

// Equal-sized K blocks avoid a thin last block that would run the kernel at poor efficiency.
template <typename P>
int64_t k_step(int64_t K) {
  return ceil_div(K, ceil_div(K, P::KC));
}

// Where a GemmPackedB keeps the (jc, pc) block of op(B): the NC blocks one after another, each holding its K
// blocks of ceil(nc / NR) panels of kc x NR.
template <typename P>
int64_t packed_block_offset(int64_t jc, int64_t pc, int64_t N, int64_t K) {
  const int64_t whole = jc / P::NC;  // full NC blocks before this one: K * NC elements each
  const int64_t panels = ceil_div(std::min(P::NC, N - jc), P::NR);
  return whole * K * P::NC + pc * panels * P::NR;
}

template <typename P, typename T>
GemmPackedB<T> pack_all_b(int isa, bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb) {
  GemmPackedB<T> out;
  out.isa = isa;
  out.trans_b = trans_b;
  out.K = K;
  out.N = N;
  const int64_t last = (N - 1) / P::NC * P::NC;
  out.elements = packed_block_offset<P>(last, 0, N, K) + K * round_up(N - last, P::NR);
  void* mem = std::aligned_alloc(64, static_cast<size_t>(round_up(out.elements * int64_t{sizeof(T)}, 64)));
  if (!mem) throw std::bad_alloc();
  out.data = std::unique_ptr<T, void (*)(void*)>(static_cast<T*>(mem), &std::free);
  const int64_t kc_step = k_step<P>(K);
  for (int64_t jc = 0; jc < N; jc += P::NC) {
    const int64_t nc = std::min(P::NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, K - pc);
      T* dst = out.data.get() + packed_block_offset<P>(jc, pc, N, K);
      parallel_items(ceil_div(nc, P::NR), [&](int64_t q, int) {
        pack_b_panel<P>(trans_b, B, ldb, pc, kc, jc + q * P::NR, std::min(P::NR, nc - q * P::NR), dst + q * kc * P::NR);
      }, threads_for(static_cast<double>(nc) * kc, kGemmMacsPerThread));
    }
  }
  return out;
}

template <typename P, typename T>
void gemm_blocked(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc, GemmEpilogueFn<T> epilogue, void* ctx,
                  GemmTileEpilogueFn<T> tile_fn, const T* prepacked) {
  constexpr int64_t MR = P::MR, NR = P::NR, MC = P::MC, NC = P::NC;

  const int64_t kc_step = k_step<P>(K);
  const int64_t row_tiles = ceil_div(M, MR);
  t_epilogue_form = tile_fn && kc_step >= K ? kOnTiles : epilogue ? kOnBlocks : kNoEpilogue;

  const bool direct_b = !trans_b && stream_b(M, prepacked ? P::packed_direct_b_rows : P::direct_b_rows);
  if (direct_b) prepacked = nullptr;
  // The B block is shared by all threads: it comes from the calling thread's scratch (or the packed weight).
  T* const scratch_b =
      direct_b || prepacked ? nullptr : tls_pack_b.get<T>(kc_step * round_up(std::min(N, NC), NR));

  const Threads parallel = threads_for(static_cast<double>(M) * N * K, kGemmMacsPerThread);
  const int nth = parallel.n;
  if (nth > 1) g_last_team.store(in_parallel_region() ? 1 : nth, std::memory_order_relaxed);

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t panels = ceil_div(nc, NR);
    const int64_t col_groups = ceil_div(nc, kEpilogueCols);
    // Work items are (row block, column group) tiles taken dynamically: a thread the OS has descheduled
    // delays at most the item it holds while the others take the rest. About four items per thread when
    // the shape allows, rows in equal blocks (a multiple of MR) to avoid a thin remainder. Each item packs
    // its own A block: 1/kEpilogueCols of its arithmetic.
    const int64_t row_blocks = std::max(ceil_div(M, MC), nth > 1 ? ceil_div(4 * nth, col_groups) : 1);
    const int64_t mc_step = std::min(round_up(ceil_div(M, std::min(row_blocks, row_tiles)), MR), round_up(MC, MR));
    const int64_t items = ceil_div(M, mc_step) * col_groups;

    for (int64_t pc = 0; pc < K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, K - pc);
      const bool last_k = pc + kc == K;
      // A tile epilogue takes each tile from an L1 buffer instead of C (see gemm.h) when the tile's whole sum
      // is made in one K block. With several, the partial sums are in C already and reloading them into the
      // buffer cost more than the epilogue saves: mlp's 64 x 784 -> 512 layer (4 K blocks) took 1.15-1.27 x the
      // plain GEMM with bias + relu on tiles, 1.04 on finished blocks, 1 thread (benchmarks/epilogue_bench.py).
      const GemmTileEpilogueFn<T> tile_epilogue = last_k && pc == 0 ? tile_fn : nullptr;
      // Only the first K block applies beta; later ones accumulate onto it.
      const T beta_k = pc == 0 ? beta : T(1);

      // Each loop returns when all its chunks are done: B is whole before anyone reads it, and nobody
      // repacks B (or starts the next K block of a tile) while another thread still works on this one.
      const T* const packed_b = prepacked ? prepacked + packed_block_offset<P>(jc, pc, N, K) : scratch_b;
      if (!direct_b && !prepacked)
        parallel_items(panels, [&](int64_t q, int) {
          pack_b_panel<P>(trans_b, B, ldb, pc, kc, jc + q * NR, std::min(NR, nc - q * NR), scratch_b + q * kc * NR);
        }, parallel);

      parallel_items(items, [&](int64_t item, int) {
        T* const packed_a = tls_pack_a.get<T>(round_up(MC, MR) * kc_step);
        const int64_t ic = item / col_groups * mc_step, mc = std::min(mc_step, M - ic);
        const int64_t jg = jc + item % col_groups * kEpilogueCols, ng = std::min(kEpilogueCols, jc + nc - jg);
        pack_a<P>(trans_a, A, lda, ic, mc, pc, kc, packed_a);
        for (int64_t jr = jg; jr < jg + ng; jr += NR) {
          const int64_t nr = std::min(NR, jg + ng - jr);
          const T* bp = direct_b ? B + pc * ldb + jr : packed_b + (jr - jc) / NR * kc * NR;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min(MR, mc - ir);
            const T* ap = packed_a + ir * kc;
            T* cp = C + (ic + ir) * ldc + jr;
            if (tile_epilogue) {
              alignas(64) T tile[MR * NR];
              // Earlier K blocks (or beta) left partial sums in C. The direct-B kernel writes only the valid
              // part of an edge tile: the rest is zeroed so the epilogue never computes on stale values.
              if (beta_k != T(0) || (direct_b && (mr < MR || nr < NR)))
                for (int64_t i = 0; i < MR; ++i)
                  for (int64_t j = 0; j < NR; ++j)
                    tile[i * NR + j] = beta_k != T(0) && i < mr && j < nr ? cp[i * ldc + j] : T(0);
              // Packed panels are zero-padded, so the full kernel serves edge tiles too (same arithmetic).
              if (direct_b)
                P::direct_b(kc, ap, bp, ldb, alpha, beta_k, tile, NR, mr, nr);
              else
                P::kernel(kc, ap, bp, alpha, beta_k, tile, NR);
              tile_epilogue(ctx, tile, NR, ic + ir, jr, mr, nr);
              continue;
            }
            if (direct_b) {
              P::direct_b(kc, ap, bp, ldb, alpha, beta_k, cp, ldc, mr, nr);
            } else if (mr == MR && nr == NR) {
              P::kernel(kc, ap, bp, alpha, beta_k, cp, ldc);
            } else if constexpr (P::edge != nullptr) {
              P::edge(kc, ap, bp, alpha, beta_k, cp, ldc, mr, nr);
            } else {
              // Partial tile: compute the full padded tile aside and merge only the valid part.
              alignas(64) T full[MR * NR];
              P::kernel(kc, ap, bp, alpha, T(0), full, NR);
              for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j)
                  cp[i * ldc + j] = beta_k == T(0) ? full[i * NR + j] : full[i * NR + j] + beta_k * cp[i * ldc + j];
            }
          }
        }
        if (last_k && epilogue && !tile_epilogue) epilogue(ctx, C, ldc, ic, jg, mc, ng);
      }, parallel);
    }
  }
}

// Which loop serves a product: nothing to multiply, one row or column, few rows with B transposed, or the
// blocked loop (which itself reads B in place for few rows of a B used as stored).
enum class Route { kScale, kGemv, kSmallDot, kBlocked };

template <typename P>
Route route(bool trans_b, int64_t M, int64_t N, int64_t K, bool zero_alpha, bool prepacked) {
  if (K <= 0 || zero_alpha) return Route::kScale;
  if (M == 1 || N == 1) return Route::kGemv;
  if (trans_b && stream_b(M, prepacked ? P::packed_small_dot_rows : P::small_dot_rows)) return Route::kSmallDot;
  return Route::kBlocked;
}

template <Isa I, typename T>
void gemm_on(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
             const T* B, int64_t ldb, T beta, T* C, int64_t ldc, GemmEpilogueFn<T> epilogue, void* ctx,
             GemmTileEpilogueFn<T> tile_fn, const GemmPackedB<T>* packed) {
  using P = Path<I, T>;
  const bool usable = packed && packed->data && packed->isa == static_cast<int>(I) && packed->trans_b == trans_b &&
                      packed->K == K && packed->N == N;
  t_epilogue_form = epilogue ? kOnBlocks : kNoEpilogue;  // the blocked loop may choose tiles
  switch (route<P>(trans_b, M, N, K, alpha == T(0), usable)) {
    case Route::kScale:
      scale_only<P>(M, N, beta, C, ldc, epilogue, ctx);
      return;
    case Route::kGemv:
      gemv<P>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, ctx);
      return;
    case Route::kSmallDot:
      small_m_dot<P>(trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, ctx);
      return;
    case Route::kBlocked:
      gemm_blocked<P>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue, ctx, tile_fn,
                      usable ? packed->data.get() : nullptr);
      return;
  }
}

}  // namespace
}  // namespace gemm_detail

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, GemmEpilogueFn<T> epilogue, void* epilogue_ctx,
          GemmTileEpilogueFn<T> tile_epilogue, const GemmPackedB<T>* packed_b) {
  using gemm_detail::Isa;
  if (M <= 0 || N <= 0) return;
  switch (gemm_detail::active_isa()) {
    case Isa::kAvx512:
      gemm_detail::gemm_on<Isa::kAvx512>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue,
                                         epilogue_ctx, tile_epilogue, packed_b);
      return;
    case Isa::kAvx2:
      gemm_detail::gemm_on<Isa::kAvx2>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue,
                                       epilogue_ctx, tile_epilogue, packed_b);
      return;
    case Isa::kScalar:
      gemm_detail::gemm_on<Isa::kScalar>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue,
                                         epilogue_ctx, tile_epilogue, packed_b);
      return;
  }
}

template <typename T>
GemmPackedB<T> gemm_pack_b(bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb) {
  using gemm_detail::Isa;
  using gemm_detail::Path;
  if (K <= 0 || N <= 0) throw std::invalid_argument("gemm_pack_b: empty operand");
  const Isa isa = gemm_detail::active_isa();
  const int id = static_cast<int>(isa);
  switch (isa) {
    case Isa::kAvx512:
      return gemm_detail::pack_all_b<Path<Isa::kAvx512, T>>(id, trans_b, K, N, B, ldb);
    case Isa::kAvx2:
      return gemm_detail::pack_all_b<Path<Isa::kAvx2, T>>(id, trans_b, K, N, B, ldb);
    case Isa::kScalar:
      break;
  }
  return gemm_detail::pack_all_b<Path<Isa::kScalar, T>>(id, trans_b, K, N, B, ldb);
}

template <typename T>
bool gemm_reads_packed_b(bool trans_b, int64_t M, int64_t N, int64_t K) {
  using gemm_detail::Isa;
  using gemm_detail::Path;
  const auto packs = [&](auto path) {
    using P = decltype(path);
    return gemm_detail::route<P>(trans_b, M, N, K, false, true) == gemm_detail::Route::kBlocked &&
           !(!trans_b && gemm_detail::stream_b(M, P::packed_direct_b_rows));
  };
  switch (gemm_detail::active_isa()) {
    case Isa::kAvx512:
      return packs(Path<Isa::kAvx512, T>{});
    case Isa::kAvx2:
      return packs(Path<Isa::kAvx2, T>{});
    case Isa::kScalar:
      break;
  }
  return packs(Path<Isa::kScalar, T>{});
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t, GemmEpilogueFn<float>, void*, GemmTileEpilogueFn<float>,
                          const GemmPackedB<float>*);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t, GemmEpilogueFn<double>, void*,
                           GemmTileEpilogueFn<double>, const GemmPackedB<double>*);
template GemmPackedB<float> gemm_pack_b<float>(bool, int64_t, int64_t, const float*, int64_t);
template GemmPackedB<double> gemm_pack_b<double>(bool, int64_t, int64_t, const double*, int64_t);
template bool gemm_reads_packed_b<float>(bool, int64_t, int64_t, int64_t);
template bool gemm_reads_packed_b<double>(bool, int64_t, int64_t, int64_t);

void gemm_force_scalar(bool on) {
  gemm_detail::g_forced_isa.store(on ? static_cast<int>(gemm_detail::Isa::kScalar) : -1, std::memory_order_relaxed);
}

void gemm_force_isa(const char* isa) {
  using gemm_detail::Isa;
  const std::string name = isa ? isa : "";
  int forced;
  if (name.empty())
    forced = -1;
  else if (name == "avx512")
    forced = static_cast<int>(Isa::kAvx512);
  else if (name == "avx2")
    forced = static_cast<int>(Isa::kAvx2);
  else if (name == "scalar")
    forced = static_cast<int>(Isa::kScalar);
  else
    throw std::invalid_argument("gemm_force_isa: unknown ISA '" + name + "' (avx512, avx2, scalar or empty)");
  gemm_detail::g_forced_isa.store(forced, std::memory_order_relaxed);
}

void gemm_force_small_m(const char* mode) {
  const std::string name = mode ? mode : "";
  int forced;
  if (name.empty())
    forced = -1;
  else if (name == "packed")
    forced = 0;
  else if (name == "stream")
    forced = 1;
  else
    throw std::invalid_argument("gemm_force_small_m: unknown mode '" + name + "' (packed, stream or empty)");
  gemm_detail::g_small_m.store(forced, std::memory_order_relaxed);
}

int gemm_last_team_size() { return gemm_detail::g_last_team.load(std::memory_order_relaxed); }

const char* gemm_last_epilogue_form() {
  switch (gemm_detail::t_epilogue_form) {
    case gemm_detail::kOnTiles: return "tile";
    case gemm_detail::kOnBlocks: return "block";
    default: return "";
  }
}

const char* gemm_kernel_name() {
  switch (gemm_detail::active_isa()) {
    case gemm_detail::Isa::kAvx512:
      return "avx512";
    case gemm_detail::Isa::kAvx2:
      return "avx2";
    case gemm_detail::Isa::kScalar:
      break;
  }
  return "scalar";
}

}  // namespace dlc
