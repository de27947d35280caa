"""bilipop.crawl.crawler's options: bad ones exit 1 before anything is written, the CLI's flags reach crawl()
under their own names, and crawl_plan estimates the study's size."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl.crawler import crawl_plan

runner = CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    (["--section", "music"], "only section is: knowledge"),
    (["--tids", "2094,999"], "999 is not a knowledge sub-partition"),
    (["--tids", "201"], "201 is an old (before 2025) partition id; Bilibili renumbered its partitions in 2025"),
    (["--tids", "36"], "now main partition 1010 with sub-partitions 2084 应试教育"),
    (["--tids", "science"], "--tids takes v2 sub-partition ids"),
    (["--max-videos", "0"], "--max-videos must be at least 1"),
    (["--rate", "-1"], "--rate must be"),
    (["--rate", "0"], "only for a local server"),
    (["--api-base", "ftp://example.com"], "--api-base must be an http"),
])
def test_bad_crawl_options_exit_1_before_anything_is_written(tmp_path, args, message):
    data = tmp_path / "data"
    result = runner.invoke(app, ["crawl", "--data", str(data), *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not data.exists()


def test_cli_flags_reach_crawl_under_their_own_names(tmp_path, monkeypatch):
    import bilipop.crawl.crawler as crawler

    seen = {}

    def fake_crawl(**kwargs):
        seen.update(kwargs)
        return crawler.CrawlSummary(tmp_path / "bilipop.db", 3, 3, 0, 5, 2, 0, 2, 2, 2, 1, 3, 0, 9, 9, 0, 0, 0, 0.5)

    monkeypatch.setattr(crawler, "crawl", fake_crawl)
    result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--max-videos", "3", "--tids", "2094,2090",
                                 "--rate", "0.5", "--api-base", "http://127.0.0.1:1", "--widen", "--refresh"])
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in seen.items() if k not in ("progress", "on_plan")} == {
        "data": tmp_path, "section": "knowledge", "max_videos": 3, "tids": "2094,2090", "rate": 0.5,
        "api_base": "http://127.0.0.1:1", "ignore_robots": False, "widen": True, "refresh": True}
    assert "videos in the dataset" in result.output
    for row in ("videos examined", "kept as Knowledge", "skipped as other sections"):
        assert row in result.output


def test_the_plan_estimates_the_studys_size_at_the_chosen_rate(tmp_path):
    plan = crawl_plan(tmp_path, rate=1.0)
    assert "27,000 Knowledge videos" in plan.lines[-1] and "at --rate 1" in plan.lines[-1]
    assert plan.seconds is not None and 8 * 3600 < plan.seconds < 30 * 3600  # an overnight job
    assert crawl_plan(tmp_path, rate=2.0).seconds == pytest.approx(plan.seconds / 2)
    assert "with --widen also uploaders found in Related" in crawl_plan(tmp_path, rate=1.0, widen=True).lines[1]
    assert "with --widen" not in plan.lines[1]
