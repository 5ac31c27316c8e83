// The CPU backend's thread pool: every parallel loop of the CPU kernels runs through `run`.
//
// Why not OpenMP's `parallel for`: on a machine shared with other programs, a static OpenMP loop
// gives each thread a fixed share and then waits at a barrier for the slowest one, so a single
// thread that the OS has descheduled (or that must first be woken from sleep) stalls the whole
// region; with the many small regions of a small model, the 2-core VM lost 47% of its throughput to
// one `nice -n 19` busy loop (docs/cpu-runtime.md has the figures). Here instead:
//   - tasks are *claimed* one at a time from a shared counter, so a thread that is not running
//     simply claims fewer of them and the threads that are running take the rest;
//   - the caller works too, and waits only for tasks that another thread has already started —
//     never for a worker that has not shown up: if the workers are asleep or descheduled, the
//     caller runs every task itself, as fast as a one-thread run;
//   - idle workers spin for a short while (new regions usually follow within microseconds) and
//     then sleep, so an idle pool costs nothing;
//   - a region inside a task runs on the calling thread (no nested teams), and OpenBLAS is kept
//     single-threaded in every thread (the GEMM kernel splits products over this pool instead), so
//     there is one pool, not two fighting over the cores.
//
// Results never depend on which thread ran a task: kernels cut work into blocks fixed by the sizes
// alone (tensor/cpu/kernels_impl.h), so any thread count gives the same bits.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace glimpse::parallel {

// Threads that `run` uses, the caller included (at least 1).
int num_threads();
// Sets the thread count; `threads <= 0` restores the default: GLIMPSE_NUM_THREADS, else
// OMP_NUM_THREADS, else the number of CPUs this process may run on (its affinity mask).
void set_num_threads(int threads);
// The CPUs this process may run on (its affinity mask): the default thread count when neither
// environment variable is set.
int available_cpus();
// True on a thread that is running a task of `run` (a nested `run` then runs serially).
bool in_parallel_region();

// A borrowed reference to a callable fn(int64_t task, int slot), valid for one `run` call.
class TaskRef {
 public:
  template <class Fn, class = std::enable_if_t<!std::is_same_v<std::decay_t<Fn>, TaskRef>>>
  TaskRef(Fn& fn)  // NOLINT(google-explicit-constructor): a parameter type, built implicitly
      : object_(static_cast<void*>(&fn)),
        call_([](void* object, int64_t task, int slot) { (*static_cast<Fn*>(object))(task, slot); }) {}
  void operator()(int64_t task, int slot) const { call_(object_, task, slot); }

 private:
  void* object_;
  void (*call_)(void*, int64_t, int);
};

// Calls fn(task, slot) once for every task in [0, tasks), on up to num_threads() threads, and
// returns when all have finished. `slot` is in [0, num_threads()) and no two tasks running at the
// same time share one: index per-thread scratch space with it. The first exception a task throws is
// rethrown here (the tasks not yet started are skipped).
void run(int64_t tasks, TaskRef fn);

template <class Fn>
void run_tasks(int64_t tasks, Fn&& fn) {
  run(tasks, TaskRef(fn));
}

// Sets the thread count for a scope and restores the previous one (tests, benchmarks).
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int threads) : saved_(num_threads()) { set_num_threads(threads); }
  ~ThreadCountGuard() { set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

}  // namespace glimpse::parallel
