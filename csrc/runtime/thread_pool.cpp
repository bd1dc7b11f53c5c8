#include "runtime/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace dlc {

int get_num_threads();  // plan.cpp

namespace {

// Spin iterations (a pause each, tens of nanoseconds) before an idle worker sleeps or a waiting caller yields.
constexpr int kSpin = 4000;

thread_local bool t_in_pool = false;  // inside a chunk (or a worker): nested loops run inline
thread_local int t_worker = 0;        // the worker index of the chunk this thread is running
thread_local bool t_inline = false;   // an InlineScope is active on this thread
thread_local int t_team = 0;          // most threads used by a loop since reset_team_record
std::atomic<double> g_work_scale{1.0};

// Runs the chunks of [0, n) one after another on this thread, with the same boundaries as in parallel.
void run_inline(int64_t n, int64_t grain, const RangeFn& fn) {
  for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain), t_worker);
}

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      epoch_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Runs the job with `threads` threads (the caller and threads - 1 workers) if the pool is free.
  bool run(int64_t n, int64_t grain, const RangeFn& fn, int threads) {
    std::unique_lock<std::mutex> busy(job_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    ensure_workers(threads - 1);
    const int64_t chunks = (n + grain - 1) / grain;
    const uint64_t e = (epoch_.load(std::memory_order_relaxed) + 1);
    // Close the last job's claim word before any field of this one changes. A worker still in the last job's
    // claim loop may have read the old word (every chunk taken) and then read this job's larger chunk count:
    // its compare-exchange on the old word must fail. Without this it could take a chunk of this job before the
    // job opens, run it twice and count it in done_ after the reset below, so that the caller returned while a
    // chunk was still running (a rare NaN or stale block in a GEMM whose packing and compute are two jobs).
    claim_.store((e << 32) | 0xffffffffu);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    chunks_ = chunks;
    active_ = threads - 1;
    done_.store(0, std::memory_order_relaxed);
    // Publishing the new claim word (its epoch in the high half, no chunk taken) opens the job.
    claim_.store(e << 32, std::memory_order_release);
    // Sequentially consistent: the store of epoch_ and the load of sleepers_ must not be reordered against
    // a sleeping worker's increment of sleepers_ and load of epoch_, or a wake-up could be lost.
    epoch_.store(e);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    work(e, 0);
    // Wait only for chunks that others claimed and have not finished.
    for (int spin = 0; done_.load(std::memory_order_acquire) < chunks; ++spin) {
      if (spin < kSpin)
        _mm_pause();
      else
        std::this_thread::yield();
    }
    return true;
  }

 private:
  // Claims and runs chunks of job `e` until none are left.
  void work(uint64_t e, int worker) {
    for (;;) {
      uint64_t c = claim_.load(std::memory_order_acquire);
      if ((c >> 32) != (e & 0xffffffffu)) return;  // a later job (or none): nothing of ours left
      const int64_t k = static_cast<int64_t>(c & 0xffffffffu);
      if (k >= chunks_.load(std::memory_order_relaxed)) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
      // Holding an unfinished chunk of job e keeps the job (and fn_, n_, grain_) alive and unchanged.
      const int64_t g = grain_.load(std::memory_order_relaxed), n = n_.load(std::memory_order_relaxed);
      const int64_t b = k * g;
      const bool outer = t_in_pool;
      const int outer_worker = t_worker;
      t_in_pool = true;
      t_worker = worker;
      (*fn_.load(std::memory_order_relaxed))(b, std::min(n, b + g), worker);
      t_in_pool = outer;
      t_worker = outer_worker;
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void ensure_workers(int want) {
    while (static_cast<int>(workers_.size()) < want) {
      const int id = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, id] { loop(id); });
    }
  }

  void loop(int id) {
    t_in_pool = true;
    uint64_t seen = epoch_.load(std::memory_order_acquire);
    for (;;) {
      uint64_t e = epoch_.load(std::memory_order_acquire);
      for (int spin = 0; e == seen && spin < kSpin; ++spin) {
        _mm_pause();
        e = epoch_.load(std::memory_order_acquire);
      }
      if (e == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lock, [&] { return stop_ || epoch_.load() != seen; });
        sleepers_.fetch_sub(1);
        if (stop_) return;
        e = epoch_.load(std::memory_order_acquire);
      }
      seen = e;
      // Workers beyond this job's thread count stay out, so per-thread scratch indices stay below it.
      if (id < active_.load(std::memory_order_acquire) + 1) work(e, id);
    }
  }

  std::mutex job_mu_;  // one job at a time
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> claim_{0};  // (epoch << 32) | next chunk
  std::atomic<const RangeFn*> fn_{nullptr};
  std::atomic<int64_t> n_{0}, grain_{1}, chunks_{0};
  std::atomic<int> active_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction order
  return *p;
}

}  // namespace

int pool_threads() { return std::max(1, get_num_threads()); }

bool in_parallel_region() { return t_in_pool; }

int64_t grain_for(int64_t n, int per_thread, int64_t min_grain) {
  const int64_t parts = static_cast<int64_t>(pool_threads()) * per_thread;
  return std::max(min_grain, (n + parts - 1) / parts);
}

Threads threads_for(double work, double per_thread) {
  const double unit = per_thread * g_work_scale.load(std::memory_order_relaxed);
  const int most = pool_threads();
  if (unit <= 0) return Threads{most};
  const double want = 1.0 + work / unit;
  return Threads{want >= most ? most : std::max(1, static_cast<int>(want))};
}

void set_work_per_thread_scale(double scale) { g_work_scale.store(std::max(0.0, scale)); }

void parallel_for(int64_t n, int64_t grain, const RangeFn& fn, Threads team) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>({team.n, pool_threads(), chunks}));
  const bool go = threads > 1 && !t_in_pool && !t_inline && pool().run(n, grain, fn, threads);
  if (!t_in_pool) t_team = std::max(t_team, go ? threads : 1);
  if (!go) run_inline(n, grain, fn);
}

void parallel_for(int64_t n, int64_t grain, const RangeFn& fn, bool parallel) {
  parallel_for(n, grain, fn, Threads{parallel ? pool_threads() : 1});
}

InlineScope::InlineScope(bool active) : saved_(t_inline) { t_inline = t_inline || active; }
InlineScope::~InlineScope() { t_inline = saved_; }

void reset_team_record() { t_team = 0; }
int team_record() { return std::max(1, t_team); }

}  // namespace dlc
