// Fused recurrent layers (Elman RNN, LSTM, GRU) over a whole batch-first sequence, and their backward passes
// (backpropagation through time). One kernel call runs one layer in one direction.
//
// Layouts (row-major): x [B, T, I]; w_ih [I, G*H] and w_hh [H, G*H] (x @ W, the G gates side by side in
// PyTorch's order: LSTM i, f, g, o; GRU r, z, n); y [B, T, H] is the hidden state at every time step, aligned
// with x also when ints[0] (reverse_time) is set, in which case loop step s visits time t = T-1-s.
//
// Forward: one GEMM projects the inputs of all time steps at once (B*T rows); the loop over time then adds
// h_{t-1} @ w_hh with a small product that writes straight into that step's rows, and applies the gate math.
// The per-step products go through StepProduct: for f32 on AVX-512 CPUs, step_gemm.h's kernel with w_hh packed
// once per call; otherwise the GEMM, which repacks w_hh every step.
// The activated gates are outputs (graph values the memory planner sees), kept for the backward pass. The
// per-row gate math lives in cells.h (built generic and AVX2, picked at run time).
// Backward: the reverse loop turns dh into the gates' pre-activation gradients dG and pushes dh back through
// w_hh; the input, weight and bias gradients then come from big GEMMs over all B*T rows after the loop.
//
// Threads: batch rows never interact inside a recurrence, so each thread runs the whole time loop for a
// slice of the batch, with serial per-step GEMMs (a nested parallel region has one thread). That needs no
// barrier per time step, which a parallel GEMM of a few hundred thousand MACs per step would pay T times.
// The big GEMMs before and after the loop use the GEMM's own threads. Each row's arithmetic is the same
// whatever the slicing, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>


#include "kernels/gemm/gemm.h"
#include "kernels/recurrent/cells.h"
#include "kernels/recurrent/step_gemm.h"
#include "kernels/reduce/reduce.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace {

using kern::kParallelWork;

struct Dims {
  int64_t B, T, I, H;
  bool rev;
  int64_t t_at(int64_t s) const { return rev ? T - 1 - s : s; }  // time index of loop step s
  int64_t t_prev(int64_t t) const { return rev ? t + 1 : t - 1; }
  int64_t rows() const { return B * T; }
};

Dims dims_of(const KernelArgs& a, int64_t gates, const char* who) {
  kernel_check(a.n_ints >= 1 && a.n_in >= 3, who);
  const Tensor &x = a.in[0], &w_ih = a.in[1], &w_hh = a.in[2];
  kernel_check(x.ndim == 3 && w_ih.ndim == 2 && w_hh.ndim == 2, who);
  Dims d{x.shape[0], x.shape[1], x.shape[2], w_hh.shape[0], a.ints[0] != 0};
  kernel_check(d.T >= 1 && w_ih.shape[0] == d.I && w_ih.shape[1] == gates * d.H && w_hh.shape[1] == gates * d.H,
               who);
  for (int k = 0; k < a.n_in; ++k) kernel_check(a.in[k].dtype == x.dtype, who);  // incl. scalar-zero gradients
  for (int k = 0; k < a.n_out; ++k) kernel_check(a.out[k].dtype == x.dtype, who);
  return d;
}

// An output gradient may be a scalar zero, meaning none flows into that output (only the last step or only the
// sequence is used), so no [B, T, H] zero tensor is materialized. Returns nullptr then.
template <class T>
const T* opt_grad(const Tensor& g, int64_t n, const char* who) {
  if (g.ndim == 0) return nullptr;
  kernel_check(g.numel() == n, who);
  return g.ptr<const T>();
}

// The running state gradient starts as the final state's gradient (zero when absent).
template <class T>
void init_state_grad(const Tensor& g, int64_t n, T* out, const char* who) {
  const T* src = opt_grad<T>(g, n, who);
  if (src == nullptr)
    std::fill(out, out + n, T(0));
  else
    std::memcpy(out, src, sizeof(T) * n);
}

// Runs fn(b0, b1) over slices of the batch rows, one per thread, when the recurrence is worth splitting.
template <class F>
void over_batch(const Dims& d, int64_t width, const F& fn) {
  const int64_t slices = std::min<int64_t>(d.B, pool_threads());
  if (slices <= 1 || d.B * d.T * width < kParallelWork) {
    fn(int64_t{0}, d.B);
    return;
  }
  parallel_items(slices, [&](int64_t k, int) {
    fn(d.B * k / slices, d.B * (k + 1) / slices);
  }, true);
}

// Owners of the scratch buffers below, so that the packed recurrent weight never aliases the gradient buffers.
enum class Slot { Grads, PackedWeight };

