// BCEWithLogitsLoss on the GPU: its entry points (losses.def's
// bce_with_logits line: every direction, reduction and operand set).  The
// maths is bce_math.cuh's BceWithLogits (the CPU library's, in double); the
// entry-point logic is driver.cuh's, launched by cuda_backend.cuh on
// MindSpore's stream.
#include "cuda_backend.cuh"

#define MS_BCE_EXPORTS_bce_with_logits MS_BCE_SELECTED
#include "../common/export_losses.inc"
