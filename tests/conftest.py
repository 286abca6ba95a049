"""Fixtures and helpers: execution modes, dtype rows, tensor conversion, ULP checks."""
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

MODES = ("pynative", "graph")

# Checks of the source tree itself (building from setup.py, the sdist, the one
# version): skipped where this tests/ folder sits beside no ms_bce/ sources, as
# when .ci/check-dist runs the suite from an unpacked sdist against an
# installed wheel.
needs_sources = pytest.mark.skipif(
    not os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ms_bce",
                                    "_version.py")),
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


# ---------------------------------------------------------------- dtypes ---

# (MindSpore dtype, ULPs allowed against the float64 reference): spec section 6.
DTYPES = {
    "float32": (ms.float32, 4),
    "float16": (ms.float16, 1),
    "bfloat16": (ms.bfloat16, 1),
}


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


def pytest_terminal_summary(terminalreporter):
    """The examples each property test ran (tests/test_properties.py), for the README."""
    import sys
    props = sys.modules.get("tests.test_properties")
    if props is not None and props.RAN:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(props.RAN.items()))
        terminalreporter.write_line(f"hypothesis profile '{props.PROFILE}': examples run: {counts} "
                                    f"(total {sum(props.RAN.values())})")