// Grow-only per-thread scratch, one buffer per (type, slot) (gemm keeps its own packing buffers).
template <class T, Slot S = Slot::Grads>
T* scratch(size_t n) {
  static thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// C [M, N] = A [M, K] @ op(w) (+ C when accumulating) for the rows of one time step, where op(w) is w [K, N] or,
// with trans, w^T for w [N, K]. Construct it on the calling thread, before the time loop (it may allocate).
template <class T>
class StepProduct {
 public:
  StepProduct(const T* w, int64_t K, int64_t N, bool trans) : w_(w), K_(K), N_(N), trans_(trans) {
    if constexpr (std::is_same_v<T, float>) {
      if (step_gemm_available()) {
        packed_ = scratch<float, Slot::PackedWeight>(step_gemm_packed_size(K, N));
        step_gemm_pack(trans, K, N, w, ldw(), packed_);
      }
    }
  }

  void operator()(int64_t M, const T* A, int64_t lda, bool accumulate, T* C, int64_t ldc) const {
    if constexpr (std::is_same_v<T, float>) {
      if (packed_ != nullptr) {
        step_gemm(M, N_, K_, A, lda, packed_, accumulate, C, ldc);
        return;
      }
    }
    gemm<T>(false, trans_, M, N_, K_, T(1), A, lda, w_, ldw(), accumulate ? T(1) : T(0), C, ldc);
  }

 private:
  int64_t ldw() const { return trans_ ? K_ : N_; }

  const T* w_;
  int64_t K_, N_;
  bool trans_;
  float* packed_ = nullptr;
};

// The rows of h_{t-1} that step t reads: h0 at the first step, else y at the previous time.
template <class T>
const T* prev_rows(const Dims& d, const T* y, const T* h0, int64_t t, int64_t* ld) {
  if (t == d.t_at(0)) {
    *ld = d.H;
    return h0;
  }
  *ld = d.T * d.H;
  return y + d.t_prev(t) * d.H;
}

// G[B*T, N] (leading dim ldg) = x @ w_ih + bias for every time step in one GEMM.
template <class T>
void project_inputs(const Dims& d, const T* x, const T* w, const T* bias, int64_t N, T* G, int64_t ldg) {
  gemm<T>(false, false, d.rows(), N, d.I, T(1), x, d.I, w, N, T(0), G, ldg);
  const int64_t rows = d.rows();
  parallel_items(rows, [&](int64_t r, int) {
    for (int64_t j = 0; j < N; ++j) G[r * ldg + j] += bias[j];
  }, element_threads(static_cast<double>(rows * N)));
}

// Copies the state of the last step (y at t_at(T-1)) out as the final state [B, H].
template <class T>
void final_state(const Dims& d, const T* seq, T* out) {
  const int64_t t = d.t_at(d.T - 1);
  for (int64_t b = 0; b < d.B; ++b) std::memcpy(out + b * d.H, seq + (b * d.T + t) * d.H, sizeof(T) * d.H);
}

// After the time loop: gx = dG @ w_ih^T and gw_ih = x^T @ dG over all B*T rows.
template <class T>
void input_grads(const Dims& d, const T* x, const T* w_ih, const T* dG, int64_t N, T* gx, T* gw_ih) {
  gemm<T>(false, true, d.rows(), d.I, N, T(1), dG, N, w_ih, N, T(0), gx, d.I);
  gemm<T>(true, false, d.I, N, d.rows(), T(1), x, d.I, dG, N, T(0), gw_ih, N);
}

// gw_hh = sum_t h_{t-1}^T @ dG_t, as one GEMM over the states each step read, gathered into hprev [B*T, H].
template <class T>
void hidden_weight_grad(const Dims& d, const T* y, const T* h0, const T* dG, int64_t N, T* hprev, T* gw_hh) {
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t t = 0; t < d.T; ++t) {
      int64_t ld;
      const T* src = prev_rows(d, y, h0, t, &ld) + b * ld;
      std::memcpy(hprev + (b * d.T + t) * d.H, src, sizeof(T) * d.H);
    }
  gemm<T>(true, false, d.H, N, d.rows(), T(1), hprev, d.H, dG, N, T(0), gw_hh, N);
}

// Bias gradient: column sums of dG [rows, N], accumulated in double in row order (thread-count independent).
template <class T>
void column_sums(const T* G, int64_t rows, int64_t N, T* out) {
  std::vector<double> acc(static_cast<size_t>(N), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < N; ++j) acc[j] += static_cast<double>(G[r * N + j]);
  for (int64_t j = 0; j < N; ++j) out[j] = static_cast<T>(acc[j]);
}

