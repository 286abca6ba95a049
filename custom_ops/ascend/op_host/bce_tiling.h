// The tiling data of every ms_bce Ascend C operator (registered per operator
// type in the generated op_host/bce_ops.cpp).  Field for field the
// TilingPlan of bce_tiling_math.h; the kernel reads it with GET_TILING_DATA.
#ifndef MS_BCE_ASCEND_BCE_TILING_H_
#define MS_BCE_ASCEND_BCE_TILING_H_

#include "register/tilingdata_base.h"

namespace optiling {
BEGIN_TILING_DATA_DEF(BceTilingData)
TILING_DATA_FIELD_DEF(int64_t, n);
TILING_DATA_FIELD_DEF(int64_t, blockDim);
TILING_DATA_FIELD_DEF(int64_t, perCore);
TILING_DATA_FIELD_DEF(int64_t, tileLen);
TILING_DATA_FIELD_DEF(int32_t, rank);
TILING_DATA_FIELD_DEF(int32_t, wMode);
TILING_DATA_FIELD_DEF_ARR(int64_t, 16, extent);
TILING_DATA_FIELD_DEF_ARR(int64_t, 16, wStride);
TILING_DATA_FIELD_DEF_ARR(int64_t, 16, pStride);
TILING_DATA_FIELD_DEF(int64_t, wNumel);
TILING_DATA_FIELD_DEF(int64_t, pNumel);
TILING_DATA_FIELD_DEF(int32_t, pMode);
TILING_DATA_FIELD_DEF(int32_t, dwMode);
TILING_DATA_FIELD_DEF(int32_t, dpMode);
TILING_DATA_FIELD_DEF(int32_t, reserved);
TILING_DATA_FIELD_DEF(int64_t, wsLoss);
TILING_DATA_FIELD_DEF(int64_t, wsDw);
TILING_DATA_FIELD_DEF(int64_t, wsDp);
TILING_DATA_FIELD_DEF(int64_t, wSlot);
TILING_DATA_FIELD_DEF(int64_t, pSlot);
END_TILING_DATA_DEF;
}  // namespace optiling

#endif  // MS_BCE_ASCEND_BCE_TILING_H_
