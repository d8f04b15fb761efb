"""The MLLP listener: TCP in, one answer out per block, one HL7 acknowledgement per message.

Per message: parse (pure) → keep the message (committed) → match it to a file → ACK. Matching
failures do not change the answer: the message is kept and finished at the next start. A block
holding several messages is answered with one block holding their ACKs in the same order; an
HL7 batch with a batch of ACKs (v2.5 §2.10.3). An ACK is never acknowledged; every other block
gets an answer, malformed ones included, and the connection stays open for the next one. A
block left without its end byte is answered after `partial_frame_timeout_s` of silence. Peers
outside `allowed_peers` are closed at once, before any TLS handshake; past `max_connections`, the
connection that has gone longest without completing a block is closed to make room for the new
one; a connection silent for `idle_timeout_s` is closed.

Every AE/AR, refused block and late answer is logged once (reason, MSH-3/MSH-4, control id;
never patient data) and counted in `relais_hl7_problems_total{reason}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import ssl
import time
from typing import Protocol

from hub.clock import Clock
from hub.config import MllpConfig
from hub.errors import ConfigError
from hub.inbound.ack import AckCode, build_ack, build_batch
from hub.inbound.hl7batch import split_block
from hub.inbound.hl7v2 import Hl7Error, IsAck, MshHeader, NotActed, digest, read_header
from hub.inbound.mllp import FrameError, MllpDecoder, frame
from hub.metrics import Metrics
from hub.services.alerts import AlertService
from hub.tls import server_context

__all__ = ["FrameHandler", "Hl7Listener", "MllpServer"]

log = logging.getLogger(__name__)
_READ = 65536
_MSH = re.compile(rb"MSH[^A-Za-z0-9\s]")
_STOP_GRACE_S = 5.0
_HANDSHAKE_S = 30.0
_FRAME_ERRORS: dict[str, tuple[AckCode, str, str]] = {  # ACK code, HL7 table 0357 code, text
    # AE, not AR: resending the same block cannot succeed (AR asks the sender to retry as is).
    "too_large": ("AE", "207", "frame too large"),
    "truncated": ("AE", "100", "frame truncated: a new frame started before its end"),
}


def _shown(value: str) -> str:
    """A header field fit for a log line: printable ASCII, short."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in value)[:60] or "-"


class FrameHandler(Protocol):
    async def __call__(self, payload: bytes | FrameError, *, after_idle: bool = False) -> bytes | None: ...


