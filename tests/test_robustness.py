"""No input reaches a kernel unvalidated: every public name, given each value
of a wide catalogue in each argument (Tensors of every float dtype, Parameters,
non-contiguous views and slices, lazily initialised Tensors, Tensor subclasses,
op outputs, Tensors of other dtypes, a Tensor with an unknown size, rank 17,
numpy arrays, Python numbers, None, containers, strings, dtype objects,
sparse tensors, and `reduction` values of every type), returns the reference's
value or raises the documented TypeError/ValueError naming the operator, never
a MindSpore internal error, a crash or a hang.  The sweep runs in a child
process (a crash or a hang fails the test and names the last call) in
PyNative, and a subset in graph mode."""
import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor

import ms_bce
from tests import reference as ref
from tests.apis import BCE_APIS, LOGITS_APIS, RELATIVE_APIS, loss_fn
from tests.conftest import FnCell

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def build(api, w, p, reduction):
    """The API's loss as a function of (input, target), weight and pos_weight
    closed over (graph mode compiles these lambdas: unlike tests.apis.loss_fn's,
    they take no default arguments, which graph mode cannot evaluate); cells
    are constructed with weight, pos_weight and reduction (and validate them then)."""
    m = ms_bce
    if api == "ops.binary_cross_entropy_with_logits":
        return lambda x, y: m.ops.binary_cross_entropy_with_logits(x, y, w, p, reduction)
    if api == "mint.nn.functional.binary_cross_entropy_with_logits":
        return lambda x, y: m.mint.nn.functional.binary_cross_entropy_with_logits(x, y, w, reduction, p)
    if api == "ops.BCEWithLogitsLoss":
        op = m.ops.BCEWithLogitsLoss(reduction)
        return lambda x, y: op(x, y, w, p)
    if api == "ops.binary_cross_entropy":
        return lambda x, y: m.ops.binary_cross_entropy(x, y, w, reduction)
    if api == "ops.BinaryCrossEntropy":
        op = m.ops.BinaryCrossEntropy(reduction)
        return lambda x, y: op(x, y, w)
    if api == "mint.nn.functional.binary_cross_entropy":
        return lambda x, y: m.mint.nn.functional.binary_cross_entropy(x, y, w, reduction)
    if api == "ops.multilabel_soft_margin_loss":
        return lambda x, y: m.ops.multilabel_soft_margin_loss(x, y, w, reduction)
    return loss_fn(api, w, p, reduction)  # the nn and mint.nn cells


def call_in_mode(mode, api, x, y, w, p, reduction):
    """The call in PyNative, or compiled in graph mode with every argument
    reaching it as a constant (as tests/test_errors.py does)."""
    loss = build(api, w, p, reduction)
    if mode == "pynative":
        return loss(x, y)

    def f():
        return loss(x, y)
    return FnCell(f)()


class SubTensor(Tensor):
    """A user's Tensor subclass."""


class StrSub(str):
    pass


class LyingStr(str):
    """A str subclass whose == says yes to everything."""

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


# The base values: input/target (3, 4), weight (4,), pos_weight (3, 1).
RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4)).astype(np.float32)
P = RNG.uniform(0.05, 0.95, (3, 4)).astype(np.float32)
Y = RNG.random((3, 4)).astype(np.float32)
W = RNG.uniform(0.5, 2.0, (4,)).astype(np.float32)
PW = RNG.uniform(0.5, 2.0, (3, 1)).astype(np.float32)


