"""Reliability figures: the fault scenarios and the fuzzers of tests/ with larger N; rewrites
docs/reliability.md.

    .venv/bin/python bench/reliability.py [--cycles 10] [--hs-rounds 2] [--poison-rounds 5] [--fuzz 5000]
        [--faults-only | --fuzz-only] [--pg-ctl "pg_ctlcluster --skip-systemctl-redirect 15 main"]

The figures the documentation promises: --cycles 100 --hs-rounds 10 --fuzz 100000 (hours on a
quiet machine; the FHIR fuzz alone posts each input over a real socket).

Starts its own Synapse on 127.0.0.1 and uses SQLite files (RELAIS_TEST_POSTGRES, when set,
selects PostgreSQL as in the test-suite; with --pg-ctl the PostgreSQL server itself is stopped
and started again mid-load — only on a machine whose server is the bench's own). Each run keeps
its figures in bench/results/reliability-<sqlite|postgresql|fuzz>.json and renders
docs/reliability.md from every file there, so a PostgreSQL run does not erase the SQLite one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RELAIS_FUZZ_EXPLORE", "1")  # new inputs on every run, unlike the suite

from hub.devserver import DevSynapse, free_port  # noqa: E402
from tests.faults.harness import World  # noqa: E402
from tests.faults.scenarios import (  # noqa: E402
    Figures,
    RateLimitingProxy,
    crash_loop,
    database_unavailable,
    homeserver_restart,
    rate_limited,
    room_deleted,
)
from tests.fuzz.surfaces import fuzz_command_parser, fuzz_fhir, fuzz_hl7, fuzz_mllp  # noqa: E402
from tests.fuzz.test_fuzz import FhirEndpoint  # noqa: E402
from tests.security.test_access_matrix import cell_count  # noqa: E402


async def _db_url(tmp: Path) -> str:
    base = os.environ.get("RELAIS_TEST_POSTGRES")
    if not base:
        return f"sqlite+aiosqlite:///{tmp / f'relais-{secrets.token_hex(3)}.db'}"
    import asyncpg

    name = f"relais_b_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return base.rsplit("/", 1)[0] + "/" + name


async def scenarios(tmp: Path, cycles: int, hs_rounds: int, poison_rounds: int,
                    pg_ctl: list[str] | None) -> list[Figures]:
    out: list[Figures] = []
    synapse = DevSynapse(tmp / "hs", port=free_port())
    await synapse.start()
    try:
        async def run(name: str, coro_factory, homeserver: str | None = None) -> None:  # type: ignore[no-untyped-def]
            (tmp / f"w-{name}").mkdir()
            world = World(synapse, tmp / f"w-{name}", await _db_url(tmp))
            started = time.monotonic()
            try:
                await world.setup(homeserver=homeserver)
                figures = await coro_factory(world)
            except AssertionError as exc:  # a scenario that never settled: a figure, not a crash of the bench
                figures = Figures(name, problems=[str(exc)])
                print(f"{name}: {exc}\n--- hub log ---\n{world.relais.tail(200)}", flush=True)
            finally:
                await world.close()
            figures.extra["seconds"] = round(time.monotonic() - started)
            print(f"{figures.name}: {'OK' if figures.ok else figures.problems}", flush=True)
            out.append(figures)

        await run("crash", lambda w: crash_loop(w, cycles=cycles, alerts_per_cycle=4, commands_per_cycle=2, seed=2026,
                                                files_every=4))
        await run("hs", lambda w: homeserver_restart(w, synapse, rounds=hs_rounds, alerts=6, commands=3))
        proxy = RateLimitingProxy(synapse.url, every=3, retry_after_ms=150)
        await proxy.start()
        try:
            async def limited(w: World) -> Figures:
                await w.restart_through(proxy.url)
                return await rate_limited(w, proxy, alerts=10, commands=6)

            await run("429", limited)
        finally:
            await proxy.stop()
        await run("db", lambda w: database_unavailable(w, w.db_url, outage_s=3.0, alerts=6, commands=3,
                                                       pg_ctl=pg_ctl))
        await run("poison", lambda w: room_deleted(w, rounds=poison_rounds))
    finally:
        await synapse.stop()
    return out


def figure_record(f: Figures) -> dict[str, Any]:
    """One scenario's figures as kept in bench/results (JSON)."""
    return {"name": f.name, "alerts_acked": f.alerts_acked, "alert_notices": f.alert_notices,
            "expected": sum(f.expected.values()), "commands_sent": f.commands_sent,
            "command_notices": f.command_notices, "problems": f.problems, "extra": f.extra}


def _verdict(record: dict[str, Any]) -> str:
    return "0 lost, 0 duplicated" if not record["problems"] else "PROBLEMS: " + "; ".join(record["problems"])


