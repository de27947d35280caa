"""Training: data loading, the loop, GPipe staging (pipeline.py) and torchrun (distributed.py)."""

from typing import Any


def __getattr__(name: str) -> Any:
    # ``bilipop.train.train(...)`` without importing the heavy modules when the package is imported
    if name == "train":
        from bilipop.train.trainer import train

        return train
    if name == "TrainConfig":
        from bilipop.train_config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'bilipop.train' has no attribute {name!r}")
