"""Settings from EMS_* variables: defaults, parsing, and a clear message per bad variable."""

from __future__ import annotations

import pytest

from ems_connector.config import ConfigError, Settings, load_settings


def test_defaults_without_variables() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./var/ems.db"
    assert settings.port == 8000 and settings.test_mode is False


def test_variables_are_parsed() -> None:
    settings = load_settings(
        {
            "EMS_PORT": "9001",
            "EMS_TEST_MODE": "true",
            "EMS_MAX_BODY_BYTES": "1024",
            "EMS_DATABASE_URL": "sqlite+aiosqlite:////tmp/x.db",
        }
    )
    assert (settings.port, settings.test_mode, settings.max_body_bytes) == (9001, True, 1024)
    assert settings.database_url == "sqlite+aiosqlite:////tmp/x.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMS_PORT", "eighty"),
        ("EMS_PORT", "70000"),
        ("EMS_TEST_MODE", "maybe"),
        ("EMS_MAX_BODY_BYTES", "0"),
        ("EMS_DATABASE_URL", "mysql://x"),
        ("EMS_DATABASE_URL", "postgresql+psycopg://u@localhost/ems"),
        ("EMS_IDEMPOTENCY_TTL_SECONDS", "3600"),
    ],
)
def test_each_bad_variable_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert name in str(caught.value) and repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql+asyncpg://u@localhost:5432/ems", "postgresql+asyncpg://u@localhost:5432/ems"),
        ("postgresql://u@localhost/ems", "postgresql+asyncpg://u@localhost/ems"),
        ("postgres://u:pw@db.internal/ems", "postgresql+asyncpg://u:pw@db.internal/ems"),
    ],
)
def test_postgresql_urls_are_taken_through_asyncpg(given: str, used: str) -> None:
    assert load_settings({"EMS_DATABASE_URL": given}).database_url == used


def test_all_bad_variables_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"EMS_PORT": "x", "EMS_READ_POOL_SIZE": "-1"})
    assert "EMS_PORT" in str(caught.value) and "EMS_READ_POOL_SIZE" in str(caught.value)
