"""Hospital alerts: keep the message, acknowledge, then match it to a file and tell the team.

`receive` commits the raw message (deduplicated by sender, control id and content hash)
before the sender gets its acknowledgement. `process` then matches it, in its own unit of
work: a crash in between leaves it `received`, and `recover` finishes it at the next start.
For each person it designates, the use case loads the person's history once, lets the domain
decide (`domain.alert_decision.decide`) and persists the decision once.
Notices go to the durable outbox with keys derived from the alert, so nothing is posted
twice and a homeserver outage only delays them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from hub.clock import Clock
from hub.domain import alert_decision, team, transitions
from hub.domain.alerts import Alert, MessageRefused
from hub.domain.effects import Effect
from hub.domain.identity import PatientId, matches
from hub.domain.persons import Identifier, Person
from hub.domain.settings import Setting
from hub.domain.transitions import Move, SettingChange
from hub.metrics import Metrics
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork
from hub.storage.repos_alerts import UNMATCHED, StoredMessage, utc

log = logging.getLogger(__name__)

UNMATCHED_COUNTER = "alerts_unmatched"
#: The recovery job leaves alone messages younger than this: their own processing is under way.
RECOVER_SETTLE_S = 15.0
#: How long the key of a message for nobody followed is kept to recognise a resend (an engine
#: replaying its queue after an incident may resend days later); then only the count remains.
UNMATCHED_KEY_DAYS = 30
#: How often the recovery job runs (SPEC §7: nothing acknowledged is left unprocessed for long).
RECOVER_INTERVAL_S = 30.0
#: source ("hl7", "fhir") → the pure parser that made the Alert from the raw message
Parsers = Mapping[str, Callable[[bytes], Alert]]


@dataclass(frozen=True)
class Received:
    message_id: int
    duplicate: bool
    pending: bool  # still to be processed
    reused_control_id: bool = False  # a new content under a control id this sender already used
    outcome: str | None = None  # processed with its storage: unmatched | posted | silent


class AlertService:
    def __init__(self, db: Database, clock: Clock, parsers: Parsers, *, ins_test_oids: bool,
                 metrics: Metrics | None = None, on_enqueued: Callable[[], None] | None = None) -> None:
        self.db = db
        self.parsers = parsers
        self.clock = clock
        self.ins_test_oids = ins_test_oids
        self.metrics = metrics
        self.on_enqueued = on_enqueued or (lambda: None)

    def _count(self, source: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alerts.labels(source=source, outcome=outcome).inc()

    def parse(self, source: str, raw: bytes) -> Alert:
        """The configured parser of `source` ("hl7", "fhir"): the same one, with the territory's
        zone, reads a message on arrival and again when recovery replays it. Raises the
        parser's own errors (Hl7Error, IsAck, NotActed, FhirError)."""
        return self.parsers[source](raw)

    async def receive(self, alert: Alert, raw: bytes, *, digest: str | None = None) -> Received:
        """Commit the message (once) and, when it is new, match it and enqueue its notices in the
        same unit of work: one commit before the acknowledgement instead of two (SPEC §7: ACK
        once the message is kept). If that processing raises, its unit is rolled back whole and
        the message is kept alone, `pending`, for `process` (the caller, or the recovery job).
        Raises if the message could not be stored at all (the sender must retry).

        `digest` identifies the content for resends (default: SHA-256 of the bytes); HL7 passes
        one that leaves out what a resend regenerates (hl7v2.digest).
        """
        digest = digest or hashlib.sha256(raw).hexdigest()
        sender, control_id = alert.sender[:255], alert.control_id[:255]
        outcome: str | None = None
        try:
            async with self.db.unit() as uow:
                stored = await uow.alerts.store_message(alert.source, sender, control_id, digest, raw,
                                                        self.clock.now(), processed=True)
                if stored.created:
                    outcome = await self._match(uow, stored.id, alert, self.clock.now())
                elif stored.state == UNMATCHED and await uow.alerts.claim_unmatched(stored.id):
                    # A resend of a message that came for nobody: matched again, since its file may
                    # have been opened (or the identifier added) in between; counted only once.
                    outcome = await self._match(uow, stored.id, alert, self.clock.now(), recount=False)
        except Exception as exc:
            # A database that is away fails in `keep` again, and the sender is told to retry.
            log.warning("hospital message could not be processed as it was stored (%s); kept to process apart",
                        type(exc).__name__)
            stored = await self._keep(alert, raw, digest)
            outcome = None
        if outcome == "unmatched" and not stored.created:
            outcome = None  # still for nobody: a duplicate, counted as such only
        received = self._received(alert, stored, outcome)
        if outcome is not None:
            self._processed(alert.source, outcome)
        return received

    async def keep(self, alert: Alert, raw: bytes, *, digest: str | None = None) -> Received:
        """Commit the message (once) without processing it: what `receive` falls back to when
        processing fails; `process` or the recovery job finishes it. Raises if it could not be
        stored."""
        return self._received(alert, await self._keep(alert, raw, digest or hashlib.sha256(raw).hexdigest()))

    def _received(self, alert: Alert, stored: StoredMessage, outcome: str | None = None) -> Received:
        """Count a kept message (new or a resend) and say what became of it."""
        self._count(alert.source, "accepted" if stored.created else "duplicate")
        return Received(stored.id, duplicate=not stored.created, pending=stored.state == "received",
                        reused_control_id=stored.reused_control_id, outcome=outcome)

    async def _keep(self, alert: Alert, raw: bytes, digest: str) -> StoredMessage:
        async with self.db.unit() as uow:
            return await uow.alerts.store_message(alert.source, alert.sender, alert.control_id, digest, raw,
                                                  self.clock.now())

    async def process(self, message_id: int) -> str:
        """Match a received message and enqueue what it asks; returns what happened."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            message = await uow.alerts.claim_message(message_id)
            if message is None or message.raw is None:
                return "done"
            refused: tuple[MessageRefused, tuple[str, str] | None] | None = None
            try:
                alert = self.parsers[message.source](message.raw)
            except MessageRefused as exc:  # the parse is pure: what it refuses now, it refuses at every try
                # Only a refusal: any other failure (a fault of this version, memory short) may
                # pass at the next try, so the message is kept (an acknowledged message is never lost).
                refused = (exc, await uow.alerts.drop_message(message_id))
            else:
                outcome = await self._match(uow, message_id, alert, now)
                if outcome != "unmatched":
                    await uow.alerts.mark_processed(message_id)
        if refused is not None:  # told once its drop is committed
            self._refused_on_replay(message_id, message.source, *refused)
            return "refused"
        self._processed(alert.source, outcome)
        return outcome

    def _refused_on_replay(self, message_id: int, source: str, refusal: MessageRefused,
                           dropped: tuple[str, str] | None) -> None:
        """Acknowledged under another configuration or version (`[alerts] processing_ids` narrowed
        while it waited, say), refused by this one: retried at every recovery it would fail for
        ever. Dropped whole, key included, so that the sender can resend it once the configuration
        takes it; the operator is told what to ask for (sender and control id, no content)."""
        sender, control_id = dropped or ("?", "?")
        log.error("hospital message %s from %s, control id %s, acknowledged but refused when processed (%s %s): "
                  "dropped; ask the sender to resend it if it should be taken", message_id, sender, control_id,
                  type(refusal).__name__, getattr(refusal, "key", "") or "")
        self._count(source, "refused_on_replay")

    async def _match(self, uow: UnitOfWork, message_id: int, alert: Alert, now: datetime, *,
                     recount: bool = True) -> str:
        """Find the followed persons the alert designates (their files locked), apply it to each;
        a message for nobody followed is forgotten. Returns unmatched | posted | silent."""
        ids = (*alert.identifiers, *alert.merged_identifiers)
        candidates = await uow.persons.open_with_identifier_values([pid.value for pid in ids], lock=True)
        persons = [person for person in candidates if self._matches(person.identifiers, ids)]
        if not persons:
            # Its key stays (no content): a resend is a duplicate, not a second message for nobody.
            await uow.alerts.forget_message(message_id)
            if recount:  # not for a resend matched again (`receive`): it was counted when it came
                await uow.kv.increment(UNMATCHED_COUNTER)
            return "unmatched"
        posted = False
        for person in persons:
            posted |= await self._apply(uow, message_id, person, alert, now)
        return "posted" if posted else "silent"

    def _processed(self, source: str, outcome: str) -> None:
        """Count an outcome once its unit is committed; wake the outbox for new notices."""
        if outcome == "unmatched" and self.metrics is not None:
            self.metrics.alerts_unmatched.inc()
        self._count(source, outcome)
        if outcome == "posted":
            self.on_enqueued()

    async def recover(self, received_before: datetime | None = None) -> int:
        """Process what was acknowledged but not processed: before a stop or a crash (at start), or
        after a database hiccup between the commit and the processing (the periodic job, which
        leaves alone what arrived in the last RECOVER_SETTLE_S, still being processed). Returns
        how many were processed now."""
        async with self.db.unit() as uow:
            pending = await uow.alerts.unprocessed(received_before)
        done = 0
        for message_id in pending:
            try:
                done += await self.process(message_id) != "refused"
            except Exception:
                log.exception("hospital message %s could not be processed; kept for the next try", message_id)
        if pending:
            log.info("recovered %d of %d hospital message(s) left unprocessed", done, len(pending))
        return done

    async def recover_settled(self, now: datetime) -> int:
        """The periodic job: messages received more than RECOVER_SETTLE_S before `now`; and the
        keys of messages for nobody followed, once older than UNMATCHED_KEY_DAYS, are let go."""
        async with self.db.unit() as uow:
            await uow.alerts.purge_unmatched(now - timedelta(days=UNMATCHED_KEY_DAYS))
        return await self.recover(now - timedelta(seconds=RECOVER_SETTLE_S))

    def _matches(self, identifiers: tuple[Identifier, ...], ids: tuple[PatientId, ...]) -> bool:
        pairs = [(i.authority, i.value) for i in identifiers]
        return matches(pairs, ids, ins_test_oids=self.ins_test_oids)

    async def _apply(self, uow: UnitOfWork, message_id: int, person: Person, alert: Alert, now: datetime) -> bool:
        """Load the person's history once, decide in the domain, persist the decision once.
        `person` was read with its file locked (`_match`)."""
        ref = person.case_ref
        history = await _history(uow, ref, person)
        decision = alert_decision.decide(history, alert, ins_test_oids=self.ins_test_oids, now=now,
                                        tz=self.clock.tz)
        alert_id = await uow.alerts.record(message_id, ref, alert, decision, now, notice_key=_notice_key)
        if decision.revert is not None:
            undone = decision.revert
            await uow.persons.restore_setting(ref, undone.previous, undone.previous_since, undone.previous_return)
        if decision.move is not None:
            await record_move(uow, history.person, decision.move, "hospital", alert.sender, now, alert_id=alert_id)
        for old, new in decision.rekeys:
            renamed = await uow.alerts.rekey_identifier(ref, old, new)
            await uow.audit.record(now, alert.sender or "hospital", "alert merge", ref, {"rekeyed": renamed})
        await enqueue(uow, _key(alert_id), decision.effects, now)
        log.info("hospital %s for %s: %d notice(s)", alert.event.value, ref, len(decision.effects))
        return bool(decision.effects)


def _key(alert_id: int) -> str:
    return f"alert:{alert_id}"


def _notice_key(alert_id: int) -> str:
    """The outbox key of an alert's own notice: the first effect enqueued under its key."""
    return f"{_key(alert_id)}:0"


