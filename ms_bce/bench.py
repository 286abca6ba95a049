"""The benchmark: ms_bce's BCEWithLogitsLoss against MindSpore's built-in (and
PyTorch, when installed): forward 'mean', forward 'none', and forward+backward
(the loss and its gradient with respect to the logits, as training needs
them: value_and_grad inside a Cell, and in graph mode also called from Python),
PyNative and graph mode, float32 and float16, over a range of sizes, all in
one run; beside the floors measured in the same run: Custom AOT operators of
our own library that stream the same inputs with almost no arithmetic
(custom_ops/cpu/floor.cc: 'read', 'read_write', and a training-step-shaped
pair in the same Cell), and the NumPy read time; then the kernels' arithmetic
alone (in cache, one thread, no MindSpore).  Prints medians and ratios to the
floors, writes the results as JSON and Markdown and a plot as PNG.

    python -m ms_bce.bench [--sizes 16,1000,...] [--repeats N] [--threads N]
                           [--dtypes float32,float16] [--modes pynative,graph]
                           [--out bench_out] [--scaling]

Inputs are 1-D with full-size weight and pos_weight (the heaviest broadcast).
Times are medians of --repeats runs after warm-up, each run synchronised.
--scaling also times the largest size with 1 kernel thread and with every
usable CPU (graph mode, float32): how the kernels and floors scale with cores.
"""
import argparse
import json
import os
import platform
import statistics
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.common.api import _pynative_executor

import ms_bce

DEFAULT_SIZES = (16, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)


