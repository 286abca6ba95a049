"""The main job runs, trains, and agrees with the built-in."""
import mindspore as ms

from ms_bce import demo


def test_demo_trains_and_agrees_with_builtin(capsys):
    try:
        assert demo.main([]) == 0
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    out = capsys.readouterr().out
    assert "epoch  8/8" in out
    assert "ms_bce and the built-in agree" in out
    first, last = (float(v) for v in out.split("result: the loss went from ")[1].split(" (")[0].split(" to "))
    assert last < 0.5 * first  # eight epochs take the loss well below its start
