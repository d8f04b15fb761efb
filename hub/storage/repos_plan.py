"""Repositories for the care plan and evaluations."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class PlanRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session
