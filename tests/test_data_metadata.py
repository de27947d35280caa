"""score records its weights, norm and age with the table (Parquet schema metadata, a CSV's .meta.json); label
reads them for its leave-one-out outlier check, and a table without them is still labelled, with a warning."""

import hashlib
import json
import logging

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.data.io import read_table, write_table
from bilipop.data.labeling import OUTLIER_SHARE, CheckSkipped, label_videos, leave_one_out_outlier
from bilipop.data.metadata import sidecar_path
from bilipop.data.scoring import SETTINGS_KEY, ScoreSettings, score_videos
from bilipop.data.stages import label_file, score_file
from bilipop.errors import InputError

runner = CliRunner()
WEIGHTS = (0.5, 0.2, 0.2, 0.1, 0.0)
SKIPPED = "the leave-one-out outlier check was skipped"


def counters(n=400, seed=4, outlier=True):
    rng = np.random.default_rng(seed)
    views = np.exp(rng.normal(9, 1.2, n)).astype(np.int64)
    df = pd.DataFrame({"bvid": [f"BV1{i:09d}" for i in range(n)], "views": views,
                       **{k: (views * r * np.exp(rng.normal(0, 0.4, n))).astype(np.int64)
                          for k, r in (("likes", 0.02), ("coins", 0.003), ("favorites", 0.004), ("shares", 0.001))}})
    if outlier:
        df.loc[7, ["views", "likes", "coins", "favorites", "shares"]] *= 100
    return df


def skipped(report):
    return [w for w in report.warnings if SKIPPED in w]


# -- what score writes -------------------------------------------------------------------------------------------
def test_score_records_its_settings_in_the_parquet_schema_metadata(tmp_path):
    counters().to_csv(tmp_path / "in.csv", index=False)
    score_file(tmp_path / "in.csv", tmp_path / "scored.parquet", weights=WEIGHTS, norm="log", age="none")
    metadata = pq.read_schema(tmp_path / "scored.parquet").metadata
    record = json.loads(metadata[b"bilipop.score"])
    assert record == {"weights": {"views": 0.5, "likes": 0.2, "coins": 0.2, "favorites": 0.1, "shares": 0.0},
                      "norm": "log", "age": "none"}
    assert b"PANDAS_ATTRS" not in metadata  # one copy of the record, under bilipop's own key
    assert not sidecar_path(tmp_path / "scored.parquet").exists()


def test_score_records_its_settings_beside_a_csv_tied_to_its_bytes(tmp_path):
    counters().to_csv(tmp_path / "in.csv", index=False)
    score_file(tmp_path / "in.csv", tmp_path / "scored.csv", weights=WEIGHTS, norm="rank")
    side = tmp_path / "scored.csv.meta.json"
    assert sidecar_path(tmp_path / "scored.csv") == side
    content = json.loads(side.read_text(encoding="utf-8"))
    assert content["csv_sha256"] == hashlib.sha256((tmp_path / "scored.csv").read_bytes()).hexdigest()
    assert content["records"][SETTINGS_KEY]["norm"] == "rank"
    assert read_table(tmp_path / "scored.csv").attrs == content["records"]


def test_label_reads_the_record_and_carries_it_on(tmp_path):
    counters().to_csv(tmp_path / "in.csv", index=False)
    for suffix in (".csv", ".parquet"):
        score_file(tmp_path / "in.csv", tmp_path / f"scored{suffix}", weights=WEIGHTS)
        done = label_file(tmp_path / f"scored{suffix}", tmp_path / f"labeled{suffix}")
        assert not skipped(done.report)
        who, share = done.report.outlier
        assert who == "bvid BV1000000007" and share > OUTLIER_SHARE
        assert read_table(tmp_path / f"labeled{suffix}").attrs[SETTINGS_KEY]["weights"]["views"] == 0.5


def test_the_check_uses_the_recorded_weights_not_a_guess():
    scored = score_videos(counters(), weights=WEIGHTS)
    # the share measured by hand: score again without the outlier, with the same weights, and compare labels
    rest = counters().drop(index=7).reset_index(drop=True)
    by_hand = label_videos(score_videos(rest, weights=WEIGHTS))[0]["label"].to_numpy()
    kept = label_videos(scored)[0]["label"].drop(index=7).to_numpy()
    assert label_videos(scored)[1].outlier[1] == pytest.approx((by_hand != kept).mean())
    # a record with other weights does not describe this score: the check says so rather than guessing
    other = ScoreSettings((0.75, 0.1, 0.1, 0.05, 0.0), "paper", "none")
    _, report = label_videos(scored, settings=other)
    assert report.outlier is None and "not the weighted sum" in skipped(report)[0]
    with pytest.raises(CheckSkipped, match="not the weighted sum"):
        leave_one_out_outlier(scored, scored["score"].to_numpy(), np.zeros(len(scored), dtype=np.int64), (1.0,),
                              False, None, other)


def test_a_zero_weight_column_may_be_missing():
    scored = score_videos(counters(), weights=WEIGHTS).drop(columns="s_shares")
    _, report = label_videos(scored)
    assert report.outlier is not None and not skipped(report)


def test_rows_removed_after_scoring_skip_the_check_instead_of_measuring_the_removal():
    scored = score_videos(counters(), weights=WEIGHTS)
    labeled, report = label_videos(scored.iloc[:300])
    assert len(labeled) == 300 and report.outlier is None
    assert "not normalised over this table's rows" in skipped(report)[0]


