"""Outgoing subscription webhooks (CONTRACT §9): outbox, signing, dispatch and retries."""
