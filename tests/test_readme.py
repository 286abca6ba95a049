"""The README's quick start runs as written, and prints what its comments say."""
import contextlib
import io
import os
import re
import sys
import types

import mindspore as ms

import ms_bce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quick_start_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_quick_start_runs_and_prints_the_values_in_its_comments():
    blocks = quick_start_blocks()
    assert len(blocks) >= 4
    out = io.StringIO()
    # a real module: MindSpore looks functions up through their __module__
    module = types.ModuleType("readme_quick_start")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    try:
        with contextlib.redirect_stdout(out):
            for block in blocks:
                exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
        # the first block is the one-line switch
        assert ms_bce.is_patched() and ms.nn.BCELoss is ms_bce.nn.BCELoss
    finally:
        ms_bce.unpatch()
        del sys.modules[module.__name__]
    printed = out.getvalue()
    promised = [m for block in blocks for m in re.findall(r"print\(.*\)\s+# ([-\d.]+|\[[-\d. ]+\])", block)]
    assert len(promised) >= 5
    for value in promised:
        assert value in printed, f"README promises {value}; printed:\n{printed}"
