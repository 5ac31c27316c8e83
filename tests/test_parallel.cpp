// The CPU thread pool (tensor/parallel.h): every task runs exactly once, slots are never shared by
// two running tasks, nested regions and concurrent callers work, exceptions come back to the
// caller, thread counts can change at any time, and a stalled thread's share is taken by the others.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tensor/parallel.h"

namespace parallel = glimpse::parallel;

namespace {

// Runs `tasks` tasks and checks each ran once and no slot was used by two tasks at a time.
void check_every_task_once(int64_t tasks) {
  const int slots = parallel::num_threads();
  std::vector<std::atomic<int>> runs(tasks);
  std::vector<std::atomic<int>> in_use(slots);
  std::atomic<int> bad_slot{0}, shared_slot{0};
  parallel::run_tasks(tasks, [&](int64_t task, int slot) {
    if (slot < 0 || slot >= slots) {
      bad_slot.fetch_add(1);
      return;
    }
    if (in_use[slot].exchange(1) != 0) shared_slot.fetch_add(1);
    volatile double x = 0;  // a little work, so that tasks overlap
    for (int i = 0; i < 2000; ++i) x = x + i;
    runs[task].fetch_add(1);
    in_use[slot].store(0);
  });
  CHECK(bad_slot.load() == 0);
  CHECK(shared_slot.load() == 0);
  int64_t wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1;
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("every task runs exactly once, on a slot no running task shares") {
  parallel::ThreadCountGuard guard(3);  // more threads than this VM's 2 cores, on purpose
  for (int64_t tasks : {0, 1, 2, 3, 7, 64, 1000}) check_every_task_once(tasks);
}

TEST_CASE("thread counts can change between regions, and back to the default") {
  const int default_threads = parallel::num_threads();
  // Workers are replaced on a change; a stop issued before a new worker's thread first ran once
  // left join() waiting forever, so change often, right after starting workers.
  for (int i = 0; i < 200; ++i) {
    parallel::set_num_threads(1 + i % 4);
    CHECK(parallel::num_threads() == 1 + i % 4);
    check_every_task_once(5);
  }
  parallel::set_num_threads(0);
  CHECK(parallel::num_threads() == default_threads);
}

TEST_CASE("a region inside a task runs on that task's thread") {
  parallel::ThreadCountGuard guard(2);
  std::vector<std::atomic<int>> runs(8 * 8);
  std::atomic<int> nested_not_serial{0};
  parallel::run_tasks(8, [&](int64_t outer, int) {
    CHECK(parallel::in_parallel_region());
    const std::thread::id me = std::this_thread::get_id();
    parallel::run_tasks(8, [&](int64_t inner, int slot) {
      if (std::this_thread::get_id() != me || slot != 0) nested_not_serial.fetch_add(1);
      runs[outer * 8 + inner].fetch_add(1);
    });
  });
  CHECK(!parallel::in_parallel_region());
  CHECK(nested_not_serial.load() == 0);
  for (auto& r : runs) CHECK(r.load() == 1);
}

TEST_CASE("two threads of a program may run regions at the same time") {
  parallel::ThreadCountGuard guard(2);
  std::atomic<int64_t> sum_a{0}, sum_b{0};
  auto caller = [](std::atomic<int64_t>& sum) {
    for (int repeat = 0; repeat < 50; ++repeat)
      parallel::run_tasks(100, [&](int64_t task, int) { sum.fetch_add(task); });
  };
  std::thread other(caller, std::ref(sum_b));
  caller(sum_a);
  other.join();
  CHECK(sum_a.load() == 50 * 4950);
  CHECK(sum_b.load() == 50 * 4950);
}

TEST_CASE("a task's exception reaches the caller and the pool keeps working") {
  parallel::ThreadCountGuard guard(2);
  std::atomic<int> started{0};
  std::string message;
  try {
    // Task 0 is the first one claimed; the others wait until it is throwing.
    std::atomic<bool> thrown{false};
    parallel::run_tasks(1000, [&](int64_t task, int) {
      if (task == 0) {
        thrown.store(true);
        throw std::runtime_error("task 0 failed");
      }
      while (!thrown.load()) std::this_thread::yield();
      started.fetch_add(1);
      // Slow enough that the throw (unwinding takes a while the first time) ends the region
      // long before the 999 others could have run.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    });
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  CHECK(message == "task 0 failed");
  CHECK(started.load() < 50);  // the tasks not yet started were skipped
  CHECK(!parallel::in_parallel_region());
  check_every_task_once(100);
}

TEST_CASE("when one thread stalls inside a task, the others take the remaining tasks") {
  // What a descheduled thread looks like to the pool. With a static split (OpenMP's
  // schedule(static)) the stalled thread would still own half of the tasks.
  parallel::ThreadCountGuard guard(2);
  constexpr int64_t kTasks = 200;
  std::atomic<bool> stalled{false};
  std::vector<std::atomic<int>> slot_tasks(2);
  parallel::run_tasks(kTasks, [&](int64_t, int slot) {
    slot_tasks[slot].fetch_add(1);
    if (!stalled.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    volatile double x = 0;
    for (int i = 0; i < 20000; ++i) x = x + i;  // about 20 us: all 200 take far less than 300 ms
  });
  CHECK(slot_tasks[0].load() + slot_tasks[1].load() == kTasks);
  // The stalled thread ran its one task; the other ran all the rest.
  CHECK(std::min(slot_tasks[0].load(), slot_tasks[1].load()) <= 2);
}

TEST_CASE("each thread starts on its own contiguous share of the tasks") {
  // What keeps a block's data in one core's cache from one op to the next: with 2 threads, the
  // caller (slot 0) starts at task 0 and the worker (slot 1) at task kTasks / 2. A single shared
  // counter would hand the worker task 1 or 2 instead.
  parallel::ThreadCountGuard guard(2);
  constexpr int64_t kTasks = 20;
  std::vector<std::atomic<int64_t>> first_task(2);
  for (auto& first : first_task) first.store(-1);
  parallel::run_tasks(kTasks, [&](int64_t task, int slot) {
    int64_t none = -1;
    first_task[slot].compare_exchange_strong(none, task);
    // 5 ms a task: the caller's own share lasts 50 ms, far longer than a worker takes to wake up.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  CHECK(first_task[0].load() == 0);
  REQUIRE(first_task[1].load() != -1);  // the worker took part
  CHECK(first_task[1].load() == kTasks / 2);
}