// Adds the sequence gradient of one row into the running dh (absent gradients add nothing).
template <class T>
void add_row(int64_t H, const T* gy, int64_t row, T* __restrict dh) {
  if (gy == nullptr) return;
  const T* __restrict g = gy + row * H;
  for (int64_t j = 0; j < H; ++j) dh[j] += g[j];
}

// The cell table for T: the AVX2 build of the f32 cells when the CPU has it.
template <class T>
const CellTable<T>& cells() {
  if constexpr (std::is_same_v<T, float>) {
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return avx2 ? cells_avx2_f32() : cells_generic<float>();
  } else {
    return cells_generic<double>();
  }
}

// ---- LSTM: in [x, w_ih, w_hh, b, h0, c0] -> out [y, h_T, c_T, gates (i, f, g, o activated), c (all steps)] ----

template <class T>
void lstm_forward(const KernelArgs& a, const Dims& d) {
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>(), *w_hh = a.in[2].ptr<const T>();
  const T *bias = a.in[3].ptr<const T>(), *h0 = a.in[4].ptr<const T>(), *c0 = a.in[5].ptr<const T>();
  T *y = a.out[0].ptr<T>(), *gates = a.out[3].ptr<T>(), *cs = a.out[4].ptr<T>();
  const int64_t H = d.H, N = 4 * H;
  project_inputs(d, x, w_ih, bias, N, gates, N);
  const StepProduct<T> recur(w_hh, H, N, false);
  over_batch(d, N, [&](int64_t b0, int64_t b1) {
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = d.t_at(s);
      int64_t ldh, ldc;
      const T* hp = prev_rows(d, y, h0, t, &ldh);
      const T* cp = prev_rows(d, cs, c0, t, &ldc);
      recur(b1 - b0, hp + b0 * ldh, ldh, true, gates + (b0 * d.T + t) * N, d.T * N);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * d.T + t;
        cells<T>().lstm(H, gates + row * N, cp + b * ldc, cs + row * H, y + row * H);
      }
    }
  });
  final_state(d, y, a.out[1].ptr<T>());
  final_state(d, cs, a.out[2].ptr<T>());
}

// in [x, w_ih, w_hh, h0, c0, y, gates, c, gy, gh_T, gc_T] -> out [gx, gw_ih, gw_hh, gb, gh0, gc0]
template <class T>
void lstm_backward(const KernelArgs& a, const Dims& d) {
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>(), *w_hh = a.in[2].ptr<const T>();
  const T *h0 = a.in[3].ptr<const T>(), *c0 = a.in[4].ptr<const T>(), *y = a.in[5].ptr<const T>();
  const T *gates = a.in[6].ptr<const T>(), *cs = a.in[7].ptr<const T>();
  const T* gy = opt_grad<T>(a.in[8], d.rows() * d.H, "lstm_seq_grad: gy");
  T *dh = a.out[4].ptr<T>(), *dc = a.out[5].ptr<T>();  // running dh/dc; after the loop they are gh0, gc0
  const int64_t H = d.H, N = 4 * H;
  init_state_grad(a.in[9], d.B * H, dh, "lstm_seq_grad: gh_T");
  init_state_grad(a.in[10], d.B * H, dc, "lstm_seq_grad: gc_T");
  T* dG = scratch<T>(static_cast<size_t>(d.rows() * (N + H)));
  const StepProduct<T> recur(w_hh, N, H, true);
  over_batch(d, N, [&](int64_t b0, int64_t b1) {
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = d.t_at(s);
      int64_t ldc;
      const T* cp = prev_rows(d, cs, c0, t, &ldc);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * d.T + t;
        add_row(H, gy, row, dh + b * H);
        cells<T>().lstm_grad(H, gates + row * N, cs + row * H, cp + b * ldc, dh + b * H, dc + b * H,
                             dG + row * N);
      }
      recur(b1 - b0, dG + (b0 * d.T + t) * N, d.T * N, false, dh + b0 * H, H);
    }
  });
  input_grads(d, x, w_ih, dG, N, a.out[0].ptr<T>(), a.out[1].ptr<T>());
  hidden_weight_grad(d, y, h0, dG, N, dG + d.rows() * N, a.out[2].ptr<T>());
  column_sums(dG, d.rows(), N, a.out[3].ptr<T>());
}

// ---- GRU: in [x, w_ih, w_hh, b_ih, b_hh, h0] -> out [y, h_T, saved (r, z, n activated, W_hn h + b_hn)] ----

