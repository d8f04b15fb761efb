"""The MLLP listener: TCP in, one HL7 acknowledgement out per frame.

Per frame: parse (pure) → keep the message (committed) → match it to a file → ACK. Matching
failures do not change the answer: the message is kept and finished at the next start. An ACK
is never acknowledged; every other frame gets an answer, malformed ones included, and the
connection stays open for the next frame. Peers outside `allowed_peers` are closed at once;
a connection silent for `idle_timeout_s` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable

from hub.clock import Clock
from hub.config import MllpConfig
from hub.errors import ConfigError
from hub.inbound.ack import AckCode, build_ack
from hub.inbound.hl7v2 import Hl7Error, IsAck, MshHeader, parse, read_header
from hub.inbound.mllp import FrameError, MllpDecoder, frame
from hub.metrics import Metrics
from hub.services.alerts import AlertService
from hub.tls import server_context

__all__ = ["FrameHandler", "Hl7Listener", "MllpServer"]

log = logging.getLogger(__name__)
_READ = 65536
_STOP_GRACE_S = 5.0
_HANDSHAKE_S = 30.0
_FRAME_ERRORS: dict[str, tuple[AckCode, str, str]] = {  # ACK code, HL7 table 0357 code, text
    "too_large": ("AE", "207", "frame too large"),
    "truncated": ("AE", "100", "frame truncated: a new frame started before its end"),
}


class Hl7Listener:
    """Frame → ACK, through the alert service. No socket here."""

    def __init__(self, service: AlertService, clock: Clock, metrics: Metrics | None = None) -> None:
        self.service = service
        self.clock = clock
        self.metrics = metrics

    def _ack(self, header: MshHeader | None, code: AckCode, text: str = "", error_code: str = "") -> bytes:
        return build_ack(header, code, text, error_code, control_id=secrets.token_hex(8).upper(),
                         now=self.clock.now())

    def _rejected(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alerts.labels(source="hl7", outcome=outcome).inc()

    async def on_frame(self, payload: bytes | FrameError) -> bytes | None:
        """The acknowledgement to send back; None for a frame that is itself an ACK."""
        if isinstance(payload, FrameError):
            code, error_code, text = _FRAME_ERRORS[payload.reason]
            try:
                header: MshHeader | None = read_header(payload.head)
            except Hl7Error:
                header = None
            if header is not None and header.message_type == "ACK":
                return None
            self._rejected("rejected")
            return self._ack(header, code, text, error_code)
        try:
            alert = parse(payload)
        except IsAck:
            self._rejected("ack_ignored")
            return None
        except Hl7Error as exc:
            self._rejected("rejected")
            return self._ack(exc.header, exc.code, exc.reason, exc.error_code)
        header = read_header(payload)
        try:
            received = await self.service.receive(alert, payload)
        except Exception:
            log.exception("could not store a hospital message: answering AR so that the sender retries")
            self._rejected("store_failed")
            return self._ack(header, "AR", "temporary storage failure, please resend", "207")
        if received.pending:
            try:
                await self.service.process(received.message_id)
            except Exception:
                log.exception("hospital message kept but not processed yet (retried at the next start)")
        return self._ack(header, "AA")


FrameHandler = Callable[[bytes | FrameError], Awaitable[bytes | None]]


def _networks(peers: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for peer in peers:
        try:
            nets.append(ipaddress.ip_network(peer, strict=False))
        except ValueError:
            raise ConfigError("alerts.mllp.allowed_peers", f"{peer!r} is not an IP address or network") from None
    return nets


class MllpServer:
    def __init__(self, config: MllpConfig, on_frame: FrameHandler) -> None:
        self.config = config
        self.on_frame = on_frame
        self._allowed = _networks(config.allowed_peers)
        # Built now: a certificate that does not load stops the start before anything else runs.
        self._tls: ssl.SSLContext | None = None
        if config.tls_cert is not None and config.tls_key is not None:
            self._tls = server_context("alerts.mllp", config.tls_cert, config.tls_key, config.tls_client_ca)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.port: int | None = None

    async def start(self) -> int:
        config, context = self.config, self._tls
        self._server = await asyncio.start_server(
            self._serve, config.host, config.port, ssl=context,
            ssl_handshake_timeout=min(config.idle_timeout_s, _HANDSHAKE_S) if context else None)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("MLLP listening on %s:%s (%s)", config.host, self.port,
                 "plain TCP" if context is None else "mutual TLS" if config.tls_client_ca else "TLS")
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Hang up: a connection busy with a frame finishes it (and answers) before it sees EOF.
        for writer in self._connections.values():
            writer.transport.close()
        tasks = list(self._connections)
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=_STOP_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def _allowed_peer(self, host: str) -> bool:
        if not self._allowed:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return any(address in net or (mapped is not None and mapped in net) for net in self._allowed)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            if not self._allowed_peer(str(peer[0])):
                log.warning("MLLP connection from %s refused: not in alerts.mllp.allowed_peers", peer[0])
                return
            await self._frames(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("MLLP connection from %s ended: %s", peer[0], type(exc).__name__)
        except asyncio.CancelledError:
            pass  # stopped by stop() after its grace period: end quietly
        except Exception:
            log.exception("MLLP connection from %s failed", peer[0])
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder(self.config.max_frame_bytes)
        while True:
            try:
                async with asyncio.timeout(self.config.idle_timeout_s):
                    data = await reader.read(_READ)
            except TimeoutError:
                log.info("MLLP connection idle for %.0f s: closed", self.config.idle_timeout_s)
                return
            if not data:
                return
            for item in decoder.feed(data):
                ack = await self.on_frame(item)
                if ack is not None:
                    writer.write(frame(ack))
                    await writer.drain()
