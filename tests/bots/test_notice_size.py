"""A notice never exceeds the homeserver's event size, measured on the encoded, encrypted event (issue 16 §6)."""

from __future__ import annotations

import json

import pytest
import vodozemac

from hub.bots import content
from hub.bots.render import render
from hub.i18n.catalog import Catalog

ROOM = "!" + "r" * 43 + ":example.org"
#: Texts that grow most once encoded: apostrophes and `<` in HTML, accents (\u00e9: 6 bytes in
#: JSON), emoji (two \ud83d escapes: 12 bytes), quotes (\" and &quot;).
HEAVY = ["'" * 3000, "é" * 3000, "😀" * 3000, '"<>&' * 800]


@pytest.mark.parametrize("text", ["a", *HEAVY])
def test_the_estimate_bounds_the_real_megolm_ciphertext(text: str) -> None:
    notice = content.notice("command.reply", "R-2026-0001", text, text)
    plaintext = json.dumps({"type": "m.room.message", "content": notice, "room_id": ROOM}, separators=(",", ":"))
    ciphertext = vodozemac.GroupSession().encrypt(plaintext.encode()).to_base64()
    estimated = content.encrypted_size(notice, ROOM) - content.ENVELOPE_BYTES
    encrypted = json.dumps({"algorithm": content.MEGOLM, "sender_key": "k" * 43, "ciphertext": ciphertext,
                            "session_id": "s" * 43, "device_id": "D" * 10})
    assert len(encrypted) <= estimated <= len(encrypted) + 1024


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("heavy", HEAVY)
def test_a_plan_of_many_long_items_is_shortened_to_fit_with_a_pointer(language: str, heavy: str) -> None:
    catalog = Catalog(language)
    items = [{"key": "plan.item", "params": {"number": n, "need": heavy[:300], "action": heavy[:500],
                                             "status": "proposed", "provider": heavy[:255], "frequency": heavy[:120]}}
             for n in range(1, 61)]
    params = {"case": "R-2026-0001", "count": 60, "items": items, "closed": "", "date": None, "pointer": "!plan <n>"}
    full = catalog.text("plan.show", **params)
    assert len(full) > 60_000  # the whole plan would never fit
    notice = render(catalog, "command.reply", "R-2026-0001", "plan.show", params, (), room_id=ROOM)
    assert content.fits(notice, ROOM)
    assert "!plan <n>" in notice["body"] and "!plan &lt;n&gt;" in notice["formatted_body"]
    assert notice["formatted_body"] and notice["fr.relais.case"] == "R-2026-0001"


def test_an_edit_counts_both_copies() -> None:
    catalog = Catalog("fr")
    params = {"text": "é" * 2000, "by": "@cm:example.org"}
    single = render(catalog, "continuity.break", "R-1", "break.reported", params, ())
    assert content.fits(single, ROOM) and "…" not in single["body"]
    long_params = {"text": "😀" * 2000, "by": "@cm:example.org"}
    edited = render(catalog, "continuity.break", "R-1", "break.reported", long_params, (), room_id=ROOM,
                    wrap=lambda c: content.replacement("$original", c))
    assert content.fits(edited, ROOM) and edited["m.new_content"]["body"]


def test_a_short_notice_is_left_whole() -> None:
    catalog = Catalog("fr")
    notice = render(catalog, "command.reply", "R-1", "plan.empty", {"case": "R-1"}, ())
    assert "abrégé" not in notice["body"]


def test_a_plan_update_points_to_its_item() -> None:
    catalog = Catalog("fr")
    item = {"number": 4, "need": "😀" * 300, "action": "😀" * 500, "status": "proposed", "provider": "😀" * 255,
            "frequency": "😀" * 120}
    changes = [{"field": "provider", "from": "😀" * 255, "to": "é" * 255}] * 40
    notice = render(catalog, "plan.update", "R-1", "plan.changed", {"by": "@cm:x", "item": item, "changes": changes},
                    (), room_id=ROOM, wrap=lambda c: content.replacement("$original", c))
    assert content.fits(notice, ROOM) and "!plan 4" in notice["m.new_content"]["body"]
