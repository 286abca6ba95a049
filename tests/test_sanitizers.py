"""The C++ kernels under AddressSanitizer and UndefinedBehaviorSanitizer
(tools/sanitize.py: every entry point and InferShape function driven directly,
valid and malformed calls).  Part of the test command: about 2.5 minutes on
2 cores with the sanitizer build, about 1 when the build is reused; the run
starts in the background once collection selects this test
(tests/conftest.py), so in the whole command this test mostly collects its
result."""
from tests.conftest import needs_sources, sanitizer_run_result


@needs_sources
def test_kernels_are_clean_under_asan_and_ubsan():
    returncode, output = sanitizer_run_result(timeout=2400)
    assert returncode == 0, output[-25000:]
    assert "sanitizers: clean" in output
    assert "0 failures" in output
