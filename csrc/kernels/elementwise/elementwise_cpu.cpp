// The elementwise family: one tile evaluator that runs a small register program. A single op (unfused) is a
// one-instruction program; a fused chain is one program, so it makes one pass over memory and its
// intermediates never leave L1. The same evaluator is the matmul kernel's epilogue.
//
// Program layout (kernel "ew"): ints = [compute (0 f32 | 1 f64), n_regs, n_instr, (op, dst, a, b, c) * n_instr],
// floats = one immediate per instruction. Operand r >= 0 is register r; r < 0 is input (-r - 1). STORE's dst is
// an output index. DROPOUT_MASK's b is the op's salt and its immediate the keep probability; RAND_UNIFORM and RAND_NORMAL
// keep their salt in b too. Inputs broadcast to
// the output shape (NumPy rules); every output has the output shape and is written contiguously.

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/elementwise/elementwise_tile.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

constexpr int kMaxRegs = 32;
constexpr int kMaxIn = 16;
constexpr int kHeader = 3;

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

// The tile loop for this CPU, chosen once.
template <typename T>
using TileFn = void (*)(const TileArgs<T>&);

enum class Isa { Generic, Avx2, Avx512 };

// -1: the best the CPU has; otherwise a forced Isa (tests compare the paths). Never above what the CPU has.
std::atomic<int> g_forced{-1};

Isa cpu_isa() {
  static const Isa best = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
                              ? Isa::Avx512
                          : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? Isa::Avx2
                                                                                            : Isa::Generic;
  const int forced = g_forced.load();
  return forced < 0 ? best : static_cast<Isa>(std::min(forced, static_cast<int>(best)));
}

// The tile loop for this CPU, chosen once.
template <typename T>
using TileFn = void (*)(const TileArgs<T>&);

template <typename T>
TileFn<T> tile_fn() {
  const Isa isa = cpu_isa();
  if constexpr (std::is_same_v<T, float>)
    return isa == Isa::Avx512 ? &ew_tile_f32_avx512 : isa == Isa::Avx2 ? &ew_tile_f32_avx2 : &ew_tile_f32_generic;
  else
    return isa == Isa::Avx512 ? &ew_tile_f64_avx512 : isa == Isa::Avx2 ? &ew_tile_f64_avx2 : &ew_tile_f64_generic;
}

template <typename T>
constexpr DType dtype_of() {
  return std::is_same_v<T, float> ? DType::F32 : DType::F64;
}

void validate_program(const KernelArgs& a, const int64_t* code, int n_code, int n_imm) {
  kernel_check(n_code >= kHeader, "ew program header");
  const int n_regs = static_cast<int>(code[1]), n_instr = static_cast<int>(code[2]);
  kernel_check(n_regs >= 0 && n_regs <= kMaxRegs, "ew register count");
  kernel_check(a.n_in <= kMaxIn, "ew input count");
  kernel_check(n_code == kHeader + n_instr * kInstrInts && n_imm >= n_instr, "ew program length");
  for (int i = 0; i < n_instr; ++i) {
    const int64_t* ins = code + kHeader + i * kInstrInts;
    kernel_check(ins[0] >= 0 && ins[0] < kEwOpCount, "ew opcode");
    if (static_cast<EwOp>(ins[0]) == EwOp::STORE) {
      kernel_check(ins[1] >= 0 && ins[1] < a.n_out, "ew store target");
      kernel_check(a.out[ins[1]].numel() == a.out[0].numel(), "ew output size");
    } else {
      kernel_check(ins[1] >= 0 && ins[1] < n_regs, "ew destination register");
    }
    // Only real operands are checked: the random opcodes keep their salt in the b field.
    for (int j = 2; j < 2 + kEwArity[ins[0]]; ++j) kernel_check(ins[j] < n_regs && ins[j] >= -a.n_in, "ew operand");
  }
  if (a.n_out > 0)
    for (int k = 0; k < a.n_in; ++k) kernel_check(a.in[k].ndim <= a.out[0].ndim, "ew input rank");
}

