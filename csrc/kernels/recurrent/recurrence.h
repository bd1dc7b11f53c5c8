// The machinery the recurrent kernels (recurrent_cpu.cpp) share: the sequence's dimensions, the per-step product
// h @ w_hh with its weight packed once, and the two ways a recurrence is split across threads.
//
// Splitting: batch rows never interact inside a recurrence, so with at least as many rows as threads each
// thread runs the whole time loop for a slice of the batch (over_batch), with serial per-step products: no
// barrier per time step. With fewer rows than threads (batch 1), each step's product and gate math are split
// by units instead (over_units): a thread takes the columns of every gate that belong to its range of hidden
// units, which are all its gate math needs, and the next step waits until every range of this one is done.
// Either way each element's arithmetic is the same whatever the split, so results do not depend on it.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "dispatch.h"
#include "kernels/gemm/gemm.h"
#include "kernels/kernel_util.h"
#include "kernels/recurrent/step_gemm.h"
#include "runtime/thread_pool.h"

namespace dlc {
namespace rec {

struct Dims {
  int64_t B, T, I, H;
  bool rev;
  int64_t t_at(int64_t s) const { return rev ? T - 1 - s : s; }  // time index of loop step s
  int64_t t_prev(int64_t t) const { return rev ? t + 1 : t - 1; }
  int64_t rows() const { return B * T; }
};

// Multiply-adds of one step's product that pay for a further thread in over_units (a step of the batch-1 LSTM
// with H = 128 has 65,536): the threads meet once per step, which costs about a microsecond.
constexpr double kStepMacsPerThread = 16384;

// How one kernel call splits its recurrence: `slices` batch slices (over_batch) or `chunks` unit ranges
// (over_units); 1 and 1 run on the caller.
struct Split {
  int64_t slices = 1, chunks = 1;
};

// step_macs: multiply-adds of one step's product for the whole batch; width: the units a step has.
inline Split split_for(const Dims& d, double step_macs, int64_t width) {
  const int threads = in_parallel_region() ? 1 : pool_threads();
  Split s;
  if (d.B >= threads) {
    s.slices = threads_for(step_macs * static_cast<double>(d.T), kGemmMacsPerThread).n;
  } else {
    const int64_t panels = (width + kStepPanel - 1) / kStepPanel;
    s.chunks = std::min<int64_t>({threads, panels, threads_for(step_macs, kStepMacsPerThread).n});
  }
  s.slices = std::max<int64_t>(1, std::min<int64_t>(s.slices, d.B));
  return s;
}

// Runs fn(b0, b1) over the split's batch slices, one per thread.
template <class F>
void over_batch(const Dims& d, const Split& sp, const F& fn) {
  if (sp.slices <= 1) {
    fn(int64_t{0}, d.B);
    return;
  }
  parallel_items(sp.slices, [&](int64_t k, int) { fn(d.B * k / sp.slices, d.B * (k + 1) / sp.slices); },
                 Threads{static_cast<int>(sp.slices)});
}

// Units [u0, u1) of chunk c of `chunks` over `width` units: whole panels of the step kernel, the last one ragged.
inline void unit_range(int64_t width, int64_t c, int64_t chunks, int64_t* u0, int64_t* u1) {
  const int64_t panels = (width + kStepPanel - 1) / kStepPanel;
  *u0 = std::min(width, panels * c / chunks * kStepPanel);
  *u1 = std::min(width, panels * (c + 1) / chunks * kStepPanel);
}

// Runs fn(p, u0, u1) for every phase p in [0, phases) and every unit chunk, each chunk of phase p only after
// every chunk of phase p - 1 has finished. Threads claim chunks in order (phase by phase) and wait only for
// chunks another thread has claimed, which it is running: a thread the pool never wakes (a busy host, or a
// call from inside another loop, which runs inline) leaves its chunks to the others, never a deadlock.
template <class F>
void over_units(int64_t phases, int64_t width, int64_t chunks, const F& fn) {
  std::atomic<int64_t> next{0}, done{0};
  const int64_t total = phases * chunks;
  parallel_items(chunks, [&](int64_t, int) {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= total) return;
      const int64_t p = i / chunks;
      // Chunks run only after every chunk of the earlier phases is done, so `done` counts those alone until
      // it reaches p * chunks.
      for (int spins = 0; done.load(std::memory_order_acquire) < p * chunks; ++spins)
        if (spins > 2000) std::this_thread::yield();
      int64_t u0, u1;
      unit_range(width, i % chunks, chunks, &u0, &u1);
      fn(p, u0, u1);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }, Threads{static_cast<int>(chunks)});
}

// The step kernel for the GEMM's kernel path in use (so forcing the GEMM's ISA in tests covers the recurrences
// too): the AVX-512 one for f32 where the CPU has it, else the portable one built for AVX2 or without SIMD.
template <class T>
const StepKernel<T>& step_kernel() {
  const std::string path = gemm_kernel_name();
  if constexpr (std::is_same_v<T, float>) {
    if (path == "avx512" && step_gemm_available()) return step_kernel_avx512_f32();
  }
  if (path == "avx512" || path == "avx2") return step_kernel_avx2<T>();
  return step_kernel_generic<T>();
}

// Input `input` of the kernel as the GEMM's packed op(B) (K x N), kept by the plan where it keeps packed inputs
// (KernelArgs::input_packs); nullptr where it keeps none (the GEMM then packs into its own reused buffers) or an
// M-row product would not read a packed B.
template <class T>
std::shared_ptr<const GemmPackedB<T>> gemm_packed_input(const KernelArgs& a, int input, bool trans, int64_t M,
                                                        int64_t K, int64_t N) {
  if (!a.input_packs || !gemm_reads_packed_b<T>(trans, M, N, K)) return nullptr;
  const T* w = a.in[input].ptr<const T>();
  const PackInputFn pack = [&] {
    auto p = std::make_shared<const GemmPackedB<T>>(gemm_pack_b<T>(trans, K, N, w, trans ? K : N));
    return PackedInput{p, p->bytes()};
  };
  const std::string form = std::string("gemm-") + gemm_kernel_name() + (trans ? "-t-" : "-") + std::to_string(K) +
                           "x" + std::to_string(N);
  return std::static_pointer_cast<const GemmPackedB<T>>(a.input_packs->get(input, form, pack));
}

// C[:, blk * width + u] (+)= A @ op(w)[:, blk * width + u] for the units u of a range, every block blk, where w
// is input `input` of the kernel: K x N (N = blocks * width) or, with trans, N x K. The weight is packed once
// when the object is made, taken from the plan's kept copies with `keep` where the plan keeps them: make it on
// the calling thread, before the time loop.
template <class T>
class StepProduct {
 public:
  StepProduct(const KernelArgs& a, int input, int64_t K, int64_t width, int64_t blocks, bool trans, bool keep)
      : kernel_(step_kernel<T>()), K_(K), width_(width), blocks_(blocks) {
    const T* w = a.in[input].ptr<const T>();
    const size_t n = kernel_.packed_size(K, width, blocks);
    const int64_t ldw = trans ? K : blocks * width;
    if (keep && a.input_packs) {
      const std::string form = std::string("step-") + gemm_kernel_name() + (trans ? "-t-" : "-") +
                               std::to_string(K) + "x" + std::to_string(blocks) + "x" + std::to_string(width);
      hold_ = a.input_packs->get(input, form, [&] {
        const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        std::shared_ptr<T> buf(static_cast<T*>(std::aligned_alloc(64, bytes)), &std::free);
        if (!buf) throw std::bad_alloc();
        kernel_.pack(trans, K, width, blocks, w, ldw, buf.get());
        return PackedInput{buf, bytes};
      });
      packed_ = static_cast<const T*>(hold_.get());
    } else {
      T* buf = scratch<T, ScratchSlot::Recurrent>(n);  // grow-only: no page faults per call
      kernel_.pack(trans, K, width, blocks, w, ldw, buf);
      packed_ = buf;
    }
  }

  void operator()(int64_t M, int64_t u0, int64_t u1, const T* A, int64_t lda, bool accumulate, T* C,
                  int64_t ldc) const {
    kernel_.run(M, K_, width_, blocks_, u0, u1, A, lda, packed_, accumulate, C, ldc);
  }

 private:
  const StepKernel<T>& kernel_;
  int64_t K_, width_, blocks_;
  std::shared_ptr<const void> hold_;  // the plan's kept copy, held for this call
  const T* packed_ = nullptr;
};

}  // namespace rec
}  // namespace dlc
