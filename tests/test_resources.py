"""Threads, memory and size: several Python threads calling the operators at
once get what serial calls get; 10^4 calls of each operator keep the resident
memory flat; the kernel library is loaded once per process; and index
arithmetic is 64-bit (inputs of more than 2^31 bytes, and a kernel call over
more than 2^31 elements)."""
import ctypes
import gc
import math
import os
import threading

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import ms_bce
from ms_bce import _kernels
from tests import reference as ref
from tests.abi import OK, launch
from tests.conftest import FnCell


@pytest.fixture(autouse=True)
def pynative():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


def _case(seed, n=3000):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=4.0, size=(n // 30, 30)).astype(np.float32)
    p = rng.uniform(0.01, 0.99, x.shape).astype(np.float32)
    y = rng.random(x.shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, (30,)).astype(np.float32)
    pw = rng.uniform(0.5, 3.0, (n // 30, 1)).astype(np.float32)
    return [Tensor(a) for a in (x, p, y, w, pw)]


def _work(tensors):
    """Every family and reduction once, forward: the results as bytes."""
    x, p, y, w, pw = tensors
    out = []
    for reduction in ("none", "mean", "sum"):
        out.append(ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, pw, reduction))
        out.append(ms_bce.ops.binary_cross_entropy(p, y, w, reduction))
        out.append(ms_bce.mint.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=pw)(x, y))
    return [t.asnumpy().tobytes() for t in out]


def _in_threads(n_threads, fn):
    """Runs fn(k) in n_threads threads started together; their results."""
    results, errors = {}, []
    barrier = threading.Barrier(n_threads)

    def run(k):
        try:
            barrier.wait()
            results[k] = fn(k)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {k}: {type(e).__name__}: {e}")
    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == []
    return results


def test_threads_calling_the_operators_at_once_get_the_serial_results():
    """PyNative forwards from 4 Python threads at once.  (Gradients are not
    taken from several threads: MindSpore 2.10's PyNative autograd itself
    fails then, with the built-in loss too: 'Can not find top cell for
    backward'; the backward kernels' concurrency is the next test's.)"""
    cases = [_case(seed) for seed in range(4)]
    serial = [_work(c) for c in cases]
    results = _in_threads(len(cases), lambda k: [_work(cases[k]) for _ in range(5)])
    for k in range(len(cases)):
        for rep in results[k]:
            assert rep == serial[k], f"thread {k} differs from its serial run"


def test_every_kernel_called_from_threads_at_once_gives_the_serial_bits():
    """The entry points themselves (ctypes releases the GIL, so the calls
    overlap): forward and every backward direction of both families from 4
    threads, above the threading threshold, against the serial results."""
    lib = ctypes.CDLL(_kernels.library_path("CPU"))
    rng = np.random.default_rng(5)
    shape = (3000, 100)  # 300k elements: several chunks, the kernels' thread pool in use
    x = rng.normal(scale=4.0, size=shape).astype(np.float32)
    p = rng.uniform(0.01, 0.99, shape).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, (100,)).astype(np.float32)
    pw = rng.uniform(0.5, 3.0, (3000, 1)).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    t = np.zeros(1, np.float32)  # the t operand: label smoothing 0
    calls = [
        ("bce_with_logits_forward_none_wp", [x, y, w, pw, t], [shape]),
        ("bce_with_logits_forward_mean_wp", [x, y, w, pw, t], [()]),
        ("bce_with_logits_backward_none_wp", [x, y, w, pw, t, g], [shape, shape, w.shape, pw.shape]),
        ("bce_with_logits_backward_input_sum_wp", [x, y, w, pw, t, np.float32(1.5)], [shape]),
        ("bce_with_logits_backward_target_none_wp", [x, y, w, pw, t, g], [shape]),
        ("bce_with_logits_backward_weight_none_wp", [x, y, w, pw, t, g], [w.shape]),
        ("bce_with_logits_backward_pos_weight_none_wp", [x, y, w, pw, t, g], [pw.shape]),
        ("bce_forward_sum_w", [p, y, w, t], [()]),
        ("bce_backward_mean_w", [p, y, w, t, np.float32(0.5)], [shape, shape, w.shape]),
    ]

    def run_all():
        out = []
        for name, inputs, out_shapes in calls:
            outs = [np.full(s, np.nan, np.float32) for s in out_shapes]
            assert launch(lib, name, [np.asarray(a) for a in inputs] + outs) == OK, name
            out.append(b"".join(o.tobytes() for o in outs))
        return out
    serial = run_all()
    results = _in_threads(4, lambda k: [run_all() for _ in range(3)])
    for k, reps in results.items():
        for rep in reps:
            for (name, _, _), a, b in zip(calls, rep, serial):
                assert a == b, f"thread {k}: {name} differs from the serial call"


