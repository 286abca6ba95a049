"""The error table of the spec, once, in MindSpore's wording.

Every public name runs these checks at the call, before any kernel is
launched: in PyNative directly, in graph mode while the graph compiles (the
functions below are parsed with constant arguments: types, dtypes, strings;
``check_shapes`` is a ``constexpr``, run at compile time with the static
shapes, None for a size known only at run time).  With dynamic shapes the
C++ InferShape checks the real shapes when they are known and raises a
RuntimeError with the same message.

The type checks must come first: a non-Tensor argument handed to a MindSpore
``Custom`` primitive crashes the process (seen with MindSpore 2.10).

``check_parallel_mode`` is not in the spec's table: it refuses the parallel
modes in which MindSpore would shard the loss itself (see docs/design.md).
"""
import math

from mindspore import Tensor, get_auto_parallel_context
from mindspore import dtype as mstype
from mindspore.ops import constexpr

# the kernels' reductions, then ms_bce's own: sum(L) / sum(W) (ops._weighted_mean)
REDUCTIONS = ("none", "mean", "sum", "weighted_mean")
_REDUCTIONS_TEXT = str(list(REDUCTIONS))  # (an f-string of the list renders otherwise in graph mode)

# The kernels' rank limit (custom_ops/cpu/common.h: kMaxRank).
MAX_RANK = 16

FLOAT16_32 = (mstype.float16, mstype.float32)
FLOAT16_32_BF16 = (mstype.float16, mstype.float32, mstype.bfloat16)

# Parallel modes in which MindSpore shards each operator by a strategy: ms_bce's
# Custom operators have none (data parallelism needs none: the loss runs whole
# on each worker's rows, and only the parameters' gradients are all-reduced).
SHARDING_PARALLEL_MODES = ("semi_auto_parallel", "auto_parallel")


def dtype_name(dtype):
    """'float32' for mstype.float32 (MindSpore prints 'Float32')."""
    return str(dtype).lower()


def type_name(value):
    """The name of a Python value's type, for messages."""
    return type(value).__name__


def check_reduction(op_name, reduction):
    """TypeError unless a str; ValueError unless one of REDUCTIONS."""
    if not isinstance(reduction, str):
        raise TypeError(f"For '{op_name}', 'reduction' must be a str, but got {type_name(reduction)}.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"For '{op_name}', 'reduction' must be one of {_REDUCTIONS_TEXT}, "
                         f"but got '{reduction}'.")


