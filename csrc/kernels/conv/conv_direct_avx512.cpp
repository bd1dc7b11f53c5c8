// Direct f32 convolutions with AVX-512 (this file is built with -mavx512f ...; see conv_direct.h for the flat
// layout). Everything but the entry points has internal linkage, and no std:: template is instantiated here,
// so no AVX-512 code can stand in for an inline function the rest of the build shares.
//
// Forward tile: MR = 4 output channels x NV vectors of 16 consecutive flat outputs, 4*NV <= 24 accumulators;
// per (input channel, tap) it loads NV input vectors and multiplies each by 4 broadcast weights. NV is picked
// per shape so that the tiles cover a plane's Ho*Wq outputs with the least overshoot. Loops run over output
// tiles outermost, so the few input rows a tile reads stay in L1 while all output-channel blocks use them.
//
// Weight gradient, two forms. With input channels a multiple of 16, position-major: both operands are transposed
// so that the vectors run over input channels (see wgt_tile). Otherwise (e.g. 3 input channels) on the flat
// planes: MO = 4 output channels x up to 5 taps of one input channel, 20 vector accumulators summing
// gy(o, q) * x(c, q + off(tap)) along q (the gradient's padding columns are zero), reduced to scalars at the
// end. Either way the sums run over every image in chunks that fit L2, with the accumulators parked in memory
// between chunks; the chunking depends only on the shapes.
//
// Each output element is produced by one tile in a fixed order, so results do not depend on the thread count.
#include <immintrin.h>

#include "kernels/conv/conv_direct.h"
#include "runtime/thread_pool.h"

namespace dlc::conv {
namespace {

constexpr int64_t VL = 16;       // floats per vector
constexpr int64_t MR = 4;        // output channels per forward tile
constexpr int64_t kMaxNV = 6;    // vectors per forward tile
constexpr int64_t MO = 4;        // output channels per flat-plane weight-gradient tile
constexpr int64_t kWgTaps = 5;   // taps per flat-plane weight-gradient tile
constexpr int64_t kChunkBytes = 512 << 10;  // padded images per weight-gradient chunk: about half an L2
constexpr int64_t kParallelMacs = 1 << 18;  // below this a call stays on one thread

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t rup(int64_t a, int64_t b) { return cdiv(a, b) * b; }
int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// Phase-plane layout of one padded image (see conv_direct.h).
struct Flat {
  int64_t Hq, Wq;   // phase-plane rows and columns
  int64_t plane;    // floats per phase plane: Hq*Wq, then zeros covering reads up to a row plus a vector past it
  int64_t chan;     // floats per input channel: all its phases
  int64_t img;      // floats per image
  int64_t slack;    // zeros after the last image, for tiles that overshoot the last plane
  int64_t kk;       // taps
  int64_t off[kDirectMaxTaps];  // tap (i, j) reads at q + off[i*KW + j] from its channel's first phase
};

Flat make_flat(const DirectShape& s) {
  Flat f;
  f.Hq = s.Ho + (s.KH - 1) * s.dh / s.sh;
  f.Wq = s.Wo + (s.KW - 1) * s.dw / s.sw;
  f.plane = rup(f.Hq * f.Wq + f.Wq + VL, VL);
  f.chan = s.sh * s.sw * f.plane;
  f.img = s.Cin * f.chan;
  f.slack = kMaxNV * VL + f.chan;  // a multiple of VL, as are plane and chan
  f.kk = s.KH * s.KW;
  for (int64_t i = 0; i < s.KH; ++i)
    for (int64_t j = 0; j < s.KW; ++j) {
      const int64_t r = i * s.dh, c = j * s.dw;
      f.off[i * s.KW + j] = ((r % s.sh) * s.sw + c % s.sw) * f.plane + r / s.sh * f.Wq + c / s.sw;
    }
  return f;
}

// First index b >= 0 with b*step + v - pad >= lim (lim = 0 or the size), clipped to [0, n].
int64_t first_at_least(int64_t lim, int64_t step, int64_t v, int64_t pad, int64_t n) {
  const int64_t need = lim + pad - v;
  return need <= 0 ? 0 : imin(cdiv(need, step), n);
}

// Lanes l < n.
__mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>((1u << imin(VL, imax(0, n))) - 1u); }

// Copies d[k] = s[k*step] for k < len, with step 1 or 2 (stride-2 phases take the even lanes of two loads) or
// any other step (gathered). Rows are short (8 to 40 floats here), so the tail masks are worked out once per
// span length, not per row.
struct Span {
  int64_t len, full, step;  // full: len rounded down to a vector
  __mmask16 tail, tail_lo, tail_hi;  // tail lanes; for step 2 the source lanes of the tail's two loads
  __m512i pick;  // source lane of each output lane: k*step (step 2: into the pair of loads)

