"""Files the file and csv built-ins may read and write: regular files inside configured roots.

A path is taken apart before anything is opened: it must be absolute, hold no ``..`` and lie
inside a root. It is then walked from the root one component at a time, each opened relative to
the folder before it with ``O_NOFOLLOW``, so no symlink is followed anywhere on the way, whatever
changes on disk between the check and the use (a link swapped in after a ``realpath`` check would
not be seen by such a check; here it makes the open fail). Symlinks are refused even when they
point inside a root: what they point at can change. The file itself must be a regular file with
one link (a hard link could be the other name of a file outside the roots), and no larger than
``file_max_bytes``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.settings import BuiltinSettings, env_name

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""Flags of every file open: never through a symlink, never blocking on a FIFO (it is refused
after the open, by its type)."""
NEW_FILE_MODE = 0o640


@dataclass(frozen=True)
class Root:
    """A folder files may be in, as configured and as the file system resolves it."""

    configured: PurePosixPath
    resolved: PurePosixPath

    @classmethod
    def of(cls, path: Path) -> Root:
        return cls(PurePosixPath(os.path.normpath(path)), PurePosixPath(os.path.realpath(path)))

    def relative(self, path: PurePosixPath) -> tuple[str, ...] | None:
        """The components of ``path`` below this root, or None when it is not inside it."""
        for spelling in (self.configured, self.resolved):
            if path.is_relative_to(spelling):
                return path.relative_to(spelling).parts
        return None


class FileSandbox:
    """Reads and writes regular files inside the worker's file roots, and nothing else."""

    def __init__(self, settings: BuiltinSettings) -> None:
        self.roots = tuple(Root.of(root) for root in settings.file_roots)
        self.max_bytes = settings.file_max_bytes

    def read(self, builtin: str, path: object) -> bytes:
        """The content of the file at ``path``, or ``Refused`` when the sandbox forbids it."""
        path, root, parts = self._locate(builtin, path)
        with _folder(builtin, root, parts[:-1]) as folder:
            self._check_existing(builtin, path, _lstat(parts[-1], folder), reading=True)
            fd = os.open(parts[-1], os.O_RDONLY | _FILE_FLAGS, dir_fd=folder)
            with os.fdopen(fd, "rb") as handle:
                self._check_existing(builtin, path, os.fstat(fd), reading=True)
                data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:  # it grew since the check
            raise self._too_large(builtin, path)
        return data

    def write(self, builtin: str, path: object, data: bytes) -> str:
        """Write ``data`` to the file at ``path`` (made if missing); ``Refused`` when the sandbox
        forbids it, before anything is created or changed. Returns the path written."""
        path, root, parts = self._locate(builtin, path)
        if len(data) > self.max_bytes:
            raise self._too_large(builtin, path)
        with _folder(builtin, root, parts[:-1]) as folder:
            existing = _lstat(parts[-1], folder)
            if existing is not None:
                self._check_existing(builtin, path, existing, reading=False)
            flags = os.O_WRONLY | os.O_CREAT | _FILE_FLAGS
            fd = os.open(parts[-1], flags, NEW_FILE_MODE, dir_fd=folder)
            with os.fdopen(fd, "wb") as handle:
                self._check_existing(builtin, path, os.fstat(fd), reading=False)
                os.ftruncate(fd, 0)
                handle.write(data)
        return path

    def remove(self, builtin: str, path: object) -> None:
        """Delete the regular file at ``path`` (as ``read`` would reach it), or ``Refused``."""
        path, root, parts = self._locate(builtin, path)
        with _folder(builtin, root, parts[:-1]) as folder:
            self._check_existing(builtin, path, _lstat(parts[-1], folder), reading=False)
            os.unlink(parts[-1], dir_fd=folder)

    def _locate(self, builtin: str, path: object) -> tuple[str, Root, tuple[str, ...]]:
        """``path``, the root it lies in and its components below it, or ``Refused``."""
        if not self.roots:
            raise Refused(builtin, f"no file roots are configured (set {env_name('file_roots')})")
        if not isinstance(path, str):
            raise Refused(builtin, "the input has no 'path' string")
        if "\0" in path:
            raise Refused(builtin, "the path holds a NUL character")
        pure = PurePosixPath(path)
        if not pure.is_absolute():
            raise Refused(builtin, f"path {path!r} is not absolute; {self._where()}")
        if ".." in pure.parts:
            raise Refused(builtin, f"path {path!r} holds '..'; {self._where()}")
        for root in self.roots:
            parts = root.relative(pure)
            if parts:
                return path, root, parts
            if parts is not None:
                raise Refused(builtin, f"path {path!r} is a file root itself, not a file in it")
        raise Refused(builtin, f"path {path!r} is outside the file roots; {self._where()}")

    def _check_existing(
        self, builtin: str, path: str, found: os.stat_result | None, *, reading: bool
    ) -> None:
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        if stat.S_ISLNK(found.st_mode):
            raise Refused(builtin, f"{path!r} is a symlink; symlinks are not followed")
        if not stat.S_ISREG(found.st_mode):
            raise Refused(builtin, f"{path!r} is not a regular file")
        if found.st_nlink > 1:
            raise Refused(builtin, f"{path!r} has {found.st_nlink} hard links; a file must have one")
        if reading and found.st_size > self.max_bytes:
            raise self._too_large(builtin, path)

    def _too_large(self, builtin: str, path: str) -> Refused:
        return Refused(
            builtin, f"{path!r} is over {self.max_bytes} bytes (setting {env_name('file_max_bytes')})"
        )

    def _where(self) -> str:
        roots = ", ".join(str(root.configured) for root in self.roots)
        return f"files must be inside {roots} (setting {env_name('file_roots')})"


@contextmanager
def _folder(builtin: str, root: Root, parts: tuple[str, ...]) -> Iterator[int]:
    """An open descriptor of the folder ``parts`` below ``root``, reached without following
    any symlink; ``Refused`` when one of them is a symlink or not a folder."""
    fd = os.open(root.resolved, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(builtin, f"{part!r} on the path is a symlink or not a folder") from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _lstat(name: str, folder: int) -> os.stat_result | None:
    """What ``name`` in ``folder`` is, itself (a symlink is not followed); None when missing."""
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
