"""The checked-in openapi.yaml is generated from the code and served unchanged."""

from __future__ import annotations

from pathlib import Path

import yaml

from ems_connector.app import create_app
from ems_connector.config import Settings
from ems_connector.openapi import document
from tests.conftest import AppClient

SPEC = Path(__file__).parent.parent / "openapi.yaml"


def test_checked_in_spec_matches_the_code(settings: Settings) -> None:
    generated = document(create_app(settings))
    assert SPEC.read_bytes() == generated, "openapi.yaml drifted: run `make openapi` and commit"


async def test_served_spec_is_the_checked_in_one(client: AppClient) -> None:
    response = await client.get("/schema/openapi.yaml")
    assert response.status_code == 200
    assert response.content == SPEC.read_bytes()


def test_every_operation_documents_its_errors() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    for path, item in spec["paths"].items():
        if not path.startswith("/3.1/"):
            continue
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert "401" in statuses, (method, path)
            takes_input = operation.get("parameters") or "requestBody" in operation
            if takes_input:
                assert "400" in statuses, (method, path)
            if method in {"post", "patch"}:
                bodyless = path.endswith(
                    ("/activate", "/deactivate", "/resync", "/rotate_secret", "/retry")
                )
                assert "requestBody" in operation or bodyless, (method, path)
