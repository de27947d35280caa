"""One source of truth per default: every flag of train, crawl, evaluate and predict reaches a core keyword (or a
TrainConfig field) of the same name, and its default is that keyword's. Read from the Typer app itself, so that a
new flag, a renamed keyword or a default typed again in bilipop/cli/ fails here."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from bilipop.cli import app
from bilipop.cli.options import parse_floats

NO_DEFAULT = object()


def _defaults(*functions) -> dict[str, object]:
    """keyword -> default of the given functions (NO_DEFAULT where the core requires it)."""
    out: dict[str, object] = {}
    for function in functions:
        for name, p in inspect.signature(function).parameters.items():
            out.setdefault(name, NO_DEFAULT if p.default is inspect.Parameter.empty else p.default)
    return out


def _config_defaults(cls) -> dict[str, object]:
    return {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(cls)}


def _same(flag_default, core_default) -> bool:
    if isinstance(flag_default, Path) or isinstance(core_default, Path):
        return str(flag_default) == str(core_default)
    return flag_default == core_default


def drifted(command, core: dict[str, object], *, renamed: dict[str, str], cli_only: set[str],
            convert: dict[str, object] | None = None) -> list[str]:
    """What does not line up between ``command``'s parameters and the core keywords ``core``: a parameter that
    reaches no keyword, or whose default differs from the keyword's (a core keyword without a default takes any)."""
    convert = convert or {}
    problems = []
    for param in command.params:
        name = param.name
        if name in cli_only:
            continue
        target = renamed.get(name, name)
        if target not in core:
            problems.append(f"{name}: no core keyword {target}")
            continue
        wanted = core[target]
        if wanted is NO_DEFAULT:
            continue
        default = param.default
        if param.required and default is None:
            problems.append(f"{name}: required on the command line, defaulted in the core")
            continue
        if name in convert:
            default = convert[name](default)
        if not _same(default, wanted):
            problems.append(f"{name}: flag default {default!r}, core default {wanted!r}")
    return problems


def _command(name: str):
    return get_command(app).commands[name]


def test_every_train_flag_is_a_train_config_field_or_a_train_keyword_with_its_default():
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    core = {**_config_defaults(TrainConfig), **_defaults(train)}
    del core["config"], core["progress"], core["on_epoch"]
    problems = drifted(_command("train"), core, renamed={"out_dir": "out"}, cli_only=set(),
                       convert={"vit_weight": lambda text: tuple(parse_floats(text, "--vit-weight"))})
    assert problems == []
    # Every field but dropout (for tests and the Python API) is a flag.
    flags = {p.name for p in _command("train").params}
    assert set(_config_defaults(TrainConfig)) - flags == {"dropout"}


def test_every_crawl_flag_is_a_crawl_keyword_with_its_default():
    from bilipop.crawl.crawler import crawl

    assert drifted(_command("crawl"), _defaults(crawl), renamed={}, cli_only=set()) == []


def test_every_evaluate_flag_is_an_evaluate_keyword_with_its_default():
    from bilipop.evaluation.report import evaluate

    assert drifted(_command("evaluate"), _defaults(evaluate), renamed={}, cli_only={"json_output"}) == []


def test_every_predict_flag_is_a_keyword_of_one_of_its_three_core_functions_with_its_default():
    from bilipop.prediction.predict import predict_batch, predict_one, rank_candidates

    core = _defaults(predict_one, rank_candidates, predict_batch)
    assert drifted(_command("predict"), core, renamed={"batch": "input"}, cli_only={"json_output"}) == []


@pytest.mark.parametrize("core_default,problem", [(1.0, None), (2.0, "rate: flag default 1.0, core default 2.0")])
def test_the_check_sees_a_drifted_default_and_a_flag_without_a_keyword(core_default, problem):
    toy = typer.Typer(add_completion=False)

    @toy.command()
    def crawl(rate: float = 1.0, extra: bool = False) -> None:  # pragma: no cover - only introspected
        """A command whose --rate default may drift from the core's."""

    def core(*, rate: float = core_default) -> None:  # pragma: no cover - only introspected
        """The core function."""

    found = drifted(get_command(toy), _defaults(core), renamed={}, cli_only=set())
    assert found == [*([problem] if problem else []), "extra: no core keyword extra"]