  Span(int64_t n, int64_t stride) : len(n), full(n / VL * VL), step(stride) {
    const int64_t rest = len - full;
    tail = first_lanes(rest);
    tail_lo = first_lanes(2 * rest - 1);
    tail_hi = first_lanes(2 * rest - 1 - VL);
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    pick = _mm512_mullo_epi32(iota, _mm512_set1_epi32(static_cast<int>(step)));
  }

  __m512 load(const float* s, int64_t k, __mmask16 m, __mmask16 m_lo, __mmask16 m_hi) const {
    if (step == 1) return _mm512_maskz_loadu_ps(m, s + k);
    if (step == 2)
      return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m_lo, s + 2 * k), pick,
                                    _mm512_maskz_loadu_ps(m_hi, s + 2 * k + VL));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, pick, s + k * step, 4);
  }

  void copy(float* d, const float* s) const {
    for (int64_t k = 0; k < full; k += VL) _mm512_storeu_ps(d + k, load(s, k, 0xFFFF, 0xFFFF, 0xFFFF));
    if (tail) _mm512_mask_storeu_ps(d + full, tail, load(s, full, tail, tail_lo, tail_hi));
  }
};

// d[0, n) = 0, n a multiple of VL.
void zero(float* d, int64_t n) {
  for (int64_t k = 0; k < n; k += VL) _mm512_storeu_ps(d + k, _mm512_setzero_ps());
}

// Copies one image src [Cin, Hs, Ws] into its zero-padded phase planes at xp.
void pad_image(const DirectShape& s, const Flat& f, const float* src, float* xp) {
  for (int64_t u = 0; u < s.sh; ++u)
    for (int64_t v = 0; v < s.sw; ++v) {
      // Column b of a phase-(u, v) row reads source column b*sw + v - pw; those in [0, Ws) are [lo, hi).
      const int64_t lo = first_at_least(0, s.sw, v, s.pw, f.Wq);
      const int64_t hi = imax(lo, first_at_least(s.Ws, s.sw, v, s.pw, f.Wq));
      const Span span(hi - lo, s.sw);
      for (int64_t c = 0; c < s.Cin; ++c) {
        const float* sc = src + c * s.Hs * s.Ws + lo * s.sw + v - s.pw;
        float* pl = xp + c * f.chan + (u * s.sw + v) * f.plane;
        zero(pl, f.plane);
        for (int64_t a = 0; a < f.Hq; ++a) {
          const int64_t r = a * s.sh + u - s.ph;
          if (r >= 0 && r < s.Hs && hi > lo) span.copy(pl + a * f.Wq + lo, sc + r * s.Ws);
        }
      }
    }
}

// ---- forward ----

// out[r*ldo + 16v + l] = sum over (c, t) of wp[(c*kk + t)*MR + r] * xp[c*chan + off[t] + 16v + l].
template <int NV>
void fwd_tile(int64_t cin, int64_t kk, const float* __restrict wp, const float* __restrict xp, int64_t chan,
              const int64_t* off, float* __restrict out, int64_t ldo) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t c = 0; c < cin; ++c, xp += chan)
    for (int64_t t = 0; t < kk; ++t, wp += MR) {
      const float* x = xp + off[t];
      __m512 xv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) xv[v] = _mm512_loadu_ps(x + v * VL);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512 w = _mm512_set1_ps(wp[r]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(w, xv[v], acc[r][v]);
      }
    }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(out + r * ldo + v * VL, acc[r][v]);
}

using FwdTile = void (*)(int64_t, int64_t, const float*, const float*, int64_t, const int64_t*, float*, int64_t);
constexpr FwdTile kFwdTiles[kMaxNV + 1] = {nullptr,       &fwd_tile<1>, &fwd_tile<2>, &fwd_tile<3>,
                                           &fwd_tile<4>, &fwd_tile<5>, &fwd_tile<6>};