# -- tables without a usable record ------------------------------------------------------------------------------
def test_a_hand_made_csv_is_labelled_and_the_skipped_check_is_said(tmp_path):
    score_videos(counters(), weights=WEIGHTS).to_csv(tmp_path / "by_hand.csv", index=False)
    r = runner.invoke(app, ["label", "-i", str(tmp_path / "by_hand.csv"), "-o", str(tmp_path / "l.csv")])
    assert r.exit_code == 0, r.output
    assert "no record of how score made it" in r.output and SKIPPED in r.output
    assert set(pd.read_csv(tmp_path / "l.csv")["label"]) <= {0, 1, 2, 3, 4}
    assert not (tmp_path / "l.csv.meta.json").exists()


def test_a_csv_changed_after_scoring_loses_its_record(tmp_path, caplog):
    counters().to_csv(tmp_path / "in.csv", index=False)
    score_file(tmp_path / "in.csv", tmp_path / "scored.csv", weights=WEIGHTS)
    text = (tmp_path / "scored.csv").read_text(encoding="utf-8")
    (tmp_path / "scored.csv").write_text(text.replace("BV1000000003", "BV1999999999"), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="bilipop.data.metadata"):
        done = label_file(tmp_path / "scored.csv", tmp_path / "labeled.csv")
    assert "scored.csv.meta.json" in caplog.text and "not written with this version" in caplog.text
    assert done.report.outlier is None and skipped(done.report)
    assert len(done.table) == 400


@pytest.mark.parametrize("content", [
    b"{not json", b"[1, 2]", b'{"csv_sha256": "x", "records": {}}', b"\xff\xfe", b" " * 70_000,
    b'{"csv_sha256": "HASH", "records": {"bilipop.score": {"weights": {"views": NaN}, "norm": "paper"}}}',
])
def test_a_broken_sidecar_is_ignored_not_fatal(tmp_path, content):
    scored = score_videos(counters(), weights=WEIGHTS)
    scored.to_csv(tmp_path / "scored.csv", index=False)
    digest = hashlib.sha256((tmp_path / "scored.csv").read_bytes()).hexdigest()
    sidecar_path(tmp_path / "scored.csv").write_bytes(content.replace(b"HASH", digest.encode()))
    table = read_table(tmp_path / "scored.csv")
    assert table.attrs == {}
    _, report = label_videos(table)
    assert skipped(report)


@pytest.mark.parametrize(("record", "message"), [
    ("paper", "not an object"),
    ({"weights": [0.5, 0.2, 0.2, 0.1, 0], "norm": "paper", "age": "none"}, "do not name the counters"),
    ({"weights": {"likes": 1, "views": 0, "coins": 0, "favorites": 0, "shares": 0}, "norm": "paper", "age": "none"},
     "do not name the counters"),
    ({"weights": dict.fromkeys(("views", "likes", "coins", "favorites", "shares"), True), "norm": "paper",
      "age": "none"}, "not all numbers"),
    ({"weights": dict.fromkeys(("views", "likes", "coins", "favorites", "shares"), 0), "norm": "paper",
      "age": "none"}, "all zero"),
    ({"weights": dict.fromkeys(("views", "likes", "coins", "favorites", "shares"), 1), "norm": "cube",
      "age": "none"}, "--norm must be one of"),
    ({"weights": dict.fromkeys(("views", "likes", "coins", "favorites", "shares"), 1), "norm": "paper",
      "age": "none", "extra": 1}, "not an object of weights, norm and age"),
])
def test_an_invalid_record_is_refused_by_its_reader_and_skips_the_check(tmp_path, record, message):
    with pytest.raises(InputError, match=message):
        ScoreSettings.from_record(record)
    scored = score_videos(counters(), weights=WEIGHTS)
    scored.attrs[SETTINGS_KEY] = record
    write_table(scored, tmp_path / "scored.parquet")  # metadata travels as written: its reader checks it
    labeled, report = label_videos(read_table(tmp_path / "scored.parquet"))
    assert len(labeled) == 400 and report.outlier is None
    assert "record of how score made it is invalid" in skipped(report)[0]


def test_only_bilipops_own_parquet_metadata_is_trusted(tmp_path):
    scored = score_videos(counters(), weights=WEIGHTS)
    foreign = scored.copy()
    foreign.attrs = {SETTINGS_KEY: scored.attrs[SETTINGS_KEY], "other": 1}
    foreign.to_parquet(tmp_path / "foreign.parquet", index=False)  # pandas' own PANDAS_ATTRS, not our key
    assert b"PANDAS_ATTRS" in pq.read_schema(tmp_path / "foreign.parquet").metadata
    assert read_table(tmp_path / "foreign.parquet").attrs == {}


def test_a_csv_written_without_a_record_removes_an_older_sidecar(tmp_path):
    counters().to_csv(tmp_path / "in.csv", index=False)
    score_file(tmp_path / "in.csv", tmp_path / "out.csv", weights=WEIGHTS)
    assert sidecar_path(tmp_path / "out.csv").is_file()
    write_table(counters(), tmp_path / "out.csv")
    assert not sidecar_path(tmp_path / "out.csv").exists()
    assert read_table(tmp_path / "out.csv").attrs == {}


def test_settings_round_trip_through_their_record():
    settings = ScoreSettings((1, 0, 0.5, 0, 0), "rank", "residual")
    assert settings.weights == (1.0, 0.0, 0.5, 0.0, 0.0)
    assert ScoreSettings.from_record(json.loads(json.dumps(settings.to_record()))) == settings
