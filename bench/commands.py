"""Command → reply round trip (`!equipe` in a person's room), against a bare echo bot.

The case manager's client (matrix-nio, E2EE, cross-signed) types `!equipe` in a person's room
and waits for the decrypted reply; Relais runs in its own process. Baseline, same run, same
Synapse: a bare matrix-nio client with E2EE in its own process (bench/bare_client.py) in a room
made with the same createRoom body, answering the same text with the very reply content Relais
gave, encrypted. Rounds are sequential: the next command goes once the reply was read.

    .venv/bin/python bench/commands.py [--rounds 50] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nio
from common import (
    PASSWORD,
    BareProcess,
    MemberClient,
    RelaisProcess,
    case_room_spec,
    create_rooms,
    database,
    kind_of,
    load,
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

COMMAND = "!equipe"


class Replies:
    """The replies the case manager's client sees in one room, stamped when they arrived."""

    def __init__(self, room: str, sender: str) -> None:
        self.room, self.sender = room, sender
        self.arrived: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    def __call__(self, room_id: str, event: Any, seen: float) -> None:
        if room_id == self.room and getattr(event, "sender", None) == self.sender \
                and kind_of(event) in ("command.reply", "command.error"):
            self.arrived.put_nowait((seen, dict(event.source["content"])))


async def rounds(cm: MemberClient, room: str, replies: Replies, count: int) -> tuple[list[float], dict[str, Any]]:
    await cm.client.joined_members(room)
    if cm.client.should_query_keys:
        await cm.client.keys_query()
    times: list[float] = []
    last: dict[str, Any] = {}
    for _ in range(count):
        sent = time.perf_counter()
        resp = await cm.client.room_send(room, "m.room.message", {"msgtype": "m.text", "body": COMMAND},
                                         ignore_unverified_devices=True)
        if not isinstance(resp, nio.RoomSendResponse):
            raise RuntimeError(f"send failed: {resp}")
        seen, last = await asyncio.wait_for(replies.arrived.get(), 60)
        times.append(seen - sent)
    return times, last


async def run(args: argparse.Namespace, folder: Path) -> dict[str, list[float]]:
    async with synapse(folder) as server, database(args.db, folder) as url:
        cm = MemberClient(await make_client(server, "cm", folder))
        cm.start()
        relais = RelaisProcess(server, folder, url, [cm.client.user_id])
        await relais.configure()
        await seed_files(url, 1, cm.client.user_id)
        echo: BareProcess | None = None
        try:
            await relais.start()
            await wait_outbox_empty(url, 300)
            room = next(iter((await room_ids(url)).values()))
            await cm.wait_joined([room])
            replies = Replies(room, relais.bot)
            cm.listeners.append(replies)
            await rounds(cm, room, replies, 3)  # warm-up: room keys both ways
            relais_times, reply = await rounds(cm, room, replies, args.rounds)
            print(f"  relais: p50 {ms(percentile(relais_times, 50))}", flush=True)

            user = await server.register("echo", PASSWORD)
            token = await login_token(server.url, user)
            spec = case_room_spec("B-echo", user, await room_version(server.url, token))
            echo_room = (await create_rooms(server.url, token, [spec], [cm.client.user_id]))[0]
            await cm.wait_joined([echo_room])
            (folder / "reply.json").write_text(json.dumps(reply), encoding="utf-8")
            echo = BareProcess(server.url, user, folder / "echo-store", folder / "reply.json")
            await echo.start()
            echoes = Replies(echo_room, user)
            cm.listeners.append(echoes)
            await rounds(cm, echo_room, echoes, 3)
            echo_times, _ = await rounds(cm, echo_room, echoes, args.rounds)
        finally:
            if echo is not None:
                await echo.stop()
            await relais.stop()
            await cm.stop()
    return {"relais": relais_times, "bare nio echo": echo_times}


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    relais, echo = results["relais"], results["bare nio echo"]
    rows = [["system", "p50", "p95", "p99"]]
    for name, times in results.items():
        rows.append([name, *(ms(percentile(times, q)) for q in (50, 95, 99))])
    rows.append(["relais / echo", *(ratio(percentile(relais, q), percentile(echo, q)) for q in (50, 95, 99))])
    print(f"\ncommands: {args.rounds} sequential `{COMMAND}` round trips, database {args.db}\n{machine()}\n"
          f"{load()}\n")
    print(table(rows))
    print()
    print(verdict("command round trip p50 / bare nio echo bot", percentile(relais, 50) / percentile(echo, 50), 1.1))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
        report(await run(args, Path(tmp)), args)


if __name__ == "__main__":
    asyncio.run(main())
