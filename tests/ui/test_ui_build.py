"""The web UI's build that ships in the package (ledgerflow/api/ui) is the build of ui/ as it
stands: a change to ui/ without ``make ui`` fails here, before anyone is served an old page."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"
BUILD = ROOT / "ledgerflow" / "api" / "ui"
SOURCES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "src"]


def files(path: Path) -> list[Path]:
    """As ui/scripts/build-info.mjs walks them: each folder's names sorted, depth first."""
    if path.is_dir():
        return [f for name in sorted(os.listdir(path)) for f in files(path / name)]
    return [path]


def test_the_shipped_build_was_made_from_the_sources_as_they_are() -> None:
    digest = hashlib.sha256()
    for source in SOURCES:
        for file in files(UI / source):
            digest.update(file.relative_to(UI).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
            digest.update(b"\0")
    recorded = json.loads((BUILD / "build-info.json").read_text())["sources"]
    assert recorded == digest.hexdigest(), "ui/ changed since the shipped build: run `make ui`"


def test_the_page_and_its_chunks_name_only_files_that_ship() -> None:
    page = (BUILD / "index.html").read_text()
    named = re.findall(r'(?:src|href)="/ui/([^"]+)"', page)
    assert named, page
    for script in (BUILD / "assets").glob("*.js"):  # chunks loaded later (the editor, a graph)
        named += re.findall(r"assets/[\w.-]+\.(?:js|css)", script.read_text())
    assert any("Editor" in name for name in named), "the editor's chunk is not referenced"
    for name in named:
        assert (BUILD / name).is_file(), name
