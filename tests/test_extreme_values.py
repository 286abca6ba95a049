"""Kernel bugs the property tests found, pinned on both SIMD paths:

- the vector path computed exp(-|x|) in float32, where it is subnormal or 0
  past |x| = 87.3: the far tail's loss and gradients were lost (0, or a few %
  off) although a large weight, pos_weight or incoming gradient brings them
  back into float32's range;
- the incoming gradient of 'mean' was spread as float32(dout / numel), which
  underflows for a tiny dout;
- the per-element contributions to the gradients of a broadcast weight or
  pos_weight were rounded to float32 before being summed, so two that
  overflow float32 with opposite signs gave NaN where the true sum is finite;
- the float32 gradient of the logits carried G W as a float32 pair, whose low
  part is lost where G or G W is subnormal (g = 1e-40) while dX is not.
"""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import ms_bce
from ms_bce import _kernels
from tests import reference as ref
from tests.conftest import assert_ulps, to_np
from tests.test_bce_with_logits_grad import grad_scales

PATHS = ["avx2", "scalar"]


@pytest.fixture(autouse=True, params=PATHS)
def path(request):
    _kernels.set_simd_path(request.param)
    yield request.param
    _kernels.set_simd_path("auto")


def logits_loss(reduction, dout=None):
    def f(a, b, c, d):
        out = ms_bce.ops.binary_cross_entropy_with_logits(a, b, c, d, reduction)
        return out if dout is None else (out * dout).sum()
    return f


# far tails: e = exp(-|x|) subnormal (|x| in (87.3, 103.9)) or 0 in float32
FAR_X = np.array([87.0, 88.0, 90.0, 100.0, 103.0, 110.0, 120.0, 200.0, -88.0, -100.0, -120.0, 5.0], np.float32)
FAR_Y = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1], np.float32)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_far_tail_loss_keeps_its_accuracy_under_a_large_weight(reduction):
    """x = 120, y = 1, w = 1e30: the loss is 1e30 e^-120 = 7.67e-23 (the vector
    path returned 0)."""
    x, y = FAR_X, FAR_Y
    w = np.full(x.shape, 1e30, np.float32)
    p = np.full(x.shape, 3.0, np.float32)
    got = to_np(logits_loss(reduction)(Tensor(x), Tensor(y), Tensor(w), Tensor(p)))
    want = ref.bce_with_logits(x, y, w, p, reduction)
    if reduction == "none":
        assert_ulps(got, want, ms.float32, 4)
        assert got[6] == pytest.approx(3e30 * np.exp(-120.0), rel=1e-6)
    else:
        assert got == pytest.approx(want, rel=1e-6)


def test_far_tail_gradients_keep_their_accuracy_under_a_large_weight():
    x, y = FAR_X, FAR_Y
    w = np.full(x.shape, 1e30, np.float32)
    p = np.full(x.shape, 3.0, np.float32)
    g = np.linspace(0.5, 2.0, x.size).astype(np.float32)
    args = [Tensor(a) for a in (x, y, w, p)]
    got = [to_np(t) for t in ms.grad(logits_loss("none", Tensor(g)), grad_position=(0, 1, 2, 3))(*args)]
    want = ref.bce_with_logits_grads(x, y, w, p, "none", g)
    scales = grad_scales(*[a.astype(np.float64) for a in (x, y, w, p, g)][:4], "none", g.astype(np.float64))
    for name, a, e, s in zip(("dx", "dy", "dw", "dp"), got, want, scales):
        assert_ulps(a, e, ms.float32, 4, scale=s, what=name)
    assert got[0][6] == pytest.approx(-float(g[6]) * 3e30 * np.exp(-120.0), rel=1e-6)


