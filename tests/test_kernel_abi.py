"""The C entry points called directly through ctypes, outside MindSpore: valid
calls give the reference's values, malformed calls return their error code
(custom_ops/cpu/common.h: Status) and touch nothing."""
import ctypes

import numpy as np
import pytest

from ms_bce import _kernels
from tests import reference as ref
from tests.abi import (BAD_DTYPE, BAD_PARAM_COUNT, BAD_RANK, BAD_SHAPE, NULL_DATA, OK, OUT_OF_RANGE,  # noqa: F401
                       last_error, launch)

# the t operand of every loss entry point: its scalars (label smoothing 0 here)
T0 = np.zeros(1, np.float32)


@pytest.fixture(scope="module")
def lib():
    return ctypes.CDLL(_kernels.library_path("CPU"))


def case(shape=(3, 4)):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.5, 2, shape[-1:]).astype(np.float32)
    return x, y, w


def test_valid_forward_and_backward_calls(lib):
    x, y, w = case()
    out = np.zeros((), np.float32)
    assert launch(lib, "bce_with_logits_forward_sum_w", [x, y, w, T0, out]) == OK
    np.testing.assert_allclose(out, ref.bce_with_logits(x, y, w, None, "sum"), rtol=1e-6)
    dout = np.ones((), np.float32)
    dx, dy, dw = np.zeros_like(x), np.zeros_like(y), np.zeros_like(w)
    assert launch(lib, "bce_with_logits_backward_sum_w", [x, y, w, T0, dout, dx, dy, dw]) == OK
    want = ref.bce_with_logits_grads(x, y, w, None, "sum")
    np.testing.assert_allclose(dx, want[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, want[2], rtol=1e-6)


def test_float16_call(lib):
    x, y, _ = case()
    x16, y16 = x.astype(np.float16), y.astype(np.float16)
    out = np.zeros(x.shape, np.float16)
    assert launch(lib, "bce_with_logits_forward_none", [x16, y16, T0, out]) == OK
    np.testing.assert_allclose(out, ref.bce_with_logits(x16, y16, reduction="none"), rtol=1e-3)


def test_wrong_parameter_count(lib):
    x, y, w = case()
    out = np.full((), 7.0, np.float32)
    assert launch(lib, "bce_with_logits_forward_sum_w", [x, y, w, T0, out], nparam=3) == BAD_PARAM_COUNT
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, w, out]) == BAD_PARAM_COUNT
    assert launch(lib, "bce_with_logits_forward_sum_w", [x, y, w, T0, out], nparam=-1) == BAD_PARAM_COUNT
    assert out == 7.0  # untouched


def test_unknown_or_mixed_dtype(lib):
    x, y, _ = case()
    out = np.zeros((), np.float32)
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], dtypes=["float64", "float64", "float32", "float64"]) == BAD_DTYPE
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], dtypes=["float32", "int8", "float32", "float32"]) == BAD_DTYPE
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], dtypes=["float32", "float16", "float32", "float32"]) == BAD_DTYPE


def test_mismatched_shapes(lib):
    x, y, w = case()
    out = np.zeros((), np.float32)
    assert launch(lib, "bce_with_logits_forward_sum", [x, y.reshape(4, 3), T0, out]) == BAD_SHAPE
    assert launch(lib, "bce_with_logits_forward_sum_w", [x, y, np.ones(3, np.float32), T0, out]) == BAD_SHAPE
    assert launch(lib, "bce_with_logits_forward_none", [x, y, T0, np.zeros(3, np.float32)]) == BAD_SHAPE  # output
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, np.zeros(1, np.float32)]) == BAD_SHAPE  # not 0-d
    dx = np.zeros_like(x)
    assert launch(lib, "bce_with_logits_backward_sum_w",
                  [x, y, w, T0, np.ones((), np.float32), dx, dx, np.zeros(1, np.float32)]) == BAD_SHAPE


def test_bad_ranks_and_dimensions(lib):
    x, y, _ = case()
    out = np.zeros((), np.float32)
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], ndims=[-1, 2, 1, 0]) == BAD_RANK
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], ndims=[17, 17, 1, 0],
                  shapes=[[1] * 17, [1] * 17, [1], []]) == BAD_RANK
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], shapes=[[3, -4], [3, -4], [1], []]) == BAD_RANK
    huge = [2 ** 40, 2 ** 40]  # element count overflows int64
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], shapes=[huge, huge, [1], []]) == BAD_RANK


