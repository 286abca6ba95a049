// custom_ops/common/vmath.h's element maths, for tests/test_vmath_lanes.py:
// the float instantiation (the scalar and device text) and the F8 one
// (custom_ops/cpu/lanes_avx2.h) against avx2::exp_normal(__m256) and
// avx2::log1p_unit(__m256), which the vector kernels call, bit for bit, over ranges of float32 bit patterns, and the
// float instantiation on arrays (its accuracy is measured in NumPy).
//
// The float instantiation is compiled without the AVX2 target, as the CPU
// scalar path would be (fmaf is then glibc's); the vector ones inside
// MS_BCE_AVX2_BEGIN/END, run only where the CPU has AVX2 + FMA + F16C.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "../../custom_ops/common/vmath.h"
#include "../../custom_ops/cpu/lanes_avx2.h"

#define VMATH_CHECK_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr int64_t kChunk = 1 << 14;  // bit patterns per block (a multiple of 8)

float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
uint32_t to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// fn 0: exp_normal, 1: log1p_unit; 2: the harness's control, exp_normal
// evaluated one bit pattern further on (float and F8) than avx2:: is, which
// must show mismatches.
void scalar_block(int fn, uint32_t first, int64_t n, float *out) {
  const uint32_t shift = fn == 2 ? 1 : 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = from_bits(first + static_cast<uint32_t>(i) + shift);
    out[i] = fn == 1 ? ms_bce::vmath::log1p_unit(x) : ms_bce::vmath::exp_normal(x);
  }
}

// The same bits, or NaN on both sides: a NaN's payload after arithmetic
// depends on which operand order the compiler picked for an FMA (with GCC 12
// and glibc the payloads agree too).
bool same(float a, float b) { return to_bits(a) == to_bits(b) || (a != a && b != b); }

}  // namespace

#if defined(MS_BCE_HAVE_AVX2_PATH)
MS_BCE_AVX2_BEGIN
namespace {

// __m256 (ref) and F8 (gen) results for ceil(n / 8) * 8 patterns from first
void vector_block(int fn, uint32_t first, int64_t n, float *ref, float *gen) {
  const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 x = _mm256_castsi256_ps(
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first + static_cast<uint32_t>(i))), step));
    if (fn == 1) {
      _mm256_storeu_ps(ref + i, ms_bce::avx2::log1p_unit(x));
      _mm256_storeu_ps(gen + i, ms_bce::avx2::log1p_unit(ms_bce::avx2::F8(x)).v);
    } else {
      const __m256i next = _mm256_add_epi32(_mm256_castps_si256(x), _mm256_set1_epi32(1));
      const __m256 y = fn == 2 ? _mm256_castsi256_ps(next) : x;
      _mm256_storeu_ps(ref + i, ms_bce::avx2::exp_normal(x));
      _mm256_storeu_ps(gen + i, ms_bce::avx2::exp_normal(ms_bce::avx2::F8(y)).v);
    }
  }
}

}  // namespace
MS_BCE_AVX2_END
#endif

namespace {

struct Tally {
  int64_t scalar = 0, vector = 0;  // mismatches of float and of F8 against avx2::
  uint32_t first_scalar = 0, first_vector = 0;
};

// Bit patterns [lo, hi] of fn: the float instantiation against avx2:: (what & 1)
// and F8 against avx2:: (what & 2).
Tally compare_range(int fn, uint32_t lo, uint32_t hi, int what) {
  Tally t;
#if defined(MS_BCE_HAVE_AVX2_PATH)
  std::vector<float> s(kChunk), ref(kChunk), gen(kChunk);
  for (uint64_t first = lo; first <= hi; first += kChunk) {
    const int64_t n = static_cast<int64_t>(std::min<uint64_t>(kChunk, uint64_t{hi} - first + 1));
    const uint32_t f = static_cast<uint32_t>(first);
    vector_block(fn, f, n, ref.data(), gen.data());
    if (what & 1) {
      scalar_block(fn, f, n, s.data());
      for (int64_t i = 0; i < n; ++i)
        if (!same(s[i], ref[i]) && t.scalar++ == 0) t.first_scalar = f + static_cast<uint32_t>(i);
    }
    if (what & 2) {
      for (int64_t i = 0; i < n; ++i)
        if (!same(gen[i], ref[i]) && t.vector++ == 0) t.first_vector = f + static_cast<uint32_t>(i);
    }
  }
#else
  (void)fn; (void)lo; (void)hi; (void)what;
#endif
  return t;
}

}  // namespace

// 1 where the AVX2 comparisons can run here (AVX2, FMA and F16C).
VMATH_CHECK_EXPORT int vmath_has_avx2() { return ms_bce::cpu_has_avx2() ? 1 : 0; }

// out[i] = vmath::exp_normal(in[i]) (fn 0) or vmath::log1p_unit(in[i]) (fn 1), V = float.
VMATH_CHECK_EXPORT void vmath_float(int fn, const float *in, float *out, int64_t n) {
  const ms_bce::IeeeFloatScope ieee;
  for (int64_t i = 0; i < n; ++i)
    out[i] = fn == 0 ? ms_bce::vmath::exp_normal(in[i]) : ms_bce::vmath::log1p_unit(in[i]);
}

// Compares fn over the bit patterns [lo, hi] on `threads` threads (what as
// compare_range's): counts[0] the float instantiation's mismatches against
// avx2::, counts[1] F8's, first[0..1] the lowest mismatching pattern of each.
// Returns -1 (nothing compared) where the CPU has no AVX2 path.
VMATH_CHECK_EXPORT int vmath_compare(int fn, uint32_t lo, uint32_t hi, int what, int threads, int64_t *counts,
                                     uint32_t *first) {
  if (!ms_bce::cpu_has_avx2()) return -1;
  const uint64_t total = uint64_t{hi} - lo + 1;
  const int k = static_cast<int>(std::min<uint64_t>(std::max(threads, 1), total / kChunk + 1));
  std::vector<Tally> parts(k);
  std::vector<std::thread> pool;
  uint64_t begin = lo;
  for (int j = 0; j < k; ++j) {
    const uint64_t end = j == k - 1 ? uint64_t{hi} + 1 : begin + total / k;  // [begin, end)
    pool.emplace_back([&parts, j, fn, begin, end, what] {
      const ms_bce::IeeeFloatScope ieee;  // round to nearest, subnormals kept, whatever the caller's thread had
      parts[j] = compare_range(fn, static_cast<uint32_t>(begin), static_cast<uint32_t>(end - 1), what);
    });
    begin = end;
  }
  for (auto &th : pool) th.join();
  counts[0] = counts[1] = 0;
  first[0] = first[1] = 0;
  for (const Tally &t : parts) {  // in ascending order of their ranges
    if (t.scalar && !counts[0]) first[0] = t.first_scalar;
    if (t.vector && !counts[1]) first[1] = t.first_vector;
    counts[0] += t.scalar;
    counts[1] += t.vector;
  }
  return 0;
}
