"""`relais demo`: a private Synapse, demo accounts, a demo file with its team, all on 127.0.0.1.

Everything lives under one folder and is reused on the next run (same accounts, same room).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import date
from pathlib import Path

from hub.app import Relais
from hub.config import Config, load_config
from hub.devserver import DevSynapse, free_port, port_is_free
from hub.domain import team
from hub.domain.caseload import Limits
from hub.domain.persons import INS, Identifier
from hub.domain.team import Role
from hub.services import cases
from hub.services.outbox import enqueue
from hub.storage import migrate

log = logging.getLogger(__name__)

DEMO_PASSWORD = "relais-demo"
ACCOUNTS = (  # localpart, what they play
    ("gestionnaire", "case manager (gestionnaire de cas)"),
    ("medecin", "GP (médecin traitant)"),
    ("infirmiere", "nurse (infirmière libérale)"),
    ("pilote", "territory pilot"),
)
DEMO_NIR = "255081416802538"  # a syntactically valid, fictitious INS-NIR


def _write_config(folder: Path, synapse: DevSynapse, http_port: int, mllp_port: int) -> Path:
    path = folder / "relais.toml"
    s = synapse.server_name
    path.write_text(f"""# Written by `relais demo`: a private, throw-away setup on 127.0.0.1.
[matrix]
homeserver = "{synapse.url}"
user_id = "@relais:{s}"
password = "{DEMO_PASSWORD}-bot"
store_path = "{folder / 'store'}"
allowed_servers = ["{s}"]

[database]
url = "sqlite+aiosqlite:///{folder / 'relais.db'}"

[care]
language = "fr"
case_managers = ["@gestionnaire:{s}"]
pilots = ["@pilote:{s}"]

[alerts]
ins_test_oids = true

[alerts.mllp]
port = {mllp_port}

[http]
port = {http_port}
fhir_token = "demo-fhir-token-not-for-production"
""", encoding="utf-8")
    return path


async def _seed(relais: Relais) -> str:
    """Open the demo file once (kv flag), with the GP and the nurse in its team."""
    s = relais.config.matrix.server_name
    now = relais.clock.now()
    async with relais.db.unit() as uow:
        seeded = await uow.kv.get("demo_case")
        if seeded:
            return seeded
        cm = f"@gestionnaire:{s}"
        person, _warnings, effects = await cases.open_case(
            uow, referent=cm, name="Jeanne Démo", born=date(1938, 5, 14),
            identifiers=[Identifier(INS, DEMO_NIR), Identifier("CHU-DEMO", "900001")],
            limits=Limits(40, 60, 5), now=now)
        members = await uow.team.members(person.case_ref)
        for user, role in ((f"@medecin:{s}", Role.GP), (f"@infirmiere:{s}", Role.NURSE)):
            member, more = team.add_member(members, person.case_ref, user, role, None, by=cm, now=now,
                                           allowed_servers=(s,), bot_user=relais.config.matrix.user_id)
            await uow.team.add(person.case_ref, member)
            effects += more
        await enqueue(uow, "demo:seed", effects, now)
        await uow.kv.set("demo_case", person.case_ref)
    relais.outbox.wake()
    return person.case_ref


def _prepare(data: str) -> Path:
    folder = Path(data).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def run_demo(data: str, port: int, exit_when_ready: bool) -> int:
    folder = _prepare(data)
    synapse = DevSynapse(folder / "synapse", port=port if port_is_free(port) else None)
    await synapse.start()
    try:
        await synapse.register("relais", f"{DEMO_PASSWORD}-bot")
        for localpart, _role in ACCOUNTS:
            await synapse.register(localpart, DEMO_PASSWORD)
        cfg_path = folder / "relais.toml"
        if not await asyncio.to_thread(cfg_path.exists):
            _write_config(folder, synapse, free_port(), free_port())
        config: Config = load_config(cfg_path)
        from hub.storage.database import make_engine

        engine = make_engine(config.database.url)
        await migrate.upgrade(engine)
        await engine.dispose()
        relais = Relais(config)
        await relais.start()
        try:
            case_ref = await _seed(relais)
            await asyncio.wait_for(relais.outbox.idle.wait(), 60)
            _print_instructions(synapse, case_ref, relais)
            if not exit_when_ready:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError):
                        loop.add_signal_handler(sig, stop.set)
                await stop.wait()
        finally:
            await relais.stop()
    finally:
        await synapse.stop()
    return 0


def _print_instructions(synapse: DevSynapse, case_ref: str, relais: Relais) -> None:
    lines = [
        "",
        "Relais demo is running.",
        f"  Homeserver : {synapse.url}   (server name: {synapse.server_name})",
        f"  Demo file  : {case_ref} (room 'Suivi {case_ref}')",
        f"  Health     : http://127.0.0.1:{relais.http_port}/readyz",
        "  Log in from any Matrix client (Element: 'Edit' the homeserver, paste the URL above):",
    ]
    lines += [f"    @{lp}:{synapse.server_name} / {DEMO_PASSWORD}  — {role}" for lp, role in ACCOUNTS]
    lines += ["  The case manager has a desk room with the bot: type !aide there.",
              "  Ctrl-C stops everything; data stays in the demo folder for the next run.", ""]
    print("\n".join(lines), flush=True)
