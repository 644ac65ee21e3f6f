"""A bad-input sweep over every write, get and list route: 400s that name the field, no change."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from tests.conftest import FREE, MONTHLY, Api

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
MISSING = object()  # a field to leave out of the body
MAX_BODY_BYTES = 256 * 1024  # EMS_MAX_BODY_BYTES' default


class World(NamedTuple):
    """What the tenant holds before the bad requests: ids the routes and bodies refer to."""

    customer_id: int
    other_customer_id: int
    subscription_id: int
    method_id: int


class Endpoint(NamedTuple):
    method: str
    path: str  # {sid}, {cid} and {oid} are filled from the World
    body: Callable[[World], dict[str, Any]] | None  # a valid body; None: the route takes none
    envelope: str | None = None  # the Cleeng key its errors carry as null
    body_required: bool = True
    if_match: bool = False


class Case(NamedTuple):
    """One bad request and the refusal it must get."""

    label: str
    path: str
    content: bytes
    headers: dict[str, str] | None = None
    code: str | None = None  # None: any UPPER_SNAKE code
    field: str | None = None  # the field `details.fields` must name
    status: int = 400
    mentions: str | None = None  # text the message must contain


ENDPOINTS = {
    "create_subscription": Endpoint(
        "POST",
        "/3.1/subscriptions",
        lambda w: {
            "customerId": w.customer_id,
            "offerId": MONTHLY,
            "paymentMethodId": w.method_id,
            "externalId": "ext-new",
        },
    ),
    "patch_subscription": Endpoint(
        "PATCH",
        "/3.1/subscriptions/{sid}",
        lambda w: {"inTrial": True},
        envelope="subscription",
        if_match=True,
    ),
    "cancel": Endpoint(
        "POST",
        "/3.1/subscriptions/{sid}/cancel",
        lambda w: {"cancellationReason": "user asked"},
        if_match=True,
    ),
    "activate": Endpoint(
        "POST", "/3.1/subscriptions/{sid}/activate", None, body_required=False, if_match=True
    ),
    "terminate": Endpoint(
        "POST",
        "/3.1/subscriptions/{sid}/terminate",
        lambda w: {"terminationType": "userCancel"},
        if_match=True,
    ),
    "renew": Endpoint(
        "POST",
        "/3.1/subscriptions/{sid}/renew",
        lambda w: {},
        body_required=False,
        if_match=True,
    ),
    "transfer": Endpoint(
        "POST",
        "/3.1/subscriptions/{sid}/transfer",
        lambda w: {"customerId": w.other_customer_id},
        if_match=True,
    ),
    "revive": Endpoint(
        "POST",
        "/3.1/subscriptions/{sid}/revive",
        lambda w: {"expirationDate": 4_000_000_000},
        if_match=True,
    ),
    "create_customer": Endpoint(
        "POST", "/3.1/customers", lambda w: {"email": "new@example.com"}, envelope="data"
    ),
    "patch_customer": Endpoint(
        "PATCH", "/3.1/customers/{cid}", lambda w: {"firstName": "Jane"}, envelope="data"
    ),
    "create_offer": Endpoint(
        "POST",
        "/3.1/offers",
        lambda w: {
            "offerId": "S200000001_US",
            "title": "Weekly news",
            "price": {"amount": 1.99, "currency": "USD"},
            "billingCycle": {"periodUnit": "week", "amount": 1},
        },
    ),
    "patch_offer": Endpoint(
        "PATCH", "/3.1/offers/{oid}", lambda w: {"title": "Renamed"}, if_match=True
    ),
    "activate_offer": Endpoint(
        "POST", "/3.1/offers/{oid}/activate", None, body_required=False, if_match=True
    ),
    "deactivate_offer": Endpoint(
        "POST", "/3.1/offers/{oid}/deactivate", None, body_required=False, if_match=True
    ),
    "create_payment_method": Endpoint(
        "POST",
        "/3.1/payment_methods",
        lambda w: {"source": "roku", "methodName": "Roku Pay", "paymentGateway": "roku"},
    ),
}


@pytest.fixture
async def world(api: Api) -> World:
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    sub = await api.subscription(jane, "ext-1")
    return World(jane, john, sub["subscriptionId"], api.tenant.apple_method_id)


def path_of(endpoint: Endpoint, world: World) -> str:
    return endpoint.path.format(sid=world.subscription_id, cid=world.customer_id, oid=FREE)


def body_of(endpoint: Endpoint, world: World, **changes: Any) -> bytes:
    """The endpoint's valid body with `changes` applied (MISSING drops a field)."""
    body = {**(endpoint.body(world) if endpoint.body else {}), **changes}
    return json.dumps({k: v for k, v in body.items() if v is not MISSING}).encode()


