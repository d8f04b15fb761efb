"""`relais demo`: a private Synapse, demo accounts, a demo file with its team, all on 127.0.0.1.

Everything lives under one folder and is reused on the next run (same accounts, same room).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from hub.app import Relais
from hub.config import Config, load_config
from hub.devserver import DevSynapse, free_port, port_is_free
from hub.domain import team
from hub.domain.caseload import Limits
from hub.domain.persons import INS, Identifier
from hub.domain.team import Role
from hub.inbound.mllp import FrameError, MllpDecoder, frame
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
DEMO_LOCAL_ID = ("CHU-DEMO", "900001")
_DEMO_STAY = "demo_stay"  # kv: the stay's reference time, then "done" once the hospital was answered


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
processing_ids = ["P", "T", "D"]

[alerts.mllp]
port = {mllp_port}

[http]
port = {http_port}
admin_port = 0
fhir_token = "demo-fhir-token-not-for-production"
""", encoding="utf-8")
    return path


def follow_homeserver(cfg_path: Path, url: str) -> bool:
    """Point the demo's relais.toml at the homeserver's URL of this run; True if it moved.

    The homeserver takes another port when `--port` changes or its port is taken: the bot would
    otherwise wait forever for the previous one."""
    text = cfg_path.read_text(encoding="utf-8")
    moved = re.sub(r'(?m)^homeserver = ".*"$', f'homeserver = "{url}"', text, count=1)
    if moved == text:
        return False
    cfg_path.write_text(moved, encoding="utf-8")
    return True


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
            limits=Limits(40, 60, 5), now=now, tz=relais.clock.tz)
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


def demo_stay_messages(base: datetime) -> list[bytes]:
    """An IHE PAM France (HL7 2.5) admission three days before `base`, then a discharge home.

    Built from `base` only, so a replay after a crash sends the same bytes (deduplicated).
    """
    authority, local_id = DEMO_LOCAL_ID
    facility = f"{authority}&1.2.250.1.999.1&ISO"
    pid = (f"PID|1||{local_id}^^^{facility}^PI~{DEMO_NIR}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
           "||DEMO^JEANNE^^^^^L||19380514|F")
    unit = "Médecine gériatrique"
    out = []
    for trigger, moment, movement in (("A01", base - timedelta(days=3), "DEMO-MVT-1"),
                                      ("A03", base - timedelta(hours=1), "DEMO-MVT-2")):
        ts = moment.strftime("%Y%m%d%H%M%S%z")
        segments = [
            f"MSH|^~\\&|GAM|{authority}|RELAIS|DAC|{ts}||ADT^{trigger}^ADT_{trigger}|DEMO-{trigger}|P|2.5^FRA^2.11"
            "|||||FRA|UNICODE UTF-8|FR||2.11^IHE_FRANCE-2.11-PAM",
            f"EVN||{ts}||||{ts}",
            pid,
            f"PV1|1|I|{unit}^^^{facility}",
            f"ZBE|{movement}^{authority}|{ts}||INSERT|N||{unit}^^^^^{facility}^UF",
        ]
        out.append(("\r".join(segments) + "\r").encode("utf-8"))
    return out


async def send_mllp(host: str, port: int, messages: list[bytes]) -> list[bytes]:
    """Send messages over one MLLP connection, one at a time; return the acknowledgements."""
    reader, writer = await asyncio.open_connection(host, port)
    acks: list[bytes | FrameError] = []
    try:
        decoder = MllpDecoder()
        for message in messages:
            writer.write(frame(message))
            await writer.drain()
            got: list[bytes | FrameError] = []
            while not got:
                data = await asyncio.wait_for(reader.read(65536), 30)
                if not data:
                    raise ConnectionError("MLLP peer closed the connection")
                got = decoder.feed(data)
            acks += got
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return [ack for ack in acks if isinstance(ack, bytes)]


async def play_hospital_stay(relais: Relais) -> bool:
    """The demo person's hospital stay, through the real MLLP port, once per demo folder."""
    async with relais.db.unit() as uow:
        state = await uow.kv.get(_DEMO_STAY)
        if state == "done":
            return False
        if state is None:
            state = relais.clock.now().replace(microsecond=0).isoformat()
            await uow.kv.set(_DEMO_STAY, state)
    assert relais.mllp_port is not None, "the MLLP listener is off"
    host = relais.config.alerts.mllp.host
    acks = await send_mllp("127.0.0.1" if host in ("0.0.0.0", "::") else host, relais.mllp_port,
                           demo_stay_messages(datetime.fromisoformat(state)))
    if not acks or any(b"MSA|AA|" not in ack for ack in acks):
        raise RuntimeError("the demo hospital stay was not acknowledged")
    async with relais.db.unit() as uow:
        await uow.kv.set(_DEMO_STAY, "done")
    return True


async def _stay_once_someone_joins(relais: Relais, case_ref: str) -> None:
    """Play the stay once a person has joined the demo room.

    Room keys go only to devices that exist when a message is sent: alerts played before anyone
    logged in could never be decrypted by them, so the stay waits for the first member.
    """
    async with relais.db.unit() as uow:
        person = await uow.persons.get(case_ref)
    room_id = person.room_id if person else None
    while room_id:
        resp = await relais.client.api.joined_members(room_id)
        members = getattr(resp, "members", [])
        if any(m.user_id != relais.client.user_id for m in members):
            break
        await asyncio.sleep(2)
    await asyncio.sleep(2)  # let the newcomer's client publish its keys before the first alert
    if await play_hospital_stay(relais):
        log.info("demo: the hospital stay was played")


def _prepare(data: str) -> Path:
    folder = Path(data).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def run_demo(data: str, port: int, exit_when_ready: bool, announce: Callable[[str], None]) -> int:
    """`announce` shows the login instructions to the person at the terminal (the CLI prints)."""
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
        elif await asyncio.to_thread(follow_homeserver, cfg_path, synapse.url):
            log.info("demo: the homeserver is now on %s (relais.toml updated)", synapse.url)
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
            announce(instructions(synapse, case_ref, relais))
            if not exit_when_ready:
                relais.tasks.spawn(_stay_once_someone_joins(relais, case_ref), name="demo-stay")
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


def instructions(synapse: DevSynapse, case_ref: str, relais: Relais) -> str:
    lines = [
        "",
        "Relais demo is running.",
        f"  Homeserver : {synapse.url}   (server name: {synapse.server_name})",
        f"  Demo file  : {case_ref} (room 'Suivi {case_ref}')",
        f"  Health     : http://127.0.0.1:{relais.http_port}/readyz"
        f"   (metrics: http://127.0.0.1:{relais.admin_port}/metrics)",
        "  Log in from any Matrix client (Element: 'Edit' the homeserver, paste the URL above):",
    ]
    lines += [f"    @{lp}:{synapse.server_name} / {DEMO_PASSWORD}  — {role}" for lp, role in ACCOUNTS]
    lines += ["  The case manager has a desk room with the bot: type !aide there.",
              "  When the first person joins the demo room, a hospital sends an admission then a",
              "  discharge for the demo person (HL7 over MLLP): the alerts appear in the room.",
              "  Ctrl-C stops everything; data stays in the demo folder for the next run.", ""]
    return "\n".join(lines)
