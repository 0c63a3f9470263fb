"""Files that hold secrets or credential lists: created readable and writable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, append: bool = False) -> None:
    """Write ``text`` to ``path`` (a new file is mode 0600); without ``append`` the file must not
    exist yet, so a secret is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
