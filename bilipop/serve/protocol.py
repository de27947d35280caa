"""Bounds on slow and huge request headers, which uvicorn's httptools protocol does not have.

uvicorn closes a kept-alive connection that stays idle, but a connection that sends its request headers one byte a
second, or never sends a byte, stays open for ever, and its headers may be megabytes long. On 127.0.0.1 only the
user's own programs can do that; with ``--host 0.0.0.0`` anyone on the network can hold a thousand connections.
:func:`guarded_protocol` makes the protocol class that ``bilipop serve`` runs: every request's headers must arrive
within ``header_timeout`` seconds of its first byte (of the connection, for the first request), else 408 and the
connection is closed; headers over ``max_header_bytes`` get 431 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

#: Seconds a client has to send a request's line and headers (a browser sends them in one packet).
HEADER_TIMEOUT = 10.0
#: The most bytes of request line and headers (a browser sends 1-2 kB; uvicorn's h11 limit is 16 kB).
MAX_HEADER_BYTES = 32 * 1024


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode("utf-8")
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "x-content-type-options: nosniff\r\nconnection: close\r\n\r\n").encode("ascii") + body


def guarded_protocol(header_timeout: float = HEADER_TIMEOUT, max_header_bytes: int = MAX_HEADER_BYTES) -> type:
    """uvicorn's httptools protocol with the two bounds above (needs httptools, part of the web extra)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own type
            super().connection_made(transport)
            self._head_bytes = 0
            self._head_timer: asyncio.TimerHandle | None = None
            self._start_head()

        def _start_head(self) -> None:
            self._in_head, self._head_bytes = True, 0
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._too_slow)

        def _end_head(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._end_head()
            if not self.transport.is_closing():
                self.transport.write(_raw_response(status, reason, message))
                self.transport.close()

        def _too_slow(self) -> None:
            self._head_timer = None
            if self._in_head:
                self._refuse(408, "Request Timeout",
                             f"the request headers did not arrive within {header_timeout:g} s")

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            counting = self._in_head
            if counting:
                self._head_bytes += len(data)
            super().data_received(data)  # may complete the headers (then the rest of ``data`` is body)
            if counting and self._in_head and self._head_bytes > max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large",
                             f"the request headers are over {max_header_bytes // 1024} kB")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._in_head:  # the next request on a kept-alive connection
                self._start_head()

        def on_headers_complete(self) -> None:
            self._end_head()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._end_head()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def protocol_options(header_timeout: float = HEADER_TIMEOUT,
                     max_header_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """uvicorn.Config options that bound request headers: the guarded protocol, or h11's size limit without it."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # h11 bounds the size itself; it has no header timeout
        return {"http": "h11", "h11_max_incomplete_event_size": max_header_bytes}
    return {"http": guarded_protocol(header_timeout, max_header_bytes)}