// How one forward call is laid out: tiles, scratch slices and threading.
struct FwdPlan {
  Flat f;
  int64_t nv, tiles, ldo, oblocks;
  int64_t wp_size, xp_size, out_size, slices;
  bool parallel, across_images;
};

FwdPlan fwd_plan(const DirectShape& s, int threads) {
  FwdPlan p;
  p.f = make_flat(s);
  // The NV that covers the Ho*Wq outputs of a plane with the fewest vectors; ties go to the wider tile.
  const int64_t nvec = cdiv(s.Ho * p.f.Wq, VL);
  p.nv = kMaxNV;
  for (int64_t nv = kMaxNV - 1; nv >= 1; --nv)
    if (cdiv(nvec, nv) * nv < cdiv(nvec, p.nv) * p.nv) p.nv = nv;
  p.tiles = cdiv(nvec, p.nv);
  p.ldo = p.tiles * p.nv * VL;
  p.oblocks = cdiv(s.Cout, MR);
  p.wp_size = p.oblocks * s.Cin * p.f.kk * MR;
  p.xp_size = p.f.img + p.f.slack;
  p.out_size = p.oblocks * MR * p.ldo;
  const double macs = static_cast<double>(s.N) * s.Cout * s.Cin * p.f.kk * s.Ho * s.Wo;
  p.parallel = threads > 1 && macs >= kParallelMacs;
  // Whole images per thread when there are enough of them; otherwise the threads share each image's tiles.
  p.across_images = p.parallel && s.N >= threads;
  p.slices = p.across_images ? threads : 1;
  return p;
}

// wp[ob][c][t][r] = weight of output channel ob*MR + r, input channel c, tap t (zero past Cout).
void pack_weights(const DirectShape& s, const float* w, bool flipped, int64_t kk, float* wp) {
  const int64_t oblocks = cdiv(s.Cout, MR);
  for (int64_t ob = 0; ob < oblocks; ++ob)
    for (int64_t c = 0; c < s.Cin; ++c)
      for (int64_t t = 0; t < kk; ++t)
        for (int64_t r = 0; r < MR; ++r) {
          const int64_t o = ob * MR + r;
          float v = 0.0f;
          if (o < s.Cout) v = flipped ? w[(c * s.Cout + o) * kk + (kk - 1 - t)] : w[(o * s.Cin + c) * kk + t];
          wp[((ob * s.Cin + c) * kk + t) * MR + r] = v;
        }
}

// One image: pad, run every tile (over the team when inner_parallel), copy the valid outputs into dst.
void fwd_image(const DirectShape& s, const FwdPlan& p, const float* wp, const float* src, float* xp, float* outf,
               float* dst, bool inner_parallel) {
  const Flat& f = p.f;
  pad_image(s, f, src, xp);
  zero(xp + f.img, f.slack);
  const FwdTile tile = kFwdTiles[p.nv];
  parallel_items(p.tiles, [&](int64_t q, int) {
    const int64_t q0 = q * p.nv * VL;
    for (int64_t ob = 0; ob < p.oblocks; ++ob)
      tile(s.Cin, f.kk, wp + ob * s.Cin * f.kk * MR, xp + q0, f.chan, f.off, outf + ob * MR * p.ldo + q0, p.ldo);
  }, inner_parallel);
  const Span row(s.Wo, 1);
  for (int64_t o = 0; o < s.Cout; ++o)
    for (int64_t oh = 0; oh < s.Ho; ++oh) row.copy(dst + (o * s.Ho + oh) * s.Wo, outf + o * p.ldo + oh * f.Wq);
}

// ---- weight gradient on the flat planes ----

// gyf [Cout, lg] = gy [Cout, Ho, Wo] on the flat grid of row width Wq, zero elsewhere.
void flatten_grad(const DirectShape& s, int64_t Wq, int64_t lg, const float* gy, float* gyf) {
  const Span row(s.Wo, 1);
  for (int64_t o = 0; o < s.Cout; ++o) {
    float* d = gyf + o * lg;
    zero(d, lg);
    for (int64_t oh = 0; oh < s.Ho; ++oh) row.copy(d + oh * Wq, gy + (o * s.Ho + oh) * s.Wo);
  }
}


