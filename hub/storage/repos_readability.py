"""Who could not read which room, and since when (see services/readability.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.models_readability import UnreadableRow

DESK_SCOPE = "desk"


class ReadabilityRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def note(self, scope: str, user_id: str, now: datetime) -> bool:
        """Record that `user_id` cannot read `scope`; False when already recorded (even if since
        resolved: a member is caught up once per room)."""
        if await self.s.get(UnreadableRow, (scope, user_id)) is not None:
            return False
        self.s.add(UnreadableRow(scope=scope, user_id=user_id, since=now, readable_at=None))
        await self.s.flush()
        return True

    async def wait_again(self, scope: str, user_id: str, now: datetime) -> None:
        """Record, or record again, that `user_id` cannot read `scope` yet (a desk opened anew)."""
        row = await self.s.get(UnreadableRow, (scope, user_id))
        if row is None:
            self.s.add(UnreadableRow(scope=scope, user_id=user_id, since=now, readable_at=None))
        else:
            row.since, row.readable_at = now, None
        await self.s.flush()

    async def waiting(self) -> list[tuple[str, str]]:
        """(scope, user) pairs still unreadable, oldest first."""
        rows = await self.s.execute(select(UnreadableRow.scope, UnreadableRow.user_id)
                                    .where(UnreadableRow.readable_at.is_(None))
                                    .order_by(UnreadableRow.since, UnreadableRow.scope, UnreadableRow.user_id))
        return [(scope, user) for scope, user in rows.all()]

    async def resolve(self, scope: str, user_id: str, now: datetime) -> bool:
        """Mark readable; False when it already was (another pass got there first)."""
        result = await self.s.execute(
            update(UnreadableRow)
            .where(UnreadableRow.scope == scope, UnreadableRow.user_id == user_id,
                   UnreadableRow.readable_at.is_(None))
            .values(readable_at=now))
        return bool(getattr(result, "rowcount", 0))
