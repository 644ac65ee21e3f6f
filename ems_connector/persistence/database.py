"""Engines and transactions: SQLite in WAL mode with one writer, or PostgreSQL via asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ems_connector.errors import Unavailable
from ems_connector.persistence import inline_sqlite

_JSON_CODEC: dict[str, Any] = {
    "json_serializer": lambda value: msgspec.json.encode(value).decode(),
    "json_deserializer": msgspec.json.decode,
}

# Set while an outer transaction (the idempotency wrapper of a request) is open: services
# then run inside it on a savepoint, so their change and the stored response commit together.
_ambient: ContextVar[AsyncConnection | None] = ContextVar("ems_ambient_tx", default=None)
# What to run once the outermost open transaction is durable (see `Database.after_commit`).
_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "ems_after_commit", default=None
)

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
    except (OperationalError, sqlite3.OperationalError) as exc:
        orig = exc.orig if isinstance(exc, OperationalError) else exc
        text = str(orig if orig is not None else exc).lower()
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
    """Read and write access. On SQLite, writes are units of work that one connection runs
    one after another inside a shared transaction (group commit), each on its own savepoint;
    a unit's caller resumes only once the transaction holding it is durable."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 10_000,
        read_pool_size: int = 8,
        max_queued_writes: int = 2_000,
        max_batch: int = 256,
    ):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._group: _GroupCommit | None = None
        if self.is_sqlite:
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            inline_sqlite.register()
            engine_url = inline_sqlite.inline_url(url)
            self.write_engine = create_async_engine(
                engine_url, pool_size=1, max_overflow=0, **_JSON_CODEC
            )
            self.read_engine = create_async_engine(
                engine_url, pool_size=read_pool_size, max_overflow=read_pool_size, **_JSON_CODEC
            )
            _configure_sqlite(self.write_engine, busy_timeout_ms, writer=True)
            _configure_sqlite(self.read_engine, busy_timeout_ms, writer=False)
            self._group = _GroupCommit(self.write_engine, max_queued_writes, max_batch)
        else:
            self.write_engine = create_async_engine(
                url, pool_size=10, max_overflow=10, **_JSON_CODEC
            )
            self.read_engine = self.write_engine

    async def dispose(self) -> None:
        if self._group is not None:
            await self._group.close()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()

    @property
    def queued_writes(self) -> int:
        """Units of work waiting for the write connection right now."""
        return 0 if self._group is None else len(self._group.waiting)

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

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction open in this context is durable: after the
        outermost commit (the batch's, the idempotency wrapper's), never before, and not at
        all if it rolls back. What others may see only after a change is acknowledged (a
        cache dropping the old state) belongs here."""
        callbacks = _after_commit.get()
        if callbacks is None:
            raise RuntimeError("after_commit needs an open transaction")
        callbacks.append(callback)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One atomic write: all of it commits, or on any exception none of it."""
        ambient = _ambient.get()
        if ambient is not None:
            with _storage_errors_as_unavailable():
                async with _savepoint(ambient) as savepoint:
                    yield ambient
                    savepoint.keep = True
            return
        callbacks: list[Callable[[], None]] = []
        hooks = _after_commit.set(callbacks)
        try:
            if self._group is None:
                with _storage_errors_as_unavailable():
                    async with self.write_engine.begin() as conn:
                        yield conn
            else:
                async with self._group.unit() as savepoint:
                    token = _ambient.set(savepoint.conn)
                    try:
                        yield savepoint.conn
                    finally:
                        _ambient.reset(token)
                    savepoint.keep = True
        finally:
            _after_commit.reset(hooks)
        _run(callbacks)

    @contextlib.asynccontextmanager
    async def outer_transaction(self) -> AsyncIterator[OuterTransaction]:
        """A transaction that every `transaction()` inside the block joins on a savepoint;
        it commits only if `commit_on_exit()` was called."""
        callbacks: list[Callable[[], None]] = []
        hooks = _after_commit.set(callbacks)
        try:
            if self._group is None:
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
            else:
                async with self._group.unit() as savepoint:
                    outer = OuterTransaction(savepoint.conn)
                    token = _ambient.set(savepoint.conn)
                    try:
                        yield outer
                    finally:
                        _ambient.reset(token)
                    savepoint.keep = outer.commit_requested
        finally:
            _after_commit.reset(hooks)
        if outer.commit_requested:
            _run(callbacks)


