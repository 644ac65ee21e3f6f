"""Engines and transactions: SQLite in WAL mode with one writer, or PostgreSQL via asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ems_connector.errors import Unavailable

_JSON_CODEC: dict[str, Any] = {
    "json_serializer": lambda value: msgspec.json.encode(value).decode(),
    "json_deserializer": msgspec.json.decode,
}

# Set while an outer transaction (the idempotency wrapper of a request) is open: services
# then run inside it on a savepoint, so their change and the stored response commit together.
_ambient: ContextVar[AsyncConnection | None] = ContextVar("ems_ambient_tx", default=None)

_STORAGE_TROUBLE = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "attempt to write a readonly database",
    "unable to open database file",
)


@contextlib.contextmanager
def _storage_errors_as_unavailable() -> Iterator[None]:
    """A locked, full, read-only or missing database is a 503 to retry, not a 500."""
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig if exc.orig is not None else exc).lower()
        if any(marker in text for marker in _STORAGE_TROUBLE):
            raise Unavailable("The database is busy or unavailable; retry shortly") from exc
        raise


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


class Database:
    """Read and write access; writes on SQLite go through one connection, one at a time."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000, read_pool_size: int = 8):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = create_async_engine(url, pool_size=1, max_overflow=0, **_JSON_CODEC)
            self.read_engine = create_async_engine(
                url, pool_size=read_pool_size, max_overflow=read_pool_size, **_JSON_CODEC
            )
            _configure_sqlite(self.write_engine, busy_timeout_ms, begin="BEGIN IMMEDIATE")
            _configure_sqlite(self.read_engine, busy_timeout_ms, begin="BEGIN")
        else:
            self.write_engine = create_async_engine(
                url, pool_size=10, max_overflow=10, **_JSON_CODEC
            )
            self.read_engine = self.write_engine
        # SQLite has a single writer: queueing writers here is cheaper than SQLITE_BUSY retries.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries; inside an open write it reads that write's own state."""
        ambient = _ambient.get()
        if ambient is not None:
            yield ambient
            return
        with _storage_errors_as_unavailable():
            async with self.read_engine.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One atomic write: all of it commits, or on any exception none of it."""
        ambient = _ambient.get()
        if ambient is not None:
            with _storage_errors_as_unavailable():
                async with ambient.begin_nested():
                    yield ambient
            return
        async with self._writer():
            with _storage_errors_as_unavailable():
                async with self.write_engine.begin() as conn:
                    yield conn

    @contextlib.asynccontextmanager
    async def outer_transaction(self) -> AsyncIterator[OuterTransaction]:
        """A transaction that every `transaction()` inside the block joins on a savepoint."""
        async with self._writer():
            with _storage_errors_as_unavailable():
                async with self.write_engine.connect() as conn:
                    await conn.begin()
                    outer = OuterTransaction(conn)
                    token = _ambient.set(conn)
                    try:
                        yield outer
                    finally:
                        _ambient.reset(token)
                    if outer.commit_requested:
                        await conn.commit()
                    else:
                        await conn.rollback()

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield


class OuterTransaction:
    """Handle on an outer transaction: it commits only when asked to."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.commit_requested = False

    def commit_on_exit(self) -> None:
        self.commit_requested = True


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (pysqlite's implicit BEGIN breaks savepoints).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged commit survives power loss, not just a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