def fault_lines(backend: str, run: dict[str, Any]) -> list[str]:
    """The table and the script-readable lines of one backend's fault run."""
    records: list[dict[str, Any]] = run["figures"]
    lines = [f"### {backend} (run of {run['when']}, load average {run.get('load', '?')})", "",
             "| scenario | alerts ACKed | alert + handover notices (expected) | commands accepted | plan notices | "
             "result | details |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        details = ", ".join(f"{k}={v}" for k, v in r["extra"].items())
        result = "OK" if not r["problems"] else "; ".join(r["problems"])
        lines.append(f"| {r['name']} | {r['alerts_acked']} | {r['alert_notices']} ({r['expected']}) | "
                     f"{r['commands_sent']} | {r['command_notices']} | {result} | {details} |")
    lines += ["", f"Figures, one per line (read by scripts; {backend}):", ""]
    by_name = {r["name"]: r for r in records}
    if crash := by_name.get("hub SIGKILL"):
        x = crash["extra"]
        lines.append(f"- {x.get('kills', 0)} kill/restart cycles ({backend}; {x.get('kills_during_start', 0)} of them "
                     f"during the hub's own start; {x.get('files_opened', 0)} files opened, each with one room): "
                     f"{_verdict(crash)}")
    if hs := by_name.get("homeserver killed"):
        lines.append(f"- {hs['extra'].get('rounds', 0)} homeserver kill/restart cycles ({backend}): {_verdict(hs)}")
    if db := by_name.get("database unavailable"):
        lines.append(f"- 1 database outage mid-load ({backend}: {db['extra'].get('outage')}): {_verdict(db)}")
    if poison := by_name.get("room deleted by an administrator"):
        x = poison["extra"]
        lines.append(f"- poison ({backend}; one file's room deleted): the other file's median alert latency "
                     f"{x.get('median_latency_before_s')} s before, {x.get('median_latency_during_s')} s during; "
                     f"{x.get('dead_lettered')} notices dead-lettered, {x.get('reported')} reported to the referent")
    return [*lines, ""]


def render(results: dict[str, dict[str, Any]]) -> str:
    """docs/reliability.md from the kept results: `sqlite`, `postgresql` (fault runs), `fuzz`."""
    lines = [
        "# Reliability and security figures",
        "",
        "Regenerated by `.venv/bin/python bench/reliability.py` from the runs kept in `bench/results/` (one per "
        "backend for the faults, one for the fuzzers). Every scenario runs real processes on 127.0.0.1: a real "
        "Synapse, Relais as `python -m hub run` (killed with SIGKILL where said), real MLLP sockets, a real "
        "database. Notices are counted as the GP's own E2EE client reads them in the person's room; a file "
        "opened during the kills must have exactly one room, and the bot must be in no room that no record "
        "names.",
        "",
        "## Faults: sent vs notices seen (must be equal)",
        "",
    ]
    for key, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        if key in results:
            lines += fault_lines(label, results[key])
    fuzz = results.get("fuzz")
    if fuzz:
        surfaces: dict[str, list[int]] = fuzz["surfaces"]
        lines += ["## Bad input: fuzz inputs tried per surface", "",
                  f"Run of {fuzz['when']}. Figures, one per line (read by scripts):", ""]
        lines += [f"- {tried} fuzz inputs ({surface}): {crashes} crashes" for surface, (tried, crashes)
                  in surfaces.items()]
        lines += ["", "| surface | inputs tried | crashes |", "|---|---|---|"]
        lines += [f"| {surface} | {tried} | {crashes} |" for surface, (tried, crashes) in surfaces.items()]
        lines += [
            "",
            "The FHIR endpoint is fuzzed over a real socket (random bytes, random JSON, JSON nested up to 100 000 "
            "levels deep, the Da Vinci sample with one field replaced, removed or buried under deep arrays, wrong "
            "tokens and content types): a crash there means an answer other than 200/400/401/413/415/422 with an "
            "OperationOutcome — a 500 counts. `tests/fuzz/test_fuzz.py` runs 200 of them in the test-suite.",
            "",
        ]
    lines += [
        "## Access control",
        "",
        f"Access-matrix cells checked: **{cell_count()}** (`tests/security/test_access_matrix.py`, in the "
        "test-suite on SQLite and PostgreSQL). Each cell is an actor (referent case manager, co-case manager, "
        "GP, another case manager, pilot, an account outside the team) typing a command on the real Synapse: "
        "the expected allow/refuse is a literal table from SPEC §2–§4, a refusal must change no record, every "
        "accepted command (reading ones and `!aide` included) must be audited once. People outside the team "
        "are never invited: their join and their messages are refused by the homeserver. Also checked there: "
        "invites to servers not in `allowed_servers` refused, a removed member neither receives nor can "
        "decrypt the bot's next notice, MLLP peers outside `allowed_peers` closed without an ACK and FHIR "
        "without the token answered 401, nothing kept in either case. `tests/security/"
        "test_rights_follow_config.py` restarts a hub with a changed `[care]`: a case manager taken off the "
        "list loses their desk (told, the bot leaves) and their rights on files, a changed role takes effect, "
        "the role `case_manager` is refused to anyone not listed, a pilot never joins a team, and a direct "
        "room is adopted as a desk only encrypted and between the bot and its owner. Rules and storage: "
        "`docs/security.md`.",
        "",
        "## Found and fixed while measuring",
        "",
        "- A 429 on `keys/claim` or on the to-device room-key share is not parsed by matrix-nio: the share "
        "failed silently (notices undecryptable for the team) or left nio's per-room sharing mark set, and "
        "every later send to that room waited for ever. `hub/bots/client.py` now waits out 429s at the "
        "transport (`_RateLimitedClient.send`) and clears a stale sharing mark.",
        "- A 429 during cross-signing set-up stopped the hub at start (same fix).",
        "- SQLite: a hospital message resent on a new connection while the first copy was being processed "
        "was posted twice (SQLite ignores FOR UPDATE); `AlertRepo.claim_message` now takes the row with an "
        "UPDATE first.",
        "- A database error while handling a sync (PostgreSQL connections terminated) ended the sync task: "
        "the hub stopped reading commands for good while /readyz said ready. `BotClient.sync_forever` now "
        "logs, pauses and replays the same batch (commands are claimed once).",
        "- The FHIR endpoint answered 500 to a bundle with `\"resourceType\": null` inside; now 400.",
        "- `relais -v` logged every SQL statement with its parameters (names, clinical text) through "
        "aiosqlite's debug logger; it is now held at WARNING like nio's.",
        "",
        "- One outbox entry that could never succeed (a room deleted by an administrator, the bot removed "
        "from it) stopped every later notice in every room; one incoming event whose handling always failed "
        "made the sync replay the same batch for ever. The outbox now keeps order per room, retries each "
        "entry on its own and dead-letters what fails for good, telling the referent (`delivery.failed`); "
        "intake handles each event on its own and sets aside one that keeps failing.",
        "- matrix-nio marked a room key as shared even when the to-device request carrying it failed on a "
        "dropped connection; a share that did not fully reach the homeserver now discards the session and "
        "the notice is sent again with a new one.",
        "- A batch replayed after its handling failed (a database hiccup, a handler bug) lost its commands: "
        "matrix-nio skips a sync answer it has already read, so it no longer decrypted its events, and the "
        "replayed command was taken for an undecryptable one (its sender told to verify their session). Intake "
        "now decrypts a replayed batch's events itself; a command that still keeps failing is set aside and "
        "its sender told to send it again (`tests/integration/test_isolation.py`).",
        "- The FHIR fuzz at 100 000 inputs found a 500: an `Encounter.location` whose `location` is null (1..1 "
        "in FHIR R4, not enforced by the models). Read now; and any parser bug answers 422 with its class, "
        "never 500 (`tests/fuzz/test_fuzz.py`).",
        "- Notices that could not be delivered to the referent's own desk, a desk's creation and the triage "
        "room were told to nobody; the pilots are told now (`delivery.failed` in their desk, no content).",
        "- A stop could leave an outbox lane running after the database closed (on SQLite, holding the write "
        "lock); the stop now waits for every lane.",
        "",
        "Mixed load of the kill cycles: hospital messages (each posts one alert carrying the setting handover's "
        "checklist, SPEC §5), `!plan add` commands, and every 4th cycle a new file from the desk (its room made "
        "by the outbox). Professional handovers (`!team remove` with a successor) are not in these cycles: they "
        "take the same path as `!plan add` (one unit of work per command, its effects in the outbox, the event "
        "claimed once), which the cycles exercise.",
        "",
        "## Known limits",
        "",
        "- The homeserver is Synapse on SQLite, started by the bench; a PostgreSQL Synapse was not tried.",
    ]
    if "postgresql" in results and not any(
            "stopped and started" in str(r["extra"].get("outage", "")) for r in results["postgresql"]["figures"]):
        lines.append("- \"PostgreSQL restarted mid-load\" was played by terminating the hub's connections and "
                     "refusing new ones (run without --pg-ctl).")
    return "\n".join(lines) + "\n"


async def fuzz_fhir_endpoint(tmp: Path, n: int) -> int:
    """The real FHIR route (token, AlertService, database) on a loopback socket, fuzzed from a thread."""
    from hub.storage import migrate
    from hub.storage.database import Database

    db = Database(await _db_url(tmp))
    await migrate.upgrade(db.engine)
    endpoint = FhirEndpoint(db)
    await endpoint.start()
    try:
        return await asyncio.to_thread(fuzz_fhir, n, endpoint.post, asyncio.get_running_loop())
    finally:
        await endpoint.stop()
        await db.close()


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}


