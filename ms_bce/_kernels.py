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
import atexit
import ctypes
import functools
import glob
import hashlib
import linecache
import os
import shutil
import tempfile
import threading

from mindspore import Tensor, context
from mindspore import dtype as mstype
from mindspore.ops import Custom, CustomRegOp, DataType, zeros_like

from . import _losses as registry

_LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib")

# device target -> library base name (built by setup.py as <base>-<hash>.so)
_LIBRARIES = {"CPU": "libms_bce_cpu", "GPU": "libms_bce_gpu"}

# the registry's tables (ms_bce/_losses.py), under the names other modules use
LOSSES = tuple(registry.LOSSES)
REDUCTIONS = registry.REDUCTIONS
# 'backward' is the fused kernel (every gradient); the others give one gradient each.
DIRECTIONS = registry.DIRECTIONS
_LOSS_NAMES = {name: loss.display for name, loss in registry.LOSSES.items()}


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


def entry_point(loss, direction, reduction, has_weight, has_pos_weight, device="CPU", has_mask=False):
    """'/abs/lib.so:<loss>_<direction>_<reduction>[_<operands>]' (the registry's ``entry_name``), the
    library chosen by device ('CPU' or 'GPU'); for 'Ascend' the operator type (``ascend_op_name``).
    ValueError where the registry has no such kernel (``registry.has_kernel``: an unknown loss,
    direction or reduction, an operand the loss does not take, the gradient of an absent operand)."""
    if isinstance(reduction, str):
        # the plain str: a subclass (numpy.str_, or one whose == lies) must name an existing kernel
        reduction = str.__str__(reduction)
    if reduction not in REDUCTIONS:
        raise ValueError(f"For '{_LOSS_NAMES.get(loss, loss)}', 'reduction' must be one of {list(REDUCTIONS)}, "
                         f"but got {reduction!r}.")
    combo = (loss, direction, reduction, has_weight, has_pos_weight) + ((True,) if has_mask else ())
    if not registry.has_kernel(*combo) or (has_mask and device == "Ascend"):
        raise ValueError(f"ms_bce has no kernel for {combo}")
    name = registry.entry_name(*combo)
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


# ------------------------------------------------------------------ bprops ---
# MindSpore 2.10 calls a bprop with exactly (inputs..., out, dout): graph mode
# refuses `def bprop(*args)` ("requires at least 2 params 'out' and 'dout'")
# and a parameter with a default ("The parameters number of the function is 5,
# but ... 4"), and compiles the bprop from its source (inspect.getsource) as a
# plain closure.  So each bprop is written once here, as the source of its body
# over the operands' names, and compiled for the arity asked for (2, 3 or 4
# operands: x, y[, w][, p]).  The source goes into a file of this process's own
# folder: graph mode's error traces read the bprop's lines from its file.

_OPERAND_ARGS = ("x", "y", "w", "p")  # input, target[, weight][, pos_weight]

SECOND_ORDER_MESSAGE = ("For '{loss}', second-order gradients are not supported: ms_bce's backward kernel has no "
                        "derivative of its own. Differentiate the loss once.")


@functools.lru_cache(maxsize=None)
def _bprop_folder():
    """A private folder for the bprops' source files, removed at exit; None if none can be made."""
    try:
        folder = tempfile.mkdtemp(prefix="ms_bce-bprops-")
    except OSError:
        return None
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.lru_cache(maxsize=None)
def _bprop_factory(params, body, free, name="bprop"):
    """``_make(*free)``, which returns ``def bprop(*params): body`` (or a
    function of another name) with the names in free as its closure, compiled
    from source text."""
    source = (f"def _make({', '.join(free)}):\n"
              f"    def {name}({', '.join(params)}):\n"
              + "".join(f"        {line}\n" for line in body)
              + f"    return {name}\n")
    file = f"bprop_{hashlib.sha256(source.encode()).hexdigest()[:12]}.py"
    filename = f"<ms_bce._kernels {file}>"  # (without a file, inspect finds the source in linecache alone)
    if _bprop_folder() is not None:
        try:
            with open(os.path.join(_bprop_folder(), file), "w", encoding="utf-8") as f:
                f.write(source)
            filename = os.path.join(_bprop_folder(), file)
        except OSError:
            pass
    # (mtime None: linecache.checkcache keeps the entry, whatever becomes of the file)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": __name__}  # (MindSpore resolves the bprop's globals by its module)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 (our own text, above)
    return namespace["_make"]


