"""The study's cleaning step: de-duplicate, drop bad counters, keep small uploaders who have been on the hot list."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bilipop.data.io import int_if_whole
from bilipop.data.schema import COUNTERS, DEFAULT_MAX_FOLLOWERS, require_columns
from bilipop.errors import InputError


@dataclass
class FilterReport:
    """How many rows came in, how many each rule removed (in the order applied), and how many remain."""

    input_rows: int
    removed: dict[str, int] = field(default_factory=dict)
    remaining: int = 0


def filter_videos(
    df: pd.DataFrame, *, max_followers: int = DEFAULT_MAX_FOLLOWERS, require_hot: bool = True
) -> tuple[pd.DataFrame, FilterReport]:
    """Apply the study's filter and return the kept rows with a report.

    Rules, in order: duplicate ``bvid`` (the newest ``fetched_at`` is kept), a missing, non-numeric or negative
    counter, ``followers`` unknown or ``>= max_followers``, and (with ``require_hot``) an uploader never seen on the
    hot list.

    Raises:
        InputError: a needed column is missing or ``max_followers`` is not positive.
    """
    if max_followers <= 0:
        raise InputError(f"--max-followers must be positive, got {max_followers}")
    needed = ["bvid", *COUNTERS, "followers"] + (["on_hot_list"] if require_hot else [])
    require_columns(df.columns, needed, what="the input table",
                    hint="filter needs the crawl store or a table with the columns listed in docs/reference.md "
                         "(\"Columns\")")
    report = FilterReport(input_rows=len(df))
    out = df

    if "fetched_at" in out.columns:
        order = pd.to_numeric(out["fetched_at"], errors="coerce").fillna(float("-inf"))
        out = out.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
    before = len(out)
    out = out.drop_duplicates("bvid", keep="last")
    report.removed["duplicate bvid"] = before - len(out)

    bad = pd.Series(False, index=out.index)
    for col in COUNTERS:
        values = pd.to_numeric(out[col], errors="coerce")
        bad |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)) | (values < 0)
    report.removed["missing or negative counter"] = int(bad.sum())
    out = out[~bad]

    followers = pd.to_numeric(out["followers"], errors="coerce")
    too_big = followers.isna() | (followers >= max_followers)
    report.removed[f"followers >= {max_followers:,} or unknown"] = int(too_big.sum())
    out = out[~too_big]

    if require_hot:
        hot = out["on_hot_list"].astype("boolean").fillna(False).astype(bool)
        report.removed["uploader never on the hot list"] = int((~hot).sum())
        out = out[hot]

    out = out.sort_index(kind="stable").reset_index(drop=True)
    for col in COUNTERS:
        if not pd.api.types.is_integer_dtype(out[col]):
            out[col] = int_if_whole(pd.to_numeric(out[col]))
    report.remaining = len(out)
    return out, report
