"""ms_bce.patch(): MindSpore's own names resolve to ms_bce's, reversibly; an
unmodified MindSpore training script switches to ms_bce's kernels, in graph
mode and PyNative, with the same results."""
import importlib
import os
import runpy
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn as ms_nn

import ms_bce
from ms_bce import run
from tests.conftest import to_ms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "plain_mindspore_train.py")

# every MindSpore name an ms_bce name mirrors (spec section 1), and the
# ms_bce object it must resolve to while patched
MIRRORED = {
    "mindspore.ops.binary_cross_entropy_with_logits": ms_bce.ops.binary_cross_entropy_with_logits,
    "mindspore.ops.BCEWithLogitsLoss": ms_bce.ops.BCEWithLogitsLoss,
    "mindspore.ops.binary_cross_entropy": ms_bce.ops.binary_cross_entropy,
    "mindspore.ops.BinaryCrossEntropy": ms_bce.ops.BinaryCrossEntropy,
    "mindspore.nn.BCEWithLogitsLoss": ms_bce.nn.BCEWithLogitsLoss,
    "mindspore.nn.BCELoss": ms_bce.nn.BCELoss,
    "mindspore.mint.nn.BCEWithLogitsLoss": ms_bce.mint.nn.BCEWithLogitsLoss,
    "mindspore.mint.nn.BCELoss": ms_bce.mint.nn.BCELoss,
    "mindspore.mint.nn.functional.binary_cross_entropy_with_logits":
        ms_bce.mint.nn.functional.binary_cross_entropy_with_logits,
    "mindspore.mint.nn.functional.binary_cross_entropy": ms_bce.mint.nn.functional.binary_cross_entropy,
    "mindspore.ops.SigmoidCrossEntropyWithLogits": ms_bce.ops.SigmoidCrossEntropyWithLogits,
    "mindspore.ops.multilabel_soft_margin_loss": ms_bce.ops.multilabel_soft_margin_loss,
    "mindspore.nn.MultiLabelSoftMarginLoss": ms_bce.nn.MultiLabelSoftMarginLoss,
}
# public modules holding the same MindSpore objects under other paths
ALIASES = {
    "mindspore.ops.function.binary_cross_entropy_with_logits": "mindspore.ops.binary_cross_entropy_with_logits",
    "mindspore.ops.function.binary_cross_entropy": "mindspore.ops.binary_cross_entropy",
    "mindspore.ops.functional.binary_cross_entropy_with_logits": "mindspore.ops.binary_cross_entropy_with_logits",
    "mindspore.ops.functional.binary_cross_entropy": "mindspore.ops.binary_cross_entropy",
    "mindspore.ops.operations.BCEWithLogitsLoss": "mindspore.ops.BCEWithLogitsLoss",
    "mindspore.ops.operations.BinaryCrossEntropy": "mindspore.ops.BinaryCrossEntropy",
    "mindspore.nn.loss.BCEWithLogitsLoss": "mindspore.nn.BCEWithLogitsLoss",
    "mindspore.nn.loss.BCELoss": "mindspore.nn.BCELoss",
    "mindspore.ops.operations.SigmoidCrossEntropyWithLogits": "mindspore.ops.SigmoidCrossEntropyWithLogits",
    "mindspore.ops.function.multilabel_soft_margin_loss": "mindspore.ops.multilabel_soft_margin_loss",
    "mindspore.ops.functional.multilabel_soft_margin_loss": "mindspore.ops.multilabel_soft_margin_loss",
    "mindspore.nn.loss.MultiLabelSoftMarginLoss": "mindspore.nn.MultiLabelSoftMarginLoss",
}
# where MindSpore defines them: left alone (its own internals build primitives there)
DEFINING = ("mindspore.ops.function.nn_func.binary_cross_entropy_with_logits",
            "mindspore.ops.auto_generate.BCEWithLogitsLoss",
            "mindspore.ops.operations.nn_ops.BinaryCrossEntropy",
            "mindspore.nn.loss.loss.BCELoss",
            "mindspore.ops.operations.nn_ops.SigmoidCrossEntropyWithLogits",
            "mindspore.ops.function.nn_func.multilabel_soft_margin_loss",
            "mindspore.nn.loss.loss.MultiLabelSoftMarginLoss")


def resolve(dotted):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


ORIGINAL = {name: resolve(name) for name in list(MIRRORED) + list(ALIASES) + list(DEFINING)}


