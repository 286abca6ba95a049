// BCELoss (binary cross entropy on probabilities) on the GPU: its entry
// points (losses.def's bce line: every direction, reduction and operand set).
// The maths is bce_math.cuh's Bce (MindSpore 2.10's rule in float32 per
// element, as the CPU library computes it); the entry-point logic is
// driver.cuh's, launched by cuda_backend.cuh on MindSpore's stream.
#include "cuda_backend.cuh"

#define MS_BCE_EXPORTS_bce MS_BCE_SELECTED
#include "../common/export_losses.inc"