async def snapshot(api: Api, world: World) -> dict[str, Any]:
    """Everything a bad request could have changed, as a client reads it."""

    async def read(path: str, **params: Any) -> Any:
        return (await api.call("GET", path, params=params, expect=200)).json()

    return {
        "operations": await api.operations(limit=1000),
        "subscription": await read(f"/3.1/subscriptions/{world.subscription_id}"),
        "subscriptions": await read("/3.1/subscriptions", customerId=world.customer_id),
        "customer": await read(f"/3.1/customers/{world.customer_id}"),
        "offers": await read("/3.1/offers"),
        "payment_methods": await read("/3.1/payment_methods"),
    }


def error_problems(response: Any, case: Case, envelope: str | None) -> list[str]:
    """How a response falls short of the contract's error body for `case` (CONTRACT §2)."""
    if response.status_code != case.status:
        return [f"status {response.status_code}, want {case.status}: {response.text[:300]}"]
    body = response.json()
    problems = []
    if body.get("success") is not False:
        problems.append("success is not false")
    code = body.get("code")
    if not isinstance(code, str) or not UPPER_SNAKE.match(code):
        problems.append(f"code {code!r} is not UPPER_SNAKE")
    elif case.code is not None and code != case.code:
        problems.append(f"code {code}, want {case.code}")
    message = body.get("message")
    if not isinstance(message, str) or not message:
        problems.append("no message")
    elif case.mentions is not None and case.mentions not in message:
        problems.append(f"message {message!r} does not mention {case.mentions!r}")
    if case.status == 400:
        details = body.get("details")
        fields = details.get("fields") if isinstance(details, dict) else None
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and set(f) == {"field", "message"} and f["message"] for f in fields
        ):
            problems.append(f"details is not {{fields: [{{field, message}}]}}: {details!r}")
        elif case.field is not None and case.field not in [f["field"] for f in fields]:
            problems.append(f"details.fields {fields} do not name {case.field}")
    if envelope is not None and (envelope not in body or body[envelope] is not None):
        problems.append(f"no `{envelope}: null` in {body}")
    return problems


async def refusal_problems(
    api: Api, world: World, method: str, cases: list[Case], envelope: str | None = None
) -> list[str]:
    """Send each case; list every answer that is not a clean refusal or that changed state."""
    problems: list[str] = []
    before = await snapshot(api, world)
    for case in cases:
        response = await api.client.request(
            method,
            case.path,
            content=case.content,
            headers={
                **api.tenant.headers,
                "Content-Type": "application/json",
                **(case.headers or {}),
            },
        )
        problems += [f"{case.label}: {p}" for p in error_problems(response, case, envelope)]
        after = await snapshot(api, world)
        if after != before:
            problems.append(f"{case.label}: the refused request changed something")
            before = after
    return problems


# --- the body as a whole, and the transport around it ---------------------------------------

NOT_AN_OBJECT = {
    "malformed JSON": (b"{'single': 'quotes'}", "MALFORMED_JSON"),
    "truncated JSON": (b"{", "MALFORMED_JSON"),
    "not UTF-8": (b'{"\xff": "\xfe"}', "MALFORMED_JSON"),
    "a JSON array": (b"[]", None),
    "a JSON string": (b'"text"', None),
    "a JSON number": (b"42", None),
}
OTHER_CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded"]
BAD_IDEMPOTENCY_KEYS = ["", "k" * 256, "tab\tinside"]
BAD_IF_MATCH = ["abc", '"abc"', 'W/"x"']


