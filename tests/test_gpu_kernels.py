"""The compiled CUDA library (ms_bce/_lib/libms_bce_gpu-<hash>.so) called
directly through ctypes, outside MindSpore (whose GPU runtime these machines
cannot run).

Without a GPU: the library is built wherever nvcc is found, exports every
entry point and InferShape function, refuses malformed calls with the CPU
library's status codes before touching the device, and reports the missing
device as a status code instead of crashing.

With a GPU and CuPy (`pip install cupy-cuda12x` or `cupy-cuda13x`): every
entry point on device pointers, for every dtype, reduction and broadcast
case, against the float64 reference and the CPU library; determinism, the
stream argument, host pointers refused, 10^8-element accuracy and 64-bit
indexing past 2^31 elements.  These skip, saying why, where either is missing.
"""
import ctypes
import os
import shutil

import numpy as np
import pytest

from ms_bce import _kernels
from tests import gpu_support as gs
from tests import reference as ref

# the t operand of every loss entry point: its scalars (label smoothing 0 here)
T0 = np.zeros(1, np.float32)
F16_WITH_T = ["float16", "float16", "float32", "float16"]  # x, y, t, out


def _gpu_library_or_none():
    try:
        return _kernels.library_path("GPU")
    except RuntimeError:
        return None


GPU_LIBRARY = _gpu_library_or_none()
needs_library = pytest.mark.skipif(GPU_LIBRARY is None, reason="the GPU library was not built (no nvcc when "
                                   "ms_bce was installed, or MS_BCE_BUILD_GPU=0)")


def _cupy_and_device():
    """(cupy, None) when a GPU is usable through CuPy, else (None, reason)."""
    try:
        import cupy  # noqa: PLC0415 (optional: only on GPU machines)
    except ImportError:
        return None, "CuPy is not installed (pip install cupy-cuda12x or cupy-cuda13x on a GPU machine)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 (CuPy raises its own CUDARuntimeError without a driver)
        return None, f"no usable CUDA device ({e})"
    if count == 0:
        return None, "no CUDA device"
    return cupy, None


CUPY, NO_GPU_REASON = _cupy_and_device()
needs_gpu = pytest.mark.skipif(CUPY is None or GPU_LIBRARY is None,
                               reason=NO_GPU_REASON or "the GPU library was not built")


@pytest.fixture(scope="module")
def gpu_lib():
    return ctypes.CDLL(GPU_LIBRARY)


@pytest.fixture(scope="module")
def cpu_lib():
    """The CPU library on its portable path, whose double-precision element
    maths the GPU code mirrors operation for operation (the AVX2 path is held
    to the spec's bars instead: tests/test_kernel_paths.py)."""
    _kernels.set_simd_path("scalar")
    yield ctypes.CDLL(_kernels.library_path("CPU"))
    _kernels.set_simd_path("auto")


# ------------------------------------------------------ without a GPU ---

def test_gpu_library_is_built_where_nvcc_is_found():
    nvcc = shutil.which(os.environ.get("NVCC") or "nvcc")
    if os.environ.get("MS_BCE_BUILD_GPU") == "0" or nvcc is None:
        pytest.skip("no nvcc here (or MS_BCE_BUILD_GPU=0): the GPU library is not expected")
    assert GPU_LIBRARY is not None, "nvcc is on the PATH but ms_bce's install did not build the GPU library"
    assert os.path.isabs(GPU_LIBRARY)
    assert os.path.basename(GPU_LIBRARY).startswith("libms_bce_gpu-")


@needs_library
def test_every_entry_point_and_shape_function_is_exported(gpu_lib):
    for name in gs.all_entry_names():
        assert hasattr(gpu_lib, name), name
        assert hasattr(gpu_lib, name + "InferShape"), name
    assert not hasattr(gpu_lib, "bce_forward_mean_p")


