"""Hospital alert → notice seen by a team member, against the raw homeserver.

A private Synapse, a Relais process (`python -m hub run`), N followed persons whose rooms the
member's client (matrix-nio with E2EE, a GP of every person) has joined. HL7 ADT messages
(IHE PAM France A01 admission / A03 discharge, alternating per person) go over one MLLP
connection; each makes Relais post one message (the alert, with the move's handover checklist
inside, SPEC §5). The latency is from the moment a message was due to be sent to the moment the
member's client holds the decrypted alert notice.

Baselines, in the same run, on the same Synapse, into rooms made with the same createRoom body
(encrypted, invite-only, same power levels), seen by the same member client, with the same
notice content per alert:
- `http`: a plain HTTP client PUTs m.room.message events (clear text in an encrypted room: what
  the raw homeserver costs, nothing else);
- `nio-e2ee`: a bare matrix-nio client sends them encrypted (what Relais does, minus Relais).

Each system gets a paced phase (`--rate` alerts/s, latency percentiles) and a flat-out phase
(sustained throughput: alerts whose notice reached the member, per second).

    .venv/bin/python bench/alerts.py [--persons 20] [--rate 5] [--count 200] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import nio
from common import (
    AUTHORITY,
    PASSWORD,
    MemberClient,
    RelaisProcess,
    case_room_spec,
    create_rooms,
    database,
    kind_of,
    load,
    local_id,
    login_token,
    machine,
    make_client,
    ms,
    percentile,
    ratio,
    room_ids,
    room_version,
    seed_files,
    synapse,
    table,
    verdict,
    wait_outbox_empty,
)

from hub.inbound.mllp import MllpDecoder, frame

Sender = Callable[[int], Awaitable[None]]


def adt(seq: int, persons: int, when: datetime) -> bytes:
    """The seq-th message, for person seq % persons: A01 then A03 in turn (each one moves them)."""
    person = seq % persons
    trigger = "A01" if (seq // persons) % 2 == 0 else "A03"
    ts = when.strftime("%Y%m%d%H%M%S%z")
    facility = f"{AUTHORITY}&1.2.250.1.999.1&ISO"
    unit = f"Gériatrie {seq}"
    segments = [
        f"MSH|^~\\&|GAM|{AUTHORITY}|RELAIS|DAC|{ts}||ADT^{trigger}^ADT_{trigger}|BENCH-{seq}|P|2.5^FRA^2.11"
        "|||||FRA|UNICODE UTF-8|FR||2.11^IHE_FRANCE-2.11-PAM",
        f"EVN||{ts}||||{ts}",
        f"PID|1||{local_id(person)}^^^{facility}^PI||BENCH^PERSONNE^^^^^L||19380514|F",
        f"PV1|1|I|{unit}^^^{facility}",
        f"ZBE|MVT-{seq}^{AUTHORITY}|{ts}||INSERT|N||{unit}^^^^^{facility}^UF",
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


class MllpSender:
    """One MLLP connection; each frame waits for its ACK, as a hospital interface engine does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.decoder = reader, writer, MllpDecoder()

    @classmethod
    async def connect(cls, port: int) -> MllpSender:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, message: bytes) -> bytes:
        self.writer.write(frame(message))
        await self.writer.drain()
        while True:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("MLLP peer closed")
            got = [f for f in self.decoder.feed(data) if isinstance(f, bytes)]
            if got:
                if b"MSA|AA|" not in got[0]:
                    raise RuntimeError(f"not acknowledged: {got[0]!r}")
                return got[0]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Tracker:
    """Matches each alert notice the member sees to the alert due earliest in that room."""

    rooms: set[str]
    due: dict[str, deque[float]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    alerts: int = 0
    handovers: int = 0
    last_seen: float = 0.0
    contents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def expect(self, room: str, when: float) -> None:
        self.due.setdefault(room, deque()).append(when)

    def __call__(self, room_id: str, event: Any, seen: float) -> None:
        if room_id not in self.rooms:
            return
        kind = kind_of(event) or ""
        if not kind.startswith("alert."):
            return
        # One message per hospital event: a move's checklist travels inside the alert.
        self.alerts += 1
        if "À faire" in str(event.source["content"].get("body", "")):
            self.handovers += 1
        queue = self.due.get(room_id)
        if queue:
            self.latencies.append(seen - queue.popleft())
        self.contents.setdefault(kind.split(".")[0], dict(event.source["content"]))
        self.last_seen = seen

    def reset(self) -> None:
        self.due.clear()
        self.latencies = []
        self.alerts = self.handovers = 0

    async def wait(self, alerts: int, timeout: float = 120) -> None:  # noqa: ASYNC109
        deadline = time.perf_counter() + timeout
        while self.alerts < alerts:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"saw {self.alerts} alerts of {alerts} ({self.handovers} with a checklist)")
            await asyncio.sleep(0.01)


