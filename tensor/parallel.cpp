#include "tensor/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace glimpse::parallel {

int available_cpus() {
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0) return std::max(1, CPU_COUNT(&cpus));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

int positive_env(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  return end != text && *end == '\0' && value > 0 && value <= 4096 ? static_cast<int>(value) : 0;
}

int default_threads() {
  if (int n = positive_env("GLIMPSE_NUM_THREADS")) return n;
  if (int n = positive_env("OMP_NUM_THREADS")) return n;
  return available_cpus();
}

// How long an idle worker keeps polling for the next region before it sleeps. Between the ops of
// a training step the next region comes within microseconds, and waking a sleeping thread costs
// tens of microseconds on a VM (and, on a core another program is using, up to a scheduler slice).
// Long enough to bridge the gaps inside a step, short enough that an idle pool sleeps.
std::chrono::microseconds spin_time() {
  const char* text = std::getenv("GLIMPSE_SPIN_US");
  if (text != nullptr) return std::chrono::microseconds(std::strtol(text, nullptr, 10));
  return std::chrono::microseconds(1000);
}

// The tasks of one region are dealt out in contiguous shares, one per thread: share s holds tasks
// [s*n/T, (s+1)*n/T). A thread first claims from its own share, front to back, and only then from
// the others'. Why shares rather than one counter for all: consecutive regions usually cut the same
// data the same way (row blocks of one shape), so the thread that wrote a block in one op reads it
// in the next from its own core's cache. On a VM whose two vCPUs the host may place on different
// chiplets, a single counter handed every block to whichever thread came first, and each op then
// read the other core's output across the chiplets: the 2-thread shapes step ran at one thread's
// speed in such periods (docs/cpu-runtime.md). Stealing keeps what the single counter gave: a
// thread the OS has descheduled holds up nothing, since the others empty its share.
struct alignas(64) Share {
  std::atomic<int64_t> next{0};  // the next task to claim in [begin, end)
  int64_t end = 0;
};
constexpr int kMaxShares = 64;  // with more threads than this, slots wrap around onto the shares

// One region: published through Pool::current while its tasks are being claimed.
struct Job {
  Job(TaskRef task_fn, int64_t task_count, int thread_count, uint32_t job_generation)
      : fn(task_fn),
        shares(std::min(thread_count, kMaxShares)),
        generation(job_generation) {
    for (int s = 0; s < shares; ++s) {
      share[s].next.store(task_count * s / shares, std::memory_order_relaxed);
      share[s].end = task_count * (s + 1) / shares;
    }
  }
  TaskRef fn;
  int shares;
  uint32_t generation;
  Share share[kMaxShares];
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // written by the thread that set `failed`
};

thread_local bool t_in_region = false;

// Claims and runs tasks of `job` until none are left: its own share first, then the others' in
// turn.
void work_on(Job& job, int slot) {
  t_in_region = true;
  const int own = slot % job.shares;
  for (int k = 0; k < job.shares; ++k) {
    Share& share = job.share[(own + k) % job.shares];
    for (int64_t task; (task = share.next.fetch_add(1, std::memory_order_relaxed)) < share.end;) {
      try {
        job.fn(task, slot);
      } catch (...) {
        if (!job.failed.exchange(true)) job.error = std::current_exception();
        // Skip what is not started, in every share.
        for (int s = 0; s < job.shares; ++s)
          job.share[s].next.store(job.share[s].end, std::memory_order_relaxed);
      }
    }
  }
  t_in_region = false;
}

class Pool {
 public:
  Pool() : threads_(default_threads()), spin_(spin_time()) {}
  ~Pool() { stop_workers(); }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void set_threads(int threads) {
    std::lock_guard<std::mutex> lock(run_mutex_);
    threads_.store(threads <= 0 ? default_threads() : threads, std::memory_order_relaxed);
    // Workers are (re)started by the next region that needs them.
  }

