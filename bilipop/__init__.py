"""bilipop: predict a Bilibili video's popularity class from its cover image and title.

The Python API mirrors the commands; each name is imported on first use, so ``import bilipop`` stays cheap (no
torch, transformers, pandas or HTTP stack until a function that needs them is touched)::

    import bilipop
    bilipop.filter_file(data="data", max_followers=500_000)   # = bilipop filter --data data --max-followers 500000
    table = bilipop.read_table("data/bilipop.db")
    kept, report = bilipop.filter_videos(table, max_followers=500_000)
    scored = bilipop.score_videos(kept, weights=(0.75, 0.1, 0.1, 0.05, 0), norm="paper")
    labeled, counts = bilipop.label_videos(scored)
    best = bilipop.rank_candidates("runs/first", covers=["a.jpg", "b.jpg"], titles=["标题一", "标题二"])[0]
"""

from __future__ import annotations

from bilipop.lazy import lazy_exports

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "BilipopError": "bilipop.errors",
    "read_table": "bilipop.data.io",
    "write_table": "bilipop.data.io",
    "filter_videos": "bilipop.data.filtering",
    "score_videos": "bilipop.data.scoring",
    "label_videos": "bilipop.data.labeling",
    "filter_file": "bilipop.data.stages",
    "score_file": "bilipop.data.stages",
    "label_file": "bilipop.data.stages",
    "evaluate": "bilipop.evaluation.report",
    "load_run": "bilipop.models.run",
    "list_encoders": "bilipop.models.registry",
    "predict_one": "bilipop.prediction.predict",
    "rank_candidates": "bilipop.prediction.predict",
    "predict_batch": "bilipop.prediction.predict",
    "SimServer": "bilipop.sim",
    "TrainConfig": "bilipop.train_config",
}

#: subpackages whose main function shares their name: ``bilipop.crawl.crawl(...)``, ``bilipop.train.train(...)``
#: (a top-level function of the same name would be shadowed by the subpackage once it is imported)
_SUBPACKAGES = ("crawl", "train")

__all__ = ["__version__", *_API, *_SUBPACKAGES]


__getattr__, __dir__ = lazy_exports(globals(), _API, subpackages=_SUBPACKAGES)
