"""The documentation builds with warnings as errors, every public name has a
page with MindSpore's sections, and Sphinx's doctest builder runs every example
(they also run as pytest doctests through the test command's
--doctest-glob=*.rst and --doctest-modules); the built site loads nothing from the
network, and its formulas render in a headless Chromium where one is installed."""
import inspect
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

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
# the names of losses with no Ascend kernel yet (their registry entry's ascend=False): the other platforms text
NO_ASCEND = {"ops.sigmoid_focal_loss", "nn.SigmoidFocalLoss", "ops.linear_binary_cross_entropy_with_logits",
             "nn.LinearBCEWithLogitsLoss"}


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
    # the ten mirrored names, their three relatives, the focal loss's two and the fused linear loss's two
    assert len(LOSS_NAMES) == 17
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
    sections = ["Raises", "Supported Platforms", "Examples"]
    sections += ["Inputs", "Outputs"] if short[0].isupper() else ["Returns"]
    # SigmoidCrossEntropyWithLogits() takes none of MindSpore's, only ms_bce's keyword options
    sections.append("Parameters" if takes_arguments(public_object(name)) else "Keyword Arguments")
    for section in sections:
        assert re.search(rf">{section}:?<", text), f"section {section}"
    assert "&gt;&gt;&gt;" in text and "CPU" in text


def takes_arguments(obj):
    """Whether a function, or a class's constructor, has positional parameters to document."""
    fn = obj.__init__ if isinstance(obj, type) else obj
    positional = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.KEYWORD_ONLY]
    return len(positional) > (1 if isinstance(obj, type) else 0)


def public_object(name):
    obj = ms_bce
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_states_the_shared_verified_platforms(html, name):
    """One text (ms_bce/_docs.py) says what is verified on each platform, in every
    docstring's Supported Platforms section and so on every API page."""
    from ms_bce import _docs
    doc = public_object(name).__doc__
    section = doc[doc.index("Supported Platforms:"):doc.index("Examples:")]
    no_ascend = name in NO_ASCEND
    text = _docs.PLATFORMS_NO_ASCEND_TEXT if no_ascend else _docs.PLATFORMS_TEXT
    assert " ".join(section.split()) == " ".join(("Supported Platforms: " + text).split())
    assert "PLATFORMS\n" not in doc and "PLATFORMS_NO_ASCEND\n" not in doc
    text = re.sub(r"<[^>]+>", "", page_text(html, name))  # the page's words
    words = " ".join(text.split())
    lines = ["CPU: verified through MindSpore, in PyNative and graph mode"]
    lines += (["not yet run on a device", "Ascend: no kernel yet"] if no_ascend else
              ["the CUDA kernels were run on an NVIDIA H100 through ctypes, not through MindSpore",
               "Ascend C sources; not compiled here (no CANN toolkit)."])
    for line in lines:
        assert line in words, line


def test_a_docstring_without_the_platforms_line_is_refused():
    from ms_bce import _docs

    def f():
        """Supported Platforms:
            ``CPU``
        """
    with pytest.raises(AssertionError, match="no PLATFORMS line"):
        _docs.shared_sections(f)


@pytest.mark.parametrize("name", SWITCH_NAMES)
def test_every_switch_function_has_a_page(html, name):
    text = page_text(html, name)
    assert re.search(rf'<span class="sig-name descname"><span class="pre">{name}</span>', text)
    assert re.search(r">Examples:?<", text)


# what a page loads when it is opened: scripts, stylesheets, icons, preloads, images,
# frames (a <link> to the next page, the index or the search page loads nothing)
LINK_RELS_THAT_LOAD = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut", "apple-touch-icon",
                       "mask-icon", "manifest", "preconnect", "dns-prefetch"}
SRC_TAGS = {"script", "img", "iframe", "embed", "source", "audio", "video", "track", "input"}