// acc[m][t] += gy_m(q) * x(q + off[t]) over nvec vectors of each of nimg images, for the `rows` <= MO output
// channels whose flat gradients start at gy (lg apart); then either parked in park (more chunks follow) or
// reduced into out[m*ldout + t].
template <int NT>
void wgrad_tile(int64_t nimg, int64_t nvec, const float* gy, int64_t lg, int64_t rows, int64_t gy_img,
                const float* x, int64_t x_img, const int64_t* off, float* park, bool resume, float* out,
                int64_t ldout) {
  const float* g[MO];
  for (int64_t m = 0; m < MO; ++m) g[m] = gy + imin(m, rows - 1) * lg;  // missing rows repeat the first one
  __m512 acc[MO][NT];
#pragma GCC unroll 16
  for (int m = 0; m < MO; ++m)
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) acc[m][t] = resume ? _mm512_loadu_ps(park + (m * NT + t) * VL) : _mm512_setzero_ps();
  for (int64_t n = 0; n < nimg; ++n, x += x_img)
    for (int64_t q = 0; q < nvec * VL; q += VL) {
      __m512 gv[MO];
#pragma GCC unroll 16
      for (int m = 0; m < MO; ++m) gv[m] = _mm512_load_ps(g[m] + n * gy_img + q);
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        __m512 xv = _mm512_loadu_ps(x + off[t] + q);
        // Keep the (mostly line-splitting) load in a register: folded into each FMA it would be issued MO times.
        __asm__("" : "+v"(xv));
#pragma GCC unroll 16
        for (int m = 0; m < MO; ++m) acc[m][t] = _mm512_fmadd_ps(gv[m], xv, acc[m][t]);
      }
    }
  if (out == nullptr) {
#pragma GCC unroll 16
    for (int m = 0; m < MO; ++m)
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) _mm512_storeu_ps(park + (m * NT + t) * VL, acc[m][t]);
    return;
  }
#pragma GCC unroll 16
  for (int m = 0; m < MO; ++m)
    if (m < rows)
#pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) out[m * ldout + t] = _mm512_reduce_add_ps(acc[m][t]);
}

using WgTile = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, int64_t, const float*, int64_t,
                        const int64_t*, float*, bool, float*, int64_t);
constexpr WgTile kWgTiles[kWgTaps + 1] = {nullptr,        &wgrad_tile<1>, &wgrad_tile<2>,
                                          &wgrad_tile<3>, &wgrad_tile<4>, &wgrad_tile<5>};

struct WgPlan {
  Flat f;
  int64_t lg;        // floats per flattened gy plane: Ho*Wq rounded up to a vector, zeros past each row's Wo
  int64_t tblocks;   // tap blocks of at most kWgTaps
  int64_t tiles;     // (output-channel pair, input channel, tap block)
  int64_t chunk, chunks;
  int64_t xp_size, gy_size, park_size;
};

WgPlan wg_plan(const DirectShape& s) {
  WgPlan p;
  p.f = make_flat(s);
  p.lg = rup(s.Ho * p.f.Wq, VL);
  p.tblocks = cdiv(p.f.kk, kWgTaps);
  p.tiles = cdiv(s.Cout, MO) * s.Cin * p.tblocks;
  const int64_t per_image = static_cast<int64_t>(sizeof(float)) * (p.f.img + s.Cout * p.lg);
  p.chunk = imax(1, imin(s.N, kChunkBytes / per_image));
  p.chunks = cdiv(s.N, p.chunk);
  p.gy_size = s.N * s.Cout * p.lg;
  p.xp_size = s.N * p.f.img + p.f.slack;
  p.park_size = p.chunks > 1 ? p.tiles * MO * kWgTaps * VL : 0;
  return p;
}

// ---- weight gradient, position-major (input channels a multiple of VL) ----
//
// With xT [position][input channel] and gyT [position][output channel] (16 x 16 block transposes of the flat
// planes, zero past the real output channels), gw[o][c][t] = sum_q gyT[q][o] * xT[q + off(t)][c] vectorizes
// over c: a tile of R output channels x V vectors of input channels x 3 taps keeps 24 accumulators, loads 3V
// input vectors and broadcasts R gradient values per position. Consecutive positions read consecutive rows, so
// each step brings in about one new line of each operand, and the lanes are the result itself (no horizontal
// sums). The flat-plane tile above instead streams MO gradient planes through L1 for every 16 positions.

constexpr int64_t kTapsT = 3;  // taps per position-major tile

