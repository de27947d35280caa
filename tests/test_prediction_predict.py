"""predict: single, ranking, batch, --explain, model resolution, and every bad input through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.data.schema import LABEL_NAMES
from bilipop.errors import ModelError
from bilipop.models.run import load_run
from bilipop.prediction import predict as core

runner = CliRunner()
TITLE = "一分钟看懂宇宙 讲解"


@pytest.fixture(scope="module")
def loaded(tiny_run):
    return load_run(tiny_run["run"])


@pytest.fixture(scope="module")
def covers(tiny_run):
    """Two covers of different classes (different dominant colours in the synthetic set)."""
    table = pd.read_parquet(tiny_run["table"])
    first = table.drop_duplicates("label").sort_values("label")
    return [str(tiny_run["data"] / p) for p in first["cover_path"].iloc[[0, -1]]]


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def test_probabilities_equal_the_models_own_forward_pass(loaded, covers):
    result = core.predict_one(loaded, covers[0], TITLE)
    tokens = loaded.tokenize([TITLE])
    logits = loaded.logits(loaded.preprocess_cover(covers[0])[None], tokens["input_ids"], tokens["attention_mask"])
    expected = logits.softmax(-1)[0].double().numpy()
    assert np.allclose(result.probabilities, expected, atol=1e-6)
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.label == int(expected.argmax()) and result.label_name == LABEL_NAMES[result.label]
    assert result.expected_class == pytest.approx(float(expected @ np.arange(5)))


def test_cli_json_schema(tiny_run, covers, loaded):
    res = _invoke("predict", covers[1], TITLE, "--model", str(tiny_run["run"]), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"label", "label_name", "probabilities", "expected_class"}
    assert len(data["probabilities"]) == 5 and data["label_name"] == LABEL_NAMES[data["label"]]
    direct = core.predict_one(loaded, covers[1], TITLE)
    assert data["probabilities"] == pytest.approx(direct.probabilities, abs=1e-6)


def test_cli_human_output_shows_class_bars_and_expected_class(tiny_run, covers):
    res = _invoke("predict", covers[0], TITLE, "--model", str(tiny_run["run"]))
    assert res.exit_code == 0, res.output
    assert "expected class" in res.stdout
    for name in LABEL_NAMES:
        assert name in res.stdout
    assert "%" in res.stdout


def test_model_from_environment_and_newest_run(tiny_run, covers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BILIPOP_MODEL", raising=False)
    with pytest.raises(ModelError, match="train"):
        core.resolve_model()
    res = _invoke("predict", covers[0], TITLE)
    assert res.exit_code == 1 and "no model found" in res.output and "--model" in res.output
    shutil.copytree(tiny_run["run"], tmp_path / "runs" / "old")
    shutil.copytree(tiny_run["run"], tmp_path / "runs" / "new")
    (tmp_path / "runs" / "new" / "config.json").touch()
    assert core.resolve_model() == Path("runs/new")
    monkeypatch.setenv("BILIPOP_MODEL", str(tmp_path / "runs" / "old"))
    assert core.resolve_model() == tmp_path / "runs" / "old"
    assert core.resolve_model("elsewhere") == Path("elsewhere")
    res = _invoke("predict", covers[0], TITLE, "--json")
    assert res.exit_code == 0, res.output


def test_ranking_follows_the_expected_class(loaded, covers):
    titles = [TITLE, "编程 入门 其实", "历史"]
    ranked = core.rank_candidates(loaded, covers, titles)
    assert len(ranked) == len(covers) * len(titles)
    values = [c.prediction.expected_class for c in ranked]
    assert values == sorted(values, reverse=True)
    assert {(c.cover, c.title) for c in ranked} == {(c, t) for c in covers for t in titles}
    for c in ranked:
        alone = core.predict_one(loaded, c.cover, c.title)
        assert c.prediction.probabilities == pytest.approx(alone.probabilities, abs=1e-5)


def test_cli_ranking(tiny_run, covers):
    res = _invoke("predict", "--cover", covers[0], "--cover", covers[1], "--title", TITLE, "--title", "数学 讲解",
                  "--model", str(tiny_run["run"]), "--json")
    assert res.exit_code == 0, res.output
    candidates = json.loads(res.stdout)["candidates"]
    assert len(candidates) == 4
    assert [c["expected_class"] for c in candidates] == sorted((c["expected_class"] for c in candidates),
                                                              reverse=True)
    table = _invoke("predict", "--cover", covers[0], "--title", TITLE, "--title", "数学",
                    "--model", str(tiny_run["run"]))
    assert table.exit_code == 0 and "best first" in table.stdout


def _batch_file(tmp_path: Path, covers: list[str], titles: list[str]) -> Path:
    folder = tmp_path / "batch"
    (folder / "img").mkdir(parents=True)
    rel = []
    for i, cover in enumerate(covers):
        shutil.copy(cover, folder / "img" / f"{i}.jpg")
        rel.append(f"img/{i}.jpg")
    path = folder / "in.csv"
    pd.DataFrame({"cover": rel, "title": titles}).to_csv(path, index=False)
    return path


def test_batch_equals_single_predictions(loaded, covers, tmp_path):
    titles = [TITLE, "历史 为什么", "123"]
    source = _batch_file(tmp_path, [covers[0], covers[1], covers[1]], titles)
    report = core.predict_batch(loaded, source, tmp_path / "out.csv", batch_size=2)
    assert report.rows == 3 and sum(report.class_counts) == 3
    result = pd.read_csv(tmp_path / "out.csv", dtype={"title": str})
    assert result["title"].tolist() == titles  # "123" stays text
    for _, row in result.iterrows():
        alone = core.predict_one(loaded, source.parent / row["cover"], row["title"])
        assert [row[f"p{k}"] for k in range(5)] == pytest.approx(alone.probabilities, abs=1e-5)
        assert row["label"] == alone.label and row["label_name"] == alone.label_name
        assert row["expected_class"] == pytest.approx(alone.expected_class, abs=1e-5)


def test_cli_batch_writes_parquet(tiny_run, covers, tmp_path):
    source = _batch_file(tmp_path, covers, [TITLE, "数学"])
    res = _invoke("predict", "--batch", str(source), "-o", str(tmp_path / "out.parquet"),
                  "--model", str(tiny_run["run"]), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"] == 2
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 2


def test_explain_saves_a_heatmap_and_ranks_title_tokens(tiny_run, covers, tmp_path):
    cover = tmp_path / "mine.jpg"
    shutil.copy(covers[1], cover)
    res = _invoke("predict", str(cover), TITLE, "--model", str(tiny_run["run"]), "--explain", "--json")
    assert res.exit_code == 0, res.output
    explanation = json.loads(res.stdout)["explanation"]
    heatmap = Path(explanation["heatmap"])
    assert heatmap == tmp_path / "mine.explain.png"
    with Image.open(heatmap) as img, Image.open(cover) as original:
        assert img.format == "PNG" and img.size == original.size
        assert any(lo != hi for lo, hi in img.convert("RGB").getextrema())
    tokens = explanation["tokens"]
    assert tokens and all(t["token"] in TITLE for t in tokens)
    assert [t["drop"] for t in tokens] == sorted((t["drop"] for t in tokens), reverse=True)
    human = _invoke("predict", str(cover), TITLE, "--model", str(tiny_run["run"]), "--explain")
    assert "mine.explain.png" in human.stdout and "title tokens" in human.stdout


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line, exit code 1, nothing written.
@pytest.fixture
def bad_covers(tmp_path, covers):
    truncated = tmp_path / "truncated.jpg"
    data = Path(covers[0]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "text.jpg"
    text.write_text("not an image", encoding="utf-8")
    svg = tmp_path / "vector.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>', encoding="utf-8")
    return {"missing": tmp_path / "missing.jpg", "truncated": truncated, "text": text, "svg": svg}


@pytest.mark.parametrize("kind,message", [("missing", "does not exist"), ("truncated", "truncated"),
                                          ("text", "not an image"), ("svg", "not an image")])
def test_bad_cover(tiny_run, bad_covers, kind, message):
    res = _invoke("predict", str(bad_covers[kind]), TITLE, "--model", str(tiny_run["run"]), "--explain")
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert not list(bad_covers[kind].parent.glob("*.explain.png"))


def test_a_cover_too_large_to_decode_is_a_user_error(tiny_run, covers, monkeypatch):
    # Pillow's decompression-bomb guard raises an error that is not an OSError; it escaped as a traceback.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    res = _invoke("predict", covers[0], TITLE, "--model", str(tiny_run["run"]))
    assert res.exit_code == 1 and "too large" in res.output and "Traceback" not in res.output


def test_user_text_is_printed_not_taken_as_markup(tiny_run, covers):
    title = "[red]红色[/red] 与 [bold]"
    res = _invoke("predict", "--cover", covers[0], "--title", title, "--model", str(tiny_run["run"]))
    assert res.exit_code == 0, res.output
    assert "[red]红色[/red]" in res.output


def test_device_flag_loads_the_model_there(tiny_run, covers):
    res = _invoke("predict", covers[1], TITLE, "--model", str(tiny_run["run"]), "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    res = _invoke("predict", covers[1], TITLE, "--model", str(tiny_run["run"]), "--device", "tpu")
    assert res.exit_code == 1 and "use cpu or cuda:N" in res.output and "Traceback" not in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPUs")
def test_a_gpu_that_does_not_exist_is_a_user_error(tiny_run, covers, tmp_path):
    res = _invoke("predict", covers[1], TITLE, "--model", str(tiny_run["run"]), "--device", "cuda:0")
    assert res.exit_code == 1 and "not available (0 GPU(s) visible); use --device cpu" in res.output
    out = tmp_path / "out.csv"
    (tmp_path / "in.csv").write_text(f"cover,title\n{covers[0]},{TITLE}\n", encoding="utf-8")
    res = _invoke("predict", "--batch", str(tmp_path / "in.csv"), "-o", str(out), "--model", str(tiny_run["run"]),
                  "--device", "cuda")
    assert res.exit_code == 1 and "not available" in res.output and not out.exists()


@pytest.mark.parametrize("title", ["", "   "])
def test_empty_title(tiny_run, covers, title):
    res = _invoke("predict", covers[0], title, "--model", str(tiny_run["run"]))
    assert res.exit_code == 1 and "title" in res.output and "empty" in res.output


def test_damaged_run_folders(tiny_run, covers, tmp_path):
    missing = tmp_path / "missing_weights"
    shutil.copytree(tiny_run["run"], missing)
    (missing / "model.safetensors").unlink()
    res = _invoke("predict", covers[0], TITLE, "--model", str(missing))
    assert res.exit_code == 1 and "model.safetensors" in res.output
    old = tmp_path / "old_format"
    shutil.copytree(tiny_run["run"], old)
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 999
    (old / "config.json").write_text(json.dumps(config), encoding="utf-8")
    res = _invoke("predict", covers[0], TITLE, "--model", str(old))
    assert res.exit_code == 1 and "version" in res.output
    res = _invoke("predict", covers[0], TITLE, "--model", str(tmp_path / "nowhere"))
    assert res.exit_code == 1 and "does not exist" in res.output
    emptied = tmp_path / "emptied_tokenizer"  # the folder is there, its files are not: it was a traceback
    shutil.copytree(tiny_run["run"], emptied)
    for file in (emptied / "tokenizer").iterdir():
        file.unlink()
    res = _invoke("predict", covers[0], TITLE, "--model", str(emptied))
    assert res.exit_code == 1 and "tokenizer" in res.output and "Traceback" not in res.output


def test_a_sweep_folder_as_model_names_its_runs(tiny_run, covers, tmp_path):
    # It said "config.json is missing: ... is not a bilipop run folder" of a folder that train had just written.
    from bilipop.layout import SWEEP

    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_run["run"], sweep / "w0.75")
    (sweep / SWEEP).write_text(json.dumps({"weights": [0.75], "runs": ["w0.75"]}), encoding="utf-8")
    res = _invoke("predict", covers[0], TITLE, "--model", str(sweep))
    assert res.exit_code == 1 and "sweep" in res.output and str(sweep / "w0.75") in res.output


def test_batch_bad_inputs_write_nothing(tiny_run, covers, tmp_path):
    out = tmp_path / "out.csv"
    no_title = tmp_path / "no_title.csv"
    pd.DataFrame({"cover": [covers[0]]}).to_csv(no_title, index=False)
    res = _invoke("predict", "--batch", str(no_title), "-o", str(out), "--model", str(tiny_run["run"]))
    assert res.exit_code == 1 and "title" in res.output and not out.exists()
    bad_row = tmp_path / "bad_row.csv"
    pd.DataFrame({"cover": [covers[0], "gone.jpg"], "title": [TITLE, TITLE]}).to_csv(bad_row, index=False)
    res = _invoke("predict", "--batch", str(bad_row), "-o", str(out), "--model", str(tiny_run["run"]))
    assert res.exit_code == 1 and "row 2" in res.output and "gone.jpg" in res.output and not out.exists()
    empty_title = tmp_path / "empty_title.csv"
    pd.DataFrame({"cover": [covers[0], covers[1]], "title": [TITLE, ""]}).to_csv(empty_title, index=False)
    res = _invoke("predict", "--batch", str(empty_title), "-o", str(out), "--model", str(tiny_run["run"]))
    assert res.exit_code == 1 and "row 2" in res.output and not out.exists()
    res = _invoke("predict", "--batch", str(bad_row), "-o", str(tmp_path / "out.txt"), "--model",
                  str(tiny_run["run"]))
    assert res.exit_code == 1 and ".csv" in res.output and not (tmp_path / "out.txt").exists()
    assert not list(tmp_path.glob(".out*"))  # no temporary file left behind


@pytest.fixture(scope="module")
def single_branch_runs(tmp_path_factory, tiny_run):
    """Untrained cover-only (w = 1) and title-only (w = 0) run folders: enough to check what inputs they take."""
    from bilipop.models.factory import create_model
    from bilipop.models.run import save_model
    from bilipop.train_config import TrainConfig

    root = tmp_path_factory.mktemp("single_branch")
    titles = pd.read_parquet(tiny_run["table"])["title"].tolist()
    runs = {}
    for w in (0.0, 1.0):
        built = create_model(vit="tiny", bert="tiny", vit_weight=w, titles=titles)
        config = {"vit_weight": w, "image_size": built.image_size, "image_mean": list(built.image_mean),
                  "image_std": list(built.image_std), "max_tokens": 64, "model": built.arch}
        save_model(root / f"w{w:g}", built.model, built.tokenizer, config,
                   TrainConfig(vit="tiny", bert="tiny", vit_weight=w))
        runs[w] = root / f"w{w:g}"
    return runs


@pytest.mark.parametrize("w,bad", [(1.0, "empty title"), (0.0, "missing cover")])
def test_batch_rejects_the_input_of_an_unused_branch_as_single_mode_does(single_branch_runs, covers, tmp_path,
                                                                         w, bad):
    # A cover-only run ignores titles and a title-only run ignores covers, but an unusable one is still a
    # mistake: single mode said so, batch mode predicted the row anyway.
    rows = {"cover": [covers[0], covers[1]], "title": [TITLE, TITLE]}
    if bad == "empty title":
        rows["title"][1] = ""
    else:
        rows["cover"][1] = str(tmp_path / "gone.jpg")
    source = tmp_path / "in.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    run = str(single_branch_runs[w])
    res = _invoke("predict", "--batch", str(source), "-o", str(out), "--model", run)
    assert res.exit_code == 1 and "row 2" in res.output and not out.exists()
    assert ("empty" if bad == "empty title" else "does not exist") in res.output
    single = _invoke("predict", rows["cover"][1], rows["title"][1], "--model", run)
    assert single.exit_code == 1
    ranked = _invoke("predict", "--cover", rows["cover"][1], "--title", rows["title"][1], "--model", run)
    assert ranked.exit_code == 1


@pytest.mark.parametrize("args", [
    ["a.jpg", "t", "--cover", "b.jpg", "--title", "u"],
    ["a.jpg"],
    ["--cover", "a.jpg", "--title", "t", "--explain"],
    ["--batch", "in.csv"],
    ["a.jpg", "t", "-o", "out.csv"],
    [],
])
def test_mixing_forms_is_a_usage_error(args):
    res = _invoke("predict", *args)
    assert res.exit_code == 2
    assert "Traceback" not in res.output


def test_predict_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from bilipop.cli import app; "
            "CliRunner().invoke(app, ['predict', '--help']); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    assert torch.__version__  # the tests themselves may use torch
