"""Keeping other web sites out of the local server, and the security headers on every answer.

``bilipop serve`` has no login: it is meant for the browser of the person who started it. Two kinds of pages
could still reach it from that browser:

- DNS rebinding: a page of ``attacker.test`` whose name later resolves to 127.0.0.1 talks to the server as its
  own origin and reads the answers. Its requests carry ``Host: attacker.test``, so only the names of this server
  are accepted (:func:`allowed_hosts`); anything else is a 421.
- Cross-site requests: any page may POST a form to 127.0.0.1 without asking (no CORS preflight); it cannot read
  the answer but makes the server decode files and burn CPU. An API request whose ``Origin`` is not the server's
  own, or whose ``Sec-Fetch-Site`` says another site sent it, is a 403. API posts must also carry the header
  ``X-Bilipop`` (the page sends it; scripts add ``-H "X-Bilipop: 1"``): a page of another origin can only send a
  custom header after a CORS preflight, which this server never grants.
"""

from __future__ import annotations

import ipaddress
import json
import socket

from starlette.types import ASGIApp, Receive, Scope, Send

#: The header every POST to the API must carry (any non-empty value); the page's script sends ``X-Bilipop: 1``.
CLIENT_HEADER = "X-Bilipop"
#: The page loads nothing from elsewhere, runs no inline script, and user text can only ever be text.
CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
#: On every answer: the page's own, the API's, static files, 404s and errors alike.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def allowed_hosts(host: str) -> frozenset[str]:
    """The host names (no port) that requests may name in ``Host`` when the server listens on ``host``.

    Always the loopback names; also ``host`` itself when it is a name or address of its own; bound to every
    interface (0.0.0.0 or ::), also this machine's host name. IP addresses in ``Host`` are handled by
    :func:`host_allowed` (an address cannot be rebound).
    """
    names = {*LOOPBACK_NAMES, host.strip("[]").lower()} - {*_WILDCARDS}
    if host in _WILDCARDS:
        names.add(socket.gethostname().lower())
    return frozenset(names)


def split_host(value: str) -> str:
    """The name part of a ``Host`` header value, lower case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(value: str, allowed: frozenset[str], *, any_address: bool) -> bool:
    """True when ``Host: value`` names this server: an allowed name, or (``any_address``) an IP address."""
    name = split_host(value)
    if name in allowed:
        return True
    if not any_address:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _json(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


class SiteGuard:
    """Refuse requests for other host names (all paths), and cross-site API requests (see the module's text)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1") -> None:
        self.app = app
        self.allowed = allowed_hosts(host)
        self.any_address = host in _WILDCARDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal:
            await _json(*refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if not host_allowed(host, self.allowed, any_address=self.any_address):
            shown = json.dumps(host[:80])
            return 421, (f"this server does not answer for the host name {shown}; open it as "
                         "http://127.0.0.1:PORT (or the name given to --host)")
        if not scope["path"].startswith("/api/"):
            return None
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
            return 403, "requests from other web sites are refused; use the page this server serves"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "requests from other web sites are refused; use the page this server serves"
        if scope["method"] == "POST" and not headers.get(CLIENT_HEADER.lower(), "").strip():
            return 403, (f"API posts must carry the header {CLIENT_HEADER} (curl -H '{CLIENT_HEADER}: 1'); "
                         "it keeps other web sites from posting to this server")
        return None


class SecurityHeaders:
    """Add SECURITY_HEADERS to every answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