def variants(a):
    """(label, value, outcome) for one tensor argument whose valid value is the
    float32 array a: outcome 'ok' (a result equal to the reference, from the
    float64 values of the argument), or the exception type expected.  Labels
    ending in '/16' have a 16-bit float dtype (valid or not per family)."""
    t = Tensor(a)
    shape = a.shape
    out = [
        ("float32", t, "ok"),
        ("Parameter", Parameter(Tensor(a), name="param"), "ok"),
        ("subclass", SubTensor(a), "ok"),
        ("op output", ms.ops.add(Tensor(a), 0.0), "ok"),
        ("lazy init", Tensor(shape=shape, dtype=ms.float32, init=ms.common.initializer.Constant(0.5)), ValueError),
        ("initialised", Tensor(shape=shape, dtype=ms.float32, init=ms.common.initializer.Constant(0.5)).init_data(),
         "ok"),
        ("from_numpy", Tensor.from_numpy(a.copy()), "ok"),
        ("from_numpy fortran", Tensor.from_numpy(np.asfortranarray(a)), "ok"),
        ("moved to CPU", Tensor(a).move_to("CPU"), "ok"),
        ("float16/16", Tensor(a.astype(np.float16)), "ok16"),
        ("bfloat16/16", Tensor(a).astype(ms.bfloat16), "okbf16"),
    ]
    if a.ndim >= 1:
        wide = np.repeat(a, 2, axis=-1)  # every other element of the last axis is a
        out += [("strided view", Tensor(wide)[..., ::2], "ok"),
                ("sliced view", Tensor(np.stack([a * 0 + 9, a]))[1], "ok"),
                ("transposed view", Tensor(np.ascontiguousarray(np.swapaxes(a, 0, -1))).swapaxes(0, -1), "ok")]
    out += [
        ("int32", Tensor(a.astype(np.int32)), TypeError),
        ("int64", Tensor(a.astype(np.int64)), TypeError),
        ("uint8", Tensor(a.astype(np.uint8)), TypeError),
        ("bool", Tensor(a > 0), TypeError),
        ("float64", Tensor(a.astype(np.float64)), TypeError),
        ("complex64", Tensor(a.astype(np.complex64)), TypeError),
        ("unknown size", Tensor(shape=[None] + list(shape[1:]) if shape else [None], dtype=ms.float32), ValueError),
        ("numpy array", a, TypeError),
        ("numpy scalar", np.float32(0.5), TypeError),
        ("float", 0.5, TypeError),
        ("int", 1, TypeError),
        ("bool value", True, TypeError),
        ("list", a.tolist(), TypeError),
        ("tuple", tuple(a.reshape(-1).tolist()), TypeError),
        ("str", "0.5", TypeError),
        ("dict", {"x": 1}, TypeError),
        ("dtype", ms.float32, TypeError),
        ("Tensor class", Tensor, TypeError),
        ("COOTensor", ms.COOTensor(Tensor([[0, 0]], ms.int32), Tensor([1.0], ms.float32), (3, 4)), TypeError),
        ("wrong shape", Tensor(np.ones(shape + (2,), np.float32)), ValueError),
    ]
    return out


REDUCTIONS = [
    ("mean", "mean", "ok"), ("sum", "sum", "ok"), ("none", "none", "ok"),
    ("numpy str_", np.str_("sum"), "ok"), ("str subclass", StrSub("none"), "ok"),
    ("lying str", LyingStr("avg"), ValueError),
    ("avg", "avg", ValueError), ("MEAN", "MEAN", ValueError), ("empty", "", ValueError), ("NUL", "mean\x00", ValueError),
    ("int", 1, TypeError), ("float", 1.0, TypeError), ("bool", True, TypeError), ("None", None, TypeError),
    ("bytes", b"mean", TypeError), ("list", ["mean"], TypeError), ("tuple", ("sum",), TypeError),
    ("set", {"mean"}, TypeError), ("dict", {"mean": 1}, TypeError), ("Tensor", Tensor(1.0), TypeError),
    ("numpy int", np.int32(1), TypeError), ("object", object(), TypeError), ("dtype", ms.float32, TypeError),
]


# the graph-mode subset, per argument
GRAPH_SUBSET = {"x": ("float32", "strided view", "initialised", "numpy array", "int32"),
                "y": ("transposed view", "float", "wrong shape"),
                "w": ("Parameter", "None", "float16/16", "wrong shape", "list", "float"),
                "p": ("sliced view", "int", "bool"),
                "reduction": ("sum", "numpy str_", "lying str", "avg", "int", "None")}


def expected_value(api, x, y, w, p, reduction):
    def f64(t):
        if not isinstance(t, Tensor):
            return t  # None, or multilabel_soft_margin_loss's number weight
        t = t.astype(ms.float32) if t.dtype == ms.bfloat16 else t
        return t.asnumpy().astype(np.float64)
    r = str.__str__(reduction)
    if api == "ops.SigmoidCrossEntropyWithLogits":
        return ref.sigmoid_cross_entropy_with_logits(f64(x), f64(y))
    if api in RELATIVE_APIS:
        return ref.multilabel_soft_margin_loss(f64(x), f64(y), f64(w), r)
    if api in LOGITS_APIS:
        return ref.bce_with_logits(f64(x), f64(y), f64(w), f64(p), r)
    return ref.bce(f64(x), f64(y), f64(w), r)


def outcome_for(api, slot, label, outcome):
    """The expected outcome of a variant in one slot of one API: the 16-bit
    dtypes follow each family's documented set and same-dtype rule; the
    multilabel loss's weight may be a Python int or float (not a bool, nor a
    NumPy scalar)."""
    if outcome == "ok16":
        return TypeError if api in BCE_APIS else "ok"  # BCELoss: target/weight must have input's dtype
    if outcome == "okbf16":
        return TypeError if api in BCE_APIS else "ok"  # and bfloat16 only in mint.nn.BCELoss
    if api in RELATIVE_APIS and slot == "w" and label in ("float", "int"):
        return "ok"
    return outcome


