"""The loss registry: every loss ms_bce's kernels implement, once.

MindSpore-free (standard library only), so that the tools and tests that run
without MindSpore load it by path (``tests/abi.py``'s ``load_registry()``,
used by ``tools/sanitize_driver.py`` and ``tests/gpu_support.py``; and
``custom_ops/ascend/ops.py``) and see the same table as ``ms_bce._kernels``.  The
C++ side lists the same losses in ``custom_ops/common/losses.def`` (one line a
loss), from which the CPU and GPU libraries export their entry points;
``tests/test_registry.py`` checks the two agree with the exported symbols.

Entry points are named ``<loss>_<direction>_<reduction>[_<operands>]``:
``operands`` is ``w`` (weight), ``p`` (pos_weight), then ``m`` (a bool mask,
which every loss takes on the CPU and GPU: ``MASKS``), or empty.  Every
CPU/GPU entry point takes a last input t: the loss's scalar ``params`` and
then the drivers' ``OPTIONS`` (``scalars()``); the Ascend operators take
neither t nor a mask.
"""
import collections

REDUCTIONS = ("none", "mean", "sum")

# 'backward' is the fused kernel (every gradient, PyNative); the others give
# one gradient each (graph mode, which prunes the unused ones).
DIRECTIONS = ("forward", "backward", "backward_input", "backward_target", "backward_weight", "backward_pos_weight")

# the operand whose gradient a one-output backward gives
ONE_GRADIENT = {"backward_input": "input", "backward_target": "target", "backward_weight": "weight",
                "backward_pos_weight": "pos_weight"}

# The operands in kernel order; input and target are always present.
OPERANDS = ("input", "target", "weight", "pos_weight")

Loss = collections.namedtuple("Loss", [
    "name",          # the entry points' prefix: 'bce_with_logits'
    "display",       # the operator name in messages: 'BCEWithLogitsLoss'
    "optional",      # which of weight, pos_weight it takes
    "params",        # names of its scalar parameters (floats, e.g. a focal loss's gamma), in the order of
                     # the t operand that carries them (custom_ops/common/params.h; _kernels.params_tensor)
    "ascend",        # whether custom_ops/ascend implements it (a new loss may come to Ascend later)
])

LOSSES = {
    "bce_with_logits": Loss("bce_with_logits", "BCEWithLogitsLoss", ("weight", "pos_weight"), (), ascend=True),
    "bce": Loss("bce", "BCELoss", ("weight",), (), ascend=True),
    # torchvision's sigmoid_focal_loss over BCEWithLogitsLoss's cross entropy (element_math.h's SigmoidFocal)
    "sigmoid_focal": Loss("sigmoid_focal", "SigmoidFocalLoss", ("weight", "pos_weight"), ("alpha", "gamma"),
                          ascend=False),
}


# The drivers' own scalar options, which every loss takes: its t operand
# carries them after the loss's params (custom_ops/common/params.h, kOptions).
OPTIONS = ("label_smoothing",)


def scalars(loss):
    """The values of a loss's t operand, in order: its params, then OPTIONS."""
    return tuple(LOSSES[loss].params) + OPTIONS


def operand_sets(loss):
    """(has_weight, has_pos_weight) of every operand set the loss has kernels for."""
    opt = LOSSES[loss].optional
    return tuple((hw, hp) for hw in ((False, True) if "weight" in opt else (False,))
                 for hp in ((False, True) if "pos_weight" in opt else (False,)))


def directions(loss, has_weight, has_pos_weight):
    """The directions of one operand set: a one-output gradient exists for each present operand."""
    present = {"input", "target"} | ({"weight"} if has_weight else set()) | ({"pos_weight"} if has_pos_weight else set())
    return tuple(d for d in DIRECTIONS if d in ("forward", "backward") or ONE_GRADIENT[d] in present)


# Whether an entry point takes the mask operand (custom_ops/common/aot_abi.h):
# the CPU and GPU libraries have each operand set without and with one.
MASKS = (False, True)


def entry_name(loss, direction, reduction, has_weight, has_pos_weight, has_mask=False):
    """'<loss>_<direction>_<reduction>[_w][p][m]'."""
    ops = "w" * bool(has_weight) + "p" * bool(has_pos_weight) + "m" * bool(has_mask)
    return f"{loss}_{direction}_{reduction}" + (f"_{ops}" if ops else "")


def has_kernel(loss, direction, reduction, has_weight, has_pos_weight, has_mask=False):
    return (loss in LOSSES and reduction in REDUCTIONS and (bool(has_weight), bool(has_pos_weight)) in operand_sets(loss)
            and direction in directions(loss, has_weight, has_pos_weight) and bool(has_mask) in MASKS)


Entry = collections.namedtuple("Entry", "name loss direction reduction has_weight has_pos_weight has_mask",
                               defaults=(False,))


def entry_points(losses=None, directions_=None, masks=MASKS):
    """Every entry point of the CPU and GPU libraries (or of the given losses / directions;
    masks=(False,): those without a mask, the Ascend operators' set)."""
    out = []
    for hm in masks:
        for loss in losses or LOSSES:
            for hw, hp in operand_sets(loss):
                for d in directions(loss, hw, hp):
                    if directions_ is not None and d not in directions_:
                        continue
                    for r in REDUCTIONS:
                        out.append(Entry(entry_name(loss, d, r, hw, hp, hm), loss, d, r, hw, hp, hm))
    return out


def parse_entry(name):
    """The Entry an entry point's name stands for (ValueError if none)."""
    for e in entry_points():
        if e.name == name:
            return e
    raise ValueError(f"ms_bce has no entry point named {name!r}")


def n_operands(has_weight, has_pos_weight):
    """The operands with a gradient, x, y[, w][, p] (every loss takes t after them: scalars())."""
    return 2 + bool(has_weight) + bool(has_pos_weight)


def gradient_index(direction, has_weight):
    """Index among the present operands (x, y[, w][, p]) of a one-output backward's gradient."""
    return {"backward_input": 0, "backward_target": 1, "backward_weight": 2,
            "backward_pos_weight": 2 + bool(has_weight)}[direction]
