"""Every kernel path gives the reference's values: the AVX2 and the portable
scalar path, one and two threads (identical bits), and each broadcast class of
weight and pos_weight (none, full size, scalar, periodic per class, large
periodic, per sample, per channel), above the size where the work is split
into chunks; the dx-only backward equals the fused one's dx."""
import mindspore as ms
import numpy as np
import pytest

import ms_bce
from ms_bce import _kernels
from tests import reference as ref
from tests.conftest import assert_rel, assert_ulps, quantize, to_ms, to_np
from tests.test_bce_with_logits_grad import grad_scales

PATHS = ["avx2", "scalar"]

# (input shape, weight shape, pos_weight shape): every operand class, > 64Ki elements
CASES = {
    "none": ((300, 1000), None, None),
    "full": ((300, 1000), (300, 1000), (300, 1000)),
    "scalar": ((300, 1000), (), (1,)),
    "per-class": ((30000, 10), (10,), (1, 10)),
    "large period": ((30, 10000), (10000,), None),     # period above the expanded-buffer limit
    "per-sample": ((100000, 3), (100000, 1), (3,)),    # offset grows with the flat index
    "per-channel": ((8, 5, 8000), (5, 1), (8, 1, 1)),  # offset wraps around: general strided
}


@pytest.fixture(autouse=True)
def restore_settings():
    yield
    _kernels.set_simd_path("auto")
    ms_bce.set_num_threads(0)


def data(shapes, seed=0):
    rng = np.random.default_rng(seed)
    x_shape, w_shape, p_shape = shapes
    x = rng.normal(scale=4.0, size=x_shape).astype(np.float32)
    y = rng.random(x_shape).astype(np.float32)
    w = None if w_shape is None else rng.uniform(0.5, 2.0, w_shape).astype(np.float32)
    p = None if p_shape is None else rng.uniform(0.5, 3.0, p_shape).astype(np.float32)
    return x, y, w, p


def run_all(x, y, w, p, dtype=ms.float32):
    """Forward (each reduction) and the fused gradients of every operand."""
    args = [None if a is None else to_ms(a, dtype) for a in (x, y, w, p)]
    outs = [to_np(ms_bce.ops.binary_cross_entropy_with_logits(*args, reduction=r)) for r in ref.REDUCTIONS]
    present = [a for a in args if a is not None]

    def loss(*ops):
        it = iter(ops)
        a, b = next(it), next(it)
        c = next(it) if w is not None else None
        d = next(it) if p is not None else None
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, c, d, "sum")
    grads = [to_np(g) for g in ms.grad(loss, grad_position=tuple(range(len(present))))(*present)]
    return outs, grads


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("path", PATHS)
def test_paths_and_threads(case, path):
    x, y, w, p = data(CASES[case])
    _kernels.set_simd_path(path)
    results = {}
    for threads in (1, 2):
        ms_bce.set_num_threads(threads)
        results[threads] = run_all(x, y, w, p)
    # the same bits whatever the thread count
    for a, b in zip(results[1][0] + results[1][1], results[2][0] + results[2][1]):
        assert a.tobytes() == b.tobytes()
    outs, grads = results[2]
    scale = ref.bce_with_logits_scale(x, y, w, p)
    for r, out in zip(ref.REDUCTIONS, outs):
        expected = ref.bce_with_logits(x, y, w, p, r)
        if r == "none":
            assert_ulps(out, expected, ms.float32, 4, scale=scale, what=f"{case} {path} none")
        else:
            assert_rel(out, expected, 1e-6, scale=ref.reduce(scale, r), what=f"{case} {path} {r}")
    want = [g for g in ref.bce_with_logits_grads(x, y, w, p, "sum") if g is not None]
    scales = [s for s in grad_scales(x, y, w, p, "sum", 1.0) if s is not None]
    for k, (a, e, s) in enumerate(zip(grads, want, scales)):
        if k < 2:
            assert_ulps(a, e, ms.float32, 4, scale=s, what=f"{case} {path} grad {k}")
        else:
            assert_rel(a, e, 1e-6, scale=s, what=f"{case} {path} grad {k}")


@pytest.mark.parametrize("dtype", [ms.float16, ms.bfloat16])
@pytest.mark.parametrize("path", PATHS)
def test_half_precision_paths(dtype, path):
    x, y, w, p = data(CASES["per-class"], seed=1)
    x = np.clip(x, -10, 10)
    _kernels.set_simd_path(path)
    outs, grads = run_all(x, y, w, p, dtype)
    q = [quantize(a, dtype) for a in (x, y, w, p)]
    assert_ulps(outs[0], ref.bce_with_logits(*q, reduction="none"), dtype, 1)
    assert_rel(outs[1], ref.bce_with_logits(*q, reduction="mean"), 1e-2 if dtype == ms.bfloat16 else 1e-3)
    want = ref.bce_with_logits_grads(*q, "sum")
    assert_ulps(grads[0], want[0], dtype, 1, scale=grad_scales(*q, "sum", 1.0)[0])


def test_vector_and_scalar_paths_agree():
    """Each within 4 ulp of the reference, so within 8 of each other (relative to
    the size of the formulas' terms)."""
    x, y, w, p = data(CASES["per-sample"], seed=2)
    got = {}
    for path in PATHS:
        _kernels.set_simd_path(path)
        got[path] = run_all(x, y, w, p)
    scales = [ref.bce_with_logits_scale(x, y, w, p)] + list(grad_scales(x, y, w, p, "sum", 1.0)[:2])
    for a, b, s in zip(got["avx2"][0][:1] + got["avx2"][1][:2], got["scalar"][0][:1] + got["scalar"][1][:2], scales):
        assert_ulps(a, b, ms.float32, 8, scale=s)


