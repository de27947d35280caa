"""A local stand-in of Bilibili as it answered in 2026: the recorded endpoints, the WBI and anti-bot checks, the
2026 block signals and other faults (docs/reference.md, "The Bilibili web API as bilipop uses it").

Everything (API, robots.txt, the cookie page, covers) is served from one origin on 127.0.0.1, so a crawler pointed
at ``base_url`` exercises the same code it would use against the real site. Tests can take over replies with
``tamper`` (rewrite a JSON body) and ``intercept`` (answer a request themselves) to play a hostile server.
"""

from __future__ import annotations

import logging
import random
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bilipop.crawl import wbi
from bilipop.errors import InputError
from bilipop.sim import faults as modes
from bilipop.sim import images
from bilipop.sim.faults import FaultConfig
from bilipop.sim.handler import Handler
from bilipop.sim.world import World

log = logging.getLogger("bilipop.sim")

ROBOTS = {"allow": "User-agent: *\nDisallow:\n", "disallow": "User-agent: *\nDisallow: /\n"}


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: SimServer, port: int) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)

    def process_request(self, request, client_address):  # noqa: ANN001 (socketserver's signature)
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # noqa: ANN001
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # noqa: ANN001
        # A client that hangs up mid-answer (a crawler stopping, a refused redirect) is normal traffic, not a failure:
        # its traceback would land in the crawler's own output when both share a process.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, error)
            return
        # A bug in a handler must not print tracebacks into the crawler's test output; log it instead.
        log.exception("simulated server failed on a request from %s", client_address)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise hold their threads after stop().
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SimServer:
    """Serve a generated :class:`World` over real HTTP on 127.0.0.1 (see the module doc and the README).

    Args:
        videos, seed: the world's size and seed.
        faults: faults to inject (none by default).
        robots: "allow", "disallow" (like api.bilibili.com in 2026) or the text of a robots.txt.
        rate_limit: API requests/s above which HTTP 412 is answered; overrides ``faults.rate_limit_412``.
        port: TCP port, 0 for any free one.

    Raises:
        InputError: on an unusable argument.
    """

    def __init__(self, videos: int = 500, seed: int = 1, faults: FaultConfig | None = None,
                 robots: str = "allow", rate_limit: float | None = None, port: int = 0) -> None:
        faults = faults or FaultConfig()
        if not isinstance(faults, FaultConfig):
            raise InputError("faults must be a FaultConfig, e.g. FaultConfig(drop=0.1) or FaultConfig.all(0.1).")
        if not isinstance(robots, str) or not robots.strip():
            raise InputError('robots must be "allow", "disallow" or the text of a robots.txt.')
        if rate_limit is not None and not rate_limit > 0:
            raise InputError(f"rate_limit must be a positive number of requests/s or None, got {rate_limit!r}.")
        if not isinstance(port, int) or not 0 <= port < 65536:
            raise InputError(f"port must be between 0 and 65535 (0: any free port), got {port!r}.")
        self.world = World(videos, seed, invisible=faults.invisible)
        self.faults = faults
        self.robots_txt = ROBOTS.get(robots, robots)
        self.rate_limit = rate_limit if rate_limit is not None else faults.rate_limit_412
        self.port = port
        self.requests: list[tuple[float, str, str, dict[str, str]]] = []
        #: The headers of each request in ``requests`` (lower-case names), in the same order.
        self.request_headers: list[dict[str, str]] = []
        #: ``tamper(path, query, body) -> body``: rewrites each JSON reply (tests play a hostile server with it).
        self.tamper: Callable[[str, dict, dict], dict] | None = None
        #: ``intercept(handler, path, query) -> bool``: answers a request itself when it returns True.
        self.intercept: Callable[[BaseHTTPRequestHandler, str, dict], bool] | None = None
        self._visitors = 0
        self.images = images.ByteCache()
        self.covers = {v.cover: v for v in self.world.videos}
        self.faces = {u.face for u in self.world.uploaders.values()}
        self.lock = threading.Lock()
        self._fault_rng = random.Random(f"faults-{seed}")
        self._api_times: deque[float] = deque()
        self.keys = modes.KeySchedule(seed, faults.key_rotation_s)
        self.mixin = wbi.mixin_key(self.keys.img_key, self.keys.sub_key)
        #: Videos whose ``view``/``view/detail`` is redirected to another host (``faults.redirect``).
        self.redirected = modes.redirected_videos([v.bvid for v in self.world.videos if v.visible],
                                                  faults.redirect, seed)
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> SimServer:
        """Serve in a background thread (idempotent); ``base_url`` is valid from now on."""
        if self._httpd is not None:
            return self
        self._httpd = SimHTTPServer(self, self.port)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="bilipop-sim", daemon=True
        )
        self._thread.start()
        log.info("simulated Bilibili serving %d videos at %s", self.world.size, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The origin to give the crawler as ``--api-base``, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    # -- control ---------------------------------------------------------------------------------------------
    def truth(self) -> dict:
        """The ground truth of the world as the crawler should find it (see the contract in the README)."""
        with self.lock:
            return self.world.truth(self.base_url)

    def rotate_keys(self) -> None:
        """Switch to new WBI keys; signatures made with the old ones are refused from now on."""
        with self.lock:
            self._use_keys(self.keys.generation + 1)

    def keys_on_schedule(self) -> None:
        """Rotate the keys if ``faults.key_rotation_s`` says they are due (called before each API request)."""
        with self.lock:
            self._use_keys(self.keys.due())

    @property
    def img_key(self) -> str:
        return self.keys.img_key

    @property
    def sub_key(self) -> str:
        return self.keys.sub_key

    def bump_counters(self, seed: int) -> None:
        """Grow every visible video's counters, to test a refreshing crawl."""
        with self.lock:
            self.world.bump_counters(seed)

    def _use_keys(self, generation: int) -> None:
        if self.keys.set(generation):
            self.mixin = wbi.mixin_key(self.keys.img_key, self.keys.sub_key)

    # -- per-request decisions -------------------------------------------------------------------------------
    def record(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append((time.monotonic(), method, path, query))
            self.request_headers.append(headers)

    def next_visitor(self) -> int:
        """A new anonymous visitor number for ``finger/spi``'s buvid cookies (called under the lock)."""
        self._visitors += 1
        return self._visitors * 7919 + self.world.seed

    def draw_faults(self) -> dict[str, bool | float]:
        """One draw per fault kind, in a fixed order, so a seed gives a reproducible fault sequence.

        ``"pick"`` is a uniform number for choosing between a fault's variants (500 or 503, -799 or -412, ...).
        """
        f = self.faults
        with self.lock:
            drawn: dict[str, bool | float] = {
                name: self._fault_rng.random() < getattr(f, name)
                for name in modes.REQUEST_FAULTS
            }
            drawn["pick"] = self._fault_rng.random()
            return drawn

    def over_rate(self) -> bool:
        """Count this API request and say whether the recent rate is above the limit.

        The window is at least a second and long enough to hold three requests at the limit, so a client at
        the limit with a little jitter is not punished while one well above it is.
        """
        if self.rate_limit is None:
            return False
        window = max(1.0, 3.0 / self.rate_limit)
        now = time.monotonic()
        with self.lock:
            self._api_times.append(now)
            while self._api_times and self._api_times[0] <= now - window:
                self._api_times.popleft()
            return len(self._api_times) > self.rate_limit * window + 1e-9
