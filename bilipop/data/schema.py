"""The one place that names the columns of the stage files (docs/reference.md, "The dataset folder") and the
default file of each stage."""

from __future__ import annotations

from collections.abc import Iterable

from bilipop.errors import InputError
from bilipop.layout import STORE_FILE

#: The five counters of the study, in the order of ``--weights``.
COUNTERS: tuple[str, ...] = ("views", "likes", "coins", "favorites", "shares")

#: Column name -> kind ("str", "int", "float", "bool"). Unknown columns are carried through untouched.
COLUMNS: dict[str, str] = {
    "bvid": "str",
    "aid": "int",
    "title": "str",
    "cover_path": "str",
    "cover_url": "str",
    "views": "int",
    "likes": "int",
    "coins": "int",
    "favorites": "int",
    "shares": "int",
    "danmaku": "int",
    "replies": "int",
    "owner_mid": "int",
    "owner_name": "str",
    "followers": "int",
    "on_hot_list": "bool",
    "hot_sources": "str",
    "pubdate": "int",
    "fetched_at": "int",
    "duration": "int",
    "tid": "int",
    "tid_v2": "int",
    "pid_v2": "int",
    "score": "float",
    "age_days": "float",
    **{f"s_{k}": "float" for k in COUNTERS},
    "label": "int",
}

STRING_COLUMNS = tuple(c for c, kind in COLUMNS.items() if kind == "str")

#: Default file of each stage inside a dataset folder (docs/reference.md, "The dataset folder").
STAGE_FILES = {
    "filter": "filtered.parquet",
    "score": "scored.parquet",
    "label": "labeled.parquet",
}
#: Which file each stage reads by default.
STAGE_INPUTS = {
    "filter": STORE_FILE,
    "score": STAGE_FILES["filter"],
    "label": STAGE_FILES["score"],
    "train": STAGE_FILES["label"],
    "evaluate": STAGE_FILES["label"],
}

NUM_CLASSES = 5
LABEL_NAMES = ("very low", "low", "medium", "high", "very high")

# The study's settings (README, "What it does"), here rather than in the stage modules so that the CLI can show them as
# its defaults without importing pandas.
DEFAULT_MAX_FOLLOWERS = 500_000
#: Weights of COUNTERS, in that order.
DEFAULT_WEIGHTS: tuple[float, ...] = (0.75, 0.1, 0.1, 0.05, 0.0)
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.00025, 0.0015, 0.005, 0.02)



def blank_title(title: object) -> bool:
    """True when a title cannot stand for a video: missing (None, NaN), not text, or only whitespace."""
    return not isinstance(title, str) or not title.strip()


def row_name(df, row: int, *, unnamed: str = "table row") -> str:
    """How messages name row ``row`` (0-based) of a table: by its bvid when the table has one, else by number."""
    return f"bvid {df['bvid'].iloc[row]}" if "bvid" in df.columns else f"{unnamed} {row + 1}"


def require_columns(columns: Iterable[str], needed: Iterable[str], *, what: str, hint: str = "") -> None:
    """Raise InputError naming every needed column that ``columns`` lacks."""
    present = set(columns)
    missing = [c for c in needed if c not in present]
    if missing:
        msg = f"{what} is missing the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        raise InputError(msg + (f"; {hint}" if hint else ""))