def check_float(op_name, arg_name, value, minimum=None):
    """A scalar hyper-parameter: TypeError unless an int or float (bool
    refused), ValueError unless finite and, given minimum, >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"For '{op_name}', '{arg_name}' must be a float, but got {type_name(value)}.")
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "a finite float" + ("" if minimum is None else f" >= {minimum}")
        raise ValueError(f"For '{op_name}', '{arg_name}' must be {bound}, but got {value!r}.")


def check_label_smoothing(op_name, value):
    """label_smoothing: TypeError unless an int or float (bool refused),
    ValueError unless in [0, 1] (NaN refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"For '{op_name}', 'label_smoothing' must be a float, but got {type_name(value)}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"For '{op_name}', 'label_smoothing' must be in [0, 1], but got {value!r}.")


def check_tensor(op_name, arg_name, value):
    """TypeError unless value is a mindspore.Tensor (a Parameter is one)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"For '{op_name}', '{arg_name}' must be a Tensor, but got {type_name(value)}.")


def check_optional_tensor(op_name, arg_name, value):
    """As check_tensor, with None allowed."""
    if value is not None:
        check_tensor(op_name, arg_name, value)


def check_class_weight(op_name, arg_name, value):
    """TypeError unless None, a Tensor, an int or a float (not a bool):
    multilabel_soft_margin_loss's per-class weight."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (Tensor, int, float))):
        raise TypeError(f"For '{op_name}', '{arg_name}' must be a Tensor, int or float, but got {type_name(value)}.")


def check_initialized(op_name, names, *tensors):
    """ValueError for a Tensor created with an initializer and not yet
    initialised (PyNative): it has no data, and a Custom operator would read
    whatever memory it was given (MindSpore's own operators refuse it too)."""
    for name, value in zip(names, tensors):
        if value is not None and value.has_init:
            raise ValueError(f"For '{op_name}', '{name}' is an uninitialized Tensor (created with an initializer): "
                             "call its init_data() before passing it.")


def check_dtype(op_name, arg_name, dtype, allowed):
    """TypeError unless dtype is one of allowed."""
    if dtype not in allowed:
        names = ", ".join(dtype_name(d) for d in allowed)
        raise TypeError(f"For '{op_name}', the dtype of '{arg_name}' must be one of [{names}], "
                        f"but got {dtype_name(dtype)}.")


def check_same_dtype(op_name, arg_name, dtype, ref_name, ref_dtype):
    """TypeError unless dtype equals ref_dtype (the BCELoss family's rule)."""
    if dtype != ref_dtype:
        raise TypeError(f"For '{op_name}', the dtype of '{arg_name}' must be the same as the dtype of "
                        f"'{ref_name}' ({dtype_name(ref_dtype)}), but got {dtype_name(dtype)}.")


def check_loss_args(op_name, names, allowed, input, target, weight, pos_weight, reduction, same_dtype):
    """The whole error table for one call of a loss: reduction, Tensor-ness,
    dtypes (each in `allowed`; with same_dtype, all equal to input's), shapes.
    names: how this API calls input, target, weight, pos_weight."""
    check_parallel_mode(op_name)
    check_reduction(op_name, reduction)
    check_tensor(op_name, names[0], input)
    check_tensor(op_name, names[1], target)
    check_optional_tensor(op_name, names[2], weight)
    check_optional_tensor(op_name, names[3], pos_weight)
    if not compiling(compile_marker):
        check_initialized(op_name, names, input, target, weight, pos_weight)
    check_dtype(op_name, names[0], input.dtype, allowed)
    check_dtype(op_name, names[1], target.dtype, allowed)
    if same_dtype:
        check_same_dtype(op_name, names[1], target.dtype, names[0], input.dtype)
    if weight is not None:
        check_dtype(op_name, names[2], weight.dtype, allowed)
        if same_dtype:
            check_same_dtype(op_name, names[2], weight.dtype, names[0], input.dtype)
    if pos_weight is not None:
        check_dtype(op_name, names[3], pos_weight.dtype, allowed)
    check_shapes(op_name, names, input.shape, target.shape,
                 None if weight is None else weight.shape,
                 None if pos_weight is None else pos_weight.shape,
                 compiling(compile_marker))


def check_multilabel_args(op_name, names, input, target, weight, reduction):
    """multilabel_soft_margin_loss's checks before its weight becomes a Tensor
    of the operands' dtype: reduction, Tensor-ness, weight's type, the dtypes
    of input and target, input's rank (at least 1: the classes are its last
    axis).  The rest (weight's dtype, shapes) is check_loss_args's.
    names: how this API calls input, target, weight."""
    check_reduction(op_name, reduction)
    check_tensor(op_name, names[0], input)
    check_tensor(op_name, names[1], target)
    check_class_weight(op_name, names[2], weight)
    check_dtype(op_name, names[0], input.dtype, FLOAT16_32_BF16)
    check_dtype(op_name, names[1], target.dtype, FLOAT16_32_BF16)
    check_min_rank(op_name, names[0], input.shape, 1)


@constexpr
def check_min_rank(op_name, arg_name, shape, rank):
    """ValueError if the rank of shape is known and below rank."""
    if shape is not None and not (len(shape) == 1 and shape[0] == -2) and len(shape) < rank:
        raise ValueError(f"For '{op_name}', the rank of '{arg_name}' must be at least {rank}, but got {len(shape)}.")


@constexpr(check=False)
def compiling(func):
    """True while a graph compiles (GRAPH_MODE, ms.jit), False in PyNative: a
    constexpr sees a function argument as no constant value (None) only then."""
    return func is None


def compile_marker():
    return 0


def widest_float(dtypes):
    """The dtype all operands are computed in: float32 if any operand is
    float32 or float16 meets bfloat16, else their common 16-bit dtype."""
    first = dtypes[0]
    for d in dtypes:
        if d == mstype.float32 or d != first:
            return mstype.float32
    return first


def shape_text(shape):
    """(2, 3) for [2, 3]; None stands for a size known only at run time."""
    return str(tuple(None if _unknown(d) else d for d in shape))


def _unknown(dim):
    """Graph mode gives None (or -1) for a size known only at run time."""
    return dim is None or dim < 0


def _same_shape(shape, ref):
    """False only when the shapes certainly differ."""
    if shape is None or ref is None:  # rank unknown until run time
        return True
    return len(shape) == len(ref) and all(a == b or _unknown(a) or _unknown(b) for a, b in zip(shape, ref))


def _broadcasts_to(shape, ref):
    """numpy.broadcast_to(operand, ref) rules; False only when it certainly fails."""
    if shape is None or ref is None:
        return True
    if len(shape) > len(ref):
        return False
    lead = len(ref) - len(shape)
    return all(d == 1 or d == ref[lead + i] or _unknown(d) or _unknown(ref[lead + i]) for i, d in enumerate(shape))


@constexpr
def check_shapes(op_name, names, input_shape, target_shape, weight_shape, pos_weight_shape, dynamic_ok=True):
    """ValueError unless target has input's shape and weight and pos_weight
    (None: not given) broadcast to it, and input's rank is within the kernels'
    limit.  names: the four arguments' names.  dynamic_ok: sizes known only at
    run time are allowed (a graph compiling); in PyNative every Tensor must
    hold data, and one created with shape=[None, ...] (a placeholder for
    Cell.set_inputs) would reach the kernel with a negative size."""
    if not dynamic_ok:
        for name, shape in zip(names, (input_shape, target_shape, weight_shape, pos_weight_shape)):
            if shape is not None and any(_unknown(d) for d in shape):
                raise ValueError(f"For '{op_name}', the shape of '{name}' {shape_text(shape)} has a dimension of "
                                 "unknown size: in PyNative mode every input must hold data (a Tensor created with "
                                 "shape=[None, ...] is only a placeholder for Cell.set_inputs in graph mode).")
    if input_shape is not None and len(input_shape) > MAX_RANK:
        raise ValueError(f"For '{op_name}', the rank of '{names[0]}' must be at most {MAX_RANK}, "
                         f"but got {len(input_shape)}.")
    if not _same_shape(target_shape, input_shape):
        raise ValueError(f"For '{op_name}', the shape of '{names[1]}' must be the same as the shape of "
                         f"'{names[0]}' {shape_text(input_shape)}, but got {shape_text(target_shape)}.")
    for name, shape in ((names[2], weight_shape), (names[3], pos_weight_shape)):
        if shape is not None and not _broadcasts_to(shape, input_shape):
            raise ValueError(f"For '{op_name}', the shape of '{name}' {shape_text(shape)} can not broadcast "
                             f"to the shape of '{names[0]}' {shape_text(input_shape)}.")


MASK_DTYPES = (mstype.bool_,) + FLOAT16_32_BF16


def check_mask(op_name, input_name, mask, input):
    """mask: None, or a bool (or float 0/1) Tensor broadcastable to the shape
    of input (TypeError / ValueError, MindSpore's wording)."""
    if mask is None:
        return
    check_tensor(op_name, "mask", mask)
    if not compiling(compile_marker):
        check_initialized(op_name, ("mask",), mask)
    check_dtype(op_name, "mask", mask.dtype, MASK_DTYPES)
    check_mask_shape(op_name, input_name, mask.shape, input.shape, compiling(compile_marker))


@constexpr
def check_mask_shape(op_name, input_name, mask_shape, input_shape, dynamic_ok=True):
    """ValueError unless the mask broadcasts to the input (check_shapes' rules)."""
    if not dynamic_ok and any(_unknown(d) for d in mask_shape):
        raise ValueError(f"For '{op_name}', the shape of 'mask' {shape_text(mask_shape)} has a dimension of "
                         "unknown size: in PyNative mode every input must hold data.")
    if not _broadcasts_to(mask_shape, input_shape):
        raise ValueError(f"For '{op_name}', the shape of 'mask' {shape_text(mask_shape)} can not broadcast "
                         f"to the shape of '{input_name}' {shape_text(input_shape)}.")


@constexpr
def check_parallel_mode(op_name):
    """RuntimeError under SEMI_AUTO_PARALLEL or AUTO_PARALLEL, saying what is
    supported.  A constexpr, so graph mode runs it (in Python) while the graph
    compiles, before MindSpore's parallel passes look at the operators."""
    mode = get_auto_parallel_context("parallel_mode")
    if mode in SHARDING_PARALLEL_MODES:
        raise RuntimeError(
            f"For '{op_name}', the parallel mode '{mode}' is not supported: ms_bce's Custom operators have "
            "no sharding strategy. Use ParallelMode.DATA_PARALLEL (with gradients_mean=True; each worker "
            "computes the loss on its own part of the batch) or stand-alone training. (MindSpore 2.10 runs "
            "semi_auto_parallel and auto_parallel only on Ascend and GPU.)")


@constexpr
def check_options_device(op_name, label_smoothing, has_mask=False):
    """True where the kernels take the t operand (CPU, GPU); on Ascend, whose
    operators take none (and no mask), False, and a RuntimeError for an option
    in use.  A constexpr: graph mode decides while the graph compiles."""
    from ._kernels import device_target  # (MindSpore-bound; imported on use)
    if device_target() != "Ascend":
        return True
    for name, used in (("label_smoothing", label_smoothing), ("mask", has_mask)):
        if used:
            raise RuntimeError(f"For '{op_name}', '{name}' is not supported on Ascend yet; "
                               "use the CPU or GPU device target.")
    return False


@constexpr
def accumulation_dtype():
    """float64 where MindSpore computes in it (CPU, GPU), float32 on Ascend
    (no float64 there): the dtype of weighted_mean's denominator."""
    from ._kernels import device_target  # (MindSpore-bound; imported on use)
    return mstype.float32 if device_target() == "Ascend" else mstype.float64


# ------------------------------------------- fused linear + BCE-with-logits ---

TARGET_DTYPES = (mstype.bool_,) + FLOAT16_32_BF16


def check_chunk_size(op_name, chunk_size):
    """chunk_size: None, or an int >= 1 (a bool refused)."""
    if chunk_size is None:
        return
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"For '{op_name}', 'chunk_size' must be an int or None, but got {type_name(chunk_size)}.")
    if chunk_size < 1:
        raise ValueError(f"For '{op_name}', 'chunk_size' must be an int >= 1, but got {chunk_size}.")