template <class T>
void gru_forward(const KernelArgs& a, const Dims& d) {
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>(), *w_hh = a.in[2].ptr<const T>();
  const T *b_ih = a.in[3].ptr<const T>(), *b_hh = a.in[4].ptr<const T>(), *h0 = a.in[5].ptr<const T>();
  T *y = a.out[0].ptr<T>(), *saved = a.out[2].ptr<T>();
  const int64_t H = d.H, N = 3 * H, S = 4 * H;
  project_inputs(d, x, w_ih, b_ih, N, saved, S);
  const StepProduct<T> recur(w_hh, H, N, false);
  over_batch(d, N, [&](int64_t b0, int64_t b1) {
    T* hproj = scratch<T>(static_cast<size_t>((b1 - b0) * N));  // this thread's own buffer
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = d.t_at(s);
      int64_t ldh;
      const T* hp = prev_rows(d, y, h0, t, &ldh);
      // n needs r * (W_hn h + b_hn), so the hidden projection cannot be summed into the input projection.
      recur(b1 - b0, hp + b0 * ldh, ldh, false, hproj, N);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * d.T + t;
        cells<T>().gru(H, saved + row * S, hproj + (b - b0) * N, b_hh, hp + b * ldh, y + row * H);
      }
    }
  });
  final_state(d, y, a.out[1].ptr<T>());
}

// in [x, w_ih, w_hh, h0, y, saved, gy, gh_T] -> out [gx, gw_ih, gw_hh, gb_ih, gb_hh, gh0]
template <class T>
void gru_backward(const KernelArgs& a, const Dims& d) {
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>(), *w_hh = a.in[2].ptr<const T>();
  const T *h0 = a.in[3].ptr<const T>(), *y = a.in[4].ptr<const T>(), *saved = a.in[5].ptr<const T>();
  const T* gy = opt_grad<T>(a.in[6], d.rows() * d.H, "gru_seq_grad: gy");
  T* dh = a.out[5].ptr<T>();
  const int64_t H = d.H, N = 3 * H, S = 4 * H, R = d.rows();
  init_state_grad(a.in[7], d.B * H, dh, "gru_seq_grad: gh_T");
  T* dGx = scratch<T>(static_cast<size_t>(R * (2 * N + H)));
  T* dGh = dGx + R * N;
  const StepProduct<T> recur(w_hh, N, H, true);
  over_batch(d, N, [&](int64_t b0, int64_t b1) {
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = d.t_at(s);
      int64_t ldh;
      const T* hp = prev_rows(d, y, h0, t, &ldh);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * d.T + t;
        add_row(H, gy, row, dh + b * H);
        cells<T>().gru_grad(H, saved + row * S, hp + b * ldh, dh + b * H, dGx + row * N, dGh + row * N);
      }
      recur(b1 - b0, dGh + (b0 * d.T + t) * N, d.T * N, true, dh + b0 * H, H);
    }
  });
  input_grads(d, x, w_ih, dGx, N, a.out[0].ptr<T>(), a.out[1].ptr<T>());
  hidden_weight_grad(d, y, h0, dGh, N, dGh + R * N, a.out[2].ptr<T>());
  column_sums(dGx, R, N, a.out[3].ptr<T>());
  column_sums(dGh, R, N, a.out[4].ptr<T>());
}

// ---- Elman RNN: in [x, w_ih, w_hh, b, h0] -> out [y, h_T]; ints [reverse, activation: 0 tanh, 1 relu] ----

template <class T>
void rnn_forward(const KernelArgs& a, const Dims& d, bool relu) {
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>(), *w_hh = a.in[2].ptr<const T>();
  const T *bias = a.in[3].ptr<const T>(), *h0 = a.in[4].ptr<const T>();
  T* y = a.out[0].ptr<T>();
  const int64_t H = d.H;
  project_inputs(d, x, w_ih, bias, H, y, H);  // pre-activations, activated in place step by step
  const StepProduct<T> recur(w_hh, H, H, false);
  over_batch(d, H, [&](int64_t b0, int64_t b1) {
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = d.t_at(s);
      int64_t ldh;
      const T* hp = prev_rows(d, y, h0, t, &ldh);
      recur(b1 - b0, hp + b0 * ldh, ldh, true, y + (b0 * d.T + t) * H, d.T * H);
      for (int64_t b = b0; b < b1; ++b) cells<T>().rnn(H, relu, y + (b * d.T + t) * H);
    }
  });
  final_state(d, y, a.out[1].ptr<T>());
}

