"""What handlers get injected: the app's services."""

from __future__ import annotations

from litestar.di import NamedDependency

from ems_connector.services.container import Services

ServicesDep = NamedDependency[Services]
