"""Float64 NumPy reference for ms_bce's losses and their gradients.

The formulas of the spec (section 2), evaluated in float64 with the same
conventions as the kernels: softplus in its stable form, and a product with
an exactly-zero factor is zero even when the other factor is infinite (a
term whose coefficient is zero contributes nothing); NaN propagates.
Imported by the tests and the benchmark alike (NumPy only: no MindSpore).

Besides the losses and gradients: the sizes of their terms (what accuracy
bars are relative to), the elements no float64 reference determines, the
BCELoss rule evaluated in float32 arithmetic where float32 cannot hold its
intermediates, and BCELoss's out-of-range message (tests/test_properties.py).
"""
import math

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


# --------------------------- its relatives: SigmoidCrossEntropyWithLogits, ---
# ------------------------------------------------ multilabel_soft_margin_loss ---

def sigmoid_cross_entropy_with_logits(x, y):
    """L = (1 - Y) softplus(X) + Y softplus(-X) elementwise: BCEWithLogitsLoss, 'none'."""
    return bce_with_logits(x, y, reduction="none")


def _row_means(elementwise):
    """The mean over the last axis (the classes); NaN for rows of no class."""
    e = np.asarray(elementwise, np.float64)
    with np.errstate(invalid="ignore"):
        return np.sum(e, axis=-1) / e.shape[-1] if e.shape[-1] else np.full(e.shape[:-1], np.nan)


def multilabel_soft_margin_loss(x, y, weight=None, reduction="mean"):
    """MindSpore's definition in float64: per row (the last axis holds C classes)
    1/C sum_j W_j [Y_j softplus(-X_j) + (1 - Y_j) softplus(X_j)]; 'none' -> the
    rows, 'mean' -> their mean (NaN for no row), 'sum' -> their sum."""
    rows = _row_means(bce_with_logits(x, y, weight, None, "none"))
    if reduction == "none":
        return rows
    if reduction == "sum":
        return np.float64(np.sum(rows))
    with np.errstate(invalid="ignore"):
        return np.float64(np.sum(rows) / rows.size) if rows.size else np.float64(np.nan)


def multilabel_scale(x, y, weight=None, reduction="mean"):
    """The terms' size of each result (the bar is relative to it): the rows of
    |W| (|(1 - Y) softplus(X)| + |Y softplus(-X)|), reduced as the loss is."""
    rows = _row_means(bce_with_logits_scale(x, y, weight))
    if reduction == "none":
        return rows
    total = np.sum(rows)
    return total / rows.size if reduction == "mean" and rows.size else total


def multilabel_soft_margin_loss_grads(x, y, weight=None, reduction="mean", dout=1.0):
    """(dX, dY, dW) in float64, dW summed to the weight's shape (None without a
    weight): each element's incoming gradient is the row's (dout for 'none', dout
    for 'sum', dout / rows for 'mean') divided by C."""
    shape = np.shape(x)
    classes = shape[-1]
    dout = np.asarray(dout, np.float64)
    rows = int(np.prod(shape[:-1]))
    if reduction == "none":
        g = np.broadcast_to(dout[..., None], shape) / classes
    else:
        g = np.broadcast_to(dout / classes / (rows if reduction == "mean" else 1), shape)
    dx, dy, dw, _ = bce_with_logits_grads(x, y, weight, None, "none", g)
    return dx, dy, dw


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


# ------------------------------------------------- sizes, indeterminacy ---

def amul(*factors):
    """|a| * |b| * ... with 0 * inf = 0 (the size of a product term)."""
    r = np.abs(np.asarray(factors[0], np.float64))
    for f in factors[1:]:
        r = mul0(r, np.abs(np.asarray(f, np.float64)))
    return r


def indeterminate(value, scale, *multipliers, rel=1e-6, limit=math.inf):
    """Elements whose result no float64 reference determines: a sum of terms
    that cancels to within `rel` of the terms' size (out-of-range targets or
    probabilities of ~1e30 do this), multiplied by factors (weight,
    pos_weight, incoming gradient) that make the terms' size infinite or
    beyond `limit` (the output dtype's range).  The digits that decide such a
    product are below both the reference's and the kernel's rounding (x = 0,
    y = 1e30, w = inf: exactly inf * log 2, the float64 reference cancels to
    0 and gives 0; y = 2.4e25, w = 1e30: exactly 6.9e29, the reference 0, a
    kernel rounding residual times 1e30 overflows bfloat16)."""
    with np.errstate(invalid="ignore", over="ignore"):
        size = amul(scale, *[np.broadcast_to(np.asarray(m, np.float64), np.shape(value))
                             for m in multipliers if m is not None])
        cancels = np.isfinite(scale) & (np.abs(value) <= rel * np.abs(scale))
        return cancels & (size > limit)


