"""The composition root: builds storage, services, Matrix client, listeners; starts and stops them."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable
from functools import partial
from typing import TypeVar

from aiohttp import web
from nio import SyncResponse

from hub import heap
from hub.bots.client import SYNC_LONG_POLL_MS, BotClient
from hub.bots.client import transient as homeserver_transient
from hub.bots.crosssigning import ensure_cross_signing, query_keys
from hub.bots.intake import Intake
from hub.bots.outbox import OutboxWorker, RetryPolicy
from hub.bots.readable import ReadableWatcher, readable_users
from hub.bots.trust import DeviceTrust, UnreachableNotices
from hub.checks import transport_findings
from hub.clock import Clock, SystemClock
from hub.commands.context import Settings
from hub.commands.dispatcher import Dispatcher
from hub.commands.registry import build_registry
from hub.config import Config, reveal
from hub.domain.caseload import Limits
from hub.errors import LoginRefused, RelaisError
from hub.http import build_admin_app, build_http_app
from hub.i18n.catalog import Catalog
from hub.inbound.fhir_http import fhir_routes
from hub.inbound.fhir_notify import parse_bundle
from hub.inbound.fhir_referral import referral_routes
from hub.inbound.hl7v2 import PRODUCTION
from hub.inbound.hl7v2 import parse as parse_hl7
from hub.inbound.mllp_server import Hl7Listener, MllpServer
from hub.instance import DatabaseLock, locks_for
from hub.metrics import Metrics
from hub.retry import Stopped, wait_until
from hub.scheduler import SWEEP_INTERVAL_S, Job, Scheduler
from hub.services.alerts import RECOVER_INTERVAL_S, AlertService
from hub.services.concertations import ConcertationSweeper
from hub.services.consent import ConsentReminders
from hub.services.continuity import MembershipWatcher
from hub.services.desks import DeskGuard, ensure_desks
from hub.services.handovers import HandoverReminders
from hub.services.reevaluations import PromptSweeper
from hub.services.referrals import ReferralIntake, ReferralSweeper, ensure_triage
from hub.services.rights import RightsReminders
from hub.storage import migrate, reachability
from hub.storage.database import Database
from hub.tasks import TaskGroup
from hub.tls import server_context

log = logging.getLogger(__name__)
T = TypeVar("T")


def settings_from(config: Config) -> Settings:
    care = config.care
    return Settings(
        language=care.language, bot_user=config.matrix.user_id,
        allowed_servers=config.matrix.allowed_servers,
        limits=Limits(care.caseload_target, care.caseload_max, care.intake_per_month),
        case_managers=care.case_managers, pilots=care.pilots, reevaluation_days=care.reevaluation_days,
        coordinators=care.coordinators,
    )


async def _listening(section: str, host: str, port: int, starting: Awaitable[T]) -> T:
    """A listener that cannot bind is one line naming its key, not a traceback."""
    try:
        return await starting
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RelaisError(f"{section} cannot listen on {host}:{port}: {reason}") from None


#: How often a running Relais checks it still holds its PostgreSQL database's lock (seconds).
DATABASE_LOCK_CHECK_S = 30.0


class Relais:
    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock(config.care.timezone)
        self.metrics = Metrics()
        self.db = Database(config.database.url)
        self.client = BotClient(config.matrix)
        self.catalog = Catalog(config.care.language, config.care.timezone)
        self.settings = settings_from(config)
        policy = RetryPolicy(concurrency=config.outbox.concurrency, cap_s=config.outbox.retry_cap_s,
                             max_age_s=config.outbox.max_age_s)
        self.outbox = OutboxWorker(self.db, self.client, self.catalog, self.clock, policy, self.metrics)
        self.client.trust = DeviceTrust(config.encryption.trust,
                                        UnreachableNotices(self.db, self.clock, self.outbox.wake))
        self.dispatcher = Dispatcher(self.db, build_registry(), self.settings, self.clock,
                                     directory=self.client, on_enqueued=self.outbox.wake)
        desk_people = {u: "case_manager" for u in config.care.case_managers}
        desk_people |= {u: "pilot" for u in config.care.pilots}
        self.desk_people = desk_people
        # The integrated access point is open once its triage team is named (SPEC §8, §9):
        # only then does the bot accept direct rooms from people it does not know.
        referrals_open = bool(config.care.coordinators)
        self.intake = Intake(self.db, self.client, self.dispatcher, desk_people, self.metrics,
                             referrer_servers=config.matrix.allowed_servers if referrals_open else (),
                             on_enqueued=self.outbox.wake)
        self.readable = ReadableWatcher(self.db, self.client, config.encryption.trust, self.clock,
                                        on_enqueued=self.outbox.wake)
        self.tasks = TaskGroup()
        self._stop_asked = asyncio.Event()  # set by a signal while start() still waits
        self._http: web.AppRunner | None = None
        self._admin: web.AppRunner | None = None
        self.http_port: int | None = None
        self.admin_port: int | None = None
        http = config.http
        self._http_tls = (server_context("http", http.tls_cert, http.tls_key)
                          if http.tls_cert is not None and http.tls_key is not None else None)
        # Times sent without an offset are the territory's local time (`[care] timezone`).
        # Only the processing IDs configured (`[alerts] processing_ids`): test data never alerts a team.
        taken = frozenset(config.alerts.processing_ids)
        parsers = {"hl7": partial(parse_hl7, tz=self.clock.tz, processing_ids=taken),
                   "fhir": partial(parse_bundle, tz=self.clock.tz, test_data=bool(taken - PRODUCTION))}
        self.alerts = AlertService(self.db, self.clock, parsers,
                                   ins_test_oids=config.alerts.ins_test_oids, metrics=self.metrics,
                                   on_enqueued=self.outbox.wake)
        self.sweeper = PromptSweeper(self.db, interval_days=config.care.reevaluation_days, tz=self.clock.tz,
                                     on_enqueued=self.outbox.wake)
        self.continuity = MembershipWatcher(self.db, self.clock, on_enqueued=self.outbox.wake, catalog=self.catalog)
        self.intake.membership_handlers.append(self.continuity.on_membership)
        self.desk_guard = DeskGuard(self.db, self.clock, on_enqueued=self.outbox.wake, configured=desk_people)
        self.intake.membership_handlers.append(self.desk_guard.on_membership)
        self.intake.removal_handlers.append(self.desk_guard.bot_removed)
        self.outbox.desk_guard = self.desk_guard  # a send that finds the bot out of a desk
        self.handover_reminders = HandoverReminders(self.db, config.care.handover_reminder_days,
                                                    on_enqueued=self.outbox.wake, tz=self.clock.tz)
        self.consent_reminders = ConsentReminders(self.db, on_enqueued=self.outbox.wake, tz=self.clock.tz)
        self.concertations = ConcertationSweeper(self.db, on_enqueued=self.outbox.wake, tz=self.clock.tz)
        self.referrals = ReferralSweeper(self.db, config.care.referral_reminder_days,
                                         config.care.referral_erase_days, on_enqueued=self.outbox.wake,
                                         tz=self.clock.tz)
        self.rights_reminders = RightsReminders(self.db, on_enqueued=self.outbox.wake, tz=self.clock.tz)
        self.scheduler = Scheduler(self.db, self.clock, self.sweeper, extra_jobs=[
            Job("consent-reminders", self.consent_reminders.sweep, SWEEP_INTERVAL_S),
            # Every 5 minutes: the reminder an hour before must not come at the start.
            Job("concertations", self.concertations.sweep, 300.0),
            Job("handover-reminders", self.handover_reminders.sweep, SWEEP_INTERVAL_S),
            Job("referrals", self.referrals.sweep, SWEEP_INTERVAL_S),
            Job("rights-reminders", self.rights_reminders.sweep, SWEEP_INTERVAL_S),
            # A hospital message acknowledged but left unprocessed by a database hiccup.
            Job("alert-recovery", self.alerts.recover_settled, RECOVER_INTERVAL_S),
        ])
        self.mllp = MllpServer(config.alerts.mllp, Hl7Listener(self.alerts, self.clock, self.metrics).on_frame)
        self.mllp_port: int | None = None
        #: set when the first sync has been through intake (`_on_sync`): what "ready" waits for
        self.first_pass = asyncio.Event()
        self._locks = locks_for(config.matrix.store_path, config.database.url)
        self._db_lock = DatabaseLock(self.db.engine, f"the database {reachability.public_url(config.database.url)}")
        #: set when another Relais took the database's lock while this one's session was gone
        self.displaced = asyncio.Event()

    async def start(self, wait_ready: float | None = 60.0) -> None:
        """Wait for the database and the homeserver (one log line per attempt), log in, start
        everything. What waiting cannot fix raises a RelaisError; a refused or cancelled start
        closes what it opened and logs out the device it created (none is left behind).
        `wait_ready`: seconds to wait for the first sync (None: as long as it takes)."""
        try:
            await self._start(wait_ready)
        except BaseException:
            await self._abort()
            raise

    async def _start(self, wait_ready: float | None) -> None:
        for lock in self._locks:  # before anything is touched: a second Relais changes nothing
            lock.acquire("starting this one")
        db_url = self.config.database.url
        stop = self._stop_asked
        await wait_until(f"database {reachability.public_url(db_url)}",
                         lambda: reachability.connect(self.db.engine, db_url), reachability.transient, stop=stop)
        await self._db_lock.acquire("starting this one")  # PostgreSQL: one Relais per database
        await migrate.require_head(self.db.engine)
        for finding in transport_findings(self.config):  # allowed, but said at every start
            log.warning("%s", finding.text)
        # The listeners first: a port taken refuses the start before the device logs in, syncs or
        # sends anything (a refused start changes nothing). A hospital message that comes while
        # the homeserver is awaited is kept and acknowledged; its notices wait in the outbox.
        if self.config.alerts.mllp.enabled:
            mllp = self.config.alerts.mllp
            self.mllp_port = await _listening("[alerts.mllp]", mllp.host, mllp.port, self.mllp.start())
        if self.config.http.enabled:
            await self._start_http()
        homeserver = f"homeserver {self.config.matrix.homeserver}"
        await wait_until(homeserver, self.client.server_versions, homeserver_transient, stop=stop)
        await wait_until(homeserver, self.client.login, homeserver_transient, stop=stop)
        # Before the first sync: clients in "only signed devices" mode need the signed device.
        # (Idempotent: repeated when the homeserver goes away in between.)
        await wait_until(homeserver, lambda: ensure_cross_signing(
            self.client.api, self.client.store, reveal(self.config.matrix.password),
            reset=self.config.encryption.reset_cross_signing), homeserver_transient, stop=stop)
        people = sorted(self.desk_people)
        readable: set[str] = set()
        if people:  # a desk's welcome waits for a device its owner can read it on
            keys = await wait_until(homeserver, lambda: query_keys(self.client.api, people), homeserver_transient,
                                    stop=stop)
            readable = readable_users(keys, people, self.config.encryption.trust)
        await ensure_desks(self.db, self.desk_people.items(), self.clock.now(), readable)
        if self.config.care.coordinators:
            await ensure_triage(self.db, self.settings.triage_team, self.clock.now())
        token = await self.intake.stored_token()
        self.tasks.spawn(self.client.sync_forever(token, self._on_sync), "matrix-sync")
        self.tasks.spawn(self.outbox.run(), "outbox")
        self.tasks.spawn(self.readable.run(), "readability")
        self.readable.wake()  # devices may have changed while Relais was stopped
        await self.scheduler.start()
        if self.db.engine.dialect.name == "postgresql":
            self.tasks.spawn(self._hold_database_lock(), "database-lock")
        await self.alerts.recover()  # acknowledged before a stop or crash, not yet matched
        synced = asyncio.ensure_future(self.client.synced_once.wait())
        asked = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.client.lost.wait())
        try:
            await asyncio.wait({synced, asked, lost}, timeout=wait_ready, return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
            asked.cancel()
            lost.cancel()
        if self.client.lost.is_set():
            raise LoginRefused(self.client.lost_reason, "M_UNKNOWN_TOKEN")
        if stop.is_set() and not self.client.synced_once.is_set():
            raise Stopped
        if not self.client.synced_once.is_set():
            raise TimeoutError(f"no first sync within {wait_ready} s")
        # Ready once the first sync has been through intake (the commands typed while Relais was
        # stopped answered, the token advanced), however long a catch-up takes: not when it
        # arrived. A start stopped before that re-read the whole catch-up at the next one.
        handled = asyncio.ensure_future(self.first_pass.wait())
        asked = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({handled, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            handled.cancel()
            asked.cancel()
        if stop.is_set():
            # Started, not ready: the device has been used (the outbox may have sent, the first
            # sync's room keys are in its store), so the caller's graceful stop() ends it and
            # keeps the device — never _abort(), which logs a new device out.
            log.info("stop asked before the first sync was handled")
            return
        log.info("Relais ready as %s", self.config.matrix.user_id)

    async def _hold_database_lock(self) -> None:
        """PostgreSQL: the lock that keeps a second Relais off this database goes with its session
        (a server restart): taken again at once; if another Relais took it meanwhile, this one
        stops (`run_forever`), as it would have been refused at its start."""
        while True:
            await asyncio.sleep(DATABASE_LOCK_CHECK_S)
            if not await self._db_lock.keep():
                log.error("another Relais took %s while this one's session was gone (PostgreSQL restarted?): "
                          "stopping this one", self._db_lock.what)
                self.displaced.set()
                return

    async def _on_sync(self, response: SyncResponse) -> None:
        try:
            await self.intake.on_sync(response)
            self.readable.on_sync(response)
        finally:
            self.first_pass.set()  # handled, or failed once (then replayed): either way, started

    async def _start_http(self) -> None:
        http = self.config.http
        intake = ReferralIntake(self.db, self.clock, self.config.matrix.allowed_servers,
                                self.config.matrix.user_id, on_enqueued=self.outbox.wake,
                                open_=bool(self.config.care.coordinators))
        app = build_http_app(self.readiness, [
            *fhir_routes(self.alerts, reveal(http.fhir_token), self.metrics),
            *referral_routes(intake, reveal(http.fhir_token), self.config.alerts.ins_test_oids, self.metrics)])
        self._http = web.AppRunner(app, access_log=None)
        self.http_port = await _listening("[http]", http.host, http.port,
                                          _serve(self._http, http.host, http.port, self._http_tls))
        self._admin = web.AppRunner(build_admin_app(self.metrics, self.readiness, refresh=self.refresh_metrics),
                                    access_log=None)
        self.admin_port = await _listening("[http] admin", http.admin_host, http.admin_port,
                                           _serve(self._admin, http.admin_host, http.admin_port, None))
        log.info("HTTP on %s:%s (%s), metrics on %s:%s", http.host, self.http_port,
                 "HTTPS" if self._http_tls else "plain HTTP", http.admin_host, self.admin_port)

    async def readiness(self) -> dict[str, bool]:
        """/readyz: the database answers, the last sync succeeded, intake moved on and the oldest
        undelivered outbox entry waits less than `[health] stall_after_s`."""
        oldest = await self.refresh_metrics()
        database = oldest is not None
        stall = self.config.health.stall_after_s
        outbox_ok = oldest is not None and oldest <= stall
        # A quiet /sync long-polls for up to SYNC_LONG_POLL_MS before intake moves on.
        intake_ok = time.monotonic() - self.intake.advanced_at <= stall + SYNC_LONG_POLL_MS / 1000
        return {"database": database, "homeserver": self.client.connected, "outbox": outbox_ok, "intake": intake_ok}

    async def refresh_metrics(self) -> float | None:
        """Bring the gauges read from the database up to date; returns the oldest undelivered
        outbox entry's age in seconds (0 when none waits), None when the database does not answer."""
        self.metrics.homeserver_up.set(1 if self.client.connected else 0)
        self.metrics.intake_lag.set(round(time.monotonic() - self.intake.advanced_at, 1))
        if not await self.db.ping():
            return None
        try:
            async with self.db.read() as uow:
                self.metrics.outbox_pending.set(await uow.outbox.count("pending"))
                self.metrics.outbox_failed.set(await uow.outbox.count("failed"))
                self.metrics.intake_dead_held.set(await uow.intake_dead.count())
                oldest = await uow.outbox.oldest_pending_since()
        except Exception:
            return None
        age = 0.0 if oldest is None else max(0.0, (self.clock.now() - oldest).total_seconds())
        self.metrics.outbox_oldest.set(round(age, 1))
        return age

    async def _abort(self) -> None:
        self.client.stop()
        self.outbox.stop()
        self.readable.stop()
        await self.scheduler.stop()
        await self.mllp.stop()
        await self.tasks.cancel_all()
        # Both HTTP listeners: they are bound before the homeserver is awaited, so a start refused
        # at login (or stopped while waiting) has them open — the metrics port stayed bound.
        for runner in (self._http, self._admin):
            if runner is not None:
                await runner.cleanup()
        self._http = self._admin = None
        await self.client.forget_new_device()
        await self.client.close()
        await self._db_lock.release()
        await self.db.close()
        self._release()

    def _release(self) -> None:
        for lock in self._locks:
            lock.release()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Graceful: stop taking events, let the outbox finish what it can, keep the device."""
        self.client.stop()
        await self.scheduler.stop()
        await self.mllp.stop()
        try:
            await asyncio.wait_for(self.outbox.idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("stopping with outbox entries still pending (they are kept)")
        await self.outbox.finish()
        self.readable.stop()
        await self.tasks.cancel_all()
        try:  # the last handled sync's token, so the next start goes on from there
            await self.intake.store_token()
        except Exception as exc:  # the next start replays those syncs (every event is claimed once)
            log.warning("sync token not stored at stop (%s)", type(exc).__name__)
        for runner in (self._http, self._admin):
            if runner is not None:
                await runner.cleanup()
        await self.client.close()
        await self._db_lock.release()
        await self.db.close()
        self._release()

    async def run_forever(self) -> None:
        """Until SIGINT or SIGTERM, which also end a start still waiting for its dependencies."""
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        starting = asyncio.create_task(self.start(wait_ready=None), name="start")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            # Asked to stop while starting: the waits end at once; a request under way gets a
            # few seconds to finish before it is cancelled.
            self._stop_asked.set()
            await asyncio.wait({starting}, timeout=5.0)
            starting.cancel()
            (outcome,) = await asyncio.gather(starting, return_exceptions=True)
            if outcome is None:  # it got ready meanwhile
                await self.stop()
            log.info("Relais stopped before it was ready")
            return
        lost = asyncio.create_task(self.client.lost.wait(), name="session-lost")
        displaced = asyncio.create_task(self.displaced.wait(), name="database-lock-lost")
        try:
            starting.result()  # a refused start: its error, for the CLI's one line
            heap.settle()  # what start-up built lives as long as the process: out of the GC's walks
            await asyncio.wait({stopping, lost, displaced}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            lost.cancel()
            displaced.cancel()
        if self.displaced.is_set():
            await self.stop(drain_timeout=0)  # the other one sends what the outbox holds
            raise RelaisError(f"another Relais took {self._db_lock.what} while this one's connection was gone: "
                              "this one stopped (two at once would post every notice twice)")
        if self.client.lost.is_set():
            # The device is gone: no send can succeed, so none is waited for; all are kept.
            await self.stop(drain_timeout=0)
            log.info("Relais stopped: the bot's device was logged out")
            raise LoginRefused(self.client.lost_reason, "M_UNKNOWN_TOKEN")
        await self.stop()
        log.info("Relais stopped")


async def _serve(runner: web.AppRunner, host: str, port: int, tls: ssl.SSLContext | None) -> int:
    """Start `runner` on host:port (port 0: any free one); return the bound port."""
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    return int(runner.addresses[0][1]) if runner.addresses else port
