"""The AVX2 vector maths measured against float64 NumPy over every 64th float32
of each domain (tools/check_vector_math.py --exhaustive checks every one)."""
import pytest

from ms_bce import _kernels
from tools.check_vector_math import measure

def _cpu_has_avx2():
    _kernels.set_simd_path("avx2")
    has = _kernels.get_simd_path() == "avx2"
    _kernels.set_simd_path("auto")
    return has


pytestmark = pytest.mark.skipif(not _cpu_has_avx2(), reason="this CPU has no AVX2 path (the portable path uses libm)")


def test_vector_maths_within_their_bars():
    errors = {name.split(" ")[0]: worst for name, worst, _ in measure(exhaustive=False)}
    assert errors["exp_normal"] <= 1.1      # exhaustive: 1.079 ULP
    assert errors["log1p_unit"] <= 1.0     # exhaustive: 1.000 ULP (at the smallest subnormal)
    assert errors["log_via_double"] <= 0.5  # correctly rounded
