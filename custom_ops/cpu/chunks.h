// How a call's work is split: chunks fixed by the sizes alone (so results
// do not depend on the thread count), run on the kernel thread pool.
#ifndef MS_BCE_CPU_CHUNKS_H_
#define MS_BCE_CPU_CHUNKS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>

#include "broadcast.h"
#include "parallel.h"
#include "segment.h"

namespace ms_bce {

// Work is split into chunks that depend only on the sizes: at least
// kChunkMin elements each (below that, one thread does everything) and at
// most kMaxChunks; fewer when the chunks' gradient sums of a large broadcast
// operand would exceed a quarter of the input's element count.
constexpr int64_t kChunkMin = int64_t{1} << 16;
constexpr int64_t kMaxChunks = 64;

inline int64_t chunk_count(int64_t n, const OperandInfo *reduced, int n_reduced) {
  int64_t chunks = std::min(kMaxChunks, std::max<int64_t>(1, n / kChunkMin));
  const int64_t budget = std::max<int64_t>(n / 4, int64_t{1} << 20);
  for (int k = 0; k < n_reduced; ++k) {
    const OperandInfo &info = reduced[k];
    if (info.kind == OperandKind::kGeneral && !info.monotone) {
      chunks = std::min(chunks, std::max<int64_t>(1, budget / std::max<int64_t>(1, info.numel)));
    }
  }
  return chunks;
}

// Chunk c covers flat indices [begin, end); chunk sizes are multiples of kSegment.
inline void chunk_range(int64_t n, int64_t chunks, int64_t c, int64_t *begin, int64_t *end) {
  const int64_t per = ((n + chunks - 1) / chunks + kSegment - 1) / kSegment * kSegment;
  *begin = std::min(n, c * per);
  *end = std::min(n, (c + 1) * per);
}

// Runs body(c) for every chunk on the kernel thread pool; the first nonzero
// Status (or exception) is returned.
template <class Body>
int run_chunks(int64_t chunks, Body &&body) {
  std::atomic<int> status{kOk};
  parallel_for(chunks, num_threads(), [&](int64_t c) {
    try {
      body(c);
    } catch (const std::bad_alloc &) {
      status.store(kNoMemory);
    } catch (...) {
      status.store(kInternal);
    }
  });
  return status.load();
}

}  // namespace ms_bce

#endif  // MS_BCE_CPU_CHUNKS_H_
