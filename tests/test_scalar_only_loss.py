"""A loss whose policy has scalar element maths only (no AVX2 functions)
builds against the CPU driver and runs on the portable path under every SIMD
setting (tests/native/scalar_loss_check.cc); its entry points are exactly the
names the loss registry's rules give (ms_bce/_losses.py)."""
import ctypes
import re
import subprocess

import numpy as np
import pytest

from tests.abi import BAD_DTYPE, BAD_PARAM_COUNT, BAD_SHAPE, OK, launch, load_registry

NAME = "sq_test"


@pytest.fixture(scope="module")
def lib_path(test_losses_library):
    return test_losses_library


@pytest.fixture(scope="module")
def lib(lib_path):
    return ctypes.CDLL(lib_path)


def expected_names():
    reg = load_registry()
    names = []
    for hm in reg.MASKS:
        for hw in (False, True):
            for hp in (False, True):
                for d in reg.directions(NAME, hw, hp):
                    names += [reg.entry_name(NAME, d, r, hw, hp, hm) for r in reg.REDUCTIONS]
    return names


def test_exports_follow_the_registry_naming(lib_path):
    out = subprocess.run(["nm", "-D", "--defined-only", lib_path], capture_output=True, text=True, check=True).stdout
    exported = set(re.findall(r"^[0-9a-f]+ T (\w+)$", out, re.M))
    kernels = {n for n in exported if n.startswith(NAME + "_")}
    want = expected_names()
    assert len(want) == 120  # 60 operand-set entry points, without a mask and with one
    assert kernels == set(want) | {n + "InferShape" for n in want}


def reference(x, y, w, p, reduction, dout):
    d = x - y
    loss = w * p * d * d
    g = dout if reduction == "none" else np.full(x.shape, dout / (x.size if reduction == "mean" else 1.0))
    grads = [2 * g * w * p * d, -2 * g * w * p * d, g * p * d * d, g * w * d * d]
    fwd = loss if reduction == "none" else (loss.mean() if reduction == "mean" else loss.sum())
    return fwd, grads


