"""``bilipop demo``'s core: the whole study on a simulated world, through the same functions as the commands.

``run_demo`` serves a ``bilipop.sim`` world on 127.0.0.1, crawls it with ``bilipop.crawl.crawl``, filters, scores,
labels, trains the tiny models, evaluates them on the test part against the best constant (with a 95 % bootstrap
interval), and answers a creator's question: of two covers and two titles, one of each made more appealing by the
world's stated cause (``bilipop.sim.popularity``), which combinations does the model rank first?

It never prints: each stage's result goes to the ``on_done`` callback as soon as the stage ends.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilipop.data.schema import DEFAULT_WEIGHTS
from bilipop.errors import InputError, OutputError
from bilipop.files import atomic_write
from bilipop.layout import CHECKPOINT, CONFIG, STORE_FILE
from bilipop.train_config import TINY, TrainConfig

if TYPE_CHECKING:
    from bilipop.evaluation.results import Verdict

log = logging.getLogger(__name__)

DEMO_RUN = Path("runs") / "demo"
DEMO_DATA = Path("data")
#: In the demo's dataset folder: the --videos and --seed of the world it holds.
WORLD_FILE = ".bilipop-demo-world.json"

# The demo's settings: big enough a world that the test part's 95 % interval tells the tiny model from the best
# constant for every seed, small enough that the whole demo stays under 40 s on two cores (benchmarks/README.md,
# "How the demo's settings were chosen").
DEMO_VIDEOS = 3600
DEMO_EPOCHS = 10
DEMO_BATCH_SIZE = 64
#: Tiny models from scratch with batches of 64 learn in few epochs at 3e-3 (train's tiny default, 1e-3, needs about
#: twice the epochs).
DEMO_LR = 3e-3
#: Hot uploaders' videos under 10 million followers: the study's 500,000 would leave too few videos to tell the
#: model from a constant (or need a world whose crawl takes too long).
DEMO_MAX_FOLLOWERS = 10_000_000
#: The study's hot-list rule: every uploader the 2026 crawl walks was sighted on a hot list, so it keeps them all.
DEMO_REQUIRE_HOT = True
STAGES = ("crawl", "filter", "score", "label", "train", "evaluate", "rank")


# -- folders ------------------------------------------------------------------------------------------------------
def demo_paths(folder: str | Path) -> tuple[Path, Path]:
    """The dataset folder and the run folder that the demo writes inside ``folder``."""
    folder = Path(folder)
    return folder / DEMO_DATA, folder / DEMO_RUN


def check_demo_args(videos: int, epochs: int) -> None:
    """Raise InputError for sizes the demo cannot run with."""
    if videos < 100:
        raise InputError(f"--videos must be at least 100 so that enough remain after filtering, got {videos}")
    if epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")


def claim_world(data: Path, videos: int, seed: int) -> None:
    """Record which simulated world ``data`` holds, or refuse a different one.

    The crawl resumes whatever the folder holds, so another ``--videos`` or ``--seed`` would otherwise quietly
    reuse the earlier world's videos.

    Raises:
        InputError: ``data`` holds the crawl of another world.
    """
    marker = Path(data) / WORLD_FILE
    wanted = {"videos": videos, "seed": seed}
    if marker.is_file():
        try:
            held = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            held = None
        if held != wanted:
            what = (f"--videos {held['videos']} --seed {held['seed']}"
                    if isinstance(held, dict) and {"videos", "seed"} <= held.keys() else "an unknown world")
            raise InputError(f"{data} holds the crawl of another simulated world ({what}); give another --dir, "
                             "or the same --videos and --seed to resume it")
        return
    if (Path(data) / STORE_FILE).exists():
        raise InputError(f"{data} already holds a crawl store that the demo did not make; give another --dir")
    try:
        atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(wanted) + "\n", encoding="utf-8"))
    except OutputError as exc:
        why = getattr(exc.__cause__, "strerror", None) or "the write failed"
        raise InputError(f"cannot write in {data}: {why}; give another --dir") from exc


def clear_run(run: Path) -> None:
    """Remove an earlier demo's run folder so that training starts afresh (the dataset is kept and resumed)."""
    if (run / CONFIG).is_file() or (run / CHECKPOINT).is_file():
        shutil.rmtree(run)


