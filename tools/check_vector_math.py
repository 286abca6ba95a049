"""Measures the AVX2 vector maths of the CPU kernels against float64 NumPy:
the largest error in float32 ULP over every float32 of each function's domain
(--exhaustive; about a minute) or over every 64th (the default).

    python tools/check_vector_math.py [--exhaustive]
"""
import argparse
import ctypes
import sys

import numpy as np

from ms_bce import _kernels

# (fn code, name, bit patterns of the domain [lo, hi], float64 reference)
FUNCTIONS = (
    (0, "exp_normal (e^t, -87.5 <= t <= 0)", (0x80000000, 0xC2AF0000), np.exp),
    (1, "log1p_unit (log1p(e), 0 <= e <= 1)", (0x00000000, 0x3F800000), np.log1p),
    (2, "log_via_double (log(a), a > 0)", (0x00000001, 0x7F7FFFFF), np.log),
)


def ulp32(v):
    """Spacing of float32 at |v| (the smallest subnormal at 0)."""
    with np.errstate(over="ignore"):
        return np.spacing(np.abs(v).astype(np.float32)).astype(np.float64)


def worst_error(fn, bits_lo, bits_hi, reference, step, lib, chunk=1 << 24):
    """(largest error in ULP, argument where it occurs) over the domain's bit patterns, every step-th."""
    worst, where = 0.0, None
    start = bits_lo
    while start <= bits_hi:
        bits = np.arange(start, min(bits_hi + 1, start + chunk * step), step, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        out = np.empty_like(x)
        status = lib.ms_bce_vector_math(fn, x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                                        ctypes.c_int64(x.size))
        if status != 0:
            raise RuntimeError("this CPU has no AVX2 path (status %d)" % status)
        with np.errstate(all="ignore"):
            ref = reference(x.astype(np.float64))
        err = np.abs(out.astype(np.float64) - ref) / ulp32(ref)
        err[np.isnan(ref) & np.isnan(out)] = 0.0
        i = int(np.nanargmax(err))
        if err[i] > worst:
            worst, where = float(err[i]), float(x[i])
        start += chunk * step
    return worst, where


def measure(exhaustive=False):
    lib = ctypes.CDLL(_kernels.library_path())
    lib.ms_bce_vector_math.restype = ctypes.c_int
    step = 1 if exhaustive else 64
    return [(name,) + worst_error(fn, lo, hi, ref, step, lib) for fn, name, (lo, hi), ref in FUNCTIONS]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exhaustive", action="store_true", help="every float32 of each domain")
    args = parser.parse_args(argv)
    for name, worst, where in measure(args.exhaustive):
        print(f"{name:40s} max error {worst:.3f} ULP (at {where!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
