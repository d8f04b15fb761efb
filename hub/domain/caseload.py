"""Caseload rules: about 40 files, never more than 60, at most 5 new ones a month (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.domain.errors import DomainError


@dataclass(frozen=True)
class Limits:
    target: int
    maximum: int
    intake_per_month: int


@dataclass(frozen=True)
class Caseload:
    active: int
    intake_this_month: int
    overdue_reevaluations: int = 0
    without_gp: int = 0
    items_without_provider: int = 0
    rights_reviews: int = 0  # open APA reviews (SPEC §10)


def check_intake(load: Caseload, limits: Limits) -> list[str]:
    """Refuse past the maximum; return warning keys past the target or the monthly intake."""
    if load.active + 1 > limits.maximum:
        raise DomainError("error.caseload_max", active=load.active, maximum=limits.maximum)
    warnings: list[str] = []
    if load.active + 1 > limits.target:
        warnings.append("warn.caseload_target")
    if load.intake_this_month + 1 > limits.intake_per_month:
        warnings.append("warn.intake_month")
    return warnings
