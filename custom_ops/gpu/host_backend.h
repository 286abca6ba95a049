// A host backend for driver.cuh: the GPU library's entry points, functors,
// index arithmetic and reduction order, run in plain loops on the CPU with
// host pointers.  It is what the test suite compiles (with g++, no CUDA) to
// check the GPU code on a machine without a GPU: everything but the kernel
// launch, the device's libm and the device conversion intrinsics.
//
// reduce() performs the steps of cuda_backend.cuh's reduce_kernel for every
// block and thread in turn -- same per-thread loop (reduce_thread), same
// shared-memory tree, same sink -- so its sums are the device's, bit for bit
// up to libm.  Keep the two in step.
#ifndef MS_BCE_GPU_HOST_BACKEND_H_
#define MS_BCE_GPU_HOST_BACKEND_H_

#include <cstdlib>
#include <cstring>
#include <vector>

#include "driver.cuh"

namespace ms_bce {
namespace gpu {

class HostBackend {
 public:
  explicit HostBackend(void * /*stream*/) {}

  Status check_pointers(const Args & /*a*/) const { return kOk; }

  template <class Fn>
  Status elementwise(int64_t n, const Fn &fn) const {
    double unused[1] = {0.0};
    for (int64_t i = 0; i < n; ++i) fn(i, unused);
    return kOk;
  }

  template <int K, class Src, class Sink>
  Status reduce(const ReducePlan &plan, const Src &src, const Sink &sink) const {
    std::vector<double> sh(static_cast<size_t>(K) * kBlock);
    std::vector<int> tx(kBlock), ty(kBlock);
    for (int t = 0; t < kBlock; ++t) plan.thread_pos(t, &tx[t], &ty[t]);
    for (int64_t chunk = 0; chunk < plan.chunks; ++chunk) {        // blockIdx.y
      for (int64_t block = 0; block < plan.grid_x; ++block) {      // blockIdx.x
        for (int64_t group = block; group < plan.out_groups; group += plan.grid_x) {
          for (int t = 0; t < kBlock; ++t) {  // each thread's own sums
            const int64_t o = group * plan.bx + tx[t];
            double acc[K];
            for (int k = 0; k < K; ++k) acc[k] = 0.0;
            if (o < plan.outputs) reduce_thread(plan, src, o, chunk, ty[t], acc);
            for (int k = 0; k < K; ++k) sh[k * kBlock + tx[t] * plan.by + ty[t]] = acc[k];
          }
          for (int s = plan.by / 2; s > 0; s >>= 1) {  // the tree, one barrier-separated step at a time
            for (int t = 0; t < kBlock; ++t) {
              if (ty[t] < s) {
                const int slot = tx[t] * plan.by + ty[t];
                for (int k = 0; k < K; ++k) sh[k * kBlock + slot] += sh[k * kBlock + slot + s];
              }
            }
          }
          for (int t = 0; t < kBlock; ++t) {
            const int64_t o = group * plan.bx + tx[t];
            if (ty[t] == 0 && o < plan.outputs) {
              double sum[K];
              for (int k = 0; k < K; ++k) sum[k] = sh[k * kBlock + tx[t] * plan.by + ty[t]];
              sink(o, chunk, sum);
            }
          }
        }
      }
    }
    return kOk;
  }

  Status alloc(size_t bytes, void **ptr) {
    *ptr = std::malloc(bytes == 0 ? 1 : bytes);
    return *ptr ? kOk : kNoMemory;
  }
  void release(void *ptr) { std::free(ptr); }

  Status zero(void *ptr, size_t bytes) const {
    std::memset(ptr, 0, bytes);
    return kOk;
  }

  template <class T>
  Status store_one(T *dst, T value) const {
    *dst = value;
    return kOk;
  }
};

}  // namespace gpu
}  // namespace ms_bce

// The entry points ../common/export_losses.inc generates run here: in host loops.
#define MS_BCE_RUNNER ms_bce::gpu::Entry<ms_bce::gpu::HostBackend>

#endif  // MS_BCE_GPU_HOST_BACKEND_H_
