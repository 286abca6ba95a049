// The sigmoid focal loss on the GPU: its entry points (losses.def's
// sigmoid_focal line: every direction, reduction and operand set).  The maths
// is bce_math.cuh's SigmoidFocal (the CPU library's, in double); its scalar
// parameters (alpha, gamma) are the t operand, in device memory.
#include "cuda_backend.cuh"

#define MS_BCE_EXPORTS_sigmoid_focal MS_BCE_SELECTED
#include "../common/export_losses.inc"