async def _history(uow: UnitOfWork, ref: str, person: Person) -> alert_decision.AlertHistory:
    return alert_decision.AlertHistory(
        person=person,
        mentions=team.mentions_for(await uow.team.members(ref), person.referent),
        alerts=tuple(await uow.alerts.alerts_of(ref)),
        latest_change=await uow.alerts.latest_change(ref),
    )


def _latest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


async def record_move(uow: UnitOfWork, person: Person, move: Move, source: str, actor: str, now: datetime,
                      *, alert_id: int | None = None) -> None:
    """Write a move to the person and to the setting history, keeping what it replaced."""
    back: date | None = move.hospital_return
    await uow.alerts.add_change(SettingChange(
        case_ref=person.case_ref, setting=move.setting, since=move.since, previous=person.setting,
        previous_since=person.setting_since, previous_return=person.hospital_return, hospital_return=back,
        source="hospital" if source == "hospital" else "command", actor=actor,
        establishment=move.establishment, alert_id=alert_id,
    ), now)
    await uow.persons.set_setting(person.case_ref, move.setting, utc(move.since), back)


async def move_by_hand(uow: UnitOfWork, person: Person, setting: Setting, establishment: str | None,
                       on: date | None, *, by: str, now: datetime, tz: tzinfo) -> list[Effect]:
    """`!move`: same history, same handover notice as a move reported by a hospital."""
    await uow.persons.lock(person.case_ref)
    last_hospital = await uow.alerts.last_event_time(person.case_ref)
    outcome = transitions.manual_move(
        person, team.mentions_for(await uow.team.members(person.case_ref), person.referent), setting,
        establishment, on, by=by, now=now, last_movement=_latest(person.setting_since, last_hospital), tz=tz,
    )
    assert outcome.move is not None
    await record_move(uow, person, outcome.move, "command", by, now)
    return list(outcome.effects)
