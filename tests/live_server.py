"""Runs `ems-connector serve` as a real subprocess on a seeded temp database, for live tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from ems_connector.clock import Clock
from ems_connector.demo import seed
from ems_connector.persistence.database import Database
from ems_connector.persistence.migrate import upgrade
from ems_connector.services.container import Services

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    api_key: str
    publisher_id: int
    method_ids: list[int]
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Publisher-Token": self.api_key}

    @property
    def apple_method_id(self) -> int:
        return self.method_ids[0]

    def client(self) -> httpx.AsyncClient:
        """A client authenticated as the demo publisher; it ignores proxy settings."""
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=30.0, trust_env=False
        )


class ServerDidNotStart(RuntimeError):
    """The server exited or stayed silent during start-up; the message carries its log."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def seed_database(database_url: str) -> tuple[int, str, list[int]]:
    """Migrate the database and create the demo publisher; returns (id, api key, methods)."""
    db = Database(database_url)
    try:
        await upgrade(db.write_engine)
        return await seed(Services(db, Clock()))
    finally:
        await db.dispose()


async def _wait_until_healthy(process: asyncio.subprocess.Process, base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise ServerDidNotStart(f"ems-connector serve exited with {process.returncode}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)  # polling start-up only, never to order requests
    raise ServerDidNotStart(
        f"ems-connector serve did not answer /health in {START_TIMEOUT_SECONDS}s"
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL to its whole process group if it does not exit in time."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)


def _with_log(error: ServerDidNotStart, log_path: Path) -> ServerDidNotStart:
    return ServerDidNotStart(f"{error}:\n{log_path.read_text(errors='replace')}")


@contextlib.asynccontextmanager
async def run_live_server(
    directory: Path, env: Mapping[str, str] | None = None, database_url: str | None = None
) -> AsyncIterator[LiveServer]:
    """Seed a database, serve it on 127.0.0.1, stop the server on exit.

    The database is `database_url` (e.g. the `settings` fixture's, SQLite or PostgreSQL), or
    else a SQLite file in `directory`, which holds the server's log either way. `env` adds to
    or overrides the server's environment (e.g. `EMS_DISPATCHER=off`). A second server started
    on the same database shares it (with its own key).
    """
    if database_url is None:
        database_url = f"sqlite+aiosqlite:///{directory}/ems.db"
    publisher_id, api_key, method_ids = await seed_database(database_url)
    port = free_port()
    log_path = directory / f"server-{port}.log"
    server_env = {
        **os.environ,
        "EMS_DATABASE_URL": database_url,
        "EMS_HOST": "127.0.0.1",
        "EMS_PORT": str(port),
        "EMS_TEST_MODE": "1",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ems_connector",
            "serve",
            cwd=REPO_ROOT,
            env=server_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            # its own process group, so a stuck server and its worker can be killed together
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        try:
            await _wait_until_healthy(process, base_url)
        except ServerDidNotStart as error:
            raise _with_log(error, log_path) from None
        yield LiveServer(base_url, api_key, publisher_id, method_ids, log_path)
    finally:
        await _stop(process)


async def send_together(
    count: int, send: Callable[[], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Send `count` requests at once: none leaves before all of them are ready to."""
    barrier = asyncio.Barrier(count)

    async def one() -> httpx.Response:
        await barrier.wait()
        return await send()

    return await asyncio.gather(*(one() for _ in range(count)))
