// Fused recurrent layers (Elman RNN, LSTM, GRU) over a whole batch-first sequence, and their backward passes
// (backpropagation through time). One kernel call runs one layer in one direction.
//
// Layouts (row-major): x [B, T, I]; w_ih [I, G*H] and w_hh [H, G*H] (x @ W, the G gates side by side in
// PyTorch's order: LSTM i, f, g, o; GRU r, z, n); y [B, T, H] is the hidden state at every time step, aligned
// with x also when ints[0] (reverse_time) is set, in which case loop step s visits time t = T-1-s.
//
// Forward: one GEMM projects the inputs of all time steps at once (B*T rows) and adds the biases (summed once:
// the GRU's b_hh joins b_ih for r and z) as its epilogue; the loop over time then adds h_{t-1} @ w_hh with a
// small product that writes straight into that step's rows (recurrence.h's StepProduct), and applies the gate
// math. w_ih and w_hh are packed once: kept by the plan across calls while they are unchanged when it keeps
// packed inputs (an inference plan), else once per call. The activated gates are outputs (graph values the
// memory planner sees), kept for the backward pass. The per-row gate math lives in cells.h (built generic and
// AVX2, picked at run time).
// Backward: the reverse loop turns dh into the gates' pre-activation gradients dG and pushes dh back through
// w_hh; the input, weight and bias gradients then come from big GEMMs over all B*T rows after the loop.
//
// Threads: recurrence.h's split_for picks batch slices for the whole sequence (no barrier per step) or, with
// fewer rows than threads, unit ranges of each step. The big GEMMs before and after the loop use the GEMM's own
// threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/gemm/gemm.h"
#include "kernels/recurrent/cells.h"
#include "kernels/recurrent/recurrence.h"

