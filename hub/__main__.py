"""CLI entry: relais run | demo | check-config | db upgrade | export | report (also `python -m hub`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from hub import heap
from hub.errors import RelaisError

if TYPE_CHECKING:
    from hub.config import Config

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

# Libraries whose INFO lines (alembic's plugin list and each migration, APScheduler's job table)
# would bury the hub's own lines and the demo's banner: WARNING unless -v asks for everything.
NOISY_LIBRARIES = ("alembic", "apscheduler", "aiohttp", "asyncio", "sqlalchemy")
# Libraries that log message contents at debug level (nio: event contents; aiosqlite: every
# statement with its parameters, names and clinical text included; peewee, nio's crypto store:
# the Olm account and every Megolm session, pickled under nio's public default key — whoever
# read them could decrypt every room): WARNING whatever -v says.
PRIVATE_LIBRARIES = ("nio", "aiosqlite", "peewee")


def configure_logging(verbose: bool) -> None:
    """Root at INFO (DEBUG with -v); libraries held at WARNING as said above."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    for name in PRIVATE_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    # SQLAlchemy's engine logs each statement at INFO (its values hidden: `hide_parameters`) but
    # every result row at DEBUG, names and clinical text included: never below INFO.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        from hub.bots.client import quiet_nio_noise

        quiet_nio_noise()


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relais", description="Relais: the care team's Matrix hub")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the hub"), ("check-config", "validate a configuration file")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", required=True)
        if name == "check-config":
            p.add_argument("--online", action="store_true",
                           help="also try the database, the homeserver, the bot's login and the people")
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the database to the current schema")
    up.add_argument("-c", "--config", required=True)
    export = sub.add_parser("export", help="a file's record as JSON (the person's right of access)")
    export.add_argument("case_ref", help="R-YYYY-NNNN")
    export.add_argument("-c", "--config", required=True)
    export.add_argument("--out", help="write to this file (default: standard output)")
    report = sub.add_parser("report", help="the territory's figures as CSV, counts only")
    report.add_argument("-c", "--config", required=True)
    report.add_argument("--from", dest="start", type=_iso_date, help="first day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=_iso_date, help="last day (YYYY-MM-DD)")
    demo = sub.add_parser("demo", help="private Synapse + demo accounts + a demo file")
    demo.add_argument("--data", default="var/demo", help="folder for everything the demo keeps")
    demo.add_argument("--port", type=int, default=8008, help="homeserver port on 127.0.0.1")
    demo.add_argument("--exit-when-ready", action="store_true",
                      help="stop once the demo is set up (smoke tests)")
    return parser


async def _upgrade(config: Config) -> str:
    from hub.instance import DatabaseLock, locks_for
    from hub.storage import migrate, reachability
    from hub.storage.database import make_engine

    url = config.database.url
    locks = locks_for(config.matrix.store_path, url)
    for lock in locks:
        lock.acquire("`relais db upgrade`")
    engine = make_engine(url)
    try:
        try:
            await reachability.connect(engine, url)
        except Exception as exc:
            reason = reachability.transient(exc)
            if reason is None:
                raise
            # Run by hand or before `relais run` (ExecStartPre): say it and stop; no wait here.
            raise RelaisError(f"database {reachability.public_url(url)} unreachable ({reason})") from None
        db_lock = DatabaseLock(engine, f"the database {reachability.public_url(url)}")
        await db_lock.acquire("`relais db upgrade`")
        try:
            before, after = await migrate.upgrade(engine)
        finally:
            await db_lock.release()
    finally:
        await engine.dispose()
        for lock in locks:
            lock.release()
    return f"database schema: {before or 'empty'} → {after}"


async def _run(config: Config) -> None:
    from hub.app import Relais  # loaded by main() already, without the collector

    await Relais(config).run_forever()


def _check_config(config: Config, path: str, online: bool) -> int:
    from hub import checks

    findings = checks.offline_findings(config)
    if online:
        findings += asyncio.run(checks.online_findings(config))
    for finding in findings:
        print(finding)
    failed = any(f.level == "error" for f in findings)
    print(f"{path}: {'errors found' if failed else 'OK'}")
    return EXIT_ERROR if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # What the command needs is imported with the collector paused (heap.uncollected: −0.1 s of
    # every start), before any work; `run` loads the whole app here.
    with heap.uncollected():
        configure_logging(args.verbose)
        from hub.config import load_config

        if args.command == "run":
            import hub.app  # noqa: F401
    try:
        if args.command in ("run", "demo"):
            # Whatever these processes create holds personal data or the keys to it — the crypto
            # store matrix-nio writes (created 0644), the demo homeserver's database, logs —:
            # owner-only, whatever the operator's umask (the folders are 0700 already, but a
            # store copied elsewhere would carry the files' own modes).
            os.umask(0o077)
        if args.command == "demo":
            if importlib.util.find_spec("synapse") is None:
                print("relais: `relais demo` runs a private Synapse, which is not installed: install the "
                      "demo extra, e.g. `.venv/bin/pip install 'relais[demo]'` (or `pip install '.[demo]'` "
                      "from a clone)", file=sys.stderr)
                return EXIT_ERROR
            from hub.demo import run_demo

            return asyncio.run(run_demo(args.data, args.port, args.exit_when_ready,
                                        announce=lambda text: print(text, flush=True)))
        config = load_config(args.config)
        if args.command == "check-config":
            return _check_config(config, args.config, args.online)
        elif args.command == "db":
            print(asyncio.run(_upgrade(config)))
        elif args.command == "run":
            asyncio.run(_run(config))
        elif args.command in ("export", "report"):
            from hub import records

            if args.command == "export":
                text = asyncio.run(records.export_json(config, args.case_ref))
                if args.out:
                    records.write_private(args.out, text)
                    print(f"{args.case_ref} exported to {args.out}", file=sys.stderr)
                else:
                    print(text)
            else:
                sys.stdout.write(asyncio.run(records.report_csv(config, args.start, args.end)))
    except RelaisError as exc:
        print(f"relais: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