def logits_scales(x, y, w, p, g, reduction):
    """The terms' sizes each bar is relative to (spec section 6), per element:
    loss, dX, dY, and the per-element contributions to dW, dP (mul0 products)."""
    xb, yb = x, y
    wb = np.broadcast_to(1.0 if w is None else w, x.shape)
    pb = np.broadcast_to(1.0 if p is None else p, x.shape)
    gb = incoming_grad(g, x.shape, reduction)
    sp_pos, sp_neg = softplus(xb), softplus(-xb)
    loss = amul(wb, amul(1.0 - yb, sp_pos) + amul(pb, yb, sp_neg))
    dx = amul(gb, wb, amul(1.0 - yb, sigmoid(xb)) + amul(pb, yb, sigmoid(-xb)))
    dy = amul(gb, wb, amul(pb, sp_neg) + np.abs(sp_pos))
    dw = amul(gb, amul(1.0 - yb, sp_pos) + amul(pb, yb, sp_neg))
    dp = amul(gb, wb, yb, sp_neg)
    return loss, dx, dy, dw, dp


def logits_indeterminate(x, y, w, p, g, limit):
    """`indeterminate` masks (elementwise, x's shape) of the loss, dX, dY and
    dW: each output's bracket of terms, and the infinite factors outside it.
    `limit`: the largest finite value of the outputs' dtype, or a tuple of
    the four (loss, dX, dY, dW)."""
    wb = np.broadcast_to(1.0 if w is None else w, x.shape)
    pb = np.broadcast_to(1.0 if p is None else p, x.shape)
    gb = np.broadcast_to(g, x.shape)
    sp_pos, sp_neg = softplus(x), softplus(-x)
    sig_pos, sig_neg = sigmoid(x), sigmoid(-x)
    with np.errstate(invalid="ignore", over="ignore"):
        omy = 1.0 - y
        u = mul0(omy, sp_pos) + mul0(mul0(pb, y), sp_neg)
        su = amul(omy, sp_pos) + amul(pb, y, sp_neg)
        b = mul0(omy, sig_pos) - mul0(mul0(pb, y), sig_neg)
        sb = amul(omy, sig_pos) + amul(pb, y, sig_neg)
        c = mul0(pb, sp_neg) - sp_pos
        sc = amul(pb, sp_neg) + np.abs(sp_pos)
    lim = limit if isinstance(limit, tuple) else (limit,) * 4
    return (indeterminate(u, su, wb, rel=1e-5, limit=lim[0]), indeterminate(b, sb, gb, wb, rel=1e-5, limit=lim[1]),
            indeterminate(c, sc, gb, wb, rel=1e-5, limit=lim[2]), indeterminate(u, su, gb, rel=1e-5, limit=lim[3]))


# ------------------------------------------ BCE: the rule in float32 ---
#
# The BCELoss family is specified as MindSpore 2.10's rule in float32
# arithmetic (docs/design.md): where one of the rule's float32 intermediates
# overflows or underflows float32's normal range (huge targets or weights),
# the expected value is the rule evaluated in float32; elsewhere it is the
# float64 value, within the same bars (bce_expected).

FLT_MAX, FLT_MIN = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)


def _mul0_in(a, b, dt):
    """mul0 with the operands and the product in dt."""
    a, b = np.asarray(a, dt), np.asarray(b, dt)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        r = a * b
    return np.where(np.isnan(r) & ~np.isnan(a) & ~np.isnan(b), dt(0), r).astype(dt)


