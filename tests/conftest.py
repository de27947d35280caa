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
