"""A display name cannot make a notice name someone else (real Synapse): anyone sets their own
display name, and a notice's plain body — what a phone's notification shows — prints it in place
of the Matrix id. A name holding another Matrix id, line breaks or bidi controls is not shown as is."""

from __future__ import annotations

import nio
import pytest

from hub.bots.render import NAME_MAX, shown_name
from tests.hub_harness import Hub
from tests.security.test_access_matrix import answer

pytestmark = [pytest.mark.matrix, pytest.mark.db]


@pytest.mark.parametrize(("name", "shown"), [
    ("Dr Martin", "Dr Martin"),
    ("@cm:example.org", None),  # another person's id
    ("Dr Martin (@gp:chu-x.example)", None),
    ("@nurse:relais.test", None),  # the id itself: shown as the id
    ("Nurse (@Nurse:relais.test)", "Nurse (@Nurse:relais.test)"),  # their own id
    ("Jeanne\n\n⚠ Admission aux urgences", "Jeanne ⚠ Admission aux urgences"),
    ("\u202etxet", "txet"),
    ("jean@mail.fr", "jean@mail.fr"),
    ("x" * 200, "x" * (NAME_MAX - 1) + "…"),
    ("\u200b", None),
])
def test_shown_name(name: str, shown: str | None) -> None:
    assert shown_name("@nurse:relais.test", name) == shown


async def test_a_display_name_naming_another_matrix_id_is_not_shown_in_a_notice(hub: Hub) -> None:
    await hub.setup(case_managers=("cm",))
    await hub.start()
    _case_ref, room_id = await hub.open_case()
    nurse = await hub.client("nurse")
    resp = await nurse.set_displayname(hub.user("cm"))  # the nurse poses as the case manager
    assert isinstance(resp, nio.ProfileSetDisplayNameResponse), resp
    reply = await answer(hub, "cm", room_id, f"!equipe ajouter {hub.user('nurse')} infirmier")
    assert hub.user("nurse") in reply.body, reply.body
    assert not reply.body.startswith(hub.user("cm")), reply.body  # was: "@cm:… rejoint l'équipe comme infirmier·e"
