"""Rights follow the configuration (issue 17 items 1–3), on the real Synapse.

- `[care] case_managers` and `pilots` are read at every command; at start, the desk of someone
  taken off the lists is closed (they are told, the bot leaves) and a changed role takes effect;
- the role `case_manager` is only for people listed in `[care] case_managers`, and a pilot never
  joins a person's team (they see counts only);
- the bot adopts a direct room as a desk only if it is encrypted and holds the bot and its owner
  alone; otherwise it leaves it and the desk stays.
"""

from __future__ import annotations

from typing import Any

import nio
import pytest

from hub.config import CareConfig
from tests.hub_harness import Hub, kind_of
from tests.matrix_helpers import skip_seen, wait_for_event
from tests.security.test_access_matrix import answer

pytestmark = [pytest.mark.matrix, pytest.mark.db]

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def membership_of(user: str, membership: str) -> Any:
    return lambda e: (isinstance(e, nio.RoomMemberEvent) and e.state_key == user
                      and e.membership == membership)


async def desk_rows(hub: Hub) -> dict[str, tuple[str, str | None]]:
    assert hub.relais is not None
    async with hub.relais.db.unit() as uow:
        return {user: (role, room) for user, role, room in await uow.desks.all()}


async def restart_with(hub: Hub, case_managers: tuple[str, ...], pilots: tuple[str, ...]) -> None:
    assert hub.config is not None
    await hub.stop()
    care = CareConfig(case_managers=tuple(hub.user(n) for n in case_managers),
                      pilots=tuple(hub.user(n) for n in pilots))
    hub.config = hub.config.model_copy(update={"care": care})
    await hub.start()


async def test_rights_follow_the_configuration_at_every_command_and_at_start(hub: Hub) -> None:
    await hub.setup(case_managers=("cm", "cm2"), pilots=("pilot",))
    await hub.start()
    desks = {who: await hub.desk(who) for who in ("cm", "cm2", "pilot")}
    _case_ref, room_id = await hub.open_case(desk=desks["cm"])
    for who in ("outsider", "gp"):
        await hub.client(who)  # registered, so that they could be invited

    # Item 2: the case-manager role only for configured case managers; a pilot never in a team.
    refused = {
        f"!equipe ajouter {hub.user('outsider')} gestionnaire": "n'est pas gestionnaire de cas de ce territoire",
        f"!team add {hub.user('outsider')} case_manager": "n'est pas gestionnaire de cas de ce territoire",
        f"!equipe ajouter {hub.user('pilot')} medecin": "est pilote du territoire",
        f"!equipe ajouter {hub.user('pilot')} gestionnaire": "est pilote du territoire",
    }
    for command, reason in refused.items():
        reply = await hub.command("cm", room_id, command)
        assert kind_of(reply) == "command.error" and reason in reply.body, (command, reply.body)
    for who, role in (("cm2", "gestionnaire"), ("gp", "medecin")):
        ok = await answer(hub, "cm", room_id, f"!equipe ajouter {hub.user(who)} {role}")
        assert kind_of(ok) == "team.update", ok.body
    # A successor takes the leaver's role: the same rule holds for them.
    reply = await hub.command("cm", room_id,
                              f"!equipe retirer {hub.user('cm2')} --successeur {hub.user('outsider')}")
    assert kind_of(reply) == "command.error" and "gestionnaire de cas de ce territoire" in reply.body, reply.body
    reply = await hub.command("cm", room_id, f"!equipe retirer {hub.user('gp')} --successeur {hub.user('pilot')}")
    assert kind_of(reply) == "command.error" and "est pilote du territoire" in reply.body, reply.body
    cm2 = await hub.client("cm2")
    await cm2.join(room_id)
    reply = await answer(hub, "cm2", room_id, '!plan ajouter "Toilette" "Passage SSIAD"')
    assert kind_of(reply) == "plan.update", reply.body  # configured and in the team: allowed

    # Item 1: cm2 is taken off the list, the pilot becomes a case manager; the hub restarts.
    await restart_with(hub, case_managers=("cm", "pilot"), pilots=())
    closed = await wait_for_event(cm2, desks["cm2"], lambda e: kind_of(e) == "command.reply"
                                  and "ce bureau est fermé" in getattr(e, "body", ""))
    assert closed.sender == hub.bot
    await wait_for_event(cm2, desks["cm2"], membership_of(hub.bot, "leave"))
    rows = await desk_rows(hub)
    assert hub.user("cm2") not in rows
    assert rows[hub.user("pilot")][0] == "case_manager" and rows[hub.user("cm")][0] == "case_manager"
    # cm2 keeps their place in the team (history) but no longer changes the file…
    reply = await hub.command("cm2", room_id, '!plan ajouter "Repas" "Portage"')
    assert kind_of(reply) == "command.error" and "seul" in reply.body, reply.body
    reply = await hub.command("cm2", room_id, "!plan")  # …and still reads it as a team member
    assert kind_of(reply) == "command.reply", reply.body
    # The former pilot now has the case manager's desk commands and no longer the report.
    reply = await hub.command("pilot", desks["pilot"], "!file-active")
    assert kind_of(reply) == "command.reply", reply.body
    reply = await hub.command("pilot", desks["pilot"], "!rapport")
    assert kind_of(reply) == "command.error" and "seul le pilote" in reply.body, reply.body
    # Nothing the bot still queues for the closed desk can block the others.
    reply = await hub.command("cm", desks["cm"], "!file-active")
    assert kind_of(reply) == "command.reply", reply.body


