"""One request to the simulated site: the refusal modes and drawn faults first, then the API's answer (``routes``),
a cover or avatar (``images``), robots.txt or the home page with its cookie."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from bilipop.sim import faults as modes
from bilipop.sim import images, payloads, routes

if TYPE_CHECKING:
    from bilipop.sim.server import SimHTTPServer, SimServer

log = logging.getLogger("bilipop.sim")

BLOCK_PAGE = (
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>出错啦! - bilibili.com</title></head>"
    "<body><div class=\"error-text\">请求被拦截 (412)</div></body></html>"
)
SLOW_SECONDS = 0.3
_COVER = re.compile(r"/bfs/archive/([0-9a-f]{40})\.(jpg|png|webp)(?:@(.*))?")
_FACE = re.compile(r"/bfs/face/([0-9a-f]{40})\.jpg(?:@(.*))?")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: separate small writes meet delayed ACKs and cost ~40 ms a reply.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "Tengine"
    sys_version = ""
    server: SimHTTPServer

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
