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
    assert "the loss fell and both implementations agree" in out