namespace dlc {
namespace {

using rec::Dims;
using rec::Split;
using rec::StepProduct;

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

// The split of a call whose per-step product is h [B, H] @ [H, gates * H] (or its transpose).
Split split_of(const Dims& d, int64_t gates) {
  return rec::split_for(d, static_cast<double>(d.B * d.H * gates * d.H), d.H);
}

// Runs the forward time loop: step(s, b0, b1, u0, u1) for every loop step s in order, over the split.
template <class F>
void forward_loop(const Dims& d, const Split& sp, const F& step) {
  if (sp.chunks > 1) {
    rec::over_units(d.T, d.H, sp.chunks, [&](int64_t s, int64_t u0, int64_t u1) { step(s, int64_t{0}, d.B, u0, u1); });
    return;
  }
  rec::over_batch(d, sp, [&](int64_t b0, int64_t b1) {
    for (int64_t s = 0; s < d.T; ++s) step(s, b0, b1, int64_t{0}, d.H);
  });
}

// Runs the backward time loop, loop steps s from T-1 down to 0: cell(s, ...) turns the running dh of the
// units into the step's gate gradients, then push(s, ...) adds the step's gradients through w_hh into dh.
// Split by units, push of step s needs every unit's gate gradients, so it runs one phase after cell of s.
template <class C, class P>
void backward_loop(const Dims& d, const Split& sp, const C& cell, const P& push) {
  if (sp.chunks > 1) {
    rec::over_units(d.T + 1, d.H, sp.chunks, [&](int64_t p, int64_t u0, int64_t u1) {
      if (p > 0) push(d.T - p, int64_t{0}, d.B, u0, u1);
      if (p < d.T) cell(d.T - 1 - p, int64_t{0}, d.B, u0, u1);
    });
    return;
  }
  rec::over_batch(d, sp, [&](int64_t b0, int64_t b1) {
    for (int64_t s = d.T - 1; s >= 0; --s) {
      cell(s, b0, b1, int64_t{0}, d.H);
      push(s, b0, b1, int64_t{0}, d.H);
    }
  });
}

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

// The projection's epilogue: adds the bias (ctx) to a finished block of C while it is in cache.
template <class T>
void add_bias(void* ctx, T* C, int64_t ldc, int64_t i0, int64_t j0, int64_t m, int64_t n) {
  const T* __restrict bias = static_cast<const T*>(ctx) + j0;
  for (int64_t i = i0; i < i0 + m; ++i) {
    T* __restrict row = C + i * ldc + j0;
    for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
  }
}

// G[B*T, N] (leading dim ldg) = x @ w_ih + bias for every time step in one GEMM, w_ih packed once.
template <class T>
void project_inputs(const KernelArgs& a, const Dims& d, const T* bias, int64_t N, T* G, int64_t ldg) {
  const auto packed = rec::gemm_packed_input<T>(a, 1, false, d.rows(), d.I, N);
  gemm<T>(false, false, d.rows(), N, d.I, T(1), a.in[0].ptr<const T>(), d.I, a.in[1].ptr<const T>(), N, T(0), G,
          ldg, &add_bias<T>, const_cast<T*>(bias), nullptr, packed.get());
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

// Adds units [u0, u1) of the sequence gradient of one row into the running dh (absent gradients add nothing).
template <class T>
void add_row(int64_t H, const T* gy, int64_t row, int64_t u0, int64_t u1, T* __restrict dh) {
  if (gy == nullptr) return;
  const T* __restrict g = gy + row * H;
  for (int64_t j = u0; j < u1; ++j) dh[j] += g[j];
}

// The cell table for T on the GEMM's kernel path in use (so forcing the GEMM's ISA covers the cells too): the
// AVX-512 or AVX2 build of the f32 cells, else the generic one.
template <class T>
const CellTable<T>& cells() {
  if constexpr (std::is_same_v<T, float>) {
    const char* path = gemm_kernel_name();
    if (std::strcmp(path, "avx512") == 0) return cells_avx512_f32();
    if (std::strcmp(path, "avx2") == 0) return cells_avx2_f32();
    return cells_generic<float>();
  } else {
    return cells_generic<double>();
  }
}

// Scratch of the backward passes (gate gradients) and the GRU's hidden projection, taken on the calling thread.
template <class T>
T* grads_scratch(int64_t n) {
  return scratch<T, ScratchSlot::RecurrentGrads>(static_cast<size_t>(n));
}

// ---- LSTM: in [x, w_ih, w_hh, b, h0, c0] -> out [y, h_T, c_T, gates (i, f, g, o activated), c (all steps)] ----

template <class T>
void lstm_forward(const KernelArgs& a, const Dims& d) {
  const CellTable<T>& cell = cells<T>();
  const T *bias = a.in[3].ptr<const T>(), *h0 = a.in[4].ptr<const T>(), *c0 = a.in[5].ptr<const T>();
  T *y = a.out[0].ptr<T>(), *gates = a.out[3].ptr<T>(), *cs = a.out[4].ptr<T>();
  const int64_t H = d.H, N = 4 * H;
  project_inputs(a, d, bias, N, gates, N);
  const Split sp = split_of(d, 4);
  const StepProduct<T> recur(a, 2, H, H, 4, false, true);
  forward_loop(d, sp, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    const int64_t t = d.t_at(s);
    int64_t ldh, ldc;
    const T* hp = prev_rows(d, y, h0, t, &ldh);
    const T* cp = prev_rows(d, cs, c0, t, &ldc);
    recur(b1 - b0, u0, u1, hp + b0 * ldh, ldh, true, gates + (b0 * d.T + t) * N, d.T * N);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = b * d.T + t;
      cell.lstm(u1 - u0, H, gates + row * N + u0, cp + b * ldc + u0, cs + row * H + u0, y + row * H + u0);
    }
  });
  final_state(d, y, a.out[1].ptr<T>());
  final_state(d, cs, a.out[2].ptr<T>());
}

// in [x, w_ih, w_hh, h0, c0, y, gates, c, gy, gh_T, gc_T] -> out [gx, gw_ih, gw_hh, gb, gh0, gc0]
template <class T>
void lstm_backward(const KernelArgs& a, const Dims& d) {
  const CellTable<T>& cell = cells<T>();
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>();
  const T *h0 = a.in[3].ptr<const T>(), *c0 = a.in[4].ptr<const T>(), *y = a.in[5].ptr<const T>();
  const T *gates = a.in[6].ptr<const T>(), *cs = a.in[7].ptr<const T>();
  const T* gy = opt_grad<T>(a.in[8], d.rows() * d.H, "lstm_seq_grad: gy");
  T *dh = a.out[4].ptr<T>(), *dc = a.out[5].ptr<T>();  // running dh/dc; after the loop they are gh0, gc0
  const int64_t H = d.H, N = 4 * H;
  init_state_grad(a.in[9], d.B * H, dh, "lstm_seq_grad: gh_T");
  init_state_grad(a.in[10], d.B * H, dc, "lstm_seq_grad: gc_T");
  T* dG = grads_scratch<T>(d.rows() * (N + H));
  const Split sp = split_of(d, 4);
  const StepProduct<T> recur(a, 2, N, H, 1, true, false);
  backward_loop(d, sp, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    const int64_t t = d.t_at(s);
    int64_t ldc;
    const T* cp = prev_rows(d, cs, c0, t, &ldc);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = b * d.T + t;
      add_row(H, gy, row, u0, u1, dh + b * H);
      cell.lstm_grad(u1 - u0, H, gates + row * N + u0, cs + row * H + u0, cp + b * ldc + u0,
                           dh + b * H + u0, dc + b * H + u0, dG + row * N + u0);
    }
  }, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    recur(b1 - b0, u0, u1, dG + (b0 * d.T + d.t_at(s)) * N, d.T * N, false, dh + b0 * H, H);
  });
  input_grads(d, x, w_ih, dG, N, a.out[0].ptr<T>(), a.out[1].ptr<T>());
  hidden_weight_grad(d, y, h0, dG, N, dG + d.rows() * N, a.out[2].ptr<T>());
  column_sums(dG, d.rows(), N, a.out[3].ptr<T>());
}

