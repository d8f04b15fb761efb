"""Which direct rooms may become a desk (issue 17 item 3): the pure check on the room's state.

The Synapse-backed test (tests/security/test_rights_follow_config.py) drives the common cases
end to end; the variants of clients and room set-ups are enumerated here."""

from __future__ import annotations

from typing import Any

import pytest

from hub.bots.intake import desk_refusal

BOT, OWNER, OTHER = "@relais:x", "@cm:x", "@colleague:x"


def state(*, encryption: str | None = "m.megolm.v1.aes-sha2", join_rule: str | None = "invite",
          members: dict[str, str] | None = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"type": "m.room.create", "state_key": "", "content": {"creator": OWNER}}]
    if encryption is not None:
        events.append({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": encryption}})
    if join_rule is not None:
        events.append({"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": join_rule}})
    for user, membership in (members or {OWNER: "join", BOT: "join"}).items():
        events.append({"type": "m.room.member", "state_key": user, "content": {"membership": membership}})
    return events


def test_an_encrypted_invite_only_room_of_the_bot_and_its_owner_is_a_desk() -> None:
    assert desk_refusal(state(), BOT, OWNER) is None
    assert desk_refusal(state(join_rule="knock"), BOT, OWNER) is None
    assert desk_refusal(state(join_rule=None), BOT, OWNER) is None  # no rule: the spec's default, invite
    # Someone who left or was banned is no longer in the room.
    assert desk_refusal(state(members={OWNER: "join", BOT: "join", OTHER: "leave"}), BOT, OWNER) is None
    assert desk_refusal(state(members={OWNER: "join", BOT: "join", OTHER: "ban"}), BOT, OWNER) is None


@pytest.mark.parametrize(("room", "why"), [
    (state(encryption=None), "encrypted"),
    (state(encryption="m.olm.v1.curve25519-aes-sha2"), "encrypted"),
    (state(encryption=""), "encrypted"),
    (state(join_rule="public"), "invite-only"),
    (state(join_rule="restricted"), "invite-only"),
    (state(members={OWNER: "join", BOT: "join", OTHER: "join"}), "members"),
    (state(members={OWNER: "join", BOT: "join", OTHER: "invite"}), "members"),
    (state(members={OWNER: "join", BOT: "join", OTHER: "knock"}), "members"),
    (state(members={OWNER: "invite", BOT: "join", OTHER: "join"}), "members"),
    (state(members={OWNER: "leave", BOT: "join"}), "members"),
    (state(members={BOT: "join"}), "members"),
])
def test_any_other_room_is_refused_with_a_reason(room: list[dict[str, Any]], why: str) -> None:
    reason = desk_refusal(room, BOT, OWNER)
    assert reason is not None and why in reason
    assert OWNER not in reason and OTHER not in reason  # the reason is logged: no user ids
