// Batched matmul with NumPy batch broadcasting and an optional fused elementwise epilogue.
//
// ints = [trans_a, trans_b, n_code, <ew program (n_code ints)>], floats = the program's immediates.
// in = [A, B, epilogue inputs...], out = [C, epilogue outputs...]. A is [..., M, K] ([..., K, M] when
// trans_a), B is [..., K, N] ([..., N, K] when trans_b), C is [batch..., M, N]. The epilogue program sees
// inputs [C, epilogue inputs...] and outputs = this step's outputs. It runs on each finished register tile of the
// GEMM while the tile is in L1 (gemm_epilogue.h), so bias, activation, gradient and residual cost no extra pass
// over memory; a program the tile form cannot take runs through the general evaluator on finished blocks.
#include <algorithm>
#include <memory>
#include <vector>

#include "dispatch.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/qgemm/qgemm.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

struct Epilogue {
  const KernelArgs* args = nullptr;  // inputs [C, extra...], outputs: the step's outputs
  const int64_t* code = nullptr;
  int n_code = 0;
  const double* imm = nullptr;
  int n_imm = 0;
  int64_t row_offset = 0;  // first row of this GEMM within C viewed as [batch * M, N]
  const void* tiles = nullptr;  // the TileEpilogue<T>, when the program has a tile form
};

// The tile form: on each register tile the GEMM hands over in L1, and on the blocks of C the matrix-vector
// path has stored.
template <typename T>
void epilogue_tile(void* ctx, const T* tile, int64_t ld_tile, int64_t i0, int64_t j0, int64_t m, int64_t n) {
  const Epilogue& e = *static_cast<const Epilogue*>(ctx);
  const auto& te = *static_cast<const TileEpilogue<T>*>(e.tiles);
  te.run(te, tile, ld_tile, e.row_offset + i0, e.row_offset + i0 + m, j0, j0 + n);
}

template <typename T>
void epilogue_window(void* ctx, T* C, int64_t ldc, int64_t i0, int64_t j0, int64_t m, int64_t n) {
  epilogue_tile<T>(ctx, nullptr, 0, i0, j0, m, n);
}

template <typename T>
void epilogue_block(void* ctx, T* C, int64_t ldc, int64_t i0, int64_t j0, int64_t m, int64_t n) {
  const Epilogue& e = *static_cast<const Epilogue*>(ctx);
  ew_run_window(*e.args, e.code, e.n_code, e.imm, e.n_imm, e.row_offset + i0, e.row_offset + i0 + m, j0, j0 + n,
                false);
}

// Element strides of a batch operand's batch dims against the output's batch dims (0 where broadcast).
void batch_strides(const Tensor& t, const Tensor& c, int64_t* strides) {
  const int out_batch = c.ndim - 2, t_batch = t.ndim - 2;
  int64_t s = t.shape[t.ndim - 1] * t.shape[t.ndim - 2];
  for (int d = out_batch - 1; d >= 0; --d) {
    int td = d - (out_batch - t_batch);
    if (td >= 0 && t.shape[td] != 1) {
      strides[d] = s;
      s *= t.shape[td];
    } else {
      strides[d] = 0;
      if (td >= 0) s *= t.shape[td];
    }
  }
}

// A step's epilogue program (n_code ints at code) prepared for the GEMM: its view of the operands is C (out[0])
// first, then the step's inputs from in[2] on. Not copyable: args points into `in`.
template <typename T>
struct StepEpilogue {
  std::vector<Tensor> in;
  KernelArgs args;
  const int64_t* code;
  TileEpilogue<T> tiles;
  GemmEpilogueFn<T> fn = nullptr;
  GemmTileEpilogueFn<T> tile_fn = nullptr;

  StepEpilogue(const KernelArgs& a, const int64_t* program, int n_code) : args(a), code(program) {
    if (n_code == 0) return;
    in.push_back(a.out[0]);
    for (int k = 2; k < a.n_in; ++k) in.push_back(a.in[k]);
    args.in = in.data();
    args.n_in = static_cast<int>(in.size());
    ew_validate(args, code, n_code, a.n_floats);
    const bool tiled = prepare_tile_epilogue<T>(args, code, n_code, a.floats, &tiles);
    fn = tiled ? &epilogue_window<T> : &epilogue_block<T>;
    tile_fn = tiled && tiles.per_tile ? &epilogue_tile<T> : nullptr;
  }
  StepEpilogue(const StepEpilogue&) = delete;
  StepEpilogue& operator=(const StepEpilogue&) = delete;
};