def bce_terms(p, y, w, g, dt):
    """MindSpore 2.10's BCELoss rule and its gradients, every operation in dt
    (float32: as the kernels compute it; float64: the reference), a and b
    formed in float32, logs correctly rounded: a dict of intermediates."""
    a, b = bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        la, lb = np.log(a).astype(dt), np.log(b).astype(dt)
        y, w, g = np.asarray(y, dt), np.asarray(w, dt), np.asarray(g, dt)
        one = dt(1)
        t1, t2 = _mul0_in(y, la, dt), _mul0_in(one - y, lb, dt)
        ll = (t1 + t2).astype(dt)
        loss = -_mul0_in(w, ll, dt)
        ra, rb = (one / a.astype(dt)).astype(dt), (one / b.astype(dt)).astype(dt)
        t3, t4 = _mul0_in(one - y, rb, dt), _mul0_in(y, ra, dt)
        d = (t3 - t4).astype(dt)
        wd = _mul0_in(w, d, dt)
        dx = _mul0_in(g, wd, dt)
        dl = (lb - la).astype(dt)
        wdl = _mul0_in(w, dl, dt)
        dy = _mul0_in(g, wdl, dt)
        gll = _mul0_in(g, ll, dt)
        dw = -gll
    return {"t1": t1, "t2": t2, "ll": ll, "loss": loss, "ra": ra, "rb": rb, "t3": t3, "t4": t4, "d": d, "wd": wd,
            "dx": dx, "dl": dl, "wdl": wdl, "dy": dy, "gll": gll, "dw": dw}


def float32_exceptional(terms64, names):
    """Elements where one of the rule's intermediates leaves float32's normal
    range (overflow, or a nonzero value below the smallest normal): there the
    float32 evaluation, not the float64 one, is the specified result."""
    exc = np.zeros(np.shape(terms64["loss"]), bool)
    for k in names:
        v = np.abs(np.asarray(terms64[k], np.float64))
        exc |= (np.isfinite(v) & (v > FLT_MAX)) | ((v > 0) & (v < FLT_MIN))
    return exc


def bce_expected(p, y, w, g):
    """(loss, dp, dy, dw contributions, exceptional masks) elementwise: float64
    where float32 holds the rule's intermediates, the float32 rule elsewhere."""
    t32 = bce_terms(p, y, w, g, np.float32)
    t64 = bce_terms(p, y, w, g, np.float64)
    fwd_exc = float32_exceptional(t64, ("t1", "t2", "ll", "loss"))
    dx_exc = float32_exceptional(t64, ("ra", "rb", "t3", "t4", "d", "wd", "dx"))
    dy_exc = float32_exceptional(t64, ("dl", "wdl", "dy"))
    dw_exc = float32_exceptional(t64, ("t1", "t2", "ll", "gll"))
    pick = lambda k, exc: np.where(exc, t32[k].astype(np.float64), t64[k])  # noqa: E731
    return pick("loss", fwd_exc), pick("dx", dx_exc), pick("dy", dy_exc), pick("dw", dw_exc), fwd_exc


def bce_indeterminate(p, y, w, g, limit):
    """`indeterminate` masks of the loss, dP, dY and dW (see logits_indeterminate;
    `limit`: the largest finite value of the outputs' dtype): MindSpore's rule
    evaluated in float32 cancels to within ~1e-7 of its terms."""
    t = bce_terms(p, y, w, g, np.float64)
    a, b = bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        la, lb = np.log(np.asarray(a, np.float64)), np.log(np.asarray(b, np.float64))
        sll = np.abs(t["t1"]) + np.abs(t["t2"])
        sd = np.abs(t["t3"]) + np.abs(t["t4"])
        sdl = np.abs(la) + np.abs(lb)
    return (indeterminate(t["ll"], sll, w, rel=1e-5, limit=limit),
            indeterminate(t["d"], sd, g, w, rel=1e-5, limit=limit),
            indeterminate(t["dl"], sdl, g, w, rel=1e-5, limit=limit),
            indeterminate(t["ll"], sll, g, rel=1e-5, limit=limit))


def bce_scales(p, y, w, g):
    """The terms' sizes of the loss, dP, dY and the dW contributions, per element."""
    a, b = bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        la, lb, ra, rb = np.log(a), np.log(b), 1.0 / a, 1.0 / b
    loss = amul(w, amul(y, la) + amul(1.0 - y, lb))
    dx = amul(g, w, amul(1.0 - y, rb) + amul(y, ra))
    dy = amul(g, w, np.abs(la) + np.abs(lb))
    dw = amul(g, amul(y, la) + amul(1.0 - y, lb))
    return loss, dx, dy, dw


# ---------------------------------------- BCE: the out-of-range message ---

