"""HTTP entry points: decode, call a service, encode; auth and idempotency."""