@dataclass
class Result:
    name: str
    latencies: list[float]
    throughput: float


async def phase(tracker: Tracker, rooms: Sequence[str], count: int, rate: float, start: int,
                send: Sender) -> tuple[list[float], float]:
    """Send `count` alerts (numbered from `start`) at `rate` per second (0: flat out); return the
    latencies and the alerts per second whose notices were seen."""
    tracker.reset()
    began = time.perf_counter()
    for i in range(count):
        due = began + i / rate if rate > 0 else time.perf_counter()
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tracker.expect(rooms[(start + i) % len(rooms)], due)
        await send(start + i)
    await tracker.wait(count)
    return list(tracker.latencies), count / (tracker.last_seen - began)


async def measure(name: str, tracker: Tracker, rooms: Sequence[str], args: argparse.Namespace,
                  send: Sender) -> Result:
    """Warm-up (one alert per room: olm sessions, room keys), paced phase, flat-out phase."""
    await phase(tracker, rooms, len(rooms), 0, 0, send)
    latencies, _ = await phase(tracker, rooms, args.count, args.rate, len(rooms), send)
    _, throughput = await phase(tracker, rooms, args.count, 0, len(rooms) + args.count, send)
    print(f"  {name}: p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}, "
          f"{throughput:.1f} alerts/s", flush=True)
    return Result(name, latencies, throughput)


async def run(args: argparse.Namespace, folder: Path) -> list[Result]:
    async with synapse(folder) as server, database(args.db, folder) as url:
        # The case manager has a device (never syncing here): Relais encrypts for it too.
        cm_client = await make_client(server, "cm", folder)
        cm = cm_client.user_id
        await cm_client.close()
        gp = MemberClient(await make_client(server, "gp", folder))
        gp.start()
        relais = RelaisProcess(server, folder, url, [cm])
        await relais.configure()
        base = datetime.now(UTC) - timedelta(days=2)
        await seed_files(url, args.persons, cm, [gp.client.user_id])
        results: list[Result] = []
        try:
            await relais.start()
            opened = await wait_outbox_empty(url, 600)
            print(f"  relais: {args.persons} rooms opened and the team invited in {opened:.1f} s", flush=True)
            refs = await room_ids(url)
            rooms = [refs[ref] for ref in sorted(refs)]
            await gp.wait_joined(rooms)
            tracker = Tracker(set(rooms))
            gp.listeners.append(tracker)
            mllp = await MllpSender.connect(relais.mllp_port)

            acks: list[float] = []

            async def via_relais(seq: int) -> None:
                sent = time.perf_counter()
                await mllp.send(adt(seq, args.persons, base + timedelta(seconds=seq)))
                acks.append(time.perf_counter() - sent)

            results.append(await measure("relais", tracker, rooms, args, via_relais))
            # Where Relais' share of the latency goes: the hospital's ACK comes once the message is
            # stored, matched and its notice enqueued (two commits), before any Matrix request.
            paced = acks[len(rooms):len(rooms) + args.count]
            print(f"  relais: hospital ACK p50 {ms(percentile(paced, 50))}, p99 {ms(percentile(paced, 99))} "
                  "(stored, matched, notice enqueued)", flush=True)
            await mllp.close()
            notices = [tracker.contents["alert"]]  # one message per hospital event, as Relais sends
            results.append(await _plain(server, gp, notices, args))
            results.append(await _nio(server, gp, folder, notices, args))
        finally:
            await relais.stop()
            await gp.stop()
    return results


