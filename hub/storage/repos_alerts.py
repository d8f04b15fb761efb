"""Repositories for hospital messages and alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.alert_decision import Decision
from hub.domain.alerts import Alert, AlertEvent, AlertRecord
from hub.domain.persons import Identifier
from hub.domain.settings import Setting
from hub.domain.transitions import SettingChange
from hub.storage.models import IdentifierRow, PersonRow
from hub.storage.models_alerts import AlertRow, InboundMessageRow, SettingChangeRow
from hub.storage.repositories import _aware

__all__ = ["AlertRepo", "StoredMessage", "utc"]

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


def _record(row: AlertRow) -> AlertRecord:
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

    async def _find(self, sender: str, control_id: str, sha256: str) -> InboundMessageRow | None:
        result = await self.s.execute(select(InboundMessageRow).where(
            InboundMessageRow.sender == sender, InboundMessageRow.control_id == control_id,
            InboundMessageRow.sha256 == sha256))
        return result.scalar_one_or_none()

    async def store_message(self, source: str, sender: str, control_id: str, sha256: str, raw: bytes,
                            now: datetime) -> StoredMessage:
        """Keep a message once per (sender, control id, content hash). Sender and control id are
        kept to their columns' 255 characters (HL7 allows longer MSH-3^MSH-4), on every backend
        alike, so a resend still finds the stored message."""
        sender, control_id = sender[:255], control_id[:255]
        row = await self._find(sender, control_id, sha256)
        if row is None:
            try:
                async with self.s.begin_nested():  # a concurrent resend loses the race here
                    row = InboundMessageRow(source=source, sender=sender, control_id=control_id, sha256=sha256,
                                            received_at=now, raw=raw, state="received")
                    self.s.add(row)
                return StoredMessage(row.id, source, row.state, created=True)
            except IntegrityError:
                row = await self._find(sender, control_id, sha256)
                assert row is not None
        return StoredMessage(row.id, row.source, row.state, created=False)

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
        """For nobody followed: the row goes, raw content, key and all."""
        await self.s.execute(delete(InboundMessageRow).where(InboundMessageRow.id == message_id))

    async def count_messages(self) -> int:
        result = await self.s.execute(select(func.count()).select_from(InboundMessageRow))
        return int(result.scalar_one())

    # ------------------------------------------------------------ persons by identifier

    async def open_cases_with_values(self, values: Iterable[str]) -> list[str]:
        """Open files holding an identifier with one of these values (the caller checks authorities)."""
        wanted = sorted({v.strip() for v in values if v.strip()})
        if not wanted:
            return []
        result = await self.s.execute(
            select(PersonRow.case_ref).distinct()
            .join(IdentifierRow, IdentifierRow.person_id == PersonRow.id)
            .where(IdentifierRow.value.in_(wanted), PersonRow.closed_at.is_(None))
            .order_by(PersonRow.case_ref))
        return list(result.scalars())

    async def rekey_identifier(self, case_ref: str, old: Identifier, new: Identifier) -> bool:
        """A merge (A40): the person's identifier takes the surviving value; False if taken."""
        taken = await self.s.execute(select(IdentifierRow.id).where(
            IdentifierRow.authority == new.authority, IdentifierRow.value == new.value))
        if taken.scalar_one_or_none() is not None:
            return False
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
        result = await self.s.execute(select(AlertRow).where(AlertRow.case_ref == case_ref).order_by(AlertRow.id))
        return [_record(r) for r in result.scalars()]

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