@needs_library
def test_malformed_calls_are_refused_before_touching_the_device(gpu_lib, cpu_lib):
    """The checks run on the host first: host pointers here are never read."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    y = rng.random((3, 4)).astype(np.float32)
    w = np.ones(4, np.float32)
    out = np.zeros((), np.float32)
    mem = gs.HostMemory()
    f32 = ["float32"] * 7
    calls = [
        ("bce_with_logits_forward_sum_w", [x, y, w, T0, out], f32[:5], {"nparam": 3}, gs.BAD_PARAM_COUNT),
        ("bce_with_logits_forward_sum", [x, y, w, T0, out], f32[:5], {}, gs.BAD_PARAM_COUNT),
        ("bce_with_logits_forward_sum", [x, y, T0, out], ["float64", "float64", "float32", "float64"], {}, gs.BAD_DTYPE),
        ("bce_with_logits_forward_sum", [x, y, T0, out], ["float32", "bfloat16", "float32", "float32"], {}, gs.BAD_DTYPE),
        ("bce_with_logits_forward_sum", [x, y.reshape(4, 3), T0, out], f32[:4], {}, gs.BAD_SHAPE),
        ("bce_with_logits_forward_sum_w", [x, y, np.ones(3, np.float32), T0, out], f32[:5], {}, gs.BAD_SHAPE),
        ("bce_with_logits_forward_none", [x, y, T0, np.zeros(3, np.float32)], f32[:4], {}, gs.BAD_SHAPE),
        ("bce_with_logits_forward_sum", [x, y, T0, out], f32[:4], {"shapes": [[3, -4], [3, -4], [1], []]}, gs.BAD_RANK),
        ("bce_with_logits_forward_sum", [x, y, T0, out], f32[:4], {"null": (1,)}, gs.NULL_DATA),
        ("bce_backward_mean_w", [x, y, w, T0, out, x, y, np.zeros(1, np.float32)], f32 + ["float32"], {}, gs.BAD_SHAPE),
    ]
    for name, tensors, dtypes, kw, code in calls:
        assert gs.call(gpu_lib, name, mem, tensors, dtypes, **kw) == code, name
        assert gs.call(cpu_lib, name, mem, tensors, dtypes, **kw) == code, name  # the CPU library's code too
    dx = np.zeros_like(x)
    assert gs.call(gpu_lib, "bce_with_logits_backward_input_mean", mem, [x, y, T0, out, dx, dx], f32[:6]) == \
        gs.BAD_PARAM_COUNT


@needs_library
@pytest.mark.skipif(CUPY is not None, reason="a GPU is present: the device is not missing")
def test_a_valid_call_without_a_device_returns_the_cuda_error_code(gpu_lib):
    """No GPU (or no driver): status 8, not a crash and not silent zeros."""
    x = np.zeros((2, 3), np.float32)
    out = np.full((), 7.0, np.float32)
    assert gs.call(gpu_lib, "bce_with_logits_forward_sum", gs.HostMemory(), [x, x, T0, out], ["float32"] * 4) == \
        gs.CUDA_ERROR
    assert out == 7.0


# --------------------------------------------------------- with a GPU ---

class CupyMemory:
    """Tensors as CuPy arrays on the current device, calls on `stream`."""

    def __init__(self, stream=None):
        self.cp = CUPY
        self._stream = stream or CUPY.cuda.get_current_stream()
        self.stream = self._stream.ptr or None

    def put(self, array):
        with self._stream:
            return self.cp.asarray(np.require(array, requirements="C"))

    def empty(self, shape, dtype):
        with self._stream:
            a = self.cp.empty(shape, gs.storage_dtype(dtype))
            a.reshape(-1).view(self.cp.uint8).fill(0x5A)  # garbage: every output must be written
        return a

    @staticmethod
    def ptr(a):
        return a.data.ptr

    def get(self, a):
        with self._stream:
            return self.cp.asnumpy(a)

    def sync(self):
        self._stream.synchronize()


def device_tolerance(loss, dtype):
    """ULPs of the dtype by which the device may differ from the CPU library
    element-wise: CUDA's double exp/log1p (<= 2 ulp of double) almost never
    change a float32 rounding; BCELoss's float32 logf is within 1 ulp on the
    device, glibc's is correctly rounded in practice."""
    return 2 if loss == "bce" else 1


@needs_gpu
@pytest.mark.parametrize("dtype", gs.DTYPES)
@pytest.mark.parametrize("reduction", gs.REDUCTIONS)
@pytest.mark.parametrize("case", gs.BROADCAST_CASES, ids=gs.case_id)
@pytest.mark.parametrize("loss", gs.LOSSES)
def test_entry_points_match_reference_and_cpu_library(gpu_lib, cpu_lib, loss, case, reduction, dtype):
    x, y, w_full, p_full = gs.make_operands(loss, case)
    dout = gs.incoming(case, reduction)
    for has_w, has_p in gs.OPERAND_SETS[loss]:
        w, p = (w_full if has_w else None), (p_full if has_p else None)
        got = gs.run_entry_points(gpu_lib, CupyMemory(), loss, x, y, w, p, reduction, dout, dtype)
        gs.check_against_reference(loss, x, y, w, p, reduction, dout, dtype, got)
        cpu = gs.run_entry_points(cpu_lib, gs.HostMemory(), loss, x, y, w, p, reduction, dout, dtype,
                                  directions=("forward", "backward"))
        q = [None if a is None else gs.quantize(a, dtype) for a in (x, y, w, p)]
        s_loss, *s_grads = gs.scales(loss, *q, reduction, gs.quantize(dout, dtype))
        for direction in ("forward", "backward"):
            status, outs = cpu[direction]
            assert status == gs.OK
            scales = [s_loss] if direction == "forward" else \
                [s_grads[0], s_grads[1]] + [s_grads[k] for k in (2, 3) if q[k] is not None]
            for i, (a, b, s) in enumerate(zip(got[direction][1], outs, scales)):
                tol = device_tolerance(loss, dtype) * gs.ulp(s, dtype) + gs.ulp(b, dtype)
                gs.assert_close(a, b, tol, f"{loss} {direction}[{i}] {dtype} {reduction} vs CPU")