@pytest.fixture(autouse=True)
def unpatched():
    """Every test starts and ends unpatched, in PyNative."""
    ms_bce.unpatch()
    yield
    ms_bce.unpatch()
    ms.set_context(mode=ms.PYNATIVE_MODE)


def assert_original():
    for name, obj in ORIGINAL.items():
        assert resolve(name) is obj, f"{name} was not restored"


def test_aliases_are_the_same_objects_as_the_mirrored_names():
    for alias, name in ALIASES.items():
        assert ORIGINAL[alias] is ORIGINAL[name], alias


def test_patch_makes_every_mirrored_name_and_alias_resolve_to_ms_bce():
    ms_bce.patch()
    for name, ours in MIRRORED.items():
        assert resolve(name) is ours, name
    for alias, name in ALIASES.items():
        assert resolve(alias) is MIRRORED[name], alias
    assert set(ms_bce.patched_names()) == set(MIRRORED) | set(ALIASES)
    assert ms_bce.is_patched()


def test_patch_leaves_the_defining_modules_alone():
    ms_bce.patch()
    for name in DEFINING:
        assert resolve(name) is ORIGINAL[name], name


def test_unpatch_restores_every_original():
    ms_bce.patch()
    ms_bce.unpatch()
    assert_original()
    assert not ms_bce.is_patched() and ms_bce.patched_names() == ()


def test_patch_twice_is_idempotent_and_one_unpatch_restores():
    ms_bce.patch()
    ms_bce.patch()
    assert ms_nn.BCELoss is ms_bce.nn.BCELoss
    ms_bce.unpatch()
    assert_original()


def test_unpatch_without_patch_does_nothing():
    ms_bce.unpatch()
    ms_bce.unpatch()
    assert_original()


def test_context_manager_patches_inside_and_restores_after():
    with ms_bce.patch() as state:
        assert ms.nn.BCEWithLogitsLoss is ms_bce.nn.BCEWithLogitsLoss
        assert "MindSpore names resolve to ms_bce" in repr(state)
    assert_original()


def test_context_manager_restores_on_exception():
    with pytest.raises(ZeroDivisionError):
        with ms_bce.patch():
            assert ms.ops.binary_cross_entropy is ms_bce.ops.binary_cross_entropy
            1 / 0  # pylint: disable=pointless-statement
    assert_original()


def test_context_manager_inside_patch_leaves_it_patched():
    ms_bce.patch()
    with ms_bce.patch():
        pass
    assert ms.nn.BCELoss is ms_bce.nn.BCELoss
    ms_bce.unpatch()
    assert_original()


def test_unpatch_restores_what_was_there_before_patch(monkeypatch):
    """Another tool's replacement, made before patch(), comes back after unpatch()."""
    class Replacement:  # pylint: disable=too-few-public-methods
        pass
    monkeypatch.setattr(ms.nn, "BCELoss", Replacement)
    with ms_bce.patch():
        assert ms.nn.BCELoss is ms_bce.nn.BCELoss
    assert ms.nn.BCELoss is Replacement


def test_patch_with_a_name_missing_from_mindspore_patches_nothing(monkeypatch):
    """A MindSpore without one of the names (not 2.10) gets a clear error and no half-patch."""
    monkeypatch.delattr(ms.mint.nn, "BCELoss")
    with pytest.raises(RuntimeError, match=r"MindSpore has no 'mindspore.mint.nn.BCELoss'"):
        ms_bce.patch()
    assert not ms_bce.is_patched()
    assert ms.nn.BCELoss is ORIGINAL["mindspore.nn.BCELoss"]


def test_name_imported_before_patch_keeps_the_builtin_class():
    from mindspore.nn import BCELoss  # pylint: disable=import-outside-toplevel
    with ms_bce.patch():
        assert BCELoss is ORIGINAL["mindspore.nn.BCELoss"]
        assert ms.nn.BCELoss is ms_bce.nn.BCELoss


def test_builtin_nn_loss_made_before_patch_computes_with_ms_bce_while_patched():
    """MindSpore's nn.BCELoss calls mindspore.ops.binary_cross_entropy when it
    runs, so while patched it reaches ms_bce's kernel: float16 p = 0 with
    y = 1 is finite there (the built-in kernel returns inf)."""
    builtin = ORIGINAL["mindspore.nn.BCELoss"](reduction='none')
    p, y = to_ms([0.0, 0.5], ms.float16), to_ms([1.0, 1.0], ms.float16)
    assert np.isinf(builtin(p, y).asnumpy()[0])
    with ms_bce.patch():
        np.testing.assert_allclose(builtin(p, y).asnumpy().astype(np.float64), [27.63, 0.6934], rtol=1e-3)
    assert np.isinf(builtin(p, y).asnumpy()[0])