def float32_text(v):
    """The shortest text that reads back as float32 v, fixed or scientific,
    whichever is shorter (fixed on a tie; in fixed, of the texts that short,
    the nearest to v: an integer's exact digits): C++'s std::to_chars."""
    v = np.float32(v)
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    fixed = np.format_float_positional(v, unique=True, trim="-")
    sci = np.format_float_scientific(v, unique=True, trim="-", exp_digits=2)
    if len(fixed) > len(sci):
        return sci
    return str(int(v)) if v == np.floor(v) else fixed


def domain_error_message(p):
    """BCELoss's message for probabilities p (the values the kernel sees) with
    one outside [0, 1]: the first such one in C order, and its flat index."""
    i = int(np.flatnonzero((p < 0) | (p > 1))[0])
    return (f"For 'BCELoss', every element of 'logits' must be in [0, 1], but got {float32_text(p.flat[i])} "
            f"at index {i}.")


# ------------------------------------------------------ sigmoid focal loss ---

def sigmoid_focal_torchvision(x, y, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss written out in NumPy (float64): its
    very steps, 1 - p_t by subtraction (it cancels in the tails)."""
    x, y = as64(x), as64(y)
    p = 1.0 / (1.0 + np.exp(-x))
    ce = bce_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return reduce(loss, reduction)


def _focal_terms(x, y, p, alpha, gamma):
    """ce, q = 1 - p_t (stable: Y sigmoid(-X) + (1 - Y) sigmoid(X)), q^gamma and alpha_t."""
    ce = bce_with_logits_unweighted(x, y, p)
    q = y * sigmoid(-x) + (1.0 - y) * sigmoid(x)
    with np.errstate(all="ignore"):
        f = np.power(q, gamma)
    a = alpha * y + (1.0 - alpha) * (1.0 - y) if alpha >= 0 else np.ones_like(x)
    return ce, q, f, a


def sigmoid_focal(x, y, weight=None, pos_weight=None, alpha=0.25, gamma=2.0, reduction="none"):
    """The focal loss in float64, L = W alpha_t ce (1 - p_t)^gamma, with
    BCEWithLogitsLoss's weight and pos_weight in its cross entropy."""
    x, y, w, p = _logits_operands(x, y, weight, pos_weight)
    ce, q, f, a = _focal_terms(x, y, p, alpha, gamma)
    return reduce(mul0(w, mul0(a, mul0(ce, f))), reduction)


def sigmoid_focal_grads(x, y, weight=None, pos_weight=None, alpha=0.25, gamma=2.0, reduction="none", dout=1.0):
    """(dx, dy, dw, dp) in float64 (dw, dp summed to their operands' shapes;
    None where absent).  ce q^(gamma - 1) as (ce / q) q^gamma, 0 where q = 0
    (its limit: ce vanishes with q)."""
    shape_w = None if weight is None else np.shape(weight)
    shape_p = None if pos_weight is None else np.shape(pos_weight)
    x, y, w, p = _logits_operands(x, y, weight, pos_weight)
    g = incoming_grad(dout, x.shape, reduction)
    ce, q, f, a = _focal_terms(x, y, p, alpha, gamma)
    with np.errstate(all="ignore"):
        cq = np.where(q != 0, mul0(ce / np.where(q != 0, q, 1.0), f), 0.0)
    sp, sn = sigmoid(x), sigmoid(-x)
    ga = mul0(mul0(g, w), a)
    dce_dx = mul0(1.0 - y, sp) - mul0(mul0(p, y), sn)
    dx = mul0(ga, mul0(dce_dx, f) + mul0(gamma, mul0(cq, (1.0 - 2.0 * y) * (sp * sn))))
    da = 2.0 * alpha - 1.0 if alpha >= 0 else 0.0
    dce_dy = mul0(p, softplus(-x)) - softplus(x)
    with np.errstate(invalid="ignore"):  # (inf - inf at an infinite logit: NaN, as the kernel)
        dy = mul0(mul0(g, w), mul0(da, mul0(ce, f)) + mul0(a, mul0(dce_dy, f)) + mul0(a, mul0(gamma, mul0(cq, sn - sp))))
    dw = None if shape_w is None else reduce_to_shape(mul0(mul0(g, a), mul0(ce, f)), shape_w)
    dp = None if shape_p is None else reduce_to_shape(mul0(ga, mul0(mul0(y, softplus(-x)), f)), shape_p)
    return dx, dy, dw, dp


def sigmoid_focal_scales(x, y, w, p, alpha, gamma, g):
    """The sizes the focal loss's bars are relative to, per element: the sum
    of the absolute values of each formula's terms (loss, dx, dy, dw, dp)."""
    x, y, w, p, g = (np.asarray(a, np.float64) for a in (x, y, w, p, g))
    with np.errstate(all="ignore"):
        ce = np.abs(mul0(1.0 - y, softplus(x))) + np.abs(mul0(mul0(p, y), softplus(-x)))
        q = np.abs(y * sigmoid(-x)) + np.abs((1.0 - y) * sigmoid(x))
        f = np.power(q, gamma)
        a = np.abs(alpha * y) + np.abs((1.0 - alpha) * (1.0 - y)) if alpha >= 0 else np.ones_like(x)
        cq = np.where(q != 0, mul0(ce / np.where(q != 0, q, 1.0), f), 0.0)
        sp, sn = sigmoid(x), sigmoid(-x)
        gw = np.abs(mul0(g, w))
        loss = amul(np.abs(w), a, ce, f)
        dx = amul(gw, a, np.abs(mul0(1.0 - y, sp)) * f + np.abs(mul0(p, y) * sn) * f
                  + amul(gamma, cq, 1.0 - 2.0 * y, sp * sn))
        da = abs(2.0 * alpha - 1.0) if alpha >= 0 else 0.0
        dy = amul(gw, amul(da, ce, f) + amul(a, np.abs(mul0(p, softplus(-x))) + softplus(x), f)
                  + amul(a, gamma, cq, sn + sp))
        dw = amul(np.abs(g), a, ce, f)
        dp = amul(gw, a, np.abs(mul0(y, softplus(-x))), f)
    return loss, dx, dy, dw, dp


# ------------------------------------------ fused linear + BCE-with-logits ---

def _linear_terms(x, w, y, b, p, label_smoothing, mask):
    """(logits Z, smoothed targets, P and the kept elements, all broadcast to (N, C))."""
    x, w = as64(x), as64(w)
    z = x @ w.T + (0.0 if b is None else as64(b))
    ys = as64(y) * (1 - label_smoothing) + label_smoothing / 2
    pp = np.broadcast_to(np.ones(()) if p is None else as64(p), z.shape)
    keep = np.ones(z.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask) != 0, z.shape)
    return z, ys, pp, keep