def _rss_bytes():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


CALLS = 10_000


def _operators():
    """(name, call) for each Custom operator's use: every forward, and the
    backward kernels through a gradient (fused in PyNative)."""
    x, p, y, w, pw = _case(7, 600)
    # the backward operators called directly: through ms.grad, MindSpore 2.10's PyNative
    # autograd itself keeps 1-5 KB per call (its built-in losses' gradients more than ours)
    bwd_logits = _kernels.LossBackward("bce_with_logits", "none", True, True, "CPU")
    bwd_bce = _kernels.LossBackward("bce", "sum", True, False, "CPU")
    dout = Tensor(np.ones(x.shape, np.float32))
    dout_sum = Tensor(np.float32(1.0))
    w_full = ms.ops.broadcast_to(w, x.shape)
    t_logits, t_bce = _kernels.params_tensor("bce_with_logits"), _kernels.params_tensor("bce")  # no smoothing
    nn_logits = ms_bce.nn.BCEWithLogitsLoss(weight=w, pos_weight=pw)
    nn_bce = ms_bce.nn.BCELoss(ms.ops.broadcast_to(w, x.shape))
    op_logits = ms_bce.ops.BCEWithLogitsLoss("sum")
    op_bce = ms_bce.ops.BinaryCrossEntropy("none")
    return [
        ("logits forward", lambda: ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, pw)),
        ("logits ops.BCEWithLogitsLoss", lambda: op_logits(x, y, w, pw)),
        ("logits nn.BCEWithLogitsLoss", lambda: nn_logits(x, y)),
        ("logits backward", lambda: bwd_logits(x, y, w, pw, t_logits, dout)),
        ("bce forward", lambda: ms_bce.ops.binary_cross_entropy(p, y, w)),
        ("bce ops.BinaryCrossEntropy", lambda: op_bce(p, y, w)),
        ("bce nn.BCELoss", lambda: nn_bce(p, y)),
        ("bce backward", lambda: bwd_bce(p, y, w_full, t_bce, dout_sum)),
    ]


@pytest.mark.parametrize("index", range(8))
def test_ten_thousand_calls_keep_resident_memory_flat(index):
    name, fn = _operators()[index]
    for _ in range(500):  # warm-up: MindSpore's caches and memory pool settle
        fn()
    out = fn()
    (out[0] if isinstance(out, tuple) else out).asnumpy()
    gc.collect()
    before = _rss_bytes()
    samples = []
    for k in range(CALLS):
        out = fn()
        if k % 2000 == 1999:
            (out[0] if isinstance(out, tuple) else out).asnumpy()
            gc.collect()
            samples.append(_rss_bytes())
    growth = samples[-1] - before
    # a leak of even 1 KiB per call would be 10 MB; allow the allocator 8 MB of slack
    assert growth < 8 * 2 ** 20, f"{name}: resident memory grew {growth / 2 ** 20:.1f} MB over {CALLS} calls " \
                                 f"(samples {[round((s - before) / 2 ** 20, 1) for s in samples]} MB)"
    # and it did not grow steadily over the second half
    assert samples[-1] - samples[len(samples) // 2] < 4 * 2 ** 20, f"{name}: {samples}"


def _logits_default(a, b):
    return ms_bce.ops.binary_cross_entropy_with_logits(a, b)


def test_the_kernel_library_is_loaded_once_per_process():
    x, p, y, w, pw = _case(3, 300)
    ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, pw).asnumpy()
    ms_bce.ops.binary_cross_entropy(p, y, w).asnumpy()
    ms_bce.set_num_threads(1)  # ctypes' handle of the same library
    ms_bce.set_num_threads(0)
    ms.set_context(mode=ms.GRAPH_MODE)
    FnCell(_logits_default)(x, y).asnumpy()
    ms.set_context(mode=ms.PYNATIVE_MODE)
    with open("/proc/self/maps", encoding="utf-8") as f:
        mapped = {line.split()[-1] for line in f if "libms_bce_cpu" in line}
    assert mapped == {os.path.realpath(_kernels.library_path("CPU"))}, mapped
    # one copy of its state: a thread count set through ctypes is what the operators' copy reports
    lib = ctypes.CDLL(_kernels.library_path("CPU"))
    lib.ms_bce_set_num_threads(1)
    try:
        assert ms_bce.get_num_threads() == 1
    finally:
        lib.ms_bce_set_num_threads(0)


