"""One RocksDB database per owned partition, and its write transaction.

Keys are bytes with a one-letter prefix naming what they hold (see ``keys``).
Every write goes through a ``StoreTransaction``: it reads its own writes, is
mirrored to the changelog inside the Kafka transaction, and reaches RocksDB
only after Kafka has committed, in one ``WriteBatch`` together with the
changelog offset it corresponds to.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from rocksdict import Options, Rdict, ReadOptions, WriteBatch

from ledgerflow.engine.state import keys

CHANGELOG_OFFSET_KEY = b"m/changelog_offset"


def store_path(data_dir: Path, changelog_topic: str, partition: int) -> Path:
    """Folder of a partition's store; named by the changelog topic it mirrors, so a node
    whose data folder is reused for another deployment (prefix) never mistakes another
    changelog's checkpoint for its own."""
    return data_dir / changelog_topic / f"partition-{partition}"


class PartitionStore:
    """RocksDB for one partition; raw bytes in, raw bytes out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def moved_to(self) -> str | None:
        """The prefix ``ledgerflow reshard`` moved this partition's deployment to, if it did."""
        raw = self.get(keys.MOVED_TO)
        return raw.decode() if raw is not None else None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys starting with ``prefix``, in order (keys are UTF-8, which never holds 0xFF)."""
        return self.scan_range(prefix, prefix + b"\xff")

    def scan_range(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys from ``start`` (included) to ``stop`` (excluded), in order.

        Lazy: RocksDB reads a key only when the caller asks for it, so a caller that
        stops after ``n`` keys has read about ``n`` (pages of a history, of a listing).
        The bound also stops RocksDB itself at ``stop`` instead of stepping over the
        deleted keys that may lie beyond the last live one.
        """
        bounds = ReadOptions()
        bounds.set_iterate_upper_bound(stop)
        for key, value in self._db.items(from_key=start, read_opt=bounds):
            assert isinstance(key, bytes)  # raw mode
            yield key, value

    def scan_range_backwards(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys from ``start`` (included) to ``stop`` (excluded), greatest first; lazy."""
        bounds = ReadOptions()
        bounds.set_iterate_lower_bound(start)
        bounds.set_iterate_upper_bound(stop)
        for key, value in self._db.items(backwards=True, from_key=stop, read_opt=bounds):
            assert isinstance(key, bytes)  # raw mode
            if key < start:
                return
            if key < stop:
                yield key, value

    def last(self, prefix: bytes) -> bytes | None:
        """The greatest key starting with ``prefix`` (one seek), or None when there is none."""
        for key in self._db.keys(backwards=True, from_key=prefix + b"\xff"):
            assert isinstance(key, bytes)  # raw mode
            return key if key.startswith(prefix) else None
        return None

    def changelog_offset(self) -> int | None:
        """Offset of the last changelog record applied here, or None for a fresh store."""
        raw = self.get(CHANGELOG_OFFSET_KEY)
        return int(raw) if raw is not None else None

    def write(self, changes: dict[bytes, bytes | None], changelog_offset: int | None) -> None:
        """Apply writes (None deletes) and record the changelog offset, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if changelog_offset is not None:
            batch.put(CHANGELOG_OFFSET_KEY, str(changelog_offset).encode())
        self._db.write(batch)

    def compact(self) -> None:
        """Flush the memtable and compact every key range (a benchmark measures the files after)."""
        self._db.flush(wait=True)
        self._db.compact_range(None, None)

    def size_bytes(self) -> int:
        value = self._db.property_int_value("rocksdb.estimate-live-data-size")
        return int(value or 0)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def wipe(path: Path) -> None:
        """Delete a store's files (used when no usable checkpoint survives)."""
        shutil.rmtree(path, ignore_errors=True)


class StoreTransaction:
    """Uncommitted writes to one partition's store; reads see them first."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.changes: dict[bytes, bytes | None] = {}
        self._undo: list[tuple[bytes, bool, bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.store.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._undo.append((key, key in self.changes, self.changes.get(key)))
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self._undo.append((key, key in self.changes, self.changes.get(key)))
        self.changes[key] = None

    def delete_prefix(self, prefix: bytes) -> None:
        """Delete every key starting with ``prefix``, committed or written in this transaction."""
        pending = [key for key, value in self.changes.items() if value is not None and key.startswith(prefix)]
        for key in [*(key for key, _ in self.store.scan(prefix)), *pending]:
            self.delete(key)

    def savepoint(self) -> int:
        """A mark to roll back to: the writes after it can be undone, the ones before kept."""
        return len(self._undo)

    def rollback(self, mark: int) -> None:
        while len(self._undo) > mark:
            key, had, previous = self._undo.pop()
            if had:
                self.changes[key] = previous
            else:
                del self.changes[key]

    def __bool__(self) -> bool:
        return bool(self.changes)


__all__ = ["PartitionStore", "StoreTransaction"]
