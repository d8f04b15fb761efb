"""Hospital alerts: keep the message, acknowledge, then match it to a file and tell the team.

`receive` commits the raw message (deduplicated by sender, control id and content hash)
before the sender gets its acknowledgement. `process` then matches it, in its own unit of
work: a crash in between leaves it `received`, and `recover` finishes it at the next start.
Notices go to the durable outbox with keys derived from the alert, so nothing is posted
twice and a homeserver outage only delays them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from hub.clock import Clock
from hub.domain import team, transitions
from hub.domain.alerts import Alert, AlertEvent
from hub.domain.effects import Effect
from hub.domain.identity import PatientId, matches
from hub.domain.persons import Identifier, Person
from hub.domain.settings import Setting
from hub.domain.transitions import Move, Outcome, SettingChange
from hub.metrics import Metrics
from hub.services.outbox import enqueue
from hub.storage.database import Database, UnitOfWork
from hub.storage.repos_alerts import utc

log = logging.getLogger(__name__)

UNMATCHED_COUNTER = "alerts_unmatched"
#: source ("hl7", "fhir") → the pure parser that made the Alert from the raw message
Parsers = Mapping[str, Callable[[bytes], Alert]]


@dataclass(frozen=True)
class Received:
    message_id: int
    duplicate: bool
    pending: bool  # still to be processed


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

    async def receive(self, alert: Alert, raw: bytes) -> Received:
        """Commit the message (once); raises if it could not be stored (the sender must retry)."""
        digest = hashlib.sha256(raw).hexdigest()
        async with self.db.unit() as uow:
            stored = await uow.alerts.store_message(alert.source, alert.sender[:255], alert.control_id[:255],
                                                    digest, raw, self.clock.now())
        self._count(alert.source, "accepted" if stored.created else "duplicate")
        return Received(stored.id, duplicate=not stored.created, pending=stored.state == "received")

    async def process(self, message_id: int) -> str:
        """Match a received message and enqueue what it asks; returns what happened."""
        now = self.clock.now()
        async with self.db.unit() as uow:
            message = await uow.alerts.claim_message(message_id)
            if message is None or message.raw is None:
                return "done"
            alert = self.parsers[message.source](message.raw)
            persons = await self._persons_for(uow, alert)
            if not persons:
                await uow.alerts.forget_message(message_id)
                count = int(await uow.kv.get(UNMATCHED_COUNTER) or 0) + 1
                await uow.kv.set(UNMATCHED_COUNTER, str(count))
                outcome = "unmatched"
            else:
                posted = False
                for person in persons:
                    posted |= await self._apply(uow, message_id, person, alert, now)
                await uow.alerts.mark_processed(message_id)
                outcome = "posted" if posted else "silent"
        if outcome == "unmatched" and self.metrics is not None:
            self.metrics.alerts_unmatched.inc()
        self._count(alert.source, outcome)
        if outcome == "posted":
            self.on_enqueued()
        return outcome

    async def recover(self) -> int:
        """Process what was acknowledged but not processed before a stop or a crash."""
        async with self.db.unit() as uow:
            pending = await uow.alerts.unprocessed()
        for message_id in pending:
            try:
                await self.process(message_id)
            except Exception:
                log.exception("hospital message %s could not be processed; kept for the next start", message_id)
        return len(pending)

    async def _persons_for(self, uow: UnitOfWork, alert: Alert) -> list[Person]:
        ids = (*alert.identifiers, *alert.merged_identifiers)
        found = []
        for ref in await uow.alerts.open_cases_with_values(pid.value for pid in ids):
            person = await uow.persons.get(ref)
            if person is not None and self._matches(person.identifiers, ids):
                found.append(person)
        return found

    def _matches(self, identifiers: tuple[Identifier, ...], ids: tuple[PatientId, ...]) -> bool:
        pairs = [(i.authority, i.value) for i in identifiers]
        return matches(pairs, ids, ins_test_oids=self.ins_test_oids)

    async def _apply(self, uow: UnitOfWork, message_id: int, person: Person, alert: Alert, now: datetime) -> bool:
        ref = person.case_ref
        await uow.persons.lock(ref)
        person = await uow.persons.get(ref) or person
        mentions = team.mentions_for(await uow.team.members(ref), person.referent)
        alert_id = await uow.alerts.add_alert(message_id, ref, alert, now)
        key = f"alert:{alert_id}"
        if alert.event is AlertEvent.merge:
            await self._merge(uow, person, alert, now)
            outcome = Outcome()
        elif transitions.is_cancellation(alert):
            outcome = await self._cancel(uow, person, mentions, alert, alert_id, now)
        else:
            stay = await uow.alerts.last_stay_alert(ref, before=alert_id)
            in_hospital = stay is not None and stay.event is not AlertEvent.discharge
            outcome = transitions.hospital_event(
                person, mentions, alert,
                last_movement=_latest(person.setting_since, await uow.alerts.last_event_time(ref, before=alert_id)),
                last_location=(stay.facility, stay.unit) if stay is not None and in_hospital else None,
                now=now, tz=self.clock.tz,
            )
            if outcome.move is not None:
                await record_move(uow, person, outcome.move, "hospital", alert.sender, now, alert_id=alert_id)
        effects: list[Effect] = list(outcome.effects)
        await enqueue(uow, key, effects, now)
        await uow.alerts.set_notice(alert_id, f"{key}:0" if outcome.notice else None)
        log.info("hospital %s for %s: %d notice(s)", alert.event.value, ref, len(effects))
        return bool(effects)

    async def _cancel(self, uow: UnitOfWork, person: Person, mentions: tuple[str, ...], alert: Alert,
                      alert_id: int, now: datetime) -> Outcome:
        ref = person.case_ref
        original = await uow.alerts.find_original(ref, transitions.CANCELS.get(alert.event), alert.movement_id,
                                                  before=alert_id)
        if alert.event not in transitions.CANCELS:
            # ZBE-4=CANCEL on another trigger: the row is a cancellation, never a standing movement.
            await uow.alerts.mark_cancelled(alert_id, alert_id)
        restored: Setting | None = None
        if original is not None:
            await uow.alerts.mark_cancelled(original.id, alert_id)
            last = await uow.alerts.latest_change(ref)
            # Undo the move only while it is still the latest one: a newer move stands.
            if last is not None and last.alert_id == original.id:
                await uow.alerts.revert_change(last, now)
                await uow.persons.restore_setting(ref, last.previous, last.previous_since, last.previous_return)
                restored = last.previous
        return transitions.cancellation(person, mentions, alert, original, restored=restored)

    async def _merge(self, uow: UnitOfWork, person: Person, alert: Alert, now: datetime) -> None:
        """A40: the identifiers the person was known by under the old record take the new values."""
        for ident in person.identifiers:
            for old in alert.merged_identifiers:
                if not matches([(ident.authority, ident.value)], [old], ins_test_oids=self.ins_test_oids):
                    continue
                survivor = next((pid for pid in alert.identifiers
                                 if (pid.authority, pid.authority_oid) == (old.authority, old.authority_oid)), None)
                if survivor is None or survivor.value == ident.value:
                    continue
                renamed = await uow.alerts.rekey_identifier(person.case_ref, ident,
                                                            Identifier(ident.authority, survivor.value))
                await uow.audit.record(now, alert.sender or "hospital", "alert merge", person.case_ref,
                                       {"rekeyed": renamed})


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
