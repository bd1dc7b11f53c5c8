#include "runtime/packed_weights.h"

#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/qgemm/qgemm.h"

namespace dlc {

ParamVersions::ParamVersions(size_t n) : n_(n), v_(new std::atomic<uint64_t>[n]) {
  for (size_t i = 0; i < n; ++i) v_[i].store(0);
}

uint64_t ParamVersions::get(size_t i) const { return i < n_ ? v_[i].load(std::memory_order_acquire) : 0; }

void ParamVersions::advance(size_t i) {
  if (i < n_) v_[i].fetch_add(1, std::memory_order_acq_rel);
}

void ParamVersions::advance_all() {
  for (size_t i = 0; i < n_; ++i) advance(i);
}

namespace {

template <typename T>
std::shared_ptr<const void> pack_if_read(const Tensor& a, const Tensor& b, const Tensor& c, bool ta, bool tb) {
  const int64_t N = c.shape[c.ndim - 1];
  const int64_t K = ta ? a.shape[a.ndim - 2] : a.shape[a.ndim - 1];
  // With B shared by every matrix of A, the kernel runs one tall GEMM (all rows) unless A is transposed.
  const int64_t M = ta ? c.shape[c.ndim - 2] : c.numel() / std::max<int64_t>(N, 1);
  if (M <= 0 || N <= 0 || K <= 0 || !gemm_reads_packed_b<T>(tb, M, N, K)) return nullptr;
  return std::make_shared<const GemmPackedB<T>>(gemm_pack_b<T>(tb, K, N, b.ptr<T>(), b.shape[b.ndim - 1]));
}

}  // namespace

std::shared_ptr<const void> PackedWeights::get(size_t step, const Tensor& a, const Tensor& b, const Tensor& c,
                                               const std::vector<int64_t>& ints, uint64_t version, bool bf16) const {
  if (ints.size() < 2 || b.ndim != 2 || a.ndim < 2 || c.ndim < 2 || b.dtype != c.dtype) return nullptr;
  // Both bf16 paths read one layout, so a bf16 copy never goes stale with the path.
  const std::string path = bf16 ? "bf16" : gemm_kernel_name();
  std::lock_guard<std::mutex> lock(mu_);
  if (by_step_.size() <= step) by_step_.resize(step + 1);
  PackedOperand& slot = by_step_[step];
  if (slot.packed && slot.version == version && slot.path == path) return slot.packed;
  const bool ta = ints[0] != 0, tb = ints[1] != 0;
  std::shared_ptr<const void> packed;
  size_t bytes = 0;
  if (bf16 && b.dtype == DType::F32 && !ta) {
    const int64_t N = c.shape[c.ndim - 1], K = a.shape[a.ndim - 1];
    auto p = std::make_shared<const Bf16PackedB>(gemm_bf16_pack_b(tb, K, N, b.ptr<float>(), b.shape[1]));
    bytes = p->bytes();
    packed = p;
  } else if (bf16) {
    return nullptr;
  } else if (b.dtype == DType::F32) {
    packed = pack_if_read<float>(a, b, c, ta, tb);
    if (packed) bytes = static_cast<const GemmPackedB<float>*>(packed.get())->bytes();
  } else if (b.dtype == DType::F64) {
    packed = pack_if_read<double>(a, b, c, ta, tb);
    if (packed) bytes = static_cast<const GemmPackedB<double>*>(packed.get())->bytes();
  }
  if (packed) packs_.fetch_add(1);
  slot = PackedOperand{packed, version, path, bytes};
  return packed;
}

std::shared_ptr<const void> PackedWeights::get_int8(size_t step, const Tensor& b, bool channels_first,
                                                    uint64_t version) const {
  if (b.dtype != DType::F32 || b.ndim < 2) return nullptr;
  const int64_t N = channels_first ? b.shape[0] : b.shape[b.ndim - 1];
  const int64_t K = N > 0 ? b.numel() / N : 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (by_step_.size() <= step) by_step_.resize(step + 1);
  PackedOperand& slot = by_step_[step];
  if (slot.packed && slot.version == version && slot.path == "int8") return slot.packed;
  std::vector<int8_t> q(static_cast<size_t>(K * N));
  std::vector<float> scale(static_cast<size_t>(N));
  quantize_weights_s8(b.ptr<float>(), channels_first, K, N, q.data(), scale.data());
  auto packed = std::make_shared<const QgemmPackedB>(qgemm_pack_b(q.data(), K, N, scale.data()));
  packs_.fetch_add(1);
  slot = PackedOperand{packed, version, "int8", packed->bytes()};
  return packed;
}

size_t PackedWeights::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t total = 0;
  for (const PackedOperand& p : by_step_) total += p.bytes;
  return total;
}

std::vector<size_t> PackedWeights::step_bytes(size_t steps) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<size_t> out(steps, 0);
  for (size_t k = 0; k < steps && k < by_step_.size(); ++k) out[k] = by_step_[k].bytes;
  return out;
}

}  // namespace dlc
