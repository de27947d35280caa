"""Shared fixtures. Expensive ones are session-scoped and built once from data the tests make themselves."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from bilipop.crawl import wbi
from bilipop.sim import SimServer


@contextmanager
def _threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one intra-op thread (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Tiny models on a small shared CI machine: intra-op threads competing for two busy cores make a step ~10x
    slower than one thread.
    """
    with _threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> dict:
    """A real run folder: tiny ViT + tiny BERT trained two epochs on a small synthetic dataset (CPU, seconds).

    Returns {"run": run folder, "data": dataset folder, "table": labeled.parquet, "rows": number of videos}.
    Tests that change the run must copy it first.
    """
    import torch

    from bilipop.data.synthetic import make_labeled_dataset
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_run")
    rows = 60
    table = make_labeled_dataset(root / "data", n=rows, seed=0, signal="both", image_size=32)
    run = root / "run"
    with _threads(1):
        train(TrainConfig(vit="tiny", bert="tiny", epochs=2, batch_size=16, seed=0, devices="cpu", num_workers=0),
              data=root / "data", out=run)
    return {"run": run, "data": root / "data", "table": Path(table), "rows": rows}


def _hostile_eps(marker: Path) -> bytes:
    """An EPS whose PostScript writes ``marker`` when Ghostscript renders it (Pillow's EPS plugin runs ``gs``)."""
    return (f"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n"
            f"/f ({marker}) (w) file def f (ran) writestring f closefile\n"
            "0 0 moveto 32 32 lineto stroke showpage\n%%EOF\n").encode("ascii")


@pytest.fixture(scope="session")
def hostile_eps():
    """``hostile_eps(marker)``: the bytes of an EPS "cover" whose PostScript writes the file ``marker``."""
    return _hostile_eps


# -- the simulated site, for the tests of bilipop.sim ---------------------------------------------------------------
class SimClient:
    """The minimum a crawler does against bilipop.sim: fetch the WBI keys from nav, then sign every request."""

    def __init__(self, sim: SimServer) -> None:
        self.base = sim.base_url
        self.http = requests.Session()
        self.refresh_keys()

    def refresh_keys(self) -> None:
        img = self.http.get(self.base + "/x/web-interface/nav", timeout=5).json()["data"]["wbi_img"]
        self.mixin = wbi.mixin_key(wbi.key_from_url(img["img_url"]), wbi.key_from_url(img["sub_url"]))

    def get(self, path: str, headers: dict | None = None, **params: object) -> requests.Response:
        return self.http.get(self.base + path, params=wbi.sign(params, self.mixin), timeout=5, headers=headers)

    def api(self, path: str, headers: dict | None = None, **params: object) -> dict:
        return self.get(path, headers=headers, **params).json()



@pytest.fixture(scope="module")
def sim():
    """A simulated Bilibili of 200 videos (seed 7), one per test module."""
    with SimServer(videos=200, seed=7) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim) -> SimClient:
    """A signing client of the module's ``sim``."""
    return SimClient(sim)


@pytest.fixture
def sim_client() -> type[SimClient]:
    """``SimClient`` itself, for a test that signs its requests to a server of its own."""
    return SimClient


# ---------------------------------------------------------------------------------------------------------------
# The study's model (tests marked `study`): random weights written in the exact formats the default path loads.
#: bert-base-chinese's config.json as the Hugging Face hub serves it.
BERT_BASE_CHINESE_CONFIG = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "directionality": "bidi",
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "pooler_fc_size": 768,
    "pooler_num_attention_heads": 12, "pooler_num_fc_layers": 3, "pooler_size_per_head": 128,
    "pooler_type": "first_token_transform", "type_vocab_size": 2, "vocab_size": 21128,
}


