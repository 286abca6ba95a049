"""Packaging: the version is defined once, and the sdist holds what it takes to
build the kernels, run the tests and build the docs.  (The full check, wheel
installed into a fresh environment and the suite run against it, is
`.ci/check-dist`: minutes, so not part of every run.)"""
import os
import re
import subprocess
import sys
import tarfile

import pytest

import ms_bce
from tests.conftest import needs_sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_sources
def test_version_is_defined_in_one_place():
    with open(os.path.join(ROOT, "ms_bce", "_version.py"), encoding="utf-8") as f:
        assert re.search(r'__version__ = "([^"]+)"', f.read()).group(1) == ms_bce.__version__
    for reader in ("setup.py", os.path.join("docs", "conf.py")):
        with open(os.path.join(ROOT, reader), encoding="utf-8") as f:
            text = f.read()
        assert "_version.py" in text and ms_bce.__version__ not in text, reader


def test_changelog_keeps_an_unreleased_section():
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        text = f.read()
    assert "## [Unreleased]" in text and "keepachangelog.com" in text


@needs_sources
def test_sdist_holds_sources_tests_docs_and_examples(tmp_path):
    pytest.importorskip("build", reason="`build` is not installed: pip install -e '.[dev]'")
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), ROOT],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sdist = tmp_path / f"ms_bce-{ms_bce.__version__}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    prefix_files = {"README.md", "CHANGELOG.md", "setup.py", "pyproject.toml", "conftest.py", "PKG-INFO",
                    "ms_bce/_version.py", "docs/conf.py", "docs/index.rst", "tests/reference.py",
                    "examples/multilabel_graph.py", "examples/pynative_loop.py"}
    assert prefix_files <= names, sorted(prefix_files - names)
    for folder in ("custom_ops/cpu/", "tests/", "docs/api/", "examples/"):
        tracked = {os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(os.path.join(ROOT, folder))
                   for f in fs if not f.endswith((".pyc", ".so", ".o")) and "_build" not in d}
        assert tracked <= names, (folder, sorted(tracked - names))
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]
