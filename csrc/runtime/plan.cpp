#include "runtime/plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "runtime/thread_pool.h"

namespace dlc {
namespace {
// Threads of the kernel pool (runtime/thread_pool.h), for runs from any Python thread. 0 means one per hardware
// thread; the Python package sets the cores of the process's affinity mask at import.
std::atomic<int> g_num_threads{0};
}  // namespace

Arena::Arena(size_t bytes) {
  size_t rounded = ((bytes + 63) / 64) * 64;
  if (rounded == 0) rounded = 64;
  data_ = static_cast<char*>(std::aligned_alloc(64, rounded));
  if (!data_) throw std::bad_alloc();
  std::memset(data_, 0, rounded);
}

Arena::~Arena() { std::free(data_); }

Plan::Plan(int64_t arena_bytes, Device device) : arena_bytes_(arena_bytes), device_(device) {
  if (arena_bytes < 0) throw std::invalid_argument("negative arena size");
}

int32_t Plan::add_slot(Region region, int64_t where, DType dtype, const std::vector<int64_t>& shape) {
  if (shape.size() > static_cast<size_t>(kMaxRank))
    throw std::invalid_argument("tensor rank above " + std::to_string(kMaxRank));
  Slot s;
  s.region = region;
  s.where = where;
  s.view.dtype = dtype;
  s.view.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw std::invalid_argument("negative dimension in slot shape");
    s.view.shape[i] = shape[i];
  }
  if (region == Region::Arena && (where < 0 || where + static_cast<int64_t>(s.view.nbytes()) > arena_bytes_))
    throw std::invalid_argument("arena slot outside the planned arena");
  slots_.push_back(s);
  return static_cast<int32_t>(slots_.size() - 1);
}

int32_t Plan::add_const(const void* data, size_t nbytes) {
  consts_.emplace_back(static_cast<const char*>(data), static_cast<const char*>(data) + nbytes);
  return static_cast<int32_t>(consts_.size() - 1);
}

void Plan::set_persistent(const std::vector<void*>& pointers, const std::vector<size_t>& nbytes) {
  persistent_ = pointers;
  persistent_bytes_ = nbytes;
}

void Plan::check_slot(int32_t s) const {
  if (s < 0 || s >= static_cast<int32_t>(slots_.size())) throw std::invalid_argument("bad slot index");
}

void Plan::add_step(const std::string& key, const std::string& label, std::vector<int32_t> in,
                    std::vector<int32_t> out, std::vector<int64_t> ints, std::vector<double> floats,
                    int64_t workspace_offset) {
  for (int32_t s : in) check_slot(s);
  for (int32_t s : out) {
    check_slot(s);
    // The caller's input arrays and the constants are read-only by design: no plan may write them.
    if (slots_[s].region == Region::Input || slots_[s].region == Region::Const)
      throw std::invalid_argument("step '" + label + "' would write an input or a constant");
  }
  Step st;
  st.key = key;
  st.label = label;
  st.fn = find_kernel(key, device_);
  st.prepack = find_prepack(key, device_);
  st.in = std::move(in);
  st.out = std::move(out);
  st.ints = std::move(ints);
  st.floats = std::move(floats);
  st.workspace_offset = workspace_offset;
  std::vector<Tensor> ins, outs;
  for (int32_t s : st.in) ins.push_back(slots_[s].view);
  for (int32_t s : st.out) outs.push_back(slots_[s].view);
  st.cost_ns = step_cost_ns(key, ins, outs, st.ints);
  cost_ns_ += st.cost_ns;
  steps_.push_back(std::move(st));
}

void Plan::set_step_writes(int32_t step, std::vector<int32_t> slots) {
  if (step < 0 || step >= static_cast<int32_t>(steps_.size())) throw std::invalid_argument("no such step");
  for (int32_t s : slots) {
    check_slot(s);
    if (slots_[s].region != Region::Persistent)
      throw std::invalid_argument("step '" + steps_[step].label + "': only persistent buffers need their writes "
                                  "declared");
  }
  steps_[step].writes_in_place = std::move(slots);
}