class Hl7Listener:
    """Block → answer, through the alert service. No socket here."""

    def __init__(self, service: AlertService, clock: Clock, metrics: Metrics | None = None) -> None:
        self.service = service
        self.clock = clock
        self.metrics = metrics

    def _ack(self, header: MshHeader | None, code: AckCode, text: str = "", error_code: str = "") -> bytes:
        return build_ack(header, code, text, error_code, control_id=secrets.token_hex(8).upper(),
                         now=self.clock.now())

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alerts.labels(source="hl7", outcome=outcome).inc()

    def _problem(self, reason: str, header: MshHeader | None, detail: str) -> None:
        """The operator's view: one line and one count per refused message, block or late answer."""
        if self.metrics is not None:
            self.metrics.hl7_problems.labels(reason=reason).inc()
        sender = "-/-" if header is None else f"{_shown(header.sending_application)}/{_shown(header.sending_facility)}"
        control = "-" if header is None else _shown(header.control_id)
        log.warning("HL7 %s from %s, control id %s: %s", reason, sender, control, detail)

    def _refuse(self, header: MshHeader | None, code: AckCode, text: str, error_code: str, reason: str) -> bytes:
        self._count("store_failed" if reason == "store_failed" else "rejected")
        self._problem(reason, header, f"answered {code} ({error_code}) {text}")
        return self._ack(header, code, text, error_code)

    async def on_frame(self, payload: bytes | FrameError, *, after_idle: bool = False) -> bytes | None:
        """The answer to one block; None when there is nothing to answer (it held only ACKs)."""
        if isinstance(payload, FrameError):
            code, error_code, text = _FRAME_ERRORS[payload.reason]
            msh = _MSH.search(payload.head)  # a batch's first message names the sender too
            try:
                header: MshHeader | None = read_header(payload.head[msh.start():]) if msh else None
            except Hl7Error:
                header = None
            if header is not None and header.message_type.upper() == "ACK":
                return None
            return self._refuse(header, code, text, error_code, payload.reason)
        block = split_block(payload)
        if after_idle:
            try:
                first: MshHeader | None = read_header(block.messages[0]) if block.messages else None
            except Hl7Error:
                first = None
            self._problem("idle_timeout", first, "block without its end byte: answered after the sender went quiet")
        batches: list[tuple[bytes, list[bytes]]] = []
        for batch in block.batches:
            answers: list[bytes] = []
            for kind, data in batch.items:
                if kind == "s":
                    answers.append(self._refuse(None, "AE", "no MSH segment", "100", "no_msh"))
                    continue
                answer = await self.on_message(data)
                if answer is not None:
                    answers.append(answer)
            batches.append((batch.header or _implied_bhs(block.fhs, batch.items), answers))
            if batch.declared is not None and batch.declared != batch.count:
                # Each message found is answered on its own; BTS-1 of our answer says how many
                # we got, but a sender's batch that lost messages on its way deserves a look.
                self._problem("batch_count_mismatch", _first_header(batch.items),
                              f"BTS-1 declared {batch.declared} message(s), the batch held {batch.count}")
        if block.messages and not any(acks for _header, acks in batches):
            return None  # it held only ACKs (a batch of them included): an ACK is never acknowledged
        if block.is_batch:
            return build_batch(block.fhs, batches, control_id=secrets.token_hex(8).upper(), now=self.clock.now())
        return b"".join(ack for _header, acks in batches for ack in acks) or None

    async def on_message(self, raw: bytes) -> bytes | None:
        """The ACK of one message; None for a message that is itself an ACK."""
        try:
            alert = self.service.parse("hl7", raw)
        except IsAck:
            self._count("ack_ignored")
            return None
        except NotActed as exc:
            self._count("not_acted")  # SPEC §7: acknowledged, counted, not kept
            return self._ack(exc.header, "AA")
        except Hl7Error as exc:
            return self._refuse(exc.header, exc.code, exc.reason, exc.error_code, exc.key)
        except Exception as exc:  # a parser bug must not cost the other messages of the block their answer
            try:
                unread: MshHeader | None = read_header(raw)
            except Exception:
                unread = None
            # The exception's text may quote the message: only its type is logged.
            return self._refuse(unread, "AE", f"message could not be read ({type(exc).__name__})", "207",
                                "unreadable")
        header = read_header(raw)
        try:
            received = await self.service.receive(alert, raw, digest=digest(raw))
        except Exception:
            log.exception("could not store a hospital message: answering AR so that the sender retries")
            return self._refuse(header, "AR", "temporary storage failure, please resend", "207", "store_failed")
        if alert.unreadable and not received.duplicate:
            # Accepted and posted with the rest readable; the sender's escapes deserve a look.
            self._problem("undecodable_escape", header, "an escape sequence could not be decoded: shown as ?")
        if received.reused_control_id:
            # Not a resend (the content differs): kept and processed, never dropped, so nothing
            # is lost; the operator learns that the sender reuses control ids (HL7 v2.5 §2.14.9.10
            # asks for unique ones), which can hide a real resend from our duplicate check.
            self._problem("control_id_reused", header, "another content already came under this control id: "
                          "processed as a new message")
        if received.pending:
            try:
                await self.service.process(received.message_id)
            except Exception:
                log.exception("hospital message kept but not processed yet (retried at the next start)")
        return self._ack(header, "AA")


