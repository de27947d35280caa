"""One GET with a whole-request deadline and a cap on the reply's size, no redirects followed and no cookie jar.

``requests`` only bounds each socket read: a server trickling a byte every few seconds holds a request for ever.
Here a watchdog shuts down the socket of the request in flight once its deadline passes, whatever phase it is in
(through a proxy, whose connections ``requests`` makes itself, the deadline is only checked when the reply ends or
a read times out), and the body is read in pieces so that an oversized reply is dropped as soon as it passes the
cap. Cookies are never stored from replies; the caller adds its own Cookie header only for the host they belong to.
"""

from __future__ import annotations

import heapq
import http.cookiejar
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_IN_FLIGHT: dict[int, urllib3.connection.HTTPConnection] = {}


class _Tracked:
    """Registers the connection that carries the calling thread's request, so the watchdog can find it."""

    def request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - urllib3's own signature
        _IN_FLIGHT[threading.get_ident()] = self
        return super().request(*args, **kwargs)


class _HTTPConnection(_Tracked, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


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
    """A session that follows no redirects by itself, keeps no cookies and can be cut off by a deadline.

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
    adapter = _Adapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _cut(ident: int, fired: threading.Event) -> None:
    fired.set()
    conn = _IN_FLIGHT.get(ident)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Watchdog:
    """One daemon thread that cuts each request whose deadline passes (a thread per request, as
    ``threading.Timer`` would start, cost about a millisecond each)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, int, threading.Event]] = []  # (deadline, order, thread id, fired)
        self._pending: set[int] = set()  # orders still in flight (finished ones leave the heap lazily)
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, ident: int, deadline_s: float, fired: threading.Event) -> int:
        with self._wake:
            if self._thread is None or not self._thread.is_alive():  # started first: if it fails, nothing is left
                thread = threading.Thread(target=self._run, name="bilipop-deadlines", daemon=True)
                thread.start()
                self._thread = thread
            order = next(self._order)
            heapq.heappush(self._due, (time.monotonic() + deadline_s, order, ident, fired))
            self._pending.add(order)
            self._wake.notify()
            return order

    def release(self, order: int) -> None:
        with self._wake:
            self._pending.discard(order)

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._due and self._due[0][1] not in self._pending:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                deadline, order, ident, fired = self._due[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._due)
                self._pending.discard(order)
                _cut(ident, fired)


_WATCHDOG = _Watchdog()


def _fresh_watchdog_after_fork() -> None:
    # A forked child has no watchdog thread, and the parent's may have held the lock at the fork: start clean.
    global _WATCHDOG
    _WATCHDOG = _Watchdog()
    _IN_FLIGHT.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_watchdog_after_fork)


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
    """GET ``url`` within ``deadline_s`` seconds in all, reading at most ``max_bytes`` of body.

    Raises:
        Overdue: the deadline passed first.
        TooLarge: the body (or its announced length) is over ``max_bytes``.
        requests.RequestException: as ``requests`` raises it (connection refused, reset...).
    """
    try:
        proxies = _proxies(session, url)
    except ValueError as exc:  # NO_PROXY makes requests read the port: a bad one raises a plain ValueError
        raise requests.exceptions.InvalidURL(f"{url[:80]!r}: {exc}") from None
    ident = threading.get_ident()
    fired = threading.Event()
    order = _WATCHDOG.watch(ident, deadline_s, fired)
    started = time.monotonic()
    try:
        with session.get(url, headers=headers, timeout=(connect_timeout_s, read_timeout_s), stream=True,
                         allow_redirects=False, proxies=proxies) as resp:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise TooLarge(f"announced {int(length):,} bytes")
            chunks, size = [], 0
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"more than {max_bytes:,} bytes")
                chunks.append(chunk)
            if fired.is_set():
                raise Overdue()
            return Reply(resp.status_code, resp.headers, b"".join(chunks))
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        if fired.is_set() or time.monotonic() - started >= deadline_s:
            raise Overdue() from None
        raise
    finally:
        _WATCHDOG.release(order)
        _IN_FLIGHT.pop(ident, None)


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
