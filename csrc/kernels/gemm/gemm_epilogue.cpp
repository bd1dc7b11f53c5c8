// Preparing a fused epilogue for the GEMM's register tiles (see gemm_epilogue.h): operand addressing,
// the step list with its fused pairs, and the tile loop of the GEMM path in use.
#include "kernels/gemm/gemm_epilogue.h"

#include <atomic>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"

namespace dlc {
namespace {

constexpr int kHeader = 3;     // the program's [compute, n_regs, n_instr]
constexpr int kInstrInts = 5;  // (op, dst, a, b, c)
constexpr int kMaxRegs = 32;   // the evaluator's register file

enum Form : int { kAuto = 0, kTile, kBlock, kGeneral };
std::atomic<int> g_form{kAuto};

// The [rows, cols] addressing of `t` broadcast to `o` (right-aligned, NumPy rules), or false when its rows
// are not one stride apart (a broadcast dimension between two real ones).
template <typename T>
bool operand_of(const Tensor& t, const Tensor& o, EpilogueOperand<T>* op) {
  if (t.ndim > o.ndim || t.ndim > kMaxRank) return false;
  op->base = static_cast<const T*>(t.data);
  op->cs = t.ndim >= 1 && t.shape[t.ndim - 1] != 1 ? 1 : 0;
  // Walk the leading dimensions of o from the inside: each real one must step by rs times the rows inside it.
  int64_t rs = -1, inner_rows = 1, elem_stride = t.ndim >= 1 ? t.shape[t.ndim - 1] : 1;
  for (int d = o.ndim - 2; d >= 0; --d) {
    const int td = d - (o.ndim - t.ndim);
    const int64_t stride = td >= 0 && t.shape[td] != 1 ? elem_stride : 0;
    if (td >= 0) elem_stride *= t.shape[td];
    if (o.shape[d] == 1) continue;
    if (rs < 0) rs = stride;
    else if (stride != rs * inner_rows) return false;
    inner_rows *= o.shape[d];
  }
  op->rs = rs < 0 ? 0 : rs;
  return true;
}

bool is_gelu(int64_t op) {
  return op == static_cast<int64_t>(EwOp::GELU_ERF) || op == static_cast<int64_t>(EwOp::GELU_ERF_GRAD);
}

}  // namespace

template <typename T>
bool prepare_tile_epilogue(const KernelArgs& a, const int64_t* code, int n_code, const double* imm,
                           TileEpilogue<T>* e) {
  constexpr DType dt = std::is_same_v<T, float> ? DType::F32 : DType::F64;
  const int form = g_form.load(std::memory_order_relaxed);
  if (form == kGeneral) return false;
  if (n_code < kHeader || code[0] != (std::is_same_v<T, double> ? 1 : 0) || code[1] > kMaxRegs) return false;
  if (a.n_in > kEpilogueMaxIn || a.n_out > kEpilogueMaxOut || a.n_out < 1) return false;
  const Tensor& o = a.out[0];
  for (int j = 0; j < a.n_out; ++j)
    if (a.out[j].dtype != dt) return false;
  e->n_in = a.n_in;
  e->n_out = a.n_out;
  for (int k = 0; k < a.n_in; ++k)
    if (a.in[k].dtype != dt || !operand_of<T>(a.in[k], o, &e->in[k])) return false;
  for (int j = 0; j < a.n_out; ++j) e->out[j] = a.out[j].ptr<T>();
  e->ldo = o.ndim >= 1 ? o.shape[o.ndim - 1] : 1;
  e->rows = e->ldo > 0 ? o.numel() / e->ldo : 0;
  e->instr = code + kHeader;
  e->imm = imm;
  e->args = &a;
  e->used_in = 0;
  e->n_steps = 0;

  const int n_instr = static_cast<int>(code[2]);
  auto add = [&](const EpilogueStep& s) {
    if (e->n_steps == kEpilogueMaxSteps) return false;
    e->steps[e->n_steps++] = s;
    return true;
  };
  for (int i = 0; i < n_instr; ++i) {
    const int64_t* ins = e->instr + i * kInstrInts;
    const EwOp op = static_cast<EwOp>(ins[0]);
    if (op == EwOp::DROPOUT_MASK || op == EwOp::RAND_UNIFORM || op == EwOp::RAND_NORMAL)
      return false;  // they hash flat element indices, which the tile loop does not track
    for (int j = 2; j < 2 + kEwArity[ins[0]]; ++j)
      if (ins[j] < 0) e->used_in |= 1u << (-ins[j] - 1);
    if (op == EwOp::STORE) {
      if (!add({EpilogueStep::kStore, 0, 0, ins[2], ins[1], 0})) return false;
      continue;
    }
    // gelu and its gradient of one value, the forward half of a training step: one loop, shared erf and exp.
    // The first must not overwrite the value the second reads, nor the second the first's result.
    const int64_t* nx = ins + kInstrInts;
    if (std::is_same_v<T, float> && i + 1 < n_instr && is_gelu(ins[0]) && is_gelu(nx[0]) && ins[0] != nx[0] &&
        ins[2] == nx[2] && ins[1] != ins[2] && ins[1] != nx[1]) {
      const bool gelu_first = op == EwOp::GELU_ERF;
      if (!add({EpilogueStep::kGeluPair, 0, 0, ins[2], gelu_first ? ins[1] : nx[1], gelu_first ? nx[1] : ins[1]}))
        return false;
      ++i;
      continue;
    }
    if (std::is_same_v<T, float> && op == EwOp::GELU_ERF_GRAD) {
      if (!add({EpilogueStep::kGeluPair, 0, 0, ins[2], -1, ins[1]})) return false;
      continue;
    }
    EpilogueStep* last = e->n_steps ? &e->steps[e->n_steps - 1] : nullptr;
    if (last && last->kind == EpilogueStep::kRun && last->first + last->count == i)
      ++last->count;
    else if (!add({EpilogueStep::kRun, i, 1, 0, 0, 0}))
      return false;
  }

  e->stored_out = 0;
  for (int s = 0; s < e->n_steps; ++s) {
    const EpilogueStep& st = e->steps[s];
    if (st.kind != EpilogueStep::kStore) continue;
    bool shared = false;
    for (int j = 0; j < e->n_out; ++j)
      shared |= (e->stored_out >> j & 1u) && e->out[j] == e->out[st.dst];
    if (!shared) e->stored_out |= 1u << st.dst;
  }

  // Which form runs. Measured on the gelu_mlp training step's groups (Zen 4, benchmarks/epilogue_bench.py), the
  // tile form gains nothing over the block form when the epilogue streams another full-size tensor in or out
  // (a saved activation, a second output): a tile touches 8 short pieces of rows 4 KiB or more apart, which the
  // hardware prefetchers do not follow, where a block walks whole rows (1.26 vs 1.38 x the plain GEMM with a
  // full-size operand, 1.05 vs 1.10 with a second output). An in-place epilogue (bias, activation, scale)
  // reads and writes only C's tile and runs on it in L1.
  bool in_place = true;
  for (int k = 1; k < e->n_in; ++k) in_place &= !(e->used_in >> k & 1u) || e->in[k].rs == 0;
  for (int j = 0; j < e->n_out; ++j) in_place &= !(e->stored_out >> j & 1u) || e->out[j] == a.in[0].data;
  e->per_tile = form == kTile || (form == kAuto && in_place);

  // With the tile in an L1 buffer the GEMM never writes C: store it first unless the program overwrites C's
  // memory itself (the lowering aliases C with the group's first output when C is not wanted on its own).
  bool c_stored = false;
  for (int j = 0; j < e->n_out; ++j) c_stored |= (e->stored_out >> j & 1u) && e->out[j] == a.in[0].data;
  if (e->per_tile && !c_stored) {
    // Output 0 is where the caller wants C (the matmul kernel's layout); anything else has no tile form.
    if (e->n_steps == kEpilogueMaxSteps || a.out[0].data != a.in[0].data) return false;
    for (int s = e->n_steps; s > 0; --s) e->steps[s] = e->steps[s - 1];
    e->steps[0] = {EpilogueStep::kStore, 0, 0, -1, 0, 0};
    ++e->n_steps;
    e->used_in |= 1u;
    e->stored_out |= 1u;
  }
  const std::string path = gemm_kernel_name();
  e->run = path == "avx512" ? &tile_epilogue_avx512<T>
           : path == "avx2"   ? &tile_epilogue_avx2<T>
                              : &tile_epilogue_generic<T>;
  return true;
}

void gemm_epilogue_force_form(const std::string& form) {
  const int f = form.empty() ? kAuto : form == "tile" ? kTile : form == "block" ? kBlock : form == "general" ? kGeneral
                                                                                                            : -1;
  if (f < 0) throw std::invalid_argument("unknown epilogue form '" + form + "' (tile, block, general or empty)");
  g_form.store(f, std::memory_order_relaxed);
}

template bool prepare_tile_epilogue<float>(const KernelArgs&, const int64_t*, int, const double*,
                                           TileEpilogue<float>*);
template bool prepare_tile_epilogue<double>(const KernelArgs&, const int64_t*, int, const double*,
                                            TileEpilogue<double>*);

}  // namespace dlc
