// Helpers shared by kernel families: float dtype dispatch and grow-only per-thread scratch memory.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/tensor.h"
#include "runtime/thread_pool.h"

namespace dlc {

// Calls fn(float{}) or fn(double{}) by dtype, so one generic lambda instantiates a kernel body per type.
template <class Fn>
inline void dispatch_float(DType t, const char* who, const Fn& fn) {
  if (t == DType::F32)
    fn(float{});
  else if (t == DType::F64)
    fn(double{});
  else
    throw std::invalid_argument(std::string(who) + ": expected an f32 or f64 tensor, got " + dtype_name(t));
}

// The cost model's unit for the loops of the memory-bound families (elementwise-like, shape, norm, loss,
// optimizer; runtime/thread_pool.h threads_for): elements touched, 32,768 per thread, their former all-or-one
// cutoff, so on two cores nothing changes and on more each loop takes only the threads its size pays for.
constexpr double kElementsPerThread = 32768;
inline Threads element_threads(double elements) { return threads_for(elements, kElementsPerThread); }

// Scratch owners, so that two families' buffers of one element type never alias.
enum class ScratchSlot { Reduce, Conv, Qgemm, Recurrent, RecurrentGrads };

// Grow-only scratch of at least n elements owned by the calling thread, kept between calls so kernels run every
// training step do not page-fault a fresh allocation each time. One buffer per (type, slot): a caller must not
// hold two at once. Take it outside parallel regions (allocation may throw) and hand slices to the workers.
template <class T, ScratchSlot Slot>
inline T* scratch(size_t n) {
  static thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace dlc