// ---- GRU: in [x, w_ih, w_hh, b_ih, b_hh, h0] -> out [y, h_T, saved (r, z, n activated, W_hn h + b_hn)] ----

template <class T>
void gru_forward(const KernelArgs& a, const Dims& d) {
  const CellTable<T>& cell = cells<T>();
  const T *b_ih = a.in[3].ptr<const T>(), *b_hh = a.in[4].ptr<const T>(), *h0 = a.in[5].ptr<const T>();
  T *y = a.out[0].ptr<T>(), *saved = a.out[2].ptr<T>();
  const int64_t H = d.H, N = 3 * H, S = 4 * H;
  // r and z see b_ih + b_hh, summed once into the projection's bias; n needs r * (W_hn h + b_hn), so b_hn stays
  // apart and the hidden projection is not summed into the input projection.
  std::vector<T> bias(b_ih, b_ih + N);
  for (int64_t j = 0; j < 2 * H; ++j) bias[j] += b_hh[j];
  project_inputs(a, d, bias.data(), N, saved, S);
  T* hproj = grads_scratch<T>(d.B * N);  // h_{t-1} @ w_hh of the step's rows
  const Split sp = split_of(d, 3);
  const StepProduct<T> recur(a, 2, H, H, 3, false, true);
  forward_loop(d, sp, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    const int64_t t = d.t_at(s);
    int64_t ldh;
    const T* hp = prev_rows(d, y, h0, t, &ldh);
    recur(b1 - b0, u0, u1, hp + b0 * ldh, ldh, false, hproj + b0 * N, N);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = b * d.T + t;
      cell.gru(u1 - u0, H, saved + row * S + u0, hproj + b * N + u0, b_hh + 2 * H + u0, hp + b * ldh + u0,
                     y + row * H + u0);
    }
  });
  final_state(d, y, a.out[1].ptr<T>());
}

