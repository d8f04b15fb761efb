"""Every kind of notice, rendered in both languages as Element shows it (issue 22).

`body` is what a phone notification shows; `formatted_body` what Element's HTML sanitiser keeps.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from hub.bots import content
from hub.bots.render import people, render
from hub.commands.registry import build_registry
from hub.commands.usage import typed_word, usage_line
from hub.i18n.catalog import Catalog, entries
from tests.bots.notice_samples import NAMES, NOW, Sample, samples

LANGUAGES = ("fr", "en")
# Tags Element keeps (its sanitiser drops anything else, with the text inside for unknown tags).
ALLOWED_TAGS = {"a", "strong", "b", "em", "i", "ul", "ol", "li", "br", "code", "p", "blockquote"}
# What a phone shows without scrolling, per kind (characters of `body`) and lines at most.
BUDGET = {"alert.": (600, 9), "handover.professional": (600, 9), "handover.setting": (500, 8),
          "command.reply": (900, 14), "command.error": (420, 3)}
DEFAULT_BUDGET = (600, 9)
PLACEHOLDER = re.compile(r"<[A-Za-z_][A-Za-z_ ]*>")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
FRENCH_DAY = re.compile(r"\b(lun|mar|mer|jeu|ven|sam|dim)\. \d{2}/\d{2}/\d{4}\b")
FRENCH_MOMENT = re.compile(FRENCH_DAY.pattern + r" à \d{2} h \d{2}\b")
# Canonical English words a French reader must never see (words that are French too left out).
ENGLISH_WORDS = ("proposed", "in_place", "refused", "unavailable", "relational", "informational", "approach",
                 "death", "stabilised", "refusal", "moved_away", "home_nursing", "home_help", "social_worker",
                 "case_manager", "physio", "pharmacist", "guardian", "carer", "temporary_stay", "day_care",
                 "nursing_home", "care_team", "extended", "hospital_return", "emergency")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)


def _rendered(language: str) -> list[tuple[Sample, dict[str, object]]]:
    catalog = Catalog(language)
    return [(s, render(catalog, s.notice.kind, s.notice.case_ref, s.notice.message, s.notice.params,
                       s.notice.mentions, NAMES, NOW)) for s in samples(language)]


def _budget(kind: str) -> tuple[int, int]:
    return next((b for prefix, b in BUDGET.items() if kind.startswith(prefix)), DEFAULT_BUDGET)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_kind_reads_well_in_body_and_html(language: str) -> None:
    rendered = _rendered(language)
    kinds = {s.notice.kind for s, _ in rendered}
    assert {"alert.admission", "alert.discharge", "alert.transfer", "alert.cancelled", "handover.professional",
            "handover.setting", "team.update", "plan.update", "plan.review", "reevaluation.upcoming",
            "reevaluation.due", "reevaluation.overdue", "continuity.break", "case.closed", "consent.update",
            "consent.reminder", "encryption.unreachable", "command.reply", "command.error"} <= kinds
    for sample, event in rendered:
        body, html = str(event["body"]), str(event["formatted_body"])
        where = f"{language} {sample.name}:\n{body}"
        assert not PLACEHOLDER.search(body), where
        parser = _Tags()
        parser.feed(html)
        assert parser.tags <= ALLOWED_TAGS, (where, parser.tags)
        lines = body.split("\n")
        for i, line in enumerate(lines):
            assert line.strip(), f"empty line in {where}"
            follows_list = i + 1 < len(lines) and re.match(r"\s*(•|\d+\.)", lines[i + 1]) is not None
            assert not (line.rstrip().endswith(":") and not follows_list), f"empty field {line!r} in {where}"
            assert not re.search(r"(:|—)\s*—(\s|$|\.|,)", line), f"empty field {line!r} in {where}"
        for bad in ("None", "{", "}", "(s)", "((", "))", "la/le", "le/la"):
            assert bad not in body, (bad, where)
        assert not re.search(r"\([^()]*\(", body), f"parentheses inside parentheses in {where}"
        assert not ISO_DATE.search(body), where
        limit, max_lines = _budget(sample.notice.kind)
        assert len(body) <= limit and len(lines) <= max_lines, (len(body), len(lines), where)
        for user in set(people(sample.notice.params)):
            assert f'href="https://matrix.to/#/{user}"' in html, (user, where)
            assert user not in body, f"{user} shown as a bare id in {where}"


def test_french_dates_are_shown_the_french_way() -> None:
    by_name = {s.name: e for s, e in _rendered("fr")}
    admission = str(by_name["Admission"]["body"])
    assert admission.startswith("Paulette Exemple (R-2026-0042) — hospitalisation le ven. 27/11/2026 à 01 h 49")
    late = str(by_name["Arrival at the emergency department, reaching Relais three days late"]["body"])
    assert "mar. 24/11/2026 à 01 h 49" in late and "il y a 3 jours" in late
    plan = str(by_name["Plan"]["body"])
    assert FRENCH_DAY.search(plan) and "01/12/2026" in plan
    for sample, event in _rendered("fr"):
        if any(isinstance(v, str) and ISO_DATE.search(v) for v in _values(sample.notice.params)):
            assert FRENCH_DAY.search(str(event["body"])) or "/" in str(event["body"]), sample.name
    assert FRENCH_MOMENT.search(admission)


def _values(params: object) -> list[object]:
    if isinstance(params, dict):
        return [v for value in params.values() for v in _values(value)]
    if isinstance(params, list):
        return [v for value in params for v in _values(value)]
    return [params]


def test_kinds_that_call_for_action_are_text_with_mentions_the_rest_notices() -> None:
    for sample, event in _rendered("fr"):
        kind = sample.notice.kind
        if kind in content.ACTION_KINDS:
            assert event["msgtype"] == "m.text", sample.name
            if sample.notice.replaces is None:  # an edit notifies nobody again
                assert event["m.mentions"] == {"user_ids": sorted(set(sample.notice.mentions))}
                assert sample.notice.mentions, sample.name
        else:
            assert event["msgtype"] == "m.notice", sample.name
        assert "m.mentions" in event  # present even when empty: body names never notify (MSC3952)


def test_alerts_and_handovers_put_who_what_when_first_and_the_successor_action_second() -> None:
    by_name = {s.name: e for s, e in _rendered("fr")}
    handover = str(by_name["Professional handover"]["body"]).split("\n")
    assert handover[0] == "Paulette Exemple (R-2026-0042) — passation : Hugo Petit remplace Inès Durand, infirmier·e"
    assert handover[1].startswith("Hugo Petit : tapez !vu")
    assert sum("Pansement de l'ulcère" in line for line in handover) == 1  # each item once
    html = str(by_name["Professional handover"]["formatted_body"])
    assert html.startswith("<strong>Paulette Exemple (R-2026-0042)")
    discharge = str(by_name["Discharge home"]["body"])
    assert "Dr Paul Martin : vérifier la réception de la lettre de liaison" in discharge
    assert "Claire Roux : réévaluer la situation au plus tard le ven. 04/12/2026" in discharge


def test_every_french_catalog_entry_and_usage_line_is_in_french() -> None:
    catalog = Catalog("fr")
    for key, entry in entries("fr").items():
        for text in ([entry] if isinstance(entry, str) else list(entry.values())):
            assert not PLACEHOLDER.search(text), key
            assert "(s)" not in text and "(e)" not in text, key
            for word in ENGLISH_WORDS:
                assert not re.search(rf"(?<![\w-]){word}(?![\w-])", text), (key, word)
    english = Catalog("en")
    for spec in build_registry().specs:
        line = usage_line(spec, catalog)
        assert not PLACEHOLDER.search(line) and not PLACEHOLDER.search(usage_line(spec, english)), line
        for arg in (*spec.args, *spec.opts):
            for choice in arg.choices:
                typed = typed_word(arg, choice, french=True)
                if typed != choice:
                    assert not re.search(rf"(?<![\w-]){choice}(?![\w-])", line), (line, choice)
                assert typed in line, (line, typed)


def test_usage_lines_show_the_french_words_people_type() -> None:
    catalog = Catalog("fr")
    specs = {s.name: s for s in build_registry().specs}
    assert usage_line(specs["team add"], catalog).startswith("!equipe ajouter @nom:serveur medecin|infirmier|")
    assert "--categorie relationnelle|informationnelle|approche" in usage_line(specs["break"], catalog)
    assert usage_line(specs["close"], catalog) == "!cloturer deces|etablissement|stabilise|refus|demenagement|autre"
    assert "--statut propose|en_place|refuse|indisponible|fait" in usage_line(specs["plan set"], catalog)
    assert usage_line(specs["new"], Catalog("en")).startswith('!new "First Last"')


def test_the_gallery_in_docs_is_up_to_date() -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "notice_gallery.py"
    spec = importlib.util.spec_from_file_location("notice_gallery", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUT.read_text(encoding="utf-8") == module.gallery(), "run scripts/notice_gallery.py"


@pytest.mark.parametrize(("queued", "zone", "shown"), [
    ("2026-03-29T00:30:00+00:00", "Europe/Paris", "dim. 29/03/2026 à 01 h 30"),  # before the spring change
    ("2026-03-29T01:30:00+00:00", "Europe/Paris", "dim. 29/03/2026 à 03 h 30"),  # 02:00 → 03:00 CEST
    ("2026-10-25T00:30:00+00:00", "Europe/Paris", "dim. 25/10/2026 à 02 h 30"),  # first 02:30 (CEST)
    ("2026-10-25T01:30:00+00:00", "Europe/Paris", "dim. 25/10/2026 à 02 h 30"),  # second 02:30 (CET)
    ("2026-11-23T10:00:00+00:00", "Indian/Reunion", "lun. 23/11/2026 à 14 h 00"),
])
def test_since_when_a_notice_waited_is_a_french_local_date(queued: str, zone: str, shown: str) -> None:
    """`delivery.failed` says since when the notice waited, as every other date: French, local."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from hub.domain import delivery

    tz = ZoneInfo(zone)
    notice = delivery.failure_notice("@cm:relais.test", "R-2026-0001", "alert.admission",
                                     datetime.fromisoformat(queued), tz)
    event = render(Catalog("fr", zone), notice.kind, notice.case_ref, notice.message, notice.params,
                   notice.mentions, NAMES, NOW)
    assert f"depuis le {shown}" in str(event["body"]), event["body"]


