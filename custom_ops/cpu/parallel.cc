#include "parallel.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"
#include "lanes_avx2.h"

namespace ms_bce {
namespace {

std::atomic<int> g_num_threads{0};  // 0: not set, use the environment / affinity
std::atomic<int> g_simd_path{static_cast<int>(SimdPath::kAuto)};

int env_int(const char *name) {
  const char *v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

int affinity_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

// Workers wait for a job: a task, a task count and a shared next-index
// counter.  One job at a time (job_mutex); callers that find it busy run
// their tasks themselves.
class Pool {
 public:
  static Pool &instance() {
    static Pool *pool = new Pool();  // never destroyed: workers may outlive static destructors
    return *pool;
  }

  void run(int64_t count, int threads, const std::function<void(int64_t)> &task) {
    std::unique_lock<std::mutex> job(job_mutex_, std::try_to_lock);
    if (!job.owns_lock() || threads <= 1 || count <= 1) {
      run_inline(count, task);
      return;
    }
    const int helpers = static_cast<int>(std::min<int64_t>(threads, count)) - 1;
    ensure_workers(helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      count_ = count;
      next_.store(0);
      active_helpers_ = helpers;
      remaining_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    work(task, count);  // the caller takes chunks too
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return remaining_ == 0; });
    task_ = nullptr;
  }

  // After fork() only the forking thread exists in the child: forget the
  // workers (their threads are gone) and start new ones when needed.
  void reset_after_fork() {
    new (&mutex_) std::mutex();
    new (&job_mutex_) std::mutex();
    new (&wake_) std::condition_variable();
    new (&done_) std::condition_variable();
    // the old handles name threads that do not exist here: leak them unjoined
    new (&workers_) std::vector<std::thread>();
    task_ = nullptr;
    remaining_ = 0;
  }

 private:
  Pool() { pthread_atfork(nullptr, nullptr, [] { Pool::instance().reset_after_fork(); }); }

  static void run_inline(int64_t count, const std::function<void(int64_t)> &task) {
    const IeeeFloatScope ieee;
    for (int64_t i = 0; i < count; ++i) task(i);
  }

  void work(const std::function<void(int64_t)> &task, int64_t count) {
    const IeeeFloatScope ieee;
    for (int64_t i = next_.fetch_add(1); i < count; i = next_.fetch_add(1)) task(i);
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { worker_loop(index); });
    }
  }

  void worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t)> *task;
      int64_t count;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= active_helpers_) continue;  // not needed for this job
        task = task_;
        count = count_;
      }
      work(*task, count);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--remaining_ == 0) done_.notify_one();
    }
  }

  std::mutex job_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)> *task_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  int active_helpers_ = 0;
  int remaining_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace

int num_threads() {
  const int set = g_num_threads.load();
  if (set > 0) return set;
  const int env = env_int("MS_BCE_NUM_THREADS");
  return env > 0 ? env : affinity_cpus();
}

#if defined(MS_BCE_HAVE_AVX2_PATH)
MS_BCE_AVX2_BEGIN
void vector_math(int fn, const float *in, float *out, int64_t n) {
  using namespace avx2;
  for_each_vector(n, [&](int64_t i, int64_t m) {
    const __m256 v = load_n(in + i, m);
    store_n(out + i, fn == 0 ? exp_normal(v) : fn == 1 ? log1p_unit(v) : log_via_double(v), m);
  });
}
MS_BCE_AVX2_END
#endif

SimdPath simd_path() {
  int path = g_simd_path.load();
  if (path == static_cast<int>(SimdPath::kAuto)) {
    const char *env = std::getenv("MS_BCE_SIMD");
    path = (env && std::strcmp(env, "scalar") == 0) ? static_cast<int>(SimdPath::kScalar)
                                                    : static_cast<int>(SimdPath::kAvx2);
  }
  if (path == static_cast<int>(SimdPath::kAvx2) && !cpu_has_avx2()) return SimdPath::kScalar;
  return static_cast<SimdPath>(path);
}

void parallel_for(int64_t count, int threads, const std::function<void(int64_t)> &task) {
  Pool::instance().run(count, threads, task);
}

}  // namespace ms_bce

// ---------------------------------------------------------- settings API ---
// Called by ms_bce's Python layer through ctypes on the same library file
// MindSpore loaded (dlopen returns the same handle, so the same globals).

MS_BCE_EXPORT int ms_bce_set_num_threads(int n) {
  if (n < 0) return ms_bce::kBadParamCount;
  ms_bce::g_num_threads.store(n);
  return ms_bce::kOk;
}

MS_BCE_EXPORT int ms_bce_get_num_threads() { return ms_bce::num_threads(); }

// 0: automatic, 1: portable scalar path, 2: AVX2 path (scalar where unsupported).
MS_BCE_EXPORT int ms_bce_set_simd_path(int path) {
  if (path < 0 || path > 2) return ms_bce::kBadParamCount;
  ms_bce::g_simd_path.store(path);
  return ms_bce::kOk;
}

MS_BCE_EXPORT int ms_bce_get_simd_path() {
  return static_cast<int>(ms_bce::simd_path());
}

// The vector maths, for tests that measure their accuracy (tests/test_vector_math.py):
// fn 0: exp_normal, 1: log1p_unit, 2: log_via_double, over n float32 values.
// Returns kBadDtype where this CPU has no AVX2 path.
MS_BCE_EXPORT int ms_bce_vector_math(int fn, const float *in, float *out, int64_t n) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (!ms_bce::cpu_has_avx2()) return ms_bce::kBadDtype;
  if (fn < 0 || fn > 2 || n < 0 || (n > 0 && (in == nullptr || out == nullptr))) return ms_bce::kBadParamCount;
  const ms_bce::IeeeFloatScope ieee;
  ms_bce::vector_math(fn, in, out, n);
  return ms_bce::kOk;
#else
  (void)fn; (void)in; (void)out; (void)n;
  return ms_bce::kBadDtype;
#endif
}

// The message of this thread's last kOutOfRange (a value outside a loss's
// domain), for callers that get the status (ctypes); MindSpore's launcher
// gets it as an exception instead (../common/errors.h: report).
MS_BCE_EXPORT const char *ms_bce_last_error() {
  return ms_bce::last_error().c_str();
}
