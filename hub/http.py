"""The HTTP surface: /healthz, /readyz, /metrics (and later the FHIR endpoint)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.metrics import Metrics

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]
Refresh = Callable[[], Awaitable[object]]


def build_http_app(metrics: Metrics, ready: ReadyCheck,
                   routes: Iterable[web.AbstractRouteDef] = (), refresh: Refresh | None = None) -> web.Application:
    """The built-in endpoints plus the features' own `routes` (the FHIR endpoint). `refresh`
    brings the gauges read from the database up to date before /metrics answers."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        return web.json_response({"ready": ok, **checks}, status=200 if ok else 503)

    async def metrics_view(_request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.add_routes(list(routes))
    return app
