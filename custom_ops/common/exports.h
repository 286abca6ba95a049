// The preprocessor side of the entry points: one macro that defines every
// entry point of a loss (for each operand set, direction and reduction) and
// its InferShape function, named <loss>_<direction>_<reduction>[_<w><p><m>]
// as ms_bce/_losses.py's entry_points() lists them.  Host-only C++17.
//
// A library supplies a runner class whose static member template
//   Runner::run<Policy, Direction, Reduction, HW, HP, HM>(nparam, params, ndims, shapes, dtypes, stream, extra)
// is the kernel; InferShape is the same for every library (infer_shape.h).
#ifndef MS_BCE_COMMON_EXPORTS_H_
#define MS_BCE_COMMON_EXPORTS_H_

#include "aot_abi.h"
#include "infer_shape.h"
#include "params.h"

#define MS_BCE_PP_IF_0(...)
#define MS_BCE_PP_IF_1(...) __VA_ARGS__
#define MS_BCE_PP_CAT(a, b) MS_BCE_PP_CAT_(a, b)
#define MS_BCE_PP_CAT_(a, b) a##b
#define MS_BCE_PP_SECOND(a, b, ...) b

// One entry point and its InferShape function.
#define MS_BCE_EXPORT_ENTRY(Runner, Policy, name, D, R, HW, HP, HM)                                                  \
  MS_BCE_KERNEL(name) {                                                                                           \
    return Runner::run<Policy, ms_bce::Direction::D, ms_bce::Reduction::R, HW, HP, HM>(nparam, params, ndims,     \
                                                                                      shapes, dtypes, stream, extra); \
  }                                                                                                               \
  MS_BCE_INFER(D, name) {                                                                                         \
    (void)extra;                                                                                                  \
    return ms_bce::infer_shape<ms_bce::Direction::D, ms_bce::Reduction::R>(                                       \
        Policy::kName, ms_bce::kOperandsOf<Policy, HW, HP, HM>, ndims, shapes);                                   \
  }

#define MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, direction, D, HW, HP, HM, suffix)             \
  MS_BCE_EXPORT_ENTRY(Runner, Policy, prefix##_##direction##_none##suffix, D, kNone, HW, HP, HM) \
  MS_BCE_EXPORT_ENTRY(Runner, Policy, prefix##_##direction##_mean##suffix, D, kMean, HW, HP, HM) \
  MS_BCE_EXPORT_ENTRY(Runner, Policy, prefix##_##direction##_sum##suffix, D, kSum, HW, HP, HM)

// The entry points of one operand set (W, P, M: 0 or 1): a one-output
// gradient for each operand present but the mask, which has none.
#define MS_BCE_EXPORT_OPERAND_SET(Runner, Policy, prefix, W, P, M, suffix)                                         \
  MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, forward, kForward, (W != 0), (P != 0), (M != 0), suffix)         \
  MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, backward, kBackward, (W != 0), (P != 0), (M != 0), suffix)       \
  MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, backward_input, kBackwardInput, (W != 0), (P != 0), (M != 0),    \
                          suffix)                                                                                  \
  MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, backward_target, kBackwardTarget, (W != 0), (P != 0), (M != 0),  \
                          suffix)                                                                                  \
  MS_BCE_PP_IF_##W(MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, backward_weight, kBackwardWeight, (W != 0),     \
                                           (P != 0), (M != 0), suffix))                                            \
  MS_BCE_PP_IF_##P(MS_BCE_EXPORT_DIRECTION(Runner, Policy, prefix, backward_pos_weight, kBackwardPosWeight,        \
                                           (W != 0), (P != 0), (M != 0), suffix))

// The operand sets of one mask choice (M: 0 or 1; suffixes without and with
// the mask's letter m).
#define MS_BCE_EXPORT_MASK(Runner, Policy, prefix, weight, pos_weight, M, s0, sw, sp, swp)        \
  MS_BCE_EXPORT_OPERAND_SET(Runner, Policy, prefix, 0, 0, M, s0)                                \
  MS_BCE_PP_IF_##weight(MS_BCE_EXPORT_OPERAND_SET(Runner, Policy, prefix, 1, 0, M, sw))         \
  MS_BCE_PP_IF_##pos_weight(MS_BCE_EXPORT_OPERAND_SET(Runner, Policy, prefix, 0, 1, M, sp))     \
  MS_BCE_PP_IF_##weight(MS_BCE_PP_IF_##pos_weight(MS_BCE_EXPORT_OPERAND_SET(Runner, Policy, prefix, 1, 1, M, swp)))

// Every entry point of one loss (weight, pos_weight: 1 when it takes that
// optional operand): each combination of the optional operands it takes,
// without a mask and with one (every loss takes a mask).
#define MS_BCE_EXPORT_LOSS(Runner, Policy, prefix, weight, pos_weight)                      \
  MS_BCE_EXPORT_MASK(Runner, Policy, prefix, weight, pos_weight, 0, , _w, _p, _wp)           \
  MS_BCE_EXPORT_MASK(Runner, Policy, prefix, weight, pos_weight, 1, _m, _wm, _pm, _wpm)

// Which losses.def lines a translation unit exports: each library keeps a
// loss's kernels in the file that defines its policy, which selects its line
// with `#define MS_BCE_EXPORTS_<name> MS_BCE_SELECTED`; a unit that defines
// MS_BCE_EXPORT_EVERY_LOSS exports them all.  (A selected name expands to
// "~, 1", so MS_BCE_PP_SECOND picks 1; any other name stays one token and
// MS_BCE_PP_SECOND picks the 0 after it.)
#define MS_BCE_SELECTED ~, 1
#if defined(MS_BCE_EXPORT_EVERY_LOSS)
#define MS_BCE_WHEN_SELECTED(name, ...) __VA_ARGS__
#else
#define MS_BCE_WHEN_SELECTED(name, ...) \
  MS_BCE_PP_CAT(MS_BCE_PP_IF_, MS_BCE_PP_IS_SELECTED(MS_BCE_EXPORTS_##name))(__VA_ARGS__)
#define MS_BCE_PP_IS_SELECTED(flag) MS_BCE_PP_SECOND(flag, 0, ~)
#endif

#endif  // MS_BCE_COMMON_EXPORTS_H_