void Plan::set_outputs(std::vector<int32_t> slots) {
  for (int32_t s : slots) check_slot(s);
  outputs_ = std::move(slots);
  output_homes_.assign(outputs_.size(), {});
}

void Plan::set_output_home(int32_t output, std::vector<int32_t> slots) {
  if (output < 0 || output >= static_cast<int32_t>(outputs_.size()))
    throw std::invalid_argument("output home: no such output");
  const size_t limit = slots_[outputs_[output]].view.nbytes();
  for (int32_t s : slots) {
    check_slot(s);
    if (slots_[s].region != Region::Arena || slots_[s].view.nbytes() > limit)
      throw std::invalid_argument("output home: only arena slots within the output's size");
  }
  output_homes_[output] = std::move(slots);
}

namespace {
std::atomic<double> g_inline_plan_ns{kInlinePlanNs};
}  // namespace

void set_inline_plan_ns(double ns) { g_inline_plan_ns.store(ns < 0 ? kInlinePlanNs : ns); }

bool Plan::runs_inline() const { return cost_ns_ < g_inline_plan_ns.load(std::memory_order_relaxed); }

double step_cost_ns(const std::string& key, const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                    const std::vector<int64_t>& ints) {
  double elements = 0;
  for (const Tensor& t : in) elements += static_cast<double>(t.numel());
  for (const Tensor& t : out) elements += static_cast<double>(t.numel());
  // Rows of a weight-like operand [rows, ...]: its elements per row.
  const auto per_row = [](const Tensor& w) {
    return w.ndim >= 1 && w.shape[0] > 0 ? static_cast<double>(w.numel()) / static_cast<double>(w.shape[0]) : 0.0;
  };
  double macs = 0;
  // A reduced-precision kernel ("matmul_bf16", "conv2d_int8") counts the multiply-adds of its f32 form.
  const auto ends = [&](const char* suffix) {
    const size_t n = std::char_traits<char>::length(suffix);
    return key.size() > n && key.compare(key.size() - n, n, suffix) == 0;
  };
  const std::string base = ends("_bf16") || ends("_int8") ? key.substr(0, key.size() - 5) : key;
  if (base == "matmul" && in.size() >= 2 && !out.empty() && in[0].ndim >= 2 && !ints.empty()) {
    const Tensor& a = in[0];
    const double k = static_cast<double>(ints[0] ? a.shape[a.ndim - 2] : a.shape[a.ndim - 1]);
    macs = static_cast<double>(out[0].numel()) * k;
  } else if ((base == "conv2d" || key == "conv2d_grad_input") && in.size() >= 2 && !out.empty()) {
    macs = static_cast<double>(base == "conv2d" ? out[0].numel() : in[0].numel()) * per_row(in[1]);
  } else if (key == "conv2d_grad_weight" && in.size() >= 2 && !out.empty()) {
    macs = static_cast<double>(in[1].numel()) * per_row(out[0]);
  } else if (key.size() > 4 && key.compare(key.size() - 4, 4, "_seq") == 0 && in.size() >= 3 && in[0].ndim == 3) {
    // Every time step of every row multiplies its input by w_ih and its state by w_hh.
    macs = static_cast<double>(in[0].shape[0] * in[0].shape[1]) *
           static_cast<double>(in[1].numel() + in[2].numel());
  }
  return macs * kNsPerMac + elements * kNsPerElement;
}

namespace {

bool overlaps(const void* a, size_t na, const void* b, size_t nb) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return na > 0 && nb > 0 && pa < pb + nb && pb < pa + na;
}

}  // namespace

std::unique_ptr<Arena> Plan::acquire_arena() const {
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (!pool_.empty()) {
      auto a = std::move(pool_.back());
      pool_.pop_back();
      return a;
    }
  }
  return std::make_unique<Arena>(static_cast<size_t>(arena_bytes_));
}

void Plan::release_arena(std::unique_ptr<Arena> arena) const {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  pool_.push_back(std::move(arena));
}

