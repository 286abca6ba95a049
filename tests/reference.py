"""Float64 NumPy reference for ms_bce's losses and their gradients.

The formulas of the spec (section 2), evaluated in float64 with the same
conventions as the kernels: softplus in its stable form, and a product with
an exactly-zero factor is zero even when the other factor is infinite (a
term whose coefficient is zero contributes nothing); NaN propagates.
Imported by the tests and the benchmark alike.
"""
import numpy as np

REDUCTIONS = ("none", "mean", "sum")


def as64(a):
    """float64 copy of an array-like (None stays None)."""
    return None if a is None else np.asarray(a, dtype=np.float64)


def softplus(z):
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), exact in both tails."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid(z):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def mul0(a, b):
    """a * b, with 0 * inf = 0 (NaN still propagates)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore"):
        r = a * b
    return np.where(np.isnan(r) & ~np.isnan(a) & ~np.isnan(b), 0.0, r)


def reduce_to_shape(grad, shape):
    """Sum a gradient of the broadcast shape back to an operand's own shape."""
    grad = np.asarray(grad, np.float64)
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and grad.shape[lead + i] != 1)
    return np.sum(grad, axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def reduce(loss, reduction):
    """'none' -> loss, 'mean' -> sum / numel (NaN when empty), 'sum' -> sum."""
    if reduction == "none":
        return loss
    total = np.sum(loss, dtype=np.float64)
    if reduction == "sum":
        return np.float64(total)
    with np.errstate(invalid="ignore"):
        return np.float64(total / loss.size) if loss.size else np.float64(np.nan)


def incoming_grad(dout, shape, reduction):
    """The incoming gradient G per element: dout itself for 'none', else the
    scalar dout (divided by numel for 'mean') broadcast to shape."""
    dout = np.asarray(dout, np.float64)
    if reduction == "none":
        return np.broadcast_to(dout, shape)
    n = int(np.prod(shape))
    g = dout / n if (reduction == "mean" and n) else dout
    return np.broadcast_to(g, shape)


# ---------------------------------------------------------- BCEWithLogits ---

def _logits_operands(x, y, w, p):
    x, y = as64(x), as64(y)
    w = np.ones(()) if w is None else as64(w)
    p = np.ones(()) if p is None else as64(p)
    return x, y, np.broadcast_to(w, x.shape), np.broadcast_to(p, x.shape)


def bce_with_logits_unweighted(x, y, p):
    """(1 - Y) softplus(X) + P Y softplus(-X), elementwise (= dL/dW)."""
    return mul0(1.0 - y, softplus(x)) + mul0(mul0(p, y), softplus(-x))


def bce_with_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    """The loss in float64: L = W [(1 - Y) softplus(X) + P Y softplus(-X)], reduced."""
    x, y, w, p = _logits_operands(x, y, weight, pos_weight)
    return reduce(mul0(w, bce_with_logits_unweighted(x, y, p)), reduction)


def bce_with_logits_scale(x, y, weight=None, pos_weight=None):
    """|W| (|(1 - Y) softplus(X)| + |P Y softplus(-X)|): the size the accuracy bar is
    relative to when the two terms can cancel (targets outside [0, 1])."""
    x, y, w, p = _logits_operands(x, y, weight, pos_weight)
    return np.abs(mul0(w, np.abs(mul0(1.0 - y, softplus(x))) + np.abs(mul0(mul0(p, y), softplus(-x)))))


def bce_with_logits_grads(x, y, weight=None, pos_weight=None, reduction="mean", dout=1.0):
    """(dX, dY, dW, dP) in float64 from the spec's analytic formulas, dW and dP
    summed back to the shapes of weight and pos_weight (None when not given)."""
    x_shape = np.shape(x)
    xw, yw, w, p = _logits_operands(x, y, weight, pos_weight)
    g = incoming_grad(dout, x_shape, reduction)
    sp_pos, sp_neg = softplus(xw), softplus(-xw)
    dx = mul0(g, mul0(w, mul0(1.0 - yw, sigmoid(xw)) - mul0(mul0(p, yw), sigmoid(-xw))))
    dy = mul0(g, mul0(w, mul0(p, sp_neg) - sp_pos))
    dw = None if weight is None else reduce_to_shape(mul0(g, bce_with_logits_unweighted(xw, yw, p)), np.shape(weight))
    dp = None if pos_weight is None else reduce_to_shape(mul0(g, mul0(w, mul0(yw, sp_neg))), np.shape(pos_weight))
    return dx, dy, dw, dp


def bce_with_logits_seed_form(x, y, weight=None, pos_weight=None):
    """The seeds' (PyTorch's) formula (1 - Y) X + (1 + (P - 1) Y) softplus(-X) in
    float64: equal to the stable form for finite inputs, used to cross-check it."""
    x, y, w, p = _logits_operands(x, y, weight, pos_weight)
    return w * ((1.0 - y) * x + (1.0 + (p - 1.0) * y) * softplus(-x))


# ------------------------------------------------------------------- BCE ---

BCE_EPS = np.float32(1e-12)


def bce_guarded(p):
    """MindSpore 2.10's guarded arguments a = p + eps and b = (1 - p) + eps, each
    formed in float32 as the built-in forms them (p is float32-representable),
    returned as float64."""
    p32 = np.asarray(p, np.float64).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        a = (p32 + BCE_EPS).astype(np.float64)
        b = ((np.float32(1.0) - p32) + BCE_EPS).astype(np.float64)
    return a, b


def _bce_logs(p):
    a, b = bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a), np.log(b)


def bce_log_likelihood(p, y):
    """Y log(a) + (1 - Y) log(b) in float64 (the negated unweighted loss, -dL/dW)."""
    la, lb = _bce_logs(p)
    return mul0(as64(y), la) + mul0(1.0 - as64(y), lb)


def bce(p, y, weight=None, reduction="mean"):
    """L = -W [Y log(p + eps) + (1 - Y) log((1 - p) + eps)], eps = float32(1e-12), reduced."""
    p, y = as64(p), as64(y)
    w = np.broadcast_to(np.ones(()) if weight is None else as64(weight), p.shape)
    return reduce(-mul0(w, bce_log_likelihood(p, y)), reduction)


def bce_scale(p, y, weight=None):
    """|W| (|Y log a| + |(1 - Y) log b|): the size accuracy bars are relative to."""
    p, y = as64(p), as64(y)
    w = np.broadcast_to(np.ones(()) if weight is None else as64(weight), p.shape)
    la, lb = _bce_logs(p)
    return np.abs(w) * (np.abs(mul0(y, la)) + np.abs(mul0(1.0 - y, lb)))


def bce_grads(p, y, weight=None, reduction="mean", dout=1.0):
    """(dp, dY, dW): the exact derivatives of the guarded forward, dW summed back
    to the weight's shape (None when no weight)."""
    p, y = as64(p), as64(y)
    w = np.broadcast_to(np.ones(()) if weight is None else as64(weight), p.shape)
    g = incoming_grad(dout, p.shape, reduction)
    a, b = bce_guarded(p)
    la, lb = _bce_logs(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        dp = mul0(g, mul0(w, mul0(1.0 - y, 1.0 / b) - mul0(y, 1.0 / a)))
    dy = mul0(g, mul0(w, lb - la))
    dw = None if weight is None else reduce_to_shape(-mul0(g, bce_log_likelihood(p, y)), np.shape(weight))
    return dp, dy, dw