// in [x, w_ih, w_hh, h0, y, saved, gy, gh_T] -> out [gx, gw_ih, gw_hh, gb_ih, gb_hh, gh0]
template <class T>
void gru_backward(const KernelArgs& a, const Dims& d) {
  const CellTable<T>& cell = cells<T>();
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>();
  const T *h0 = a.in[3].ptr<const T>(), *y = a.in[4].ptr<const T>(), *saved = a.in[5].ptr<const T>();
  const T* gy = opt_grad<T>(a.in[6], d.rows() * d.H, "gru_seq_grad: gy");
  T* dh = a.out[5].ptr<T>();
  const int64_t H = d.H, N = 3 * H, S = 4 * H, R = d.rows();
  init_state_grad(a.in[7], d.B * H, dh, "gru_seq_grad: gh_T");
  T* dGx = grads_scratch<T>(R * (2 * N + H));
  T* dGh = dGx + R * N;
  const Split sp = split_of(d, 3);
  const StepProduct<T> recur(a, 2, N, H, 1, true, false);
  backward_loop(d, sp, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    const int64_t t = d.t_at(s);
    int64_t ldh;
    const T* hp = prev_rows(d, y, h0, t, &ldh);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = b * d.T + t;
      add_row(H, gy, row, u0, u1, dh + b * H);
      cell.gru_grad(u1 - u0, H, saved + row * S + u0, hp + b * ldh + u0, dh + b * H + u0,
                          dGx + row * N + u0, dGh + row * N + u0);
    }
  }, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    recur(b1 - b0, u0, u1, dGh + (b0 * d.T + d.t_at(s)) * N, d.T * N, true, dh + b0 * H, H);
  });
  input_grads(d, x, w_ih, dGx, N, a.out[0].ptr<T>(), a.out[1].ptr<T>());
  hidden_weight_grad(d, y, h0, dGh, N, dGh + R * N, a.out[2].ptr<T>());
  column_sums(dGx, R, N, a.out[3].ptr<T>());
  column_sums(dGh, R, N, a.out[4].ptr<T>());
}

// ---- Elman RNN: in [x, w_ih, w_hh, b, h0] -> out [y, h_T]; ints [reverse, activation: 0 tanh, 1 relu] ----

template <class T>
void rnn_forward(const KernelArgs& a, const Dims& d, bool relu) {
  const CellTable<T>& cell = cells<T>();
  const T *bias = a.in[3].ptr<const T>(), *h0 = a.in[4].ptr<const T>();
  T* y = a.out[0].ptr<T>();
  const int64_t H = d.H;
  project_inputs(a, d, bias, H, y, H);  // pre-activations, activated in place step by step
  const Split sp = split_of(d, 1);
  const StepProduct<T> recur(a, 2, H, H, 1, false, true);
  forward_loop(d, sp, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    const int64_t t = d.t_at(s);
    int64_t ldh;
    const T* hp = prev_rows(d, y, h0, t, &ldh);
    recur(b1 - b0, u0, u1, hp + b0 * ldh, ldh, true, y + (b0 * d.T + t) * H, d.T * H);
    for (int64_t b = b0; b < b1; ++b) cell.rnn(u1 - u0, relu, y + (b * d.T + t) * H + u0);
  });
  final_state(d, y, a.out[1].ptr<T>());
}

// in [x, w_ih, w_hh, h0, y, gy, gh_T] -> out [gx, gw_ih, gw_hh, gb, gh0]
template <class T>
void rnn_backward(const KernelArgs& a, const Dims& d, bool relu) {
  const CellTable<T>& cell = cells<T>();
  const T *x = a.in[0].ptr<const T>(), *w_ih = a.in[1].ptr<const T>();
  const T *h0 = a.in[3].ptr<const T>(), *y = a.in[4].ptr<const T>();
  const T* gy = opt_grad<T>(a.in[5], d.rows() * d.H, "rnn_seq_grad: gy");
  T* dh = a.out[4].ptr<T>();
  const int64_t H = d.H, R = d.rows();
  init_state_grad(a.in[6], d.B * H, dh, "rnn_seq_grad: gh_T");
  T* dA = grads_scratch<T>(2 * R * H);
  const Split sp = split_of(d, 1);
  const StepProduct<T> recur(a, 2, H, H, 1, true, false);
  backward_loop(d, sp, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    const int64_t t = d.t_at(s);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = b * d.T + t;
      add_row(H, gy, row, u0, u1, dh + b * H);
      cell.rnn_grad(u1 - u0, relu, y + row * H + u0, dh + b * H + u0, dA + row * H + u0);
    }
  }, [&](int64_t s, int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
    recur(b1 - b0, u0, u1, dA + (b0 * d.T + d.t_at(s)) * H, d.T * H, false, dh + b0 * H, H);
  });
  input_grads(d, x, w_ih, dA, H, a.out[0].ptr<T>(), a.out[1].ptr<T>());
  hidden_weight_grad(d, y, h0, dA, H, dA + R * H, a.out[2].ptr<T>());
  column_sums(dA, R, H, a.out[3].ptr<T>());
}

// ---- prepack (dispatch.h): what the forward kernels keep packed, made when an inference plan is built ----

