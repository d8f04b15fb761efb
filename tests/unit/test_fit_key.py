"""storage.repositories.fit_key: one way to fit a key into its column (outbox keys, claims, kv)."""

from __future__ import annotations

import pytest

from hub.storage.repositories import OUTBOX_KEY_MAX, fit_key


@pytest.mark.parametrize("limit", [OUTBOX_KEY_MAX, 64, 255])
def test_a_long_key_fits_its_column_and_stays_told_apart(limit: int) -> None:
    room = "!" + "r" * 300 + ":example.org"
    one, other = fit_key(f"desk-lost:{room}:2026-11-30", limit), fit_key(f"desk-lost:{room}:2026-12-01", limit)
    assert len(one) == len(other) == limit
    assert one != other  # the digest of the whole, not only the head
    assert one.startswith("desk-lost:!rrr")  # a readable head
    assert fit_key("desk-lost:!a:x:2026-11-30", limit) == "desk-lost:!a:x:2026-11-30"  # short: as it is


def test_outbox_keys_keep_the_form_already_stored() -> None:
    key = "cmd:" + "e" * 200
    assert fit_key(key)[-65] == "#" and len(fit_key(key).rsplit("#", 1)[1]) == 64  # head + 64 hex digits
