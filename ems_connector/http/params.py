"""Path ids, If-Match and body decoding that answer the contract's 400 codes."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request
from litestar.params import HeaderParameter, PathParameter

from ems_connector.context import RequestContext
from ems_connector.errors import BadRequest, NotFound
from ems_connector.http.errors import fields_from_msgspec

T = TypeVar("T")

PathId = Annotated[str, PathParameter(description="Resource id; a malformed one is 400 INVALID_ID")]
IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description='Expected version as an ETag, e.g. "3"'),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Replays the stored response of an earlier request with the same key",
    ),
]

_OFFER_ID = re.compile(r"^[SPEAR][1-9]\d{8}_[A-Z]{2}$")
_INTEGER = re.compile(r"-?[0-9]+")
_MAX_ID_DIGITS = 18  # beyond any id of ours, and within SQL BIGINT


def _not_found(name: str, raw: str) -> NotFound:
    """The 404 the service answers for an id of this kind that names nothing."""
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Id")).lower()
    return NotFound(
        f"{words.replace(' ', '_').upper()}_NOT_FOUND",
        f"{words.capitalize()} with id: {raw} not found",
    )


def int_id(raw: str, name: str) -> int:
    """A path id that must be an integer: anything else is 400 INVALID_ID.

    An integer that cannot name anything (negative, or too long to store) is the 404 of a
    missing id, as the contract asks for ids "in range or not".
    """
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(
            "INVALID_ID",
            f"{name} must be a positive integer, got {raw!r}",
            {"fields": [{"field": name, "message": "must be a positive integer"}]},
        )
    if raw.startswith("-") or len(raw) > _MAX_ID_DIGITS:
        raise _not_found(name, raw)
    return int(raw)


def uuid_id(raw: str, name: str) -> str:
    """A path id that must be a UUID (switches): anything else is 400 INVALID_ID."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise BadRequest(
            "INVALID_ID",
            f"{name} must be a UUID, got {raw!r}",
            {"fields": [{"field": name, "message": "must be a UUID"}]},
        ) from None


def offer_id(raw: str) -> str:
    if not _OFFER_ID.match(raw):
        raise BadRequest(
            "INVALID_ID",
            f"offerId must look like S123456789_US, got {raw!r}",
            {
                "fields": [
                    {"field": "offerId", "message": "must match ^[SPEAR][1-9]\\d{8}_[A-Z]{2}$"}
                ]
            },
        )
    return raw


def if_match(value: str | None) -> int | None:
    """The version an `If-Match` header asks for; None when absent or `*`."""
    if value is None:
        return None
    tag = value.strip()
    if tag == "*":
        return None
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not tag.isascii() or not tag.isdigit() or len(tag) > _MAX_ID_DIGITS:
        raise BadRequest(
            "INVALID_IF_MATCH",
            f'If-Match must be an ETag this service sent, like "3"; got {value!r}',
            {"fields": [{"field": "If-Match", "message": "must be a quoted version"}]},
        )
    return int(tag)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def context(request: Request[Any, Any, Any]) -> RequestContext:
    ctx: RequestContext = request.scope["state"]["ctx"]
    return ctx


def decode_json(raw: bytes, type_: Any) -> Any:
    """Strict decode: a wrong type is a 400 naming the field, never silently coerced."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        fields = fields_from_msgspec(str(exc))
        raise BadRequest(
            "VALIDATION_ERROR",
            f"Invalid request: {fields[0]['field']}: {fields[0]['message']}",
            {"fields": fields},
        ) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(
            "MALFORMED_JSON", f"JSON is malformed: {exc}; send a JSON object", {"fields": []}
        ) from exc


async def optional_body(request: Request[Any, Any, Any], type_: type[T]) -> T | None:
    """Decode a body that may be absent (an empty body is None)."""
    raw = await request.body()
    if not raw.strip():
        return None
    decoded: T = decode_json(raw, type_)
    return decoded
