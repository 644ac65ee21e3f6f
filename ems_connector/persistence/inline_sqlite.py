"""An async SQLAlchemy dialect that runs sqlite3 on the event loop's own thread.

aiosqlite sends every statement to a thread and back: several thread hops per statement,
about 5 ms of CPU per lifecycle write. A statement on a page in memory takes microseconds, so
here statements run inline and only what can wait on the disk or on another process leaves
the loop: `BEGIN IMMEDIATE` (it may wait out another writer's lock) and `COMMIT` (fsync).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.util.concurrency import await_

DRIVER = "inline"


async def _nothing() -> None:
    return None


async def finish_in_thread(fn: Any, *args: Any) -> Any:
    """`fn(*args)` on a worker thread, and return only once it has returned, even when
    cancelled meanwhile (the cancellation is raised after). A thread cannot be stopped: a
    caller that went on at once would roll back or close the connection under it, and sqlite3
    crashes the process when a connection is closed while another thread is inside it."""
    job = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(job)
        except asyncio.CancelledError as exc:
            if job.done():
                raise
            cancelled = exc
            continue
        if cancelled is not None:
            raise cancelled
        return result


class _Cursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """Rows are already in memory; nothing to release before the caller reads them."""


class InlineConnection(AdaptedConnection):
    """A sqlite3 connection behind SQLAlchemy's async facade."""

    __slots__ = ()

    _connection: Any

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def cursor(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        # SQLAlchemy's async engine insists each call awaited something; a finished
        # coroutine satisfies it without leaving the loop's thread.
        await_(_nothing())
        return self._connection.cursor(_Cursor)

    def begin_immediate(self) -> None:
        """Take the write lock; waiting for another process's writer happens off the loop."""
        await_(finish_in_thread(self._connection.execute, "BEGIN IMMEDIATE"))

    def commit(self) -> None:
        # sqlite3 releases the GIL while it syncs the WAL, so the loop serves reads meanwhile.
        if self._connection.in_transaction:
            await_(finish_in_thread(self._connection.commit))

    def rollback(self) -> None:
        self._connection.rollback()

    def close(self) -> None:
        self._connection.close()

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._connection.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level  # type: ignore[no-any-return]

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value


class _InlineDBAPI:
    """The sqlite3 module, with `connect` answering adapted connections."""

    paramstyle = "qmark"

    def __getattr__(self, name: str) -> Any:
        return getattr(sqlite3, name)

    def connect(self, *args: Any, **kwargs: Any) -> InlineConnection:
        # COMMIT and BEGIN run on a worker thread, every other statement on the loop's.
        kwargs["check_same_thread"] = False
        return InlineConnection(sqlite3.connect(*args, **kwargs))


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    driver = DRIVER
    is_async = True
    has_terminate = False
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _InlineDBAPI()

    @classmethod
    def get_pool_class(cls, url: Any) -> Any:
        from sqlalchemy import pool

        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool


def register() -> None:
    """Make `sqlite+inline://` URLs name this dialect."""
    from sqlalchemy.dialects import registry

    registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")


def inline_url(url: str) -> str:
    """The same SQLite database, reached through this dialect."""
    scheme, rest = url.split("://", 1)
    return f"sqlite+{DRIVER}://{rest}" if scheme.startswith("sqlite") else url