template <int R, int V, int TN>
void wgt_tile(int64_t nimg, int64_t nq, const float* gt, int64_t op, int64_t gt_img, const float* xt, int64_t cp,
              int64_t xt_img, const int64_t* off, float* park, bool resume) {
  __m512 acc[TN][R][V];
#pragma GCC unroll 32
  for (int t = 0; t < TN; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 32
      for (int v = 0; v < V; ++v)
        acc[t][r][v] = resume ? _mm512_loadu_ps(park + ((t * R + r) * V + v) * VL) : _mm512_setzero_ps();
  for (int64_t n = 0; n < nimg; ++n) {
    const float* g = gt + n * gt_img;
    const float* xs[TN];
    for (int t = 0; t < TN; ++t) xs[t] = xt + n * xt_img + off[t] * cp;
    for (int64_t q = 0; q < nq; ++q) {
      __m512 xv[TN][V];
#pragma GCC unroll 32
      for (int t = 0; t < TN; ++t)
#pragma GCC unroll 32
        for (int v = 0; v < V; ++v) xv[t][v] = _mm512_load_ps(xs[t] + q * cp + v * VL);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const __m512 b = _mm512_set1_ps(g[q * op + r]);
#pragma GCC unroll 32
        for (int t = 0; t < TN; ++t)
#pragma GCC unroll 32
          for (int v = 0; v < V; ++v) acc[t][r][v] = _mm512_fmadd_ps(b, xv[t][v], acc[t][r][v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int t = 0; t < TN; ++t)
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 32
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(park + ((t * R + r) * V + v) * VL, acc[t][r][v]);
}

using WgtTile = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t,
                         const int64_t*, float*, bool);
// [V - 1][TN - 1]: 8 output channels x 1 vector, or 4 x 2 vectors when the input channels allow.
constexpr WgtTile kWgtTiles[2][kTapsT] = {{&wgt_tile<8, 1, 1>, &wgt_tile<8, 1, 2>, &wgt_tile<8, 1, 3>},
                                          {&wgt_tile<4, 2, 1>, &wgt_tile<4, 2, 2>, &wgt_tile<4, 2, 3>}};

struct WgtPlan {
  Flat f;
  int64_t cp, op;           // channel counts rounded up to VL (cp == Cin on this path)
  int64_t nq, lg;           // gradient positions per image (Ho*Wq), and that rounded up to a vector
  int64_t vecs, rows;       // tile shape (with kTapsT taps)
  int64_t cblocks, tblocks, tiles;
  int64_t chunk, chunks;
  int64_t xt_img, gt_img;   // floats per image of xT [chan][cp] and gyT [lg][op]
  int64_t xt_size, gt_size, park, park_size;  // park: floats per tile
  int64_t slice;            // per thread: one image's planes, then its flat gradient [op][lg]
};

WgtPlan wgt_plan(const DirectShape& s) {
  WgtPlan p;
  p.f = make_flat(s);
  p.cp = rup(s.Cin, VL);
  p.op = rup(s.Cout, VL);
  p.nq = s.Ho * p.f.Wq;
  p.lg = rup(p.nq, VL);
  p.vecs = p.cp % (2 * VL) == 0 ? 2 : 1;
  p.rows = p.vecs == 2 ? 4 : 8;
  p.cblocks = p.cp / (p.vecs * VL);
  p.tblocks = cdiv(p.f.kk, kTapsT);
  p.tiles = p.op / p.rows * p.cblocks * p.tblocks;
  p.xt_img = p.f.chan * p.cp;
  p.gt_img = p.lg * p.op;
  p.chunk = imax(1, imin(s.N, kChunkBytes / (static_cast<int64_t>(sizeof(float)) * (p.xt_img + p.gt_img))));
  p.chunks = cdiv(s.N, p.chunk);
  p.xt_size = s.N * p.xt_img;
  p.gt_size = s.N * p.gt_img;
  p.park = kTapsT * p.rows * p.vecs * VL;
  p.park_size = p.tiles * p.park;
  p.slice = p.f.img + p.f.slack + p.op * p.lg;
  return p;
}

// Transposes the 16 x 16 block with rows src + l*lds (l < 16) into rows dst + m*ldd.
void transpose16(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m512 r[16], t[16];
  for (int l = 0; l < 16; ++l) r[l] = _mm512_loadu_ps(src + l * lds);
  // Within each 128-bit lane k: pairs, then r[4i + j] = column 4k + j of rows 4i..4i+3.
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Column 4k + j gathers lane k of r[j], r[4 + j], r[8 + j], r[12 + j].
  for (int j = 0; j < 4; ++j) {
    const __m512 even0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), odd0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    const __m512 even1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    const __m512 odd1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    _mm512_storeu_ps(dst + j * ldd, _mm512_shuffle_f32x4(even0, even1, 0x88));
    _mm512_storeu_ps(dst + (4 + j) * ldd, _mm512_shuffle_f32x4(odd0, odd1, 0x88));
    _mm512_storeu_ps(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(even0, even1, 0xDD));
    _mm512_storeu_ps(dst + (12 + j) * ldd, _mm512_shuffle_f32x4(odd0, odd1, 0xDD));
  }
}

// dst [cols][ldd] = src [rows][lds] transposed; rows and cols are multiples of 16.
void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd) {
  for (int64_t i = 0; i < rows; i += VL)
    for (int64_t j = 0; j < cols; j += VL) transpose16(src + i * lds + j, lds, dst + j * ldd + i, ldd);
}

void wgrad_transposed(const DirectShape& s, const float* x, const float* gy, float* gw, float* scratch) {
  const WgtPlan p = wgt_plan(s);
  const Flat& f = p.f;
  // xT first, 64-byte aligned (rows of cp floats): its loads are then aligned.
  float* const xt = scratch + (VL - reinterpret_cast<uintptr_t>(scratch) / sizeof(float) % VL) % VL;
  float* const gt = xt + p.xt_size;
  float* const park = gt + p.gt_size;
  float* const slices = park + p.park_size;
  const double macs = static_cast<double>(s.N) * s.Cout * s.Cin * f.kk * s.Ho * s.Wo;
  const bool parallel = pool_threads() > 1 && macs >= kParallelMacs;
  parallel_items(s.N, [&](int64_t n, int worker) {
    float* const xp = slices + worker * p.slice;
    float* const gf = xp + f.img + f.slack;
    pad_image(s, f, x + n * s.Cin * s.Hs * s.Ws, xp);
    transpose(xp, p.cp, f.chan, f.chan, xt + n * p.xt_img, p.cp);
    flatten_grad(s, f.Wq, p.lg, gy + n * s.Cout * s.Ho * s.Wo, gf);
    zero(gf + s.Cout * p.lg, (p.op - s.Cout) * p.lg);
    transpose(gf, p.op, p.lg, p.lg, gt + n * p.gt_img, p.op);
  }, parallel);
  // Blocks of tiles taken dynamically; each runs its tiles through all image chunks in order (a tile's sums
  // never depend on who computes it), keeping a chunk's images in cache across the block's tiles.
  parallel_for(p.tiles, grain_for(p.tiles), [&](int64_t lo, int64_t hi, int) {
    for (int64_t ch = 0; ch < p.chunks; ++ch) {
      const int64_t n0 = ch * p.chunk, nimg = imin(p.chunk, s.N - n0);
      for (int64_t tile = lo; tile < hi; ++tile) {
        const int64_t tb = tile % p.tblocks, cb = tile / p.tblocks % p.cblocks;
        const int64_t o0 = tile / p.tblocks / p.cblocks * p.rows, c0 = cb * p.vecs * VL, t0 = tb * kTapsT;
        const int64_t nt = imin(kTapsT, f.kk - t0);
        kWgtTiles[p.vecs - 1][nt - 1](nimg, p.nq, gt + n0 * p.gt_img + o0, p.op, p.gt_img, xt + n0 * p.xt_img + c0,
                                      p.cp, p.xt_img, f.off + t0, park + tile * p.park, ch > 0);
        if (ch + 1 < p.chunks) continue;
        // Last chunk: the tile's lanes are gw[o0 + r][c0 + lane][t0 + t].
        const float* pk = park + tile * p.park;
        for (int64_t t = 0; t < nt; ++t)
          for (int64_t r = 0; r < p.rows && o0 + r < s.Cout; ++r)
            for (int64_t l = 0; l < p.vecs * VL; ++l)
              gw[((o0 + r) * s.Cin + c0 + l) * f.kk + t0 + t] = pk[(t * p.rows + r) * p.vecs * VL + l];
      }
    }
  }, parallel);
}

}  // namespace

