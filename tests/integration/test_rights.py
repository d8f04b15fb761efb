"""The person's rights on a real Synapse: an AGGIR grid typed in the room gives the GIR in the
reply and a rights.review for the case manager; !droits lists it, !droits fait 1 closes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.clock import FakeClock
from tests.hub_harness import Hub, content_of, is_notice, kind_of
from tests.matrix_helpers import wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_a_grid_gives_the_gir_and_a_rights_review_the_case_manager_closes(hub: Hub) -> None:
    await hub.setup()
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    cm = await hub.client("cm")

    # A bad grid: the error names the position and the variable, and nothing is recorded.
    for text, expected in (("!eval faite --outil AGGIR --grille ABCABCAAXB", "la lettre 9 de la grille AGGIR "
                                                                             "(déplacements à l'extérieur)"),
                           ("!eval faite --grille ABCABCAAA", "il manque la lettre 10 (communication à distance)"),
                           ("!eval faite --outil SMAF --grille ABCABCAAAB", "--outil AGGIR")):
        reply = await hub.command("cm", room_id, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)
    async with relais.db.unit() as uow:
        assert await uow.plans.last_evaluation(case_ref) is None

    recorded = await hub.command("cm", room_id, "!eval faite 2026-03-01 --outil AGGIR --grille abc abc-aaab")
    assert kind_of(recorded) == "command.reply", recorded.body
    assert "AGGIR — GIR 3 (grille ABCABCAAAB)" in recorded.body
    review = await wait_for_event(cm, room_id, is_notice("rights.review", hub.bot))
    assert content_of(review)["fr.relais.case"] == case_ref
    assert content_of(review)["m.mentions"] == {"user_ids": [hub.user("cm")]}
    assert content_of(review)["msgtype"] == "m.text"  # an m.notice would be silenced (SPEC §5)
    assert content_of(recorded)["msgtype"] == "m.notice"
    assert "révision n° 1 : GIR 3" in review.body and "GIR précédent : aucun" in review.body
    assert "demandez au département l'évaluation de l'allocation personnalisée d'autonomie" in review.body
    assert "!droits fait 1" in review.body

    listed = await hub.command("cm", room_id, "!droits")
    assert "n° 1 : GIR 3 (avant : aucun), évaluation du dim. 01/03/2026" in listed.body, listed.body
    load = await hub.command("cm", desk, "!file-active")
    assert "Révisions de droits (APA) ouvertes : 1" in load.body
    closed = await hub.command("cm", room_id, "!droits fait 1")
    assert kind_of(closed) == "command.reply" and "Révision de droits n° 1" in closed.body
    assert "Révisions encore ouvertes : 0" in closed.body
    again = await hub.command("cm", room_id, "!droits fait 1")
    assert kind_of(again) == "command.error" and "déjà close" in again.body
    assert "Aucune révision de droits ouverte" in (await hub.command("cm", desk, "!droits")).body

    # A GIR given alone (computed elsewhere) that changes opens review 2; left open for 30 days,
    # the scheduler's job reminds the referent in the room, once for the week.
    assert "GIR 2" in (await hub.command("cm", room_id, "!eval faite --gir 2")).body
    second = await wait_for_event(cm, room_id, is_notice("rights.review", hub.bot))
    assert "révision n° 2 : GIR 2" in second.body and "GIR précédent : 3" in second.body
    assert "réévaluation de l'APA" in second.body
    clock.advance(timedelta(days=30))
    assert await relais.scheduler.run_now() >= 1
    reminded = await wait_for_event(cm, room_id, lambda e: is_notice("rights.review", hub.bot)(e)
                                    and "Rappel" in e.body)
    assert "révision de droits n° 2" in reminded.body and "ouverte depuis 30 jours" in reminded.body
    assert content_of(reminded)["m.mentions"] == {"user_ids": [hub.user("cm")]}
    assert await relais.rights_reminders.sweep(clock.now()) == 0  # once per occasion