# -- what each stage shows ---------------------------------------------------------------------------------------
def stage_captions(epochs: int = DEMO_EPOCHS) -> dict[str, str]:
    """The one-line caption over each stage of ``STAGES``: what it does and how the demo sets it."""
    return {
        "crawl": "crawl the simulated Knowledge section (a local stand-in of api.bilibili.com)",
        "filter": f"filter: hot-list uploaders under {DEMO_MAX_FOLLOWERS:,} followers (the study's 500,000 would "
                  "leave too few simulated videos)",
        "score": "score: 0.75 views + 0.1 likes + 0.1 coins + 0.05 favorites + 0 shares, each (x - mean) / "
                 "(max - min)",
        "label": "label: five equal classes (--quantiles; the study's fixed cuts fit 27,000 real videos)",
        "train": f"train: tiny ViT + tiny BERT, late fusion w = 0.75, {epochs} epochs on one CPU",
        "evaluate": "evaluate on the held-out test part (1/11 of the videos)",
        "rank": "the creator's question: which of two covers and two titles?",
    }


# -- the creator's question ---------------------------------------------------------------------------------------
@dataclass
class Option:
    """One combination of the creator's question, with what the world's stated cause says of it."""

    cover: str
    title: str
    appealing_cover: bool
    appealing_title: bool
    stated_effect: float  # log views the world's cause adds: cover_effect + title_effect
    expected_class: float
    label: int
    probabilities: list[float]
    p_beats_next: float | None = None  # against the next one down the ranking


@dataclass
class CreatorQuestion:
    """The four combinations, best predicted first, and whether the ranking found the better ones."""

    options: list[Option]
    covers: list[str] = field(default_factory=list)  # appealing first
    titles: list[str] = field(default_factory=list)  # appealing first

    def _expected(self) -> dict[tuple[bool, bool], float]:
        return {(o.appealing_cover, o.appealing_title): o.expected_class for o in self.options}

    @property
    def found_best(self) -> bool:
        """The appealing cover with the appealing title has a strictly higher expected class than the other three
        (a tie is not a find: the ranking keeps tied candidates in their input order)."""
        expected = self._expected()
        return all(expected[True, True] > v for k, v in expected.items() if k != (True, True))

    @property
    def found_order(self) -> bool:
        """Each combination has a strictly higher expected class than every one whose cover and title are both no
        better (the order of the two mixed pairs is left open)."""
        expected = self._expected()
        return all(expected[a] > expected[b] for a in expected for b in expected
                   if a != b and a[0] >= b[0] and a[1] >= b[1])


def make_question_inputs(folder: Path, seed: int) -> tuple[list[Path], list[str]]:
    """Write the two covers (appealing first) and return them with the two titles (appealing first).

    Each pair differs only in what the world's stated cause rewards: the covers share their hue and shapes, the
    titles their topic.
    """
    from bilipop.sim.images import TID_HUES, draw_look
    from bilipop.sim.popularity import BEST_LOOK, BEST_STYLE, WORST_LOOK, WORST_STYLE, CoverLook
    from bilipop.sim.words import make_title

    def jpeg(look: CoverLook) -> Callable[[Path], None]:
        image = draw_look(look, TID_HUES[201], f"demo-{seed}", (480, 270))
        return lambda tmp: image.save(tmp, "JPEG", quality=90)

    covers = [atomic_write(folder / name, jpeg(look))
              for name, look in (("cover.jpg", BEST_LOOK), ("plain.jpg", WORST_LOOK))]
    titles = [make_title(random.Random(f"demo-{seed}"), 201, style) for style in (BEST_STYLE, WORST_STYLE)]
    return covers, titles


def ask_creator_question(run: Path, folder: Path, seed: int) -> CreatorQuestion:
    """Rank the four combinations of two covers and two titles with ``rank_candidates``."""
    from bilipop.prediction.predict import rank_candidates
    from bilipop.sim.popularity import BEST_LOOK, BEST_STYLE, WORST_LOOK, WORST_STYLE, cover_effect, title_effect

    covers, titles = make_question_inputs(folder, seed)
    good_cover, good_title = str(covers[0]), titles[0]
    ranked = rank_candidates(run, covers[::-1], titles[::-1])  # plain first: a tie never favours the answer
    options = []
    for c in ranked:
        appealing_cover, appealing_title = c.cover == good_cover, c.title == good_title
        effect = (cover_effect(BEST_LOOK if appealing_cover else WORST_LOOK)
                  + title_effect(BEST_STYLE if appealing_title else WORST_STYLE))
        options.append(Option(c.cover, c.title, appealing_cover, appealing_title, effect,
                              c.prediction.expected_class, c.label, c.prediction.probabilities, c.p_beats_next))
    return CreatorQuestion(options, [str(c) for c in covers], list(titles))