bool direct_available() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
}

size_t direct_conv_scratch(const DirectShape& s, int threads) {
  const FwdPlan p = fwd_plan(s, threads);
  return static_cast<size_t>(p.wp_size + p.slices * (p.xp_size + p.out_size));
}

void direct_conv(const DirectShape& s, const float* src, const float* w, bool flipped, float* dst, float* scratch,
                 ImageDoneFn image_done, void* ctx) {
  const int threads = pool_threads();
  const FwdPlan p = fwd_plan(s, threads);
  float* const wp = scratch;
  pack_weights(s, w, flipped, p.f.kk, wp);
  const int64_t src_img = s.Cin * s.Hs * s.Ws, dst_img = s.Cout * s.Ho * s.Wo;
  float* const slices = scratch + p.wp_size;
  const int64_t slice = p.xp_size + p.out_size;
  if (p.across_images) {
    parallel_items(s.N, [&](int64_t n, int worker) {
      float* xp = slices + worker * slice;
      fwd_image(s, p, wp, src + n * src_img, xp, xp + p.xp_size, dst + n * dst_img, false);
      if (image_done) image_done(ctx, n, false);
    }, true);
  } else {
    for (int64_t n = 0; n < s.N; ++n) {
      fwd_image(s, p, wp, src + n * src_img, slices, slices + p.xp_size, dst + n * dst_img, p.parallel);
      if (image_done) image_done(ctx, n, p.parallel);
    }
  }
}

