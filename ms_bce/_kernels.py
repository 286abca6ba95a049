"""Finds the built kernel library and turns its entry points into MindSpore
``Custom(func_type="aot")`` operators.

One table (``entry_point``) maps (loss, direction, reduction, operands,
device) to ``"/abs/path/lib.so:function"``: the CPU library when MindSpore's
device target is CPU, the GPU (CUDA) library when it is GPU.  On Ascend the
kernels are Ascend C operators found by name (``ascend_op_name``; see the
end of this module).  ``LossForward`` is the forward
operator of one loss for one reduction and one set of operands; its bprop
calls the matching fused ``LossBackward``, which returns the gradients of
every operand in one pass.

Output shapes come from C++ InferShape functions exported beside each kernel
(``out_shape=None``): MindSpore 2.10 runs those for dynamic shapes too, where
a Python ``out_shape`` fails at run time.  Output dtypes come from Python.
"""
import ctypes
import functools
import glob
import os
import threading

from mindspore import context
from mindspore.ops import Custom, CustomRegOp, DataType

from ._validate import REDUCTIONS

_LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib")

# device target -> library base name (built by setup.py as <base>-<hash>.so)
_LIBRARIES = {"CPU": "libms_bce_cpu", "GPU": "libms_bce_gpu"}

LOSSES = ("bce_with_logits", "bce")


def library_path(device="CPU"):
    """Absolute path of the kernel library for a MindSpore device target."""
    base = _LIBRARIES.get(device)
    if base is None:
        raise RuntimeError(f"ms_bce has no kernels for device target '{device}'; "
                           f"supported: {sorted(_LIBRARIES)}.")
    found = glob.glob(os.path.join(_LIB_DIR, base + "-*.so"))
    if not found and device == "GPU":
        raise RuntimeError(
            f"ms_bce's GPU kernel library ({base}-<hash>.so) is missing from {_LIB_DIR}: it is built only "
            "where nvcc is found when ms_bce is installed. Install the CUDA toolkit and reinstall ms_bce with "
            "MS_BCE_BUILD_GPU=1 (`MS_BCE_BUILD_GPU=1 pip install .`), or set the device target to CPU.")
    if not found:
        raise RuntimeError(
            f"ms_bce's {device} kernel library ({base}-<hash>.so) is missing from {_LIB_DIR}: "
            "install ms_bce with `pip install .` (or `pip install -e .`), which compiles custom_ops/.")
    return max(found, key=os.path.getmtime)  # the latest build, should an older one linger


