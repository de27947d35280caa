"""bilipop.data.synthetic: the planted-signal dataset carries the signal it is asked for."""

from __future__ import annotations

import numpy as np
import pytest

from bilipop.data.synthetic import make_labeled_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_synthetic_dataset_plants_its_signal(tmp_path):
    import pandas as pd
    from PIL import Image

    path = make_labeled_dataset(tmp_path / "a", n=50, seed=3, signal="cover", image_size=16)
    again = make_labeled_dataset(tmp_path / "b", n=50, seed=3, signal="cover", image_size=16)
    table = pd.read_parquet(path)
    assert table.drop(columns="cover_path").equals(pd.read_parquet(again).drop(columns="cover_path"))
    assert table["label"].value_counts().tolist() == [10] * 5 and table["bvid"].is_unique
    means = {k: np.mean([np.asarray(Image.open(tmp_path / "a" / p)).reshape(-1, 3).mean(0)
                         for p in table.loc[table["label"] == k, "cover_path"]], axis=0) for k in range(5)}
    assert means[0].argmax() == 0 and means[1].argmax() == 1 and means[2].argmax() == 2  # red, green, blue
    assert (table.groupby("label")["score"].max().diff().dropna() > 0).all()  # scores order the classes
