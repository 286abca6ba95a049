// BCELoss (binary cross entropy on probabilities) on the GPU: forward per
// reduction, the fused backward (gradients of probabilities, targets and
// weight) and backward_input (probabilities only).  The maths is
// bce_math.cuh's Bce (MindSpore 2.10's rule in float32 per element, as the
// CPU library computes it); the entry-point logic is driver.cuh's.
#include "cuda_backend.cuh"

// bce_{forward,backward,backward_input,backward_target[,backward_weight][,backward_pos_weight]}_{none,mean,sum}{,_w}
MS_BCE_GPU_EXPORT_REDUCTIONS(ms_bce::gpu::CudaBackend, ms_bce::gpu::Bce, bce, false, false, )
MS_BCE_GPU_EXPORT_REDUCTIONS(ms_bce::gpu::CudaBackend, ms_bce::gpu::Bce, bce, true, false, _w)
MS_BCE_GPU_EXPORT_WEIGHT_GRADIENTS(ms_bce::gpu::CudaBackend, ms_bce::gpu::Bce, bce, true, false, _w)