@functools.lru_cache(maxsize=None)
def _settings(device="CPU"):
    """The kernel library opened through ctypes for its settings functions.
    dlopen of the path MindSpore loads returns the same handle, so both see
    the same settings."""
    lib = ctypes.CDLL(library_path(device))
    for name in ("ms_bce_set_num_threads", "ms_bce_get_num_threads", "ms_bce_set_simd_path", "ms_bce_get_simd_path"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def set_num_threads(n):
    """Threads each CPU kernel may use; 0 restores the default (the
    MS_BCE_NUM_THREADS environment variable, else the CPUs this process may
    run on).  Results do not depend on it."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"For 'set_num_threads', 'n' must be an int >= 0, but got {n!r}.")
    _settings().ms_bce_set_num_threads(n)


def get_num_threads():
    """Threads each CPU kernel uses now."""
    return _settings().ms_bce_get_num_threads()


SIMD_PATHS = {"auto": 0, "scalar": 1, "avx2": 2}


def set_simd_path(path):
    """'auto' (AVX2 where the CPU has it), 'scalar' (the portable path) or
    'avx2' (where supported; else scalar).  For tests and benchmarks."""
    if path not in SIMD_PATHS:
        raise ValueError(f"'path' must be one of {list(SIMD_PATHS)}, but got {path!r}.")
    _settings().ms_bce_set_simd_path(SIMD_PATHS[path])


def get_simd_path():
    """The path kernels take now: 'scalar' or 'avx2'."""
    return {1: "scalar", 2: "avx2"}[_settings().ms_bce_get_simd_path()]


def device_target():
    """The device the kernels run on: MindSpore's device target (CPU, GPU or
    Ascend), CPU for any other."""
    target = context.get_context("device_target")
    return target if target in _LIBRARIES or target == "Ascend" else "CPU"


# 'backward' is the fused kernel (every gradient); the others give one gradient each.
DIRECTIONS = ("forward", "backward", "backward_input", "backward_target", "backward_weight", "backward_pos_weight")


def entry_point(loss, direction, reduction, has_weight, has_pos_weight, device="CPU"):
    """'/abs/lib.so:<loss>_<direction>_<reduction>[_w][_p]' (see custom_ops/cpu/loss_driver.h), the
    library chosen by device ('CPU' or 'GPU'); for 'Ascend' the operator type (``ascend_op_name``)."""
    if isinstance(reduction, str):
        # the plain str: a subclass (numpy.str_, or one whose == lies) must name an existing kernel
        reduction = str.__str__(reduction)
    if reduction not in REDUCTIONS:
        raise ValueError(f"For '{_LOSS_NAMES.get(loss, loss)}', 'reduction' must be one of ['none', 'mean', 'sum'], "
                         f"but got {reduction!r}.")
    if (loss not in LOSSES or direction not in DIRECTIONS or reduction not in REDUCTIONS
            or (loss == "bce" and has_pos_weight) or (direction == "backward_weight" and not has_weight)
            or (direction == "backward_pos_weight" and not has_pos_weight)):
        raise ValueError(f"ms_bce has no kernel for {(loss, direction, reduction, has_weight, has_pos_weight)}")
    operands = "w" * bool(has_weight) + "p" * bool(has_pos_weight)
    name = f"{loss}_{direction}_{reduction}{'_' + operands if operands else ''}"
    if device == "Ascend":  # an Ascend C operator, found by its type
        return ascend_op_name(name)
    return f"{library_path(device)}:{name}"


def _reg_info(func_name, n_inputs, n_outputs, device):
    """Registration that makes MindSpore call the C++ InferShape of func_name."""
    reg = CustomRegOp(func_name)
    for i in range(n_inputs):
        reg = reg.input(i, f"x{i}")
    for i in range(n_outputs):
        reg = reg.output(i, f"y{i}")
    return reg.dtype_format(*([DataType.None_None] * (n_inputs + n_outputs))).target(device).get_op_info()


def _first_dtype(*dtypes):
    return dtypes[0]


def _make_bprop(backward, n_operands):
    """The forward's bprop in PyNative (which runs a bprop whole): one call of
    the fused backward for all gradients.  (Fixed arity: MindSpore needs
    exactly (inputs..., out, dout).)"""
    if n_operands == 2:
        def bprop(x, y, out, dout):
            dx, dy = backward(x, y, dout)
            return dx, dy
    elif n_operands == 3:
        def bprop(x, y, w, out, dout):
            dx, dy, dw = backward(x, y, w, dout)
            return dx, dy, dw
    else:
        def bprop(x, y, w, p, out, dout):
            dx, dy, dw, dp = backward(x, y, w, p, dout)
            return dx, dy, dw, dp
    return bprop


def _make_split_bprop(grads, n_operands):
    """The forward's bprop in graph mode: each gradient from its own one-output
    kernel (grads: dx, dy[, dw][, dp] ops).  Graph mode drops an op whose
    output nobody uses only when the op has one output (a multi-output op
    always runs: seen with MindSpore 2.10), so training pays for dx alone."""
    if n_operands == 2:
        gx, gy = grads

        def bprop(x, y, out, dout):
            return gx(x, y, dout), gy(x, y, dout)
    elif n_operands == 3:
        gx, gy, gw = grads

        def bprop(x, y, w, out, dout):
            return gx(x, y, w, dout), gy(x, y, w, dout), gw(x, y, w, dout)
    else:
        gx, gy, gw, gp = grads

        def bprop(x, y, w, p, out, dout):
            return gx(x, y, w, p, dout), gy(x, y, w, p, dout), gw(x, y, w, p, dout), gp(x, y, w, p, dout)
    return bprop


def _make_second_order_bprop(loss_name, n_operands):
    """bprop of the backward op: a clear error instead of MindSpore's
    'bprop not defined' (or a silently wrong value).  Graph mode accepts only
    a literal `raise RuntimeError(...)` here."""
    if n_operands == 2:
        def bprop(x, y, dout, out, ddout):
            raise RuntimeError(f"For '{loss_name}', second-order gradients are not supported: ms_bce's "
                               "backward kernel has no derivative of its own. Differentiate the loss once.")
    elif n_operands == 3:
        def bprop(x, y, w, dout, out, ddout):
            raise RuntimeError(f"For '{loss_name}', second-order gradients are not supported: ms_bce's "
                               "backward kernel has no derivative of its own. Differentiate the loss once.")
    else:
        def bprop(x, y, w, p, dout, out, ddout):
            raise RuntimeError(f"For '{loss_name}', second-order gradients are not supported: ms_bce's "
                               "backward kernel has no derivative of its own. Differentiate the loss once.")
    return bprop


_LOSS_NAMES = {"bce_with_logits": "BCEWithLogitsLoss", "bce": "BCELoss"}


# MindSpore 2.10 can hand one thread's result of a Custom op to another when
# Python threads dispatch Custom ops at once in PyNative (seen here: a 'mean'
# from thread A returned to thread B; its built-in operators do not do this,
# and the kernels themselves are reentrant: tests/test_resources.py).  ms_bce's
# operators therefore dispatch one at a time; the kernels still run
# asynchronously, and in graph mode nothing passes through here.
_DISPATCH_LOCK = threading.Lock()


class _SerialDispatch:
    """Mixed into the Custom ops: PyNative calls take _DISPATCH_LOCK."""

    def __call__(self, *args):
        with _DISPATCH_LOCK:
            return super().__call__(*args)


class LossBackward(_SerialDispatch, Custom):
    """Backward of one loss: direction 'backward' is the fused kernel,
    (x, y[, w][, p], dout) -> (dx, dy[, dw][, dp]), each gradient in its own
    input's shape (broadcast dimensions summed); 'backward_input', '_target',
    '_weight', '_pos_weight' give that one gradient."""

    _OPERAND = {"backward_input": 0, "backward_target": 1, "backward_weight": 2}

    def __init__(self, loss, reduction, has_weight, has_pos_weight, device, direction="backward"):
        if device == "Ascend":
            _init_ascend(self, loss, direction, reduction, has_weight, has_pos_weight)
            return
        n = 2 + int(has_weight) + int(has_pos_weight)
        func = entry_point(loss, direction, reduction, has_weight, has_pos_weight, device)
        if direction == "backward":
            n_out, out_dtype = n, (lambda *dtypes: tuple(dtypes[:n]))
        else:
            k = self._OPERAND.get(direction, n - 1)  # pos_weight is the last operand
            n_out, out_dtype = 1, (lambda *dtypes: dtypes[k])
        super().__init__(func, out_shape=None, out_dtype=out_dtype, func_type="aot",
                         bprop=_make_second_order_bprop(_LOSS_NAMES[loss], n),
                         reg_info=_reg_info(func.rpartition(":")[2], n + 1, n_out, device))


class LossForward(_SerialDispatch, Custom):
    """Forward of one loss for one reduction and one operand set, called with
    the operands present in the order (input, target[, weight][, pos_weight]),
    all of one dtype and already validated (``_validate``).

    Args:
        loss: 'bce_with_logits' or 'bce'.
        reduction: 'none', 'mean' or 'sum'.
        has_weight, has_pos_weight: which optional operands are passed.
        for_graph: each gradient from its own kernel (graph mode prunes the
            unused ones); otherwise one fused backward (PyNative).
    """

    def __init__(self, loss, reduction, has_weight, has_pos_weight, for_graph=False):
        n = 2 + int(has_weight) + int(has_pos_weight)
        device = device_target()
        if device == "Ascend":
            _init_ascend(self, loss, "forward", reduction, has_weight, has_pos_weight)
            return
        func = entry_point(loss, "forward", reduction, has_weight, has_pos_weight, device)
        if for_graph:
            directions = ("backward_input", "backward_target") + (("backward_weight",) if has_weight else ()) + \
                (("backward_pos_weight",) if has_pos_weight else ())
            bprop = _make_split_bprop([LossBackward(loss, reduction, has_weight, has_pos_weight, device, d)
                                       for d in directions], n)
        else:
            bprop = _make_bprop(LossBackward(loss, reduction, has_weight, has_pos_weight, device), n)
        super().__init__(func, out_shape=None, out_dtype=_first_dtype, func_type="aot", bprop=bprop,
                         reg_info=_reg_info(func.rpartition(":")[2], n, 1, device))


# ------------------------------------------------------------------ Ascend ---
# On Ascend the kernels are Ascend C operators (custom_ops/ascend/), compiled
# and installed into CANN's operator path by custom_ops/ascend/build.sh where
# the CANN toolkit is present.  MindSpore finds them by operator type, so
# there is no library path; output shapes come from Python (MindSpore's
# Ascend Custom path takes a Python out_shape, dynamic shapes included).

_ASCEND_DTYPES = (DataType.F16_Default, DataType.F32_Default, DataType.BF16_Default)


def ascend_op_name(entry_name):
    """The Ascend C operator type of an entry point: 'BceWithLogitsForwardMeanWp'
    for bce_with_logits_forward_mean_wp (CANN names the kernel function by the
    type in snake case, which is the CPU/GPU entry point's name)."""
    return "".join(part.capitalize() for part in entry_name.split("_"))


def ascend_io_names(direction, has_weight, has_pos_weight):
    """(inputs, outputs) as custom_ops/ascend/op_host declares them."""
    operands = ["x", "target"] + ["weight"] * bool(has_weight) + ["pos_weight"] * bool(has_pos_weight)
    if direction == "forward":
        return operands, ["y"]
    grads = ["dx", "dtarget"] + ["dweight"] * bool(has_weight) + ["dpos_weight"] * bool(has_pos_weight)
    return operands + ["dout"], grads if direction == "backward" else grads[:1]


def _ascend_reg_info(op_name, inputs, outputs):
    reg = CustomRegOp(op_name)
    for i, name in enumerate(inputs):
        reg = reg.input(i, name, "required")
    for i, name in enumerate(outputs):
        reg = reg.output(i, name, "required")
    for dtype in _ASCEND_DTYPES:
        reg = reg.dtype_format(*([dtype] * (len(inputs) + len(outputs))))
    return reg.target("Ascend").get_op_info()


def _init_ascend(op, loss, direction, reduction, has_weight, has_pos_weight):
    """Custom.__init__ of a LossForward/LossBackward for the Ascend C operator."""
    n = 2 + int(has_weight) + int(has_pos_weight)
    name = entry_point(loss, direction, reduction, has_weight, has_pos_weight, "Ascend")
    inputs, outputs = ascend_io_names(direction, has_weight, has_pos_weight)
    if direction == "forward":
        backward = LossBackward(loss, reduction, has_weight, has_pos_weight, "Ascend")
        out_shape = (lambda *shapes: shapes[0]) if reduction == "none" else (lambda *shapes: [])
        Custom.__init__(op, name, out_shape=out_shape, out_dtype=_first_dtype, func_type="aot",
                        bprop=_make_bprop(backward, n), reg_info=_ascend_reg_info(name, inputs, outputs))
    else:
        Custom.__init__(op, name, out_shape=lambda *shapes: tuple(shapes[:n]),
                        out_dtype=lambda *dtypes: tuple(dtypes[:n]), func_type="aot",
                        bprop=_make_second_order_bprop(_LOSS_NAMES[loss], n),
                        reg_info=_ascend_reg_info(name, inputs, outputs))
