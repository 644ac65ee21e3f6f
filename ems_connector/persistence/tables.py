"""SQLAlchemy Core tables; the migrations in migrations/versions create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Ids start where the contract's ranges start: customers and subscriptions at 100000000.
FIRST_ID = 100_000_000
# Python None is stored as SQL NULL, not the JSON literal null, so `IS NULL` finds it.
NULLABLE_JSON = JSON(none_as_null=True)
# SQLite assigns ids only to a column declared exactly INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer, "sqlite")

publishers = Table(
    "publishers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False, index=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

offers = Table(
    "offers",
    metadata,
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), primary_key=True),
    Column("offer_id", String(16), primary_key=True),
    Column("title", String(255), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("type", String(16), nullable=False),
    Column("price_amount", Float, nullable=False),
    Column("price_currency", String(3), nullable=False),
    Column("period_unit", String(8), nullable=False),
    Column("period_amount", Integer, nullable=False),
    Column("free_trial", NULLABLE_JSON, nullable=True),
    Column("app_store_product_ids", JSON, nullable=False),
    Column("external_properties", JSON, nullable=False),
    Column("channels", JSON, nullable=False),
    Column("free", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("id", SERIAL, Identity(start=1), primary_key=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False, index=True),
    Column("source", String(64), nullable=False),
    Column("method_name", String(120), nullable=False),
    Column("payment_gateway", String(120), nullable=False),
    Column("is_external_payment", Boolean, nullable=False),
    Column("auto_terminate", Boolean, nullable=False),
    Column("grace_period_seconds", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

customers = Table(
    "customers",
    metadata,
    Column("id", SERIAL, Identity(start=FIRST_ID), primary_key=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False),
    Column("email", String(254), nullable=False),
    Column("email_normalized", String(254), nullable=False),
    Column("country", String(2), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("locale", String(16), nullable=True),
    Column("first_name", String(50), nullable=True),
    Column("last_name", String(50), nullable=True),
    Column("external_id", String(120), nullable=True),
    Column("external_data", NULLABLE_JSON, nullable=True),
    Column("reg_date", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("publisher_id", "email_normalized"),
    Index("ix_customers_publisher_external_id", "publisher_id", "external_id"),
    sqlite_autoincrement=True,
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", SERIAL, Identity(start=FIRST_ID), primary_key=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("offer_id", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("date_from", BigInteger, nullable=False),
    Column("date_to", BigInteger, nullable=False),
    Column("in_trial", Boolean, nullable=False),
    Column("external_id", String(120), nullable=False),
    Column("external_properties", JSON, nullable=False),
    Column("payment_method_id", BigInteger, ForeignKey("payment_methods.id"), nullable=False),
    Column("source", String(64), nullable=False),
    Column("latest_payment_external_id", String(255), nullable=True),
    Column("pending_switch_id", String(36), nullable=True),
    Column("replaced_by", NULLABLE_JSON, nullable=True),
    Column("originated_from", NULLABLE_JSON, nullable=True),
    Column("renewals_completed", Integer, nullable=False),
    Column("period_unit", String(8), nullable=False),
    Column("period_amount", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    # the dateTo whose arrival was noted (a ReadyFor webhook suppressed), so it is noted once
    Column("renewal_due_noted_for", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_subscriptions_publisher_customer", "publisher_id", "customer_id"),
    Index("ix_subscriptions_status_date_to", "status", "date_to"),
    Index("ix_subscriptions_publisher_payment_method", "publisher_id", "payment_method_id"),
    Index("ix_subscriptions_publisher_external_id", "publisher_id", "external_id"),
    # The contract's uniqueness rule, enforced by the database itself so that concurrent
    # creates (and several processes) cannot both win.
    Index(
        "uq_subscriptions_live_external_id",
        "publisher_id",
        "source",
        "external_id",
        unique=True,
        sqlite_where=text("status != 'terminated'"),
        postgresql_where=text("status != 'terminated'"),
    ),
    sqlite_autoincrement=True,
)

operations = Table(
    "operations",
    metadata,
    # `seq` orders the log and backs the cursor; `operation_id` is the public id.
    Column("seq", SERIAL, Identity(), primary_key=True),
    Column("operation_id", String(36), nullable=False, unique=True),
    Column("publisher_id", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("customer_id", BigInteger, nullable=True),
    Column("subscription_id", BigInteger, nullable=True),
    Column("switch_id", String(36), nullable=True),
    Column("payment_id", BigInteger, nullable=True),
    Column("actor", String(64), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_operations_publisher_seq", "publisher_id", "seq"),
    Index("ix_operations_publisher_subscription", "publisher_id", "subscription_id", "seq"),
    Index("ix_operations_publisher_customer", "publisher_id", "customer_id", "seq"),
    sqlite_autoincrement=True,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("publisher_id", BigInteger, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False, index=True),
)

payments = Table(
    "payments",
    metadata,
    Column("id", SERIAL, Identity(start=FIRST_ID), primary_key=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("offer_id", String(16), nullable=False),
    Column("payment_method_id", BigInteger, ForeignKey("payment_methods.id"), nullable=False),
    Column("subscription_id", BigInteger, nullable=True),
    # the switch an `offer-switch` payment is attached to
    Column("switch_id", String(36), nullable=True),
    Column("status", String(16), nullable=False),
    Column("payment_operation", String(32), nullable=False),
    Column("net_amount", Float, nullable=False),
    Column("tax_amount", Float, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("country", String(2), nullable=True),
    Column("external_payment_id", String(255), nullable=False),
    Column("rejected_reason", String(512), nullable=True),
    Column("refunded_reason", String(512), nullable=True),
    # the operation that consumed this payment ({"type", "subscriptionId"|"switchId"}), if any
    Column("used_by", NULLABLE_JSON, nullable=True),
    # hash of the creating request, so a same-body repeat returns the stored payment
    Column("request_fingerprint", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("publisher_id", "payment_method_id", "external_payment_id"),
    Index("ix_payments_publisher_customer", "publisher_id", "customer_id"),
    Index("ix_payments_publisher_subscription", "publisher_id", "subscription_id"),
    sqlite_autoincrement=True,
)

switches = Table(
    "switches",
    metadata,
    # `seq` orders switches as they were requested; `id` is the public UUID.
    Column("seq", SERIAL, Identity(), primary_key=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False),
    Column("subscription_id", BigInteger, ForeignKey("subscriptions.id"), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("from_offer_id", String(16), nullable=False),
    Column("to_offer_id", String(16), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_id", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_switches_publisher_customer", "publisher_id", "customer_id"),
    Index("ix_switches_publisher_subscription", "publisher_id", "subscription_id"),
    sqlite_autoincrement=True,
)

reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("publisher_id", BigInteger, ForeignKey("publishers.id"), nullable=False),
    Column("payment_method_id", BigInteger, ForeignKey("payment_methods.id"), nullable=False),
    Column("tolerance_seconds", BigInteger, nullable=False),
    Column("apply", Boolean, nullable=False),
    Column("terminate_missing", Boolean, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    # submitted items compared so far (they are taken in position order)
    Column("processed", Integer, nullable=False),
    # the missing_there pass walks subscriptions by id; the last one it reported
    Column("missing_after_id", BigInteger, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Index("ix_reconciliations_status", "status"),
)

reconciliation_items = Table(
    "reconciliation_items",
    metadata,
    Column("reconciliation_id", String(36), ForeignKey("reconciliations.id"), primary_key=True),
    # submitted items are 1..total in submission order; missing_there ones come after
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("external_id", String(120), nullable=False),
    # the connector's view (null for missing_there rows)
    Column("status", String(16), nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("offer_id", String(16), nullable=True),
    Column("customer_email", String(254), nullable=True),
    # the result, once compared
    Column("outcome", String(16), nullable=True),
    Column("subscription_id", BigInteger, nullable=True),
    Column("differences", NULLABLE_JSON, nullable=True),
    Column("action", NULLABLE_JSON, nullable=True),
    Index("ix_reconciliation_items_external_id", "reconciliation_id", "external_id"),
)
