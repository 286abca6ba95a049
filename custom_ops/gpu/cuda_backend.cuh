// The CUDA backend of driver.cuh: the two parallel loops as kernels launched
// on the stream MindSpore passes in, stream-ordered scratch, error codes.
#ifndef MS_BCE_GPU_CUDA_BACKEND_CUH_
#define MS_BCE_GPU_CUDA_BACKEND_CUH_

#include <cuda_runtime.h>

#include "driver.cuh"

namespace ms_bce {
namespace gpu {

constexpr int64_t kMaxElementwiseBlocks = 8192;  // grid-stride beyond (results do not depend on it)

// fn(i) for every i in [0, n): a grid-stride loop with 64-bit indices.
template <class Fn>
__global__ void __launch_bounds__(kBlock) elementwise_kernel(int64_t n, Fn fn) {
  double unused[1] = {0.0};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) fn(i, unused);
}

// One pass of a ReducePlan (indexing.cuh).  No atomics: every sum is formed
// in the same order on every run -- per thread in increasing r, then a
// fixed shared-memory tree over the block's by lanes of an output, then (in
// the second pass) over the chunks in order.  host_backend.h runs exactly
// these steps in loops; keep the two in step.
template <int K, class Src, class Sink>
__global__ void __launch_bounds__(kBlock) reduce_kernel(ReducePlan plan, Src src, Sink sink) {
  __shared__ double sh[K][kBlock];
  int tx, ty;
  plan.thread_pos(static_cast<int>(threadIdx.x), &tx, &ty);
  const int slot = tx * plan.by + ty;  // an output's by lanes are adjacent
  const int64_t chunk = blockIdx.y;
  // every thread of the block runs the same iterations: the barriers below are uniform
  for (int64_t group = blockIdx.x; group < plan.out_groups; group += gridDim.x) {
    const int64_t o = group * plan.bx + tx;
    double acc[K];
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
    if (o < plan.outputs) reduce_thread(plan, src, o, chunk, ty, acc);
    for (int k = 0; k < K; ++k) sh[k][slot] = acc[k];
    __syncthreads();
    for (int s = plan.by / 2; s > 0; s >>= 1) {
      if (ty < s) {
        for (int k = 0; k < K; ++k) sh[k][slot] += sh[k][slot + s];
      }
      __syncthreads();
    }
    if (ty == 0 && o < plan.outputs) {
      double sum[K];
      for (int k = 0; k < K; ++k) sum[k] = sh[k][slot];
      sink(o, chunk, sum);
    }
    __syncthreads();  // sh is rewritten by the next group
  }
}

template <class T>
__global__ void store_one_kernel(T *dst, T value) {
  *dst = value;
}

class CudaBackend {
 public:
  explicit CudaBackend(void *stream) : stream_(static_cast<cudaStream_t>(stream)) {}

  // Every non-empty tensor must be device (or managed) memory: a host pointer
  // -- a GPU library called with the CPU device target -- is refused rather
  // than faulting the context.
  Status check_pointers(const Args &a) const {
    for (int i = 0; i < a.nparam; ++i) {
      if (a.shape[i].numel == 0) continue;
      cudaPointerAttributes attr;
      if (cudaPointerGetAttributes(&attr, a.params[i]) != cudaSuccess) return last_error();
      if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) return kNotDeviceMemory;
    }
    return kOk;
  }

  template <class Fn>
  Status elementwise(int64_t n, const Fn &fn) const {
    int64_t blocks = ceil_div(n, kBlock);
    if (blocks > kMaxElementwiseBlocks) blocks = kMaxElementwiseBlocks;
    elementwise_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream_>>>(n, fn);
    return launched();
  }

  template <int K, class Src, class Sink>
  Status reduce(const ReducePlan &plan, const Src &src, const Sink &sink) const {
    const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.chunks));
    reduce_kernel<K><<<grid, kBlock, 0, stream_>>>(plan, src, sink);
    return launched();
  }

  // Stream-ordered scratch (sized per call, never a workspace sized once);
  // where memory pools are unsupported, plain cudaMalloc, and release then
  // waits for the stream before cudaFree.
  Status alloc(size_t bytes, void **ptr) {
    cudaError_t e = cudaMallocAsync(ptr, bytes, stream_);
    if (e == cudaErrorNotSupported) {
      cudaGetLastError();
      synchronous_ = true;
      e = cudaMalloc(ptr, bytes);
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      *ptr = nullptr;
      return kNoMemory;
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      *ptr = nullptr;
      return kCudaError;
    }
    return kOk;
  }
  void release(void *ptr) {
    if (synchronous_) {
      cudaStreamSynchronize(stream_);
      cudaFree(ptr);
    } else {
      cudaFreeAsync(ptr, stream_);
    }
  }

  Status zero(void *ptr, size_t bytes) const {
    return cudaMemsetAsync(ptr, 0, bytes, stream_) == cudaSuccess ? kOk : last_error();  // 0 bits: +0.0 in every dtype
  }

  template <class T>
  Status store_one(T *dst, T value) const {
    store_one_kernel<<<1, 1, 0, stream_>>>(dst, value);
    return launched();
  }

 private:
  static Status last_error() {
    cudaGetLastError();  // clear it: the next call must not see ours
    return kCudaError;
  }
  static Status launched() { return cudaGetLastError() == cudaSuccess ? kOk : kCudaError; }

  cudaStream_t stream_;
  bool synchronous_ = false;
};

}  // namespace gpu
}  // namespace ms_bce

// The entry points ../common/export_losses.inc generates run here: kernels on MindSpore's stream.
#define MS_BCE_RUNNER ms_bce::gpu::Entry<ms_bce::gpu::CudaBackend>

#endif  // MS_BCE_GPU_CUDA_BACKEND_CUH_
