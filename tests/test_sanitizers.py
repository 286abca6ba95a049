"""The C++ kernels under AddressSanitizer and UndefinedBehaviorSanitizer
(tools/sanitize.py: every entry point and InferShape function driven directly,
valid and malformed calls).  Part of the test command: about 8 minutes on
2 cores with the sanitizer build, under 2 when the build is reused."""
import os
import subprocess
import sys

from tests.conftest import needs_sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_sources
def test_kernels_are_clean_under_asan_and_ubsan():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sanitize.py")], capture_output=True,
                          text=True, timeout=2400, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "sanitizers: clean" in proc.stdout
    assert "0 failures" in proc.stdout