def test_mean_incoming_gradient_is_not_rounded_to_float32():
    """dout = 1e-45 spread over 3 elements is 4.7e-46 (below float32's smallest
    subnormal, which it rounded to 0); times w = 1e30 it is a normal number."""
    x = np.array([0.5, 1.0, 2.0], np.float32)
    y = np.zeros(3, np.float32)
    w = np.full(3, 1e30, np.float32)
    dout = np.float32(1e-45)

    def f(a, b, c):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, c, None, "mean") * Tensor(dout)
    got = to_np(ms.grad(f, grad_position=0)(Tensor(x), Tensor(y), Tensor(w)))
    want = ref.bce_with_logits_grads(x, y, w, None, "mean", np.float64(dout))[0]
    assert np.all(want > 1e-16)
    assert_ulps(got, want, ms.float32, 4)


def test_weight_gradient_sums_contributions_beyond_float32_range():
    """Contributions +-1e40 (each past float32's range) cancel: dW = 0, not NaN."""
    x = np.full((2, 2), 1e30, np.float32)
    y = np.zeros((2, 2), np.float32)
    w = np.ones(2, np.float32)
    p = np.ones((2, 1), np.float32)
    g = np.array([[1e10, 1e10], [-1e10, -1e10]], np.float32)
    got = ms.grad(logits_loss("none", Tensor(g)), grad_position=(2, 3))(*[Tensor(a) for a in (x, y, w, p)])
    np.testing.assert_array_equal(to_np(got[0]), [0.0, 0.0])
    np.testing.assert_array_equal(to_np(got[1]), [[0.0], [0.0]])  # y = 0: no pos_weight term
    # and one that does not cancel overflows to inf, as float32 must
    g2 = np.array([[1e10, 1e10], [1e10, 1e10]], np.float32)
    got2 = ms.grad(logits_loss("none", Tensor(g2)), grad_position=2)(*[Tensor(a) for a in (x, y, w, p)])
    np.testing.assert_array_equal(to_np(got2), [np.inf, np.inf])


def test_far_tail_underflows_where_double_exp_does():
    """Past x = -745.13, exp(x) is 0 in double (std::exp, the scalar path, the
    reference): an infinite weight or incoming gradient times that term is
    0 * inf = 0, not inf (the double vector exp returned e^-708 there); just
    above, e^-720 is a subnormal double and inf times it is inf on every path."""
    x = np.array([-746.0, -800.0, -1e4, -720.0], np.float32)
    y = np.zeros(4, np.float32)
    w = np.full(4, np.inf, np.float32)
    for reduction in ("none", "sum"):  # 'sum' of a few elements: the double-precision reduction path
        got = to_np(logits_loss(reduction)(Tensor(x), Tensor(y), Tensor(w), None))
        want = ref.bce_with_logits(x, y, w, None, reduction)
        np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_array_equal(ref.bce_with_logits(x, y, w, None, "none"), [0.0, 0.0, 0.0, np.inf])
    g = np.full(4, np.inf, np.float32)
    dw = ms.grad(logits_loss("none", Tensor(g)), grad_position=2)(Tensor(x), Tensor(y), Tensor(np.ones(4, np.float32)),
                                                                  None)
    np.testing.assert_array_equal(to_np(dw), [0.0, 0.0, 0.0, np.inf])