def body_cases(endpoint: Endpoint, world: World) -> list[Case]:
    path = path_of(endpoint, world)
    cases = [
        Case(label, path, content, code=code) for label, (content, code) in NOT_AN_OBJECT.items()
    ]
    cases.append(
        Case("unknown field", path, body_of(endpoint, world, bogusField=1), field="bogusField")
    )
    if endpoint.body_required:
        cases.append(Case("empty body", path, b"", field="body"))
    return cases


def transport_cases(endpoint: Endpoint, world: World) -> list[Case]:
    path = path_of(endpoint, world)
    valid = body_of(endpoint, world)
    huge = body_of(endpoint, world, padding="x" * MAX_BODY_BYTES)
    cases = [Case("huge body", path, huge, code="BODY_TOO_LARGE", field="body")]
    cases += [
        Case(
            f"Content-Type {content_type}",
            path,
            valid,
            {"Content-Type": content_type},
            "UNSUPPORTED_CONTENT_TYPE",
            "Content-Type",
        )
        for content_type in OTHER_CONTENT_TYPES
    ]
    cases += [
        Case(
            f"Idempotency-Key {key[:10]!r}",
            path,
            valid,
            {"Idempotency-Key": key},
            "INVALID_IDEMPOTENCY_KEY",
            "Idempotency-Key",
        )
        for key in BAD_IDEMPOTENCY_KEYS
    ]
    if endpoint.if_match:
        cases += [
            Case(f"If-Match {tag}", path, valid, {"If-Match": tag}, "INVALID_IF_MATCH", "If-Match")
            for tag in BAD_IF_MATCH
        ]
    return cases


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_a_body_that_is_not_the_routes_object_is_refused(
    api: Api, world: World, name: str
) -> None:
    endpoint = ENDPOINTS[name]
    cases = body_cases(endpoint, world)
    problems = await refusal_problems(api, world, endpoint.method, cases, endpoint.envelope)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_an_oversized_non_json_or_badly_headed_request_is_refused(
    api: Api, world: World, name: str
) -> None:
    endpoint = ENDPOINTS[name]
    cases = transport_cases(endpoint, world)
    problems = await refusal_problems(api, world, endpoint.method, cases, endpoint.envelope)
    assert not problems, "\n".join(problems)


# --- one field wrong at a time ---------------------------------------------------------------

