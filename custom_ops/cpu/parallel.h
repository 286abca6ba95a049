// The kernels' own thread pool and the run-time settings (thread count, SIMD
// path).  MindSpore 2.10 offers custom kernels no thread pool, so the kernels
// bring one: persistent workers that sleep between calls; the calling thread
// works too.  Work is split into chunks fixed by the data sizes only, and each
// chunk's result goes to its own slot, so results do not depend on how many
// threads run or which thread takes which chunk.
#ifndef MS_BCE_CPU_PARALLEL_H_
#define MS_BCE_CPU_PARALLEL_H_

#include <cstdint>
#include <functional>

namespace ms_bce {

// Threads a kernel may use: ms_bce_set_num_threads(n > 0), else the
// MS_BCE_NUM_THREADS environment variable, else the CPUs in this process's
// affinity mask (which taskset, cgroups and MindSpore's set_cpu_affinity set).
int num_threads();

enum class SimdPath { kAuto = 0, kScalar = 1, kAvx2 = 2 };

// The SIMD path kernels take: the AVX2 one where the CPU has AVX2, FMA and
// F16C, unless ms_bce_set_simd_path() or MS_BCE_SIMD=scalar says otherwise.
SimdPath simd_path();

// Runs task(i) for every i in [0, count), on up to `threads` threads (the
// caller included), each task under IEEE arithmetic.  Returns when all are
// done.  A call made while another is running (another MindSpore thread)
// runs its tasks on its own thread.
void parallel_for(int64_t count, int threads, const std::function<void(int64_t)> &task);

}  // namespace ms_bce

#endif  // MS_BCE_CPU_PARALLEL_H_
