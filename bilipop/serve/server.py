"""Loading the model once and running the web app with uvicorn, in the foreground (``bilipop serve``) or in a
background thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bilipop.errors import BilipopError, InputError, ModelError

if TYPE_CHECKING:
    from bilipop.models.run import LoadedRun

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
WEB_EXTRA = 'pip install "bilipop[web]" (or pip install -e ".[web]" in a checkout)'


def require_web() -> None:
    """Raises BilipopError naming the extra to install when the web libraries are missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise BilipopError(f"bilipop serve needs the web extra ({exc.name} is missing): {WEB_EXTRA}") from None
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        try:
            import multipart  # noqa: F401
        except ImportError:
            raise BilipopError(f"bilipop serve needs python-multipart for uploads: {WEB_EXTRA}") from None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_served_run(model: str | os.PathLike[str] | None, device: str = "cpu",
                    quantize: str | None = None) -> LoadedRun:
    """The run to serve, resolved as ``predict`` resolves it, loaded once for every request.

    Raises:
        ModelError: no run folder given or found (the message says that ``bilipop demo`` makes one), or a
            damaged one.
    """
    from bilipop.models.run import load_run
    from bilipop.prediction.predict import MODEL_ENV, resolve_model
    from bilipop.serve.app import SharedRun

    try:
        path = resolve_model(model)
    except ModelError:
        raise ModelError(f"no model to serve: pass --model RUN or set ${MODEL_ENV}; `bilipop demo` makes one "
                         "(then bilipop serve --model bilipop-demo/runs/demo)") from None
    return SharedRun.of(load_run(path, device=device, quantize=quantize))


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port).

    Raises:
        InputError: the address is in use or cannot be listened on.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host} is not an address of this machine ({exc.strerror}); "
                         f"use {DEFAULT_HOST} or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)  # connections made before uvicorn starts wait in the backlog instead of being refused
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// address a browser on this machine opens for ``sock`` (0.0.0.0 shown as 127.0.0.1)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(run: LoadedRun, host: str, header_timeout: float | None = None):
    import uvicorn

    from bilipop.serve.app import create_app
    from bilipop.serve.protocol import HEADER_TIMEOUT, protocol_options

    # log_config=None: uvicorn's loggers go through the logging that bilipop's CLI set up (access lines with -v).
    # Request headers are bounded in time and size on every host (protocol.py); on 127.0.0.1 that costs nothing.
    config = uvicorn.Config(create_app(run, host=host), log_config=None, lifespan="off", timeout_graceful_shutdown=5,
                            **protocol_options(header_timeout or HEADER_TIMEOUT))
    return uvicorn.Server(config)


def serve(model: str | os.PathLike[str] | LoadedRun | None = None, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, device: str = "cpu", ready: Callable[[str], None] | None = None,
          quantize: str | None = None) -> None:
    """Load the model once and serve the page and the API until interrupted (Ctrl+C).

    Args:
        ready: called with the page's URL once the port is listening.

    Raises:
        BilipopError: the web extra is not installed.
        ModelError: no usable run folder.
        InputError: the host or port cannot be listened on.
    """
    require_web()
    run = model if hasattr(model, "logits") else load_served_run(model, device, quantize)
    server = _uvicorn_server(run, host)  # type: ignore[arg-type]  # hasattr(logits): a LoadedRun
    sock = bind(host, port)
    if ready is not None:
        ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def serving(run: LoadedRun, host: str = DEFAULT_HOST, port: int = 0, timeout: float = 30.0,
            header_timeout: float | None = None) -> Iterator[str]:
    """Serve ``run`` from a background thread for the duration of the block; yields the page's URL.

    ``header_timeout``: seconds a request's headers may take (protocol.py's HEADER_TIMEOUT when None).

    Raises:
        BilipopError: the server did not start within ``timeout`` seconds.
    """
    require_web()
    server = _uvicorn_server(run, host, header_timeout)
    sock = bind(host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="bilipop-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise BilipopError(f"the web server did not start within {timeout:g} s")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
