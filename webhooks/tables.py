"""The outbox tables: endpoints, events, one delivery per (event, endpoint), attempts."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

# Its own MetaData keeps this package free of the service's; the service's migrations create
# both (see ems_connector/persistence/migrations/env.py).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)
SERIAL = BigInteger().with_variant(Integer, "sqlite")
NULLABLE_JSON = JSON(none_as_null=True)

endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("seq", SERIAL, Identity(), primary_key=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("publisher_id", BigInteger, nullable=False, index=True),
    Column("url", String(2048), nullable=False),
    Column("description", String(255), nullable=True),
    Column("topics", JSON, nullable=False),
    # Cleeng's `filters: {paymentMethodId}`: only events of that payment method
    Column("payment_method_id", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(255), nullable=True),
    Column("secret", String(100), nullable=False),
    # during 24 h after a rotation deliveries are signed with both secrets
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_until", BigInteger, nullable=True),
    # Cleeng's `verification.options.sharedSecret`: signs instead of `secret` when set
    Column("shared_secret", String(255), nullable=True),
    Column("max_attempts", Integer, nullable=True),
    # "api" for /webhook_endpoints, "subscription" for PUT /webhook_subscriptions/{topic}
    Column("origin", String(16), nullable=False),
    Column("failing_since", Float, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

events = Table(
    "webhook_events",
    metadata,
    # `seq` is commit order on SQLite's single writer: deliveries follow it
    Column("seq", SERIAL, Identity(), primary_key=True),
    Column("id", String(40), nullable=False, unique=True),  # the `webhook-id`
    Column("publisher_id", BigInteger, nullable=False),
    Column("topic", String(64), nullable=False),
    Column("subscription_id", BigInteger, nullable=True),
    Column("subscription_version", Integer, nullable=True),
    Column("payment_id", BigInteger, nullable=True),
    Column("payment_method_id", BigInteger, nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", SERIAL, Identity(), primary_key=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("event_seq", BigInteger, nullable=False),
    Column("endpoint_id", String(36), nullable=False),
    Column("publisher_id", BigInteger, nullable=False),
    # one subscription's events reach one endpoint in order: a delivery waits while an
    # earlier one with the same key is pending
    Column("ordering_key", String(40), nullable=False),
    Column("subscription_id", BigInteger, nullable=True),
    Column("subscription_version", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_attempt_at", Float, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(512), nullable=True),
    Column("delivered_at", Float, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_order", "endpoint_id", "ordering_key", "status", "event_seq"),
    # the dispatcher walks one endpoint's due deliveries, longest due first, up to a limit
    Index("ix_webhook_deliveries_pick", "endpoint_id", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription", "publisher_id", "subscription_id"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "seq"),
    sqlite_autoincrement=True,
)

attempts = Table(
    "webhook_attempts",
    metadata,
    Column("seq", SERIAL, Identity(), primary_key=True),
    Column("delivery_id", String(36), nullable=False, index=True),
    Column("attempted_at", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("error", String(512), nullable=True),
    Column("response_excerpt", String(1024), nullable=True),
    sqlite_autoincrement=True,
)