def _bprop(args, tail, body, **free):
    """A bprop of parameters (*args, *tail) running body (source lines), the
    keyword arguments its closure."""
    return _bprop_factory(tuple(args) + tail, tuple(body), tuple(free))(**free)


def _operand_args(n_operands, has_params, has_mask=False):
    """The forward's parameter names: x, y[, w][, p] (the operands with a
    gradient), then m, the mask, where there is one, and t, the loss's
    scalar parameters, where it has any."""
    return _OPERAND_ARGS[:n_operands] + ("m",) * bool(has_mask) + ("t",) * bool(has_params)


def _no_gradient(has_params, has_mask):
    """The bprop's returns for m and t, which have no gradient: zeros."""
    return ["zeros_like(m)"] * bool(has_mask) + ["zeros_like(t)"] * bool(has_params)


def _make_bprop(backward, n_operands, has_params=False, has_mask=False):
    """The forward's bprop in PyNative (which runs a bprop whole): one call of
    the fused backward for all gradients (zeros for m and t)."""
    args = _operand_args(n_operands, has_params, has_mask)
    grads = ", ".join("d" + a for a in _OPERAND_ARGS[:n_operands])
    returned = ", ".join([grads] + _no_gradient(has_params, has_mask))
    free = {"zeros_like": zeros_like} if has_params or has_mask else {}
    return _bprop(args, ("out", "dout"), [f"{grads} = backward({', '.join(args)}, dout)", f"return {returned}"],
                  backward=backward, **free)


def _make_split_bprop(grads, n_operands, has_params=False, has_mask=False):
    """The forward's bprop in graph mode: each gradient from its own one-output
    kernel (grads: dx, dy[, dw][, dp] ops; zeros for m and t).  Graph mode drops
    an op whose output nobody uses only when the op has one output (a
    multi-output op always runs: seen with MindSpore 2.10), so training pays
    for dx alone."""
    operands = _OPERAND_ARGS[:n_operands]
    args = _operand_args(n_operands, has_params, has_mask)
    returned = [f"g{a}({', '.join(args)}, dout)" for a in operands] + _no_gradient(has_params, has_mask)
    free = {f"g{a}": op for a, op in zip(operands, grads)}
    if has_params or has_mask:
        free["zeros_like"] = zeros_like
    return _bprop(args, ("out", "dout"), ["return " + ", ".join(returned)], **free)