def test_null_data(lib):
    x, y, _ = case()
    out = np.zeros((), np.float32)
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], null=(1,)) == NULL_DATA
    assert launch(lib, "bce_with_logits_forward_sum", [x, y, T0, out], null=(3,)) == NULL_DATA
    empty = np.zeros((0, 4), np.float32)
    assert launch(lib, "bce_with_logits_forward_sum", [empty, empty, T0, out], null=(0, 1)) == OK  # nothing to read
    assert out == 0.0


def test_bce_entry_points(lib):
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    y = rng.random((3, 4)).astype(np.float32)
    w = rng.uniform(0.5, 2, (4,)).astype(np.float32)
    out = np.zeros((), np.float32)
    assert launch(lib, "bce_forward_mean_w", [p, y, w, T0, out]) == OK
    np.testing.assert_allclose(out, ref.bce(p, y, w, "mean"), rtol=1e-6)
    dp, dy, dw = np.zeros_like(p), np.zeros_like(y), np.zeros_like(w)
    assert launch(lib, "bce_backward_mean_w", [p, y, w, T0, np.ones((), np.float32), dp, dy, dw]) == OK
    want = ref.bce_grads(p, y, w, "mean")
    np.testing.assert_allclose(dp, want[0], rtol=1e-5)
    np.testing.assert_allclose(dw, want[2], rtol=1e-5)
    # malformed: no pos_weight variant exists, wrong counts, shapes, dtypes
    assert not hasattr(lib, "bce_forward_mean_p")
    assert launch(lib, "bce_forward_mean_w", [p, y, out, T0]) == BAD_PARAM_COUNT
    assert launch(lib, "bce_forward_mean_w", [p, y, np.ones(5, np.float32), T0, out]) == BAD_SHAPE
    assert launch(lib, "bce_forward_mean", [p, y, T0, out], dtypes=["float32", "float32", "float32", "bfloat17"]) == BAD_DTYPE


@pytest.mark.parametrize("name,n_out", [("bce_forward_none", 1), ("bce_forward_mean", 0), ("bce_backward_input_none", 1),
                                        ("bce_backward_target_mean", 1), ("bce_backward_weight_sum_w", 1)])
def test_bce_out_of_range_probability_is_a_status_with_a_message(lib, name, n_out):
    """Called without MindSpore's launcher (extra = NULL) the kernel returns
    OUT_OF_RANGE and leaves the message for ms_bce_last_error(); nothing is thrown."""
    p = np.array([[0.5, 0.0, np.nan, 1.0], [0.25, -3.5e-8, 2.0, 0.75]], np.float32)
    y = np.ones_like(p)
    reduced = "mean" in name or "sum" in name
    w = [np.full(4, 0.5, np.float32)] if name.endswith("_w") else []
    g = [np.ones((), np.float32) if reduced else np.ones_like(p)] if "backward" in name else []
    outs = ([np.zeros(4, np.float32)] if w else [np.zeros_like(p) for _ in range(n_out)]) or [np.zeros((), np.float32)]
    assert launch(lib, name, [p, y] + w + [T0] + g + outs) == OUT_OF_RANGE
    assert last_error(lib) == "For 'BCELoss', every element of 'logits' must be in [0, 1], but got -3.5e-08 at index 5."
    p[1, 1] = 0.0
    assert launch(lib, name, [p, y] + w + [T0] + g + outs) == OUT_OF_RANGE
    assert last_error(lib).endswith("but got 2 at index 6.")
    p[1, 2] = 1.0
    assert launch(lib, name, [p, y] + w + [T0] + g + outs) == OK


def test_fused_bce_backward_leaves_the_domain_to_the_forward(lib):
    """The fused backward serves PyNative, where the forward (which checks) always
    runs first: it does not check, so one gradient call reports the error once."""
    p = np.array([0.5, -0.25, 0.75], np.float32)
    y = np.ones_like(p)
    dp, dy = np.zeros_like(p), np.zeros_like(p)
    assert launch(lib, "bce_backward_sum", [p, y, T0, np.ones((), np.float32), dp, dy]) == OK
    assert np.isfinite(dp[[0, 2]]).all() and np.isnan(dy[1])
