"""Run a real Relais against the session Synapse, with real professionals' clients.

Each test gets its own bot account, people and database, so tests sharing one homeserver
never see each other's rooms.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nio

from hub.app import Relais
from hub.clock import Clock
from hub.config import Config, load_config
from hub.devserver import DevSynapse
from hub.storage import migrate
from hub.storage.database import make_engine
from tests.matrix_helpers import accept_invite, make_client, send_text, skip_seen, sync, wait_for_event

BOT_PASSWORD = "bot-password-for-tests"


def kind_of(event: Any) -> str | None:
    source = getattr(event, "source", None) or {}
    return (source.get("content") or {}).get("fr.relais.kind")


def content_of(event: Any) -> dict[str, Any]:
    return dict((getattr(event, "source", None) or {}).get("content") or {})


def shows(event: Any, user_id: str) -> bool:
    """The message shows this person as a pill (the link Element draws as one), by any name."""
    return f'href="https://matrix.to/#/{user_id}"' in str(content_of(event).get("formatted_body") or "")


def is_notice(kind: str | tuple[str, ...], bot: str) -> Callable[[Any], bool]:
    kinds = (kind,) if isinstance(kind, str) else kind
    return lambda e: getattr(e, "sender", None) == bot and kind_of(e) in kinds


@dataclass
class Hub:
    synapse: DevSynapse
    tmp: Path
    db_url: str
    tag: str
    bot: str = ""
    config: Config | None = None
    relais: Relais | None = None
    clients: dict[str, nio.AsyncClient] = field(default_factory=dict)

    def user(self, name: str) -> str:
        return f"@{name}{self.tag}:{self.synapse.server_name}"

    async def setup(self, case_managers: tuple[str, ...] = ("cm",), pilots: tuple[str, ...] = (),
                    **sections: dict[str, Any]) -> None:
        self.bot = await self.synapse.register(f"relais{self.tag}", BOT_PASSWORD)
        for name in (*case_managers, *pilots):
            await self.client(name)
        toml = self.tmp / f"relais{self.tag}.toml"
        care = {"case_managers": [self.user(n) for n in case_managers],
                "pilots": [self.user(n) for n in pilots], **sections.pop("care", {})}
        matrix = {"homeserver": self.synapse.url, "user_id": self.bot, "password": BOT_PASSWORD,
                  "store_path": str(self.tmp / f"store{self.tag}"), **sections.pop("matrix", {})}
        http = {"port": 0, "admin_port": 0, **sections.pop("http", {})}
        alerts = sections.pop("alerts", {})
        alerts.setdefault("mllp", {}).setdefault("port", 0)
        toml.write_text("", encoding="utf-8")
        self.config = load_config(toml, matrix=matrix, database={"url": self.db_url}, care=care,
                                  http=http, alerts=alerts, **sections)
        engine = make_engine(self.db_url)
        await migrate.upgrade(engine)
        await engine.dispose()

    async def start(self, clock: Clock | None = None) -> Relais:
        assert self.config is not None, "setup() first"
        self.relais = Relais(self.config, clock=clock)
        await self.relais.start()
        return self.relais

    async def stop(self) -> None:
        if self.relais is not None:
            await self.relais.stop()
            self.relais = None

    async def client(self, name: str) -> nio.AsyncClient:
        if name not in self.clients:
            self.clients[name] = await make_client(self.synapse, f"{name}{self.tag}", self.tmp)
        return self.clients[name]

    async def close(self) -> None:
        await self.stop()
        for client in self.clients.values():
            await client.close()

    async def desk(self, name: str = "cm") -> str:
        """Accept the desk the bot opened for `name` and read its welcome notice."""
        client = await self.client(name)
        for _ in range(60):
            for room_id, room in client.invited_rooms.items():
                if self.bot in (room.inviter, *room.users):
                    await accept_invite(client, room_id)
                    await wait_for_event(client, room_id, is_notice("command.reply", self.bot))
                    return room_id
            await sync(client)
        raise AssertionError(f"no desk invite for {name}")

    async def command(self, name: str, room_id: str, text: str, wait_s: float = 30.0) -> Any:
        """Type a command and return the bot's reply (command.reply or command.error)."""
        client = await self.client(name)
        await skip_seen(client, room_id)
        await send_text(client, room_id, text)
        return await wait_for_event(client, room_id,
                                    is_notice(("command.reply", "command.error"), self.bot), wait_s)

    async def open_case(self, name: str = "cm", desk: str | None = None,
                        text: str = '!new "Jeanne Dupont" --born 1938-05-14') -> tuple[str, str]:
        """Open a file from the desk; accept the room; return (case_ref, room_id)."""
        desk = desk or await self.desk(name)
        reply = await self.command(name, desk, text)
        assert kind_of(reply) == "command.reply", reply.body
        case_ref = content_of(reply)["fr.relais.case"] or reply.body.split()[1]
        client = await self.client(name)
        room_id = await self.invited_room(client)
        await accept_invite(client, room_id)
        return case_ref, room_id

    async def invited_room(self, client: nio.AsyncClient, timeout_syncs: int = 60) -> str:
        for _ in range(timeout_syncs):
            for room_id, room in client.invited_rooms.items():
                if room.inviter == self.bot or self.bot in room.users:
                    return str(room_id)
            await sync(client)
        raise AssertionError(f"{client.user_id} got no invite from the bot")


def new_tag() -> str:
    return secrets.token_hex(3)
