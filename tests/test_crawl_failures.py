"""bilipop.crawl.failures: the backoff grows and stays capped."""

from __future__ import annotations

from bilipop.crawl.failures import Backoff


def test_backoff_grows_and_stays_capped():
    backoff = Backoff(base_s=1.0, max_s=8.0)
    assert 0.5 <= backoff.delay(1) <= 1.0
    assert 2.0 <= backoff.delay(3) <= 4.0
    assert backoff.delay(20) <= 8.0
