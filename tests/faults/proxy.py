"""A real HTTP reverse proxy in front of Synapse that injects faults: answers of its own (429,
502), or a connection dropped without an answer. Subclasses choose with `fault()`."""

from __future__ import annotations

from collections import Counter

from aiohttp import ClientSession, ClientTimeout, web

from hub.devserver import free_port

#: Returned by fault() to close the connection without answering (what a crashed load balancer does).
DROP = web.Response(status=599)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.faults = Counter[str]()  # endpoint → faults injected
        self._runner: web.AppRunner | None = None
        self._http: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._http = ClientSession(timeout=ClientTimeout(total=120), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()  # aborts the long-polls being forwarded
        if self._runner is not None:
            await self._runner.cleanup()

    def fault(self, request: web.Request) -> web.Response | None:
        """An answer instead of Synapse's (DROP: no answer at all), or None to forward."""
        return None

    async def delay(self, request: web.Request) -> None:
        """Hold a request before forwarding it (a slow homeserver)."""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        await self.delay(request)
        injected = self.fault(request)
        if injected is not None:
            self.faults[endpoint(request.path)] += 1
            if injected is DROP:
                await request.read()
                assert request.transport is not None
                request.transport.abort()
            return injected
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._http.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                      headers=headers, data=await request.read()) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
            return web.Response(status=upstream.status, body=body, headers=out)


def endpoint(path: str) -> str:
    for name in ("sync", "send", "keys", "createRoom", "invite", "kick", "members", "state", "join", "profile"):
        if f"/{name}" in path:
            return name
    return "other"
