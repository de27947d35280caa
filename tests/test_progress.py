"""progress=True gives Python users a tqdm bar; a callable is called as before; anything else is refused."""

import pytest

from bilipop.errors import InputError
from bilipop.progress import TqdmProgress, takes_progress


@takes_progress("working")
def work(n, progress=None):
    for i in range(1, n + 1):
        if progress is not None:
            progress(i, n)
    return progress


def test_true_draws_a_tqdm_bar_that_is_closed_after_the_call(monkeypatch):
    import tqdm.auto

    made = []

    class Bar:
        def __init__(self, total=None, desc=None, leave=True):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            made.append(self)

        def reset(self, total=None):
            self.total = total

        def refresh(self):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    given = work(3, progress=True)
    assert isinstance(given, TqdmProgress)
    assert [(b.desc, b.total, b.n, b.closed) for b in made] == [("working", 3, 3, True)]
    assert work(3, True) is not None  # positional too


def test_a_bar_resets_when_a_new_phase_brings_another_total(monkeypatch):
    bar = TqdmProgress("x")
    bar(5, 10)
    bar(2, 40)
    assert (bar.bar.total, bar.bar.n) == (40, 2)
    bar.close()
    assert bar.bar is None


def test_false_and_none_give_no_progress_and_a_callable_is_called():
    assert work(2, progress=False) is None and work(2) is None
    seen = []
    work(2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(InputError, match="progress must be"):
        work(2, progress="yes")


def test_the_core_calls_take_progress_true():
    import inspect

    from bilipop.evaluation.report import evaluate
    from bilipop.prediction.predict import predict_batch
    from bilipop.train.trainer import train

    for function in (train, evaluate, predict_batch):
        assert hasattr(function, "__wrapped__") and "progress" in inspect.signature(function).parameters