async def _baseline_rooms(server: Any, token: str, creator: str, gp: MemberClient, count: int) -> list[str]:
    version = await room_version(server.url, token)
    specs = [case_room_spec(f"B-{secrets.token_hex(3)}", creator, version) for _ in range(count)]
    rooms = await create_rooms(server.url, token, specs, [gp.client.user_id])
    await gp.wait_joined(rooms)
    return rooms


async def _plain(server: Any, gp: MemberClient, notices: list[dict[str, Any]], args: argparse.Namespace) -> Result:
    user = await server.register("plain", PASSWORD)
    token = await login_token(server.url, user)
    async with aiohttp.ClientSession() as http:
        rooms = await _baseline_rooms(server, token, user, gp, args.persons)
        tracker = Tracker(set(rooms))
        gp.listeners.append(tracker)
        headers = {"Authorization": f"Bearer {token}"}

        async def send(seq: int) -> None:
            room = rooms[seq % len(rooms)]
            for index, body in enumerate(notices):
                path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/plain-{seq}-{index}"
                async with http.put(server.url + path, headers=headers, json=body) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"send failed: {resp.status}")

        return await measure("http (clear)", tracker, rooms, args, send)


async def _nio(server: Any, gp: MemberClient, folder: Path, notices: list[dict[str, Any]],
               args: argparse.Namespace) -> Result:
    sender = MemberClient(await make_client(server, "e2ee", folder, cross_signed=False), auto_join=False)
    sender.start()
    try:
        rooms = await _baseline_rooms(server, sender.client.access_token, sender.client.user_id, gp, args.persons)
        await sender.wait_joined(rooms)
        # Like BotClient.send: the members and their devices known before the first room key goes out.
        for room in rooms:
            await sender.client.joined_members(room)
        if sender.client.should_query_keys:
            await sender.client.keys_query()
        tracker = Tracker(set(rooms))
        gp.listeners.append(tracker)

        async def send(seq: int) -> None:
            room = rooms[seq % len(rooms)]
            for body in notices:
                resp = await sender.client.room_send(room, "m.room.message", body, ignore_unverified_devices=True)
                if not isinstance(resp, nio.RoomSendResponse):
                    raise RuntimeError(f"send failed: {resp}")

        return await measure("nio E2EE", tracker, rooms, args, send)
    finally:
        await sender.stop()


def report(results: list[Result], args: argparse.Namespace) -> None:
    by = {r.name: r for r in results}
    relais = by["relais"]
    rows = [["system", "p50", "p95", "p99", "alerts/s",
             "p50 ratio", "p99 ratio", "throughput ratio"]]
    for r in results:
        p = [percentile(r.latencies, q) for q in (50, 95, 99)]
        rows.append([r.name, *(ms(v) for v in p), f"{r.throughput:.1f}",
                     "", "", ""])
    for r in results[1:]:
        rows.append([f"relais / {r.name}", "", "", "",  "",
                     ratio(percentile(relais.latencies, 50), percentile(r.latencies, 50)),
                     ratio(percentile(relais.latencies, 99), percentile(r.latencies, 99)),
                     f"{relais.throughput / r.throughput:.0%}"])
    print(f"\nalerts: {args.persons} persons, {args.count} alerts at {args.rate}/s then {args.count} flat out, "
          f"database {args.db}\n{machine()}\n{load()}\n")
    print(table(rows))
    nio_e2ee = by.get("nio E2EE")
    if nio_e2ee is not None:
        print()
        p50 = percentile(relais.latencies, 50) / percentile(nio_e2ee.latencies, 50)
        p99 = percentile(relais.latencies, 99) / percentile(nio_e2ee.latencies, 99)
        print(verdict("alert latency p50 / bare nio E2EE", p50, 1.2))
        print(verdict("alert latency p99 / bare nio E2EE", p99, 1.5))
        print(verdict("sustained alerts/s / bare nio E2EE", relais.throughput / nio_e2ee.throughput, 0.9,
                      "%", at_least=True))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="alerts per second in the paced phase")
    parser.add_argument("--count", type=int, default=200, help="alerts per phase")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
        report(await run(args, Path(tmp)), args)


if __name__ == "__main__":
    asyncio.run(main())
