"""setup.py's GPU build switch: MS_BCE_BUILD_GPU=1 requires nvcc, =0 skips the
CUDA kernels, unset builds them when nvcc is found and otherwise says in one
line that it skipped them.  (Each run stops at a missing C++ compiler right
after the decision, so nothing is compiled here; tests/test_gpu_kernels.py
checks the library the real install built.)"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_build")
    for rel in ("setup.py", "README.md", os.path.join("ms_bce", "_version.py")):
        os.makedirs(tmp / os.path.dirname(rel), exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), tmp / rel)
    shutil.copytree(os.path.join(ROOT, "custom_ops"), tmp / "custom_ops")
    return tmp


def build(source_copy, **env):
    """setup.py build_ext with env added (None removes a variable); the C++
    compiler points nowhere so that the CPU build stops right away."""
    full = {**os.environ, "CXX": "/nonexistent/c++"}
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--build-lib", "bl", "--build-temp", "bt"],
                          cwd=source_copy, env=full, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_forcing_the_gpu_build_without_nvcc_fails_with_a_clear_message(source_copy):
    rc, out = build(source_copy, MS_BCE_BUILD_GPU="1", NVCC="/nonexistent/nvcc")
    assert rc != 0
    assert "MS_BCE_BUILD_GPU=1 requires the CUDA kernels, but nvcc was not found ($NVCC='/nonexistent/nvcc')" in out
    assert "ms_bce needs a C++20 compiler" not in out  # refused before building anything


def test_without_nvcc_the_gpu_build_is_skipped_in_one_line(source_copy):
    rc, out = build(source_copy, MS_BCE_BUILD_GPU=None, NVCC="/nonexistent/nvcc")
    skipped = [line for line in out.splitlines() if "GPU kernels" in line]
    assert skipped == ["ms_bce: nvcc not found, GPU kernels skipped (CPU only); install the CUDA toolkit or set "
                       "MS_BCE_BUILD_GPU=1 to require them."]
    assert rc != 0 and "ms_bce needs a C++20 compiler" in out  # the CPU build went on (and stopped at CXX)


def test_disabling_the_gpu_build(source_copy):
    rc, out = build(source_copy, MS_BCE_BUILD_GPU="0")
    assert "ms_bce: GPU kernels not built (MS_BCE_BUILD_GPU=0); the CPU kernels are." in out
    assert "nvcc" not in out.replace("MS_BCE_BUILD_GPU", "")


def test_a_bad_switch_value_is_refused(source_copy):
    rc, out = build(source_copy, MS_BCE_BUILD_GPU="yes")
    assert rc != 0
    assert "MS_BCE_BUILD_GPU must be 1 (require the GPU kernels), 0 (skip them) or unset" in out
