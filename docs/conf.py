"""Sphinx configuration of ms_bce's documentation.

Build (warnings are errors; tests/test_docs.py runs both):

    sphinx-build -W --keep-going -b html docs docs/_build/html        # the site
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest  # runs every example

The API pages take signatures and text from the docstrings (MindSpore's
section names: Args, Inputs, Outputs, Raises, Supported Platforms, Examples);
every ``>>>`` example on the pages and in the docstrings runs as a doctest in
the test command.

The site needs no network: MathJax comes from the sphinx-mathjax-offline package
(copied into _static/mathjax), and the theme (pydata-sphinx-theme) and the examples'
copy button (sphinx-copybutton) ship their files; tests/test_docs.py checks that no
page loads anything from the network and, with a headless Chromium, that the
formulas render.
"""
import doctest
import importlib.util
import inspect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the checkout's ms_bce when there is one (autodoc only reads it: no kernels run)
sys.path.insert(0, ROOT)
os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ logging: errors only

# the version, from ms_bce/_version.py (the one place it is defined) of the ms_bce
# found on sys.path: this checkout's, or an installed one; read, not imported
_PACKAGE = importlib.util.find_spec("ms_bce").submodule_search_locations[0]
with open(os.path.join(_PACKAGE, "_version.py"), encoding="utf-8") as f:
    release = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)
version = release

project = "ms_bce"
author = "the ms_bce developers"
copyright = "the ms_bce developers"  # pylint: disable=redefined-builtin

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # MathJax 3.2.2 from the pip package, copied into _static/mathjax: the formulas
    # render with no network (Sphinx's default loads MathJax from a CDN)
    "sphinx-mathjax-offline",
    "sphinx.ext.doctest",
    "myst_parser",
    "sphinx_copybutton",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# MindSpore-style docstrings: Google sections plus MindSpore's own
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Inputs", "Outputs", "Supported Platforms"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
add_module_names = True

myst_heading_anchors = 3

# `sphinx-build -b doctest docs <out>` runs every example, on the pages and in the
# docstrings, as the test command's pytest doctests do (same flags)
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# MindSpore looks a function up through its __module__: give the examples a real module
doctest_global_setup = """
import sys as _sys, types as _types
__name__ = "ms_bce_doc_examples"
_sys.modules.setdefault(__name__, _types.ModuleType(__name__))
"""



def _cell_signature(app, what, name, obj, options, signature, return_annotation):  # pylint: disable=unused-argument
    """MindSpore's Cell defines __new__(cls, *args, **kwargs), which autodoc
    would show as every loss cell's signature: show __init__'s instead."""
    if what == "class" and isinstance(obj, type) and "__init__" in vars(obj):
        params = list(inspect.signature(obj.__init__).parameters.values())[1:]  # without self
        return str(inspect.Signature(params)), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", _cell_signature)


# pydata-sphinx-theme: the theme of NumPy's, SciPy's, pandas' and Matplotlib's references,
# whose page-per-function API layout ours follows; it ships its fonts and icons
# (no page loads anything from the network, tests/test_docs.py checks)
html_theme = "pydata_sphinx_theme"
html_title = f"ms_bce {release}"
html_static_path = ["_static"]
html_css_files = ["ms_bce.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 3,
    "navbar_align": "left",
    "show_toc_level": 2,
}
# the left sidebar lists a section's pages: only the API reference has any, so the
# top-level pages (docs/*.rst, docs/*.md) go without it
html_sidebars = {os.path.splitext(name)[0]: [] for name in sorted(os.listdir(os.path.dirname(__file__)))
                 if name.endswith((".rst", ".md"))}

# the copy button leaves out the prompts and the output of the examples
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
