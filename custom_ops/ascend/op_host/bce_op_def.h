// What every ms_bce Ascend C operator shares on the host: its definition
// (dtypes, formats, targets), shape and dtype inference, and the tiling
// function, which runs bce_tiling_math.h's MakeTiling and stores the plan.
// The operators themselves (one class per entry point, naming its inputs and
// outputs) are generated into op_host/bce_ops.cpp by custom_ops/ascend/ops.py
// when build.sh runs.
//
// NOT COMPILED in this repository's CI (no CANN toolkit): see
// custom_ops/ascend/README.md.
#ifndef MS_BCE_ASCEND_BCE_OP_DEF_H_
#define MS_BCE_ASCEND_BCE_OP_DEF_H_

#include <initializer_list>

#include "bce_tiling.h"
#include "bce_tiling_math.h"
#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

namespace ms_bce_ascend {

inline Dims InputDims(gert::TilingContext *context, int index) {
  const gert::Shape &shape = context->GetInputShape(index)->GetStorageShape();
  Dims d;
  d.rank = static_cast<int32_t>(shape.GetDimNum());
  for (int32_t i = 0; i < d.rank && i < kMaxDims; ++i) d.d[i] = shape.GetDim(i);
  return d;
}

template <int32_t DIR, int32_t RED, bool HW, bool HP>
ge::graphStatus BceTiling(gert::TilingContext *context) {
  const Dims x = InputDims(context, 0), y = InputDims(context, 1);
  Dims w, p;
  if (HW) w = InputDims(context, 2);
  if (HP) p = InputDims(context, 2 + HW);
  if (x.rank > kMaxDims) return ge::GRAPH_FAILED;
  const ge::DataType dtype = context->GetInputDesc(0)->GetDataType();
  const int dtypeBytes = dtype == ge::DT_FLOAT ? 4 : 2;
  auto platform = platform_ascendc::PlatformAscendC(context->GetPlatformInfo());
  uint64_t ub = 0;
  platform.GetCoreMemSize(platform_ascendc::CoreMemType::UB, ub);
  TilingPlan plan;
  if (MakeTiling(x, y, HW ? &w : nullptr, HP ? &p : nullptr, DIR, RED, dtypeBytes,
                 static_cast<int64_t>(platform.GetCoreNumAiv()), static_cast<int64_t>(ub), &plan) != nullptr) {
    return ge::GRAPH_FAILED;  // shapes the Python layer would have refused
  }
  optiling::BceTilingData t;
  t.set_n(plan.n);
  t.set_blockDim(plan.blockDim);
  t.set_perCore(plan.perCore);
  t.set_tileLen(plan.tileLen);
  t.set_rank(plan.rank);
  t.set_wMode(plan.wMode);
  t.set_extent(plan.extent);
  t.set_wStride(plan.wStride);
  t.set_pStride(plan.pStride);
  t.set_wNumel(plan.wNumel);
  t.set_pNumel(plan.pNumel);
  t.set_pMode(plan.pMode);
  t.set_dwMode(plan.dwMode);
  t.set_dpMode(plan.dpMode);
  t.set_reserved(0);
  t.set_wsLoss(plan.wsLoss);
  t.set_wsDw(plan.wsDw);
  t.set_wsDp(plan.wsDp);
  t.set_wSlot(plan.wSlot);
  t.set_pSlot(plan.pSlot);
  t.SaveToBuffer(context->GetRawTilingData()->GetData(), context->GetRawTilingData()->GetCapacity());
  context->GetRawTilingData()->SetDataSize(t.GetDataSize());
  context->SetBlockDim(static_cast<uint32_t>(plan.blockDim));
  size_t *workspace = context->GetWorkspaceSizes(1);
  workspace[0] = platform.GetLibApiWorkSpaceSize() + static_cast<size_t>(plan.wsBytes);  // SyncAll's + ours
  return ge::GRAPH_SUCCESS;
}

// forward: the input's shape for 'none', 0-d otherwise; backward: each
// gradient has its operand's shape
template <int32_t DIR, int32_t RED, bool HW, bool HP>
ge::graphStatus BceInferShape(gert::InferShapeContext *context) {
  if (DIR == kForward) {
    gert::Shape *out = context->GetOutputShape(0);
    if (RED == kNone) *out = *context->GetInputShape(0);
    else out->SetDimNum(0);
    return ge::GRAPH_SUCCESS;
  }
  for (int k = 0; k < 2 + HW + HP; ++k) *context->GetOutputShape(k) = *context->GetInputShape(k);
  return ge::GRAPH_SUCCESS;
}

inline ge::graphStatus BceInferDataType(gert::InferDataTypeContext *context) {
  const ge::DataType dtype = context->GetInputDataType(0);
  for (size_t k = 0; k < context->GetComputeNodeOutputNum(); ++k) context->SetOutputDataType(k, dtype);
  return ge::GRAPH_SUCCESS;
}

using TilingFn = ge::graphStatus (*)(gert::TilingContext *);
using InferShapeFn = ge::graphStatus (*)(gert::InferShapeContext *);

// The generated class names the inputs, x, target[, weight][, pos_weight]
// [, dout], and the outputs, y or dx, dtarget[, dweight][, dpos_weight]: the
// names ms_bce/_kernels.py registers (ascend_io_names).  float16, float32,
// bfloat16, all one dtype.
class BceOpDef : public ops::OpDef {
 public:
  BceOpDef(const char *name, std::initializer_list<const char *> inputs, std::initializer_list<const char *> outputs,
           TilingFn tiling, InferShapeFn infer)
      : ops::OpDef(name) {
    for (const char *input : inputs) Tensor(this->Input(input));
    for (const char *output : outputs) Tensor(this->Output(output));
    this->SetInferShape(infer).SetInferDataType(BceInferDataType);
    this->AICore().SetTiling(tiling);
    this->AICore().AddConfig("ascend910b");
    this->AICore().AddConfig("ascend910_93");
  }

 private:
  static void Tensor(ops::OpParamDef &param) {
    param.ParamType(ops::REQUIRED)
        .DataType({ge::DT_FLOAT16, ge::DT_FLOAT, ge::DT_BF16})
        .Format({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND})
        .UnknownShapeFormat({ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND});
  }
};

}  // namespace ms_bce_ascend

#endif  // MS_BCE_ASCEND_BCE_OP_DEF_H_