def check_linear_args(op_name, input, weight, target, bias, pos_weight, reduction, chunk_size):
    """The error table of the fused linear + BCE-with-logits: reduction,
    chunk_size, Tensor-ness, dtypes (input, weight, bias, pos_weight float16 or
    float32 -- what MindSpore's CPU MatMul takes; target also bool or
    bfloat16), then the shapes (check_linear_shapes)."""
    check_parallel_mode(op_name)
    check_reduction(op_name, reduction)
    check_chunk_size(op_name, chunk_size)
    check_tensor(op_name, "input", input)
    check_tensor(op_name, "weight", weight)
    check_tensor(op_name, "target", target)
    check_optional_tensor(op_name, "bias", bias)
    check_optional_tensor(op_name, "pos_weight", pos_weight)
    names = ("input", "weight", "target", "bias", "pos_weight")
    if not compiling(compile_marker):
        check_initialized(op_name, names, input, weight, target, bias, pos_weight)
    check_dtype(op_name, "input", input.dtype, FLOAT16_32)
    check_dtype(op_name, "weight", weight.dtype, FLOAT16_32)
    check_dtype(op_name, "target", target.dtype, TARGET_DTYPES)
    if bias is not None:
        check_dtype(op_name, "bias", bias.dtype, FLOAT16_32)
    if pos_weight is not None:
        check_dtype(op_name, "pos_weight", pos_weight.dtype, FLOAT16_32)
    check_linear_shapes(op_name, input.shape, weight.shape, target.shape,
                        None if bias is None else bias.shape,
                        None if pos_weight is None else pos_weight.shape,
                        compiling(compile_marker))


