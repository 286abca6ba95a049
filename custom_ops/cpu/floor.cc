// The benchmark's floor operators (python -m ms_bce.bench): what a loss
// kernel cannot beat on this machine.  Both stream the same inputs as the
// loss, through the same chunks, thread pool and loads, and do almost no
// arithmetic with them:
//   ms_bce_floor_read(a_1 .. a_k -> s)        s = sum of every element (0-d): a 'mean' forward's floor
//   ms_bce_floor_read_write(a_1 .. a_k -> o)  o = a_1 + .. + a_k, element-wise: a 'none' forward's or a
//                                             one-gradient backward's floor
// k = 1 .. 4 tensors of one shape and dtype (float32, float16, bfloat16).
// The sum is float32 per 8-lane vector and double per segment: a floor, not
// a result anyone reads.  Same ABI and checks as the loss kernels; not part
// of the loss registry (names start with ms_bce_).
#include <stdexcept>
#include <vector>

#include "../common/aot_abi.h"
#include "chunks.h"
#include "common.h"
#include "simd_avx2.h"

namespace ms_bce {
namespace {

constexpr int kMaxFloorInputs = 4;

struct FloorCall {
  int k = 0;  // inputs
  int64_t n = 0;
  DType dtype = DType::kFloat32;
};

// Checks a floor call: 1..4 inputs of one shape, the output 0-d (read) or of that shape.
Status read_floor_args(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, bool write,
                       FloorCall *call) {
  if (nparam < 2 || nparam > kMaxFloorInputs + 1) return kBadParamCount;
  Args a;
  if (Status st = read_args(nparam, nparam, params, ndims, shapes, dtypes, &a)) return st;
  call->k = nparam - 1;
  for (int i = 1; i < call->k; ++i) {
    if (!(a.shape[i] == a.shape[0])) return kBadShape;
  }
  const Shape &out = a.shape[call->k];
  if (write ? !(out == a.shape[0]) : out.rank != 0) return kBadShape;
  call->n = a.shape[0].numel;
  call->dtype = a.dtype;
  return kOk;
}

#if defined(MS_BCE_HAVE_AVX2_PATH)
MS_BCE_AVX2_BEGIN

template <class T>
double read_segment_avx2(const T *const *in, int k, int64_t f0, int64_t n) {
  using namespace avx2;
  __m256 acc = _mm256_setzero_ps();
  for_each_vector(n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    for (int j = 0; j < k; ++j) acc = _mm256_add_ps(acc, load_n(in[j] + f0 + i, m));
  });
  return total(low_pd(acc), high_pd(acc));
}

template <class T>
void write_segment_avx2(const T *const *in, int k, T *out, int64_t f0, int64_t n) {
  using namespace avx2;
  for_each_vector(n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    __m256 s = load_n(in[0] + f0 + i, m);
    for (int j = 1; j < k; ++j) s = _mm256_add_ps(s, load_n(in[j] + f0 + i, m));
    store_n(out + f0 + i, s, m);
  });
}

MS_BCE_AVX2_END
#endif  // MS_BCE_HAVE_AVX2_PATH

template <class T>
double read_segment(const T *const *in, int k, int64_t f0, int64_t n, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (vector) return read_segment_avx2(in, k, f0, n);
#endif
  (void)vector;
  double s = 0.0;
  for (int j = 0; j < k; ++j) {
    for (int64_t i = 0; i < n; ++i) s += to_float(in[j][f0 + i]);
  }
  return s;
}

template <class T>
void write_segment(const T *const *in, int k, T *out, int64_t f0, int64_t n, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (vector) {
    write_segment_avx2(in, k, out, f0, n);
    return;
  }
#endif
  (void)vector;
  for (int64_t i = 0; i < n; ++i) {
    float s = 0.0f;
    for (int j = 0; j < k; ++j) s += to_float(in[j][f0 + i]);
    out[f0 + i] = store_as<T>(s);
  }
}

template <bool kWrite>
int floor_kernel(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  FloorCall call;
  if (Status st = read_floor_args(nparam, params, ndims, shapes, dtypes, kWrite, &call)) return st;
  return guarded([&] {
    const int64_t chunks = chunk_count(call.n, nullptr, 0);
    const bool vector = simd_path() == SimdPath::kAvx2;
    return dispatch_dtype(call.dtype, [&]<class T>() {
      const T *in[kMaxFloorInputs] = {};
      for (int j = 0; j < call.k; ++j) in[j] = static_cast<const T *>(params[j]);
      T *out = static_cast<T *>(params[call.k]);
      std::vector<double> partial(chunks, 0.0);
      const int st = run_chunks(chunks, [&](int64_t c) {
        int64_t begin, end;
        chunk_range(call.n, chunks, c, &begin, &end);
        double sum = 0.0;  // the chunk's sum in a register, stored once (partial[] shares cache lines)
        for (int64_t f0 = begin; f0 < end; f0 += kSegment) {
          const int64_t m = std::min(kSegment, end - f0);
          if (kWrite) write_segment(in, call.k, out, f0, m, vector);
          else sum += read_segment(in, call.k, f0, m, vector);
        }
        partial[c] = sum;
      });
      if (st != kOk) return st;
      if (!kWrite) out[0] = store_as<T>(combine_in_order(partial));
      return static_cast<int>(kOk);
    });
  });
}

}  // namespace
}  // namespace ms_bce

MS_BCE_KERNEL(ms_bce_floor_read) {
  (void)stream;
  (void)extra;
  return ms_bce::floor_kernel<false>(nparam, params, ndims, shapes, dtypes);
}

MS_BCE_KERNEL(ms_bce_floor_read_write) {
  (void)stream;
  (void)extra;
  return ms_bce::floor_kernel<true>(nparam, params, ndims, shapes, dtypes);
}

// Output shapes for MindSpore (no checks: the kernel makes them).
MS_BCE_EXPORT std::vector<int64_t> ms_bce_floor_readInferShape(int *ndims, int64_t **shapes, void *extra) {
  (void)ndims;
  (void)shapes;
  (void)extra;
  return {};
}

MS_BCE_EXPORT std::vector<int64_t> ms_bce_floor_read_writeInferShape(int *ndims, int64_t **shapes, void *extra) {
  (void)extra;
  if (ndims == nullptr || shapes == nullptr || ndims[0] < 0 || ndims[0] > ms_bce::kMaxRank ||
      (ndims[0] > 0 && shapes[0] == nullptr)) {
    throw std::invalid_argument("For 'ms_bce_floor_read_write', no input shape.");
  }
  return std::vector<int64_t>(shapes[0], shapes[0] + ndims[0]);
}
