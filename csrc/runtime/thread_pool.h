// dlc's own pool of kernel threads, built for a CPU shared with other programs.
//
// A fork-join runtime (OpenMP) makes the caller wait at the end of every parallel region until each thread
// of the team has checked in, even a thread that the OS has descheduled before it took any work: beside a
// busy neighbour every kernel then waits a scheduler time slice. Here the caller publishes a job of chunks,
// takes chunks itself, and waits only for chunks another thread has actually claimed. A worker that wakes
// late finds nothing left and goes back to sleep. Idle workers spin for a bounded time (long enough to
// bridge the gap between the kernels of one call), then sleep on a condition variable.
//
// Chunk boundaries depend only on the loop's size and grain (never on which thread runs a chunk or when),
// so a kernel that keeps one partial result per chunk and combines them in chunk order is bit-identical run
// to run. Calls from inside a chunk, and calls while another Python thread's job holds the pool, run inline
// on the calling thread.
#pragma once
#include <cstdint>
#include <functional>

namespace dlc {

// How many threads (the caller included) may run one loop's chunks. A distinct type so that a thread count is
// never mistaken for the yes/no `parallel` argument of the older overloads.
struct Threads {
  int n = 1;
};

// The cost model: threads for `work` units of a kernel, where a further thread pays for its hand-off only
// with at least `per_thread` units to do (MLAS uses 64K multiply-adds for its GEMM): 1 + work / per_thread,
// at most the configured threads. Each kernel family states its own unit and per-thread amount, measured on
// this machine (docs/architecture.md, "Threads sized to the work"). Depends only on the work and
// set_num_threads, never on timing, so a kernel's split and bits are the same run to run.
Threads threads_for(double work, double per_thread);

// Scales every per_thread amount (a hook for tests and for measuring the model: 0 gives every kernel all
// threads, 1 restores the measured amounts). Process-wide.
void set_work_per_thread_scale(double scale);

// fn(begin, end, worker) for consecutive ranges covering [0, n), each of `grain` items (the last may be
// shorter). worker is in [0, pool_threads()) and unique among the ranges running at one time (an index
// into per-thread scratch). Runs inline when `parallel` is false, n <= grain, or one thread is configured.
using RangeFn = std::function<void(int64_t begin, int64_t end, int worker)>;
// With `threads`, at most that many threads take chunks (one: inline on the caller).
void parallel_for(int64_t n, int64_t grain, const RangeFn& fn, Threads threads);
void parallel_for(int64_t n, int64_t grain, const RangeFn& fn, bool parallel = true);

// Same with one call per item: fn(i, worker).
template <class F>
inline void parallel_items(int64_t n, const F& fn, Threads threads) {
  parallel_for(
      n, 1, [&](int64_t b, int64_t e, int w) { for (int64_t i = b; i < e; ++i) fn(i, w); }, threads);
}
template <class F>
inline void parallel_items(int64_t n, const F& fn, bool parallel = true) {
  parallel_items(n, fn, Threads{parallel ? 1 << 30 : 1});
}

// A grain giving each of the configured threads about `per_thread` chunks of [0, n) (at least min_grain).
int64_t grain_for(int64_t n, int per_thread = 8, int64_t min_grain = 1);

// Threads the pool uses (the caller included): the number set by set_num_threads.
int pool_threads();

// Whether the calling thread is running a chunk (where a nested parallel_for runs inline).
bool in_parallel_region();

// While one exists, every loop started on this thread runs inline: a plan whose whole run is too little work to
// pay for waking a second thread (Plan::run). Chunk boundaries do not change, so neither do results.
class InlineScope {
 public:
  explicit InlineScope(bool active);
  ~InlineScope();
  InlineScope(const InlineScope&) = delete;
  InlineScope& operator=(const InlineScope&) = delete;

 private:
  bool saved_;
};

// The most threads any loop started on this thread has used since the last reset (1 for loops run inline):
// `dlc bench` reports it per kernel.
void reset_team_record();
int team_record();

}  // namespace dlc
