"""Fixtures and helpers: execution modes, dtype rows, tensor conversion, ULP
bars and checks (the one place the tests' tolerances are written), and the
sanitizer run started in the background (tests/test_sanitizers.py)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import mindspore as ms
import numpy as np
import pytest
from hypothesis import note
from mindspore import Tensor, nn

MODES = ("pynative", "graph")

# Checks of the source tree itself (building from setup.py, the sdist, the one
# version): skipped where this tests/ folder sits beside no ms_bce/ sources, as
# when .ci/check-dist runs the suite from an unpacked sdist against an
# installed wheel.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_SOURCES = os.path.isfile(os.path.join(ROOT, "ms_bce", "_version.py"))
needs_sources = pytest.mark.skipif(
    not HAS_SOURCES,
    reason="source-tree check, and there are no ms_bce/ sources here (an installed wheel is under test)")


@pytest.fixture(params=MODES)
def mode(request):
    """Runs the test once in PyNative and once in GRAPH_MODE, then restores PyNative."""
    ms.set_context(mode=ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE)
    yield request.param
    ms.set_context(mode=ms.PYNATIVE_MODE)


class FnCell(nn.Cell):
    """A cell whose construct calls fn: in GRAPH_MODE, fn is compiled into the graph."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def construct(self, *args):
        return self.fn(*args)


def call(fn, *args):
    """fn(*args) in the current execution mode."""
    return FnCell(fn)(*args)


def grads(fn, positions, *args):
    """Gradients of fn with respect to the inputs at positions, in the current mode."""
    return ms.grad(FnCell(fn), grad_position=positions)(*args)


# ------------------------------------------------------- the test losses ---

def build_library(folder):
    """Compiles tests/native/scalar_loss_check.cc with the CPU driver into
    folder; its path (pytest.skip without a C++ compiler)."""
    cxx = next((shutil.which(c) for c in ([os.environ['CXX']] if os.environ.get('CXX') else ['c++', 'g++'])
                if shutil.which(c)), None)
    if cxx is None:
        pytest.skip("no C++ compiler")
    target = os.path.join(str(folder), "libscalar_loss_check.so")
    cmd = [cxx, "-std=c++20", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-ffp-contract=off",
           "-D_GLIBCXX_USE_CXX11_ABI=0", "-Wall", "-Wextra", "-pthread",
           os.path.join(ROOT, "tests", "native", "scalar_loss_check.cc"),
           os.path.join(ROOT, "custom_ops", "cpu", "parallel.cc"), "-o", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return target


@pytest.fixture(scope="session")
def test_losses_library(tmp_path_factory):
    """tests/native/scalar_loss_check.cc built once per run: the test losses
    of tests/native/test_losses.h through the CPU driver."""
    return build_library(tmp_path_factory.mktemp("test_losses"))


# ---------------------------------------------------------------- dtypes ---

# (MindSpore dtype, ULPs allowed against the float64 reference): spec section 6.
DTYPES = {
    "float32": (ms.float32, 4),
    "float16": (ms.float16, 1),
    "bfloat16": (ms.bfloat16, 1),
}
ULPS = {dtype: ulps for dtype, ulps in DTYPES.values()}
# each dtype's largest finite number
DTYPE_MAX = {ms.float32: float(np.finfo(np.float32).max), ms.float16: 65504.0, ms.bfloat16: 3.3895313892515355e38}


def to_ms(a, dtype=ms.float32):
    """A Tensor of dtype holding the array's values (rounded to dtype)."""
    a = np.asarray(a)
    if dtype == ms.bfloat16:
        return Tensor(a.astype(np.float32)).astype(ms.bfloat16)
    return Tensor(a.astype({ms.float32: np.float32, ms.float16: np.float16, ms.float64: np.float64}[dtype]))


def to_np(t):
    """float64 array of a Tensor's values (exact for every float dtype)."""
    if t.dtype == ms.bfloat16:
        t = t.astype(ms.float32)
    return t.asnumpy().astype(np.float64)


def quantize(a, dtype):
    """The float64 values an array takes once stored in dtype."""
    return to_np(to_ms(a, dtype))


def ulp(value, dtype):
    """Spacing of dtype at |value| (float64 array)."""
    v = np.abs(np.asarray(value, np.float64))
    if dtype == ms.float32:
        with np.errstate(over="ignore"):
            return np.spacing(v.astype(np.float32)).astype(np.float64)
    if dtype == ms.float16:
        with np.errstate(over="ignore"):
            return np.spacing(v.astype(np.float16)).astype(np.float64)
    # bfloat16: 8 significant bits, smallest subnormal 2**-133
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(v > 0, v, 1.0)))
    return np.where(v >= 2.0 ** -126, 2.0 ** (e - 7), 2.0 ** -133)