def test_patched_names_count_every_mirrored_name_and_alias():
    with ms_bce.patch():
        assert len(ms_bce.patched_names()) == len(MIRRORED) + len(ALIASES) == 25


def test_every_public_loss_of_ms_bce_mirrors_a_patched_mindspore_name():
    """No ms_bce loss is left out of patch(): each public ops/nn/mint name is the
    replacement of the MindSpore name of the same spelling."""
    ours = {f"mindspore.ops.{n}": getattr(ms_bce.ops, n) for n in ms_bce.ops.__all__}
    ours.update({f"mindspore.nn.{n}": getattr(ms_bce.nn, n) for n in ms_bce.nn.__all__})
    ours.update({f"mindspore.mint.nn.{n}": getattr(ms_bce.mint.nn, n) for n in ms_bce.mint.nn.__all__
                 if n != "functional"})
    ours.update({f"mindspore.mint.nn.functional.{n}": getattr(ms_bce.mint.nn.functional, n)
                 for n in ms_bce.mint.nn.functional.__all__})
    # beyond MindSpore: names MindSpore does not have, so nothing to patch
    beyond = {"mindspore.ops.sigmoid_focal_loss", "mindspore.nn.SigmoidFocalLoss",
              "mindspore.ops.linear_binary_cross_entropy_with_logits", "mindspore.nn.LinearBCEWithLogitsLoss"}
    assert set(ours) >= beyond
    assert {k: v for k, v in ours.items() if k not in beyond} == MIRRORED
    for name in beyond:
        module, _, attr = name.rpartition(".")
        assert not hasattr({"mindspore.ops": ms.ops, "mindspore.nn": ms.nn}[module], attr), name


def test_builtin_multilabel_cell_made_before_patch_computes_with_ms_bce_while_patched():
    """MindSpore's nn.MultiLabelSoftMarginLoss calls mindspore.ops.multilabel_soft_margin_loss
    when it runs: while patched, |x| > 88 is finite (the built-in returns NaN)."""
    builtin = ORIGINAL["mindspore.nn.MultiLabelSoftMarginLoss"](reduction='none')
    x, y = to_ms([[-200.0, 200.0, 95.0]]), to_ms([[1.0, 0.0, 0.0]])
    assert not np.isfinite(builtin(x, y).asnumpy()).any()
    with ms_bce.patch():
        np.testing.assert_allclose(builtin(x, y).asnumpy(), [495.0 / 3], rtol=1e-6)
    assert not np.isfinite(builtin(x, y).asnumpy()).any()


def test_patched_sigmoid_cross_entropy_is_constructed_and_called_as_the_primitive():
    x, y = to_ms([np.inf, -np.inf, 0.0]), to_ms([1.0, 0.0, 1.0])
    assert np.isnan(ms.ops.SigmoidCrossEntropyWithLogits()(x, y).asnumpy()[:2]).all()
    with ms_bce.patch():
        from mindspore.ops import operations as P  # pylint: disable=import-outside-toplevel
        out = P.SigmoidCrossEntropyWithLogits()(x, y).asnumpy()
    np.testing.assert_allclose(out, [0.0, 0.0, np.log(2.0)], rtol=1e-7)


def test_builtin_primitive_made_before_patch_stays_builtin():
    """An instance of MindSpore's primitive holds MindSpore's kernel: x = +inf, y = 1 is NaN."""
    prim = ms.ops.BCEWithLogitsLoss(reduction='none')
    x, y = to_ms([np.inf, 0.0]), to_ms([1.0, 1.0])
    with ms_bce.patch():
        assert np.isnan(prim(x, y, None, None).asnumpy()[0])
        assert ms.ops.BCEWithLogitsLoss(reduction='none')(x, y, None, None).asnumpy()[0] == 0.0


class _Functional(ms_nn.Cell):
    def construct(self, x, y):
        return ms.ops.binary_cross_entropy_with_logits(x, y, reduction='none')


