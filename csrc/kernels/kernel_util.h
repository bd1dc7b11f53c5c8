// Helpers shared by kernel families: float dtype dispatch and grow-only per-thread scratch memory.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/tensor.h"

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

// Scratch owners, so that two families' buffers of one element type never alias.
enum class ScratchSlot { Reduce, Conv };

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
