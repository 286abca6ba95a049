// What the CPU kernels share beyond the ABI layer (../common/aot_abi.h):
// the float16/bfloat16 storage types, the in-order sum of chunk partials,
// IEEE arithmetic for a kernel's scope and the exception guard (the element
// maths, mul0 and Grad are ../common/element_math.h's).
#ifndef MS_BCE_CPU_COMMON_H_
#define MS_BCE_CPU_COMMON_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "../common/aot_abi.h"
#include "../common/element_math.h"
#include "../common/errors.h"
#include "../common/float16.h"
#include "../common/params.h"

namespace ms_bce {

// The 2-byte storage types as raw bits (../common/float16.h converts them).
struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

inline float to_float(Half h) { return half_bits_to_float(h.bits); }
inline Half half_from_float(float f) { return Half{float_to_half_bits(f)}; }
inline float to_float(BFloat16 b) { return bfloat16_bits_to_float(b.bits); }
inline BFloat16 bfloat16_from_float(float f) { return BFloat16{float_to_bfloat16_bits(f)}; }
inline float to_float(float f) { return f; }
// A mask's bool (one byte): 1 where the element is kept.
inline float to_float(uint8_t b) { return b != 0 ? 1.0f : 0.0f; }

// Results are formed in double; each storage type rounds from there.
template <class T> T store_as(double v);
template <> inline float store_as<float>(double v) { return static_cast<float>(v); }
template <> inline Half store_as<Half>(double v) { return half_from_float(static_cast<float>(v)); }
template <> inline BFloat16 store_as<BFloat16>(double v) { return bfloat16_from_float(static_cast<float>(v)); }

// Calls fn.template operator()<T>() for the storage type named by dtype.
template <class Fn>
int dispatch_dtype(DType dtype, Fn &&fn) {
  switch (dtype) {
    case DType::kFloat32: return fn.template operator()<float>();
    case DType::kFloat16: return fn.template operator()<Half>();
    case DType::kBFloat16: return fn.template operator()<BFloat16>();
  }
  return kBadDtype;
}

// Sum of per-chunk partials in chunk order: the same bits however the chunks were scheduled.
inline double combine_in_order(const std::vector<double> &partials) {
  double s = 0.0;
  for (double p : partials) s += p;
  return s;
}

// IEEE arithmetic for the scope of a kernel: round to nearest, subnormals
// neither flushed nor read as zero.  MindSpore's graph-mode runtime threads
// run with FTZ and DAZ set (MXCSR 0x9fe2 seen), which turned a float32 loss
// of 4.9e-40 into 0 and would read subnormal inputs as 0.
class IeeeFloatScope {
 public:
#if defined(__x86_64__) || defined(__i386__)
  IeeeFloatScope() : saved_(_mm_getcsr()) {
    constexpr unsigned kFlushToZero = 0x8000u, kDenormalsAreZero = 0x0040u, kRoundingMode = 0x6000u;
    _mm_setcsr(saved_ & ~(kFlushToZero | kDenormalsAreZero | kRoundingMode));
  }
  ~IeeeFloatScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#elif defined(__aarch64__)
  IeeeFloatScope() {
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved_));
    constexpr uint64_t kFlushToZero = 1ull << 24, kRoundingMode = 3ull << 22, kFlushToZero16 = 1ull << 19;
    const uint64_t ieee = saved_ & ~(kFlushToZero | kRoundingMode | kFlushToZero16);
    __asm__ __volatile__("msr fpcr, %0" : : "r"(ieee));
  }
  ~IeeeFloatScope() { __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_)); }

 private:
  uint64_t saved_;
#endif
  IeeeFloatScope(const IeeeFloatScope &) = delete;
  IeeeFloatScope &operator=(const IeeeFloatScope &) = delete;
};

// Runs body() under IEEE arithmetic and turns any exception (allocation
// included) into a Status: nothing may unwind into MindSpore's kernel launcher.
template <class Fn>
int guarded(Fn &&body) {
  const IeeeFloatScope ieee;
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return kNoMemory;
  } catch (...) {
    return kInternal;
  }
}

}  // namespace ms_bce

#endif  // MS_BCE_CPU_COMMON_H_