async def _direct_room(client: nio.AsyncClient, bot: str, *, encrypted: bool, also: str | None = None) -> str:
    invite = [bot, *([also] if also else [])]
    resp = await client.room_create(is_direct=True, invite=invite,
                                    initial_state=[ENCRYPTION] if encrypted else [],
                                    preset=nio.RoomPreset.trusted_private_chat)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return str(resp.room_id)


async def test_a_desk_is_adopted_only_encrypted_and_between_the_bot_and_its_owner(hub: Hub) -> None:
    await hub.setup(case_managers=("cm",))
    await hub.start()
    desk = await hub.desk("cm")
    cm = await hub.client("cm")
    await hub.client("colleague")
    plain = await _direct_room(cm, hub.bot, encrypted=False)
    crowded = await _direct_room(cm, hub.bot, encrypted=True, also=hub.user("colleague"))
    for room_id in (plain, crowded):
        await wait_for_event(cm, room_id, membership_of(hub.bot, "join"))
        await wait_for_event(cm, room_id, membership_of(hub.bot, "leave"))
        assert (await desk_rows(hub))[hub.user("cm")][1] == desk  # the desk stays
    reply = await hub.command("cm", desk, "!file-active")
    assert kind_of(reply) == "command.reply", reply.body

    good = await _direct_room(cm, hub.bot, encrypted=True)
    await wait_for_event(cm, good, membership_of(hub.bot, "join"))
    # The bot adopts the room before it reads anything typed there after its join.
    reply = await hub.command("cm", good, "!file-active")
    assert kind_of(reply) == "command.reply", reply.body
    assert (await desk_rows(hub))[hub.user("cm")][1] == good

    # The adopted desk stays private afterwards: when its owner invites someone else, the bot says
    # so there (no content), leaves it and opens a new desk (review r16).
    await skip_seen(cm, good)
    invited = await cm.room_invite(good, hub.user("colleague"))
    assert isinstance(invited, nio.RoomInviteResponse), invited
    left = await wait_for_event(cm, good, lambda e: getattr(e, "sender", None) == hub.bot
                                and kind_of(e) == "command.reply")
    assert "plus privé" in left.body, left.body
    await wait_for_event(cm, good, membership_of(hub.bot, "leave"))
    new_desk = await hub.desk("cm")
    assert new_desk not in (desk, good)
    assert (await desk_rows(hub))[hub.user("cm")][1] == new_desk
