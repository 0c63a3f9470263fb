"""``sql.query`` against real databases: SQLite (Python's own driver, a file) and a PostgreSQL
server this test starts on loopback from Debian's packages (scripts/install-postgres.sh).
Parameters are bound, never formatted into the SQL; rows and time are capped; nothing is
committed unless the node asks; a database the worker does not name is refused."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.errors import ApplicationError
from ledgerflow.executors.sandbox.refusal import Refused
from tests.executors_unit.builtin_helpers import call

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of this test's own on a free loopback port; its SQLAlchemy URL."""
    found = subprocess.run([str(ROOT / "scripts/install-postgres.sh")], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    bin_dir = Path(found.stdout.strip())
    # a folder of its own outside pytest's (which only root may enter): the server refuses to run
    # as root, so as root it runs as the postgres user, who owns the folder
    folder = Path(tempfile.mkdtemp(prefix="ledgerflow-pg-"))
    data = folder / "data"
    port = free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = lambda *args: subprocess.run([*as_postgres, *args], check=True, capture_output=True)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "ledgerflow", "--auth=trust", "-E", "UTF8")
    log = data.parent / "server.log"
    run(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "60",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {data.parent}",
        "start",
    )
    try:
        yield f"postgresql+psycopg://ledgerflow@127.0.0.1:{port}/postgres"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


async def sql(url: str, input: dict[str, Any], **settings: Any) -> Any:
    return await call("sql.query", {"database": "db", **input}, sql_databases={"db": url}, **settings)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_queries_with_bound_parameters_caps_and_commits(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(database)
    await sql(
        url,
        {
            "query": "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER)",
            "commit": True,
        },
    )
    for i in range(1, 8):
        await sql(
            url,
            {
                "query": "INSERT INTO orders VALUES (:id, :customer, :total)",
                "parameters": {"id": i, "customer": f"c-{i % 2}", "total": i * 10},
                "commit": True,
            },
        )
    found = await sql(
        url,
        {"query": "SELECT id, total FROM orders WHERE customer = :c ORDER BY id", "parameters": {"c": "c-1"}},
    )
    assert found["columns"] == ["id", "total"] and found["items"] == found["rows"]
    assert found["rows"] == [
        {"id": 1, "total": 10},
        {"id": 3, "total": 30},
        {"id": 5, "total": 50},
        {"id": 7, "total": 70},
    ]
    assert not found["truncated"]

    # a hostile value stays a value: it is bound, never spliced into the SQL
    hostile = await sql(
        url,
        {
            "query": "SELECT count(*) AS n FROM orders WHERE customer = :c",
            "parameters": {"c": "x' OR '1'='1"},
        },
    )
    assert hostile["rows"] == [{"n": 0}]

    capped = await sql(url, {"query": "SELECT id FROM orders ORDER BY id", "max_rows": 3})
    assert [r["id"] for r in capped["rows"]] == [1, 2, 3] and capped["truncated"]
    worker_cap = await sql(url, {"query": "SELECT id FROM orders ORDER BY id"}, sql_max_rows=2)
    assert len(worker_cap["rows"]) == 2 and worker_cap["truncated"]

    # not committed unless asked: the delete is rolled back
    deleted = await sql(url, {"query": "DELETE FROM orders WHERE id > :id", "parameters": {"id": 2}})
    assert deleted["rowcount"] == 5
    assert (await sql(url, {"query": "SELECT count(*) AS n FROM orders"}))["rows"] == [{"n": 7}]

    with pytest.raises(ApplicationError, match=r"ran past 0\.5 s") as slow:
        query = (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000000) "
            "SELECT count(*) AS n FROM r"
        )
        await sql(url, {"query": query, "timeout": 0.5})
    assert slow.value.non_retryable
    with pytest.raises(ApplicationError, match="no_such_table") as bad:
        await sql(url, {"query": "SELECT * FROM no_such_table"})
    assert bad.value.type == "SqlError"


async def test_a_database_the_worker_does_not_name_is_refused(sqlite: str) -> None:
    with pytest.raises(Refused, match="no database named 'other'"):
        await call("sql.query", {"database": "other", "query": "SELECT 1"}, sql_databases={"db": sqlite})
    started = time.monotonic()
    with pytest.raises(Refused, match="known: none"):
        await call("sql.query", {"database": "db", "query": "SELECT 1"})
    assert time.monotonic() - started < 5
