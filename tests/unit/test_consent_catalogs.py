"""Every message the consent and concertation features use exists in French and in English."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import hub
from hub.commands.registry import build_registry
from hub.i18n.catalog import Catalog

SOURCES = ("domain/consent.py", "domain/concertation.py", "services/consent.py", "services/concertations.py",
           "commands/handlers_consent.py", "commands/handlers_concertation.py")
KEY = re.compile(r"\"((?:error|consent|concertation)\.[a-z_.]+[a-z])\"")


def _part(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(resources.files("hub.i18n").joinpath(name).read_text(encoding="utf-8"))
    return data


def test_french_and_english_parts_have_the_same_keys() -> None:
    for feature in ("consent", "concertation"):
        assert set(_part(f"fr.{feature}.json")) == set(_part(f"en.{feature}.json")), feature


def test_every_key_used_and_every_help_line_is_in_both_catalogs() -> None:
    root = Path(hub.__file__).parent
    used = {k for src in SOURCES for k in KEY.findall((root / src).read_text(encoding="utf-8"))}
    used -= {"consent.update", "consent.reminder", "concertation.reminder"}  # kinds, not messages
    used |= {f"consent.what.{s}.{c}" for s in ("informed", "given", "refused") for c in ("care_team", "extended")}
    used |= {f"concertation.reminder_{w}" for w in ("day", "hour")}
    mine = ("consent", "concertation", "decision")
    used |= {s.help_key for s in build_registry().specs if s.name.split()[0] in mine}
    assert len(used) > 40
    for language in ("fr", "en"):
        catalog = Catalog(language)
        assert sorted(k for k in used if not catalog.has(k)) == [], language
