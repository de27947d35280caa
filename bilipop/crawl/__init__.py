"""Crawling Bilibili's Knowledge section: HTTP client, API parsing, WBI signing and the SQLite store."""

from bilipop.lazy import lazy_exports

# ``bilipop.crawl.crawl(...)`` without importing the heavy modules when the package is imported
__getattr__, __dir__ = lazy_exports(globals(), {"crawl": "bilipop.crawl.crawler"})