def _linear_reduce_grad(dout, keep, reduction):
    """The incoming gradient per element: dout over the kept count for a mean, 0 where dropped."""
    if reduction == "none":
        g = np.broadcast_to(as64(dout), keep.shape)
    elif reduction in ("mean", "weighted_mean"):
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.broadcast_to(np.float64(dout) / keep.sum(), keep.shape)
    else:
        g = np.broadcast_to(np.float64(dout), keep.shape)
    return np.where(keep, g, 0.0)


def linear_bce_with_logits(x, w, y, b=None, p=None, reduction="mean", label_smoothing=0.0, mask=None):
    """BCE-with-logits of Z = x w^T + b in float64: the 'mean' (and 'weighted_mean',
    which has no weight here) over the kept elements."""
    z, ys, pp, keep = _linear_terms(x, w, y, b, p, label_smoothing, mask)
    loss = np.where(keep, bce_with_logits_unweighted(z, ys, pp), 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.float64(loss.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(loss.sum() / keep.sum())


def linear_bce_with_logits_grads(x, w, y, b=None, p=None, reduction="mean", label_smoothing=0.0, mask=None,
                                 dout=1.0):
    """(dx, dw, dy, db, dp) in float64: dZ from the spec's formula, then dx = dZ w,
    dw = dZ^T x, db its column sums; dy through the smoothing (times 1 - eps); dp
    summed back to p's shape (None for absent b, p)."""
    z, ys, pp, keep = _linear_terms(x, w, y, b, p, label_smoothing, mask)
    g = _linear_reduce_grad(dout, keep, reduction)
    dz = mul0(g, mul0(1.0 - ys, sigmoid(z)) - mul0(mul0(pp, ys), sigmoid(-z)))
    dy = mul0(g, mul0(pp, softplus(-z)) - softplus(z)) * (1 - label_smoothing)
    dp = None if p is None else reduce_to_shape(mul0(g, mul0(ys, softplus(-z))), np.shape(p))
    return dz @ as64(w), dz.T @ as64(x), dy, (None if b is None else dz.sum(0)), dp