# endpoint -> [(fields replacing the valid body's, the field the error must name)]
FIELD_CASES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "create_subscription": [
        ({"customerId": "100000000"}, "customerId"),
        ({"customerId": "abc"}, "customerId"),
        ({"customerId": None}, "customerId"),
        ({"customerId": MISSING}, "customerId"),
        ({"customerId": 5}, "customerId"),
        ({"customerId": 10**10}, "customerId"),
        ({"customerId": -100000000}, "customerId"),
        ({"customerId": 100000000.5}, "customerId"),
        ({"offerId": "X100000001_US"}, "offerId"),
        ({"offerId": "S000000001_US"}, "offerId"),
        ({"offerId": "S10000001_US"}, "offerId"),
        ({"offerId": "S100000001_us"}, "offerId"),
        ({"offerId": "S100000001_USA"}, "offerId"),
        ({"offerId": ""}, "offerId"),
        ({"offerId": 100000001}, "offerId"),
        ({"offerId": MISSING}, "offerId"),
        ({"paymentMethodId": 0}, "paymentMethodId"),
        ({"paymentMethodId": "1"}, "paymentMethodId"),
        ({"paymentMethodId": None}, "paymentMethodId"),
        ({"externalId": ""}, "externalId"),
        ({"externalId": "x" * 121}, "externalId"),
        ({"externalId": 7}, "externalId"),
        ({"externalId": None}, "externalId"),
        ({"externalId": MISSING}, "externalId"),
        ({"inTrial": 1}, "inTrial"),
        ({"inTrial": "true"}, "inTrial"),
        ({"inTrial": None}, "inTrial"),
        ({"expiresAt": "2030-01-01"}, "expiresAt"),
        ({"expiresAt": 1.5e9}, "expiresAt"),
        ({"expiresAt": -1}, "expiresAt"),
        ({"paymentId": 5}, "paymentId"),
        ({"externalProperties": "x"}, "externalProperties"),
        ({"externalProperties": ["a"]}, "externalProperties"),
    ],
    "patch_subscription": [
        ({"status": "paused"}, "status"),
        ({"status": "Active"}, "status"),
        ({"status": None}, "status"),
        ({"expiresAt": "soon"}, "expiresAt"),
        ({"expiresAt": 0}, "expiresAt"),
        ({"inTrial": 0}, "inTrial"),
        ({"inTrial": "false"}, "inTrial"),
        ({"externalId": ""}, "externalId"),
        ({"externalId": "x" * 121}, "externalId"),
        ({"externalProperties": 5}, "externalProperties"),
    ],
    "cancel": [
        ({"cancellationReason": ""}, "cancellationReason"),
        ({"cancellationReason": "x" * 513}, "cancellationReason"),
        ({"cancellationReason": 5}, "cancellationReason"),
        ({"cancellationReason": None}, "cancellationReason"),
        ({"cancellationReason": MISSING}, "cancellationReason"),
    ],
    "terminate": [
        ({"terminationType": "bogus"}, "terminationType"),
        ({"terminationType": None}, "terminationType"),
        ({"terminationType": MISSING}, "terminationType"),
    ],
    "renew": [
        ({"expiresAt": "next month"}, "expiresAt"),
        ({"expiresAt": 0}, "expiresAt"),
        ({"paymentId": 5}, "paymentId"),
        ({"paymentId": "100000000"}, "paymentId"),
        ({"convertTrial": 1}, "convertTrial"),
    ],
    "transfer": [
        ({"customerId": 5}, "customerId"),
        ({"customerId": 10**10}, "customerId"),
        ({"customerId": -1}, "customerId"),
        ({"customerId": "abc"}, "customerId"),
        ({"customerId": "100000001"}, "customerId"),
        ({"customerId": None}, "customerId"),
        ({"customerId": MISSING}, "customerId"),
    ],
    "revive": [
        ({"expirationDate": "tomorrow"}, "expirationDate"),
        ({"expirationDate": -1}, "expirationDate"),
        ({"expiresAt": 1.5}, "expiresAt"),
        ({"paymentId": 5}, "paymentId"),
    ],
    "create_customer": [
        ({"email": ""}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"email": 5}, "email"),
        ({"email": None}, "email"),
        ({"email": MISSING}, "email"),
        ({"country": "usa"}, "country"),
        ({"firstName": ""}, "firstName"),
        ({"firstName": "x" * 51}, "firstName"),
        ({"externalId": "x" * 121}, "externalId"),
        ({"externalData": "x"}, "externalData"),
    ],
    "patch_customer": [
        ({"email": "nope"}, "email"),
        ({"email": None}, "email"),
        ({"firstName": ""}, "firstName"),
        ({"locale": 5}, "locale"),
    ],
    "create_offer": [
        ({"offerId": "bad"}, "offerId"),
        ({"offerId": MISSING}, "offerId"),
        ({"title": ""}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"price": {"amount": "1.99", "currency": "USD"}}, "price.amount"),
        ({"price": {"amount": -1, "currency": "USD"}}, "price.amount"),
        ({"price": {"amount": 1}}, "price.currency"),
        ({"price": {"amount": 1, "currency": "USD", "tax": 0}}, "price.tax"),
        ({"billingCycle": {"periodUnit": "fortnight", "amount": 1}}, "billingCycle.periodUnit"),
        ({"active": 1}, "active"),
        ({"free": "yes"}, "free"),
        ({"channels": "sport-1"}, "channels"),
    ],
    "patch_offer": [
        ({"title": ""}, "title"),
        ({"active": 0}, "active"),
        ({"price": {"amount": -1, "currency": "USD"}}, "price.amount"),
        ({"externalProperties": {"k": 1}}, "externalProperties"),
    ],
    "create_payment_method": [
        ({"source": ""}, "source"),
        ({"source": "Apple Pay"}, "source"),
        ({"methodName": "x" * 121}, "methodName"),
        ({"methodName": MISSING}, "methodName"),
        ({"gracePeriodSeconds": -1}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": "60"}, "gracePeriodSeconds"),
        ({"autoTerminate": "yes"}, "autoTerminate"),
        ({"isExternalPayment": 1}, "isExternalPayment"),
    ],
}


