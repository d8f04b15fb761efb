"""Person-room commands about settings and alerts: !move."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.commands.registry import Registry


def register(reg: Registry) -> None:
    """Add the setting commands to the registry."""
