"""The databases ``sql.query`` may use: named in the worker's settings, reached through
SQLAlchemy, with bound parameters only, a row cap and a time cap.

A node names a database (``"database": "orders"``), never a URL, so credentials and hosts stay
in the worker's settings (``LEDGERFLOW_SQL_DATABASES``). The query's parameters are bound by the
driver (``:name`` placeholders), never formatted into the SQL. A query runs in a transaction that
is rolled back unless the node asks to ``commit``. At most ``max_rows`` rows are fetched (one more
is read to say ``truncated``); a query past its time is cancelled by the database
(``statement_timeout`` in PostgreSQL, a progress handler in SQLite; other dialects: the
connection's own timeout, if its URL sets one).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ledgerflow.dag.node_inputs import SqlQuery
from ledgerflow.errors import ApplicationError
from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.settings import BuiltinSettings, env_name

BUILTIN = "sql.query"
SQLITE_STEPS = 10_000
"""SQLite virtual-machine steps between two looks at the clock."""


class SqlSandbox:
    def __init__(self, settings: BuiltinSettings) -> None:
        self.urls = dict(settings.sql_databases)
        self.max_rows = settings.sql_max_rows
        self.timeout = settings.sql_timeout
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        self._deadline = threading.local()

    def query(self, args: SqlQuery) -> dict[str, Any]:
        engine = self._engine(args.database)
        max_rows = min(args.max_rows or self.max_rows, self.max_rows)
        seconds = min(args.timeout or self.timeout, self.timeout)
        self._deadline.at = time.monotonic() + seconds
        try:
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
                result = connection.execute(text(args.query), args.parameters)
                columns = list(result.keys()) if result.returns_rows else []
                fetched = result.mappings().fetchmany(max_rows + 1) if result.returns_rows else []
                rows = [dict(row) for row in fetched]
                changed = None if result.returns_rows else result.rowcount
                if args.commit:
                    connection.commit()
                else:
                    connection.rollback()
        except OperationalError as exc:
            if time.monotonic() >= self._deadline.at or "timeout" in str(exc.orig).lower():
                raise ApplicationError(
                    f"sql.query on {args.database!r} ran past {seconds:g} s and was cancelled",
                    type="SqlTimeout",
                    non_retryable=True,
                ) from None
            raise ApplicationError(f"sql.query on {args.database!r}: {exc.orig}", type="SqlError") from None
        except SQLAlchemyError as exc:
            message = str(getattr(exc, "orig", None) or exc).splitlines()[0][:2000]
            raise ApplicationError(
                f"sql.query on {args.database!r}: {message}", type="SqlError", non_retryable=True
            ) from None
        finally:
            self._deadline.at = None
        truncated = len(rows) > max_rows
        shown = to_jsonable_python(rows[:max_rows], fallback=str)
        return {
            "rows": shown,
            "items": shown,
            "columns": columns,
            "truncated": truncated,
            "rowcount": changed,
        }

    def _engine(self, name: str) -> Engine:
        url = self.urls.get(name)
        if url is None:
            known = ", ".join(sorted(self.urls)) or "none"
            raise Refused(
                BUILTIN, f"no database named {name!r} (known: {known}; setting {env_name('sql_databases')})"
            )
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = create_engine(url, pool_pre_ping=True)
                if engine.dialect.name == "sqlite":
                    event.listen(engine, "connect", self._sqlite_deadline)
                self._engines[name] = engine
        return engine

    def _sqlite_deadline(self, dbapi_connection: Any, _record: Any) -> None:
        """Interrupt a statement on this connection once its query's deadline has passed."""

        def past_deadline() -> int:
            at = getattr(self._deadline, "at", None)
            return 1 if at is not None and time.monotonic() >= at else 0

        dbapi_connection.set_progress_handler(past_deadline, SQLITE_STEPS)
