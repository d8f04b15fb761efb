"""Models for the care plan (PSI) and evaluations."""

from __future__ import annotations

from hub.storage.models import Base

__all__ = ["Base"]
