"""Every message the referral feature uses exists in French and in English, and the commands
read in both languages (SPEC §4, §9)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

import hub
from hub.commands.parser import Scope, UsageError, parse
from hub.commands.registry import REFERRER_COMMANDS, build_registry
from hub.i18n.catalog import Catalog

SOURCES = ("domain/referral.py", "services/referrals.py", "commands/handlers_referral.py")
KEY = re.compile(r"\"((?:error|reply|referral|triage)\.[a-z_.]+[a-z])\"")


def _part(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(resources.files("hub.i18n").joinpath(name).read_text(encoding="utf-8"))
    return data


def test_french_and_english_parts_have_the_same_keys() -> None:
    assert set(_part("fr.referral.json")) == set(_part("en.referral.json"))


def test_every_key_used_and_every_help_line_is_in_both_catalogs() -> None:
    root = Path(hub.__file__).parent
    used = {k for src in SOURCES for k in KEY.findall((root / src).read_text(encoding="utf-8"))}
    used -= {"referral.decision"}  # a kind, not a message
    used |= {f"referral.{group}.{v}" for group, values in (
        ("source", ("matrix", "fhir")), ("value", ("True", "False", "None")),
        ("state", ("pending", "accepted", "refused")), ("criterion", ("autonomy", "care", "coordination")))
        for v in values}
    used |= {s.help_key for s in build_registry().specs if s.name.split()[0] in ("refer", "referral", "referrals")}
    assert len(used) > 40
    for language in ("fr", "en"):
        catalog = Catalog(language)
        assert sorted(k for k in used if not catalog.has(k)) == [], language


@pytest.mark.parametrize(("text", "name"), [
    ('!orienter "Paulette Exemple" --naissance 1938-07-14 --medecin @gp:example.org --motif "chutes"', "refer"),
    ('!refer "Paulette Exemple" --born 1938-07-14 --gp @gp:example.org --reason "falls" --ins 269054958815780',
     "refer"),
    ("!orientations", "referrals"),
    ("!referrals", "referrals"),
    ("!orientation critères O-2026-0001 autonomie=oui aides=oui coordination=non", "referral criteria"),
    ("!referral criteria O-2026-0001 autonomy=yes care=yes coordination=no", "referral criteria"),
    ("!orientation accepter O-2026-0001 --gestionnaire @cm:example.org", "referral accept"),
    ("!referral accept O-2026-0001 --to @cm:example.org", "referral accept"),
    ('!orientation refuser O-2026-0001 "pas complexe" --vers "SSIAD Est"', "referral refuse"),
    ('!referral refuse O-2026-0001 "not complex" --to "SSIAD Est"', "referral refuse"),
])
def test_commands_read_in_french_and_english(text: str, name: str) -> None:
    inv = parse(text, build_registry().specs)
    assert inv.spec.name == name
    if name == "refer":
        assert inv.opts["gp"] == "@gp:example.org" and inv.opts["born"] == "1938-07-14"  # read by the handler
    if name == "referral accept":
        assert inv.opts["to"] == "@cm:example.org"
    if name == "referral refuse":
        assert inv.opts["to"] == "SSIAD Est"


def test_a_bad_gp_or_date_is_a_usage_error_and_only_help_and_refer_reach_a_referrer() -> None:
    specs = build_registry().specs
    for bad in ('!orienter "P" --naissance --motif "x"', '!orienter "P" --medecin gp --motif x',
                "!orientation accepter"):
        with pytest.raises(UsageError):
            parse(bad, specs)
    shown = {s.name for s in build_registry().available(Scope.DESK, "referrer")}
    assert shown == set(REFERRER_COMMANDS)
    triage = {s.name for s in build_registry().available(Scope.TRIAGE, "triage")}
    assert triage == {"help", "referrals", "referral criteria", "referral accept", "referral refuse"}


def test_the_pilots_report_labels_every_referral_figure_in_both_languages() -> None:
    from datetime import UTC, date

    from hub.domain.referral import figures

    keys = figures([], date(2026, 1, 1), date(2026, 12, 31), UTC)
    assert len(keys) == 18
    for language in ("fr", "en"):
        catalog = Catalog(language)
        assert catalog.has("report.title.referrals")
        assert [k for k in keys if not catalog.has(f"report.label.{k}")] == [], language
