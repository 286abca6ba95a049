"""The element maths written once over a lane type (custom_ops/common/vmath.h,
lanes.h; custom_ops/cpu/lanes_avx2.h): for V = float and V = F8 (8 AVX2
lanes), exp_normal and log1p_unit give the same bits for every float32 of
their domains and the special values, and the same as the __m256 functions
the vector kernels call (tests/native/vmath_check.cc loops in C++: the
portable path, the AVX2 path and CUDA compute the same float32 maths); the
float instantiation keeps the accuracy of the hand-written AVX2 functions it
replaced (bit-identical to them over every float32 when it replaced them)
against float64 NumPy on a dense sample; the headers compile as C++17 and C++20 and, with nvcc, into a CUDA
kernel that performs exactly their operations (no contraction into FMA)."""
import ctypes
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "native", "vmath_check.cc")
NEW_HEADERS = ("lanes.h", "vmath.h", "vmath_functions.inc", "lanes_avx2.h")
FLAGS = ["-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-ffp-contract=off", "-Wall", "-Wextra", "-pthread"]

EXP, LOG1P, CONTROL = 0, 1, 2
# Bit patterns, inclusive.  exp_normal: every negative float32 (its domain
# [-87.5, -0] is 0x80000000-0xC2AF0000; beyond it the result is unspecified,
# but the same operations still give the same bits), +0, the positive NaNs.
# log1p_unit: [+0, 1], -0, the NaNs of both signs.
EXP_RANGES = [(0x80000000, 0xFFFFFFFF), (0x00000000, 0x00000000), (0x7F800001, 0x7FFFFFFF)]
LOG1P_RANGES = [(0x00000000, 0x3F800000), (0x80000000, 0x80000000), (0x7F800001, 0x7FFFFFFF),
                (0xFF800001, 0xFFFFFFFF)]
EXP_DOMAIN, LOG1P_DOMAIN = (0x80000000, 0xC2AF0000), (0x00000000, 0x3F800000)
# where the largest errors over the whole domains lie (every float32 measured):
# exp_normal 1.0785 ULP at t = -16.287966 (0xC1824DC1), log1p_unit 1.0000 at 2^-149
WORST = {EXP: (0xC1824DC1, 0xC1824DC1), LOG1P: (0x00000001, 0x00000001)}


