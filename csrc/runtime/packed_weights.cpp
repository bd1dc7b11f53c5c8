#include "runtime/packed_weights.h"

#include "kernels/conv/nchwc.h"

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

// Whether the step's GEMM reads a packed B at all (its rows: all of A's unless A is transposed, since with B
// shared by every matrix of A the kernel runs one tall GEMM).
template <typename T>
bool reads_packed(const Tensor& c, bool ta, bool tb, int64_t K, int64_t N) {
  const int64_t M = ta ? c.shape[c.ndim - 2] : c.numel() / std::max<int64_t>(N, 1);
  return M > 0 && N > 0 && K > 0 && gemm_reads_packed_b<T>(tb, M, N, K);
}

template <typename T>
PackedOperand pack_gemm_b(const Tensor& b, bool tb, int64_t K, int64_t N) {
  auto p = std::make_shared<const GemmPackedB<T>>(gemm_pack_b<T>(tb, K, N, b.ptr<T>(), b.shape[b.ndim - 1]));
  PackedOperand out;
  out.bytes = p->bytes();
  out.packed = std::move(p);
  return out;
}

}  // namespace

PackedOperand PackedWeights::get(int64_t id, const Tensor& a, const Tensor& b, const Tensor& c,
                                 const std::vector<int64_t>& ints, uint64_t version, bool bf16, bool* made) const {
  if (made) *made = false;
  if (ints.size() < 2 || b.ndim != 2 || a.ndim < 2 || c.ndim < 2 || b.dtype != c.dtype) return {};
  const bool ta = ints[0] != 0, tb = ints[1] != 0;
  const int64_t N = c.shape[c.ndim - 1], K = ta ? a.shape[a.ndim - 2] : a.shape[a.ndim - 1];
  if (bf16 ? b.dtype != DType::F32 || ta
           : b.dtype == DType::F32 ? !reads_packed<float>(c, ta, tb, K, N)
           : b.dtype == DType::F64 ? !reads_packed<double>(c, ta, tb, K, N)
                                   : true)
    return {};
  // Both bf16 paths read one layout, so a bf16 copy never goes stale with the path.
  const std::string path = bf16 ? "bf16" : gemm_kernel_name();
  std::lock_guard<std::mutex> lock(mu_);
  PackedOperand& slot = by_key_[Key{id, bf16 ? Layout::kBf16 : Layout::kGemm, tb, K, N}];
  if (slot.packed && slot.version == version && slot.path == path) return slot;
  if (bf16) {
    auto p = std::make_shared<const Bf16PackedB>(gemm_bf16_pack_b(tb, K, N, b.ptr<float>(), b.shape[1]));
    slot.bytes = p->bytes();
    slot.packed = std::move(p);
  } else {
    slot = b.dtype == DType::F32 ? pack_gemm_b<float>(b, tb, K, N) : pack_gemm_b<double>(b, tb, K, N);
  }
  slot.version = version;
  slot.path = path;
  packs_.fetch_add(1);
  if (made) *made = true;
  return slot;
}

PackedOperand PackedWeights::get_int8(int64_t id, const Tensor& b, bool channels_first, uint64_t version,
                                      bool* made) const {
  if (made) *made = false;
  if (b.dtype != DType::F32 || b.ndim < 2) return {};
  const int64_t N = channels_first ? b.shape[0] : b.shape[b.ndim - 1];
  const int64_t K = N > 0 ? b.numel() / N : 0;
  std::lock_guard<std::mutex> lock(mu_);
  PackedOperand& slot = by_key_[Key{id, Layout::kInt8, channels_first, K, N}];
  if (slot.packed && slot.version == version && slot.path == "int8") return slot;
  std::vector<int8_t> q(static_cast<size_t>(K * N));
  std::vector<float> scale(static_cast<size_t>(N));
  quantize_weights_s8(b.ptr<float>(), channels_first, K, N, q.data(), scale.data());
  auto packed = std::make_shared<const QgemmPackedB>(qgemm_pack_b(q.data(), K, N, scale.data()));
  packs_.fetch_add(1);
  if (made) *made = true;
  slot = PackedOperand{packed, version, "int8", packed->bytes()};
  return slot;
}

PackedOperand PackedWeights::get_input(int64_t id, int input, const std::string& form, uint64_t version,
                                       const PackInputFn& pack, bool* made) const {
  if (made) *made = false;
  std::lock_guard<std::mutex> lock(mu_);
  PackedOperand& slot = inputs_[{id, input, form}];
  if (slot.packed && slot.version == version) return slot;
  PackedInput fresh = pack();
  slot = PackedOperand{fresh.data, version, form, fresh.bytes};
  if (fresh.data) {
    packs_.fetch_add(1);
    if (made) *made = true;
  }
  return slot;
}

PackedOperand PackedWeights::get_conv(int64_t id, const Tensor& x, const Tensor& w, const Tensor& y,
                                      const std::vector<int64_t>& ints, uint64_t version, bool* made) const {
  if (made) *made = false;
  if (y.ndim != 5 || (x.ndim != 4 && x.ndim != 5)) return {};
  // The reordered filter depends on the block, the input's layout and its plane size, not on the instruction set.
  const Key key{id, Layout::kNchwc, x.ndim == 5, x.shape[2] * x.shape[3], y.shape[4]};
  std::lock_guard<std::mutex> lock(mu_);
  PackedOperand& slot = by_key_[key];
  if (slot.packed && slot.version == version) return slot;
  size_t bytes = 0;
  std::shared_ptr<const void> packed = nchwc_pack_filter(x, w, y, ints, &bytes);
  if (!packed) return {};
  packs_.fetch_add(1);
  if (made) *made = true;
  slot = PackedOperand{packed, version, "nchwc", bytes};
  return slot;
}

size_t PackedWeights::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t total = 0;
  for (const auto& entry : by_key_) total += entry.second.bytes;
  for (const auto& entry : inputs_) total += entry.second.bytes;
  return total;
}

}  // namespace dlc