class _Loads(HTMLParser):
    """Every URL a page loads by itself: script/img/... src, and link href of a loading rel."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in SRC_TAGS and attrs.get("src"):
            self.urls.append((tag, attrs["src"]))
        if tag == "link" and attrs.get("href") and set((attrs.get("rel") or "").lower().split()) & LINK_RELS_THAT_LOAD:
            self.urls.append((tag, attrs["href"]))

    handle_startendtag = handle_starttag


def loaded_urls(text):
    parser = _Loads()
    parser.feed(text)
    return parser.urls


def is_remote(url):
    return re.match(r"\s*(https?:)?//", url, re.I) is not None


@pytest.mark.parametrize("snippet, remote", [
    ('<script defer src="https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js"></script>', True),
    ('<link rel="stylesheet" href="//cdn.example.org/katex.min.css" />', True),
    ('<link rel="preload" as="font" href="HTTPS://fonts.example.org/a.woff2">', True),
    ('<link rel="shortcut icon" href="http://example.org/favicon.ico"/>', True),
    ('<script src="_static/mathjax/tex-chtml.js"></script>', False),
    ('<link rel="stylesheet" href="../_static/styles/theme.css" />', False),
    ('<link rel="next" href="https://example.org/next.html" /><a href="https://www.mindspore.cn">', False),
])
def test_the_network_check_tells_remote_loads(snippet, remote):
    assert any(is_remote(url) for _, url in loaded_urls(snippet)) is remote


def test_no_page_loads_anything_from_the_network(html):
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= 20  # the pages of test_docs_build_with_warnings_as_errors and the API's
    remote, scripts = [], 0
    for page in pages:
        urls = loaded_urls(page.read_text(encoding="utf-8"))
        scripts += sum(tag == "script" for tag, _ in urls)
        remote += [f"{page.relative_to(html)}: <{tag}> {url}" for tag, url in urls if is_remote(url)]
    assert scripts >= 5 * len(pages)  # the theme's, Sphinx's, the copy button's: the parser saw them
    assert not remote, "pages load from the network:\n" + "\n".join(remote)
    # nor do the stylesheets pull in fonts or other sheets from it
    sheets = sorted((html / "_static").rglob("*.css"))
    assert sheets
    for sheet in sheets:
        text = sheet.read_text(encoding="utf-8", errors="replace")
        assert not re.search(r"""(url\(\s*['"]?|@import\s+['"])(https?:)?//""", text, re.I), sheet


def math_script(html, page):
    """The MathJax script a page loads, as a path in the build (None if it loads none)."""
    for tag, url in loaded_urls(page.read_text(encoding="utf-8")):
        if tag == "script" and "mathjax" in url.lower():
            assert not is_remote(url), url
            return (page.parent / url.split("?")[0]).resolve()
    return None


def test_the_math_renderer_is_in_the_build(html):
    static = (html / "_static").resolve()
    pages = [p for p in sorted(html.rglob("*.html")) if 'class="math' in p.read_text(encoding="utf-8")]
    names = {p.relative_to(html).as_posix() for p in pages}
    assert {"numerics.html", "api/ops.binary_cross_entropy_with_logits.html", "api/nn.BCELoss.html"} <= names
    for page in pages:
        script = math_script(html, page)
        assert script is not None, f"{page.relative_to(html)} has formulas but loads no MathJax"
        assert script.is_relative_to(static) and script.is_file(), f"{page.relative_to(html)}: {script}"
        assert script.stat().st_size > 500_000  # MathJax with its TeX input and HTML output, not a stub
    # the fonts MathJax's HTML output asks for, next to it
    fonts = script.parent / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file() and (fonts / "MathJax_Math-Italic.woff").is_file()


def test_examples_have_a_copy_button(html):
    text = (html / "numerics.html").read_text(encoding="utf-8")
    scripts = [url.split("?")[0] for tag, url in loaded_urls(text) if tag == "script"]
    assert "_static/copybutton.js" in scripts and "_static/clipboard.min.js" in scripts
    assert (html / "_static" / "clipboard.min.js").is_file()
    # the button copies the lines after a prompt (>>> , ... or $ ), prompts removed, and
    # leaves out the output: the prompt pattern as conf.py gives it, as a regular expression
    copybutton = (html / "_static" / "copybutton.js").read_text(encoding="utf-8")
    call = re.search(r"return formatCopyText\(text, '((?:[^'\\]|\\.)*)', (true|false), (true|false),", copybutton)
    assert call, "copybutton.js without its formatCopyText call"
    assert call.group(2, 3) == ("true", "true")  # a regular expression; only the prompts' lines
    prompt = re.compile("^(" + call.group(1).replace("\\\\", "\\") + ")(.*)")
    example = [">>> x = Tensor(np.array([1.0,", "...                  2.0]))", ">>> print(x)", "[1. 2.]", "$ pip install ."]
    copied = [m.group(2) for m in map(prompt.match, example) if m]
    assert copied == ["x = Tensor(np.array([1.0,", "                 2.0]))", "print(x)", "pip install ."]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Formulas(HTMLParser):
    """Each class="math" element of a rendered page: its text, and the MathJax elements in it."""

    def __init__(self):
        super().__init__()
        self.formulas = []  # [tag, text, set of tags inside]
        self._open = None  # [tag, depth] of the formula being read

    def handle_starttag(self, tag, attrs):
        if self._open:
            self.formulas[-1][2].add(tag)
            self._open[1] += tag == self._open[0]
        elif "math" in (dict(attrs).get("class") or "").split():
            self.formulas.append([tag, "", set()])
            self._open = [tag, 1]

    def handle_endtag(self, tag):
        if self._open and tag == self._open[0]:
            self._open[1] -= 1
            if self._open[1] == 0:
                self._open = None

    def handle_data(self, data):
        if self._open:
            self.formulas[-1][1] += data


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (chromium) on the PATH: apt-get install chromium")
def test_formulas_render_in_a_browser_without_network(html, tmp_path):
    page = html / "numerics.html"
    source = _Formulas()
    source.feed(page.read_text(encoding="utf-8"))
    assert len(source.formulas) >= 20 and any(tag == "div" for tag, _, _ in source.formulas)
    assert all(re.search(r"\\[(\[]", text) for _, text, _ in source.formulas)  # TeX before rendering
    # every host name resolves to nothing: a page that needs the network shows raw TeX
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
                           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rendered = _Formulas()
    rendered.feed(proc.stdout)
    assert len(rendered.formulas) == len(source.formulas), proc.stdout[-2000:]
    for tag, text, inside in rendered.formulas:
        assert "mjx-container" in inside, f"not typeset: <{tag}> {text[:200]!r}"
        assert "mjx-merror" not in inside, f"a TeX error: {text[:200]!r}"
        assert not re.search(r"\\[(\[\])]", text), f"raw TeX left: {text[:200]!r}"
    assert "copybtn" in proc.stdout  # the copy button's script ran and added its buttons


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_documents_its_options(name):
    """Every loss name's docstring carries the shared options text (OPTIONS: label_smoothing)."""
    obj = ms_bce
    for part in name.split("."):
        obj = getattr(obj, part)
    assert "label_smoothing" in inspect.signature(obj).parameters, name
    assert "label_smoothing (float, optional): Smooths the targets to" in obj.__doc__, name
    assert "OPTIONS" not in obj.__doc__.replace("OPTIONS_", ""), name
    # and, where it has a reduction, ms_bce's own value of it
    if "linear" in name.lower():  # the fused linear loss has no per-element weight
        assert "``'weighted_mean'`` (elsewhere the mean normalised by the weights) equals ``'mean'``" in obj.__doc__
    elif "reduction" in inspect.signature(obj.__init__ if isinstance(obj, type) else obj).parameters:
        assert "``'weighted_mean'`` (ms_bce's own) divides the sum by the sum of" in obj.__doc__, name
    assert "WEIGHTED_MEAN" not in obj.__doc__.replace("WEIGHTED_MEAN_", ""), name
    # and the mask: a keyword argument of the functions, an input of the cells
    assert "The mask of which elements count: bool" in obj.__doc__, name
    if isinstance(obj, type):
        assert "- **mask** (Tensor, optional)" in obj.__doc__ and "mask" in inspect.signature(obj.construct).parameters
    else:
        assert "mask (Tensor, optional)" in obj.__doc__ and "mask" in inspect.signature(obj).parameters, name
    assert not re.search(r"^\s*MASK(_INPUT)?\s*$", obj.__doc__, re.M), name
    # and their errors, in "Raises:"
    raises = obj.__doc__.split("Raises:")[1].split("Supported Platforms:")[0]
    assert "TypeError: If `label_smoothing` is a bool or not a number, or `mask`" in raises, name
    assert "ValueError: If `label_smoothing` is outside [0, 1]" in raises, name
    assert "OPTIONS_RAISES" not in obj.__doc__, name
