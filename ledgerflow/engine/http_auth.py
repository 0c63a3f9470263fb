"""The engine node's HTTP authentication: the shared engine token on every route but the probes.

``/health`` and ``/ready`` (kubelet probes) and ``/metrics`` (the Prometheus scraper, which the
Helm chart's NetworkPolicy lets in by label) are open; they carry no workflow data. Every other
route (owner reads, queries, listings, partitions) needs ``Authorization: Bearer <token>``:
the gateway and the Client send it (``ledgerflow.engine_token``).
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})


class EngineTokenMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    def _valid(self, scope: Scope) -> bool:
        given = b""
        for key, value in scope.get("headers", ()):
            if key.lower() == b"authorization":
                given = bytes(value)
        return hmac.compare_digest(given, self.expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS or self._valid(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": "the engine token is required (Authorization: Bearer)"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="ledgerflow-engine"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
