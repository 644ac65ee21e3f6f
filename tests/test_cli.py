"""The `ems-connector` command: publishers create, migrate, openapi, configuration errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from ems_connector.clock import Clock
from ems_connector.persistence.database import Database
from ems_connector.services.container import Services


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ems_connector", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_publishers_create_prints_a_working_key_stored_hashed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    result = _run(["publishers", "create", "acme"], {"EMS_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    key = result.stdout.split("API key (shown once, stored hashed): ")[1].strip()
    assert key.startswith("ems_")

    async def check() -> int | None:
        db = Database(url)
        try:
            async with db.read() as conn:
                stored = (await conn.execute(text("SELECT key_hash FROM api_keys"))).scalars()
                assert key not in list(stored)
            return await Services(db, Clock()).publishers.authenticate(key)
        finally:
            await db.dispose()

    assert asyncio.run(check()) is not None


def test_bad_configuration_is_named_and_exits_2(tmp_path: Path) -> None:
    result = _run(["migrate"], {"EMS_PORT": "not-a-port"})
    assert result.returncode == 2
    assert "EMS_PORT" in result.stderr


def test_openapi_command_writes_the_checked_in_document(tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    result = _run(
        ["openapi", str(out)], {"EMS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/o.db"}
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (Path(__file__).parent.parent / "openapi.yaml").read_bytes()