template <class T>
void prepack_weights(const KernelArgs& a, const Dims& d, int64_t gates) {
  if (a.in[1].data != nullptr) rec::gemm_packed_input<T>(a, 1, false, d.rows(), d.I, gates * d.H);
  if (a.in[2].data != nullptr) StepProduct<T>(a, 2, d.H, d.H, gates, false, true);
}

template <int64_t Gates>
void seq_prepack(const KernelArgs& a) {
  const Dims d = dims_of(a, Gates, "recurrent prepack: bad operand shapes");
  dispatch_float(a.in[0].dtype, "recurrent prepack", [&](auto tag) { prepack_weights<decltype(tag)>(a, d, Gates); });
}

// ---- kernel entry points ----

void lstm_seq_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 6 && a.n_out == 5, "lstm_seq: expects [x, w_ih, w_hh, b, h0, c0] -> [y, hT, cT, gates, c]");
  const Dims d = dims_of(a, 4, "lstm_seq: bad operand shapes");
  dispatch_float(a.in[0].dtype, "lstm_seq", [&](auto tag) { lstm_forward<decltype(tag)>(a, d); });
}

void lstm_seq_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 11 && a.n_out == 6, "lstm_seq_grad: expects 11 inputs and 6 outputs");
  const Dims d = dims_of(a, 4, "lstm_seq_grad: bad operand shapes");
  dispatch_float(a.in[0].dtype, "lstm_seq_grad", [&](auto tag) { lstm_backward<decltype(tag)>(a, d); });
}

void gru_seq_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 6 && a.n_out == 3, "gru_seq: expects [x, w_ih, w_hh, b_ih, b_hh, h0] -> [y, hT, saved]");
  const Dims d = dims_of(a, 3, "gru_seq: bad operand shapes");
  dispatch_float(a.in[0].dtype, "gru_seq", [&](auto tag) { gru_forward<decltype(tag)>(a, d); });
}

void gru_seq_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 8 && a.n_out == 6, "gru_seq_grad: expects 8 inputs and 6 outputs");
  const Dims d = dims_of(a, 3, "gru_seq_grad: bad operand shapes");
  dispatch_float(a.in[0].dtype, "gru_seq_grad", [&](auto tag) { gru_backward<decltype(tag)>(a, d); });
}

void rnn_seq_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 5 && a.n_out == 2 && a.n_ints == 2, "rnn_seq: expects [x, w_ih, w_hh, b, h0] -> [y, hT]");
  const Dims d = dims_of(a, 1, "rnn_seq: bad operand shapes");
  dispatch_float(a.in[0].dtype, "rnn_seq",
                       [&](auto tag) { rnn_forward<decltype(tag)>(a, d, a.ints[1] == 1); });
}

void rnn_seq_grad_kernel(const KernelArgs& a) {
  kernel_check(a.n_in == 7 && a.n_out == 5 && a.n_ints == 2, "rnn_seq_grad: expects 7 inputs and 5 outputs");
  const Dims d = dims_of(a, 1, "rnn_seq_grad: bad operand shapes");
  dispatch_float(a.in[0].dtype, "rnn_seq_grad",
                       [&](auto tag) { rnn_backward<decltype(tag)>(a, d, a.ints[1] == 1); });
}

}  // namespace

DLC_REGISTER_KERNEL("lstm_seq", ::dlc::Device::CPU, lstm_seq_kernel);
DLC_REGISTER_KERNEL("lstm_seq_grad", ::dlc::Device::CPU, lstm_seq_grad_kernel);
DLC_REGISTER_KERNEL("gru_seq", ::dlc::Device::CPU, gru_seq_kernel);
DLC_REGISTER_KERNEL("gru_seq_grad", ::dlc::Device::CPU, gru_seq_grad_kernel);
DLC_REGISTER_KERNEL("rnn_seq", ::dlc::Device::CPU, rnn_seq_kernel);
DLC_REGISTER_KERNEL("rnn_seq_grad", ::dlc::Device::CPU, rnn_seq_grad_kernel);
DLC_REGISTER_PREPACK("lstm_seq", ::dlc::Device::CPU, seq_prepack<4>);
DLC_REGISTER_PREPACK("gru_seq", ::dlc::Device::CPU, seq_prepack<3>);
DLC_REGISTER_PREPACK("rnn_seq", ::dlc::Device::CPU, seq_prepack<1>);

}  // namespace dlc