@pytest.mark.parametrize("name", list(FIELD_CASES))
async def test_a_wrong_field_is_refused_and_named(api: Api, world: World, name: str) -> None:
    endpoint = ENDPOINTS[name]
    cases = [
        Case(
            f"{json.dumps(changes, default=lambda _: 'MISSING')[:80]}",
            path_of(endpoint, world),
            body_of(endpoint, world, **changes),
            code="VALIDATION_ERROR",
            field=field,
        )
        for changes, field in FIELD_CASES[name]
    ]
    problems = await refusal_problems(api, world, endpoint.method, cases, endpoint.envelope)
    assert not problems, "\n".join(problems)


# --- path ids --------------------------------------------------------------------------------


class IdRoute(NamedTuple):
    method: str
    path: str  # {id} is the id under test
    endpoint: Endpoint | None  # the write whose valid body to send; None for a GET
    id_field: str
    not_found: str
    envelope: str | None = None


def write_route(name: str, id_field: str, not_found: str) -> IdRoute:
    endpoint = ENDPOINTS[name]
    placeholder = {"subscriptionId": "{sid}", "customerId": "{cid}", "offerId": "{oid}"}[id_field]
    path = endpoint.path.replace(placeholder, "{id}")
    return IdRoute(endpoint.method, path, endpoint, id_field, not_found, endpoint.envelope)


SUBSCRIPTION_ACTIONS = ["patch_subscription", "cancel", "activate", "terminate", "renew"]
INT_ID_ROUTES = [
    IdRoute("GET", "/3.1/subscriptions/{id}", None, "subscriptionId", "SUBSCRIPTION_NOT_FOUND"),
    *[
        write_route(name, "subscriptionId", "SUBSCRIPTION_NOT_FOUND")
        for name in [*SUBSCRIPTION_ACTIONS, "transfer", "revive"]
    ],
    IdRoute("GET", "/3.1/customers/{id}", None, "customerId", "CUSTOMER_NOT_FOUND", "data"),
    write_route("patch_customer", "customerId", "CUSTOMER_NOT_FOUND"),
    IdRoute(
        "GET", "/3.1/payment_methods/{id}", None, "paymentMethodId", "PAYMENT_METHOD_NOT_FOUND"
    ),
]
OFFER_ID_ROUTES = [
    IdRoute("GET", "/3.1/offers/{id}", None, "offerId", "OFFER_NOT_FOUND"),
    *[
        write_route(name, "offerId", "OFFER_NOT_FOUND")
        for name in ["patch_offer", "activate_offer", "deactivate_offer"]
    ],
]
NOT_INTEGERS = ["abc", "1.5", "12abc", "1e9", "0x10", "%20"]
UNUSED_INTEGERS = ["1999999999", "999999999", "5", "0", str(10**12), "9" * 25, "-7"]
NOT_OFFER_IDS = ["bad", "S100000001_us", "X100000001_US", "S000000001_US", "S100000001_USA"]
UNUSED_OFFER_IDS = ["S999999999_US", "P123456789_DE"]


