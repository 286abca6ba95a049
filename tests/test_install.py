"""The build: library location and naming, and a clear error without a compiler."""
import os
import re
import shutil
import subprocess
import sys

from ms_bce import _kernels
from tests.conftest import needs_sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_library_is_loaded_by_absolute_path_named_by_content_hash():
    path = _kernels.library_path("CPU")
    assert os.path.isabs(path) and os.path.isfile(path)
    assert re.fullmatch(r"libms_bce_cpu-[0-9a-f]{12}\.so", os.path.basename(path))


@needs_sources
def test_missing_compiler_gives_clear_build_error(tmp_path):
    """setup.py with CXX pointing nowhere fails with a sentence saying what to install."""
    for rel in ("setup.py", "README.md", os.path.join("ms_bce", "_version.py")):
        os.makedirs(tmp_path / os.path.dirname(rel), exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), tmp_path / rel)
    shutil.copytree(os.path.join(ROOT, "custom_ops"), tmp_path / "custom_ops")
    env = {**os.environ, "CXX": "/nonexistent/c++"}
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--build-lib", "bl", "--build-temp", "bt"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "ms_bce needs a C++20 compiler" in proc.stdout + proc.stderr
    assert "$CXX='/nonexistent/c++' was not found" in proc.stdout + proc.stderr
    assert not list((tmp_path / "bl").rglob("*.so")) if (tmp_path / "bl").exists() else True