// kBf16: the "matmul_bf16" kernel (f32 operands, bf16 arithmetic: gemm_bf16.h), whose right operand is a weight
// shared by every matrix of A, so it always takes the one-tall-GEMM branch; packed_b is then a Bf16PackedB.
template <typename T, bool kBf16 = false>
void matmul_typed(const KernelArgs& a) {
  const bool ta = a.ints[0] != 0, tb = a.ints[1] != 0;
  const int n_code = static_cast<int>(a.ints[2]);
  const Tensor &A = a.in[0], &B = a.in[1], &C = a.out[0];
  kernel_check(A.ndim >= 2 && B.ndim >= 2 && C.ndim >= 2, "matmul rank");
  const int64_t M = C.shape[C.ndim - 2], N = C.shape[C.ndim - 1];
  const int64_t K = ta ? A.shape[A.ndim - 2] : A.shape[A.ndim - 1];
  kernel_check((ta ? A.shape[A.ndim - 1] : A.shape[A.ndim - 2]) == M, "matmul M");
  kernel_check((tb ? B.shape[B.ndim - 1] : B.shape[B.ndim - 2]) == K, "matmul K");
  kernel_check((tb ? B.shape[B.ndim - 2] : B.shape[B.ndim - 1]) == N, "matmul N");
  const int64_t lda = A.shape[A.ndim - 1], ldb = B.shape[B.ndim - 1];
  const int64_t batches = C.numel() / std::max<int64_t>(M * N, 1);
  if (C.numel() == 0) return;

  const StepEpilogue<T> se(a, a.ints + 3, n_code);
  const KernelArgs& ep_args = se.args;
  const int64_t* code = se.code;
  const TileEpilogue<T>& tiles = se.tiles;
  const GemmEpilogueFn<T> fn = se.fn;
  const GemmTileEpilogueFn<T> tile_fn = se.tile_fn;

  auto matrices = [](const Tensor& t) {
    const int64_t s = t.shape[t.ndim - 1] * t.shape[t.ndim - 2];
    return s ? t.numel() / s : 0;
  };
  const int64_t a_batch = matrices(A), b_batch = matrices(B);
  // A shared right operand (a dense layer on a [batch, time, features] input): one tall GEMM.
  if (b_batch == 1 && !ta && a_batch == batches) {
    Epilogue e{&ep_args, code, n_code, a.floats, a.n_floats, 0, &tiles};
    if constexpr (kBf16) {
      gemm_bf16(tb, batches * M, N, K, A.ptr<float>(), lda, B.ptr<float>(), ldb, C.ptr<float>(), N, fn, &e,
                static_cast<const Bf16PackedB*>(a.packed_b));
      return;
    }
    gemm<T>(false, tb, batches * M, N, K, T(1), A.ptr<T>(), lda, B.ptr<T>(), ldb, T(0), C.ptr<T>(), N, fn, &e, tile_fn,
            static_cast<const GemmPackedB<T>*>(a.packed_b));
    return;
  }
  kernel_check(!kBf16, "matmul_bf16: the right operand must be one matrix and A not transposed");
  int64_t sa[kMaxRank] = {0}, sb[kMaxRank] = {0};
  batch_strides(A, C, sa);
  batch_strides(B, C, sb);
  const int nb = C.ndim - 2;
  auto run_one = [&](int64_t b) {
    int64_t offa = 0, offb = 0, rem = b;
    for (int d = nb - 1; d >= 0; --d) {
      int64_t idx = rem % C.shape[d];
      rem /= C.shape[d];
      offa += idx * sa[d];
      offb += idx * sb[d];
    }
    Epilogue e{&ep_args, code, n_code, a.floats, a.n_floats, b * M, &tiles};
    gemm<T>(ta, tb, M, N, K, T(1), A.ptr<T>() + offa, lda, B.ptr<T>() + offb, ldb, T(0), C.ptr<T>() + b * M * N, N,
            fn, &e, tile_fn, b_batch == 1 ? static_cast<const GemmPackedB<T>*>(a.packed_b) : nullptr);
  };
  // Many small products (attention heads): one product per thread beats splitting each tiny GEMM. Otherwise
  // no enclosing parallel region at all: even an inactive one (if(false)) would make the GEMM's own region a
  // nested one, which OpenMP runs on a single thread.
  if (batches > 1 && M * N * K < (1 << 18)) {
    parallel_items(batches, [&](int64_t b, int) {
      run_one(b);
    }, threads_for(static_cast<double>(batches) * M * N * K, kGemmMacsPerThread));
  } else {
    for (int64_t b = 0; b < batches; ++b) run_one(b);
  }
}