namespace {

// The steps whose weight operand (in[1]) a plan keeps packed: the f32/f64 matmul, its bf16 form, the int8
// kernels, which read their weight only as its quantized, packed copy, and the blocked convolution, whose
// filter is reordered once.
bool packs_weight(const std::string& key) {
  return key == "matmul" || key == "matmul_bf16" || key == "matmul_int8" || key == "conv2d_int8" ||
         key == "conv2d_nchwc";
}

// A step's kernel arguments over these operand views (the caller sets workspace, context and packs).
KernelArgs step_args(const Step& st, const std::vector<Tensor>& ins, const std::vector<Tensor>& outs) {
  KernelArgs a;
  a.in = ins.data();
  a.n_in = static_cast<int>(ins.size());
  a.out = outs.data();
  a.n_out = static_cast<int>(outs.size());
  a.ints = st.ints.data();
  a.n_ints = static_cast<int>(st.ints.size());
  a.floats = st.floats.data();
  a.n_floats = static_cast<int>(st.floats.size());
  return a;
}

}  // namespace

std::shared_ptr<const void> Plan::packed_operand(size_t k, const std::vector<Tensor>& ins,
                                                 const std::vector<Tensor>& outs) const {
  const Step& st = steps_[k];
  if (!pack_weights_ || !packs_weight(st.key) || ins.size() < 2 || outs.empty()) return nullptr;
  const Slot& b = slots_[st.in[1]];
  // A parameter's copies are shared by every plan over the parameters (versions_->packed()); constants' are the
  // plan's own, by step.
  const PackedWeights* cache = &packed_;
  int64_t id = static_cast<int64_t>(k);
  uint64_t version = 0;
  if (b.region == Region::Persistent && versions_ && static_cast<size_t>(b.where) < versions_->size()) {
    cache = &versions_->packed();
    id = b.where;
    version = versions_->get(static_cast<size_t>(b.where));
  } else if (b.region != Region::Const) {
    return nullptr;  // an input, an arena value, or a buffer whose writes the versions do not cover
  }
  bool made = false;
  // "matmul_bf16" keeps its weight rounded to bf16 and packed (kernels/gemm/gemm_bf16.h); the int8 steps theirs
  // quantized, channels-first for a transposed matmul weight and a convolution's.
  const PackedOperand got =
      st.key == "matmul_int8" || st.key == "conv2d_int8"
          ? cache->get_int8(id, ins[1], st.key == "conv2d_int8" || (st.ints.size() > 1 && st.ints[1] != 0), version,
                            &made)
      : st.key == "conv2d_nchwc"
          ? cache->get_conv(id, ins[0], ins[1], outs[0], st.ints, version, &made)
          : cache->get(id, ins[0], ins[1], outs[0], st.ints, version, st.key == "matmul_bf16", &made);
  if (made) packs_.fetch_add(1);
  std::lock_guard<std::mutex> lock(step_packed_mutex_);
  if (step_packed_.size() != steps_.size()) step_packed_.assign(steps_.size(), {nullptr, 0});
  step_packed_[k] = {got.packed.get(), got.bytes};
  return got.packed;
}

size_t Plan::packed_bytes() const {
  if (!pack_weights_) return 0;  // it reads no copy (the ones it read may still serve other plans)
  std::lock_guard<std::mutex> lock(step_packed_mutex_);
  std::vector<const void*> seen;  // steps reading one weight share its copy: count it once
  size_t total = 0;
  const auto count = [&](const void* copy, size_t bytes) {
    if (copy && std::find(seen.begin(), seen.end(), copy) == seen.end()) {
      seen.push_back(copy);
      total += bytes;
    }
  };
  for (const auto& [copy, bytes] : step_packed_) count(copy, bytes);
  for (const auto& [key, copy] : input_packed_) count(copy.first, copy.second);
  return total;
}

std::vector<size_t> Plan::packed_step_bytes() const {
  std::lock_guard<std::mutex> lock(step_packed_mutex_);
  std::vector<size_t> out(steps_.size(), 0);
  if (!pack_weights_) return out;  // it reads no copy while packing is off
  for (size_t k = 0; k < step_packed_.size() && k < out.size(); ++k) out[k] = step_packed_[k].second;
  for (const auto& [key, copy] : input_packed_)
    if (key.first < out.size()) out[key.first] += copy.second;
  return out;
}

