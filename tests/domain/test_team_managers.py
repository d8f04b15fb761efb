"""Who manages a file: one answer for the commands and for the key-sharing notices."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.domain.team import Member, Role, case_managers

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_referent_first_then_active_case_managers_each_once() -> None:
    team = [
        Member("@gp:example.org", Role.GP, NOW),
        Member("@cm2:example.org", Role.CASE_MANAGER, NOW),
        Member("@cm1:example.org", Role.CASE_MANAGER, NOW),  # the referent, also a member
        Member("@old:example.org", Role.CASE_MANAGER, NOW, until=NOW),  # left: not a manager
        Member("@nurse:example.org", Role.NURSE, NOW),
    ]
    assert case_managers(team, "@cm1:example.org") == ("@cm1:example.org", "@cm2:example.org")


def test_the_referent_manages_even_outside_the_team_list() -> None:
    assert case_managers([], "@cm1:example.org") == ("@cm1:example.org",)