def test_weight_gradient_of_a_large_wrapping_operand_is_exact_and_deterministic():
    """A broadcast operand too large for per-chunk sums to fit the memory budget
    (fewer chunks): still exact, the same for one and two threads."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 1 << 20)).astype(np.float32)
    y = rng.random((2, 1 << 20)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, 1 << 20).astype(np.float32)

    def loss(a, b, c):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, c, None, "sum")
    dws = []
    for threads in (1, 2):
        ms_bce.set_num_threads(threads)
        dws.append(to_np(ms.grad(loss, grad_position=2)(to_ms(x), to_ms(y), to_ms(w))))
    assert dws[0].tobytes() == dws[1].tobytes()
    assert_rel(dws[0], ref.bce_with_logits_grads(x, y, w, None, "sum")[2], 1e-6)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_one_output_backward_kernels_equal_the_fused_one(reduction):
    """The kernels graph mode uses (one gradient each, so that it can drop the
    unused ones), called directly: the same bits as the fused kernel's outputs."""
    import ctypes
    from tests.test_kernel_abi import launch
    lib = ctypes.CDLL(_kernels.library_path())
    x, y, w, p = data(CASES["per-class"], seed=4)
    g = np.random.default_rng(5).uniform(-1, 1, x.shape).astype(np.float32) if reduction == "none" \
        else np.array(0.7, np.float32)
    for loss, operands, directions in (
            ("bce_with_logits", [x, y, w, p], ("input", "target", "weight", "pos_weight")),
            ("bce", [np.clip(np.abs(x) / 12, 0, 1).astype(np.float32), y, w], ("input", "target", "weight"))):
        suffix = "_wp" if loss == "bce_with_logits" else "_w"
        fused = [np.empty_like(a) for a in operands]
        t = [np.zeros(1, np.float32)]  # the t operand: label smoothing 0
        assert launch(lib, f"{loss}_backward_{reduction}{suffix}", operands + t + [g] + fused) == 0
        for k, direction in enumerate(directions):
            one = np.empty_like(operands[k])
            assert launch(lib, f"{loss}_backward_{direction}_{reduction}{suffix}", operands + t + [g, one]) == 0
            assert one.tobytes() == fused[k].tobytes(), (loss, direction)


def test_graph_mode_one_output_gradients_are_right_whichever_are_asked_for():
    """In graph mode each gradient comes from its own kernel: right alone and together."""
    x, y, w, p = data(((40, 6), (6,), (40, 1)), seed=6)
    args = [to_ms(a) for a in (x, y, w, p)]

    def loss(a, b, c, d):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, c, d, "mean")
    want = ref.bce_with_logits_grads(x, y, w, p, "mean")
    scales = grad_scales(x, y, w, p, "mean", 1.0)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        only_dx = to_np(ms.jit(ms.grad(loss, grad_position=0))(*args))
        every = [to_np(g) for g in ms.jit(ms.grad(loss, grad_position=(0, 1, 2, 3)))(*args)]
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert only_dx.tobytes() == every[0].tobytes()
    for k, (a, e, s) in enumerate(zip(every, want, scales)):
        assert_rel(a, e, 1e-6, scale=s, what=f"grad {k}")


def test_thread_setting():
    ms_bce.set_num_threads(3)
    assert ms_bce.get_num_threads() == 3
    ms_bce.set_num_threads(0)
    assert ms_bce.get_num_threads() >= 1
    with pytest.raises(ValueError, match="must be an int >= 0"):
        ms_bce.set_num_threads(-1)


@pytest.mark.parametrize("path", PATHS)
def test_masked_weights_and_zero_incoming_gradients_give_exact_zeros(path):
    """A zero weight (a mask) or a zero incoming gradient gives exactly 0 in
    the loss and the gradient of the logits (the float32 path keeps such
    elements: an exact 0 from an exact zero factor, mul0's 0), beside ordinary
    elements, whatever the logit; a zero weight times an infinite term is 0 too."""
    _kernels.set_simd_path(path)
    n = 70_000  # above one chunk: the vector path's segments
    rng = np.random.default_rng(7)
    x = rng.normal(scale=6.0, size=n).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    w = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.5, 2.0, n)).astype(np.float32)
    x[:4], y[:4], w[:4] = [np.inf, -np.inf, 30.0, -50.0], [0.0, 1.0, 0.0, 1.0], 0.0
    g = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(-2.0, 2.0, n)).astype(np.float32)
    loss = to_np(ms_bce.ops.binary_cross_entropy_with_logits(to_ms(x), to_ms(y), to_ms(w), None, "none"))
    want = ref.bce_with_logits(x, y, w, None, "none")
    assert np.all(loss[w == 0] == 0.0)
    assert_ulps(loss, want, ms.float32, 4, scale=ref.bce_with_logits_scale(x, y, w, None))

    def f(a):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, to_ms(y), to_ms(w), None, "none")
    _, vjp = ms.vjp(f, to_ms(x))
    dx = to_np(vjp(to_ms(g))[0])
    assert np.all(dx[(w == 0) | (g == 0)] == 0.0)
    want_dx = ref.bce_with_logits_grads(x, y, w, None, "none", g.astype(np.float64))[0]
    with np.errstate(invalid="ignore"):  # (the other scales meet 0 * inf at the infinite logits)
        scale = grad_scales(x, y, w, None, "none", g.astype(np.float64))[0]
    assert_ulps(dx, want_dx, ms.float32, 4, scale=scale)
    mean_dx = to_np(ms.grad(lambda a: ms_bce.ops.binary_cross_entropy_with_logits(a, to_ms(y), to_ms(w), None,
                                                                                  "mean") * 0.0)(to_ms(x)))
    np.testing.assert_array_equal(mean_dx, np.zeros(n, np.float32))