// Dropout hashes each element's flat index in the iteration space. On a data-parallel rank (see RunContext)
// the index is shifted by the elements of the global batch's earlier samples, for spaces whose leading axis is
// the batch or a multiple of it (samples stay contiguous); other layouts keep their local indices.
int64_t mask_base(const RunContext* ctx, const Tensor& space) {
  if (ctx == nullptr || ctx->local_batch <= 0 || ctx->sample_offset == 0 || space.ndim == 0) return 0;
  if (space.shape[0] % ctx->local_batch != 0) return 0;
  return ctx->sample_offset * (space.numel() / ctx->local_batch);
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
  const TileFn<T> tile = tile_fn<T>();
  const int64_t base = mask_base(a.ctx, a.out[0]);
  // Dynamic chunks of about 1/8 of a thread's share: a thread the OS has descheduled holds back at most one
  // chunk, the others take the rest. Each tile's arithmetic does not depend on who runs it.
  parallel_for(n_tasks, grain_for(n_tasks), [&](int64_t lo, int64_t hi, int) {
    alignas(64) T reg[kMaxRegs][kTile];
    alignas(64) T inbuf[kMaxIn][kTile];
    const T* src[kMaxIn];
    for (int64_t task = lo; task < hi; ++task) {
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
      tile(TileArgs<T>{instr, n_instr, imm, src, reg, n, &a, r * L + j0, base + r * L + j0});
    }
  }, go_parallel);
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

// ---- reductions with an elementwise prologue ----
//
// Kernel "ew_reduce": ints = [rank, iter_shape[rank], kept_shape[rank], <program>], floats = [scale,
// immediates...]. The program runs over the iteration space (the shape of the tensor being reduced) and its LAST
// instruction computes the value to reduce; STOREs write the group's other outputs (iteration-shaped) to
// out[1...]. out[0] is the reduced tensor; kept_shape is its shape with a 1 on every reduced axis (it is given
// because reduced axes may sit anywhere): out[0] = scale * sum of the value over those axes. Threads take fixed row chunks and keep partial sums in double, combined in chunk order, so
// results are deterministic for a thread count. The value never reaches memory: mse, mean(y * y), the
// bias gradient sum_to(g * relu_mask(y)) are one pass.
template <typename T>
void run_reduce(const KernelArgs& a) {
  const int rank = static_cast<int>(a.ints[0]);
  kernel_check(rank >= 0 && rank <= kMaxRank && a.n_ints > 1 + 2 * rank, "ew_reduce header");
  const int64_t* code = a.ints + 1 + 2 * rank;
  const int n_code = a.n_ints - 1 - 2 * rank;
  const double scale = a.floats[0];
  const double* imm = a.floats + 1;
  const Tensor& red = a.out[0];
  kernel_check(red.ndim <= rank, "ew_reduce output rank");

  // The evaluator's view: outputs [iteration space, stored outputs...], inputs [program inputs..., reduced
  // output] (the last only gives the geometry its strides: where each element's value is summed to).
  Tensor iter;
  iter.dtype = dtype_of<T>();
  iter.ndim = rank;
  for (int d = 0; d < rank; ++d) iter.shape[d] = a.ints[1 + d];
  std::vector<Tensor> outs(a.out, a.out + a.n_out);
  outs[0] = iter;
  std::vector<Tensor> ins(a.in, a.in + a.n_in);
  Tensor red_view = red;
  red_view.ndim = rank;
  int64_t kept = 1;
  for (int d = 0; d < rank; ++d) {
    red_view.shape[d] = a.ints[1 + rank + d];
    kernel_check(red_view.shape[d] == 1 || red_view.shape[d] == iter.shape[d], "ew_reduce kept shape");
    kept *= red_view.shape[d];
  }
  kernel_check(kept == red.numel(), "ew_reduce output size");
  ins.push_back(red_view);
  KernelArgs e = a;
  e.in = ins.data();
  e.n_in = static_cast<int>(ins.size());
  e.out = outs.data();
  validate_program(e, code, n_code, a.n_floats - 1);
  const int n_instr = static_cast<int>(code[2]);
  kernel_check(n_instr > 0 && static_cast<EwOp>(code[kHeader + (n_instr - 1) * kInstrInts]) != EwOp::STORE,
               "ew_reduce: the last instruction computes the reduced value");
  const int64_t reduce_reg = code[kHeader + (n_instr - 1) * kInstrInts + 1];
  const int n_prog_in = a.n_in;

  const int64_t total = red.numel();
  // The reduced tensor keeps its own dtype; the program may compute in f64 (integer inputs) for an f32 result.
  auto write = [&](int64_t i, double value) {
    if (red.dtype == DType::F64)
      red.ptr<double>()[i] = value;
    else
      red.ptr<float>()[i] = static_cast<float>(value);
  };
  if (iter.numel() == 0) {
    for (int64_t i = 0; i < total; ++i) write(i, 0.0);
    return;
  }
  const Geometry g = make_geometry(e, false);
  const int64_t L = g.dims[g.nd - 1];
  const int64_t rows = iter.numel() / L;
  const int64_t red_inner = g.strides[n_prog_in][g.nd - 1];
  const TileFn<T> tile = tile_fn<T>();
  const int64_t base = mask_base(a.ctx, iter);
  const int threads = iter.numel() > 32768 ? pool_threads() : 1;
  // Partial sums per fixed chunk of rows (4 per thread), taken dynamically and added in chunk order: the
  // result depends on the thread count only, never on which thread ran which chunk or when.
  const int64_t chunks = threads == 1 ? 1 : std::min<int64_t>(rows, 4 * threads);
  std::vector<double> partial(static_cast<size_t>(chunks) * total, 0.0);

  parallel_items(chunks, [&](int64_t c, int) {
    alignas(64) T reg[kMaxRegs][kTile];
    alignas(64) T inbuf[kMaxIn][kTile];
    const T* src[kMaxIn];
    double* acc = partial.data() + static_cast<size_t>(c) * total;
    for (int64_t r = rows * c / chunks; r < rows * (c + 1) / chunks; ++r) {
      int64_t offs[kMaxIn + 1];
      for (int k = 0; k <= n_prog_in; ++k) {
        int64_t off = 0, rem = r;
        for (int d = g.nd - 2; d >= 0; --d) {
          off += (rem % g.dims[d]) * g.strides[k][d];
          rem /= g.dims[d];
        }
        offs[k] = off;
      }
      for (int64_t j0 = 0; j0 < L; j0 += kTile) {
        const int64_t n = std::min(kTile, L - j0);
        for (int k = 0; k < n_prog_in; ++k) {
          const int64_t inner = g.strides[k][g.nd - 1];
          const int64_t off = offs[k] + j0 * inner;
          if (a.in[k].dtype == dtype_of<T>() && inner == 1) {
            src[k] = static_cast<const T*>(a.in[k].data) + off;
          } else {
            load_any<T>(a.in[k], off, inner, n, inbuf[k]);
            src[k] = inbuf[k];
          }
        }
        tile(TileArgs<T>{code + kHeader, n_instr, imm, src, reg, n, &e, r * L + j0, base + r * L + j0});
        const T* v = reg[reduce_reg];
        if (red_inner == 0) {
          // Eight independent lanes, combined in a fixed order: one running sum made every add wait for the
          // one before, and lenet's conv bias gradient (sum_to over [64, 6, 28, 28]) took twice its unfused
          // kernels.
          double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          int64_t q = 0;
          for (; q + 8 <= n; q += 8)
            for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(v[q + j]);
          double s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
          for (; q < n; ++q) s += v[q];
          acc[offs[n_prog_in]] += s;
        } else {
          double* dst = acc + offs[n_prog_in] + j0;
          for (int64_t q = 0; q < n; ++q) dst[q] += v[q];
        }
      }
    }
  }, threads > 1);
  for (int64_t i = 0; i < total; ++i) {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[static_cast<size_t>(c) * total + i];
    write(i, s * scale);
  }
}

void ew_reduce_kernel(const KernelArgs& a) {
  kernel_check(a.n_out >= 1 && a.n_ints >= 1 && a.n_floats >= 1, "ew_reduce operands");
  kernel_check(a.n_in < kMaxIn, "ew_reduce input count");
  const int rank = static_cast<int>(a.ints[0]);
  kernel_check(rank >= 0 && rank <= kMaxRank && a.n_ints > 1 + 2 * rank, "ew_reduce header");
  if (a.out[0].dtype != DType::F32 && a.out[0].dtype != DType::F64)
    throw std::invalid_argument("ew_reduce: the reduced tensor must be f32 or f64");
  if (a.ints[1 + 2 * rank] == 1)
    run_reduce<double>(a);
  else
    run_reduce<float>(a);
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

EwRowProgram ew_row_program(const KernelArgs& a, const int64_t* code, int n_code, const double* imm, int n_imm) {
  static_assert(kEwTileWidth == kTile && kEwMaxRegs == kMaxRegs && kEwMaxInputs == kMaxIn, "evaluator sizes");
  kernel_check(a.n_out >= 1 && a.out[0].ndim >= 1, "ew rows: the iteration space needs a last axis");
  validate_program(a, code, n_code, n_imm);
  EwRowProgram p;
  p.args = a;
  p.instr = code + kHeader;
  p.n_instr = static_cast<int>(code[2]);
  p.imm = imm;
  p.f64 = code[0] == 1;
  const Geometry g = make_geometry(a, true);
  p.nd = g.nd;
  std::copy(g.dims, g.dims + kMaxRank, p.dims);
  for (int k = 0; k < kMaxIn; ++k) std::copy(g.strides[k], g.strides[k] + kMaxRank, p.strides[k]);
  p.cols = a.out[0].shape[a.out[0].ndim - 1];
  p.mask_base = mask_base(a.ctx, a.out[0]);
  return p;
}

namespace {
template <typename T>
void row_tile(const EwRowProgram& p, EwTileRegs<T>& regs, int64_t r, int64_t j0, int64_t n, const T* in0) {
  const T* src[kMaxIn];
  const KernelArgs& a = p.args;
  for (int k = 0; k < a.n_in; ++k) {
    if (k == 0 && in0 != nullptr) {
      src[0] = in0;
      continue;
    }
    int64_t off = 0, rem = r;
    for (int d = p.nd - 2; d >= 0; --d) {
      off += (rem % p.dims[d]) * p.strides[k][d];
      rem /= p.dims[d];
    }
    const int64_t inner = p.strides[k][p.nd - 1];
    off += j0 * inner;
    if (a.in[k].dtype == dtype_of<T>() && inner == 1) {
      src[k] = static_cast<const T*>(a.in[k].data) + off;
    } else {
      load_any<T>(a.in[k], off, inner, n, regs.inbuf[k]);
      src[k] = regs.inbuf[k];
    }
  }
  const int64_t flat = r * p.cols + j0;
  tile_fn<T>()(TileArgs<T>{p.instr, p.n_instr, p.imm, src, regs.reg, n, &a, flat, p.mask_base + flat});
}
}  // namespace

void ew_row_tile(const EwRowProgram& p, EwTileRegs<float>& regs, int64_t r, int64_t j0, int64_t n, const float* in0) {
  row_tile<float>(p, regs, r, j0, n, in0);
}
void ew_row_tile(const EwRowProgram& p, EwTileRegs<double>& regs, int64_t r, int64_t j0, int64_t n,
                 const double* in0) {
  row_tile<double>(p, regs, r, j0, n, in0);
}

void ew_force_isa(const std::string& name) {
  if (name.empty())
    g_forced.store(-1);
  else if (name == "generic")
    g_forced.store(static_cast<int>(Isa::Generic));
  else if (name == "avx2")
    g_forced.store(static_cast<int>(Isa::Avx2));
  else if (name == "avx512")
    g_forced.store(static_cast<int>(Isa::Avx512));
  else
    throw std::invalid_argument("unknown instruction set '" + name + "' (generic, avx2, avx512 or empty)");
}

const char* ew_kernel_name() {
  const Isa isa = cpu_isa();
  return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "generic";
}

int ew_isa_level() { return static_cast<int>(cpu_isa()); }

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
DLC_REGISTER_KERNEL("ew_reduce", Device::CPU, ew_reduce_kernel);

}  // namespace dlc