def test_graph_compiled_before_patch_keeps_builtin_until_recompiled():
    """Graph mode resolves names when a graph compiles and reuses compiled graphs:
    a cell compiled before patch() keeps the built-in for the shapes it has
    compiled; new cells, and new shapes, compile with ms_bce's."""
    ms.set_context(mode=ms.GRAPH_MODE)
    x, y = to_ms([np.inf, 0.0]), to_ms([1.0, 1.0])
    x3, y3 = to_ms([np.inf, 0.0, 1.0]), to_ms([1.0, 1.0, 1.0])
    early = _Functional()
    assert np.isnan(early(x, y).asnumpy()[0])  # built-in: NaN at x = +inf, y = 1
    with ms_bce.patch():
        assert np.isnan(early(x, y).asnumpy()[0])      # the graph compiled before: built-in
        assert _Functional()(x, y).asnumpy()[0] == 0.0  # a new graph: ms_bce
        assert early(x3, y3).asnumpy()[0] == 0.0        # a new shape compiles anew: ms_bce
    assert early(x3, y3).asnumpy()[0] == 0.0            # compiled while patched: stays ms_bce
    assert np.isnan(_Functional()(x, y).asnumpy()[0])   # new graphs: built-in again


# ---------------------------------------------- an unmodified training script ---

def _run_script(mode, patched, steps=12):
    """Runs examples/plain_mindspore_train.py as __main__ (unchanged), with or
    without patch() applied from outside; returns its globals and the gradient
    of its class-weighted loss term with respect to the class weight, taken
    through the script's own function while the same patch state holds (in
    PyNative: graph mode resolves a function's globals through its module,
    and the script's __main__ module is gone once runpy returns)."""
    argv = ["--mode", mode, "--steps", str(steps)]
    logits = to_ms(np.random.default_rng(0).normal(size=(8, 5)))
    labels = to_ms((np.random.default_rng(1).random((8, 5)) > 0.5).astype(np.float32))
    class_weight = to_ms(np.linspace(0.5, 1.5, 5))
    if patched:
        with ms_bce.patch():
            g = run.run_path(SCRIPT, argv)
            ms.set_context(mode=ms.PYNATIVE_MODE)
            dw = ms.grad(g["class_weighted_bce"], grad_position=2)(logits, labels, class_weight)
    else:
        saved = sys.argv
        sys.argv = [SCRIPT, *argv]
        try:
            g = runpy.run_path(SCRIPT, run_name="__main__")
        finally:
            sys.argv = saved
        ms.set_context(mode=ms.PYNATIVE_MODE)
        dw = ms.grad(g["class_weighted_bce"], grad_position=2)(logits, labels, class_weight)
    assert not ms_bce.is_patched()
    return g, dw.asnumpy()


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_unmodified_script_switches_to_ms_bce_with_the_same_results(mode, capsys):
    builtin, dw_builtin = _run_script(mode, patched=False)
    ours, dw_ours = _run_script(mode, patched=True)
    out = capsys.readouterr().out
    # the built-in run used MindSpore's classes, the patched run ms_bce's
    cell = builtin["net_with_loss"]
    assert type(cell.bce_logits) is ORIGINAL["mindspore.nn.BCEWithLogitsLoss"]
    assert type(cell.bce_probs) is ORIGINAL["mindspore.nn.BCELoss"]
    cell = ours["net_with_loss"]
    assert type(cell.bce_logits) is ms_bce.nn.BCEWithLogitsLoss
    assert type(cell.bce_probs) is ms_bce.nn.BCELoss
    assert "loss cell mindspore.nn.loss.loss.BCEWithLogitsLoss" in out
    assert "loss cell ms_bce.nn.BCEWithLogitsLoss" in out
    # the script's own functional call reached ms_bce's kernel: the built-in's
    # weight gradient is zero, ms_bce's is the unweighted loss per class
    assert not dw_builtin.any()
    assert (dw_ours > 0).all()
    # and the training is the same: losses and held-out values agree
    np.testing.assert_allclose(ours["losses"], builtin["losses"], rtol=1e-4)
    np.testing.assert_allclose(ours["held_out"], builtin["held_out"], rtol=1e-4)
    assert ours["losses"][-1] < 0.8 * ours["losses"][0]  # it trains


def test_run_command_switches_a_script_in_a_new_process():
    env = {**os.environ, "GLOG_v": "3"}
    proc = subprocess.run([sys.executable, "-m", "ms_bce.run", SCRIPT, "--mode", "pynative", "--steps", "3"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pynative mode, 3 steps, loss cell ms_bce.nn.BCEWithLogitsLoss" in proc.stdout


def test_run_command_without_a_script_prints_usage(capsys):
    assert run.main([]) == 2
    assert "usage: python -m ms_bce.run SCRIPT.py" in capsys.readouterr().out
    assert run.main(["/nonexistent/train.py"]) == 2
    assert "no such script" in capsys.readouterr().err
