"""Training: data loading, the loop, GPipe staging (pipeline.py) and torchrun (distributed.py). Its settings are
``bilipop.TrainConfig`` (``bilipop.train_config``)."""

from bilipop.lazy import lazy_exports

# ``bilipop.train.train(...)`` without importing the heavy modules when the package is imported
__getattr__, __dir__ = lazy_exports(globals(), {"train": "bilipop.train.trainer"})