def _median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _read(a):
    """Reads every byte of a once (NumPy's sum; 16-bit arrays are summed as the
    float32 words holding the same bytes: NumPy's float16 sum is not a memory read)."""
    if a.itemsize == 2 and a.size >= 2:
        a = a[: a.size // 2 * 2].view(np.float32)
    return a.sum()


def _sync(result):
    """Waits for queued work (PyNative launches asynchronously; mindspore.runtime.synchronize
    does not support the CPU)."""
    _pynative_executor.sync()
    return result


class _Loss(nn.Cell):
    def __init__(self, fn, w, p, reduction="mean"):
        super().__init__()
        self.fn = fn
        self.w = w
        self.p = p
        self.reduction = reduction

    def construct(self, x, y):
        return self.fn(x, y, self.w, self.p, self.reduction)


class _Step(nn.Cell):
    """A training step as graph-mode training writes it (TrainOneStepCell's
    shape): value_and_grad inside a Cell, so the whole step is one graph that
    runs on the calling thread."""

    def __init__(self, value_and_grad):
        super().__init__()
        self.value_and_grad = value_and_grad

    def construct(self, *args):
        return self.value_and_grad(*args)


def _mindspore_cases(fn, x, y, w, p, mode):
    """{case: callable} for a MindSpore-style function: forward 'mean' and
    'none', and forward+backward, the loss and its gradient with respect to
    the logits (value_and_grad: graph mode would otherwise drop the forward),
    inside a Cell; in graph mode also 'forward_backward_unwrapped', the same
    value_and_grad called from Python (MindSpore then runs it on its pipeline
    thread while the caller's wait spins: README, Benchmark)."""
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    loss, loss_none = _Loss(fn, w, p), _Loss(fn, w, p, "none")
    value_and_grad = ms.value_and_grad(_Loss(fn, w, p), grad_position=0)
    step = _Step(value_and_grad)
    cases = {"forward": lambda: _sync(loss(x, y)), "forward_none": lambda: _sync(loss_none(x, y)),
             "forward_backward": lambda: _sync(step(x, y))}
    if mode == "graph":
        cases["forward_backward_unwrapped"] = lambda: _sync(value_and_grad(x, y))
    return cases


# ------------------------------------------------------------ the floors ---
# Custom AOT operators of the CPU library (custom_ops/cpu/floor.cc) that stream
# the loss's four inputs through the same chunks, thread pool and loads and do
# almost no arithmetic: 'read' (-> a 0-d sum: the floor of a 'mean' forward)
# and 'read_write' (-> one output of the input's shape: the floor of a 'none'
# forward or of the gradient of the logits).  'train' is a loss-shaped Custom op
# whose forward is 'read' and whose bprop is 'read_write', under
# value_and_grad in a Cell: the floor of a training step in MindSpore's graph.

def _floor_op(name, bprop=None):
    from mindspore.ops import Custom
    func = f"{ms_bce._kernels.library_path('CPU')}:{name}"
    return Custom(func, out_shape=None, out_dtype=lambda *dtypes: dtypes[0], func_type="aot", bprop=bprop,
                  reg_info=ms_bce._kernels._reg_info(name, 4, 1, "CPU"))


class _Floor(nn.Cell):
    def __init__(self, name, w, p, bprop=None):
        super().__init__()
        self.op = _floor_op(name, bprop)
        self.w = w
        self.p = p

    def construct(self, x, y):
        return self.op(x, y, self.w, self.p)


def _floor_cases(w, p, mode):
    """{floor: callable(x, y)} in the current mode (see above)."""
    from mindspore.ops import zeros_like
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    read, read_write = _Floor("ms_bce_floor_read", w, p), _Floor("ms_bce_floor_read_write", w, p)
    write_op = _floor_op("ms_bce_floor_read_write")

    def bprop(x, y, w, p, out, dout):
        return write_op(x, y, w, p), zeros_like(y), zeros_like(w), zeros_like(p)
    train = ms.value_and_grad(_Floor("ms_bce_floor_read", w, p, bprop), grad_position=0)
    floors = {"floor_read": read, "floor_read_write": read_write, "floor_train": _Step(train)}
    if mode == "graph":
        floors["floor_train_unwrapped"] = train
    return floors


def _torch_cases(x, y, w, p, dtype, threads):
    import torch  # optional
    if threads:
        torch.set_num_threads(threads)
    tdt = {"float32": torch.float32, "float16": torch.float16}[dtype]
    xt, yt, wt, pt = (torch.from_numpy(a).to(tdt) for a in (x, y, w, p))
    xg = xt.clone().requires_grad_(True)
    F = torch.nn.functional

    def forward():
        return F.binary_cross_entropy_with_logits(xt, yt, wt, pos_weight=pt)

    def forward_backward():
        xg.grad = None
        F.binary_cross_entropy_with_logits(xg, yt, wt, pos_weight=pt).backward()
    return forward, forward_backward


def run(sizes, repeats, dtypes, modes, threads, log=print):
    """Measures every case; returns a list of result rows (dicts)."""
    if threads:
        ms_bce.set_num_threads(threads)
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    rng = np.random.default_rng(0)
    rows = []
    for dtype in dtypes:
        npdt = np.float16 if dtype == "float16" else np.float32
        msdt = ms.float16 if dtype == "float16" else ms.float32
        for n in sizes:
            x = rng.normal(scale=3.0, size=n).astype(npdt)
            y = (rng.random(n) > 0.5).astype(npdt)
            w = rng.uniform(0.5, 2.0, n).astype(npdt)
            p = rng.uniform(0.5, 3.0, n).astype(npdt)
            reps = repeats if n <= 1_000_000 else max(5, repeats // 2)
            floor = _median_time(lambda: [_read(a) for a in (x, y, w, p)], reps)
            tensors = [ms.Tensor(a, msdt) for a in (x, y, w, p)]
            row = {"dtype": dtype, "n": n, "numpy_read_floor": floor}
            for mode in modes:
                for name, fn in _floor_cases(*tensors[2:], mode).items():
                    row[f"{name}_{mode}"] = _median_time(lambda fn=fn: _sync(fn(*tensors[:2])), reps)
                for impl, fn in (("ms_bce", ms_bce.ops.binary_cross_entropy_with_logits),
                                 ("builtin", ms.ops.binary_cross_entropy_with_logits)):
                    for case, call in _mindspore_cases(fn, *tensors, mode).items():
                        row[f"{impl}_{mode}_{case}"] = _median_time(call, reps)
            ms.set_context(mode=ms.PYNATIVE_MODE)
            if have_torch:
                forward, forward_backward = _torch_cases(x, y, w, p, dtype, threads)
                row["torch_forward"] = _median_time(forward, reps)
                row["torch_forward_backward"] = _median_time(forward_backward, reps)
            rows.append(row)
            log(_format_row(row, modes, have_torch))
    return rows


def _ms(t):
    return f"{1e3 * t:9.3f}"


CASES = ("forward", "forward_none", "forward_backward")
CASE_NAMES = {"forward": "forward 'mean'", "forward_none": "forward 'none'", "forward_backward": "forward+backward"}


def floor_of(row, mode, case):
    """The floor a case is held to: the read floor for a 'mean' forward, the
    read-and-write floor for a 'none' forward, their sum for forward+backward."""
    read, write = row[f"floor_read_{mode}"], row[f"floor_read_write_{mode}"]
    return {"forward": read, "forward_none": write, "forward_backward": read + write}[case]


def _format_row(row, modes, have_torch):
    parts = [f"{row['dtype']:>8} n={row['n']:>10,}  NumPy read {_ms(row['numpy_read_floor'])} ms"]
    for mode in modes:
        parts.append(f"  {mode:>8} floors: read {_ms(row[f'floor_read_{mode}'])} ms, read+write "
                     f"{_ms(row[f'floor_read_write_{mode}'])} ms, training step {_ms(row[f'floor_train_{mode}'])} ms")
        for d in CASES:
            ours, theirs = row[f"ms_bce_{mode}_{d}"], row[f"builtin_{mode}_{d}"]
            torch = row.get(f"torch_{d}") if have_torch else None
            parts.append(f"  {mode:>8} {CASE_NAMES[d]:>16}: ms_bce {_ms(ours)} ms, built-in {_ms(theirs)} ms "
                         f"(x{theirs / ours:6.1f})" + (f", torch {_ms(torch)} ms (x{torch / ours:5.1f})" if torch else "")
                         + f", {ours / floor_of(row, mode, d):5.2f} x floor"
                         + (f" ({ours / row[f'floor_train_{mode}']:5.2f} x the training-step floor)"
                            if d == "forward_backward" else ""))
        if f"ms_bce_{mode}_forward_backward_unwrapped" in row:
            parts.append(f"  {mode:>8} forward+backward, value_and_grad called without a Cell: ms_bce "
                         f"{_ms(row[f'ms_bce_{mode}_forward_backward_unwrapped'])} ms, built-in "
                         f"{_ms(row[f'builtin_{mode}_forward_backward_unwrapped'])} ms, training-step floor "
                         f"{_ms(row[f'floor_train_unwrapped_{mode}'])} ms (MindSpore's pipeline thread; the "
                         f"caller's wait spins)")
    return "\n".join(parts)


def markdown(rows, modes):
    """The results as a Markdown table (medians in ms; 'x' columns: how many
    times faster ms_bce is; floor: the floor operators' time for that case)."""
    torch = "torch_forward" in rows[0]
    head = ["dtype", "elements", "mode", "case", "ms_bce", "built-in", "x built-in"]
    head += ["PyTorch", "x PyTorch"] if torch else []
    head += ["floor", "ms_bce / floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        for mode in modes:
            for d in CASES:
                ours, theirs = r[f"ms_bce_{mode}_{d}"], r[f"builtin_{mode}_{d}"]
                cells = [r["dtype"], f"{r['n']:,}", mode, CASE_NAMES[d], f"{1e3 * ours:.3f}",
                         f"{1e3 * theirs:.3f}", f"{theirs / ours:.1f}"]
                if torch:
                    cells += ([f"{1e3 * r[f'torch_{d}']:.3f}", f"{r[f'torch_{d}'] / ours:.1f}"]
                              if f"torch_{d}" in r else ["", ""])
                fl = floor_of(r, mode, d)
                cells += [f"{1e3 * fl:.3f}", f"{ours / fl:.2f}"]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scaling(n, repeats, log=print):
    """Graph-mode times at n float32 elements with 1 kernel thread and with
    every usable CPU: a kernel that speeds up with threads is bound by
    arithmetic, one that does not, by memory (the floors show which the
    machine's bandwidth allows)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(scale=3.0, size=n).astype(np.float32), (rng.random(n) > 0.5).astype(np.float32)
    w, p = rng.uniform(0.5, 2.0, n).astype(np.float32), rng.uniform(0.5, 3.0, n).astype(np.float32)
    tensors = [ms.Tensor(a) for a in (x, y, w, p)]
    before = ms_bce.get_num_threads()
    out = {}
    try:
        for threads in sorted({1, len(os.sched_getaffinity(0))}):
            ms_bce.set_num_threads(threads)
            floors = _floor_cases(*tensors[2:], "graph")
            cases = _mindspore_cases(ms_bce.ops.binary_cross_entropy_with_logits, *tensors, "graph")
            out[threads] = {name: _median_time(lambda fn=fn: _sync(fn(*tensors[:2])), repeats)
                            for name, fn in floors.items()}
            out[threads].update({f"ms_bce_{case}": _median_time(call, repeats) for case, call in cases.items()})
            log(f"  {threads} thread(s): " + ", ".join(f"{k} {_ms(v)} ms" for k, v in out[threads].items()))
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        ms_bce.set_num_threads(before)
    return out


def _launch(lib, name, arrays):
    """Calls a CPU library entry point directly (MindSpore's Custom AOT
    arguments: the tensors' data, ranks, shapes and dtype names); its status."""
    import ctypes
    n = len(arrays)
    shapes = [np.array(a.shape, np.int64) for a in arrays]
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    return fn(n, (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays]), (ctypes.c_int * n)(*[a.ndim for a in arrays]),
              (ctypes.POINTER(ctypes.c_int64) * n)(*[s.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for s in shapes]),
              (ctypes.c_char_p * n)(*[b"float32"] * n), None, None)


def arithmetic(repeats, elements=1 << 17, log=print):
    """The kernels' arithmetic alone: the CPU library's entry points called
    directly (no MindSpore), one kernel thread, on float32 inputs that stay in
    the last-level cache (2 MiB and 4 MiB), in ns per element: the forward
    'mean' (above the size whose elements are computed in double), the
    gradient of the logits ('mean') and the read floor.  The difference of the
    two sizes' times, over the difference of their element counts, cancels
    each call's fixed cost.  What the arithmetic costs once memory is out of
    the way: times the element count over the threads, a bound below which no
    memory system takes the kernel."""
    import ctypes
    lib = ctypes.CDLL(ms_bce._kernels.library_path("CPU"))
    rng = np.random.default_rng(2)
    n2 = 2 * elements
    x, y = rng.normal(scale=3.0, size=n2).astype(np.float32), (rng.random(n2) > 0.5).astype(np.float32)
    w, p = rng.uniform(0.5, 2.0, n2).astype(np.float32), rng.uniform(0.5, 3.0, n2).astype(np.float32)
    zero_d, dout, dx = np.zeros((), np.float32), np.ones((), np.float32), np.empty(n2, np.float32)
    t = np.zeros(1, np.float32)  # the t operand: no label smoothing

    def calls(n):
        ins = [a[:n] for a in (x, y, w, p)]
        return {"forward": ("bce_with_logits_forward_mean_wp", ins + [t, zero_d]),
                "dx": ("bce_with_logits_backward_input_mean_wp", ins + [t, dout, dx[:n]]),
                "floor_read": ("ms_bce_floor_read", ins + [zero_d])}
    before = ms_bce.get_num_threads()
    ms_bce.set_num_threads(1)
    out = {}
    try:
        small, large = calls(elements), calls(n2)
        for name in small:
            times = []
            for entry, arrays in (small[name], large[name]):
                if _launch(lib, entry, arrays) != 0:
                    raise RuntimeError(f"{entry} failed")
                times.append(_median_time(lambda: _launch(lib, entry, arrays), repeats))
            out[name] = (times[1] - times[0]) / elements * 1e9
    finally:
        ms_bce.set_num_threads(before)
    log(f"arithmetic alone (float32 in cache, 1 kernel thread, no MindSpore): "
        + ", ".join(f"{k} {v:.3f} ns/element" for k, v in out.items()))
    return out


# ------------------------------------------------------------ variants ---
# Beyond MindSpore's names: each variant through ms_bce's fused kernel against
# the same loss written as a composition of MindSpore ops (what a user writes
# today), graph mode, float32, beside ms_bce's plain BCE-with-logits.

def _focal_composed(x, y):
    """torchvision's sigmoid_focal_loss (alpha 0.25, gamma 2, 'mean') as MindSpore ops."""
    prob = ops.sigmoid(x)
    ce = ops.binary_cross_entropy_with_logits(x, y, ops.ones_like(x), ops.ones_like(x), "none")
    p_t = prob * y + (1 - prob) * (1 - y)
    return ((0.25 * y + 0.75 * (1 - y)) * ce * (1 - p_t) ** 2).mean()


def _focal_fused(x, y):
    return ms_bce.ops.sigmoid_focal_loss(x, y, 0.25, 2.0, "mean")


def _smoothing_composed(x, y):
    """Label smoothing 0.1 as a user writes it today: the targets smoothed by two more ops."""
    ones = ops.ones_like(x)
    return ops.binary_cross_entropy_with_logits(x, y * (1 - 0.1) + 0.1 / 2, ones, ones, "mean")


def _smoothing_fused(x, y):
    return ms_bce.ops.binary_cross_entropy_with_logits(x, y, label_smoothing=0.1)


_CLASSES = 1000  # the weighted mean's rows: (n / 1000, 1000) with one weight per class
_CLASS_WEIGHT = Tensor(np.linspace(0.5, 2.0, _CLASSES).astype(np.float32))


def _weighted_mean_composed(x, y):
    """The mean normalised by the weights as a user writes it today: the 'sum' over the sum
    of the weight broadcast to the input (x, y: rows of _CLASSES)."""
    ones = ops.ones_like(_CLASS_WEIGHT)
    total = ops.binary_cross_entropy_with_logits(x, y, _CLASS_WEIGHT, ones, "sum")
    return total / ops.broadcast_to(_CLASS_WEIGHT, x.shape).sum()


def _weighted_mean_fused(x, y):
    return ms_bce.ops.binary_cross_entropy_with_logits(x, y, _CLASS_WEIGHT, reduction="weighted_mean")


def _mask_composed(x, y, m):
    """The mean over the kept elements as a user writes it today: the 'none' losses,
    zeroed where dropped (select, so NaN there is dropped too), over the count kept."""
    ones = ops.ones_like(x)
    loss = ops.binary_cross_entropy_with_logits(x, y, ones, ones, "none")
    return ops.select(m, loss, ops.zeros_like(loss)).sum() / m.astype(ms.float32).sum()


def _mask_fused(x, y, m):
    return ms_bce.ops.binary_cross_entropy_with_logits(x, y, mask=m)


def _class_weighted_mean(x, y):
    return ms_bce.ops.binary_cross_entropy_with_logits(x, y, _CLASS_WEIGHT, reduction="mean")


def _plain(x, y):
    return ms_bce.ops.binary_cross_entropy_with_logits(x, y)


VARIANTS = {"plain BCE-with-logits (ms_bce)": (_plain, None),
            "sigmoid_focal_loss": (_focal_fused, _focal_composed),
            "label_smoothing=0.1": (_smoothing_fused, _smoothing_composed),
            "mask (bool, 70 % kept)": (_mask_fused, _mask_composed),
            "plain 'mean' with 1000 class weights (ms_bce)": (_class_weighted_mean, None),
            "reduction='weighted_mean' (1000 class weights)": (_weighted_mean_fused, _weighted_mean_composed)}
# the variants computed on rows of _CLASSES
_ROW_VARIANTS = ("plain 'mean' with 1000 class weights (ms_bce)", "reduction='weighted_mean' (1000 class weights)")


class _Fn(nn.Cell):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def construct(self, *args):
        return self.fn(*args)


def variants(n, repeats, log=print):
    """{variant: {'fused'|'composed': {'forward': s, 'forward_backward': s}}} at n float32 elements,
    graph mode (forward 'mean'; forward+backward: value_and_grad w.r.t. the logits in a Cell)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(scale=3.0, size=n).astype(np.float32))
    y = Tensor((rng.random(n) < 0.3).astype(np.float32))
    keep = Tensor(rng.random(n) < 0.7)
    # the class-weighted variants' operands as rows of _CLASSES, shaped before the timing (a
    # reshape in the graph is a copy: it would double the row's time)
    rows = (x.reshape(-1, _CLASSES), y.reshape(-1, _CLASSES)) if n % _CLASSES == 0 else None
    out = {}
    for name, impls in VARIANTS.items():
        args = (x, y, keep) if name.startswith("mask") else (x, y)
        if name in _ROW_VARIANTS:
            if rows is None:
                log(f"  {name}: skipped ({n} elements are not rows of {_CLASSES})")
                continue
            args = rows
        out[name] = {}
        for kind, fn in zip(("fused", "composed"), impls):
            if fn is None:
                continue
            fwd = _Fn(fn)
            step = _Step(ms.value_and_grad(_Fn(fn), grad_position=0))
            out[name][kind] = {"forward": _median_time(lambda: _sync(fwd(*args)), repeats),
                               "forward_backward": _median_time(lambda: _sync(step(*args)), repeats)}
        text = "; ".join(f"{kind} forward {t['forward'] * 1e3:.2f} ms, forward+backward "
                         f"{t['forward_backward'] * 1e3:.2f} ms" for kind, t in out[name].items())
        if "composed" in out[name]:
            f, c = out[name]["fused"], out[name]["composed"]
            text += (f"  -> composition / fused: forward {c['forward'] / f['forward']:.1f}x, "
                     f"forward+backward {c['forward_backward'] / f['forward_backward']:.1f}x")
        log(f"  {name}: {text}")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    return out


# ------------------------------------------------------ fused linear ---
# ms_bce.ops.linear_binary_cross_entropy_with_logits against the composition it
# replaces, binary_cross_entropy_with_logits(ops.dense(x, W, b), y), graph mode,
# float32: the peak memory above the inputs, the forward and the training step
# (value_and_grad w.r.t. input, weight and bias, in a Cell).  Each (variant,
# case) runs in a fresh process, so that one's memory pool cannot hide another's
# peak: its peak is the process's resident high-water mark (reset once the
# inputs exist: /proc/self/clear_refs) minus its resident size then.

LINEAR_SHAPE = (8192, 512, 32768)  # N, H, C: the size
# 'unfused': the composition, ops.dense then the loss; 'unfused_matmul': the same with
# MatMul(transpose_b) and BiasAdd, the fused loss's own operators (MindSpore 2.10's CPU ops.dense
# holds several (N, C) tensors: measured, 6 GiB at the size against 2 GiB)
LINEAR_VARIANTS = ("unfused", "unfused_matmul", "fused")


class _LinearLoss(nn.Cell):
    def __init__(self, variant, chunk_size=None):
        super().__init__()
        self.variant = variant
        self.chunk_size = chunk_size
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x, w, y, b):
        if self.variant == "fused":
            return ms_bce.ops.linear_binary_cross_entropy_with_logits(x, w, y, b, chunk_size=self.chunk_size)
        if self.variant == "unfused_matmul":
            return ms_bce.ops.binary_cross_entropy_with_logits(ops.bias_add(self.matmul(x, w), b), y)
        return ms_bce.ops.binary_cross_entropy_with_logits(ops.dense(x, w, b), y)


def _memory_status():
    """(resident MiB, resident high-water mark MiB) of this process (Linux)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _reset_high_water_mark():
    """Linux: the high-water mark becomes the resident size now; False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def linear_inputs(n, h, c, seed=0):
    """x (n, h), W (c, h), bias (c,) and a float32 target (n, c) with 1 % positives, as
    Tensors sharing NumPy's memory (Tensor.from_numpy: no second copy), made in row
    blocks (no full-size temporary)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h), dtype=np.float32)
    w = rng.standard_normal((c, h), dtype=np.float32) * np.float32(1 / np.sqrt(h))
    b = rng.standard_normal(c, dtype=np.float32) * np.float32(0.1)
    y = np.empty((n, c), np.float32)
    block = max(1, (1 << 22) // max(c, 1))
    for i in range(0, n, block):
        y[i:i + block] = rng.random((min(block, n - i), c), dtype=np.float32) < 0.01
    return tuple(Tensor.from_numpy(a) for a in (x, w, y, b))


def _linear_worker(variant, case, n, h, c, repeats, chunk_size):
    """In this (fresh) process: {'times': [s...], 'peak_mib': ..., 'loss': ...}."""
    ms.set_context(mode=ms.GRAPH_MODE)
    x, w, y, b = linear_inputs(n, h, c)
    loss_cell = _LinearLoss(variant, chunk_size)
    if case == "forward":
        fn = loss_cell
    else:
        fn = _Step(ms.value_and_grad(loss_cell, grad_position=(0, 1, 3)))
    fn.compile(x, w, y, b)  # the graph compiled first: its compilation's memory is not the case's
    reset = _reset_high_water_mark()
    base = _memory_status()[0]
    times = []
    for i in range(repeats + 1):  # the first run is a warm-up
        start = time.perf_counter()
        out = _sync(fn(x, w, y, b))
        if i:
            times.append(time.perf_counter() - start)
    loss = out if case == "forward" else out[0]
    return {"times": times, "peak_mib": _memory_status()[1] - base, "base_mib": base, "hwm_reset": reset,
            "loss": float(loss.asnumpy())}


def linear(shape=LINEAR_SHAPE, repeats=3, chunk_size=None, log=print):
    """{variant: {case: worker result}} and the ratios, each in a fresh process (see above)."""
    import subprocess
    import sys
    n, h, c = shape
    out = {"shape": list(shape), "chunk_size": chunk_size,
           "chunk_rows": ms_bce.ops.linear_chunk_rows(n, h, c, chunk_size)}
    for variant in LINEAR_VARIANTS:
        out[variant] = {}
        for case in ("forward", "training_step"):
            cmd = [sys.executable, "-m", "ms_bce.bench", "--linear-worker", f"{variant},{case}",
                   "--linear", ",".join(map(str, shape)), "--repeats", str(repeats)]
            if chunk_size:
                cmd += ["--linear-chunk-size", str(chunk_size)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  env={**os.environ, "GLOG_v": "3"})
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            r = json.loads(lines[-1])
            out[variant][case] = r
            log(f"  {variant:>14} {case:>13}: median {statistics.median(r['times']) * 1e3:9.1f} ms "
                f"(min {min(r['times']) * 1e3:.1f}, max {max(r['times']) * 1e3:.1f}), "
                f"peak above the inputs {r['peak_mib']:8.1f} MiB, loss {r['loss']:.8f}")
    fused = out["fused"]
    for base in ("unfused", "unfused_matmul"):
        unfused = out[base]
        out["ratios" if base == "unfused" else f"ratios_{base}"] = r = {
            "forward_time": statistics.median(fused["forward"]["times"])
            / statistics.median(unfused["forward"]["times"]),
            "training_step_time": statistics.median(fused["training_step"]["times"])
            / statistics.median(unfused["training_step"]["times"]),
            "forward_memory": fused["forward"]["peak_mib"] / max(unfused["forward"]["peak_mib"], 1e-9),
            "training_step_memory": fused["training_step"]["peak_mib"]
            / max(unfused["training_step"]["peak_mib"], 1e-9),
            "loss_relative_difference": abs(fused["forward"]["loss"] - unfused["forward"]["loss"])
            / abs(unfused["forward"]["loss"]),
        }
        log(f"  fused / {base}: forward time {r['forward_time']:.3f}x, training step time "
            f"{r['training_step_time']:.3f}x, peak memory forward {r['forward_memory']:.3f}x, training step "
            f"{r['training_step_memory']:.3f}x; loss relative difference {r['loss_relative_difference']:.2e}")
    return out


def linear_markdown(result):
    """The fused-vs-unfused table (Markdown)."""
    n, h, c = result["shape"]
    lines = [f"| N = {n}, H = {h}, C = {c}, float32, graph mode | unfused: `ops.dense` + loss | "
             "unfused: MatMul + BiasAdd + loss | fused | fused / `ops.dense` one | fused / MatMul one |",
             "|---|---|---|---|---|---|"]

    def spread(times):
        return f"{statistics.median(times) * 1e3:.0f} ms ({min(times) * 1e3:.0f}–{max(times) * 1e3:.0f})"
    for case, name in (("forward", "forward"), ("training step", "training step")):
        case = case.replace(" ", "_")
        u, um, f = result["unfused"][case], result["unfused_matmul"][case], result["fused"][case]
        lines.append(f"| {name}: peak memory above the inputs | {u['peak_mib']:.0f} MiB | {um['peak_mib']:.0f} MiB | "
                     f"{f['peak_mib']:.0f} MiB | {f['peak_mib'] / max(u['peak_mib'], 1e-9):.3f} | "
                     f"{f['peak_mib'] / max(um['peak_mib'], 1e-9):.3f} |")
        med = statistics.median
        lines.append(f"| {name}: time, median (min–max) | {spread(u['times'])} | {spread(um['times'])} | "
                     f"{spread(f['times'])} | {med(f['times']) / med(u['times']):.3f} | "
                     f"{med(f['times']) / med(um['times']):.3f} |")
    lines.append(f"| loss | {result['unfused']['forward']['loss']:.8f} | "
                 f"{result['unfused_matmul']['forward']['loss']:.8f} | {result['fused']['forward']['loss']:.8f} | "
                 f"relative difference {result['ratios']['loss_relative_difference']:.1e} | "
                 f"{result['ratios_unfused_matmul']['loss_relative_difference']:.1e} |")
    return "\n".join(lines) + "\n"


def machine():
    """A line describing where the run happened."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {len(os.sched_getaffinity(0))} CPUs usable, ms_bce {ms_bce.__version__} "
            f"({ms_bce.get_num_threads()} kernel threads, {ms_bce._kernels.get_simd_path()} path), "
            f"MindSpore {ms.__version__}, NumPy {np.__version__}")


def plot(rows, modes, path):
    """Time against size, per implementation (log-log), one panel per case."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    dtypes = sorted({r["dtype"] for r in rows}, reverse=True)
    panels = [(dt, mode, d) for dt in dtypes for mode in modes for d in CASES]
    cols = len(CASES) * len(modes)
    fig, axes = plt.subplots(len(dtypes), cols, figsize=(4.2 * cols, 3.6 * len(dtypes)), squeeze=False)
    for ax, (dt, mode, d) in zip(axes.ravel(), panels):
        sel = [r for r in rows if r["dtype"] == dt]
        ns = [r["n"] for r in sel]
        ax.loglog(ns, [r[f"ms_bce_{mode}_{d}"] * 1e3 for r in sel], "o-", label="ms_bce")
        ax.loglog(ns, [r[f"builtin_{mode}_{d}"] * 1e3 for r in sel], "s-", label="MindSpore built-in")
        if f"torch_{d}" in sel[0]:
            ax.loglog(ns, [r[f"torch_{d}"] * 1e3 for r in sel], "^-", label="PyTorch")
        ax.loglog(ns, [floor_of(r, mode, d) * 1e3 for r in sel], "k:", label="floor operators")
        ax.set_title(f"{dt}, {mode}, {CASE_NAMES[d]}", fontsize=9)
        ax.set_xlabel("elements")
        ax.set_ylabel("ms (median)")
        ax.grid(True, which="both", alpha=0.3)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"BCEWithLogitsLoss ('mean', full-size weight and pos_weight): {machine()}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark ms_bce against MindSpore's built-in (and PyTorch).")
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="kernel threads (0: default)")
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--modes", default="pynative,graph")
    parser.add_argument("--out", default="bench_out", help="folder for results.json and bench.png")
    parser.add_argument("--variants-size", type=float, default=1e7,
                        help="elements of the variants' rows (focal loss ...: fused vs composed), 0 to skip")
    parser.add_argument("--scaling", action="store_true",
                        help="also time the largest size with 1 kernel thread and with all (graph mode)")
    parser.add_argument("--linear", default=",".join(map(str, LINEAR_SHAPE)),
                        help="N,H,C of the fused linear + BCE-with-logits against the unfused composition, 0 to skip")
    parser.add_argument("--linear-repeats", type=int, default=3, help="timed runs of each linear case")
    parser.add_argument("--linear-chunk-size", type=int, default=0, help="the fused loss's chunk_size (0: its rule)")
    parser.add_argument("--linear-only", action="store_true", help="run the linear table alone")
    parser.add_argument("--linear-worker", help=argparse.SUPPRESS)  # variant,case: one case in this process
    args = parser.parse_args(argv)
    linear_shape = None if args.linear in ("0", "") else tuple(int(float(v)) for v in args.linear.split(","))
    if args.linear_worker:
        variant, case = args.linear_worker.split(",")
        print(json.dumps(_linear_worker(variant, case, *linear_shape, args.repeats, args.linear_chunk_size or None)))
        return 0
    if args.linear_only:
        return _linear_main(linear_shape, args)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    print(f"machine: {machine()}")
    rows = run(sizes, args.repeats, args.dtypes.split(","), modes, args.threads)
    result = {"machine": machine(), "rows": rows}
    result["arithmetic"] = arithmetic(max(args.repeats, 21))
    n_max, threads = max(sizes), ms_bce.get_num_threads()
    big = [r for r in rows if r["n"] == n_max and r["dtype"] == "float32" and "floor_read_graph" in r]
    if big:
        fwd_ms = result["arithmetic"]["forward"] * n_max / threads * 1e-6
        print(f"  -> at n={n_max:,} on {threads} thread(s): the forward's arithmetic alone takes {fwd_ms:.3f} ms, "
              f"{fwd_ms / (1e3 * big[0]['floor_read_graph']):.2f} x the graph read floor measured above")
    if args.variants_size:
        n_var = int(args.variants_size)
        print(f"variants, graph mode, float32, n={n_var:,} (ms_bce's fused kernel; the composition of MindSpore ops):")
        result["variants"] = {"n": n_var, "rows": variants(n_var, args.repeats)}
    if args.scaling:
        print(f"threads, graph mode, float32, n={n_max:,}:")
        result["scaling"] = {"n": n_max, "threads": scaling(n_max, args.repeats)}
    if linear_shape:
        result["linear"] = _linear_section(linear_shape, args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "bench.md"), "w", encoding="utf-8") as f:
        f.write(f"Machine: {machine()}\n\n" + markdown(rows, modes)
                + (f"\nFused linear + BCE-with-logits:\n\n{linear_markdown(result['linear'])}" if linear_shape else ""))
    png = os.path.join(args.out, "bench.png")
    print(f"results: {os.path.join(args.out, 'results.json')}, {os.path.join(args.out, 'bench.md')}; plot: "
          f"{png if plot(rows, modes, png) else 'not written (matplotlib is not installed)'}")
    return 0


def _linear_section(shape, args):
    print(f"fused linear + BCE-with-logits against the unfused composition, graph mode, float32, "
          f"N, H, C = {shape}, {args.linear_repeats} timed runs each (a fresh process per case):")
    return linear(shape, args.linear_repeats, args.linear_chunk_size or None)


def _linear_main(shape, args):
    """--linear-only: the fused linear table alone (linear.json and linear.md in --out)."""
    print(f"machine: {machine()}")
    result = _linear_section(shape, args)
    result["machine"] = machine()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "linear.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "linear.md"), "w", encoding="utf-8") as f:
        f.write(f"Machine: {machine()}\n\n" + linear_markdown(result))
    print(linear_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