def _chinese_vocab(size: int = 21128) -> list[str]:
    """A vocabulary laid out like bert-base-chinese's: [PAD], [unused1..99], [UNK], [CLS], [SEP], [MASK], then
    ASCII and CJK characters (from U+4E00, which covers the common ones) up to ``size`` tokens."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    tokens += [chr(0x4E00 + i) for i in range(size - len(tokens))]
    return tokens


def write_hf_snapshot(hub: Path, repo: str, files: dict[str, bytes], commit: str = "8d2a91f" + "0" * 33) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does: blobs named by SHA-256, a snapshot folder of symlinks to
    them, and refs/main naming the snapshot's commit. Returns the snapshot folder."""
    import hashlib
    import os

    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def study_env(tmp_path_factory) -> dict:
    """Environment variables under which the DEFAULT `bilipop train` (no --vit/--bert) finds the study's two
    encoders offline, with random weights: a ViT-B/16 (384 px) state dict at
    ``$TORCH_HOME/hub/checkpoints/B_16_imagenet1k.pth`` and ``bert-base-chinese`` in ``$HF_HOME/hub`` as the hub
    lays it out (21,128-token vocab.txt, config.json, model.safetensors of a BertForMaskedLM). Built once."""
    import json
    import os
    import tempfile

    import torch
    from transformers import BertConfig, BertForMaskedLM

    from bilipop.models.vision import ViTSpec, build_vit

    root = tmp_path_factory.mktemp("study_home")
    torch.manual_seed(0)
    with _threads(2):
        checkpoints = root / "torch" / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        vit = build_vit(ViTSpec(patches=16, dim=768, ff_dim=3072, num_heads=12, num_layers=12, image_size=384,
                                out_dim=1000))
        torch.save(vit.state_dict(), checkpoints / "B_16_imagenet1k.pth")
        del vit
        bert = BertForMaskedLM(BertConfig(**BERT_BASE_CHINESE_CONFIG))
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            bert.save_pretrained(tmp, safe_serialization=True)
            weights = (Path(tmp) / "model.safetensors").read_bytes()
        del bert
    files = {"config.json": json.dumps(BERT_BASE_CHINESE_CONFIG, indent=2).encode(),
             "vocab.txt": ("\n".join(_chinese_vocab()) + "\n").encode(),
             "tokenizer_config.json": json.dumps({"do_lower_case": False, "model_max_length": 512}).encode(),
             "model.safetensors": weights}
    write_hf_snapshot(root / "hf" / "hub", "bert-base-chinese", files)
    env = {**os.environ, "TORCH_HOME": str(root / "torch"), "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1",
           "BILIPOP_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    env.pop("HF_HUB_CACHE", None)
    env.pop("BILIPOP_MODEL", None)
    return env


# -- fixtures that several test modules share ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_covers(tiny_run):
    """The first two covers of the tiny run's data set (paths)."""
    import pandas as pd

    table = pd.read_parquet(tiny_run["table"])
    return [str(tiny_run["data"] / p) for p in table["cover_path"].iloc[:2]]


@pytest.fixture(scope="module")
def tiny_videos(tiny_run):
    """Every cover and title of the tiny run's data set: 60 videos."""
    import pandas as pd

    table = pd.read_parquet(tiny_run["table"])
    covers = [str(tiny_run["data"] / c) for c in table["cover_path"]]
    return covers, list(table["title"])


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A dataset folder of 24 labeled videos with 32 px covers."""
    from bilipop.data.synthetic import make_labeled_dataset

    folder = tmp_path_factory.mktemp("small")
    make_labeled_dataset(folder, n=24, seed=3, image_size=32)
    return folder


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    """A dataset folder of 66 labeled videos (seed 2) for the training tests."""
    from bilipop.data.synthetic import make_labeled_dataset

    return make_labeled_dataset(tmp_path_factory.mktemp("data") / "d", n=66, seed=2).parent


@pytest.fixture(scope="module")
def signal_datasets(tmp_path_factory):
    """Three dataset folders of 110 videos whose class lives in both inputs, the cover only or the title only."""
    from bilipop.data.synthetic import make_labeled_dataset

    root = tmp_path_factory.mktemp("data")
    return {signal: make_labeled_dataset(root / signal, n=110, seed=1, signal=signal).parent
            for signal in ("both", "cover", "title")}


@pytest.fixture(scope="module")
def served_run(tiny_run):
    """The tiny run loaded as ``bilipop serve`` loads it."""
    from bilipop.serve.server import load_served_run

    return load_served_run(tiny_run["run"])


@pytest.fixture(scope="module")
def served_app(served_run):
    """The web app of ``bilipop serve`` around ``served_run``."""
    from bilipop.serve import app as web

    return web.create_app(served_run)


@pytest.fixture(scope="module")
def cover_bytes(tiny_run):
    """The bytes of the tiny run's first cover (a JPEG)."""
    import pandas as pd

    table = pd.read_parquet(tiny_run["table"])
    return (tiny_run["data"] / table["cover_path"].iloc[0]).read_bytes()


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """No hub: ``HF_HUB_OFFLINE=1`` and an empty ``TORCH_HOME`` of the test's own, so nothing is found or fetched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
