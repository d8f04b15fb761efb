"""Repositories for hospital messages and alerts."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class AlertRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session