void* Plan::stored_data(const Slot& s) const {
  if (s.region == Region::Persistent && s.where >= 0 && s.where < static_cast<int64_t>(persistent_.size()) &&
      persistent_bytes_[s.where] >= s.view.nbytes())
    return persistent_[s.where];
  if (s.region == Region::Const && s.where >= 0 && s.where < static_cast<int64_t>(consts_.size()) &&
      consts_[s.where].size() >= s.view.nbytes())
    return const_cast<char*>(consts_[s.where].data());
  return nullptr;
}

void Plan::prepack() const {
  std::vector<Tensor> ins, outs;
  for (size_t k = 0; k < steps_.size(); ++k) {
    const Step& st = steps_[k];
    if (!pack_weights_) continue;
    if (st.prepack) {  // a kernel that keeps inputs packed itself (KernelArgs::input_packs)
      ins.clear();
      for (int32_t s : st.in) {
        ins.push_back(slots_[s].view);
        ins.back().data = stored_data(slots_[s]);  // parameters and constants only: the others give shapes
      }
      outs.clear();
      KernelArgs a = step_args(st, ins, outs);
      const StepInputPacks input_packs(*this, k, st);
      a.input_packs = &input_packs;
      st.prepack(a);
      continue;
    }
    if (!packs_weight(st.key) || st.in.size() < 2 || st.out.empty()) continue;
    const Slot& b = slots_[st.in[1]];
    ins.assign({slots_[st.in[0]].view, b.view});  // only B's data is read: the others give shapes
    outs.assign({slots_[st.out[0]].view});
    ins[1].data = stored_data(b);
    if (ins[1].data != nullptr) packed_operand(k, ins, outs);
  }
}

std::shared_ptr<const void> Plan::StepInputPacks::get(int input, const std::string& form,
                                                      const PackInputFn& pack) const {
  if (input < 0 || input >= static_cast<int>(st_.in.size())) throw std::out_of_range("packed input index");
  const Slot& s = plan_.slots_[st_.in[input]];
  // As for a matmul's weight: a parameter's copies are shared through the version table, constants' are the
  // plan's own (by step and input); anything else is packed for this call only.
  const PackedWeights* cache = &plan_.packed_;
  int64_t id = static_cast<int64_t>(step_);
  int which = input;
  uint64_t version = 0;
  if (s.region == Region::Persistent && plan_.versions_ && static_cast<size_t>(s.where) < plan_.versions_->size()) {
    cache = &plan_.versions_->packed();
    id = s.where;
    which = -1;
    version = plan_.versions_->get(static_cast<size_t>(s.where));
  } else if (s.region != Region::Const) {
    return pack().data;
  }
  bool made = false;
  const PackedOperand got = cache->get_input(id, which, form, version, pack, &made);
  if (made) plan_.packs_.fetch_add(1);
  std::lock_guard<std::mutex> lock(plan_.step_packed_mutex_);
  plan_.input_packed_[{step_, input}] = {got.packed.get(), got.bytes};
  return got.packed;
}