def reduce_to(a, shape):
    """Sum a full-size gradient over the dimensions `shape` was broadcast along."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    return a.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(7,), (300, 300)], ids=["small", "two-chunks"])
def test_portable_path_on_every_simd_setting(lib, reduction, shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    y = rng.normal(size=shape).astype(np.float32)
    w = rng.uniform(0.5, 2, shape[-1:]).astype(np.float32)  # broadcast: summed gradient
    p = rng.uniform(0.5, 2, shape).astype(np.float32)       # full size: element-wise gradient
    dout = (rng.normal(size=shape) if reduction == "none" else np.array(1.5)).astype(np.float32)
    f64 = [a.astype(np.float64) for a in (x, y, w, p)]
    want_fwd, want_grads = reference(*f64, reduction, dout.astype(np.float64))
    want_grads[2] = reduce_to(want_grads[2], w.shape)
    results = []
    t = np.zeros(1, np.float32)  # the t operand: the drivers' options alone (label smoothing 0)
    for path in (1, 2):  # portable, then AVX2 where the CPU has it: this loss has no vector path
        assert lib.ms_bce_set_simd_path(path) == OK
        out = np.zeros(shape if reduction == "none" else (), np.float32)
        assert launch(lib, f"{NAME}_forward_{reduction}_wp", [x, y, w, p, t, out]) == OK
        grads = [np.zeros_like(a) for a in (x, y, w, p)]
        assert launch(lib, f"{NAME}_backward_{reduction}_wp", [x, y, w, p, t, dout, *grads]) == OK
        one = np.zeros_like(w)
        assert launch(lib, f"{NAME}_backward_weight_{reduction}_wp", [x, y, w, p, t, dout, one]) == OK
        np.testing.assert_allclose(out, want_fwd, rtol=1e-5)
        for got, want in zip(grads, want_grads):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(one, grads[2])
        results.append([out, *grads])
    lib.ms_bce_set_simd_path(0)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------- scalar parameters ---
# sqp_test: L = A W P (X - Y - B)^2 with theta = (A, B), the loss's scalar
# parameters, as one trailing 1-D float32 input (custom_ops/common/params.h).

PNAME = "sqp_test"
THETA = np.array([0.75, -0.25, 0.0], np.float32)  # (A, B), then the label smoothing (0)


def test_parameter_loss_exports_the_same_names(lib_path):
    out = subprocess.run(["nm", "-D", "--defined-only", lib_path], capture_output=True, text=True, check=True).stdout
    exported = set(re.findall(r"^[0-9a-f]+ T (\w+)$", out, re.M))
    want = {n.replace(NAME, PNAME, 1) for n in expected_names()}
    assert {n for n in exported if n.startswith(PNAME + "_")} == want | {n + "InferShape" for n in want}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_parameters_reach_the_element_maths(lib, reduction, dtype):
    rng = np.random.default_rng(2)
    shape = (40, 6)
    x, y = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    w = rng.uniform(0.5, 2, (6,)).astype(dtype)
    p = rng.uniform(0.5, 2, shape).astype(dtype)
    dout = (rng.normal(size=shape) if reduction == "none" else np.array(1.5)).astype(dtype)
    a, b = THETA[:2].astype(np.float64)
    f64 = [v.astype(np.float64) for v in (x, y, w, p)]
    want_fwd, want_grads = reference(f64[0] - b, f64[1], f64[2], f64[3], reduction, dout.astype(np.float64))
    want_fwd = a * want_fwd
    want_grads = [a * g for g in want_grads]
    want_grads[2] = reduce_to(want_grads[2], w.shape)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=2e-3, atol=2e-3)
    out = np.zeros(shape if reduction == "none" else (), dtype)
    # t is float32 whatever the operands' dtype
    assert launch(lib, f"{PNAME}_forward_{reduction}_wp", [x, y, w, p, THETA, out]) == OK
    np.testing.assert_allclose(out.astype(np.float64), want_fwd, **tol)
    grads = [np.zeros_like(v) for v in (x, y, w, p)]
    assert launch(lib, f"{PNAME}_backward_{reduction}_wp", [x, y, w, p, THETA, dout, *grads]) == OK
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got.astype(np.float64), want, **tol)
    for k, direction in enumerate(["input", "target", "weight", "pos_weight"]):
        one = np.zeros_like(grads[k])
        assert launch(lib, f"{PNAME}_backward_{direction}_{reduction}_wp", [x, y, w, p, THETA, dout, one]) == OK
        np.testing.assert_array_equal(one, grads[k])


def test_parameter_operand_is_checked(lib):
    x = np.ones((3,), np.float32)
    out = np.zeros((3,), np.float32)
    name = f"{PNAME}_forward_none"
    assert launch(lib, name, [x, x, THETA, out]) == OK
    np.testing.assert_allclose(out, 0.75 * 0.25 ** 2)
    assert launch(lib, name, [x, x, out]) == BAD_PARAM_COUNT                    # t missing
    assert launch(lib, name, [x, x, THETA[:1], out]) == BAD_SHAPE              # one value for three
    assert launch(lib, name, [x, x, THETA.reshape(1, 3), out]) == BAD_SHAPE    # not 1-D
    assert launch(lib, name, [x, x, THETA.astype(np.float16), out]) == BAD_DTYPE  # not float32
    h = x.astype(np.float16)
    assert launch(lib, name, [h, h, THETA, out.astype(np.float16)]) == OK      # float32 t beside float16 operands
    assert launch(lib, name, [h, x, THETA, out]) == BAD_DTYPE                  # the operands still share one dtype
    # a loss without parameters takes the options alone: t of one value
    assert launch(lib, f"{NAME}_forward_none", [x, x, THETA, out]) == BAD_SHAPE
    assert launch(lib, f"{NAME}_forward_none", [x, x, out]) == BAD_PARAM_COUNT
    assert launch(lib, f"{NAME}_forward_none", [x, x, THETA[2:], out]) == OK
