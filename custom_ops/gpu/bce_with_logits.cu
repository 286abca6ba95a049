// BCEWithLogitsLoss on the GPU: forward per reduction, the fused backward
// (gradients of logits, target, weight and pos_weight) and backward_input
// (logits only), for every operand set.  The maths is bce_math.cuh's
// BceWithLogits (the CPU library's, in double); the entry-point logic is
// driver.cuh's, launched by cuda_backend.cuh on MindSpore's stream.
#include "cuda_backend.cuh"

// bce_with_logits_{forward,backward,backward_input,backward_target[,backward_weight][,backward_pos_weight]}_{none,mean,sum}{,_w,_p,_wp}
MS_BCE_GPU_EXPORT_REDUCTIONS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, false, false, )
MS_BCE_GPU_EXPORT_REDUCTIONS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, true, false, _w)
MS_BCE_GPU_EXPORT_REDUCTIONS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, false, true, _p)
MS_BCE_GPU_EXPORT_REDUCTIONS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, true, true, _wp)
MS_BCE_GPU_EXPORT_WEIGHT_GRADIENTS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, true, false, _w)
MS_BCE_GPU_EXPORT_WEIGHT_GRADIENTS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, true, true, _wp)
MS_BCE_GPU_EXPORT_POS_WEIGHT_GRADIENTS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, false, true, _p)
MS_BCE_GPU_EXPORT_POS_WEIGHT_GRADIENTS(ms_bce::gpu::CudaBackend, ms_bce::gpu::BceWithLogits, bce_with_logits, true, true, _wp)
