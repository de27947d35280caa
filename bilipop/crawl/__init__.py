"""Crawling Bilibili's Knowledge section: HTTP client, API parsing, WBI signing and the SQLite store."""

from typing import Any


def __getattr__(name: str) -> Any:
    # ``bilipop.crawl.crawl(...)`` without importing the heavy modules when the package is imported
    if name == "crawl":
        from bilipop.crawl.crawler import crawl

        return crawl
    raise AttributeError(f"module 'bilipop.crawl' has no attribute {name!r}")
