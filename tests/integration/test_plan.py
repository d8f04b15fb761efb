"""The care plan, evaluations and re-evaluation prompts on a real Synapse, read by the team's clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.clock import FakeClock
from hub.i18n.catalog import Catalog
from tests.hub_harness import Hub, content_of, is_notice, kind_of, shows
from tests.matrix_helpers import accept_invite, send_text, wait_for_event

pytestmark = [pytest.mark.matrix, pytest.mark.db]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROMPTS = ("reevaluation.upcoming", "reevaluation.due", "reevaluation.overdue", "plan.review")


async def _bot_notices(hub: Hub, who: str, room_id: str) -> list[Any]:
    client = await hub.client(who)
    response = await client.room_messages(room_id, start="", limit=200)
    return [e for e in reversed(response.chunk) if getattr(e, "sender", None) == hub.bot and kind_of(e)]


async def _with_gp(hub: Hub, room_id: str) -> None:
    cm, gp = await hub.client("cm"), await hub.client("gp")
    await send_text(cm, room_id, f"!team add {hub.user('gp')} gp")
    await wait_for_event(cm, room_id, is_notice("team.update", hub.bot))
    await accept_invite(gp, room_id)


async def test_plan_commands_post_one_accurate_update_each_and_bad_ones_change_nothing(hub: Hub) -> None:
    await hub.setup()
    relais = await hub.start(clock=FakeClock(T0))
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    await _with_gp(hub, room_id)
    cm, gp = await hub.client("cm"), await hub.client("gp")
    update = is_notice("plan.update", hub.bot)

    await send_text(cm, room_id, '!plan ajouter "Toilette" "Aide à domicile" --intervenant "SAD Les Lilas" '
                                 '--frequence "2 fois par semaine" --debut 2026-03-02 --revision 2026-06-01')
    added = await wait_for_event(gp, room_id, update)  # read by a member's own client
    assert "ajoute l'action 1" in added.body and shows(added, hub.user("cm"))
    for text in ("Toilette → Aide à domicile", "Statut : proposée", "SAD Les Lilas", "2 fois par semaine",
                 "Révision : lun. 01/06/2026", "Début : lun. 02/03/2026"):
        assert text in added.body, text
    assert content_of(added)["fr.relais.case"] == case_ref

    await send_text(cm, room_id, f'!plan add "Soins" "Pansements" --provider {hub.user("gp")}')
    second = await wait_for_event(gp, room_id, update)
    assert "l'action 2" in second.body and hub.user("gp") in content_of(second)["m.mentions"]["user_ids"]
    await send_text(cm, room_id, '!plan modifier 1 --statut en_place --frequence "chaque jour"')
    changed = await wait_for_event(gp, room_id, update)
    assert "modifie l'action 1" in changed.body
    assert "statut : proposée → en place" in changed.body
    assert "fréquence : 2 fois par semaine → chaque jour" in changed.body
    assert "<li>statut : proposée → en place</li>" in content_of(changed)["formatted_body"]
    await send_text(cm, room_id, "!plan clore 2")
    closed = await wait_for_event(gp, room_id, update)
    assert "clôt l'action 2" in closed.body and "Pansements" in closed.body

    async with relais.db.unit() as uow:
        versions_before = await uow.plans.versions(case_ref)
    refused = [
        ("cm", "!plan set 9 --status done", "pas d'action numéro 9"),
        ("cm", "!plan set 1 --status maybe", "n'est pas possible pour --statut : écrivez propose, en_place"),
        ("cm", "!plan set abc --status done", "n'est pas un nombre"),
        ("cm", "!plan set 1", "que faut-il changer"),
        ("cm", "!plan set 1 --status in_place", "rien ne change"),
        ("cm", "!plan set 2 --status done", "clôturée"),
        ("cm", "!plan set 1 --review 2026-02-30", "date valide"),
        ("cm", "!plan set 1 --review 2026-01-01", "avant la date de début"),
        ("cm", '!plan add "A" "B" --review 2026-13-01', "date valide"),
        ("cm", '!plan add "A" "B" --start 2026-05-01 --review 2026-04-01', "avant la date de début"),
        ("cm", '!plan add "A" "B" --review 2026-01-15', "est déjà passée"),
        ("cm", f'!plan add "A" "B" --provider {hub.user("stranger")}', "ne fait pas partie de l'équipe"),
        ("cm", '!plan add " " "B"', '"besoin" ne peut pas être vide'),
        ("gp", '!plan add "A" "B"', "gestionnaires de cas"),
        ("gp", "!plan close 1", "gestionnaires de cas"),
    ]
    for who, text, expected in refused:
        reply = await hub.command(who, room_id, text)
        assert kind_of(reply) == "command.error", (text, reply.body)
        assert expected in reply.body, (text, reply.body)
    async with relais.db.unit() as uow:
        assert await uow.plans.versions(case_ref) == versions_before
    assert [kind_of(e) for e in await _bot_notices(hub, "gp", room_id)].count("plan.update") == 4

    # The whole plan, readable in Element (HTML list) and in plain text, for any member.
    shown = await hub.command("gp", room_id, "!plan")
    assert kind_of(shown) == "command.reply"
    assert "1 action en cours" in shown.body and "Actions clôturées : 2." in shown.body
    assert "• 1. Toilette → Aide à domicile" in shown.body and "Statut : en place" in shown.body
    assert "<ul><li>1. Toilette → Aide à domicile" in content_of(shown)["formatted_body"]
    past = await hub.command("gp", room_id, "!plan au 2026-03-01")
    assert "ne contenait aucune action" in past.body

    # Evaluations: recorded by the case manager, shown to members, with the next due date.
    none_yet = await hub.command("gp", room_id, "!eval")
    assert "Aucune évaluation" in none_yet.body and "aujourd'hui (lun. 02/03/2026)" in none_yet.body
    for text, expected in (("!eval faite 2026-03-03", "après aujourd'hui"),
                           ("!eval faite --outil Katz", "n'est pas un outil"),
                           ("!eval faite --outil SMAF --gir 3", "grille AGGIR"),
                           ("!eval faite --gir 7", "de 1 à 6"),
                           ("!eval faite --motif caprice",
                            "n'est pas possible pour --motif : écrivez initiale, suivi")):
        reply = await hub.command("cm", room_id, text)
        assert kind_of(reply) == "command.error" and expected in reply.body, (text, reply.body)
    recorded = await hub.command("cm", room_id, "!eval faite 2026-03-01 --gir 3")
    assert kind_of(recorded) == "command.reply"
    assert "AGGIR — GIR 3" in recorded.body and "évaluation initiale" in recorded.body
    assert "le dim. 30/08/2026" in recorded.body  # 182 days after the evaluation
    shown = await hub.command("gp", room_id, "!eval")
    assert "le dim. 01/03/2026" in shown.body and "dim. 30/08/2026 (dans 181 jours)" in shown.body

    await send_text(cm, room_id, '!plan add "Repas" "Portage de repas"')
    await wait_for_event(cm, room_id, update)
    load = await hub.command("cm", desk, "!file-active")
    assert "Réévaluations en retard : 0." in load.body
    assert "Actions du plan sans intervenant : 1." in load.body
    async with relais.db.unit() as uow:
        audit = [a[2] for a in await uow.audit.entries(case_ref)]
    assert audit.count("plan add") == 3 and audit.count("eval done") == 1


async def test_prompts_arrive_once_each_in_the_right_room_even_across_a_restart(hub: Hub) -> None:
    await hub.setup()
    clock = FakeClock(T0)
    relais = await hub.start(clock=clock)
    desk = await hub.desk()
    case_ref, room_id = await hub.open_case(desk=desk)
    _other_ref, other_room = await hub.open_case(desk=desk, text='!new "Paul Martin"')
    await _with_gp(hub, room_id)
    cm, gp = await hub.client("cm"), await hub.client("gp")
    for room in (room_id, other_room):
        await hub.command("cm", room, "!eval done")
        await send_text(cm, room, "!consent informed")  # else the daily consent reminder joins the counts
        await wait_for_event(cm, room, is_notice("consent.update", hub.bot))
    await send_text(cm, room_id, f'!plan add "Soins" "Pansements" --provider {hub.user("gp")} --review 2026-03-20')
    await wait_for_event(cm, room_id, is_notice("plan.update", hub.bot))
    async with relais.db.unit() as uow:  # the second file has its evaluation a month later
        other = await uow.persons.get(_other_ref)
        assert other is not None
        await uow.plans.set_due(_other_ref, T0.date() + timedelta(days=212), T0.date() + timedelta(days=30), 182)
    due = T0.date() + timedelta(days=182)

    clock.set(T0 + timedelta(days=182 - 14))
    assert await relais.scheduler.run_now() == 2  # upcoming + the plan item past its review date
    upcoming = await wait_for_event(cm, room_id, is_notice("reevaluation.upcoming", hub.bot))
    assert f"due le {Catalog('fr').formats.date(due)}, dans 14 jours" in upcoming.body  # lun. 31/08/2026
    assert content_of(upcoming)["fr.relais.case"] == case_ref
    assert set(content_of(upcoming)["m.mentions"]["user_ids"]) == {hub.user("cm"), hub.user("gp")}
    review = await wait_for_event(gp, room_id, is_notice("plan.review", hub.bot))
    assert "ven. 20/03/2026" in review.body and "Pansements" in review.body
    assert hub.user("gp") in content_of(review)["m.mentions"]["user_ids"]
    assert await relais.scheduler.run_now() == 0

    # Down across the due date: the prompt comes after the restart, late, once.
    await hub.stop()
    clock.set(T0 + timedelta(days=182 + 2))
    relais = await hub.start(clock=clock)  # the hourly run was missed: it runs at start
    late = await wait_for_event(cm, room_id, is_notice("reevaluation.due", hub.bot))
    assert f"{due:%d/%m/%Y}" in late.body and content_of(late)["msgtype"] == "m.text"
    assert hub.user("cm") in content_of(late)["m.mentions"]["user_ids"]
    assert await relais.scheduler.run_now() == 0

    clock.set(T0 + timedelta(days=182 + 7))
    assert await relais.scheduler.run_now() == 1
    overdue = await wait_for_event(cm, room_id, is_notice("reevaluation.overdue", hub.bot))
    assert "en retard de 7 jours" in overdue.body
    load = await hub.command("cm", desk, "!caseload")
    assert "Réévaluations en retard : 1." in load.body

    kinds = [kind_of(e) for e in await _bot_notices(hub, "cm", room_id) if kind_of(e) in PROMPTS]
    assert sorted(kinds) == sorted(PROMPTS)  # each once
    assert not [e for e in await _bot_notices(hub, "cm", other_room) if kind_of(e) in PROMPTS]