@constexpr
def check_linear_shapes(op_name, input_shape, weight_shape, target_shape, bias_shape, pos_weight_shape,
                        dynamic_ok=True):
    """ValueError unless input is (N, H), weight (C, H), target (N, C), bias
    (C,) and pos_weight broadcastable to (N, C); each message names the
    shapes of the three operands.  Sizes known only at run time (None) pass
    in a graph (check_shapes' rule), not in PyNative."""
    got = (f"but got 'input' {shape_text(input_shape)}, 'weight' {shape_text(weight_shape)} and "
           f"'target' {shape_text(target_shape)}.")
    if not dynamic_ok:
        for name, shape in (("input", input_shape), ("weight", weight_shape), ("target", target_shape),
                            ("bias", bias_shape), ("pos_weight", pos_weight_shape)):
            if shape is not None and any(_unknown(d) for d in shape):
                raise ValueError(f"For '{op_name}', the shape of '{name}' {shape_text(shape)} has a dimension of "
                                 "unknown size: in PyNative mode every input must hold data.")
    if len(input_shape) != 2:
        raise ValueError(f"For '{op_name}', the 'input' must be 2-D, (N, H), " + got)
    if len(weight_shape) != 2 or not _same_shape(weight_shape[1:], input_shape[1:]):
        raise ValueError(f"For '{op_name}', the 'weight' must be 2-D, (C, H) with H the last dimension of "
                         f"'input', " + got)
    if not _same_shape(target_shape, (input_shape[0], weight_shape[0])):
        raise ValueError(f"For '{op_name}', the shape of 'target' must be (N, C) = "
                         f"{shape_text((input_shape[0], weight_shape[0]))}, the rows of 'input' and of "
                         f"'weight', " + got)
    if bias_shape is not None and not _same_shape(bias_shape, weight_shape[:1]):
        raise ValueError(f"For '{op_name}', the shape of 'bias' must be (C,) = {shape_text(weight_shape[:1])}, "
                         f"but got {shape_text(bias_shape)} (with 'input' {shape_text(input_shape)}, 'weight' "
                         f"{shape_text(weight_shape)} and 'target' {shape_text(target_shape)}).")
    if pos_weight_shape is not None and not _broadcasts_to(pos_weight_shape, target_shape):
        raise ValueError(f"For '{op_name}', the shape of 'pos_weight' {shape_text(pos_weight_shape)} can not "
                         f"broadcast to the shape of 'target' {shape_text(target_shape)} (with 'input' "
                         f"{shape_text(input_shape)} and 'weight' {shape_text(weight_shape)}).")


@constexpr
def check_not_ascend(op_name):
    """RuntimeError on Ascend, where the fused linear loss is not verified yet."""
    from ._kernels import device_target  # (MindSpore-bound; imported on use)
    if device_target() == "Ascend":
        raise RuntimeError(f"For '{op_name}', ms_bce has no Ascend implementation yet; "
                           "use the CPU or GPU device target.")


def check_positive_int(op_name, arg_name, value):
    """An int >= 1 (a bool refused): TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"For '{op_name}', '{arg_name}' must be an int, but got {type_name(value)}.")
    if value < 1:
        raise ValueError(f"For '{op_name}', '{arg_name}' must be an int >= 1, but got {value}.")


def check_bool(op_name, arg_name, value):
    """TypeError unless a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"For '{op_name}', '{arg_name}' must be a bool, but got {type_name(value)}.")
