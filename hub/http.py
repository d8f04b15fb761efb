"""The HTTP surfaces: the public one (/healthz, /readyz, the FHIR endpoint) and the admin one
(/metrics, with the probes), on separate addresses so the hospitals' door never serves the
operator's figures (issue 17; `[http] admin_host`, `admin_port`, loopback by default)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.metrics import Metrics

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]
Refresh = Callable[[], Awaitable[object]]


def _probes(app: web.Application, ready: ReadyCheck) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        return web.json_response({"ready": ok, **checks}, status=200 if ok else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def build_http_app(ready: ReadyCheck, routes: Iterable[web.AbstractRouteDef] = ()) -> web.Application:
    """The public listener: the probes plus the features' own `routes` (the FHIR endpoint)."""
    app = web.Application()
    _probes(app, ready)
    app.add_routes(list(routes))
    return app


def build_admin_app(metrics: Metrics, ready: ReadyCheck, refresh: Refresh | None = None) -> web.Application:
    """The operator's listener: the probes and /metrics (Prometheus text format). `refresh`
    brings the gauges read from the database up to date before /metrics answers."""

    async def metrics_view(_request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    _probes(app, ready)
    app.router.add_get("/metrics", metrics_view)
    return app
