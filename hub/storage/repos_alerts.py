"""Repositories for hospital messages and alerts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.alert_decision import Decision
from hub.domain.alerts import Alert, AlertEvent, AlertRecord
from hub.domain.persons import Identifier
from hub.domain.settings import Setting
from hub.domain.transitions import SettingChange
from hub.storage.models import IdentifierRow, PersonRow
from hub.storage.models_alerts import AlertRow, InboundMessageRow, SettingChangeRow
from hub.storage.once import insert_once
from hub.storage.repositories import PersonRepo, _aware

__all__ = ["AlertRepo", "StoredMessage", "utc"]

#: The state of a message for nobody followed: its key only (SPEC §7: nothing of it is kept).
UNMATCHED = "unmatched"
_STAY_EVENTS = (AlertEvent.admission, AlertEvent.transfer, AlertEvent.update, AlertEvent.leave_return,
                AlertEvent.discharge)


def utc(moment: datetime) -> datetime:
    """Stored times are UTC: SQLite keeps no offset, so anything else would read back shifted."""
    return moment.astimezone(UTC)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    source: str
    state: str
    created: bool  # False: the same message (same sender, control id, content) was already kept
    raw: bytes | None = None
    reused_control_id: bool = False  # created, though another content was kept under its control id


_RECORD_COLUMNS = ("id", "case_ref", "event", "event_time", "sender", "facility", "unit", "movement_id",
                   "notice_key", "cancelled_by")


def _record(row: Any) -> AlertRecord:
    """An AlertRecord from an AlertRow or a row holding `_RECORD_COLUMNS`."""
    return AlertRecord(
        id=row.id, case_ref=row.case_ref, event=AlertEvent(row.event),
        event_time=_aware(row.event_time) or row.event_time, sender=row.sender, facility=row.facility,
        unit=row.unit, movement_id=row.movement_id, notice_key=row.notice_key,
        cancelled=row.cancelled_by is not None, cancelled_by=row.cancelled_by,
    )


def _change(row: SettingChangeRow) -> SettingChange:
    return SettingChange(
        id=row.id, case_ref=row.case_ref, setting=Setting(row.setting), since=_aware(row.since) or row.since,
        previous=Setting(row.previous), previous_since=_aware(row.previous_since),
        previous_return=row.previous_return_on, hospital_return=row.hospital_return_on,
        source="hospital" if row.source == "hospital" else "command", actor=row.actor,
        establishment=row.establishment, alert_id=row.alert_id,
    )


class AlertRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    # ------------------------------------------------------------ inbound messages

    async def _find(self, sender: str, control_id: str, sha256: str) -> tuple[StoredMessage | None, bool]:
        """The message kept under this key, if any, and whether another content was kept under
        the same sender and control id — one statement: the same content sorts first."""
        same = (InboundMessageRow.sha256 == sha256).label("same")
        query = (select(InboundMessageRow.id, InboundMessageRow.source, InboundMessageRow.state, same)
                 .where(InboundMessageRow.sender == sender, InboundMessageRow.control_id == control_id))
        if control_id == "":  # no control id: only the same content counts (never "reused")
            query = query.where(InboundMessageRow.sha256 == sha256)
        row = (await self.s.execute(query.order_by(same.desc()).limit(1))).first()
        if row is None:
            return None, False
        if not row.same:
            return None, True
        return StoredMessage(row.id, row.source, row.state, created=False), False

    async def store_message(self, source: str, sender: str, control_id: str, sha256: str, raw: bytes,
                            now: datetime, *, processed: bool = False) -> StoredMessage:
        """Keep a message once per (sender, control id, content hash). Sender and control id are
        kept to their columns' 255 characters (HL7 allows longer MSH-3^MSH-4), on every backend
        alike, so a resend still finds the stored message. `processed`: the caller processes it
        in this same unit of work, so it is written in its final state, without its content
        (if that processing fails, the whole unit is rolled back)."""
        sender, control_id = sender[:255], control_id[:255]
        found, reused = await self._find(sender, control_id, sha256)
        if found is None:
            state = "processed" if processed else "received"
            new_id = await insert_once(self.s, InboundMessageRow, {
                "source": source, "sender": sender, "control_id": control_id, "sha256": sha256,
                "received_at": now, "raw": None if processed else raw, "state": state,
            }, conflict=("sender", "control_id", "sha256"))
            if new_id is not None:
                return StoredMessage(int(new_id), source, state, created=True, reused_control_id=reused)
            found, _reused = await self._find(sender, control_id, sha256)  # a concurrent resend won the race
            assert found is not None
        return found

    async def claim_message(self, message_id: int) -> StoredMessage | None:
        """A received, unprocessed message, locked for this unit of work (None otherwise)."""
        # Take the write lock first: SQLite ignores FOR UPDATE, so two connections handling the same
        # resent message (the hospital resends on a new connection after a cut) both saw it
        # "received" and posted it twice.
        taken = await self.s.execute(update(InboundMessageRow)
                                     .where(InboundMessageRow.id == message_id, InboundMessageRow.state == "received")
                                     .values(state="received"))
        if getattr(taken, "rowcount", 1) == 0:
            return None
        result = await self.s.execute(
            select(InboundMessageRow)
            .where(InboundMessageRow.id == message_id, InboundMessageRow.state == "received")
            .with_for_update())
        row = result.scalar_one_or_none()
        if row is None:
            return None
        return StoredMessage(row.id, row.source, row.state, created=False, raw=row.raw)

    async def unprocessed(self, received_before: datetime | None = None) -> list[int]:
        """Messages acknowledged but not processed, oldest first; only those received before
        `received_before` when given (the newer ones are being processed right now)."""
        query = select(InboundMessageRow.id).where(InboundMessageRow.state == "received")
        if received_before is not None:
            query = query.where(InboundMessageRow.received_at < received_before)
        result = await self.s.execute(query.order_by(InboundMessageRow.id))
        return list(result.scalars())

    async def mark_processed(self, message_id: int) -> None:
        """Once matched and turned into notices, the raw message (names, clinical detail) is no
        longer needed: its key and digest stay to recognise a resend."""
        await self.s.execute(update(InboundMessageRow).where(InboundMessageRow.id == message_id)
                             .values(state="processed", raw=None))

    async def forget_message(self, message_id: int) -> None:
        """For nobody followed: the content goes; the key (sender, control id, digest: no personal
        data) stays, state `unmatched`, so that a resend is known as one — acknowledged again,
        never counted twice (its resend is matched again: `claim_unmatched`) — until
        `purge_unmatched` removes it."""
        await self.s.execute(update(InboundMessageRow).where(InboundMessageRow.id == message_id)
                             .values(state=UNMATCHED, raw=None))

    async def claim_unmatched(self, message_id: int) -> bool:
        """Take the key of a message for nobody followed, to match its resend once more (a file may
        have been opened since): True for the one unit that took it; it is `processed` from then on,
        unless `forget_message` finds it for nobody again."""
        taken = await self.s.execute(update(InboundMessageRow)
                                     .where(InboundMessageRow.id == message_id, InboundMessageRow.state == UNMATCHED)
                                     .values(state="processed"))
        return int(getattr(taken, "rowcount", 0) or 0) == 1

    async def drop_message(self, message_id: int) -> tuple[str, str] | None:
        """Remove a message entirely (its key too, so that the sender may resend it); returns its
        (sender, control id), None when it was not there."""
        result = await self.s.execute(delete(InboundMessageRow).where(InboundMessageRow.id == message_id)
                                      .returning(InboundMessageRow.sender, InboundMessageRow.control_id))
        row = result.first()
        return (row.sender, row.control_id) if row is not None else None

    async def purge_unmatched(self, received_before: datetime) -> int:
        """Remove the keys of messages for nobody followed received before `received_before`."""
        result = await self.s.execute(delete(InboundMessageRow).where(
            InboundMessageRow.state == UNMATCHED, InboundMessageRow.received_at < received_before))
        return int(getattr(result, "rowcount", 0) or 0)

    async def count_messages(self) -> int:
        """Messages kept: not the bare keys of messages for nobody followed."""
        result = await self.s.execute(select(func.count()).select_from(InboundMessageRow)
                                      .where(InboundMessageRow.state != UNMATCHED))
        return int(result.scalar_one())

    # ------------------------------------------------------------ persons by identifier

    async def rekey_identifier(self, case_ref: str, old: Identifier, new: Identifier) -> bool:
        """A merge (A40): the person's identifier takes the surviving value; False if an open
        file holds it (however its authority is spelled). A closed file that holds it gives it up
        (PersonRepo.release_closed, as when a file is opened again: the person is followed here)."""
        persons = PersonRepo(self.s)
        if await persons.owner_of(new) is not None:
            return False
        await persons.release_closed(new)
        person_id = select(PersonRow.id).where(PersonRow.case_ref == case_ref).scalar_subquery()
        await self.s.execute(update(IdentifierRow).where(
            IdentifierRow.person_id == person_id, IdentifierRow.authority == old.authority,
            IdentifierRow.value == old.value).values(value=new.value))
        return True

    # ------------------------------------------------------------ alerts

    async def record(self, message_id: int, case_ref: str, alert: Alert, decision: Decision, now: datetime,
                     *, notice_key: Callable[[int], str]) -> int:
        """Persist what `alert_decision.decide` decided: the alert row (its notice key, whether it
        stands), the alerts it cancels and the move it undoes. Returns the new alert's id."""
        row = AlertRow(
            message_id=message_id, case_ref=case_ref, source=alert.source, sender=alert.sender[:255],
            event=alert.event.value, trigger=alert.trigger[:32], event_time=utc(alert.event_time),
            facility=alert.facility[:255], unit=alert.unit[:255], movement_id=alert.movement_id[:64],
            received_at=now, cancelled_by=decision.cancelled_by,
        )
        self.s.add(row)
        await self.s.flush()
        if decision.notice:
            row.notice_key = notice_key(row.id)
        if decision.self_cancelled:
            row.cancelled_by = row.id
        if decision.cancels:
            await self.s.execute(update(AlertRow).where(AlertRow.id.in_(decision.cancels))
                                 .values(cancelled_by=row.id))
        if decision.revert is not None:
            await self.revert_change(decision.revert, now)
        return row.id

    async def alerts_of(self, case_ref: str) -> list[AlertRecord]:
        """A file's alerts, oldest first. Read as plain rows, not ORM objects: every hospital
        message reads its person's whole history, and building objects was most of its cost."""
        table = AlertRow.__table__
        result = await self.s.execute(select(*(table.c[name] for name in _RECORD_COLUMNS))
                                      .where(table.c.case_ref == case_ref).order_by(table.c.id))
        return [_record(r) for r in result]

    async def last_event_time(self, case_ref: str, *, before: int | None = None) -> datetime | None:
        """Time of the newest standing hospital movement (those recorded before alert `before`)."""
        query = (select(func.max(AlertRow.event_time))
                 .where(AlertRow.case_ref == case_ref, AlertRow.cancelled_by.is_(None),
                        AlertRow.event.in_([e.value for e in _STAY_EVENTS])))
        if before is not None:
            query = query.where(AlertRow.id < before)
        return _aware((await self.s.execute(query)).scalar_one_or_none())

    # ------------------------------------------------------------ setting history

    async def add_change(self, change: SettingChange, now: datetime) -> None:
        self.s.add(SettingChangeRow(
            case_ref=change.case_ref, setting=change.setting.value, since=utc(change.since),
            hospital_return_on=change.hospital_return, establishment=change.establishment,
            previous=change.previous.value, previous_since=_utc_or_none(change.previous_since),
            previous_return_on=change.previous_return, source=change.source, actor=change.actor[:255],
            alert_id=change.alert_id, recorded_at=now,
        ))
        await self.s.flush()

    async def changes(self, case_ref: str) -> list[SettingChange]:
        result = await self.s.execute(
            select(SettingChangeRow).where(SettingChangeRow.case_ref == case_ref,
                                           SettingChangeRow.reverted_at.is_(None))
            .order_by(SettingChangeRow.id))
        return [_change(r) for r in result.scalars()]

    async def latest_change(self, case_ref: str) -> SettingChange | None:
        result = await self.s.execute(
            select(SettingChangeRow).where(SettingChangeRow.case_ref == case_ref,
                                           SettingChangeRow.reverted_at.is_(None))
            .order_by(SettingChangeRow.id.desc()).limit(1))
        row = result.scalar_one_or_none()
        return None if row is None else _change(row)

    async def revert_change(self, change: SettingChange, now: datetime) -> None:
        """Mark a move undone; the person row itself is put back by PersonRepo.restore_setting."""
        assert change.id is not None
        await self.s.execute(update(SettingChangeRow).where(SettingChangeRow.id == change.id)
                             .values(reverted_at=now))