def ulp_of(v, dtype):
    """ULP of dtype at |v|; beyond dtype's range, its largest finite number's
    (so that an expected value past the range may round to inf); 0 for NaN/inf."""
    v = np.abs(np.asarray(v, np.float64))
    v = np.where(np.isfinite(v), np.minimum(v, DTYPE_MAX[dtype]), 0.0)
    return ulp(v, dtype)


def elementwise_tol(scale, dtype):
    """The spec's elementwise bar: 4 float32 ULP, 1 float16/bfloat16 ULP (ULPS),
    of the terms' size."""
    return ULPS[dtype] * ulp_of(scale, dtype)


def reduced_tol(expected, scale, dtype):
    """Sums: 1e-6 of the terms' total size, plus the result's own rounding."""
    with np.errstate(invalid="ignore", over="ignore"):
        return 1e-6 * np.where(np.isfinite(scale), scale, 0.0) + ulp_of(expected, dtype)


def sum_scale(scale, reduction, n):
    """The terms' total size of a 'sum' or 'mean' of n elements."""
    total = np.sum(scale)
    return total / n if reduction == "mean" and n else total


def bfloat16_rne(a):
    """float32 values rounded to bfloat16 (nearest even; overflow to inf), as float64."""
    a = np.asarray(a, np.float32)
    b = np.ascontiguousarray(a).view(np.uint32).astype(np.uint64)
    s16, one = np.uint64(16), np.uint64(1)
    r = ((b + np.uint64(0x7FFF) + ((b >> s16) & one)) >> s16 << s16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), np.nan, r.astype(np.float64).reshape(a.shape))


def rounds_to(v, dtype):
    """float64 values as stored in dtype: rounded to float32, then to dtype
    (round to nearest even; overflow to inf), in NumPy."""
    with np.errstate(over="ignore", invalid="ignore"):
        v32 = np.asarray(v, np.float64).astype(np.float32)
        if dtype == ms.float32:
            return v32.astype(np.float64)
        if dtype == ms.float16:
            return v32.astype(np.float16).astype(np.float64)
    return bfloat16_rne(v32)


def check_close(actual, expected, dtype, tol, what, skip=None):
    """|actual - expected| <= tol elementwise; NaN exactly where expected is NaN,
    infinities equal; where expected is finite, an infinite actual is accepted
    only if some value within tol of expected rounds to it in dtype (overflow).
    Elements where `skip` is True (reference.indeterminate) are not checked
    (their count is a hypothesis note: call it inside a hypothesis test)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if skip is not None and np.any(skip):
        keep = ~np.broadcast_to(skip, expected.shape)
        note(f"{what}: {int((~keep).sum())} indeterminate elements not checked")
        actual, expected = actual[keep], expected[keep]
        tol = np.broadcast_to(np.asarray(tol, np.float64), keep.shape)[keep]
    tol = np.broadcast_to(np.asarray(tol, np.float64), expected.shape)
    nan_e = np.isnan(expected)
    bad_nan = np.isnan(actual) != nan_e
    inf_e = np.isinf(expected)
    bad_inf = inf_e & (actual != expected)
    fin = ~nan_e & ~inf_e
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(actual - expected)
        lo, hi = rounds_to(expected - tol, dtype), rounds_to(expected + tol, dtype)
    overflow_ok = np.isinf(actual) & ((actual == lo) | (actual == hi))
    bad_val = fin & ~np.isnan(actual) & ~(err <= tol) & ~overflow_ok
    bad = bad_nan | bad_inf | bad_val
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} elements wrong; first at flat index {i}: "
                             f"actual {actual.flat[i]!r}, expected {expected.flat[i]!r}, tol {tol.flat[i]!r}")


def check_reduced_gradient(actual, expected, scale, op_shape, x_shape, dtype, what):
    """A broadcast operand's gradient is a sum over the broadcast dimensions
    (reduced_tol); a full-size one is elementwise (elementwise_tol)."""
    if int(np.prod(op_shape)) == int(np.prod(x_shape)):
        check_close(actual, expected, dtype, elementwise_tol(scale, dtype), what)
    else:
        check_close(actual, expected, dtype, reduced_tol(expected, scale, dtype), what)


def assert_ulps(actual, expected, dtype, ulps, scale=None, what="value"):
    """|actual - expected| <= ulps * ulp(scale) elementwise (scale defaults to
    |expected|), NaN exactly where expected is NaN, infinities equal."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    nan_e = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan_e, err_msg=f"{what}: NaN positions differ")
    inf_e = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf_e], expected[inf_e], err_msg=f"{what}: infinities differ")
    ok = ~(nan_e | inf_e)
    scale = np.abs(expected) if scale is None else np.broadcast_to(np.asarray(scale, np.float64), expected.shape)
    tol = ulps * ulp(scale, dtype)
    err = np.abs(actual - expected)
    bad = ok & ~(err <= tol)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements beyond {ulps} ULP; first at flat index {i}: "
            f"actual {actual.flat[i]!r}, expected {expected.flat[i]!r}, error {err.flat[i]!r} > tol {tol.flat[i]!r}")


