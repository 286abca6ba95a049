"""GPU bandwidth benchmark of ms_bce's CUDA kernels (needs a GPU and CuPy):

    python -m ms_bce.bench_gpu [--n 100000000] [--dtype float32] [--repeat 20]

Calls the entry points of the GPU library directly (ctypes, device pointers
from CuPy, CuPy's current stream), as MindSpore's Custom AOT op would, and
reports for each its effective bandwidth -- the bytes it must move at least
(every input read once, every output written once) over its median time --
against a device-to-device copy of the logits (read n, write n elements):
the issue's target is >= 80% of the copy's GB/s at 10^8 elements.
"""
import argparse
import ctypes
import sys

import numpy as np

from ms_bce import _kernels

_SIZES = {"float32": 4, "float16": 2, "bfloat16": 2}

# (entry point, description, operands besides x and y, outputs; "x" = x's shape, "0" = 0-d, "c" = (classes,))
CASES = (
    ("bce_with_logits_forward_none", "forward 'none'", [], ["x"]),
    ("bce_with_logits_forward_mean", "forward 'mean'", [], ["0"]),
    ("bce_with_logits_forward_mean_p", "forward 'mean', pos_weight (C,)", ["c"], ["0"]),
    ("bce_with_logits_backward_mean", "backward 'mean' (dx, dy)", ["dout0"], ["x", "x"]),
    ("bce_with_logits_backward_input_mean", "backward_input 'mean' (dx)", ["dout0"], ["x"]),
    ("bce_with_logits_backward_none_p", "backward 'none', pos_weight (C,) (dx, dy, dP)", ["c", "doutx"],
     ["x", "x", "c"]),
    ("bce_forward_mean", "BCELoss forward 'mean'", [], ["0"]),
    ("bce_backward_mean", "BCELoss backward 'mean' (dp, dy)", ["dout0"], ["x", "x"]),
)


def _cupy():
    try:
        import cupy  # noqa: PLC0415 (optional dependency, GPU machines only)
    except ImportError:
        sys.exit("ms_bce.bench_gpu needs CuPy: pip install cupy-cuda12x (or cupy-cuda13x), on a machine with a GPU.")
    return cupy


def _time_ms(cp, fn, repeat):
    """Median wall time of fn() on the current stream, by CUDA events."""
    fn()  # warm-up
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def run(n, dtype, repeat, classes=1000):
    cp = _cupy()
    lib = ctypes.CDLL(_kernels.library_path("GPU"))
    size = _SIZES[dtype]
    storage = {"float32": cp.float32, "float16": cp.float16, "bfloat16": cp.uint16}[dtype]
    rows = n // classes
    n = rows * classes
    rng = cp.random.default_rng(0)
    x = rng.standard_normal(n, dtype=cp.float32).astype(storage) if dtype != "bfloat16" else \
        (rng.standard_normal(n, dtype=cp.float32).view(cp.uint32) >> 16).astype(cp.uint16)
    y = cp.zeros_like(x)
    tensors = {"c": cp.zeros(classes, storage) + (1 if dtype != "bfloat16" else 0x3F80),
               "dout0": cp.zeros((), storage) + (1 if dtype != "bfloat16" else 0x3F80),
               "doutx": cp.zeros_like(x)}
    t_operand = cp.zeros(1, cp.float32)
    stream = cp.cuda.get_current_stream().ptr or None
    shape_of = {"x": (rows, classes), "0": (), "c": (classes,), "dout0": (), "doutx": (rows, classes)}

    copy_dst = cp.empty_like(x)
    copy_ms = _time_ms(cp, lambda: copy_dst.data.copy_from_device_async(x.data, x.nbytes), repeat)
    copy_gbs = 2 * n * size / copy_ms / 1e6
    lines = [f"ms_bce GPU kernels, n = {n:,} ({rows} x {classes}), {dtype}, median of {repeat}; device: "
             f"{cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)['name'].decode()}",
             "",
             "| operation | time (ms) | effective GB/s | % of D2D copy |",
             "|---|---|---|---|",
             f"| device-to-device copy (read n, write n) | {copy_ms:.3f} | {copy_gbs:.0f} | 100% |"]
    for name, what, extra, outs in CASES:
        operands = [e for e in extra if not e.startswith("dout")]
        douts = [e for e in extra if e.startswith("dout")]
        # t, the loss's scalars (none) and the drivers' options (no label smoothing): float32, after the operands
        inputs = ([(x, (rows, classes)), (y, (rows, classes))] + [(tensors[e], shape_of[e]) for e in operands]
                  + [(t_operand, (1,))] + [(tensors[e], shape_of[e]) for e in douts])
        outputs = [(cp.empty(shape_of[o], storage), shape_of[o]) for o in outs]
        params = inputs + outputs
        t_index = len(operands) + 2
        k = len(params)
        ptrs = (ctypes.c_void_p * k)(*[t.data.ptr for t, _ in params])
        shape_arrays = [np.array(s, np.int64).reshape(-1) for _, s in params]
        ndims = (ctypes.c_int * k)(*[len(s) for _, s in params])
        shapes = (ctypes.POINTER(ctypes.c_int64) * k)(
            *[a.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for a in shape_arrays])
        dtypes = (ctypes.c_char_p * k)(*[b"float32" if i == t_index else dtype.encode() for i in range(k)])
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int

        def call(fn=fn, k=k, ptrs=ptrs, ndims=ndims, shapes=shapes, dtypes=dtypes):
            status = fn(k, ptrs, ndims, shapes, dtypes, ctypes.c_void_p(stream), None)
            if status != 0:
                raise RuntimeError(f"{name} returned status {status}")

        ms = _time_ms(cp, call, repeat)
        moved = sum(t.size for t, _ in params) * size  # each input read once, each output written once
        gbs = moved / ms / 1e6
        lines.append(f"| {what} | {ms:.3f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10 ** 8, help="elements of the logits (default 10^8)")
    parser.add_argument("--dtype", choices=sorted(_SIZES), default="float32")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    print(run(args.n, args.dtype, args.repeat))


if __name__ == "__main__":
    main()
