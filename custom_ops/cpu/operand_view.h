// A segment's operands: a broadcast operand's float32 values per segment
// (OperandView), its gradient contributions summed per chunk
// (ChunkGradient), and a chunk's inputs (ChunkOperands), which set a
// segment's inputs for the forward and the backward driver alike.
#ifndef MS_BCE_CPU_OPERAND_VIEW_H_
#define MS_BCE_CPU_OPERAND_VIEW_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "broadcast.h"
#include "parallel.h"
#include "segment.h"
#include "simd_avx2.h"

namespace ms_bce {

// The float32 values of one broadcast operand for successive segments of a
// chunk, read in place (float32, full size) or through a small buffer.
template <class T>
class OperandView {
 public:
  OperandView(const T *data, const OperandInfo &info) : data_(data), info_(info) {
    if (info.kind == OperandKind::kScalar) {
      buf_.assign(kSegment, to_float(data[0]));
    } else if (info.kind == OperandKind::kPeriodic) {
      // period * (segments' worth + one) values, so any phase has kSegment ahead
      const int64_t p = info.numel;
      buf_.resize(p * ((kSegment + p - 1) / p + 1));
      for (size_t i = 0; i < buf_.size(); ++i) buf_[i] = to_float(data[i % p]);
    } else if (!(info.kind == OperandKind::kFull && std::is_same<T, float>::value)) {
      buf_.resize(kSegment);
    }
  }

  // The operand's own values from flat index f0 when it is full-size (the
  // vector kernels load any storage type), else nullptr.
  const T *native(int64_t f0) const { return info_.kind == OperandKind::kFull ? data_ + f0 : nullptr; }

  const float *segment(int64_t f0, int64_t n) {
    switch (info_.kind) {
      case OperandKind::kScalar:
        return buf_.data();
      case OperandKind::kPeriodic:
        return buf_.data() + f0 % info_.numel;
      case OperandKind::kFull:
        if constexpr (std::is_same<T, float>::value) {
          return data_ + f0;
        } else {
          int64_t i = 0;
#if defined(MS_BCE_HAVE_AVX2_PATH)
          if constexpr (std::is_same<T, uint8_t>::value) {  // a mask's bytes, the same values either way
            if (simd_path() == SimdPath::kAvx2) {  // whole vectors; the loop below takes the rest
              i = n / avx2::kLanes * avx2::kLanes;
              avx2::mask_to_floats(data_ + f0, buf_.data(), i);
            }
          }
#endif
          for (; i < n; ++i) buf_[i] = to_float(data_[f0 + i]);
          return buf_.data();
        }
      case OperandKind::kGeneral:
        for_each_run(info_.layout, f0, f0 + n, [&](const Run &r) {
          for (int64_t i = 0; i < r.len; ++i) buf_[r.flat - f0 + i] = to_float(data_[r.off[0] + i * r.step[0]]);
        });
        return buf_.data();
    }
    return nullptr;
  }

 private:
  const T *data_;
  const OperandInfo &info_;
  std::vector<float> buf_;
};

// A full-size operand's gradient: its n double contributions stored as T.
template <class T>
void store_contributions(T *dst, const double *src, int64_t n, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (vector) return avx2::store_doubles(dst, src, n);
#endif
  (void)vector;
  for (int64_t i = 0; i < n; ++i) dst[i] = store_as<T>(src[i]);
}

// One chunk's sums of a broadcast operand's gradient contributions, over
// offsets [lo, lo + sum.size()).
struct ChunkGradient {
  int64_t lo = 0;
  std::vector<double> sum;
};

// Adds a segment's contributions c[0 .. n) (flat indices f0 ..) to a chunk's
// sums: kScalar into one value, kPeriodic into an expanded buffer folded at
// the chunk's end (fold_periodic), kGeneral at each element's offset.
inline void add_contributions(const OperandInfo &info, const double *c, int64_t f0, int64_t n, ChunkGradient *g) {
  switch (info.kind) {
    case OperandKind::kScalar: {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) s += c[i];
      g->sum[0] += s;
      return;
    }
    case OperandKind::kPeriodic: {
      double *e = g->sum.data() + f0 % info.numel;
      for (int64_t i = 0; i < n; ++i) e[i] += c[i];
      return;
    }
    case OperandKind::kGeneral:
      for_each_run(info.layout, f0, f0 + n, [&](const Run &r) {
        double *e = g->sum.data() + (r.off[0] - g->lo);
        for (int64_t i = 0; i < r.len; ++i) e[i * r.step[0]] += c[r.flat - f0 + i];
      });
      return;
    case OperandKind::kFull:
      return;  // written in place by the driver
  }
}

// Chunk sums for an operand over flat indices [begin, end): the buffer and
// the range of offsets it covers.
inline ChunkGradient chunk_gradient(const OperandInfo &info, int64_t begin, int64_t end) {
  ChunkGradient g;
  switch (info.kind) {
    case OperandKind::kScalar:
      g.sum.assign(1, 0.0);
      break;
    case OperandKind::kPeriodic:  // expanded like OperandView's buffer, folded later
      g.sum.assign(info.numel * ((kSegment + info.numel - 1) / info.numel + 1), 0.0);
      break;
    case OperandKind::kGeneral:
      if (info.monotone && end > begin) {
        g.lo = operand_offset(info.layout, begin);
        g.sum.assign(operand_offset(info.layout, end - 1) - g.lo + 1, 0.0);
      } else {
        g.sum.assign(info.numel, 0.0);
      }
      break;
    case OperandKind::kFull:
      break;
  }
  return g;
}

