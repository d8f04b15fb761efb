"""ReferralRepo: the one owner of the referral rows and of the referrers' direct rooms."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.persons import Identifier
from hub.domain.referral import CountRow, Criteria, Referral, Source, Status
from hub.storage.models_referral import ReferralRow, ReferrerRoomRow
from hub.storage.repositories import _aware, next_in_sequence

__all__ = ["ReferralRepo"]


def _to_domain(row: ReferralRow) -> Referral:
    return Referral(
        ref=row.ref, source=Source(row.source), received_at=_aware(row.received_at) or row.received_at,
        referrer=row.referrer, name=row.name, born=row.born, reason=row.reason,
        identifiers=tuple(Identifier(a, v) for a, v in row.identifiers or []), gp=row.gp,
        referrer_room=row.referrer_room, criteria=Criteria(row.autonomy, row.care, row.coordination),
        status=Status(row.status), duplicate_of=row.duplicate_of, decided_at=_aware(row.decided_at),
        decided_by=row.decided_by, case_ref=row.case_ref, refusal=row.refusal, refer_to=row.refer_to,
        reminded_on=row.reminded_on, erased_at=_aware(row.erased_at),
    )


def _fill(row: ReferralRow, r: Referral) -> None:
    row.referrer, row.referrer_room, row.name, row.born, row.reason = (
        r.referrer, r.referrer_room, r.name, r.born, r.reason)
    row.identifiers = [[i.authority, i.value] for i in r.identifiers]
    row.gp = r.gp
    row.autonomy, row.care, row.coordination = r.criteria.autonomy, r.criteria.care, r.criteria.coordination
    row.status, row.duplicate_of = r.status.value, r.duplicate_of
    row.decided_at, row.decided_by, row.case_ref = r.decided_at, r.decided_by, r.case_ref
    row.refusal, row.refer_to, row.reminded_on, row.erased_at = r.refusal, r.refer_to, r.reminded_on, r.erased_at


class ReferralRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def next_sequence(self, year: int) -> int:
        """Per-year counter for O-YYYY-NNNN, locked so two referrals never share a number."""
        return await next_in_sequence(self.s, f"referral_seq:{year}")

    async def by_source_key(self, source_key: str) -> Referral | None:
        result = await self.s.execute(select(ReferralRow).where(ReferralRow.source_key == source_key))
        row = result.scalar_one_or_none()
        return None if row is None else _to_domain(row)

    async def add(self, referral: Referral, source_key: str) -> None:
        row = ReferralRow(ref=referral.ref, source=referral.source.value, source_key=source_key,
                          received_at=referral.received_at)
        _fill(row, referral)
        self.s.add(row)
        await self.s.flush()

    async def lock(self, ref: str) -> Referral | None:
        """The referral, its row locked until the unit of work ends (one decision at a time)."""
        result = await self.s.execute(select(ReferralRow).where(ReferralRow.ref == ref).with_for_update())
        row = result.scalar_one_or_none()
        return None if row is None else _to_domain(row)

    async def save(self, referral: Referral) -> None:
        result = await self.s.execute(select(ReferralRow).where(ReferralRow.ref == referral.ref))
        _fill(result.scalar_one(), referral)
        await self.s.flush()

    async def pending(self) -> list[Referral]:
        result = await self.s.execute(select(ReferralRow).where(ReferralRow.status == Status.PENDING.value)
                                      .order_by(ReferralRow.received_at, ReferralRow.id))
        return [_to_domain(r) for r in result.scalars()]

    async def refused_unerased(self, decided_before: datetime) -> list[Referral]:
        result = await self.s.execute(
            select(ReferralRow).where(ReferralRow.status == Status.REFUSED.value, ReferralRow.erased_at.is_(None),
                                      ReferralRow.decided_at <= decided_before).order_by(ReferralRow.id))
        return [_to_domain(r) for r in result.scalars()]

    async def opening(self, case_ref: str) -> Referral | None:
        """The referral whose acceptance opened this file, if any."""
        result = await self.s.execute(select(ReferralRow).where(ReferralRow.case_ref == case_ref))
        row = result.scalars().first()
        return None if row is None else _to_domain(row)

    async def count_rows(self) -> list[CountRow]:
        result = await self.s.execute(select(ReferralRow.source, ReferralRow.status, ReferralRow.received_at,
                                             ReferralRow.decided_at).order_by(ReferralRow.id))
        rows = []
        for source, status, received, decided in result.all():
            received = _aware(received) or received
            rows.append(CountRow(source, status, _aware(decided), received))
        return rows

    async def add_referrer_room(self, room_id: str, user_id: str) -> None:
        """Keep a referrer's new direct room; their pending referrals whose room was given up
        (`forget_referrer_room`) will be answered here."""
        if await self.s.get(ReferrerRoomRow, room_id) is None:
            self.s.add(ReferrerRoomRow(room_id=room_id, user_id=user_id))
            await self.s.flush()
        await self.s.execute(update(ReferralRow).where(
            ReferralRow.referrer == user_id, ReferralRow.source == "matrix", ReferralRow.status == "pending",
            ReferralRow.referrer_room.is_(None)).values(referrer_room=room_id))

    async def forget_referrer_room(self, room_id: str) -> None:
        """The room is no longer private: nothing more is posted there (its referrals' decisions
        wait for the referrer's next direct room)."""
        row = await self.s.get(ReferrerRoomRow, room_id)
        if row is not None:
            await self.s.delete(row)
        await self.s.execute(update(ReferralRow).where(ReferralRow.referrer_room == room_id)
                             .values(referrer_room=None))
        await self.s.flush()

    async def decided_without_room(self, user_id: str) -> list[Referral]:
        """`user_id`'s Matrix referrals decided while they had no direct room (not erased)."""
        result = await self.s.execute(select(ReferralRow).where(
            ReferralRow.referrer == user_id, ReferralRow.source == "matrix", ReferralRow.status != "pending",
            ReferralRow.referrer_room.is_(None), ReferralRow.erased_at.is_(None)).order_by(ReferralRow.id))
        return [_to_domain(row) for row in result.scalars()]

    async def referrer_of(self, room_id: str) -> str | None:
        row = await self.s.get(ReferrerRoomRow, room_id)
        return None if row is None else row.user_id
