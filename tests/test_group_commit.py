"""The SQLite write path: units of work share a transaction, each on its own savepoint."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ems_connector.errors import Unavailable
from ems_connector.persistence.database import Database

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/g.db", max_queued_writes=4)
    async with database.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    yield database
    await database.dispose()


def committed(tmp_path: Path) -> set[str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(tmp_path / "g.db") as other:
        return {k for (k,) in other.execute("SELECT k FROM t")}


async def insert(db: Database, key: str, *, fail: bool = False) -> None:
    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": key})
        if fail:
            raise ValueError("refused")


async def test_a_unit_is_committed_when_its_caller_resumes(db: Database, tmp_path: Path) -> None:
    await insert(db, "a")
    assert committed(tmp_path) == {"a"}


async def test_a_refused_unit_leaves_its_neighbours_in_the_batch_alone(
    db: Database, tmp_path: Path
) -> None:
    outcomes = await asyncio.gather(
        *(insert(db, f"k{i}", fail=i % 3 == 0) for i in range(4)), return_exceptions=True
    )
    assert [isinstance(o, ValueError) for o in outcomes] == [True, False, False, True]
    assert committed(tmp_path) == {"k1", "k2"}


async def test_many_concurrent_units_all_commit(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/g.db")
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    await asyncio.gather(*(insert(db, f"k{i}") for i in range(300)))
    await db.dispose()
    assert committed(tmp_path) == {f"k{i}" for i in range(300)}


async def test_a_full_write_queue_answers_503_and_recovers(db: Database, tmp_path: Path) -> None:
    release = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES ('slow')"))
            await release.wait()

    holder = asyncio.create_task(slow())
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(insert(db, f"q{i}")) for i in range(4)]
    await asyncio.sleep(0.05)
    assert db.queued_writes == 4
    with pytest.raises(Unavailable) as refused:
        await insert(db, "over")
    assert refused.value.retry_after >= 1
    release.set()
    await asyncio.gather(holder, *queued)
    await insert(db, "after")  # the queue drained: writes are accepted again
    assert committed(tmp_path) == {"slow", "q0", "q1", "q2", "q3", "after"}


async def test_an_outer_transaction_commits_only_when_asked(db: Database, tmp_path: Path) -> None:
    async with db.outer_transaction() as outer:
        await insert(db, "dropped")
    async with db.outer_transaction() as outer:
        await insert(db, "kept")
        outer.commit_on_exit()
    assert committed(tmp_path) == {"kept"}