def _run(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class OuterTransaction:
    """Handle on an outer transaction: it commits only when asked to."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.commit_requested = False

    def commit_on_exit(self) -> None:
        self.commit_requested = True


class _Savepoint:
    """One unit's share of a batch: kept (released) or undone (rolled back to) at its end."""

    __slots__ = ("conn", "keep")

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.keep = False


_savepoint_names = itertools.count()


@contextlib.asynccontextmanager
async def _savepoint(conn: AsyncConnection) -> AsyncIterator[_Savepoint]:
    """A savepoint: released if the block sets `keep`, otherwise (or on an exception, if
    the transaction is still there) rolled back to."""
    savepoint = _Savepoint(conn)
    if conn.dialect.driver != inline_sqlite.DRIVER:
        nested = await conn.begin_nested()
        try:
            yield savepoint
        except BaseException:
            if nested.is_active:
                await nested.rollback()
            raise
        if savepoint.keep:
            await nested.commit()
        else:
            await nested.rollback()
        return
    # On SQLite straight on the driver: SQLAlchemy compiles a savepoint afresh each time.
    sync: Any = conn.sync_connection
    driver = sync.connection.dbapi_connection.driver_connection
    name = f"unit_{next(_savepoint_names)}"
    driver.execute(f"SAVEPOINT {name}")
    try:
        yield savepoint
    except BaseException:
        if driver.in_transaction:
            driver.execute(f"ROLLBACK TO {name}")
            driver.execute(f"RELEASE {name}")
        raise
    if not savepoint.keep:
        driver.execute(f"ROLLBACK TO {name}")
    driver.execute(f"RELEASE {name}")


class _Batch:
    """The open transaction that the units of work of many requests share."""

    __slots__ = ("broken", "durable", "units")

    def __init__(self) -> None:
        self.units = 0
        # SQLite rolled the whole transaction back (disk full, I/O error): nothing of this
        # batch may be acknowledged, and no further unit may join it
        self.broken = False
        self.durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # nobody may be waiting when a batch fails; don't warn about an unread exception
        self.durable.add_done_callback(_swallow)


def _swallow(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _GroupCommit:
    """SQLite's one writer, shared: units take turns on one connection, and the turn passes
    to the next unit without a commit in between until nobody waits (or the batch is full);
    then one COMMIT, one fsync, makes the whole batch durable."""

    def __init__(self, engine: AsyncEngine, max_queued: int, max_batch: int) -> None:
        self.engine = engine
        self.max_queued = max_queued
        self.max_batch = max_batch
        self.waiting: deque[asyncio.Future[None]] = deque()
        self._held = False  # a unit or a commit has the connection
        self._conn: AsyncConnection | None = None
        self._batch: _Batch | None = None
        self._committing: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # set while nobody holds the connection
        self._idle.set()

    async def close(self) -> None:
        """Close the write connection once nobody uses it: not while a unit or a commit holds
        it (perhaps inside a thread that cannot be stopped), nor while units wait for it."""
        while self._held or self.waiting:
            await self._idle.wait()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[_Savepoint]:
        await self._take_turn()
        batch: _Batch | None = None
        failure: BaseException | None = None
        try:
            with _storage_errors_as_unavailable():
                batch = await self._open_batch()
                assert self._conn is not None
                try:
                    async with _savepoint(self._conn) as savepoint:
                        yield savepoint
                except BaseException:
                    if not self._in_transaction():
                        batch.broken = True
                    raise
                batch.units += 1
        except BaseException as exc:
            failure = exc
        finally:
            self._pass_turn()
        if batch is not None:
            # Even a refused unit waits: its answer may rest on what earlier units of the
            # batch wrote, and that must be durable before anyone hears of it.
            try:
                await asyncio.shield(batch.durable)
            except Exception as exc:
                if isinstance(exc, Unavailable):
                    raise
                raise Unavailable("The database could not commit; retry shortly") from exc
        if failure is not None:
            raise failure

    async def _take_turn(self) -> None:
        if not self._held:
            self._held = True
            self._idle.clear()
            return
        if len(self.waiting) >= self.max_queued:
            raise Unavailable("Too many writes are queued; retry shortly")
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._pass_turn()  # the turn was handed to us as we were cancelled
            else:
                self.waiting.remove(turn)
            raise

    def _pass_turn(self) -> None:
        batch = self._batch
        if batch is None or (not batch.broken and batch.units < self.max_batch):
            while self.waiting:
                turn = self.waiting.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        if batch is not None:
            self._committing = asyncio.get_running_loop().create_task(self._commit(batch))
            return
        self._held = False
        self._idle.set()

    async def _open_batch(self) -> _Batch:
        if self._batch is not None:
            return self._batch
        if self._conn is None:
            self._conn = await self.engine.connect()
        try:
            await self._conn.begin()
        except BaseException:
            await self._discard_connection()
            raise
        self._batch = _Batch()
        return self._batch

    def _in_transaction(self) -> bool:
        assert self._conn is not None
        raw: Any = self._conn.sync_connection
        if raw is None:
            return False
        return bool(raw.connection.dbapi_connection.driver_connection.in_transaction)

    async def _commit(self, batch: _Batch) -> None:
        assert self._conn is not None
        try:
            if batch.broken or not self._in_transaction():
                raise Unavailable("The database rolled back a batch of writes; retry shortly")
            with _storage_errors_as_unavailable():
                await self._conn.commit()
        except BaseException as exc:
            lost = exc if isinstance(exc, Exception) else Unavailable("The service is stopping")
            batch.durable.set_exception(lost)
            await self._discard_connection()
        else:
            batch.durable.set_result(None)
        finally:
            self._batch = None
            self._pass_turn()

    async def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.rollback()
            with contextlib.suppress(Exception):
                await conn.close()


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int, *, writer: bool) -> None:
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
        dbapi_connection = conn.connection.dbapi_connection
        if writer:
            dbapi_connection.begin_immediate()
        else:
            dbapi_connection.driver_connection.execute("BEGIN")