# ------------------------------------------------------------ large sizes ---

def _available_bytes():
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def test_inputs_of_more_than_two_gibibytes_through_mindspore():
    """float32 logits and targets of 2^29 + 2^20 elements (2.1 GB each): byte
    offsets past 2^31.  The elements are 0 except a marked tail, so the
    float64 reference is known in closed form."""
    n = 2 ** 29 + 2 ** 20
    if _available_bytes() < 14 * 2 ** 30:
        pytest.fail(f"needs 14 GiB of free memory for its {n}-element tensors (this machine class has 24 GiB)")
    x = np.zeros(n, np.float32)
    y = np.zeros(n, np.float32)
    x[-1000:] = 30.0  # beyond the 2^31-byte mark: loss softplus(30) each
    y[-500:] = 1.0    # of which 500 with target 1: loss softplus(-30) each
    tx, ty = Tensor.from_numpy(x), Tensor.from_numpy(y)
    got = float(ms_bce.ops.binary_cross_entropy_with_logits(tx, ty, reduction="sum").asnumpy())
    want = (n - 1000) * math.log(2.0) + 500 * math.log1p(math.exp(30.0)) + 500 * math.log1p(math.exp(-30.0))
    assert abs(got - want) <= 1e-6 * want, (got, want)
    dx = ms.grad(lambda a, b: ms_bce.ops.binary_cross_entropy_with_logits(a, b, reduction="sum"))(tx, ty).asnumpy()
    assert dx.shape == (n,)
    np.testing.assert_array_equal(dx[:4], np.float32(0.5))
    np.testing.assert_allclose(dx[-1000:-500], ref.sigmoid(30.0), rtol=1e-6)
    np.testing.assert_allclose(dx[-500:], -ref.sigmoid(-30.0), rtol=1e-6)


def test_a_kernel_call_over_more_than_two_to_the_31_elements():
    """The kernel entry point itself (ctypes) over 2^31 + 4096 float16
    elements (4.3 GB per input): element indices past 2^31."""
    n = 2 ** 31 + 4096
    if _available_bytes() < 12 * 2 ** 30:
        pytest.fail("needs 12 GiB of free memory for its 2^31-element float16 inputs (this machine class has 24 GiB)")
    lib = ctypes.CDLL(_kernels.library_path("CPU"))
    x = np.zeros(n, np.float16)
    y = np.zeros(n, np.float16)
    x[-100:] = 8.0  # past index 2^31
    out = np.zeros((), np.float16)
    t = np.zeros(1, np.float32)  # the t operand: label smoothing 0
    launch(lib, "bce_with_logits_forward_mean", [x, y, t, out])  # warm (allocations)
    assert launch(lib, "bce_with_logits_forward_mean", [x, y, t, out]) == OK
    want = ((n - 100) * math.log(2.0) + 100 * (8.0 + math.log1p(math.exp(-8.0)))) / n
    assert out == np.float16(want), (out, want)
    del x, y