def _make_second_order_bprop(loss_name, n_operands, has_params=False, has_mask=False):
    """bprop of the backward op, (x, y[, w][, p][, t], dout, out, ddout): a
    clear error instead of MindSpore's 'bprop not defined' (or a silently
    wrong value).  Graph mode accepts only a literal `raise RuntimeError(...)`
    here, so the message goes into the source as a string literal."""
    message = SECOND_ORDER_MESSAGE.format(loss=loss_name)
    return _bprop(_operand_args(n_operands, has_params, has_mask), ("dout", "out", "ddout"),
                  [f"raise RuntimeError({message!r})"])


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
    (x, y[, w][, p][, m][, t], dout) -> (dx, dy[, dw][, dp]), each gradient in
    its own input's shape (broadcast dimensions summed); 'backward_input',
    '_target', '_weight', '_pos_weight' give that one gradient."""

    def __init__(self, loss, reduction, has_weight, has_pos_weight, device, direction="backward", has_mask=False):
        if device == "Ascend":
            _init_ascend(self, loss, direction, reduction, has_weight, has_pos_weight)
            return
        n = registry.n_operands(has_weight, has_pos_weight)
        has_params = bool(registry.scalars(loss))
        func = entry_point(loss, direction, reduction, has_weight, has_pos_weight, device, has_mask)
        if direction == "backward":
            n_out, out_dtype = n, (lambda *dtypes: tuple(dtypes[:n]))
        else:
            k = registry.gradient_index(direction, has_weight)
            n_out, out_dtype = 1, (lambda *dtypes: dtypes[k])
        super().__init__(func, out_shape=None, out_dtype=out_dtype, func_type="aot",
                         bprop=_make_second_order_bprop(_LOSS_NAMES[loss], n, has_params, has_mask),
                         reg_info=_reg_info(func.rpartition(":")[2], n + has_mask + has_params + 1, n_out, device))


class LossForward(_SerialDispatch, Custom):
    """Forward of one loss for one reduction and one operand set, called with
    the operands present in the order (input, target[, weight][, pos_weight]),
    all of one dtype and already validated (``_validate``); with has_mask, a
    bool mask broadcastable to the input after them; then, last, t: a 1-D
    float32 tensor of the loss's scalar parameters (its registry entry's
    ``params``) in that order and the drivers' options (label smoothing:
    ``params_tensor``).  The mask and t have zero gradients.

    Args:
        loss: a name in the registry (``_losses.LOSSES``): 'bce_with_logits' or 'bce'.
        reduction: 'none', 'mean' or 'sum'.
        has_weight, has_pos_weight: which optional operands are passed.
        has_mask: whether a mask is passed (CPU and GPU).
        for_graph: each gradient from its own kernel (graph mode prunes the
            unused ones); otherwise one fused backward (PyNative).
    """

    def __init__(self, loss, reduction, has_weight, has_pos_weight, for_graph=False, has_mask=False):
        n = registry.n_operands(has_weight, has_pos_weight)
        has_params = bool(registry.scalars(loss))
        device = device_target()
        if device == "Ascend":
            _init_ascend(self, loss, "forward", reduction, has_weight, has_pos_weight)
            return
        func = entry_point(loss, "forward", reduction, has_weight, has_pos_weight, device, has_mask)
        if for_graph:
            # a one-output backward per operand, in operand order
            directions = [d for d in registry.directions(loss, has_weight, has_pos_weight)
                          if d in registry.ONE_GRADIENT]
            bprop = _make_split_bprop([LossBackward(loss, reduction, has_weight, has_pos_weight, device, d, has_mask)
                                       for d in directions], n, has_params, has_mask)
        else:
            bprop = _make_bprop(LossBackward(loss, reduction, has_weight, has_pos_weight, device, has_mask=has_mask),
                                n, has_params, has_mask)
        super().__init__(func, out_shape=None, out_dtype=_first_dtype, func_type="aot", bprop=bprop,
                         reg_info=_reg_info(func.rpartition(":")[2], n + has_mask + has_params, 1, device))


def params_tensor(loss, *values, label_smoothing=0.0):
    """The t operand of a loss's CPU/GPU kernels: its scalar parameters' values
    in the registry's order, then the drivers' options (``registry.scalars``),
    as a 1-D float32 tensor."""
    names = registry.LOSSES[loss].params
    if len(values) != len(names):
        raise ValueError(f"For '{_LOSS_NAMES[loss]}', the scalar parameters are {list(names)}, "
                         f"but got {len(values)} values.")
    return Tensor(values + (label_smoothing,), mstype.float32)


@functools.lru_cache(maxsize=256)
def cached_params_tensor(loss, values, label_smoothing):
    """params_tensor, one tensor per distinct value (PyNative: no new tensor a call)."""
    return params_tensor(loss, *values, label_smoothing=label_smoothing)


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
    if not registry.LOSSES[loss].ascend:
        raise RuntimeError(f"For '{registry.LOSSES[loss].display}', ms_bce has no Ascend kernel yet; "
                           "use the CPU or GPU device target.")
    n = registry.n_operands(has_weight, has_pos_weight)
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
