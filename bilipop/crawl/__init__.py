"""Crawling Bilibili's Knowledge section: HTTP client, API parsing, WBI signing and the SQLite store."""