@needs_gpu
def test_results_are_bit_identical_run_after_run(gpu_lib):
    """Fixed reduction order, no atomics: the same bits every run (chunked
    two-pass reductions and a two-pass dW/dP included)."""
    case = ((3001, 1037), (1, 1037), (3001, 1))
    x, y, w, p = gs.make_operands("bce_with_logits", case)
    runs = [gs.run_entry_points(gpu_lib, CupyMemory(), "bce_with_logits", x, y, w, p, r, gs.incoming(case, r),
                                "float32") for r in ("mean", "none") for _ in range(3)]
    for first, again in ((runs[0], runs[1]), (runs[0], runs[2]), (runs[3], runs[4]), (runs[3], runs[5])):
        for direction in gs.DIRECTIONS:
            for a, b in zip(first[direction][1], again[direction][1]):
                assert a.tobytes() == b.tobytes()


@needs_gpu
def test_runs_on_the_stream_it_is_given(gpu_lib):
    stream = CUPY.cuda.Stream(non_blocking=True)
    mem = CupyMemory(stream)
    case = ((4096, 33), (33,), (1,))
    x, y, w, p = gs.make_operands("bce_with_logits", case)
    got = gs.run_entry_points(gpu_lib, mem, "bce_with_logits", x, y, w, p, "sum", 1.7, "float32")
    gs.check_against_reference("bce_with_logits", x, y, w, p, "sum", 1.7, "float32", got)


@needs_gpu
def test_host_pointers_are_refused(gpu_lib):
    x = np.zeros((2, 3), np.float32)
    out = np.full((), 7.0, np.float32)
    assert gs.call(gpu_lib, "bce_with_logits_forward_sum", gs.HostMemory(), [x, x, T0, out], ["float32"] * 4) == \
        gs.NOT_DEVICE_MEMORY
    assert out == 7.0


@needs_gpu
@pytest.mark.slow
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduction_of_1e8_elements_within_1e_6(gpu_lib, reduction):
    n = 10 ** 8
    cp = CUPY
    x = cp.full(n, 0.3, cp.float32)
    y = cp.zeros(n, cp.float32)
    out = cp.zeros((), cp.float32)
    mem = CupyMemory()
    t = cp.zeros(1, cp.float32)
    assert gs.call(gpu_lib, f"bce_with_logits_forward_{reduction}", mem, [x, y, t, out], ["float32"] * 4) == gs.OK
    mem.sync()
    per_element = float(ref.softplus(np.float64(np.float32(0.3))))
    expected = per_element * n if reduction == "sum" else per_element
    assert abs(float(out.get()) - expected) <= 1e-6 * abs(expected)


@needs_gpu
@pytest.mark.slow
def test_indices_past_2_to_the_31(gpu_lib):
    """2^31 + 4099 float16 elements (8.6 GB with outputs): 64-bit indexing in
    the element-wise and reduction kernels.  The first 2^31 elements have loss
    0 (x = -inf, y = 0) and the 4099 past index 2^31 loss softplus(8): the sum
    (32,793, within float16's range) counts only those, so a wrapped index,
    which would read the head instead, would show."""
    cp = CUPY
    n = 2 ** 31 + 4099
    free, _ = cp.cuda.runtime.memGetInfo()
    if free < 5 * 2 * n:
        pytest.skip(f"needs {5 * 2 * n / 1e9:.1f} GB of free GPU memory, {free / 1e9:.1f} GB free")
    x = cp.full(n, -np.inf, cp.float16)
    y = cp.zeros(n, cp.float16)
    x[2 ** 31:] = 8.0
    out = cp.zeros((), cp.float16)
    mem = CupyMemory()
    t = cp.zeros(1, cp.float32)
    assert gs.call(gpu_lib, "bce_with_logits_forward_sum", mem, [x, y, t, out], F16_WITH_T) == gs.OK
    mem.sync()
    expected = 4099 * float(ref.softplus(8.0))
    assert float(out.get()) == float(np.float16(expected)), (float(out.get()), expected)
    none = cp.empty(n, cp.float16)
    assert gs.call(gpu_lib, "bce_with_logits_forward_none", mem, [x, y, t, none], F16_WITH_T) == gs.OK
    mem.sync()
    assert float(none[-1].get()) == float(np.float16(ref.softplus(8.0)))
    assert float(none[2 ** 31].get()) == float(np.float16(ref.softplus(8.0)))
    assert float(none[2 ** 31 - 1].get()) == 0.0
