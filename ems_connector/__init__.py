"""Cleeng-compatible connector service for externally-managed subscriptions (EMS)."""

__version__ = "0.1.0"