# -- the run --------------------------------------------------------------------------------------------------------
@contextmanager
def sim_process(videos: int, seed: int) -> Iterator[str]:
    """Serve the simulated world from a process of its own (``python -m bilipop.sim``) and yield its base URL.

    In the crawler's process the server would share one interpreter lock with it: on two cores a server process
    of its own halves the crawl's wall time. The process is stopped however the block ends.

    Raises:
        InputError: the server did not start (its own message).
    """
    import subprocess
    import sys

    command = [sys.executable, "-m", "bilipop.sim", "--port", "0", "--videos", str(videos), "--seed", str(seed)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = (proc.stdout.readline() if proc.stdout else "").strip()
        if not url.startswith("http://"):
            proc.wait(timeout=10)
            why = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
            raise InputError(f"the simulated site did not start: {why[-1] if why else 'no output'}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
@dataclass
class DemoResult:
    """What each stage returned, the verdict, the creator's question and each stage's wall time."""

    data: Path
    run: Path
    results: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None  # the evaluation's: is the model above the best constant?
    question: CreatorQuestion | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@contextmanager
def _one_thread() -> Iterator[None]:
    # The tiny models are too small for intra-op threads to help: on two cores a second thread only waits for
    # the first (and on a busy machine spins), training about twice as slowly as one.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_demo(folder: str | Path, videos: int = DEMO_VIDEOS, epochs: int = DEMO_EPOCHS, seed: int = 0, *,
             batch_size: int = DEMO_BATCH_SIZE, on_start: Callable[[str], None] | None = None,
             on_done: Callable[[str, Any], None] | None = None,
             crawl_progress: Callable[[Any], None] | None = None,
             train_progress: Callable[[int, int | None], None] | None = None,
             on_epoch: Callable[[dict], None] | None = None) -> DemoResult:
    """Run every stage of the study on a simulated world of ``videos`` videos in ``folder``.

    ``on_start(stage)`` is called before each stage of ``STAGES`` and ``on_done(stage, result)`` after it, with
    the crawl's ``CrawlSummary``, a ``bilipop.data.stages.StageResult`` for filter, score and label, the
    ``TrainResult``, the ``EvaluationReport`` and the ``CreatorQuestion``. ``batch_size`` is for small worlds
    (tests), whose few rows make too few steps of 64.

    Raises:
        InputError: bad sizes, or ``folder`` holds another world's crawl; any stage's BilipopError.
    """
    from bilipop import crawl as crawling
    from bilipop import train as training
    from bilipop.data.stages import filter_file, label_file, score_file
    from bilipop.evaluation.report import evaluate

    check_demo_args(videos, epochs)
    folder = Path(folder)
    data, run = demo_paths(folder)
    claim_world(data, videos, seed)
    result = DemoResult(data, run)

    def stage(name: str, work: Callable[[], Any]) -> Any:
        if on_start:
            on_start(name)
        started = time.perf_counter()
        value = work()
        result.seconds[name] = time.perf_counter() - started
        result.results[name] = value
        if on_done:
            on_done(name, value)
        return value

    def crawl_world() -> Any:
        with sim_process(videos, seed) as base_url:
            return crawling.crawl(data=data, api_base=base_url, rate=0.0, progress=crawl_progress)

    stage("crawl", crawl_world)
    stage("filter", lambda: filter_file(data=data, max_followers=DEMO_MAX_FOLLOWERS, require_hot=DEMO_REQUIRE_HOT))
    stage("score", lambda: score_file(data=data, weights=DEFAULT_WEIGHTS, norm="paper"))
    stage("label", lambda: label_file(data=data, quantiles=True))

    def fit() -> Any:
        clear_run(run)
        with _one_thread():
            config = TrainConfig(vit=TINY, bert=TINY, epochs=epochs, batch_size=batch_size, lr=DEMO_LR,
                                 devices=("cpu",), seed=seed, cache=True, num_workers=0)
            return training.train(config, data=data, out=run, progress=train_progress, on_epoch=on_epoch)

    stage("train", fit)
    with _one_thread():
        report = stage("evaluate", lambda: evaluate(run, split="test"))
        result.verdict = report.verdict
        result.question = stage("rank", lambda: ask_creator_question(run, folder, seed))
    return result
