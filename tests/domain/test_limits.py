"""Free-text lengths are checked in the domain before anything is saved (issue 17 §8, issue 16 §6)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.domain import handover, limits, plan, team
from hub.domain.errors import DomainError
from hub.domain.team import Member, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SERVERS = ("x",)


def too_long(field: str) -> str:
    return "é" * (limits.limit(field) + 1)


def assert_too_long(err: pytest.ExceptionInfo[DomainError], field: str) -> None:
    assert err.value.key == "error.too_long"
    assert err.value.params == {"arg": field, "max": limits.limit(field), "length": limits.limit(field) + 1}


def test_team_organisation_and_reason() -> None:
    with pytest.raises(DomainError) as err:
        team.add_member([], "R-1", "@gp:x", Role.GP, too_long("org"), by="@cm:x", now=NOW,
                        allowed_servers=SERVERS, bot_user="@bot:x")
    assert_too_long(err, "org")
    member = Member("@gp:x", Role.GP, NOW)
    with pytest.raises(DomainError) as err:
        team.remove_member([member], "R-1", "@gp:x", by="@cm:x", now=NOW, reason=too_long("reason"))
    assert_too_long(err, "reason")
    fits, _ = team.remove_member([member], "R-1", "@gp:x", by="@cm:x", now=NOW, reason="é" * limits.limit("reason"))
    assert fits.end_reason is not None and len(fits.end_reason) == limits.limit("reason")


def test_handover_reason_and_organisation() -> None:
    members = [Member("@gp:x", Role.GP, NOW), Member("@cm:x", Role.CASE_MANAGER, NOW)]
    for field, reason, org in (("reason", too_long("reason"), None), ("org", None, too_long("org"))):
        with pytest.raises(DomainError) as err:
            handover.professional(members, [], "R-1", "@cm:x", "@gp:x", "@gp2:x", reason, organisation=org,
                                  last=None, due=NOW.date(), by="@cm:x", now=NOW, allowed_servers=SERVERS,
                                  bot_user="@bot:x")
        assert_too_long(err, field)


@pytest.mark.parametrize("field", ["need", "action", "provider", "frequency"])
def test_plan_item_texts(field: str) -> None:
    values = {"need": "Toilette", "action": "Aide", "provider_org": None, "frequency": None}
    values["provider_org" if field == "provider" else field] = too_long(field)
    with pytest.raises(DomainError) as err:
        plan.add_item([], "R-1", values.pop("need") or "", values.pop("action") or "", by="@cm:x", now=NOW,
                      **values)
    assert_too_long(err, field)


@pytest.mark.parametrize("field", ["provider", "frequency"])
def test_plan_item_changes(field: str) -> None:
    item, _ = plan.add_item([], "R-1", "Toilette", "Aide", by="@cm:x", now=NOW)
    with pytest.raises(DomainError) as err:
        plan.set_item(item, "R-1", {field: too_long(field)}, by="@cm:x", now=NOW)
    assert_too_long(err, field)
