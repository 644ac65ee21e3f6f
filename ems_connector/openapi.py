"""The OpenAPI document: one rendering shared by /schema/openapi.yaml and openapi.yaml."""

from __future__ import annotations

from typing import Any

import yaml
from litestar import Litestar, Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from ems_connector import __version__


def render_yaml(schema: dict[str, Any]) -> bytes:
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=100).encode()


def document(app: Litestar) -> bytes:
    """The checked-in `openapi.yaml` is exactly this."""
    return render_yaml(app.openapi_schema.to_schema())


class _YamlPlugin(YamlRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return render_yaml(openapi_schema)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="EMS connector",
        version=__version__,
        description=(
            "Cleeng-compatible Core API 3.1 for externally-managed subscriptions. "
            "Authenticate with `X-Publisher-Token: <api key>` (or `Authorization: Bearer`). "
            "REST timestamps are Unix seconds; errors are "
            "`{success: false, code, message, details}`."
        ),
        path="/schema",
        render_plugins=[_YamlPlugin()],
        components=Components(
            security_schemes={
                "PublisherToken": SecurityScheme(
                    type="apiKey", name="X-Publisher-Token", security_scheme_in="header"
                ),
                "Bearer": SecurityScheme(type="http", scheme="bearer"),
            }
        ),
    )