  void run(int64_t tasks, TaskRef fn) {
    if (tasks <= 0) return;
    // Serially: one task, one thread, inside another region's task, or while another thread of
    // the program has the pool (two callers at once would otherwise share one set of workers).
    std::unique_lock<std::mutex> lock(run_mutex_, std::defer_lock);
    if (tasks == 1 || threads() == 1 || t_in_region || !lock.try_lock()) {
      run_serially(tasks, fn);
      return;
    }
    ensure_workers();
    Job job(fn, tasks, threads(), generation_.load(std::memory_order_relaxed) + 1);
    // Publish: a worker first sees the new generation, then joins through `current_`.
    current_.store(&job, std::memory_order_seq_cst);
    generation_.store(job.generation, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_sleepers();

    work_on(job, 0);

    // Retire the job: after this store no worker can join it, and `busy_` counts the ones that
    // did; they are finishing tasks they claimed. Nothing waits for a worker that never came.
    current_.store(nullptr, std::memory_order_seq_cst);
    for (int spins = 0; busy_.load(std::memory_order_seq_cst) != 0; ++spins) {
      if (spins < 4096) {
        cpu_relax();
      } else {
        std::this_thread::yield();  // the worker was descheduled mid-task: let it run
      }
    }
    if (job.failed.load(std::memory_order_acquire)) std::rethrow_exception(job.error);
  }

 private:
  static void run_serially(int64_t tasks, TaskRef fn) {
    const bool outer = !t_in_region;
    t_in_region = true;
    try {
      for (int64_t task = 0; task < tasks; ++task) fn(task, 0);
    } catch (...) {
      t_in_region = !outer;
      throw;
    }
    t_in_region = !outer;
  }

  void ensure_workers() {
    const int wanted = threads() - 1;
    if (static_cast<int>(workers_.size()) == wanted) return;
    stop_workers();
    stop_.store(false);
    // A worker starts from the generation current now: a job published before its thread runs
    // is then still new to it, and a stop is never missed.
    const uint32_t now = generation_.load(std::memory_order_seq_cst);
    for (int slot = 1; slot <= wanted; ++slot)
      workers_.emplace_back([this, slot, now] { worker(slot, now); });
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    wake_sleepers();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  void wake_sleepers() {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    wake_.notify_all();
  }

  void worker(int slot, uint32_t seen) {
    while (true) {
      // Wait for a new generation: poll for spin_, then sleep until the caller notifies.
      auto deadline = std::chrono::steady_clock::now() + spin_;
      uint32_t now_generation;
      for (int polls = 1; (now_generation = generation_.load(std::memory_order_acquire)) == seen;
           ++polls) {
        cpu_relax();
        if (polls % 256 != 0 || std::chrono::steady_clock::now() < deadline) continue;
        {
          // Announced before the last look at the generation, under the mutex that
          // wake_sleepers takes: a caller that publishes after that look sees the sleeper.
          std::unique_lock<std::mutex> lock(sleep_mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] {
            return generation_.load(std::memory_order_seq_cst) != seen || stop_.load();
          });
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        }
        deadline = std::chrono::steady_clock::now() + spin_;
      }
      seen = now_generation;
      if (stop_.load(std::memory_order_acquire)) return;
      // Join the job of that generation if it is still being claimed (see run's retirement).
      busy_.fetch_add(1, std::memory_order_seq_cst);
      Job* job = current_.load(std::memory_order_seq_cst);
      if (job != nullptr && job->generation == seen) work_on(*job, slot);
      busy_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  std::atomic<int> threads_;
  const std::chrono::microseconds spin_;
  std::mutex run_mutex_;  // one region at a time uses the workers
  std::vector<std::thread> workers_;
  std::atomic<Job*> current_{nullptr};
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> busy_{0};      // workers inside the current job
  std::atomic<int> sleepers_{0};  // workers asleep on wake_
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};
};

Pool& pool() {
  static Pool instance;
  return instance;
}

}  // namespace

int num_threads() { return pool().threads(); }
void set_num_threads(int threads) { pool().set_threads(threads); }
bool in_parallel_region() { return t_in_region; }
void run(int64_t tasks, TaskRef fn) { pool().run(tasks, fn); }

}  // namespace glimpse::parallel