def test_zero_weight_times_an_infinite_term_is_zero_on_the_float32_path():
    """The vector forward is float32 throughout: a zero weight times a term made
    infinite by pos_weight = inf (or x = +inf with y < 1) is mul0's 0, not NaN,
    in every lane of a 'none' and of a large 'mean' (the found bug: w * r gave
    0 * inf = NaN); a NaN operand still gives NaN."""
    n = 70_000  # above one chunk: the float32 path, not the small reductions' double one
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, n).astype(np.float32)
    y = rng.uniform(0.1, 0.9, n).astype(np.float32)
    w = rng.uniform(0.5, 2, n).astype(np.float32)
    p = rng.uniform(0.5, 2, n).astype(np.float32)
    w[::7] = 0.0
    p[::7] = np.inf           # w = 0, P Y sp(-X) = inf
    x[3::7], w[3::7] = np.inf, -0.0  # w = -0, (1 - Y) sp(X) = inf
    x[5] = np.nan
    got = to_np(logits_loss("none")(*(Tensor(a) for a in (x, y, w, p))))
    want = ref.bce_with_logits(x, y, w, p, "none")
    assert np.isnan(got[5]) and np.isnan(want[5])
    np.testing.assert_array_equal(got[::7], 0.0)
    np.testing.assert_array_equal(got[3::7], 0.0)
    finite = np.isfinite(want)
    assert_ulps(got[finite], want[finite], ms.float32, 4, scale=ref.bce_with_logits_scale(x, y, w, p)[finite])
    x[5] = 0.0
    got_mean = float(to_np(logits_loss("mean")(*(Tensor(a) for a in (x, y, w, p)))))
    want_mean = float(ref.bce_with_logits(x, y, w, p, "mean"))
    assert abs(got_mean - want_mean) <= 1e-6 * abs(want_mean)


def test_an_overflowing_intermediate_is_redone_where_the_result_is_finite():
    """Found by the long property profile: x = 0, y = 1.2, p = 3.3e38 gives
    P Y = 3.96e38, beyond float32, while the loss (2.74e38) and dX are finite:
    the float32 vector path must not return inf (such vectors are redone in
    double), in a 'none' above one chunk and in a one-output gradient."""
    n = 70_000
    x = np.zeros(n, np.float32)
    y = np.full(n, 1.2, np.float32)
    p = np.full(n, 3.3e38, np.float32)
    w = np.ones(n, np.float32)
    x[1::2], p[1::2] = 1.5, 2.0  # ordinary lanes beside them
    got = to_np(logits_loss("none")(*(Tensor(a) for a in (x, y, w, p))))
    want = ref.bce_with_logits(x, y, w, p, "none")
    assert np.all(np.isfinite(want)) and np.all(np.isfinite(got))
    assert_ulps(got, want, ms.float32, 4, scale=ref.bce_with_logits_scale(x, y, w, p))
    g = Tensor(np.full(n, 1e-3, np.float32))
    dx = to_np(ms.grad(logits_loss("none", g), grad_position=0)(*(Tensor(a) for a in (x, y, w, p))))
    want_dx = ref.bce_with_logits_grads(x, y, w, p, "none", np.full(n, 1e-3))[0]
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx, want_dx, rtol=4 * 2.0 ** -23)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_a_subnormal_incoming_gradient_keeps_dx_accurate(reduction):
    """Found by the long property profile: g = 1e-40 (subnormal in float32)
    times y = 3.4e38 gives dX = -0.048; the float32 path's G W = g w lost its
    low bits (4e-6 relative): such elements are redone in double.  'none':
    dout per element ('none' above one chunk, the vector path); 'mean':
    dout = 1e-40 spread over 3 elements."""
    n = 70_000 if reduction == "none" else 3
    x = np.full(n, -4.5573664, np.float32)
    y = np.full(n, 3.4028235e38, np.float32)
    w = np.full(n, 1.4239873, np.float32)
    y[1::2] = 0.25  # ordinary lanes beside them
    g = np.full(n, 1e-40, np.float32) if reduction == "none" else np.float32(1e-40)

    def f(a):  # dout reaches the kernel as given (a product with MindSpore's Mul may flush it to 0)
        return ms_bce.ops.binary_cross_entropy_with_logits(a, Tensor(y), Tensor(w), None, reduction)
    _, vjp = ms.vjp(f, Tensor(x))
    got = to_np(vjp(Tensor(g))[0])
    want = ref.bce_with_logits_grads(x, y, w, None, reduction, g.astype(np.float64))[0]
    assert_ulps(got, want, ms.float32, 4, scale=grad_scales(x, y, w, None, reduction, g.astype(np.float64))[0])
    assert abs(float(got[0])) > 1e-3