def assert_rel(actual, expected, rtol, scale=None, what="value"):
    """|actual - expected| <= rtol * scale (scale defaults to |expected|), NaN/inf equal."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN positions differ")
    fin = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~fin & ~np.isnan(expected)], expected[~fin & ~np.isnan(expected)],
                                  err_msg=f"{what}: infinities differ")
    scale = np.abs(expected) if scale is None else np.broadcast_to(np.asarray(scale, np.float64), expected.shape)
    err = np.abs(actual - expected)
    bad = fin & ~(err <= rtol * scale + 1e-300)
    assert not bad.any(), (f"{what}: {bad.sum()} elements beyond rtol {rtol}; max error "
                           f"{err[bad].max()!r} at scale {scale[bad][np.argmax(err[bad])]!r}")


# ------------------------------------------------------- sanitizer run ---
#
# tools/sanitize.py (build the sanitized library, drive every entry point: a few
# minutes, mostly on one core) runs in a process of its own, started as soon as
# collection has selected tests/test_sanitizers.py, so that it runs alongside
# the other tests (which leave the second core mostly idle: graph compiles,
# subprocesses, waits); the test collects its exit status and output.

SANITIZE_TEST = os.path.join("tests", "test_sanitizers.py")
_sanitizer_run = {}


def start_sanitizer_run():
    """Starts tools/sanitize.py in the background (once per session)."""
    if "proc" not in _sanitizer_run:
        log = tempfile.TemporaryFile(mode="w+", prefix="ms_bce_sanitize_")
        _sanitizer_run["log"] = log
        _sanitizer_run["proc"] = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tools", "sanitize.py")], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=ROOT, text=True, start_new_session=True)
    return _sanitizer_run["proc"]


def sanitizer_run_result(timeout):
    """(exit status, output) of the session's sanitizer run, started now if it was not."""
    proc = start_sanitizer_run()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_sanitizer_run()
        raise
    log = _sanitizer_run["log"]
    log.seek(0)
    return proc.returncode, log.read()


def stop_sanitizer_run():
    """Ends the background run (and the compilers it started) if it still runs."""
    proc = _sanitizer_run.get("proc")
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the run and its compilers only
        except ProcessLookupError:
            pass
        proc.wait()


def pytest_collection_finish(session):
    if HAS_SOURCES and not session.config.option.collectonly and any(
            os.path.relpath(str(item.path), ROOT) == SANITIZE_TEST for item in session.items):
        start_sanitizer_run()


def pytest_unconfigure(config):
    stop_sanitizer_run()
    if "log" in _sanitizer_run:
        _sanitizer_run["log"].close()


def pytest_terminal_summary(terminalreporter):
    """The examples each property test ran (tests/test_properties.py), for the README."""
    import sys
    props = sys.modules.get("tests.test_properties")
    if props is not None and props.RAN:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(props.RAN.items()))
        terminalreporter.write_line(f"hypothesis profile '{props.PROFILE}': examples run: {counts} "
                                    f"(total {sum(props.RAN.values())})")
