"""One GET with a whole-request deadline and a cap on the reply's size, no redirects followed and no cookie jar.

``requests`` only bounds each socket read: a server trickling a byte every few seconds would hold a request for
ever. Here the body is read as it arrives (``read1``: whatever the socket has, not a full buffer) and the deadline is
checked between the pieces, so a trickle is cut once the deadline passes and an oversized reply as soon as it passes
the cap; no socket read waits longer than the read timeout, itself no longer than the deadline. Cookies are never
stored from replies; the caller adds its own Cookie header only for the host they belong to.
"""

from __future__ import annotations

import http.cookiejar
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3

_PIECE = 64 * 1024


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request) -> bool:  # noqa: ANN001
        return False

    def return_ok(self, cookie, request) -> bool:  # noqa: ANN001
        return False


class Overdue(Exception):
    """The reply did not arrive in full before the deadline."""


class TooLarge(Exception):
    """The reply is larger than the cap."""


@dataclass
class Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def new_session() -> requests.Session:
    """A session that follows no redirects by itself and keeps no cookies.

    The environment's CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) is read here and its proxies
    (``HTTPS_PROXY``, ``NO_PROXY``...) once per host by ``get``: ``requests`` would otherwise re-read the whole
    environment on every request, a tenth of a crawl's time on a fast host. ``.netrc`` is not read (the crawler
    sends no credentials).
    """
    session = requests.Session()
    session.cookies.set_policy(_NoCookies())
    session.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


def _proxies(session: requests.Session, url: str) -> dict[str, str]:
    """The environment's proxies for ``url``'s host (``NO_PROXY`` honoured), read on the session's first request
    to that host."""
    parts = urlsplit(url)
    known: dict[str, dict[str, str]] = session.__dict__.setdefault("bilipop_proxies", {})
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin not in known:
        known[origin] = requests.utils.get_environ_proxies(url)
    return known[origin]


def get(session: requests.Session, url: str, *, headers: dict[str, str], deadline_s: float,
        connect_timeout_s: float, read_timeout_s: float, max_bytes: int) -> Reply:
    """GET ``url`` within ``deadline_s`` seconds in all (checked between the pieces of the body, each read waiting
    at most ``min(read_timeout_s, deadline_s)``), reading at most ``max_bytes`` of body.

    Raises:
        Overdue: the deadline passed first.
        TooLarge: the body (or its announced length) is over ``max_bytes``.
        requests.RequestException: as ``requests`` raises it (connection refused, reset...).
    """
    try:
        proxies = _proxies(session, url)
    except ValueError as exc:  # NO_PROXY makes requests read the port: a bad one raises a plain ValueError
        raise requests.exceptions.InvalidURL(f"{url[:80]!r}: {exc}") from None
    deadline = time.monotonic() + deadline_s
    timeout = (connect_timeout_s, min(read_timeout_s, deadline_s))
    try:
        with session.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=False,
                         proxies=proxies) as resp:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise TooLarge(f"announced {int(length):,} bytes")
            body = _read(resp.raw, deadline, max_bytes)
            return Reply(resp.status_code, resp.headers, body)
    except requests.RequestException:
        if time.monotonic() >= deadline:
            raise Overdue() from None
        raise


def _read(raw: urllib3.response.BaseHTTPResponse, deadline: float, max_bytes: int) -> bytes:
    """The body, decoded, piece by piece as it arrives; the deadline and the cap are checked after each piece."""
    read = getattr(raw, "read1", None) or raw.read  # read1: urllib3 >= 2.2; read waits for a whole piece
    pieces: list[bytes] = []
    size = 0
    while True:
        try:
            piece = read(_PIECE, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as exc:
            if time.monotonic() >= deadline:
                raise Overdue() from None
            raise requests.exceptions.ReadTimeout(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise Overdue() from None
            raise requests.exceptions.ConnectionError(exc) from None
        if not piece:
            return b"".join(pieces)
        size += len(piece)
        if size > max_bytes:
            raise TooLarge(f"more than {max_bytes:,} bytes")
        pieces.append(piece)
        if time.monotonic() > deadline:
            raise Overdue()


def is_connect_failure(exc: BaseException) -> bool:
    """Whether a requests error means the host could not be reached at all (refused, no route, no DNS)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        stack += [getattr(item, "reason", None), item.__cause__, item.__context__]
        stack += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
    return False
