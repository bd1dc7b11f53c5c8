// An execution plan: a flat list of kernel calls over tensor slots, built once by the Python compiler and
// run entirely in C++. Slots live in one of four regions; only the arena is per-run scratch memory, laid
// out by the memory planner at fixed offsets.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dispatch.h"
#include "runtime/packed_weights.h"
#include "runtime/tensor.h"

namespace dlc {

enum class Region : int32_t {
  Arena = 0,       // planned intermediate: offset into the run's arena
  Persistent = 1,  // parameters, gradients, optimizer state, running statistics: index into a table
  Input = 2,       // a caller's input array, by position
  Const = 3,       // constant data owned by the plan
};

struct Slot {
  Region region = Region::Arena;
  int64_t where = 0;  // arena byte offset, or table index for the other regions
  Tensor view;        // dtype and shape; data resolved per run
};

struct Step {
  std::string key;
  std::string label;  // the graph node(s) it runs, for profiles
  KernelFn fn = nullptr;
  KernelFn prepack = nullptr;  // packs what fn keeps packed (dispatch.h's find_prepack), or nullptr
  std::vector<int32_t> in, out;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  int64_t workspace_offset = -1;  // arena offset of this step's scratch, -1 when it needs none
  double cost_ns = 0;             // its single-thread time by the plan's cost model (step_cost_ns)
  std::vector<int32_t> writes_in_place;  // persistent input slots it writes (set_step_writes)
};

// 64-byte aligned, zero-initialised scratch memory for one run at a time.
class Arena {
 public:
  explicit Arena(size_t bytes);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  char* data() const { return data_; }

 private:
  char* data_ = nullptr;
};

class Plan {
 public:
  Plan(int64_t arena_bytes, Device device);

  int32_t add_slot(Region region, int64_t where, DType dtype, const std::vector<int64_t>& shape);
  int32_t add_const(const void* data, size_t nbytes);
  void set_persistent(const std::vector<void*>& pointers, const std::vector<size_t>& nbytes);
  void add_step(const std::string& key, const std::string& label, std::vector<int32_t> in,
                std::vector<int32_t> out, std::vector<int64_t> ints, std::vector<double> floats,
                int64_t workspace_offset);
  void set_outputs(std::vector<int32_t> slots);
  // The arena slots that hold output j's memory (its value and every value sharing its buffer). When the
  // caller's array for output j is 64-byte aligned and overlaps no input and no other output, those slots live
  // in that array for the run, so the output is written where the caller wants it instead of being copied
  // out of the arena at the end. Each slot must be an arena slot no larger than output j.
  void set_output_home(int32_t output, std::vector<int32_t> slots);
  // The persistent slots among step k's inputs that it writes in place (an op's `mutates`: an optimizer update
  // writes its parameters, batch norm its running statistics). A persistent buffer a step writes, as an output
  // or in place, has its version advanced after the step, so packed copies of it are made again.
  void set_step_writes(int32_t step, std::vector<int32_t> slots);
  void set_num_inputs(int n) { num_inputs_ = n; }

  // Runs every step. inputs[i] must hold slot-sized data for input i; outputs[j] receives output j.
  // When step_seconds is non-null it receives, for each step k, its start (seconds after the run began) at
  // 2k and its wall time at 2k + 1 (for `dlc bench` and traces).
  // step_threads (if non-null) receives the most threads any of the step's loops ran on (for `dlc bench`). A
  // plan whose whole estimated cost is below kInlinePlanNs runs every step inline on the caller.
  void run(const std::vector<const void*>& inputs, const std::vector<size_t>& input_bytes,
           const std::vector<void*>& outputs, const RunContext& ctx,
           std::vector<double>* step_seconds, std::vector<int>* step_threads = nullptr) const;

  // Weights packed once (runtime/packed_weights.h): off until a version table is given and packing is turned on,
  // because a plan cannot see writes to its persistent buffers from outside unless the writer advances their
  // versions. Constants are always at version 0. After each step, the versions of the persistent buffers it
  // wrote (outputs and set_step_writes) are advanced. A persistent buffer past the table's end is never packed
  // (its writes could not be seen).
  void set_param_versions(std::shared_ptr<ParamVersions> versions) { versions_ = std::move(versions); }
  void set_weight_packing(bool on) { pack_weights_ = on; }
  // Packs now what the first run would (the plan is ready to answer at full speed from its first call).
  void prepack() const;
  // Bytes of the packed copies this plan's steps read (each once; copies of parameters are shared with the other
  // plans over them), the packs this plan made, and the bytes of the copy each step read last (0: none; `dlc
  // bench`'s packed-ahead column).
  size_t packed_bytes() const;
  int64_t pack_count() const { return packs_.load(); }
  std::vector<size_t> packed_step_bytes() const;