// in [x, w_ih, w_hh, h0, y, gy, gh_T] -> out [gx, gw_ih, gw_hh, gb, gh0]
template <class T>
void rnn_backward(const KernelArgs& a, const Dims& d, bool relu) {
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>(), *w_hh = a.in[2].ptr<const T>();
  const T *h0 = a.in[3].ptr<const T>(), *y = a.in[4].ptr<const T>();
  const T* gy = opt_grad<T>(a.in[5], d.rows() * d.H, "rnn_seq_grad: gy");
  T* dh = a.out[4].ptr<T>();
  const int64_t H = d.H, R = d.rows();
  init_state_grad(a.in[6], d.B * H, dh, "rnn_seq_grad: gh_T");
  T* dA = scratch<T>(static_cast<size_t>(2 * R * H));
  const StepProduct<T> recur(w_hh, H, H, true);
  over_batch(d, H, [&](int64_t b0, int64_t b1) {
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = d.t_at(s);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * d.T + t;
        add_row(H, gy, row, dh + b * H);
        cells<T>().rnn_grad(H, relu, y + row * H, dh + b * H, dA + row * H);
      }
      recur(b1 - b0, dA + (b0 * d.T + t) * H, d.T * H, false, dh + b0 * H, H);
    }
  });
  input_grads(d, x, w_ih, dA, H, a.out[0].ptr<T>(), a.out[1].ptr<T>());
  hidden_weight_grad(d, y, h0, dA, H, dA + R * H, a.out[2].ptr<T>());
  column_sums(dA, R, H, a.out[3].ptr<T>());
}

// ---- kernel entry points ----

void lstm_seq_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 6 && a.n_out == 5, "lstm_seq: expects [x, w_ih, w_hh, b, h0, c0] -> [y, hT, cT, gates, c]");
  const Dims d = dims_of(a, 4, "lstm_seq: bad operand shapes");
  kern::dispatch_float(a.in[0].dtype, "lstm_seq", [&](auto tag) { lstm_forward<decltype(tag)>(a, d); });
}

void lstm_seq_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 11 && a.n_out == 6, "lstm_seq_grad: expects 11 inputs and 6 outputs");
  const Dims d = dims_of(a, 4, "lstm_seq_grad: bad operand shapes");
  kern::dispatch_float(a.in[0].dtype, "lstm_seq_grad", [&](auto tag) { lstm_backward<decltype(tag)>(a, d); });
}

void gru_seq_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 6 && a.n_out == 3, "gru_seq: expects [x, w_ih, w_hh, b_ih, b_hh, h0] -> [y, hT, saved]");
  const Dims d = dims_of(a, 3, "gru_seq: bad operand shapes");
  kern::dispatch_float(a.in[0].dtype, "gru_seq", [&](auto tag) { gru_forward<decltype(tag)>(a, d); });
}

void gru_seq_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 8 && a.n_out == 6, "gru_seq_grad: expects 8 inputs and 6 outputs");
  const Dims d = dims_of(a, 3, "gru_seq_grad: bad operand shapes");
  kern::dispatch_float(a.in[0].dtype, "gru_seq_grad", [&](auto tag) { gru_backward<decltype(tag)>(a, d); });
}

void rnn_seq_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 5 && a.n_out == 2 && a.n_ints == 2, "rnn_seq: expects [x, w_ih, w_hh, b, h0] -> [y, hT]");
  const Dims d = dims_of(a, 1, "rnn_seq: bad operand shapes");
  kern::dispatch_float(a.in[0].dtype, "rnn_seq",
                       [&](auto tag) { rnn_forward<decltype(tag)>(a, d, a.ints[1] == 1); });
}

void rnn_seq_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 7 && a.n_out == 5 && a.n_ints == 2, "rnn_seq_grad: expects 7 inputs and 5 outputs");
  const Dims d = dims_of(a, 1, "rnn_seq_grad: bad operand shapes");
  kern::dispatch_float(a.in[0].dtype, "rnn_seq_grad",
                       [&](auto tag) { rnn_backward<decltype(tag)>(a, d, a.ints[1] == 1); });
}

}  // namespace

DLC_REGISTER_KERNEL("lstm_seq", ::dlc::Device::CPU, lstm_seq_kernel);
DLC_REGISTER_KERNEL("lstm_seq_grad", ::dlc::Device::CPU, lstm_seq_grad_kernel);
DLC_REGISTER_KERNEL("gru_seq", ::dlc::Device::CPU, gru_seq_kernel);
DLC_REGISTER_KERNEL("gru_seq_grad", ::dlc::Device::CPU, gru_seq_grad_kernel);
DLC_REGISTER_KERNEL("rnn_seq", ::dlc::Device::CPU, rnn_seq_kernel);
DLC_REGISTER_KERNEL("rnn_seq_grad", ::dlc::Device::CPU, rnn_seq_grad_kernel);

}  // namespace dlc
