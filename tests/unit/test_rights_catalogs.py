"""Every message of the AGGIR grid and the rights reviews exists in French and English, and a
bad grid's error reads the position and the variable's name in the configured language."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

import hub
from hub.commands.registry import build_registry
from hub.domain import aggir
from hub.domain.aggir import GridError
from hub.i18n.catalog import Catalog

SOURCES = ("domain/aggir.py", "domain/rights.py", "domain/evaluations.py", "services/rights.py",
           "commands/handlers_rights.py", "commands/handlers_plan.py")
KEY = re.compile(r"\"((?:error|rights|eval|aggir)\.[a-z_.]+[a-z])\"")


def _part(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(resources.files("hub.i18n").joinpath(name).read_text(encoding="utf-8"))
    return data


def test_french_and_english_parts_have_the_same_keys() -> None:
    assert set(_part("fr.rights.json")) == set(_part("en.rights.json"))


def test_every_key_used_and_every_help_line_is_in_both_catalogs() -> None:
    root = Path(hub.__file__).parent
    used = {k for src in SOURCES for k in KEY.findall((root / src).read_text(encoding="utf-8"))}
    used |= {f"aggir.var.{v}" for v in aggir.VARIABLES}
    used |= {f"rights.advice.{s}" for s in ("enter", "revise", "leave", "outside")}
    used |= {"report.title.gir", *(f"report.label.gir_{g}" for g in (*range(1, 7), "unknown"))}
    used |= {s.help_key for s in build_registry().specs if s.name.split()[0] in ("rights", "eval")}
    assert len(used) > 40
    for language in ("fr", "en"):
        catalog = Catalog(language)
        assert sorted(k for k in used if not catalog.has(k)) == [], language


@pytest.mark.parametrize(("language", "grid", "expected"), [
    ("fr", "ABCABCAAXB", "la lettre 9 de la grille AGGIR (déplacements à l'extérieur) est « X »"),
    ("en", "ABCABCAAXB", "letter 9 of the AGGIR grid (moving outdoors) is \"X\""),
    ("fr", "ABCAB", "il manque la lettre 6 (élimination)"),
    ("en", "ABCAB", "letter 6 (toileting) is missing"),
    ("fr", "ABCABCAAABC", "la lettre 11 est de trop (la 10e et dernière est communication à distance)"),
])
def test_a_bad_grid_reads_its_position_and_variable(language: str, grid: str, expected: str) -> None:
    with pytest.raises(GridError) as caught:
        aggir.parse_grid(grid)
    catalog = Catalog(language)
    assert expected in catalog.text(caught.value.key, **caught.value.params)
    assert "&lt;" not in catalog.html(caught.value.key, **caught.value.params)