def id_cases(route: IdRoute, world: World, malformed: list[str], unused: list[str]) -> list[Case]:
    content = body_of(route.endpoint, world) if route.endpoint else b""
    cases = [
        Case(f"id {raw!r}", route.path.format(id=raw), content, None, "INVALID_ID", route.id_field)
        for raw in malformed
    ]
    cases += [
        Case(
            f"id {raw!r}", route.path.format(id=raw), content, None, route.not_found, None, 404, raw
        )
        for raw in unused
    ]
    return cases


@pytest.mark.parametrize("route", INT_ID_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_a_path_id_is_invalid_unless_an_integer_and_not_found_unless_used(
    api: Api, world: World, route: IdRoute
) -> None:
    cases = id_cases(route, world, NOT_INTEGERS, UNUSED_INTEGERS)
    problems = await refusal_problems(api, world, route.method, cases, route.envelope)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("route", OFFER_ID_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_an_offer_path_id_is_invalid_off_the_pattern_and_not_found_unless_used(
    api: Api, world: World, route: IdRoute
) -> None:
    cases = id_cases(route, world, NOT_OFFER_IDS, UNUSED_OFFER_IDS)
    problems = await refusal_problems(api, world, route.method, cases, route.envelope)
    assert not problems, "\n".join(problems)


# --- list query parameters -------------------------------------------------------------------

CUSTOMER = 100000000
# path -> [(query, the field the error must name, the code when it is not VALIDATION_ERROR)]
QUERY_CASES: dict[str, list[tuple[dict[str, Any], str, str | None]]] = {
    "/3.1/subscriptions": [
        ({"offerId": MONTHLY}, "offerId", "INVALID_FILTER"),
        ({"customerId": CUSTOMER, "offerId": "bad"}, "offerId", None),
        ({"customerId": CUSTOMER, "offerId": "S100000001_U1"}, "offerId", None),
        ({"customerId": CUSTOMER, "limit": 0}, "limit", None),
        ({"customerId": CUSTOMER, "limit": 101}, "limit", None),
        ({"customerId": CUSTOMER, "limit": "abc"}, "limit", None),
        ({"customerId": CUSTOMER, "offset": -1}, "offset", None),
        ({"customerId": CUSTOMER, "offset": "x"}, "offset", None),
        ({"customerId": "abc"}, "customerId", None),
        ({"customerId": ""}, "customerId", None),
        ({"paymentMethodId": 0}, "paymentMethodId", None),
        ({"externalId": ""}, "externalId", None),
        ({"externalId": "x" * 121}, "externalId", None),
        ({"customerId": CUSTOMER, "status": "paused"}, "status", None),
    ],
    "/3.1/customers": [
        ({"email": ""}, "email", None),
        ({"email": "x" * 255}, "email", None),
        ({"externalId": "x" * 121}, "externalId", None),
        ({"email": "a@b.co", "limit": 0}, "limit", None),
        ({"email": "a@b.co", "limit": 101}, "limit", None),
        ({"email": "a@b.co", "limit": "abc"}, "limit", None),
        ({"email": "a@b.co", "offset": -1}, "offset", None),
    ],
    "/3.1/operations": [
        ({"limit": 0}, "limit", None),
        ({"limit": "abc"}, "limit", None),
        ({"subscriptionId": "abc"}, "subscriptionId", None),
        ({"customerId": -1}, "customerId", None),
        ({"since": "yesterday"}, "since", None),
        ({"cursor": "not-a-cursor"}, "cursor", "INVALID_CURSOR"),
    ],
}
DATA_ENVELOPE_LISTS = {"/3.1/subscriptions", "/3.1/customers"}


@pytest.mark.parametrize("path", list(QUERY_CASES))
async def test_a_bad_list_query_is_refused_and_named(api: Api, path: str) -> None:
    envelope = "data" if path in DATA_ENVELOPE_LISTS else None
    problems = []
    for query, field, code in QUERY_CASES[path]:
        response = await api.call("GET", path, params=query)
        case = Case(f"{query}", path, b"", code=code or "VALIDATION_ERROR", field=field)
        problems += [f"{query}: {p}" for p in error_problems(response, case, envelope)]
    assert not problems, "\n".join(problems)
