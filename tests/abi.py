"""Calling the kernels' C entry points through ctypes, outside MindSpore, with
MindSpore's Custom AOT convention (custom_ops/cpu/common.h).  No MindSpore
import here: tools/sanitize.py drives a sanitizer-built library with it in a
process that loads only numpy.

``load_registry()`` gives the loss registry (ms_bce/_losses.py) to the
modules that must not import ms_bce (tests/gpu_support.py, the sanitizer
driver).

bfloat16 tensors are numpy uint16 arrays holding the bits (numpy has no
bfloat16); ``to_bfloat16`` / ``from_bfloat16`` convert (round to nearest even).
"""
import ctypes
import functools
import importlib.util
import os

import numpy as np

# custom_ops/cpu/common.h: Status
OK, BAD_PARAM_COUNT, BAD_DTYPE, BAD_SHAPE, BAD_RANK, NULL_DATA, NO_MEMORY, INTERNAL = range(8)
OUT_OF_RANGE = 10  # (8, 9: the GPU library's CUDA_ERROR, NOT_DEVICE_MEMORY: tests/gpu_support.py)


@functools.lru_cache(maxsize=None)
def load_registry():
    """The loss registry (ms_bce/_losses.py: losses, operands, directions,
    reductions, entry-point names) as a module, loaded by its file path: the
    ms_bce package imports MindSpore, which the sanitizer driver and
    tools/gpu_device/run.sh do without.  The file is the checkout's beside
    tests/, else (.ci/check-dist: tests from an unpacked sdist, ms_bce/
    removed) the installed ms_bce's, found without importing that."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ms_bce", "_losses.py")
    if not os.path.isfile(path):
        spec = importlib.util.find_spec("ms_bce")
        found = [os.path.join(folder, "_losses.py") for folder in (spec and spec.submodule_search_locations or [])
                 if os.path.isfile(os.path.join(folder, "_losses.py"))]
        if not found:
            raise ImportError(f"no ms_bce/_losses.py beside {os.path.dirname(os.path.abspath(__file__))} "
                              "nor in an installed ms_bce")
        path = found[0]
    spec = importlib.util.spec_from_file_location("ms_bce_loss_registry", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def last_error(lib):
    """The message of this thread's last OUT_OF_RANGE (ms_bce_last_error)."""
    lib.ms_bce_last_error.restype = ctypes.c_char_p
    return lib.ms_bce_last_error().decode()

DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.uint16): "bfloat16",
               np.dtype(np.bool_): "bool"}  # (bool: a mask operand)


def to_bfloat16(a):
    """uint16 bits of float32 values rounded to bfloat16 (nearest even; NaN kept quiet)."""
    f = np.array(a, np.float32, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    u = f.view(np.uint32).astype(np.uint64)
    s16 = np.uint64(16)
    rounded = ((u + np.uint64(0x7FFF) + ((u >> s16) & np.uint64(1))) >> s16).astype(np.uint16)
    return np.where(np.isnan(f), ((u >> s16) | np.uint64(0x40)).astype(np.uint16), rounded)


def from_bfloat16(bits):
    return (np.asarray(bits, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def as_float64(a):
    """float64 values of a float32, float16 or bfloat16 (uint16) array."""
    a = np.asarray(a)
    return from_bfloat16(a).astype(np.float64) if a.dtype == np.uint16 else a.astype(np.float64)


def launch(lib, name, arrays, dtypes=None, ndims=None, shapes=None, nparam=None, null=()):
    """Calls entry point `name` with numpy arrays as its tensors (inputs, then
    outputs); dtypes/ndims/shapes/nparam override what the arrays say (a
    dtype None or a shape "null" passes a NULL pointer), and the data pointers
    at the indices in `null` are NULL."""
    n = len(arrays)
    params = (ctypes.c_void_p * n)(*[None if i in null else a.ctypes.data for i, a in enumerate(arrays)])
    nd = ndims if ndims is not None else [a.ndim for a in arrays]
    c_ndims = (ctypes.c_int * n)(*nd)
    shape_store = [None if isinstance(s, str) else np.array(s if s is not None else a.shape, dtype=np.int64)
                   for a, s in zip(arrays, shapes or [None] * n)]  # "null": a NULL shape pointer
    c_shapes = (ctypes.POINTER(ctypes.c_int64) * n)(
        *[None if s is None else s.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for s in shape_store])
    names = dtypes or [DTYPE_NAMES[a.dtype] for a in arrays]
    c_dtypes = (ctypes.c_char_p * n)(*[None if d is None else d.encode() for d in names])
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    return fn(ctypes.c_int(n if nparam is None else nparam), params, c_ndims, c_shapes, c_dtypes, None, None)


def launch_null_arrays(lib, name, nparam, which):
    """Calls `name` with the argument array `which` ('params', 'ndims',
    'shapes' or 'dtypes') NULL and the others valid-looking."""
    params = (ctypes.c_void_p * nparam)()
    c_ndims = (ctypes.c_int * nparam)()
    c_shapes = (ctypes.POINTER(ctypes.c_int64) * nparam)()
    c_dtypes = (ctypes.c_char_p * nparam)(*[b"float32"] * nparam)
    args = {"params": params, "ndims": c_ndims, "shapes": c_shapes, "dtypes": c_dtypes}
    args[which] = None
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    return fn(ctypes.c_int(nparam), args["params"], args["ndims"], args["shapes"], args["dtypes"], None, None)