def _implied_bhs(fhs: bytes, items: tuple[tuple[str, bytes], ...]) -> bytes:
    """The batch header of messages sent outside any BHS in a batch block: the FHS's (build_batch
    uses it when this is empty), else made from the first message's MSH-1..6, so that the answer
    still names sender and receiver the right way round."""
    if fhs:
        return b""
    for kind, data in items:
        if kind == "m":
            line = data.split(b"\r", 1)[0].split(b"\n", 1)[0]
            fs = line[3:4]
            return b"BHS" + fs.join(line[3:].split(fs)[:6]) if fs else b""
    return b""


def _first_header(items: tuple[tuple[str, bytes], ...]) -> MshHeader | None:
    """The MSH of a batch's first message, to name the sender in a log line."""
    for kind, data in items:
        if kind == "m":
            try:
                return read_header(data)
            except Hl7Error:
                return None
    return None


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
        #: when each connection last completed a block (or opened): who has stalled longest
        self._progress: dict[asyncio.Task[None], float] = {}
        self.port: int | None = None

    async def start(self) -> int:
        config, context = self.config, self._tls
        # TLS is started per connection in _serve, once the peer is allowed and has a slot: a
        # stranger or a flood costs no handshake.
        self._server = await asyncio.start_server(self._serve, config.host, config.port)
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
        self._progress[task] = time.monotonic()
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            if not self._allowed_peer(str(peer[0])):
                log.warning("MLLP connection from %s refused: not in alerts.mllp.allowed_peers", peer[0])
                return
            if len(self._connections) > self.config.max_connections:
                self._evict(task)
            if self._tls is not None:
                await writer.start_tls(self._tls, ssl_handshake_timeout=min(self.config.idle_timeout_s, _HANDSHAKE_S))
            await self._frames(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError) as exc:
            log.info("MLLP connection from %s ended: %s", peer[0], type(exc).__name__)
        except asyncio.CancelledError:
            pass  # stopped by stop() after its grace period: end quietly
        except Exception:
            log.exception("MLLP connection from %s failed", peer[0])
        finally:
            self._connections.pop(task, None)
            self._progress.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _evict(self, newcomer: asyncio.Task[None]) -> None:
        """Past `max_connections`, the connection that has gone longest without completing a block
        is closed to make room — not the newcomer: a flood of half-open connections must not lock
        the hospital's own engine out (it reconnects and is served), and the memory the open
        blocks hold stays bounded by max_connections × max_frame_bytes."""
        others = [t for t in self._connections if t is not newcomer]
        if not others:
            return
        stalled = min(others, key=lambda t: self._progress.get(t, 0.0))
        victim = self._connections[stalled].get_extra_info("peername") or ("?", 0)
        log.warning("MLLP connection from %s closed to make room: %d connections open "
                    "(alerts.mllp.max_connections); it had completed no block for the longest",
                    victim[0], self.config.max_connections)
        self._progress[stalled] = time.monotonic()  # chosen once, even if it takes a moment to end
        self._connections[stalled].transport.abort()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder(self.config.max_frame_bytes)
        while True:
            # A block still open waits only a short while: its sender may be waiting for us.
            partial = decoder.pending > 0
            wait = self.config.partial_frame_timeout_s if partial else self.config.idle_timeout_s
            try:
                async with asyncio.timeout(wait):
                    data = await reader.read(_READ)
            except TimeoutError:
                if partial:
                    await self._answer(decoder.flush(), writer, after_idle=True)
                    continue
                log.info("MLLP connection idle for %.0f s: closed", self.config.idle_timeout_s)
                return
            if not data:
                return
            items = decoder.feed(data)
            if items:
                task = asyncio.current_task()
                if task is not None:
                    self._progress[task] = time.monotonic()
            await self._answer(items, writer)

    async def _answer(self, items: list[bytes | FrameError], writer: asyncio.StreamWriter, *,
                      after_idle: bool = False) -> None:
        for item in items:
            ack = await self.on_frame(item, after_idle=after_idle)
            if ack is not None:
                writer.write(frame(ack))
                await writer.drain()
