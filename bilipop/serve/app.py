"""The ASGI app of ``bilipop serve``: the page (static files, no CDN) and the JSON API over one loaded run.

Every answer of the API is built by the functions ``predict --json`` prints (``Prediction.to_json``,
``ranking_json``), so both always carry the same fields; the server only swaps its temporary file paths for what
the client can use (the uploaded file's name, a heatmap as a ``data:`` URL). Predictions run in a pool of worker
threads of their own, and at most MAX_EXPLAINING explanations at once, so the page and /api/model (served from
Starlette's threads) answer while predictions run; the model is shared and only read. guard.py keeps other web
sites out and puts the security headers on every answer.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bilipop.errors import BilipopError, InputError
from bilipop.models.run import LoadedRun
from bilipop.prediction.predict import predict_one, rank_candidates, ranking_json
from bilipop.serve.guard import SECURITY_HEADERS, SecurityHeaders, SiteGuard
from bilipop.serve.model_info import model_info
from bilipop.serve.uploads import MAX_BODY_BYTES, MAX_CANDIDATES, Upload, UploadError, make_upload

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: Explanations (65 forward passes and a drawing each) running at once; the others wait without a thread.
MAX_EXPLAINING = 2
#: Threads that run predictions, rankings and explanations (never the threads that answer the page and
#: /api/model): two more than MAX_EXPLAINING, so a plain prediction never waits behind explanations.
PREDICT_WORKERS = MAX_EXPLAINING + 2
__all__ = ["SECURITY_HEADERS", "create_app"]
_TRUE = ("1", "true", "yes", "on")


@dataclass
class SharedRun(LoadedRun):
    """A LoadedRun that several request threads may use at once.

    The forward pass only reads the weights (eval mode, no autograd) and is safe from many threads. A Hugging
    Face fast tokenizer rewrites its padding and truncation settings during a call whenever they differ from the
    previous call's, and another thread inside it then fails ("Already borrowed"); bilipop's calls all use the same
    settings today, but the lock keeps that from mattering.
    """

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def of(cls, run: LoadedRun) -> SharedRun:
        return cls(**{f.name: getattr(run, f.name) for f in fields(LoadedRun)})

    def tokenize(self, titles: list[str], offsets: bool = False):
        with self.lock:
            return super().tokenize(titles, offsets)


class LimitBody:
    """Refuse a request body over ``limit`` bytes (413) without reading more of it than that."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request is over {self.limit // 2**20} MB; send at most {MAX_CANDIDATES} covers of 10 MB"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await _error(message, 413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.limit:
                    raise UploadError(message, status=413)
            return msg

        await self.app(scope, limited, send)


class ServerTiming:
    """Add ``Server-Timing: app;dur=<ms>`` (request received to answer ready) to every answer, so that a client
    can tell the server's own time from the network's (benchmarks/bench_serve.py reports both)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - start) * 1000:.2f}".encode("ascii")
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", took)]}
            await send(message)

        await self.app(scope, receive, timed)


def _error(message: str, status: int) -> JSONResponse:
    # The headers here too: a 500 is sent by Starlette's outermost middleware, outside SecurityHeaders.
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def _form(request: Request):
    """The request's form, to use as ``async with``: uploads spooled to disk are closed (deleted) at its end.

    One more file and field than allowed, so that "5 covers" gets bilipop's message rather than the parser's.
    """
    return request.form(max_files=MAX_CANDIDATES + 1, max_fields=MAX_CANDIDATES + 2)


async def _upload(form: FormData, *, single: bool) -> Upload:
    covers = []
    for item in form.getlist("cover"):
        if not isinstance(item, UploadFile):
            raise UploadError("cover must be a file upload (multipart/form-data, e.g. curl -F cover=@a.jpg)")
        covers.append((item.filename, await item.read()))
    titles = []
    for item in form.getlist("title"):
        if not isinstance(item, str):
            raise UploadError("title must be a text field, not a file (curl -F 'title=...')")
        titles.append(item)
    return make_upload(covers, titles, single=single)


def _predict(run: SharedRun, upload: Upload, explain: bool) -> dict[str, Any]:
    try:
        paths = upload.save()
        result = predict_one(run, paths[0], upload.titles[0], explain=explain).to_json()
        heatmap = (result.get("explanation") or {}).get("heatmap")
        if heatmap:  # a file in the temporary folder: hand the PNG itself to the client
            data = base64.b64encode(Path(heatmap).read_bytes()).decode("ascii")
            result["explanation"]["heatmap"] = f"data:image/png;base64,{data}"
        return result
    except InputError as exc:
        raise UploadError(upload.public_message(str(exc)), getattr(exc, "status", 400)) from None
    finally:
        upload.close()


def _rank(run: SharedRun, upload: Upload) -> dict[str, Any]:
    try:
        paths = upload.save()
        result = ranking_json(rank_candidates(run, paths, upload.titles))
        for candidate in result["candidates"] if isinstance(result, dict) else result:
            candidate["cover"] = upload.client_name(candidate["cover"])
        return result
    except InputError as exc:
        raise UploadError(upload.public_message(str(exc)), getattr(exc, "status", 400)) from None
    finally:
        upload.close()


def create_app(run: LoadedRun, host: str = "127.0.0.1") -> Starlette:
    """The app serving ``run``: ``/`` (the page), ``/static/*``, ``/api/predict``, ``/api/rank``, ``/api/model``.

    ``host`` is the address the server listens on: requests naming another host are refused (guard.py).
    """
    shared = run if isinstance(run, SharedRun) else SharedRun.of(run)
    pool = ThreadPoolExecutor(PREDICT_WORKERS, thread_name_prefix="bilipop-predict")
    # An asyncio semaphore belongs to one event loop: one per loop (uvicorn runs one; a test client one each).
    explaining: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    async def in_pool(func, *args):  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(func, *args))

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def api_model(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(model_info, shared.path, shared.config))

    async def api_predict(request: Request) -> Response:
        async with _form(request) as form:
            explain = str(form.get("explain", "")).lower() in _TRUE
            upload = await _upload(form, single=True)
        if not explain:
            return JSONResponse(await in_pool(_predict, shared, upload, False))
        loop = asyncio.get_running_loop()
        if loop not in explaining:
            explaining[loop] = asyncio.Semaphore(MAX_EXPLAINING)
        async with explaining[loop]:
            return JSONResponse(await in_pool(_predict, shared, upload, True))

    async def api_rank(request: Request) -> Response:
        async with _form(request) as form:
            upload = await _upload(form, single=False)
        return JSONResponse(await in_pool(_rank, shared, upload))

    async def upload_error(request: Request, exc: Exception) -> Response:
        return _error(str(exc), getattr(exc, "status", 400))

    async def http_error(request: Request, exc: Exception) -> Response:
        return _error(str(getattr(exc, "detail", exc)), getattr(exc, "status_code", 400))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("request %s %s failed", request.method, request.url.path)
        what = str(exc) if isinstance(exc, BilipopError) else type(exc).__name__
        return _error(f"internal error ({what}); the server log has the details", 500)

    routes = [
        Route("/", page),
        Route("/api/model", api_model, methods=["GET"]),
        Route("/api/predict", api_predict, methods=["POST"]),
        Route("/api/rank", api_rank, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {InputError: upload_error, HTTPException: http_error, Exception: internal_error}
    middleware = [Middleware(SecurityHeaders), Middleware(SiteGuard, host=host), Middleware(ServerTiming),
                  Middleware(LimitBody)]
    return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)
