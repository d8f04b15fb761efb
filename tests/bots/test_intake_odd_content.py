"""Encrypted events carry their relation in clear, written by any client: odd shapes say nothing.

An undecryptable event's sender is told after the patience window, in its thread when it has
one (`thread_of`); a relation that is a string or a list used to raise there, after the event
had been taken off the waiting list, so its sender was never told.
"""

from __future__ import annotations

from typing import Any

import pytest
from nio import MegolmEvent

from hub.bots.intake import thread_of


def _megolm(content: Any) -> MegolmEvent:
    return MegolmEvent.from_dict({
        "type": "m.room.encrypted", "event_id": "$e", "sender": "@gp:x", "origin_server_ts": 0,
        "content": content if isinstance(content, dict) else {}, "room_id": "!r:x"})


@pytest.mark.parametrize("relation", ["$root", ["$root"], 7, None, {"rel_type": "m.thread", "event_id": 5}])
def test_an_odd_relation_is_no_thread(relation: Any) -> None:
    event = _megolm({"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "k", "ciphertext": "c",
                     "session_id": "s", "device_id": "D"})
    event.source["content"]["m.relates_to"] = relation
    assert thread_of(event) is None


def test_content_that_is_no_object_is_no_thread() -> None:
    event = _megolm({"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "k", "ciphertext": "c",
                     "session_id": "s", "device_id": "D"})
    event.source["content"] = "x"
    assert thread_of(event) is None
    event.source["content"] = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    assert thread_of(event) == "$root"