void Plan::run(const std::vector<const void*>& inputs, const std::vector<size_t>& input_bytes,
               const std::vector<void*>& outputs, const RunContext& ctx,
               std::vector<double>* step_seconds, std::vector<int>* step_threads) const {
  const auto run_start = std::chrono::steady_clock::now();  // step starts are offsets from here (traces)
  if (static_cast<int>(inputs.size()) != num_inputs_ || input_bytes.size() != inputs.size())
    throw std::invalid_argument("wrong number of inputs for plan");
  if (outputs.size() != outputs_.size()) throw std::invalid_argument("wrong number of outputs for plan");

  std::unique_ptr<Arena> arena = acquire_arena();
  // Resolve every slot's pointer for this run; inputs are checked against the planned sizes so a
  // mismatch is an exception, never an out-of-bounds read.
  std::vector<Tensor> views(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    Tensor t = s.view;
    switch (s.region) {
      case Region::Arena: t.data = arena->data() + s.where; break;
      case Region::Persistent:
        if (s.where < 0 || s.where >= static_cast<int64_t>(persistent_.size()) ||
            persistent_bytes_[s.where] < t.nbytes())
          throw std::invalid_argument("persistent slot does not match its buffer");
        t.data = persistent_[s.where];
        break;
      case Region::Input:
        if (s.where < 0 || s.where >= static_cast<int64_t>(inputs.size()) || input_bytes[s.where] < t.nbytes())
          throw std::invalid_argument("input " + std::to_string(s.where) + " is smaller than planned");
        t.data = const_cast<void*>(inputs[s.where]);
        break;
      case Region::Const:
        if (s.where < 0 || s.where >= static_cast<int64_t>(consts_.size()) || consts_[s.where].size() < t.nbytes())
          throw std::invalid_argument("constant slot does not match its data");
        t.data = const_cast<char*>(consts_[s.where].data());
        break;
    }
    views[i] = t;
  }

  // Outputs the plan writes in place (see set_output_home): only into memory nothing else of this run reads.
  std::vector<char> in_place(outputs_.size(), 0);
  for (size_t j = 0; j < outputs_.size(); ++j) {
    const size_t bytes = slots_[outputs_[j]].view.nbytes();
    bool ok = !output_homes_[j].empty() && reinterpret_cast<uintptr_t>(outputs[j]) % 64 == 0;
    for (size_t i = 0; ok && i < inputs.size(); ++i) ok = !overlaps(outputs[j], bytes, inputs[i], input_bytes[i]);
    for (size_t k = 0; ok && k < outputs_.size(); ++k)
      ok = k == j || !overlaps(outputs[j], bytes, outputs[k], slots_[outputs_[k]].view.nbytes());
    if (!ok) continue;
    for (int32_t s : output_homes_[j]) views[s].data = outputs[j];
    in_place[j] = 1;
  }

  std::vector<Tensor> ins, outs;
  if (step_seconds) step_seconds->assign(2 * steps_.size(), 0.0);
  if (step_threads) step_threads->assign(steps_.size(), 1);
  const InlineScope one_thread(runs_inline());
  try {
    for (size_t k = 0; k < steps_.size(); ++k) {
      const Step& st = steps_[k];
      ins.clear();
      outs.clear();
      for (int32_t s : st.in) ins.push_back(views[s]);
      for (int32_t s : st.out) outs.push_back(views[s]);
      KernelArgs a = step_args(st, ins, outs);
      a.workspace = st.workspace_offset >= 0 ? arena->data() + st.workspace_offset : nullptr;
      a.ctx = &ctx;
      const StepInputPacks input_packs(*this, k, st);
      if (pack_weights_) a.input_packs = &input_packs;
      // Held for the step: a concurrent run may replace the cached one.
      const std::shared_ptr<const void> packed = packed_operand(k, ins, outs);
      a.packed_b = packed.get();
      if (step_seconds) {
        reset_team_record();
        auto t0 = std::chrono::steady_clock::now();
        st.fn(a);
        (*step_seconds)[2 * k] = std::chrono::duration<double>(t0 - run_start).count();
        (*step_seconds)[2 * k + 1] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (step_threads) (*step_threads)[k] = team_record();
      } else {
        st.fn(a);
      }
      if (versions_) {
        for (int32_t s : st.out)
          if (slots_[s].region == Region::Persistent) versions_->advance(static_cast<size_t>(slots_[s].where));
        for (int32_t s : st.writes_in_place) versions_->advance(static_cast<size_t>(slots_[s].where));
      }
    }
    for (size_t j = 0; j < outputs_.size(); ++j) {
      if (in_place[j]) continue;
      const Tensor& t = views[outputs_[j]];
      std::memcpy(outputs[j], t.data, t.nbytes());
    }
  } catch (...) {
    release_arena(std::move(arena));
    throw;
  }
  release_arena(std::move(arena));
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("number of threads must be at least 1");
  g_num_threads.store(n);
}

int get_num_threads() {
  int n = g_num_threads.load();
  return n ? n : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace dlc
