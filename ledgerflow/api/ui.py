"""The web UI at ``/ui``: the single-page app built from ``ui/`` (``make ui``), shipped in the
package, so ``pip install`` users have it.

The files are public (the pages hold no data); every call the app makes goes to ``/api/v1`` with
the API key a person gives it, under the same scopes as any other caller. Served with a content
security policy that lets a page load only this origin's files and talk only to this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

UI_DIR = Path(__file__).parent / "ui"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_routes(app: FastAPI) -> None:
    """``GET /ui`` (to ``/ui/``) and ``GET /ui/{path}``: the app's files, ``index.html`` for the rest."""
    files = StaticFiles(directory=UI_DIR, html=True, check_dir=False)

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/{path:path}", include_in_schema=False)
    async def ui_file(path: str, request: Request) -> Response:
        response = await files.get_response(path or ".", request.scope)
        response.headers.update(SECURITY_HEADERS)
        # Hashed asset names change with their content; index.html names the current ones.
        hashed = path.startswith("assets/")
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        return response
