"""What ``bilipop demo`` needs besides the other commands: a local stand-in world and a cover and title to predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bilipop.data.schema import STORE_FILE
from bilipop.errors import InputError, OutputError
from bilipop.files import atomic_write

DEMO_TITLE = "三分钟看懂黑洞：为什么连光都逃不出来？"
DEMO_RUN = Path("runs") / "demo"
DEMO_DATA = Path("data")
#: In the demo's dataset folder: the --videos and --seed of the world it holds.
WORLD_FILE = ".bilipop-demo-world.json"


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
    if (run / "config.json").is_file() or (run / "checkpoint.pt").is_file():
        shutil.rmtree(run)


def make_demo_cover(path: str | Path, seed: int = 0) -> Path:
    """Draw a 640x400 cover — a night sky with a glowing disc — and write it as JPEG to ``path``."""
    import random

    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    width, height = 640, 400
    image = Image.new("RGB", (width, height), (8, 10, 30))
    draw = ImageDraw.Draw(image)
    for _ in range(180):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.choice((1, 1, 1, 2))
        shade = rng.randrange(150, 256)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(shade, shade, shade))
    cx, cy = 420, 200
    for radius, colour in ((150, (255, 140, 20)), (118, (255, 210, 90)), (100, (0, 0, 0))):
        draw.ellipse((cx - radius, cy - radius // 3, cx + radius, cy + radius // 3), fill=colour)
        if radius == 100:
            draw.ellipse((cx - 70, cy - 70, cx + 70, cy + 70), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 300, 330, 370), fill=(230, 40, 60))
    draw.text((45, 320), "BLACK HOLE 101", fill=(255, 255, 255))
    return atomic_write(Path(path), lambda tmp: image.save(tmp, "JPEG", quality=90))
