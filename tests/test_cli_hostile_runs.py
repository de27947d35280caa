"""Run folders, --bert folders and training runs from strangers: no code runs, no traceback, nothing lost. Each
bad input goes through the CLI: exit 1, one line on stderr, no output written, old outputs intact (tables and text:
tests/test_cli_hostile_tables.py)."""

from __future__ import annotations

import errno
import json
import shutil
import stat
import time

import pytest
from helpers import TINY_FLAGS, invoke, refused  # noqa: E402
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()

TITLE = "一分钟看懂宇宙 讲解"


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(tiny_run["run"], folder)
    return folder


# -- no code from a run folder or a --bert folder ------------------------------------------------------------
EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nfrom transformers import BertTokenizer\n" \
       "class EvilTokenizer(BertTokenizer):\n    pass\n"


@pytest.mark.parametrize("file", ["tokenizer_config.json", "config.json"])
def test_a_tokenizer_with_an_auto_map_runs_no_code_and_prints_no_prompt(run_copy, tiny_covers, tmp_path, file):
    marker = tmp_path / "ran.txt"
    tok = run_copy / "tokenizer"
    (tok / "evil_tok.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    path = tok / file
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"model_type": "bert"}
    config["auto_map"] = {"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}
    path.write_text(json.dumps(config), encoding="utf-8")
    res = invoke("predict", tiny_covers[0], TITLE, "--model", run_copy, "--json")
    refused(res, "auto_map", str(path))
    assert res.stdout == ""  # no "run the custom code? [y/N]" in what --json readers parse
    assert not marker.exists()


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """A local "pretrained" BERT in save_pretrained layout (tiny, random): what --bert FOLDER reads."""
    from bilipop.models.registry import tiny_bert_config
    from bilipop.models.text import build_bert
    from bilipop.models.tokenizer import train_tiny_tokenizer

    folder = tmp_path_factory.mktemp("bert")
    tokenizer = train_tiny_tokenizer(["三分钟看懂相对论", "宇宙 讲解 科普", "一分钟 数学"] * 5)
    build_bert(tiny_bert_config(len(tokenizer))).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_a_bert_folder_with_an_auto_map_is_refused_before_anything_is_written(bert_folder, small_data, tmp_path):
    evil = tmp_path / "evil_bert"
    shutil.copytree(bert_folder, evil)
    config = json.loads((evil / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModel": "evil.Model"}
    (evil / "config.json").write_text(json.dumps(config), encoding="utf-8")
    res = invoke(
        "-q", "train", "--data", small_data, "--out", tmp_path / "out", *TINY_FLAGS[:2], "--bert", evil, *TINY_FLAGS[4:]
    )
    refused(res, "auto_map", "config.json")
    assert not (tmp_path / "out").exists()


# -- config.json checked before anything is built -----------------------------------------------------------
def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        config = config[key]
    config[last] = value


@pytest.mark.parametrize("field,value", [
    ("model.vision.spec.dim", 1e9),
    ("model.vision.spec.dim", 10**9),
    ("model.text.config.vocab_size", 10**10),
    ("image_size", 10**6),
    ("model.vision.spec.image_size", 10**6),
    ("model.vision.spec.num_layers", 10**7),
    ("model.text.config.num_hidden_layers", "many"),
    ("model.text.config.hidden_size", "abc"),
    ("model.vision.spec.num_heads", 0),
    ("model.text.config.num_attention_heads", 3),  # 32 is not a multiple of 3
    ("max_tokens", 10**6),
    ("image_std", [0.5, 0, 0.5]),
    ("image_mean", [0.5, "x", 0.5]),
    ("vit_weight", 1.5),
    ("vit_weight", True),
    ("model", [1, 2]),
    ("model.text.kind", "gpt"),
])
def test_a_tampered_config_is_one_line_naming_the_field_quickly(run_copy, tiny_covers, field, value):
    config = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    _set(config, field, value)
    (run_copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    started = time.monotonic()
    res = invoke("predict", tiny_covers[0], TITLE, "--model", run_copy)
    assert time.monotonic() - started < 20  # 1e7 layers hung for minutes, 1e9 wide layers allocated terabytes
    line = refused(res, "config.json")
    assert field.split(".")[-1] in line


@pytest.mark.parametrize("text,needle", [
    ("[1, 2, 3]", "JSON list"),
    ('{"format_version": 1, "vit_weight": NaN}', "NaN"),
    ("[" * 100_000, "config.json"),
    ("not json", "config.json"),
])
def test_a_config_that_is_not_a_json_object_is_one_line(run_copy, tiny_covers, text, needle):
    (run_copy / "config.json").write_text(text, encoding="utf-8")
    refused(invoke("predict", tiny_covers[0], TITLE, "--model", run_copy), needle)
    refused(invoke("evaluate", run_copy), needle)
    assert not (run_copy / "eval").exists()


def test_a_config_larger_than_its_weights_can_hold_is_refused(run_copy, tiny_covers):
    config = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    for key in ("dim", "ff_dim"):  # within every bound, but ~1e9 parameters: gigabytes for a 200 kB file
        config["model"]["vision"]["spec"][key] = 4096 if key == "dim" else 16384
    config["model"]["vision"]["spec"]["num_heads"] = 64
    (run_copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    refused(invoke("predict", tiny_covers[0], TITLE, "--model", run_copy), "parameters", "model.safetensors")


# -- train: full disk, umask, learning rate, resume ---------------------------------------------------------
def _full_disk_torch_save(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


def _full_disk_safetensors(*args, **kwargs):
    raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")


def _full_disk_os(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("what", ["torch.save", "safetensors", "tokenizer"])
def test_a_full_disk_during_train_is_one_line_and_leaves_no_run_folder(small_data, tmp_path, monkeypatch, what):
    import safetensors.torch
    import torch

    from bilipop.models.tokenizer import train_tiny_tokenizer

    if what == "torch.save":
        monkeypatch.setattr(torch, "save", _full_disk_torch_save)
    elif what == "safetensors":
        monkeypatch.setattr(safetensors.torch, "save_file", _full_disk_safetensors)
    else:
        monkeypatch.setattr(type(train_tiny_tokenizer(["a b"])), "save_pretrained", _full_disk_os)
    res = invoke("-q", "train", "--data", small_data, "--out", tmp_path / "runs" / "r", *TINY_FLAGS)
    refused(res, "cannot write", "disk")
    assert not (tmp_path / "runs").exists()


def test_run_folders_respect_the_umask(tiny_run):
    from bilipop.files import current_umask

    mask = current_umask()  # the session's tiny_run was trained under it (tests that change it restore it)
    if mask & 0o066 == 0o066:
        pytest.skip("under this umask 0600 is the right mode: the test could not tell")
    for path in [tiny_run["run"] / n for n in ("config.json", "model.safetensors", "checkpoint.pt", "split.json",
                                              "history.jsonl")] + list((tiny_run["run"] / "tokenizer").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    assert stat.S_IMODE((tiny_run["run"] / "tokenizer").stat().st_mode) == 0o777 & ~mask


@pytest.fixture(scope="module")
def one_epoch(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    res = invoke("-q", "train", "--data", small_data, "--out", out, *TINY_FLAGS)
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("damage", ["garbage", "other model"])
def test_a_failed_resume_leaves_the_run_folder_as_it_was(one_epoch, small_data, tmp_path, damage):
    import torch

    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    if damage == "garbage":
        (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    else:
        torch.save({"epoch": 1, "model": {"x": torch.zeros(2)}, "optimizer": {}, "history": [], "best_epoch": 1},
                   run / "checkpoint.pt")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = invoke("-q", "train", "--data", small_data, "--out", run, *TINY_FLAGS[:-4], "--epochs", "2", "--resume",
                  *TINY_FLAGS[-4:])
    refused(res, "checkpoint.pt")
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # config.json said epochs 2 before it failed


@pytest.mark.parametrize("vit,bert,weights,lr,says", [
    ("tiny", "tiny", [0.75], 1e-3, "tiny models"),
    ("tiny", "bert-base-chinese", [0.75], 5e-5, "--bert is pretrained"),
    ("B_16_imagenet1k", "tiny", [0.75], 5e-5, "--vit is pretrained"),
    ("tiny", "bert-base-chinese", [1.0], 1e-3, "tiny models"),  # the pretrained title model is not built
    ("B_16_imagenet1k", "tiny", [0.0], 1e-3, "tiny models"),
    ("B_16_imagenet1k", "bert-base-chinese", [0.75], 5e-5, None),
])
def test_a_tiny_model_beside_a_pretrained_one_gets_the_studys_rate(vit, bert, weights, lr, says):
    from bilipop.train.trainer import default_lr

    chosen, note = default_lr(vit, bert, weights)
    assert chosen == lr
    assert (note is None) if says is None else (says in note)


def test_train_with_a_pretrained_bert_folder_and_a_tiny_vit_logs_the_rate(bert_folder, small_data, tmp_path,
                                                                           caplog):
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    with caplog.at_level("INFO", logger="bilipop"):
        result = train(TrainConfig(vit="tiny", bert=str(bert_folder), epochs=1, batch_size=8, devices="cpu",
                                   num_workers=0), data=small_data, out=tmp_path / "r")
    assert result.lr == 5e-5
    assert json.loads((tmp_path / "r" / "config.json").read_text())["lr"] == 5e-5
    assert any("5e-05" in r.getMessage() and "pretrained" in r.getMessage() for r in caplog.records)


# -- tokenizer files ----------------------------------------------------------------------------------------
def test_a_tokenizer_staging_folder_left_by_a_killed_train_is_removed(tmp_path):
    from bilipop.models.run import save_tokenizer
    from bilipop.models.tokenizer import train_tiny_tokenizer

    (tmp_path / "tokenizer.tmp").mkdir()  # bilipop 0.1 staged the tokenizer here
    (tmp_path / "tokenizer.tmp" / "vocab.txt").write_text("stale")
    (tmp_path / ".tokenizer.a1b2c3d4.tmp").mkdir()  # this version stages it here
    save_tokenizer(train_tiny_tokenizer(["三分钟看懂相对论"]), tmp_path / "tokenizer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer"]


def test_a_tokenizer_file_too_large_for_any_vocabulary_is_refused_unread(run_copy, tiny_covers, monkeypatch):
    from bilipop.models import limits

    monkeypatch.setattr(limits, "MAX_TOKENIZER_BYTES", 1000)  # the real bound is 200 MB; the file here is 4 kB
    refused(invoke("predict", tiny_covers[0], TITLE, "--model", run_copy), "tokenizer.json", "bytes")