  // The estimated single-thread time of one run (the sum of its steps' cost_ns).
  double cost_ns() const { return cost_ns_; }
  // Whether runs stay on the calling thread (cost_ns() below kInlinePlanNs, or the set_inline_plan_ns hook).
  bool runs_inline() const;

  const std::vector<Slot>& slots() const { return slots_; }
  const std::vector<Step>& steps() const { return steps_; }
  const std::vector<int32_t>& outputs() const { return outputs_; }
  int64_t arena_bytes() const { return arena_bytes_; }

 private:
  // One step's view of packed_ for its kernel (KernelArgs::input_packs): inputs that are constants or
  // versioned parameters are kept across runs; any other input is packed for this call only.
  class StepInputPacks final : public InputPacks {
   public:
    StepInputPacks(const Plan& plan, size_t step, const Step& st) : plan_(plan), step_(step), st_(st) {}
    std::shared_ptr<const void> get(int input, const std::string& form, const PackInputFn& pack) const override;

   private:
    const Plan& plan_;
    size_t step_;
    const Step& st_;
  };

  // Where a parameter's or constant's slot keeps its data (nullptr for any other slot, or one whose buffer is
  // too small for its view).
  void* stored_data(const Slot& s) const;
  std::unique_ptr<Arena> acquire_arena() const;
  void release_arena(std::unique_ptr<Arena> arena) const;
  void check_slot(int32_t s) const;
  // The packed B operand step k reads (ins/outs: its operands with their data), or nullptr.
  std::shared_ptr<const void> packed_operand(size_t k, const std::vector<Tensor>& ins,
                                             const std::vector<Tensor>& outs) const;

  int64_t arena_bytes_;
  double cost_ns_ = 0;
  Device device_;
  int num_inputs_ = 0;
  std::vector<Slot> slots_;
  std::vector<Step> steps_;
  std::vector<int32_t> outputs_;
  std::vector<std::vector<int32_t>> output_homes_;  // by output; empty: always copied out of the arena
  std::vector<std::vector<char>> consts_;
  std::vector<void*> persistent_;
  std::vector<size_t> persistent_bytes_;
  std::shared_ptr<ParamVersions> versions_;
  bool pack_weights_ = false;
  PackedWeights packed_;  // its constants' copies (by step); parameters' are versions_->packed()
  mutable std::atomic<int64_t> packs_{0};
  // Per step, the copy it read last: its address (compared, never dereferenced) and bytes.
  mutable std::mutex step_packed_mutex_;
  mutable std::vector<std::pair<const void*, size_t>> step_packed_;
  mutable std::map<std::pair<size_t, int>, std::pair<const void*, size_t>> input_packed_;  // (step, input)
  // Arenas are pooled so that concurrent runs of one plan (several Python threads) each get their own.
  mutable std::mutex pool_mutex_;
  mutable std::vector<std::unique_ptr<Arena>> pool_;
};

// The plan's cost model, measured on this machine with benchmarks/threads_bench.py: a step costs kNsPerMac per
// multiply-add of its products (matmul, convolutions, recurrent layers) plus kNsPerElement per element it
// reads or writes. A plan costing less than kInlinePlanNs in all runs on one thread: waking a second one
// and handing it work costs more than it could save.
constexpr double kNsPerMac = 0.01;
constexpr double kNsPerElement = 0.1;
constexpr double kInlinePlanNs = 10000;

// Replaces kInlinePlanNs (a hook for tests and for measuring the rule: 0 turns it off); negative restores it.
void set_inline_plan_ns(double ns);

// A step's cost by that model, from its kernel key, its operands' shapes and its ints.
double step_cost_ns(const std::string& key, const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                    const std::vector<int64_t>& ints);

void set_num_threads(int n);
int get_num_threads();

}  // namespace dlc
