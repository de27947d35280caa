"""`bilipop train` through the real CLI: one end-to-end run, and every bad input gives exit code 1, a message
that says what is wrong, and no run folder."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.data.synthetic import make_labeled_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


runner = CliRunner()
BASE = ["train", "--vit", "tiny", "--bert", "tiny", "--epochs", "1", "--batch-size", "8", "--num-workers", "0"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    make_labeled_dataset(folder, n=44, seed=2)
    return folder


@pytest.fixture
def data(clean, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(clean, folder)
    return folder


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _run(args):
    return runner.invoke(app, args)


def test_train_end_to_end_prints_a_row_per_epoch(data, tmp_path):
    out = tmp_path / "run"
    result = _run([*BASE, "--data", str(data), "--out", str(out), "--devices", "cpu,cpu", "--epochs", "2",
                   "--chunks", "2"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].split()[:3] == ["vit_weight", "epoch", "train_loss"]
    assert [line.split()[1] for line in lines[1:]] == ["1", "2"]
    assert (out / "model.safetensors").is_file() and (out / "checkpoint.pt").is_file()


def _table(data):
    return pd.read_parquet(data / "labeled.parquet")


def _expect_error(args, out, *fragments):
    result = _run(args)
    assert result.exit_code == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert "Traceback" not in result.output
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()


def test_missing_table(tmp_path):
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(tmp_path / "nothing"), "--out", str(out)], out, "does not exist",
                  "bilipop label")


def test_unreadable_table(data, tmp_path):
    (data / "labeled.parquet").write_bytes(b"PAR1 this is not parquet")
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out)], out, "cannot read", "labeled.parquet")


def test_csv_input_with_covers_beside_it(data, tmp_path):
    # A CSV elsewhere whose cover paths are relative to its own folder (no --data given).
    folder = tmp_path / "elsewhere"
    shutil.copytree(data / "covers", folder / "covers")
    _table(data).to_csv(folder / "mine.csv", index=False)
    out = tmp_path / "run"
    result = _run([*BASE, "-i", str(folder / "mine.csv"), "--out", str(out), "--vit-weight", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file()


def test_missing_column(data, tmp_path):
    _table(data).drop(columns=["title"]).to_parquet(data / "labeled.parquet")
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out)], out, "missing the column title")


def test_bad_label(data, tmp_path):
    table = _table(data)
    table.loc[3, "label"] = 7
    table.to_parquet(data / "labeled.parquet")
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out)], out, "label", "0..4")


def test_empty_title_names_the_video(data, tmp_path):
    table = _table(data)
    table.loc[5, "title"] = "   "
    table.to_parquet(data / "labeled.parquet")
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out)], out, table.loc[5, "bvid"], "empty title")


@pytest.mark.parametrize("damage,message", [("missing", "does not exist"), ("truncated", "truncated"),
                                            ("garbage", "not an image")])
def test_bad_cover_names_the_video_and_file(data, tmp_path, damage, message):
    table = _table(data)
    bvid, rel = table.loc[7, "bvid"], table.loc[7, "cover_path"]
    cover = data / rel
    if damage == "missing":
        cover.unlink()
    elif damage == "truncated":
        cover.write_bytes(cover.read_bytes()[: cover.stat().st_size // 2])
    else:
        cover.write_bytes(b"<html>not found</html>")
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out)], out, bvid, str(cover), message)


@pytest.mark.parametrize("extra,message", [
    (["--vit-weight", "1.5"], "between 0 and 1"),
    (["--vit-weight", "abc"], "--vit-weight takes numbers"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr", "-1"], "--lr must be a positive"),
    (["--devices", "cpu,cpu", "--batch-size", "10", "--chunks", "4"], "does not split into 4"),
    (["--devices", "cpu,cpu", "--balance", "1,1"], "--balance 1,1 must give 2 positive counts"),
    (["--devices", "cpu,cpu", "--balance", "x"], "--balance takes numbers"),
    (["--devices", "cpu,cpu", "--balance", "2.5,3.5"], "--balance takes whole numbers"),  # was cut to 2,3
    (["--devices", "cpu,npu:3"], "is not a device"),
    (["--checkpoint", "sometimes"], "--checkpoint must be one of"),
    (["--precision", "fp16"], "fp16 needs CUDA"),
    (["--precision", "fp8"], "--precision must be one of"),
    (["--vision", "resnet"], "--vision must be one of"),
    (["--vit", "Z_99"], "neither a file nor a known ViT"),
    (["--bert", "nobody/no-such-bert"], "save_pretrained"),
    (["--gpus", "1", "--devices", "cpu"], "either --gpus or --devices"),
    # The cover-only run has fewer layers than 3,3: it failed only after the fused run had trained.
    (["--devices", "cpu,cpu", "--balance", "3,3", "--vit-weight", "0.5,1"], "--balance cannot fit every run"),
])
def test_bad_options(data, tmp_path, extra, message):
    if "fp16" in extra and torch.cuda.is_available():
        pytest.skip("fp16 is valid with a GPU")
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out), *extra], out, message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPUs")
def test_more_gpus_than_exist(data, tmp_path):
    out = tmp_path / "run"
    _expect_error([*BASE, "--data", str(data), "--out", str(out), "--gpus", "2"], out, "--gpus 2",
                  "more GPUs than the 0 visible", "leave out --gpus to train on the CPU")


def test_existing_run_needs_resume(data, tmp_path):
    out = tmp_path / "run"
    assert _run([*BASE, "--data", str(data), "--out", str(out)]).exit_code == 0
    result = _run([*BASE, "--data", str(data), "--out", str(out)])
    assert result.exit_code == 1 and "--resume" in result.output
    result = _run([*BASE, "--data", str(data), "--out", str(out), "--resume", "--seed", "3"])
    assert result.exit_code == 1 and "--seed 0, not 3" in result.output
    result = _run([*BASE, "--data", str(data), "--out", str(out), "--resume", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.stdout.splitlines()[1:] if line.strip()] == ["2"]


def test_train_stamps_the_current_run_format_version(data, tmp_path, monkeypatch):
    # train wrote a literal 1: after a format bump every fresh run would have been refused by evaluate and predict.
    from bilipop.models import run as run_module

    monkeypatch.setattr(run_module, "FORMAT_VERSION", 2)
    out = tmp_path / "run"
    assert _run([*BASE, "--data", str(data), "--out", str(out), "--vit-weight", "1"]).exit_code == 0
    assert run_module.load_run(out).config["format_version"] == 2


def test_the_model_factory_and_train_config_share_the_studys_defaults():
    # The flags are checked against TrainConfig in test_cli_defaults.py; create_model reads the same constants.
    import inspect

    from bilipop.models.factory import create_model
    from bilipop.train_config import DEFAULT_LR, TrainConfig

    config = TrainConfig()
    defaults = {name: p.default for name, p in inspect.signature(create_model).parameters.items()}
    for name in ("vision", "text", "vit", "bert", "dropout", "loss"):
        assert defaults[name] == getattr(config, name), name
    assert (defaults["vit_weight"],) == config.vit_weight
    assert (config.epochs, DEFAULT_LR, config.checkpoint, config.vit_weight) == (5, 5e-5, "except_last", (0.75,))


def test_pipeline_options_on_one_device_are_reported_as_ignored(data, tmp_path, caplog):
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    with caplog.at_level("WARNING", logger="bilipop.train.trainer"):
        train(TrainConfig(vit="tiny", bert="tiny", epochs=1, batch_size=8, devices="cpu", chunks=4, num_workers=0),
              data=data, out=tmp_path / "run")
    assert "ignores them" in caplog.text and "--chunks and --balance" in caplog.text


@pytest.mark.parametrize("balance,expected", [(None, None), ("time", "time"), ("cost", "cost"), ("2,4", [2, 4])])
def test_cli_passes_selection_balance_and_heads_to_the_core(monkeypatch, tmp_path, balance, expected):
    from bilipop.errors import InputError
    from bilipop.train import trainer

    seen = {}

    def fake(config, **kwargs):
        seen.update(config=config, **kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(trainer, "train", fake)
    args = [*BASE, "--out", str(tmp_path / "r"), "--select-on", "test", "--vit-heads", "12"]
    res = _run(args + (["--balance", balance] if balance else []))
    assert res.exit_code == 1 and "stop here" in res.output
    config = seen["config"]
    assert (config.select_on, config.vit_heads) == ("test", 12)
    assert config.balance == (tuple(expected) if isinstance(expected, list) else expected)
    assert seen["out"] == tmp_path / "r" and seen["resume"] is False


def test_bad_select_on_and_balance_are_one_line_errors(data, tmp_path):
    res = _run([*BASE, "--data", str(data), "--out", str(tmp_path / "r"), "--select-on", "train"])
    assert res.exit_code == 1 and "--select-on must be one of valid, test" in res.output
    res = _run([*BASE, "--data", str(data), "--out", str(tmp_path / "r"), "--balance", "fastest"])
    assert res.exit_code == 1 and "--balance" in res.output
    assert not (tmp_path / "r").exists()