@pytest.mark.parametrize(("error", "says"), [
    ("RoomGone M_ROOM_GONE", "Le salon n'existe plus"),
    ("MatrixError 404 M_NOT_FOUND", "Le salon n'existe plus"),
    ("MatrixError 403 M_FORBIDDEN", "compte désactivé"),  # power levels changed, a deactivated invitee
    ("MatrixError 413 M_TOO_LARGE", "taille maximale"),
    ("TransientError 502 M_UNKNOWN (still failing after 3700 s)", "ne répond plus depuis plus d'une heure"),
    ("TransientError 429 M_LIMIT_EXCEEDED (still failing after 3700 s)", "ne répond plus"),
    ("MatrixError 400 M_BAD_JSON", "Refusé par le serveur Matrix"),
])
def test_a_delivery_failure_says_why_and_what_to_do(error: str, says: str) -> None:
    """Not "check that the room exists" for a file too large or a person who cannot be invited."""
    from datetime import timedelta

    from hub.domain import delivery

    notice = delivery.failure_notice("@cm:relais.test", "R-2026-0001", "invite", NOW - timedelta(hours=2),
                                     error=error)
    event = render(Catalog("fr"), notice.kind, notice.case_ref, notice.message, notice.params, notice.mentions,
                   NAMES, NOW)
    assert says in str(event["body"]), event["body"]
    english = render(Catalog("en"), notice.kind, notice.case_ref, notice.message, notice.params, notice.mentions,
                     NAMES, NOW)
    assert "delivery.why" not in str(english["body"]) and "{" not in str(english["body"])
