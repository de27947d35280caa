"""TrainConfig: the defaults, the checks (the flags' own messages), the round trip through config.json, and what
a resume may change."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace

import pytest

from bilipop.errors import InputError
from bilipop.train_config import TrainConfig


def test_the_defaults_are_the_studys():
    config = TrainConfig()
    assert (config.vit, config.bert, config.vision, config.text) == ("B_16_imagenet1k", "bert-base-chinese", "vit",
                                                                      "bert")
    assert (config.vit_weight, config.epochs, config.batch_size, config.lr) == ((0.75,), 5, 32, None)
    assert (config.select_on, config.loss, config.class_weights, config.dropout) == ("valid", "ce", "none", 0.1)


def test_inputs_are_normalised_and_the_object_is_frozen():
    config = TrainConfig(vit_weight=[0, 1], devices="cpu, cpu", balance=[3, 3])
    assert (config.vit_weight, config.devices, config.balance) == ((0.0, 1.0), ("cpu", "cpu"), (3, 3))
    assert TrainConfig(vit_weight=0.5).vit_weight == (0.5,)
    assert (config.balance_method, TrainConfig(balance="time").balance_method, TrainConfig().balance_method) == (
        "given", "time", "cost")
    with pytest.raises(FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]  # the point: it cannot be changed


@pytest.mark.parametrize("settings,message", [
    ({"vit_weight": ()}, "--vit-weight needs at least one number between 0 and 1, e.g. 0.75"),
    ({"vit_weight": (0.5, 1.5)}, "--vit-weight values must be between 0 and 1, got 0.5,1.5"),
    ({"vit_weight": (0.5, 0.5)}, "--vit-weight lists the same weight twice"),
    ({"epochs": 0}, "--epochs must be at least 1, got 0"),
    ({"batch_size": 0}, "--batch-size must be at least 1, got 0"),
    ({"lr": 0.0}, "--lr must be a positive number, got 0.0"),
    ({"num_workers": -1}, "num_workers must be 0 or more, got -1"),
    ({"checkpoint": "sometimes"}, "--checkpoint must be one of never, except_last, always, got 'sometimes'"),
    ({"precision": "fp8"}, "--precision must be one of bf16, fp16, fp32, got 'fp8'"),
    ({"select_on": "train"}, "--select-on must be one of valid, test, got 'train'"),
    ({"loss": "hinge"}, "--loss must be one of ce, corn, got 'hinge'"),
    ({"class_weights": "inverse"}, "--class-weights must be one of none, balanced, got 'inverse'"),
    ({"balance": "fastest"}, "--balance takes layer counts such as 3,3, or one of cost, time; got 'fastest'"),
])
def test_bad_settings_raise_the_flags_one_line_error(settings, message):
    with pytest.raises(InputError) as caught:
        TrainConfig(**settings)
    assert str(caught.value) == message
    with pytest.raises(InputError):  # replace() checks again
        replace(TrainConfig(), **settings)


def test_round_trip_through_config_json():
    config = TrainConfig(vit="tiny", bert="tiny", vit_weight=(0.3,), lr=1e-3, devices="cpu,cpu", chunks=4,
                         balance=(2, 4), precision="fp32", cache=True, seed=3, select_on="test", loss="corn",
                         class_weights="balanced", dropout=0.0)
    written = json.loads(json.dumps({"other": "keys are ignored", **config.to_json()}))
    assert written["vit_weight"] == 0.3 and written["balance"] == [2, 4]  # one run's weight is a plain number
    assert TrainConfig.from_json(written) == config
    sweep = TrainConfig(vit_weight=(0.0, 1.0))
    assert TrainConfig.from_json(json.loads(json.dumps(sweep.to_json()))) == sweep
    del written["select_on"]
    with pytest.raises(InputError, match="lacks select_on"):
        TrainConfig.from_json(written)
    with pytest.raises(InputError, match="wrong type"):
        TrainConfig.from_json({**config.to_json(), "vit_weight": "heavy"})


def test_resume_compares_the_settings_that_change_the_computation():
    saved = TrainConfig(vit="tiny", bert="tiny", lr=1e-3)
    assert saved.resume_mismatch(saved) is None
    # more epochs, other devices and another precision continue the same computation
    assert replace(saved, epochs=9, devices=("cpu", "cpu"), chunks=2, precision="fp32").resume_mismatch(saved) is None
    assert replace(saved, loss="corn").resume_mismatch(saved) == "--loss ce, not corn"
    assert replace(saved, vit_weight=(0.5,)).resume_mismatch(saved) == "--vit-weight 0.75, not 0.5"
    assert replace(saved, lr=5e-5).resume_mismatch(saved) == "--lr 0.001, not 5e-05"


def test_importing_it_loads_no_torch():
    code = "import sys, bilipop.train_config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"


def test_the_model_factory_and_train_config_share_the_studys_defaults():
    # The flags are checked against TrainConfig in test_cli_main_defaults.py; create_model reads the same constants.
    import inspect

    from bilipop.models.factory import create_model
    from bilipop.train_config import DEFAULT_LR

    config = TrainConfig()
    defaults = {name: p.default for name, p in inspect.signature(create_model).parameters.items()}
    for name in ("vision", "text", "vit", "bert", "dropout", "loss"):
        assert defaults[name] == getattr(config, name), name
    assert (defaults["vit_weight"],) == config.vit_weight
    assert (config.epochs, DEFAULT_LR, config.checkpoint, config.vit_weight) == (5, 5e-5, "except_last", (0.75,))
