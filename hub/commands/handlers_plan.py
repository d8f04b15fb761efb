"""Person-room commands about the care plan and evaluations: !plan…, !eval…"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.commands.registry import Registry


def register(reg: Registry) -> None:
    """Add the plan and evaluation commands to the registry."""