// Folds a periodic chunk's expanded sums to one value per offset.
inline void fold_periodic(const OperandInfo &info, ChunkGradient *g) {
  if (info.kind != OperandKind::kPeriodic) return;
  std::vector<double> folded(info.numel, 0.0);
  for (size_t i = 0; i < g->sum.size(); ++i) folded[i % info.numel] += g->sum[i];
  g->sum.swap(folded);
}

// One chunk's inputs: x, y and views of weight/pos_weight (and the mask)
// where present.  On the vector path a segment carries the label smoothing
// and the mask's 1/0 values (Segment::eps, keep) for the policy's lanes
// (inputs_avx2.h).  On the portable path, with label smoothing (eps != 0),
// y's smoothed values (params.h's smooth_target, rounded once to T) are in a
// buffer of the chunk's own; and a segment that drops elements gets
// stand-ins there: x = y = 1/2, pos_weight 1 and weight 0 (a buffer of its
// own, with the weight's values elsewhere), so that a dropped element's
// loss is exactly 0 * (a finite value) whatever the tensors hold, and keep
// marks them for the driver, which zeroes their gradients
// (backward_segment_with_options).
template <class T, bool HW, bool HP, bool HM = false>
class ChunkOperands {
 public:
  ChunkOperands(void **params, const OperandInfo &wi, const OperandInfo &pi, double eps, bool vector,
                const OperandInfo *mi = nullptr)
      : x_(static_cast<const T *>(params[0])), y_(static_cast<const T *>(params[1])), eps_(eps), vector_(vector) {
    constexpr OperandSet kOps{HW, HP, 0, HM};
    if (HW) w_.emplace(static_cast<const T *>(params[kOps.weight()]), wi);
    if (HP) p_.emplace(static_cast<const T *>(params[kOps.pos_weight()]), pi);
    if (HM) m_.emplace(static_cast<const uint8_t *>(params[kOps.mask()]), *mi);
    if (HM && !vector) {
      xs_.resize(kSegment);
      ys_.resize(kSegment);
      ws_.resize(kSegment);
      if (HP) ps_.resize(kSegment);
    }
    if (eps != 0.0 && !vector) smoothed_.resize(kSegment);
  }

  // The segment of flat indices [f0, min(f0 + kSegment, end)) with its inputs
  // set (weight/pos_weight: their own storage where full-size on the vector
  // path, else the views' float32 values), for either driver.
  Segment<T> segment(int64_t f0, int64_t end) {
    Segment<T> s;
    s.n = std::min(kSegment, end - f0);
    s.x = x_ + f0;
    s.y = y_ + f0;
    const float *keep = HM ? m_->segment(f0, s.n) : nullptr;
    if (vector_ || keep == nullptr || std::find(keep, keep + s.n, 0.0f) == keep + s.n) {
      // the vector path, or nothing dropped
      if (HW && !(vector_ && (s.w_native = w_->native(f0)))) s.w = w_->segment(f0, s.n);
      if (HP && !(vector_ && (s.p_native = p_->native(f0)))) s.p = p_->segment(f0, s.n);
      if (vector_) {
        s.keep = keep;
        s.eps = eps_;
        return s;
      }
      keep = nullptr;
    }
    if (!smoothed_.empty()) {
      for (int64_t i = 0; i < s.n; ++i) smoothed_[i] = store_as<T>(smooth_target(to_float(s.y[i]), eps_));
      s.y = smoothed_.data();
    }
    if (keep == nullptr) return s;
    // stand-ins where dropped
    const float *w = HW ? w_->segment(f0, s.n) : nullptr;
    const float *p = HP ? p_->segment(f0, s.n) : nullptr;
    const T half = store_as<T>(0.5);
    for (int64_t i = 0; i < s.n; ++i) {
      const bool k = keep[i] != 0.0f;
      xs_[i] = k ? s.x[i] : half;
      ys_[i] = k ? s.y[i] : half;
      ws_[i] = k ? (HW ? w[i] : 1.0f) : 0.0f;
      if (HP) ps_[i] = k ? p[i] : 1.0f;
    }
    s.x = xs_.data();
    s.y = ys_.data();
    s.w = ws_.data();
    if (HP) s.p = ps_.data();
    s.keep = keep;
    return s;
  }

 private:
  const T *x_, *y_;
  double eps_;
  bool vector_;
  std::vector<T> smoothed_;
  std::optional<OperandView<T>> w_, p_;
  std::optional<OperandView<uint8_t>> m_;
  std::vector<T> xs_, ys_;
  std::vector<float> ws_, ps_;
};

// The portable path's target gradient with label smoothing: the plain one
// at the smoothed target times dY'/dY = 1 - eps, scaled in place (a second
// rounding; the vector path scales in its lanes, the same bits).
template <class T>
void scale_target_gradient(T *dy, int64_t n, double eps) {
  for (int64_t i = 0; i < n; ++i) dy[i] = store_as<T>(static_cast<double>(to_float(dy[i])) * (1.0 - eps));
}

}  // namespace ms_bce

#endif  // MS_BCE_CPU_OPERAND_VIEW_H_
