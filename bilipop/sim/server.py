"""A local stand-in of Bilibili as it answered in 2026: the recorded endpoints, the WBI and anti-bot checks, the
2026 block signals and other faults (docs/reference.md, "The Bilibili web API as bilipop uses it").

Everything (API, robots.txt, the cookie page, covers) is served from one origin on 127.0.0.1, so a crawler pointed
at ``base_url`` exercises the same code it would use against the real site. Tests can take over replies with
``tamper`` (rewrite a JSON body) and ``intercept`` (answer a request themselves) to play a hostile server.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from bilipop.crawl import wbi
from bilipop.errors import InputError
from bilipop.sim import faults as modes
from bilipop.sim import images, payloads, routes
from bilipop.sim.faults import FaultConfig
from bilipop.sim.world import World

log = logging.getLogger("bilipop.sim")

ROBOTS = {"allow": "User-agent: *\nDisallow:\n", "disallow": "User-agent: *\nDisallow: /\n"}
BLOCK_PAGE = (
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>出错啦! - bilibili.com</title></head>"
    "<body><div class=\"error-text\">请求被拦截 (412)</div></body></html>"
)
SLOW_SECONDS = 0.3
_COVER = re.compile(r"/bfs/archive/([0-9a-f]{40})\.(jpg|png|webp)(?:@(.*))?")
_FACE = re.compile(r"/bfs/face/([0-9a-f]{40})\.jpg(?:@(.*))?")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: SimServer, port: int) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request, client_address):  # noqa: ANN001 (socketserver's signature)
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # noqa: ANN001
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # noqa: ANN001
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
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> SimServer:
        """Serve in a background thread (idempotent); ``base_url`` is valid from now on."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self, self.port)
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: separate small writes meet delayed ACKs and cost ~40 ms a reply.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "Tengine"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)

    # -- replies ---------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: dict) -> None:
        self._send(200, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/html; charset=utf-8")

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch --------------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        sim = self.server.sim
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        sim.record(self.command, path, query, {k.lower(): v for k, v in self.headers.items()})
        try:
            if sim.intercept is not None and sim.intercept(self, path, query):
                return
            if path.startswith("/x/"):
                self._api(sim, path, query)
            elif path.startswith("/bfs/"):
                self._image(sim, path)
            elif path == "/robots.txt":
                self._send(200, sim.robots_txt.encode(), "text/plain; charset=utf-8")
            elif path in ("/", "/index.html"):
                cookie = f"buvid3={str(uuid.uuid4()).upper()}infoc; Path=/; Max-Age=31536000"
                page = "<!DOCTYPE html><html><head><title>哔哩哔哩 (゜-゜)つロ 干杯~-bilibili</title></head></html>"
                self._send(200, page.encode(), "text/html; charset=utf-8", {"Set-Cookie": cookie})
            else:
                self._html(404, "<html><body>404 Not Found</body></html>")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _api(self, sim: SimServer, path: str, query: dict[str, str]) -> None:
        sim.keys_on_schedule()
        if self._refused(sim, path, query):
            return None
        faults = sim.draw_faults()
        if faults["drop"]:
            return self._drop()
        if sim.over_rate():
            return self._html(412, BLOCK_PAGE)
        if faults["server_error"]:
            status = 500 if faults["pick"] < 0.5 else 503
            return self._html(status, f"<html><body>{status} Server Error</body></html>")
        if faults["slow"]:
            time.sleep(SLOW_SECONDS)
        if faults["too_many"]:
            return self._send(429, b"<html><body>429 Too Many Requests</body></html>", "text/html; charset=utf-8",
                              {"Retry-After": str(sim.faults.retry_after_s)})
        if faults["json_block"]:
            return self._json(payloads.envelope(-799 if faults["pick"] < 0.5 else -412))
        seed = f"fault-{path}-{faults['pick']}"
        if faults["voucher"]:
            return self._reply(routes.voucher_reply(seed))
        if faults["risk_control"]:
            return self._reply(routes.risk_reply(seed))
        if faults["unauthorized"]:
            return self._json(payloads.envelope(-401))
        if faults["malformed_json"]:
            body = b'{"code":0,"message":"0","ttl":1,"data":{"list":[{"aid":'
            return self._send(200, body, "application/json; charset=utf-8")
        reply = routes.answer(sim, path, query, {k.lower(): v for k, v in self.headers.items()})
        reply.body = modes.emptied(path.rstrip("/"), reply.body, sim.faults)
        if sim.tamper is not None:
            reply.body = sim.tamper(path, query, reply.body)
        self._reply(reply)

    def _refused(self, sim: SimServer, path: str, query: dict[str, str]) -> bool:
        """The refusals a mode switches on (``faults``): answered before any drawn fault."""
        path = path.rstrip("/")
        if sim.faults.sec_challenge:
            cookie = modes.challenge_cookie(f"{path}?{query.get('wts')}")
            self._send(412, BLOCK_PAGE.encode(), "text/html; charset=utf-8", {"Set-Cookie": cookie})
            return True
        if path in modes.VIDEO_PATHS:
            if sim.faults.region_412:
                self._html(412, BLOCK_PAGE)
                return True
            bvid = query.get("bvid", "")
            if bvid in sim.redirected:
                self._send(302, b"", "text/html; charset=utf-8", {"Location": modes.redirect_target(bvid)})
                return True
        return False

    def _reply(self, reply: routes.Reply) -> None:
        body = json.dumps(reply.body, ensure_ascii=False).encode()
        self._send(200, body, "application/json; charset=utf-8", reply.headers)

    def _image(self, sim: SimServer, path: str) -> None:
        faults = sim.draw_faults()
        if faults["drop"]:
            return self._drop()
        if faults["server_error"]:
            return self._html(503, "<html><body>503 Service Unavailable</body></html>")
        if faults["slow"]:
            time.sleep(SLOW_SECONDS)
        try:
            found = _image_bytes(sim, path)
        except images.BadSuffix:
            return self._html(400, "<html><body>400 Bad Request</body></html>")
        if found is None:
            return self._html(404, "<html><body>404 Not Found</body></html>")
        body, content_type = found
        if faults["bad_image"]:
            body = body[: len(body) // 3] if faults["pick"] < 0.5 else random.Random(faults["pick"]).randbytes(2048)
        self._send(200, body, content_type, {"Cache-Control": "max-age=31536000"})


def _image_bytes(sim: SimServer, path: str) -> tuple[bytes, str] | None:
    cover, face = _COVER.fullmatch(path), _FACE.fullmatch(path)
    if cover and sim.covers.get(cover.group(1)) is not None and sim.covers[cover.group(1)].cover_ext == cover.group(2):
        video, suffix = sim.covers[cover.group(1)], cover.group(3)
        if suffix:
            # Drawn straight at the size asked for, not drawn full size, encoded, decoded and resized (~10x faster).
            width, height, quality, fmt = images.parse_suffix(suffix)
            key = f"{video.cover}@{suffix}"
            cached = sim.images.get(key)
            if cached is None:
                size = images.fitted_size(video.cover_width, video.cover_height, width, height)
                cached = images.encode(images.draw_cover(video, size), fmt, quality)
                sim.images.put(key, cached)
            return cached, images.FORMATS[fmt][1]
        key, draw, fmt = video.cover, lambda: images.draw_cover(video), video.cover_ext
    elif face and face.group(1) in sim.faces:
        suffix, key, fmt = face.group(2), face.group(1), "jpg"
        draw = lambda: images.draw_face(key)  # noqa: E731
    else:
        return None
    source = sim.images.get(key)
    if source is None:
        source = images.encode(draw(), fmt)
        sim.images.put(key, source)
    if not suffix:
        return source, images.FORMATS[fmt][1]
    variant_key = f"{key}@{suffix}"
    cached = sim.images.get(variant_key)
    if cached is None:
        cached = images.variant(source, suffix)[0]
        sim.images.put(variant_key, cached)
    return cached, images.FORMATS[images.parse_suffix(suffix)[3]][1]
