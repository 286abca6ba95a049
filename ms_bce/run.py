"""Run an existing MindSpore script on ms_bce's kernels without editing it.

    python -m ms_bce.run SCRIPT.py [ARGS...]
    python -m ms_bce.run -m PACKAGE.MODULE [ARGS...]

does what ``python SCRIPT.py ARGS...`` (or ``python -m PACKAGE.MODULE
ARGS...``) does, with ``ms_bce.patch()`` applied first: every MindSpore loss
name the script uses (``mindspore.nn.BCEWithLogitsLoss``,
``mindspore.ops.binary_cross_entropy_with_logits``, ...) resolves to ms_bce's.
"""
import os
import runpy
import sys

from ._patch import patch

USAGE = "usage: python -m ms_bce.run SCRIPT.py [ARGS...]  |  python -m ms_bce.run -m MODULE [ARGS...]"


def run_path(path, argv=()):
    """Runs the script at `path` as ``python path *argv`` would (``__name__ ==
    "__main__"``, ``sys.argv``, the script's folder first on ``sys.path``),
    with MindSpore's names patched while it runs; returns the script's globals.
    The state before the call (patched or not) is restored afterwards."""
    saved_argv = sys.argv
    folder = os.path.dirname(os.path.abspath(path))
    sys.argv = [path, *argv]
    sys.path.insert(0, folder)
    try:
        with patch():
            return runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] == folder:
            del sys.path[0]


def run_module(name, argv=()):
    """As run_path, for ``python -m name *argv``."""
    saved_argv = sys.argv
    sys.argv = [name, *argv]
    try:
        with patch():
            return runpy.run_module(name, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved_argv


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE + "\n\n" + __doc__.split("\n\n", 2)[2].strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "-m":
        run_module(argv[1], argv[2:])
    else:
        if not os.path.isfile(argv[0]):
            print(f"ms_bce.run: no such script: {argv[0]}\n{USAGE}", file=sys.stderr)
            return 2
        run_path(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
