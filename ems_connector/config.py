"""Settings of the service, read once from EMS_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import msgspec


class ConfigError(ValueError):
    """A configuration variable has a value the service cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = "sqlite+aiosqlite:///./var/ems.db"
    host: str = "127.0.0.1"
    port: int = 8000
    test_mode: bool = False
    max_body_bytes: int = 256 * 1024
    max_reconciliation_bytes: int = 64 * 1024 * 1024
    idempotency_ttl_seconds: int = 24 * 3600
    sqlite_busy_timeout_ms: int = 10_000
    read_pool_size: int = 8
    dispatcher: str = "inline"
    access_cache_customers: int = 1_000_000
    delivery_lease_seconds: int = 60


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1, 0, true, false, yes, no, on, off")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected 0 or a positive integer")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("expected a port number between 1 and 65535")
    return value


def _database_url(raw: str) -> str:
    if raw.startswith("sqlite+aiosqlite:///"):
        return raw
    if raw.startswith("postgresql+asyncpg://"):
        return raw
    if raw.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + raw.split("://", 1)[1]
    raise ValueError(
        "expected sqlite+aiosqlite:///path or postgresql+asyncpg://user@host:port/database"
    )


def _dispatcher(raw: str) -> str:
    if raw not in {"inline", "off"}:
        raise ValueError("expected inline or off")
    return raw


def _idempotency_ttl(raw: str) -> int:
    value = int(raw)
    if value < 24 * 3600:
        raise ValueError("keys are kept at least 24 hours: expected 86400 or more")
    return value


# variable -> (field name, parser, description used by the README table)
VARIABLES: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "EMS_DATABASE_URL": (
        "database_url",
        _database_url,
        "`sqlite+aiosqlite:///path` of the SQLite database (WAL mode), or "
        "`postgresql+asyncpg://user@host:port/database`",
    ),
    "EMS_HOST": ("host", str, "address `ems-connector serve` and `demo` listen on"),
    "EMS_PORT": ("port", _port, "port `ems-connector serve` and `demo` listen on"),
    "EMS_TEST_MODE": (
        "test_mode",
        _parse_bool,
        "`1` enables the movable test clock at `/3.1/test/clock`; never in production",
    ),
    "EMS_MAX_BODY_BYTES": (
        "max_body_bytes",
        _positive_int,
        "largest request body accepted; larger bodies get 400 `BODY_TOO_LARGE`",
    ),
    "EMS_MAX_RECONCILIATION_BYTES": (
        "max_reconciliation_bytes",
        _positive_int,
        "largest body `POST /3.1/reconciliations` accepts (a store's whole view: 100,000 "
        "items are about 15 MB)",
    ),
    "EMS_IDEMPOTENCY_TTL_SECONDS": (
        "idempotency_ttl_seconds",
        _idempotency_ttl,
        "how long an `Idempotency-Key` and its stored response are kept (at least 86400)",
    ),
    "EMS_SQLITE_BUSY_TIMEOUT_MS": (
        "sqlite_busy_timeout_ms",
        _positive_int,
        "how long SQLite waits for another process's write lock before answering 503",
    ),
    "EMS_DISPATCHER": (
        "dispatcher",
        _dispatcher,
        "`inline` delivers webhooks from the API process; `off` leaves it to "
        "`ems-connector dispatch`",
    ),
    "EMS_DELIVERY_LEASE_SECONDS": (
        "delivery_lease_seconds",
        _positive_int,
        "how long a dispatcher holds the deliveries it claimed; a dispatcher that dies has "
        "them taken over after this (keep it above the 10 s delivery timeout)",
    ),
    "EMS_READ_POOL_SIZE": (
        "read_pool_size",
        _positive_int,
        "connections kept open for concurrent reads",
    ),
    "EMS_ACCESS_CACHE_CUSTOMERS": (
        "access_cache_customers",
        _non_negative_int,
        "customers whose entitlements the channel access check keeps in memory, loaded at "
        "start (about 100 bytes each); `0` reads the database on every check",
    ),
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; every bad variable is named in the error."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, (field, parse, _) in VARIABLES.items():
        raw = env.get(name)
        if raw is None:
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            problems.append(f"{name}={raw!r}: {exc}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return Settings(**values)