def _stamp() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "load": f"{one:.1f} / {five:.1f} / {fifteen:.1f}"}


def run_fuzz(n: int, only: list[str] | None = None) -> dict[str, Any]:
    """Every surface (or those named in `only`, the others kept from the last run)."""
    kept = _load(RESULTS / "reliability-fuzz.json").get("surfaces", {}) if only else {}
    surfaces: dict[str, list[int]] = {k: v for k, v in kept.items() if k not in only} if only else {}
    for name, fn in (("command parser", fuzz_command_parser), ("HL7 v2 parser", fuzz_hl7),
                     ("MLLP framing", fuzz_mllp)):
        if only and name not in only:
            continue
        started = time.monotonic()
        try:
            surfaces[name] = [fn(n), 0]
        except Exception as exc:  # hypothesis re-raises the smallest failing input
            print(f"{name}: {exc!r}", flush=True)
            surfaces[name] = [n, 1]
        print(f"{name}: {surfaces[name]} in {time.monotonic() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if only and "FHIR endpoint" not in only:
            return {**_stamp(), "surfaces": surfaces}
        started = time.monotonic()
        try:
            surfaces["FHIR endpoint"] = [asyncio.run(fuzz_fhir_endpoint(Path(tmp), n)), 0]
        except Exception as exc:
            print(f"FHIR endpoint: {exc!r}", flush=True)
            surfaces["FHIR endpoint"] = [n, 1]
        print(f"FHIR endpoint: {surfaces['FHIR endpoint']} in {time.monotonic() - started:.0f} s", flush=True)
    return {**_stamp(), "surfaces": surfaces}


def run_faults(args: argparse.Namespace) -> dict[str, Any]:
    pg_ctl = shlex.split(args.pg_ctl) if args.pg_ctl else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = asyncio.run(scenarios(Path(tmp), args.cycles, args.hs_rounds, args.poison_rounds, pg_ctl))
    finally:
        if pg_ctl:  # whatever happened, leave the server running
            subprocess.run([*pg_ctl, "start"], capture_output=True, check=False)
    return {**_stamp(), "figures": [figure_record(f) for f in figures]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=10, help="hub SIGKILL/restart cycles")
    parser.add_argument("--hs-rounds", type=int, default=2, help="homeserver kill/restart cycles")
    parser.add_argument("--poison-rounds", type=int, default=5, help="alerts per phase of the poison scenario")
    parser.add_argument("--fuzz", type=int, default=5000, help="fuzz inputs per surface")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--fuzz-only", action="store_true", help="skip the fault scenarios")
    only.add_argument("--faults-only", action="store_true", help="skip the fuzzers")
    only.add_argument("--render-only", action="store_true", help="only rewrite docs/reliability.md from bench/results")
    parser.add_argument("--surface", action="append", help="fuzz only this surface (repeatable; the others "
                        'are kept from the last run): "command parser", "HL7 v2 parser", "MLLP framing", '
                        '"FHIR endpoint"')
    parser.add_argument("--pg-ctl", help="with RELAIS_TEST_POSTGRES: the command that stops and starts the server, "
                                         'e.g. "pg_ctlcluster --skip-systemctl-redirect 15 main"')
    args = parser.parse_args()
    backend = "postgresql" if os.environ.get("RELAIS_TEST_POSTGRES") else "sqlite"
    RESULTS.mkdir(exist_ok=True)
    ok = True
    if not args.faults_only and not args.render_only:
        fuzz = run_fuzz(args.fuzz, args.surface)
        (RESULTS / "reliability-fuzz.json").write_text(json.dumps(fuzz, indent=1) + "\n", encoding="utf-8")
        ok = not any(crashes for _tried, crashes in fuzz["surfaces"].values())
    if not args.fuzz_only and not args.render_only:
        faults = run_faults(args)
        (RESULTS / f"reliability-{backend}.json").write_text(json.dumps(faults, indent=1) + "\n",
                                                            encoding="utf-8")
        ok = ok and not any(r["problems"] for r in faults["figures"])
    results = {key: _load(RESULTS / f"reliability-{key}.json") for key in ("sqlite", "postgresql", "fuzz")}
    (ROOT / "docs" / "reliability.md").write_text(render({k: v for k, v in results.items() if v}),
                                                  encoding="utf-8")
    print("wrote docs/reliability.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
