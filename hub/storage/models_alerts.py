"""Models for hospital messages and alerts."""

from __future__ import annotations

from hub.storage.models import Base

__all__ = ["Base"]