void matmul_kernel(const KernelArgs& a) {
  kernel_check(a.n_in >= 2 && a.n_out >= 1 && a.n_ints >= 3, "matmul operands");
  kernel_check(a.n_ints == 3 + a.ints[2], "matmul program length");
  kernel_check(a.in[0].dtype == a.in[1].dtype && a.in[0].dtype == a.out[0].dtype, "matmul dtypes");
  if (a.out[0].dtype == DType::F64)
    matmul_typed<double>(a);
  else if (a.out[0].dtype == DType::F32)
    matmul_typed<float>(a);
  else
    throw std::invalid_argument("matmul supports f32 and f64");
}

void matmul_bf16_kernel(const KernelArgs& a) {
  kernel_check(a.n_in >= 2 && a.n_out >= 1 && a.n_ints >= 3, "matmul operands");
  kernel_check(a.n_ints == 3 + a.ints[2], "matmul program length");
  kernel_check(a.in[0].dtype == DType::F32 && a.in[1].dtype == DType::F32 && a.out[0].dtype == DType::F32,
               "matmul_bf16 takes f32 operands");
  matmul_typed<float, true>(a);
}

// "matmul_int8": ints = [trans_a (0), trans_b, activation zero point (-1: dynamic), activation scale (f64 bits),
// n_code, program...]; in = [A [..., K] f32, B f32 weight [K, N] ([N, K] when trans_b), epilogue inputs...].
// B is read only as its int8 packed copy (KernelArgs::packed_b from the plan's cache; quantized here per call
// when the plan does not pack); A is quantized to u8 per call (kernels/qgemm/qgemm.h).
void matmul_int8_kernel(const KernelArgs& a) {
  kernel_check(a.n_in >= 2 && a.n_out >= 1 && a.n_ints >= 5, "matmul_int8 operands");
  const int n_code = static_cast<int>(a.ints[4]);
  kernel_check(a.n_ints == 5 + n_code && a.ints[0] == 0, "matmul_int8 ints");
  const Tensor &A = a.in[0], &B = a.in[1], &C = a.out[0];
  kernel_check(A.dtype == DType::F32 && B.dtype == DType::F32 && C.dtype == DType::F32, "matmul_int8 dtypes");
  const bool tb = a.ints[1] != 0;
  kernel_check(B.ndim == 2 && A.ndim >= 1 && C.ndim >= 1, "matmul_int8 ranks");
  const int64_t K = A.shape[A.ndim - 1], N = C.shape[C.ndim - 1];
  kernel_check(B.shape[tb ? 1 : 0] == K && B.shape[tb ? 0 : 1] == N, "matmul_int8 weight shape");
  const int64_t M = K > 0 ? A.numel() / K : 0;
  kernel_check(M * N == C.numel(), "matmul_int8 rows");
  if (C.numel() == 0) return;
  const StepEpilogue<float> se(a, a.ints + 5, n_code);
  std::unique_ptr<QgemmPackedB> local;
  const QgemmPackedB* packed = static_cast<const QgemmPackedB*>(a.packed_b);
  if (!packed) {
    std::vector<int8_t> q(static_cast<size_t>(K * N));
    std::vector<float> scale(static_cast<size_t>(N));
    quantize_weights_s8(B.ptr<float>(), tb, K, N, q.data(), scale.data());
    local = std::make_unique<QgemmPackedB>(qgemm_pack_b(q.data(), K, N, scale.data()));
    packed = local.get();
  }
  kernel_check(packed->K == K && packed->N == N, "matmul_int8 packed weight shape");
  float scale;
  int32_t zp;
  step_activation_params(a.ints[2], a.ints[3], A.ptr<float>(), A.numel(), &scale, &zp);
  Epilogue e{&se.args, se.code, n_code, a.floats, a.n_floats, 0, &se.tiles};
  qgemm_f32(M, A.ptr<float>(), scale, zp, *packed, C.ptr<float>(), se.fn, &e);
}

}  // namespace

DLC_REGISTER_KERNEL("matmul", Device::CPU, matmul_kernel);
DLC_REGISTER_KERNEL("matmul_bf16", Device::CPU, matmul_bf16_kernel);
DLC_REGISTER_KERNEL("matmul_int8", Device::CPU, matmul_int8_kernel);

}  // namespace dlc
