"""Rankings (bilipop.prediction.cross) encode each distinct cover and title once."""

from __future__ import annotations

import numpy as np
import pytest

from bilipop.models.run import load_run
from bilipop.prediction.predict import predict_pairs, rank_candidates

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_ranking_encodes_each_distinct_cover_and_title_once(tiny_run, tiny_videos, monkeypatch):
    run = load_run(tiny_run["run"])
    covers, titles = tiny_videos[0][:3], tiny_videos[1][:4]
    rows = {"cover": 0, "title": 0, "fuse": 0}
    model = run.model
    real = {"cover": model.encode_cover, "title": model.encode_title, "fuse": model.fuse}

    def counting(kind):
        def call(*args, **kwargs):
            first = next(a for a in args if a is not None)
            rows[kind] += first.shape[0]
            return real[kind](*args, **kwargs)
        return call

    for kind, name in (("cover", "encode_cover"), ("title", "encode_title"), ("fuse", "fuse")):
        monkeypatch.setattr(model, name, counting(kind))
    # A repeated cover and a repeated title are encoded once too.
    ranked = rank_candidates(run, covers + covers[:1], titles + titles[:1])
    assert rows == {"cover": 3, "title": 4, "fuse": 4 * 5}
    assert len(ranked) == 20
    monkeypatch.undo()
    pairs = [(c, t) for c in covers + covers[:1] for t in titles + titles[:1]]
    expected = predict_pairs(run, [c for c, _ in pairs], [t for _, t in pairs])
    by_pair = {(c.cover, c.title): c.prediction.probabilities for c in ranked}
    for (c, t), p in zip(pairs, expected, strict=True):
        np.testing.assert_allclose(by_pair[c, t], p, atol=1e-5)