size_t direct_wgrad_scratch(const DirectShape& s, int threads) {
  if (s.Cin % VL == 0) {
    const WgtPlan p = wgt_plan(s);
    return static_cast<size_t>(VL + p.xt_size + p.gt_size + p.park_size + threads * p.slice);
  }
  const WgPlan p = wg_plan(s);
  return static_cast<size_t>(VL + p.gy_size + p.xp_size + p.park_size);  // VL: room to align gyf
}

void direct_wgrad(const DirectShape& s, const float* x, const float* gy, float* gw, float* scratch) {
  if (s.Cin % VL == 0) {
    wgrad_transposed(s, x, gy, gw, scratch);
    return;
  }
  const WgPlan p = wg_plan(s);
  const Flat& f = p.f;
  // The gradient planes go first, 64-byte aligned (lg is a multiple of VL): their loads then never split a line.
  float* const gyf = scratch + (VL - reinterpret_cast<uintptr_t>(scratch) / sizeof(float) % VL) % VL;
  float* const xp = gyf + p.gy_size;
  float* const park = xp + p.xp_size;
  const double macs = static_cast<double>(s.N) * s.Cout * s.Cin * f.kk * s.Ho * s.Wo;
  const bool parallel = pool_threads() > 1 && macs >= kParallelMacs;
  const int64_t nvec = p.lg / VL;
  parallel_items(s.N, [&](int64_t n, int) {
    pad_image(s, f, x + n * s.Cin * s.Hs * s.Ws, xp + n * f.img);
    flatten_grad(s, f.Wq, p.lg, gy + n * s.Cout * s.Ho * s.Wo, gyf + n * s.Cout * p.lg);
  }, parallel);
  zero(xp + s.N * f.img, f.slack);
  // Blocks of tiles taken dynamically, each through all image chunks in order (as in wgrad_transposed).
  parallel_for(p.tiles, grain_for(p.tiles), [&](int64_t lo, int64_t hi, int) {
    for (int64_t ch = 0; ch < p.chunks; ++ch) {
      const int64_t n0 = ch * p.chunk, nimg = imin(p.chunk, s.N - n0);
      const bool last = ch + 1 == p.chunks;
      for (int64_t tile = lo; tile < hi; ++tile) {
        const int64_t tb = tile % p.tblocks, c = tile / p.tblocks % s.Cin, o0 = tile / p.tblocks / s.Cin * MO;
        const int64_t t0 = tb * kWgTaps, nt = imin(kWgTaps, f.kk - t0);
        kWgTiles[nt](nimg, nvec, gyf + (n0 * s.Cout + o0) * p.lg, p.lg, imin(MO, s.Cout - o0), s.Cout * p.lg,
                     xp + n0 * f.img + c * f.chan, f.img, f.off + t0, park + tile * MO * kWgTaps * VL, ch > 0,
                     last ? gw + (o0 * s.Cin + c) * f.kk + t0 : nullptr, s.Cin * f.kk);
      }
    }
  }, parallel);
}

}  // namespace dlc::conv
