"""/health (the process runs) and /ready (the database answers and is migrated)."""

from __future__ import annotations

from litestar import Response, get
from sqlalchemy import text

from ems_connector.http.dependencies import ServicesDep
from ems_connector.persistence.migrate import is_current
from ems_connector.schemas.common import ResponseBody


class HealthStatus(ResponseBody):
    status: str
    detail: str | None = None


@get("/health", tags=["Operations surface"], summary="Liveness")
async def health() -> HealthStatus:
    return HealthStatus(status="ok")


@get("/ready", tags=["Operations surface"], summary="Readiness: database reachable and current")
async def ready(services: ServicesDep) -> Response[HealthStatus]:
    try:
        async with services.db.read() as conn:
            await conn.execute(text("SELECT 1"))
            current = await is_current(conn)
    except Exception as exc:  # any failure to reach storage means "not ready"
        return Response(
            HealthStatus(
                status="unavailable", detail=f"database unreachable: {type(exc).__name__}"
            ),
            status_code=503,
            headers={"Retry-After": "1"},
        )
    if not current:
        return Response(
            HealthStatus(status="unavailable", detail="database migrations are not current"),
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return Response(HealthStatus(status="ready"))