def sweep(mode, progress):
    """Runs every (API, argument, value) combination; returns the problems."""
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    problems, count = [], 0
    for api in LOGITS_APIS + BCE_APIS + RELATIVE_APIS:
        logits = api not in BCE_APIS
        has_p = api in LOGITS_APIS
        plain = api == "ops.SigmoidCrossEntropyWithLogits"  # no weight, no reduction
        base = {"x": Tensor(X if logits else P), "y": Tensor(Y), "w": None if plain else Tensor(W),
                "p": Tensor(PW) if has_p else None, "reduction": "mean"}
        slots = ["x", "y"] + ([] if plain else ["w"]) + (["p"] if has_p else []) + ([] if plain else ["reduction"])
        for slot in slots:
            if slot == "reduction":
                cases = REDUCTIONS
            else:
                a = {"x": X if logits else P, "y": Y, "w": W, "p": PW}[slot]
                cases = variants(a) + ([("None", None, "ok")] if slot in ("w", "p") else
                                       [("None", None, TypeError)])
            if mode == "graph":  # a subset: each call compiles a graph
                cases = [c for c in cases if c[0] in GRAPH_SUBSET[slot]]
            for label, value, outcome in cases:
                outcome = outcome_for(api, slot, label, outcome)
                args = dict(base, **{slot: value})
                what = f"{mode} {api} {slot}={label}"
                progress.write(what + "\n")
                progress.flush()
                count += 1
                if mode == "graph" and label == "unknown size":
                    continue  # a placeholder is graph mode's dynamic shape: tests/test_graph_mode.py
                try:
                    out = call_in_mode(mode, api, args["x"], args["y"], args["w"], args["p"], args["reduction"])
                    got = (out.astype(ms.float32) if out.dtype == ms.bfloat16 else out).asnumpy()
                except Exception as e:  # noqa: BLE001 - every exception is judged below
                    msg = (str(e).splitlines()[0] if str(e) else "").strip("'\"")  # graph mode quotes it
                    if outcome == "ok":
                        problems.append(f"{what}: raised {type(e).__name__}: {msg[:300]}")
                    elif type(e) is not outcome or not msg.startswith("For '"):
                        problems.append(f"{what}: raised {type(e).__name__}: {msg[:300]}, expected "
                                        f"{outcome.__name__} naming the operator")
                    continue
                if outcome != "ok":
                    problems.append(f"{what}: returned a value, expected {outcome.__name__}")
                    continue
                want = expected_value(api, args["x"], args["y"], args["w"], args["p"], args["reduction"])
                tol = 1e-6 if all(getattr(v, "dtype", ms.float32) == ms.float32 for v in args.values()
                                  if isinstance(v, Tensor)) else 1e-2
                if got.shape != np.shape(want) or not np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
                    problems.append(f"{what}: returned {got!r}, expected {want!r}")
    return problems, count


def run_child(mode, timeout):
    """Runs sweep(mode) in a child process: (returncode, problems, count, last call, stderr)."""
    progress = os.path.join(ROOT, "build", f"robustness-{mode}.progress")
    os.makedirs(os.path.dirname(progress), exist_ok=True)
    code = ("import json, sys; from tests.test_robustness import sweep\n"
            f"p, n = sweep({mode!r}, open({progress!r}, 'w'))\n"
            "print('RESULT ' + json.dumps({'problems': p, 'count': n}))")
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env=env)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or "", e.stderr or ""
    last = open(progress, encoding="utf-8").read().splitlines()[-1:] if os.path.exists(progress) else []
    result = next((json.loads(line[7:]) for line in (out if isinstance(out, str) else out.decode()).splitlines()
                   if line.startswith("RESULT ")), None)
    return rc, result, last, err if isinstance(err, str) else err.decode()


def test_every_argument_of_every_public_name_pynative():
    rc, result, last, err = run_child("pynative", 900)
    assert rc == 0 and result is not None, f"child process ended with {rc} during {last}:\n{err[-3000:]}"
    assert result["count"] > 1000
    assert result["problems"] == [], "\n".join(result["problems"])


def test_a_subset_in_graph_mode():
    rc, result, last, err = run_child("graph", 900)
    assert rc == 0 and result is not None, f"child process ended with {rc} during {last}:\n{err[-3000:]}"
    assert result["count"] > 100
    assert result["problems"] == [], "\n".join(result["problems"])