def compiler():
    cxx = next((shutil.which(c) for c in ([os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++"])
                if shutil.which(c)), None)
    if cxx is None:
        pytest.skip("no C++ compiler")
    return cxx


def compile_check(args):
    """Runs the compiler on vmath_check.cc; its stderr (asserting success and no
    warning from the new headers)."""
    cmd = [compiler(), *args, SOURCE]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    warned = [line for line in proc.stderr.splitlines() if "warning" in line and any(h in line for h in NEW_HEADERS)]
    assert not warned, "\n".join(warned)
    return proc.stderr


def load(path):
    lib = ctypes.CDLL(path)
    lib.vmath_has_avx2.restype = ctypes.c_int
    lib.vmath_compare.restype = ctypes.c_int
    lib.vmath_compare.argtypes = [ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_uint32)]
    lib.vmath_float.restype = None
    lib.vmath_float.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return lib


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    target = str(tmp_path_factory.mktemp("vmath_check") / "libvmath_check.so")
    compile_check(["-std=c++20", *FLAGS, "-o", target])
    return load(target)


@pytest.fixture(scope="module")
def needs_avx2(lib):
    if not lib.vmath_has_avx2():
        pytest.skip("this CPU lacks AVX2/FMA/F16C: the AVX2 lanes (F8) cannot run here")


def evaluate(lib, fn, x):
    """vmath::exp_normal or vmath::log1p_unit (V = float) of a float32 array."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    lib.vmath_float(fn, x.ctypes.data, out.ctypes.data, x.size)
    return out


def bits(lo, hi, step=1):
    return np.arange(lo, hi + 1, step, dtype=np.uint64).astype(np.uint32)


def ulp_error(actual, expected):
    """|actual - expected| in ULP of float32 at |expected| (tools/check_vector_math.py's measure)."""
    with np.errstate(over="ignore"):
        ulp = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - expected) / ulp


# ------------------------------------------------------------ compiling ---

@pytest.mark.parametrize("std", ["c++17", "c++20"])
def test_headers_compile_cleanly(std):
    compile_check([f"-std={std}", "-fsyntax-only", "-Wall", "-Wextra", "-pthread"])


# ---------------------------------------------- bit for bit, exhaustively ---

def mismatches(lib, fn, ranges):
    """[float vs avx2::, F8 vs avx2::] mismatch counts over the ranges, first
    mismatching patterns, seconds taken."""
    counts, first = (ctypes.c_int64 * 2)(), (ctypes.c_uint32 * 2)()
    total, firsts = [0, 0], [None, None]
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    start = time.perf_counter()
    for lo, hi in ranges:
        assert lib.vmath_compare(fn, lo, hi, 3, threads, counts, first) == 0
        for k in range(2):
            if counts[k] and firsts[k] is None:
                firsts[k] = hex(first[k])
            total[k] += counts[k]
    return total, firsts, time.perf_counter() - start


@pytest.mark.usefixtures("needs_avx2")
@pytest.mark.parametrize("fn, ranges", [(EXP, EXP_RANGES), (LOG1P, LOG1P_RANGES)], ids=["exp_normal", "log1p_unit"])
def test_every_float32_gives_the_avx2_bits(lib, fn, ranges):
    """exp_normal: 2,155,872,256 patterns; log1p_unit: 1,082,130,432.  NaN
    results count as equal when both are NaN (payloads: see vmath_check.cc)."""
    (n_float, n_f8), firsts, seconds = mismatches(lib, fn, ranges)
    n = sum(hi - lo + 1 for lo, hi in ranges)
    print(f"\n{['exp_normal', 'log1p_unit'][fn]}: {n} patterns in {seconds:.1f} s; "
          f"mismatches: float {n_float}, F8 {n_f8}")
    assert (n_float, n_f8) == (0, 0), f"first mismatching bit patterns (float, F8): {firsts}"


@pytest.mark.usefixtures("needs_avx2")
def test_the_comparison_counts_differences(lib):
    """The control (vmath_check.cc's fn 2: float and F8 evaluated one bit
    pattern beyond avx2::'s argument) over t in about [-1.0039, -1]: the
    results differ in most places, and the counts and the first pattern say so."""
    counts, first = (ctypes.c_int64 * 2)(), (ctypes.c_uint32 * 2)()
    lo, hi = 0xBF800000, 0xBF800000 + 0x7FFF
    assert lib.vmath_compare(CONTROL, lo, hi, 3, 2, counts, first) == 0
    assert counts[0] == counts[1] and 0x8000 // 4 < counts[0] <= 0x8000
    assert lo <= first[0] == first[1] < lo + 64
    assert lib.vmath_compare(CONTROL, lo, hi, 2, 2, counts, first) == 0  # F8 only
    assert counts[0] == 0 and counts[1] > 0x8000 // 4


# ----------------------------------------------------- values, accuracy ---

def test_special_values(lib):
    nan = np.array([0x7FC00000, 0x7FC12345, 0xFFC00001, 0x7F800001], np.uint32).view(np.float32)
    # exp_normal: NaN gives NaN, e^0 = e^-0 = 1, e^-87.5 (below 2^-126: one
    # rounding into the subnormals) within 1 ULP
    t = np.array([0.0, -0.0, -87.5], np.float32)
    got = evaluate(lib, EXP, np.concatenate([nan, t]))
    assert np.isnan(got[:4]).all()
    np.testing.assert_array_equal(got[4:6], np.float32([1.0, 1.0]))
    assert abs(float(got[6]) - np.exp(-87.5)) <= 2.0 ** -149
    # log1p_unit: 0 -> +0, 1 -> ln 2 (float32 nearest), tiny e -> e, NaN -> NaN;
    # 2^-149 -> 0, its 1-ULP worst case (s_hi = 2^-149 * 0.5 rounds to 0, as in avx2::)
    e = np.array([0.0, 1.0, 1e-30, 2.0 ** -149], np.float32)
    got = evaluate(lib, LOG1P, np.concatenate([nan, e]))
    assert np.isnan(got[:4]).all()
    np.testing.assert_array_equal(got[4:], np.array([0.0, np.log(2.0), 1e-30, 0.0], np.float32))


@pytest.mark.parametrize("fn, domain, reference, bar", [
    (EXP, EXP_DOMAIN, np.exp, 1.08),
    (LOG1P, LOG1P_DOMAIN, np.log1p, 1.00),
], ids=["exp_normal", "log1p_unit"])
def test_float_instantiation_keeps_the_accuracy(lib, fn, domain, reference, bar):
    """Every 61st float32 of the domain, its ends (with the smallest
    subnormals) and the argument of the largest error over the whole domain,
    against float64 NumPy, in ULP of the float32 result."""
    lo, hi = domain
    x = np.concatenate([bits(lo, hi, 61), bits(lo, lo + 64), bits(hi - 64, hi), bits(*WORST[fn], 1)]).view(np.float32)
    err = ulp_error(evaluate(lib, fn, x), reference(x.astype(np.float64)))
    worst = float(err.max())
    print(f"\nmax error {worst:.3f} ULP at {x[int(err.argmax())]!r} over {x.size} values")
    assert worst <= bar
    assert worst > 0.999  # the worst argument is in the sample, and the measure sees it


@pytest.mark.usefixtures("needs_avx2")
def test_fp_contraction_and_fma_hardware_change_nothing(lib, tmp_path):
    """Built with -ffp-contract=fast and FMA instructions (GCC's GNU-mode
    default on an FMA target), the float instantiation gives the same bits:
    no multiply in vmath_functions.inc feeds only adds (lanes.h)."""
    target = str(tmp_path / "libvmath_contract.so")
    compile_check(["-std=gnu++20", *[f for f in FLAGS if f != "-ffp-contract=off"], "-ffp-contract=fast",
                   "-mavx2", "-mfma", "-o", target])
    fast = load(target)
    for fn, domain in ((EXP, EXP_DOMAIN), (LOG1P, LOG1P_DOMAIN)):
        x = bits(*domain, step=127).view(np.float32)
        np.testing.assert_array_equal(evaluate(fast, fn, x).view(np.uint32), evaluate(lib, fn, x).view(np.uint32))


# ----------------------------------------------------------------- nvcc ---

KERNEL = """\
#include "custom_ops/common/vmath.h"

__global__ void vmath_kernel(const float *t, const float *e, float *exp_out, float *log1p_out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    exp_out[i] = ms_bce::vmath::exp_normal(t[i]);
    log1p_out[i] = ms_bce::vmath::log1p_unit(e[i]);
  }
}
"""


def nvcc():
    found = shutil.which(os.environ.get("NVCC") or "nvcc")
    if found is None and os.path.isfile("/usr/local/cuda/bin/nvcc"):
        found = "/usr/local/cuda/bin/nvcc"
    if found is None:
        pytest.skip("no nvcc (the CUDA toolkit): the device compile is not checked")
    return found


def test_device_code_compiles_with_nvcc(tmp_path):
    """nvcc -std=c++17 -c of a kernel calling both functions; its PTX has the
    functions' operations and nothing looser: 17 fma.rn.f32 (exp_normal 9,
    log1p_unit 8), every float add/sub/mul/div with .rn, which ptxas never
    contracts (nvcc's default --fmad=true otherwise fuses a multiply and an add)."""
    cu = tmp_path / "vmath_kernel.cu"
    cu.write_text(KERNEL)
    for args in (["-c", "-o", str(tmp_path / "vmath_kernel.o")], ["-ptx", "-o", str(tmp_path / "vmath_kernel.ptx")]):
        cmd = [nvcc(), "-std=c++17", "-I", ROOT, *args, str(cu)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    ptx = (tmp_path / "vmath_kernel.ptx").read_text()
    ops = re.findall(r"^\s+((?:fma|add|sub|mul|div)(?:\.[a-z0-9]+)*\.f32)\s", ptx, re.M)
    assert ops.count("fma.rn.f32") == 17, ops
    assert all(".rn." in op for op in ops), ops
    assert ops.count("mul.rn.f32") == 5 and ops.count("div.rn.f32") == 1, ops
