"""The documentation builds with warnings as errors, every public name has a
page with MindSpore's sections, and Sphinx's doctest builder runs every example
(they also run as pytest doctests through the test command's
--doctest-glob=*.rst and --doctest-modules)."""
import os
import re
import subprocess
import sys

import pytest

import ms_bce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the commands the README gives, with the output in a temporary folder
BUILD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
DOCTEST = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "doctest"]

LOSS_NAMES = ([f"ops.{n}" for n in ms_bce.ops.__all__] + [f"nn.{n}" for n in ms_bce.nn.__all__]
              + [f"mint.nn.{n}" for n in ms_bce.mint.nn.__all__ if n != "functional"]
              + [f"mint.nn.functional.{n}" for n in ms_bce.mint.nn.functional.__all__])
SWITCH_NAMES = ["patch", "unpatch", "is_patched", "patched_names"]


def sphinx(command, out):
    pytest.importorskip("sphinx", reason="sphinx is not installed: pip install -e '.[docs]' (or '.[dev]')")
    pytest.importorskip("myst_parser", reason="myst-parser is not installed: pip install -e '.[docs]' (or '.[dev]')")
    proc = subprocess.run(command + [os.path.join(ROOT, "docs"), str(out)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "GLOG_v": "3"}, timeout=600, check=False)
    assert proc.returncode == 0, f"{' '.join(command[1:])} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    sphinx(BUILD, out)
    return out


def page_text(html, name):
    path = html / "api" / f"{name}.html"
    assert path.is_file(), f"no documentation page for ms_bce.{name} (docs/api/{name}.rst)"
    return path.read_text(encoding="utf-8")


def test_public_names_are_what_the_docs_cover():
    assert len(LOSS_NAMES) == 10
    assert set(SWITCH_NAMES) <= set(ms_bce.__all__)


def test_docs_build_with_warnings_as_errors(html):
    for page in ("index", "quickstart", "patching", "numerics", "kernels", "examples", "design", "changelog",
                 "api/index"):
        assert (html / f"{page}.html").is_file(), page


def test_sphinx_doctest_builder_runs_every_example(tmp_path):
    sphinx(DOCTEST, tmp_path)
    summary = (tmp_path / "output.txt").read_text(encoding="utf-8")
    assert "0 failures in tests" in summary
    total = int(re.search(r"^\s*(\d+) tests$", summary, re.M).group(1))  # the summary's total
    assert total >= 200  # the pages' and the docstrings' examples


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_has_a_page_in_mindspore_style(html, name):
    text = page_text(html, name)
    short = name.rpartition(".")[2]
    assert re.search(rf'<span class="sig-name descname"><span class="pre">{short}</span>', text), "signature"
    assert 'class="math' in text, "formula"
    sections = ["Parameters", "Raises", "Supported Platforms", "Examples"]
    sections += ["Inputs", "Outputs"] if short[0].isupper() else ["Returns"]
    for section in sections:
        assert re.search(rf">{section}:?<", text), f"section {section}"
    assert "&gt;&gt;&gt;" in text and "CPU" in text


@pytest.mark.parametrize("name", SWITCH_NAMES)
def test_every_switch_function_has_a_page(html, name):
    text = page_text(html, name)
    assert re.search(rf'<span class="sig-name descname"><span class="pre">{name}</span>', text)
    assert re.search(r">Examples:?<", text)
