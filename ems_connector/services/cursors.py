"""Opaque page cursors: a kind prefix and a sequence number, in URL-safe base64."""

from __future__ import annotations

import base64
import binascii

from ems_connector.errors import BadRequest

_MAX_DIGITS = 18  # beyond any sequence of ours, and within SQL BIGINT


def encode(kind: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode().rstrip("=")


def decode(kind: str, cursor: str) -> int:
    """The sequence number in a cursor of `kind`; any other string is 400 INVALID_CURSOR."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, digits = raw.partition(":")
        if prefix != kind or not digits.isdigit() or len(digits) > _MAX_DIGITS:
            raise ValueError(raw)
        return int(digits)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest(
            "INVALID_CURSOR",
            "cursor is not one this service returned; pass the `next` value unchanged",
            {"fields": [{"field": "cursor", "message": "unrecognised cursor"}]},
        ) from exc
