"""The web UI at ``/ui``: the single-page app built from ``ui/`` (``make ui``), shipped in the
package, so ``pip install`` users have it.

The files are public (the pages hold no data); every call the app makes goes to ``/api/v1`` with
the API key a person gives it, under the same scopes as any other caller. Served with a content
security policy that lets a page load only this origin's files and talk only to this origin.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

UI_DIR = Path(__file__).parent / "ui"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_routes(app: FastAPI) -> None:
    """``GET /ui`` (to ``/ui/``) and ``GET /ui/{path}``: the app's files (``/ui/`` is
    ``index.html``; the app's pages are addressed by the URL's hash, so no other path is a page)."""
    files = StaticFiles(directory=UI_DIR, html=True, check_dir=False)

    @app.api_route("/ui", methods=["GET", "HEAD"], include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.api_route("/ui/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def ui_file(path: str, request: Request) -> Response:
        parts = PurePosixPath(path).parts
        if ".." in parts:  # StaticFiles refuses what leaves the folder; this keeps headers honest too
            raise HTTPException(404)
        response = await files.get_response(path or ".", request.scope)
        response.headers.update(SECURITY_HEADERS)
        # Hashed asset names change with their content; index.html names the current ones.
        hashed = bool(parts) and parts[0] == "assets"
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        return response
