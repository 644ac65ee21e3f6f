"""`ems-connector` / `python -m ems_connector`: serve, demo, dispatch, migrate, publishers,
openapi."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ems_connector.clock import Clock
from ems_connector.config import ConfigError, Settings, load_settings
from ems_connector.persistence.database import Database
from ems_connector.persistence.migrate import upgrade
from ems_connector.services.container import Services

T = TypeVar("T")


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    db = Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        await upgrade(db.write_engine)
        return await work(Services(db, Clock()))
    finally:
        await db.dispose()


def _serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "ems_connector.app:create_app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.host,
        port=settings.port,
        workers=1,
        log_access=False,
    ).serve()


def _cmd_serve(settings: Settings, _args: argparse.Namespace) -> None:
    asyncio.run(_with_services(settings, _noop))  # migrate once before the worker starts
    _serve(settings)


async def _noop(_services: Services) -> None:
    return None


def _cmd_demo(settings: Settings, _args: argparse.Namespace) -> None:
    from ems_connector.demo import seed

    publisher_id, api_key, method_ids = asyncio.run(_with_services(settings, seed))
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"""
EMS connector demo on {base} (database {settings.database_url})
  publisher id : {publisher_id}
  API key      : {api_key}
  payment methods {method_ids[0]} (apple) and {method_ids[1]} (telco-demo);
  offers S100000001_US (monthly), S100000002_US (yearly), S100000003_US (free)

Try:
  export KEY={api_key}
  curl -s -X POST {base}/3.1/customers -H "X-Publisher-Token: $KEY" \\
       -H 'Content-Type: application/json' -d '{{"email": "jane@example.com"}}'
  curl -s {base}/3.1/offers -H "X-Publisher-Token: $KEY"
The README walks through a whole subscription lifecycle. OpenAPI: {base}/schema/openapi.yaml
""",
        flush=True,
    )
    _serve(settings)


def _cmd_dispatch(settings: Settings, _args: argparse.Namespace) -> None:
    """Deliver webhooks from this process until SIGTERM or SIGINT."""
    from webhooks.dispatcher import Dispatcher

    async def dispatch(services: Services) -> None:
        dispatcher = Dispatcher(
            services.db, services.clock.now_float, lease_seconds=settings.delivery_lease_seconds
        )
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        runner = asyncio.create_task(dispatcher.run())
        print("delivering webhooks; SIGTERM stops", flush=True)
        await stopping.wait()
        await dispatcher.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(_with_services(settings, dispatch))


def _cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    asyncio.run(_with_services(settings, _noop))
    print("database is at the newest migration")


def _cmd_publishers_create(settings: Settings, args: argparse.Namespace) -> None:
    async def create(services: Services) -> tuple[int, str]:
        return await services.publishers.create(args.name)

    publisher_id, api_key = asyncio.run(_with_services(settings, create))
    print(f"publisher {args.name!r} id {publisher_id}")
    print(f"API key (shown once, stored hashed): {api_key}")


def _cmd_openapi(settings: Settings, args: argparse.Namespace) -> None:
    from ems_connector.app import create_app
    from ems_connector.openapi import document

    # test mode on: the spec documents the test clock too, for partner QA
    text = document(create_app(Settings(database_url=settings.database_url, test_mode=True)))
    if args.output == "-":
        sys.stdout.write(text.decode())
    else:
        Path(args.output).write_bytes(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ems-connector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the API on EMS_HOST:EMS_PORT").set_defaults(
        run=_cmd_serve
    )
    commands.add_parser("demo", help="seed demo data, print a key, and serve").set_defaults(
        run=_cmd_demo
    )
    commands.add_parser(
        "dispatch", help="deliver webhooks (for EMS_DISPATCHER=off API processes)"
    ).set_defaults(run=_cmd_dispatch)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=_cmd_migrate)
    publishers = commands.add_parser("publishers", help="manage publishers").add_subparsers(
        dest="publishers_command", required=True
    )
    create = publishers.add_parser("create", help="create a publisher and print its API key")
    create.add_argument("name")
    create.set_defaults(run=_cmd_publishers_create)
    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("output", nargs="?", default="openapi.yaml")
    openapi.set_defaults(run=_cmd_openapi)

    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        parser.exit(2, f"ems-connector: {exc}\n")
    args.run(settings, args)


if __name__ == "__main__":
    main()
