"""The measurements quoted in docs/numerics.rst and the README's "why" table:
elementwise error in float32 ULPs and the relative error of 'mean', for
ms_bce and MindSpore's built-in, against the float64 reference of tests/.

    python docs/scripts/measure_numerics.py      (from the repository root; ~30 s)
"""
import math
import os
import platform
import sys

import mindspore as ms
import numpy as np

import ms_bce

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests import reference as ref  # noqa: E402  pylint: disable=wrong-import-position


def tensor(a):
    return ms.Tensor(np.asarray(a, np.float32))


def ulp_errors(out, exact):
    """|out - exact| in float32 ULPs of exact."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(out.astype(np.float64) - exact) / spacing


def main():
    rng = np.random.default_rng(0)
    n = 10 ** 6
    # logits: half uniform over [-100, 100] (both tails), half N(0, 5); targets in [0, 1], a quarter exactly 0 or 1
    x = np.concatenate([rng.uniform(-100, 100, n // 2), rng.normal(0, 5, n // 2)]).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    y[: n // 4] = np.round(y[: n // 4])
    exact = ref.bce_with_logits(x.astype(np.float64), y.astype(np.float64), None, None, "none")
    print(f"elementwise, {n:.0e} float32 logits in [-100, 100] and N(0, 5), targets in [0, 1]:")
    for name, fn in (("ms_bce", ms_bce.ops.binary_cross_entropy_with_logits),
                     ("built-in", ms.ops.binary_cross_entropy_with_logits)):
        err = ulp_errors(fn(tensor(x), tensor(y), reduction='none').asnumpy(), exact)
        print(f"  {name:8s} max {np.nanmax(err):.3g} ULP; {np.mean(err > 4):.1%} of elements beyond 4 ULP")
    for xv in (20.0, 37.43):
        e = ref.bce_with_logits(np.array([xv]), np.array([1.0]), None, None, "none")[0]
        ours = ms_bce.ops.binary_cross_entropy_with_logits(tensor([xv]), tensor([1.0]), reduction='none')
        builtin = ms.ops.binary_cross_entropy_with_logits(tensor([xv]), tensor([1.0]), reduction='none')
        print(f"  x = {xv}, y = 1: exact {e:.4e}, ms_bce {ours.asnumpy()[0]:.4e}, built-in {builtin.asnumpy()[0]:.4e}")
    print("'mean' of N(0, 3) logits with 0/1 targets, relative error:")
    for n in (10 ** 6, 4 * 10 ** 6, 10 ** 7):
        x = rng.normal(scale=3.0, size=n).astype(np.float32)
        y = (rng.random(n) > 0.5).astype(np.float32)
        exact = math.fsum(ref.bce_with_logits(x.astype(np.float64), y.astype(np.float64), None, None, "none")) / n
        ours = float(ms_bce.ops.binary_cross_entropy_with_logits(tensor(x), tensor(y)).asnumpy())
        builtin = float(ms.ops.binary_cross_entropy_with_logits(tensor(x), tensor(y)).asnumpy())
        print(f"  {n:.0e} elements: ms_bce {abs(ours - exact) / exact:.1e}, built-in {abs(builtin - exact) / exact:.1e}")
    print(f"(MindSpore {ms.__version__}, ms_bce {ms_bce.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
