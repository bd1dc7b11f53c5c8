// Per-row gate math of the recurrent kernels (one batch row, one time step), compiled three times: into
// cells_generic.cpp, with AVX2/FMA into cells_avx2.cpp and with AVX-512 into cells_avx512.cpp; recurrent_cpu.cpp
// picks a table at run time. The
// math is dominated by exp/tanh: f32 uses fastmath.h's branch-free approximations (a few ulp), which vectorize
// only where floor() does (SSE4.1 and up); f64 keeps libm, which the float64 gradient checks rely on.
// Everything has internal linkage so the two instruction sets never meet in one inline symbol.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/elementwise/formulas.h"

namespace dlc {

// Pointers to the cell functions of one element type (contracts at each function below). Each runs units
// [0, n) of one row, where gate k of unit j is at [k * H + j] (so a caller handling units [u0, u1) passes
// n = u1 - u0 and pointers advanced by u0).
template <class T>
struct CellTable {
  void (*lstm)(int64_t n, int64_t H, T* g, const T* c_prev, T* c, T* h);
  void (*lstm_grad)(int64_t n, int64_t H, const T* g, const T* c, const T* c_prev, const T* dh, T* dc, T* dg);
  void (*gru)(int64_t n, int64_t H, T* sx, const T* hh, const T* b_hn, const T* h_prev, T* h);
  void (*gru_grad)(int64_t n, int64_t H, const T* sv, const T* h_prev, T* dh, T* gx, T* gh);
  void (*rnn)(int64_t H, bool relu, T* h);
  void (*rnn_grad)(int64_t H, bool relu, const T* h, const T* dh, T* da);
};

template <class T>
const CellTable<T>& cells_generic();
const CellTable<float>& cells_avx2_f32();
const CellTable<float>& cells_avx512_f32();

namespace {

// The activations are elementwise's (formulas.h): sigmoid, tanh.
template <class T> inline T sigmoid(T v) { return m_sigmoid(v); }
template <class T> inline T tanh_(T v) { return m_tanh(v); }

// One row of one step: g holds the pre-activations and receives the activated gates.
template <class T>
void lstm_cell(int64_t n, int64_t H, T* __restrict g, const T* __restrict c_prev, T* __restrict c,
               T* __restrict h) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = sigmoid(g[j]), f = sigmoid(g[H + j]), gg = tanh_(g[2 * H + j]), o = sigmoid(g[3 * H + j]);
    const T cj = f * c_prev[j] + i * gg;
    g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
    c[j] = cj;
    h[j] = o * tanh_(cj);
  }
}

// dh holds dL/dh_t (from above and from step t+1); writes the gates' pre-activation gradients dg and turns dc
// into dL/dc_{t-1}.
template <class T>
void lstm_cell_grad(int64_t n, int64_t H, const T* __restrict g, const T* __restrict c,
                    const T* __restrict c_prev, const T* __restrict dh, T* __restrict dc, T* __restrict dg) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
    const T tc = tanh_(c[j]);
    const T dct = dc[j] + dh[j] * o * (T(1) - tc * tc);
    dg[j] = dct * gg * i * (T(1) - i);
    dg[H + j] = dct * c_prev[j] * f * (T(1) - f);
    dg[2 * H + j] = dct * i * (T(1) - gg * gg);
    dg[3 * H + j] = dh[j] * tc * o * (T(1) - o);
    dc[j] = dct * f;
  }
}

// sx holds x W_ih + b_ih (r, z, n) with b_hh's r and z parts summed in, and receives r, z, n, hn; hh is h W_hh
// (without bias) and b_hn the n part of b_hh, which r multiplies.
template <class T>
void gru_cell(int64_t n_units, int64_t H, T* __restrict sx, const T* __restrict hh, const T* __restrict b_hn,
              const T* __restrict h_prev, T* __restrict h) {
  for (int64_t j = 0; j < n_units; ++j) {
    const T hn = hh[2 * H + j] + b_hn[j];
    const T r = sigmoid(sx[j] + hh[j]);
    const T z = sigmoid(sx[H + j] + hh[H + j]);
    const T n = tanh_(sx[2 * H + j] + r * hn);
    sx[j] = r, sx[H + j] = z, sx[2 * H + j] = n, sx[3 * H + j] = hn;
    h[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

// Pre-activation gradients seen from the input side gx (r, z, n) and the hidden side gh (r, z, h W_hn + b_hn);
// dh becomes the direct part z * dh of dL/dh_{t-1} (the part through w_hh is added by a GEMM).
template <class T>
void gru_cell_grad(int64_t n, int64_t H, const T* __restrict sv, const T* __restrict h_prev, T* __restrict dh,
                   T* __restrict gx, T* __restrict gh) {
  for (int64_t j = 0; j < n; ++j) {
    const T r = sv[j], z = sv[H + j], n = sv[2 * H + j], hn = sv[3 * H + j];
    const T dan = dh[j] * (T(1) - z) * (T(1) - n * n);
    const T dar = dan * hn * r * (T(1) - r);
    const T daz = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
    gx[j] = dar, gx[H + j] = daz, gx[2 * H + j] = dan;
    gh[j] = dar, gh[H + j] = daz, gh[2 * H + j] = dan * r;
    dh[j] = dh[j] * z;
  }
}

// h = act(h) in place.
template <class T>
void rnn_activate(int64_t H, bool relu, T* __restrict h) {
  if (relu)
    for (int64_t j = 0; j < H; ++j) h[j] = std::max(h[j], T(0));
  else
    for (int64_t j = 0; j < H; ++j) h[j] = tanh_(h[j]);
}

// da = dh * act'(h), with the derivative taken from the output h alone.
template <class T>
void rnn_cell_grad(int64_t H, bool relu, const T* __restrict h, const T* __restrict dh, T* __restrict da) {
  if (relu)
    for (int64_t j = 0; j < H; ++j) da[j] = h[j] > T(0) ? dh[j] : T(0);
  else
    for (int64_t j = 0; j < H; ++j) da[j] = dh[j] * (T(1) - h[j] * h[j]);
}

template <class T>
CellTable<T> make_cell_table() {
  return {&lstm_cell<T>, &lstm_cell_grad<T>, &gru_cell<T>, &gru_cell_grad<T>, &rnn_activate<T>, &rnn_cell_grad<T>};
}

}  // namespace
}  // namespace dlc
