// A segment's inputs as the losses' AVX2 paths read them, 8 lanes at a
// time, with the drivers' two element options applied in the lanes, so they
// cost no pass of their own over the segment:
//   label smoothing (Segment::eps): the target y (1 - eps) + eps / 2, one FMA
//     in double rounded once to T (params.h's smooth_target: the values the
//     portable path's buffer holds), and the target's gradient times 1 - eps
//     after its rounding to T, rounded again (as the portable path scales it);
//   a mask (Segment::keep): where it drops a lane, neutral stand-ins
//     (x = y = 1/2, weight and pos_weight 1, incoming gradient 0), so the lane
//     computes finite values on the fast path whatever the tensors hold, and
//     every result of the lane leaves through kept(): +0.  A kept lane
//     computes exactly what it computes without a mask.
// Without either option, load() is the plain loads and kept() an AND with
// all ones: the same bits, at the cost of one instruction per result.
#ifndef MS_BCE_CPU_INPUTS_AVX2_H_
#define MS_BCE_CPU_INPUTS_AVX2_H_

#include <type_traits>

#include "segment.h"
#include "simd_avx2.h"

#if defined(MS_BCE_HAVE_AVX2_PATH)

MS_BCE_AVX2_BEGIN

namespace ms_bce {
namespace avx2 {

// v rounded to T and back: what a store to T and a load give.
template <class T>
MS_BCE_VINLINE __m256 round_to(__m256 v) {
  if constexpr (std::is_same<T, float>::value) {
    return v;
  } else {
    alignas(32) T buf[kLanes];
    store(buf, v);
    return load(buf);
  }
}

// One vector's inputs; keep: all ones in a kept lane (every lane without a mask).
struct Lanes {
  __m256 x, y, w, p, keep;
};

template <class T, bool HW, bool HP>
class Inputs {
 public:
  MS_BCE_VINLINE explicit Inputs(const Segment<T> &s)
      : s_(s), smooth_(s.eps != 0.0), a_(splat_pd(1.0 - s.eps)), b_(splat_pd(0.5 * s.eps)) {}

  // Lanes i .. i + m - 1 (m = 8, or fewer at the segment's tail).
  MS_BCE_VINLINE Lanes load(int64_t i, int64_t m) const {
    Lanes v;
    v.x = load_n(s_.x + i, m);
    v.y = load_n(s_.y + i, m);
    v.w = HW ? load_operand(s_.w_native, s_.w, i, m) : splat(1.0f);
    v.p = HP ? load_operand(s_.p_native, s_.p, i, m) : splat(1.0f);
    if (smooth_) {
      v.y = round_to<T>(to_ps(_mm256_fmadd_pd(low_pd(v.y), a_, b_), _mm256_fmadd_pd(high_pd(v.y), a_, b_)));
    }
    v.keep = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    if (s_.keep) {
      v.keep = _mm256_cmp_ps(load_n(s_.keep + i, m), _mm256_setzero_ps(), _CMP_NEQ_OQ);
      const __m256 half = splat(0.5f), one = splat(1.0f);
      v.x = select(v.keep, v.x, half);
      v.y = select(v.keep, v.y, half);
      if (HW) v.w = select(v.keep, v.w, one);
      if (HP) v.p = select(v.keep, v.p, one);
    }
    return v;
  }

  // The incoming gradient of 'none' (Segment::g): 0 in a dropped lane, where it may be inf or NaN.
  MS_BCE_VINLINE __m256 gradient(const Lanes &v, int64_t i, int64_t m) const {
    return _mm256_and_ps(v.keep, load_n(s_.g + i, m));
  }

  // A result: +0 in a dropped lane.
  static MS_BCE_VINLINE __m256 kept(const Lanes &v, __m256 r) { return _mm256_and_ps(v.keep, r); }

  // A result in two double halves (lanes 0-3, 4-7), likewise.
  static MS_BCE_VINLINE void kept(const Lanes &v, __m256d *lo, __m256d *hi) {
    const __m128i k_lo = _mm_castps_si128(_mm256_castps256_ps128(v.keep));
    const __m128i k_hi = _mm_castps_si128(_mm256_extractf128_ps(v.keep, 1));
    *lo = _mm256_and_pd(_mm256_castsi256_pd(_mm256_cvtepi32_epi64(k_lo)), *lo);
    *hi = _mm256_and_pd(_mm256_castsi256_pd(_mm256_cvtepi32_epi64(k_hi)), *hi);
  }

  // A weight/pos_weight contribution in two double halves stored (m lanes), +0 where dropped.
  static MS_BCE_VINLINE void store_kept(double *p, const Lanes &v, __m256d lo, __m256d hi, int64_t m) {
    kept(v, &lo, &hi);
    store_pd_n(p, lo, hi, m);
  }

  // The target's gradient dy at the smoothed target, as stored: times
  // 1 - eps with label smoothing (after its rounding to T), +0 where dropped.
  MS_BCE_VINLINE __m256 target_gradient(const Lanes &v, __m256 dy) const {
    if (smooth_) {
      const __m256 r = round_to<T>(dy);
      dy = to_ps(_mm256_mul_pd(low_pd(r), a_), _mm256_mul_pd(high_pd(r), a_));
    }
    return kept(v, dy);
  }

 private:
  const Segment<T> &s_;
  bool smooth_;
  __m256d a_, b_;  // 1 - eps, eps / 2
};

}  // namespace avx2
}  // namespace ms_bce

MS_BCE_AVX2_END

#endif  // MS_BCE_HAVE_AVX2_PATH

#endif  // MS_BCE_CPU_INPUTS_AVX2_H_
