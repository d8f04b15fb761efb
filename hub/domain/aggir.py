"""The national AGGIR grid: ten discriminant variables rated A, B or C → a GIR from 1 to 6.

Source (read from the Code de l'action sociale et des familles, not from any program):

- Annexe 2-1 CASF, "Guide d'évaluation de la personne âgée en perte d'autonomie" — the grid
  and its ten *variables discriminantes* in this order: cohérence, orientation, toilette,
  habillage, alimentation, élimination, transferts, déplacements à l'intérieur, déplacements
  à l'extérieur, communication à distance; each rated A (does it alone, spontaneously,
  totally, habitually and correctly), B (partly) or C (does not). Its filling guide
  (sub-variables, the S/T/C/H adverbs) is the one set by décret n° 2008-821 du 21 août 2008;
  the etalab copy does not reproduce it ("Guide non reproduit, consulter le fac-similé").
- Annexe 2-2 CASF, "Algorithme de la grille AGGIR" (first published as annexe II of décret
  n° 97-427 du 28 avril 1997; the 2008 decree replaced the guide, not the algorithm) — the
  weights and rank thresholds below. Text read in the etalab copy of the codes in force
  (Légifrance data): github.com/etalab/codes-juridiques-francais,
  codes-en-vigueur/code-de-l-action-sociale-et-des-familles/annexe/article-annexe-2-2.md
  (and article-annexe-2-1.md for the grid).

The algorithm ("1 Calcul des rangs"): the groups A to H are tried in turn. In each, every
variable rated C adds its C weight and every variable rated B its B weight (A adds nothing);
the sum is compared with the group's thresholds, highest first; the first one reached gives a
rank from 1 to 13, and when none is reached the next group is tried (group H always gives a
rank). "2 Passage des rangs aux groupes": rank 1 → GIR 1; 2–7 → GIR 2; 8–9 → GIR 3;
10–11 → GIR 4; 12 → GIR 5; 13 → GIR 6.

How the ten variables map to the computation: the annex's tables list all ten, but
*déplacements à l'extérieur* and *communication à distance* weigh 0 in every group, for B and
for C. They are still asked for (the grid has ten, the département's team reads them, and
they are kept with the evaluation) but cannot change the GIR. So the GIR depends on the first
eight letters only.

What this module does not do: the 2008 guide rates toilette (haut/bas), habillage
(haut/moyen/bas), alimentation (se servir/manger) and élimination (urinaire/fécale) by
sub-variables and adverbs, then combines them into the one letter per variable this module
takes. The evaluator enters the combined letters, as on the paper grid's summary column.

Two public programs were read to cross-check these tables, and both differ from the annex
(so neither is a reference): LWH-21/Pampa (docs/_posts/2021-11-06-Grille_Aggir.md) has
group D's B weights for alimentation and déplacements intérieurs swapped (0 and 200 instead
of 200 and 0) and no group H B weights; nogmat/aggir (grille.hpp) has group F's B weight for
cohérence at 0 instead of 100, and its C weights for déplacements intérieurs and extérieurs at
500 and 200 instead of 200 and 0. The tables below follow the annex; tests/domain/test_aggir.py
shows, for each difference, a grid whose GIR it would change.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

from hub.domain.errors import DomainError

# The ten discriminant variables, in the annex's order; the codes name them in the catalogs
# (`aggir.var.<code>`).
VARIABLES: Final = (
    "coherence", "orientation", "toilette", "habillage", "alimentation", "elimination",
    "transferts", "deplacements_interieur", "deplacements_exterieur", "communication",
)
LETTERS: Final = frozenset("ABC")
APA_ELIGIBLE: Final = frozenset({1, 2, 3, 4})  # CASF art. R. 232-4: GIR 1 to 4 open the APA


@dataclass(frozen=True)
class _Group:
    name: str
    c: tuple[int, ...]  # weight of a C, per variable in VARIABLES order
    b: tuple[int, ...]  # weight of a B
    ranks: tuple[tuple[int, int], ...]  # (minimum sum, rank), highest first


# Annexe 2-2 CASF, "1 Calcul des rangs". The last two columns (déplacements à l'extérieur,
# communication à distance) are 0 in every table of the annex.
GROUPS: Final = (
    _Group("A", c=(2000, 1200, 40, 40, 60, 100, 800, 200, 0, 0),
           b=(0, 0, 16, 16, 20, 16, 120, 32, 0, 0),
           ranks=((4380, 1), (4140, 2), (3390, 3))),
    _Group("B", c=(1500, 1200, 40, 40, 60, 100, 800, -80, 0, 0),
           b=(320, 120, 16, 16, 0, 16, 120, -40, 0, 0),
           ranks=((2016, 4),)),
    _Group("C", c=(0, 0, 40, 40, 60, 160, 1000, 400, 0, 0),
           b=(0, 0, 16, 16, 20, 20, 200, 40, 0, 0),
           ranks=((1700, 5), (1432, 6))),
    _Group("D", c=(0, 0, 0, 0, 2000, 400, 2000, 200, 0, 0),
           b=(0, 0, 0, 0, 200, 200, 200, 0, 0, 0),
           ranks=((2400, 7),)),
    _Group("E", c=(400, 400, 400, 400, 400, 800, 800, 200, 0, 0),
           b=(0, 0, 100, 100, 100, 100, 100, 0, 0, 0),
           ranks=((1200, 8),)),
    _Group("F", c=(200, 200, 500, 500, 500, 500, 500, 200, 0, 0),
           b=(100, 100, 100, 100, 100, 100, 100, 0, 0, 0),
           ranks=((800, 9),)),
    _Group("G", c=(150, 150, 300, 300, 500, 500, 400, 200, 0, 0),
           b=(0, 0, 200, 200, 200, 200, 200, 100, 0, 0),
           ranks=((650, 10),)),
    _Group("H", c=(0, 0, 3000, 3000, 3000, 3000, 1000, 1000, 0, 0),
           b=(0, 0, 2000, 2000, 2000, 2000, 2000, 1000, 0, 0),
           ranks=((4000, 11), (2000, 12), (-10**9, 13))),  # below 2 000: rank 13
)

# Annexe 2-2 CASF, "2 Passage des rangs aux groupes".
RANK_TO_GIR: Final = {1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2, 8: 3, 9: 3, 10: 4, 11: 4, 12: 5, 13: 6}

# What people type between letters: "AAB-BCC-AAAB", "a.a.b…". Removed before counting positions,
# with every Unicode space, dash (‐ – —) and invisible format character (zero-width space…)
# that keyboards and clients slip in.
_SEPARATORS: Final = frozenset("_.,;:/|·")


def _separator(ch: str) -> bool:
    return ch in _SEPARATORS or ch.isspace() or unicodedata.category(ch) in ("Pd", "Cf")


class GridError(DomainError):
    """A grid that is not ten letters A, B or C; the key and params name the position and variable."""


@dataclass(frozen=True)
class Result:
    gir: int  # 1 (most dependent) to 6
    rank: int  # 1 to 13
    group: str  # the group (A..H) whose threshold gave the rank
    score: int  # that group's sum


def parse_grid(text: str) -> str:
    """`text` → the ten upper-case letters. Case is ignored, full-width letters count as ASCII
    (NFKC), and spaces, dashes, dots, commas, slashes and underscores between letters are skipped.

    Raises GridError: `error.aggir_grid_letter` (position 1–10, variable, letter) for a letter
    other than A/B/C, `error.aggir_grid_short` (the first missing position and its variable)
    or `error.aggir_grid_long` (the first position past the tenth).
    """
    letters = [ch.upper() for ch in unicodedata.normalize("NFKC", text) if not _separator(ch)]
    for position, letter in enumerate(letters[:len(VARIABLES)], start=1):
        if letter not in LETTERS:
            raise GridError("error.aggir_grid_letter", position=position, letter=letter,
                            variable=_variable(position), grid=text)
    if len(letters) < len(VARIABLES):
        missing = len(letters) + 1
        raise GridError("error.aggir_grid_short", position=missing, variable=_variable(missing),
                        count=len(letters), grid=text)
    if len(letters) > len(VARIABLES):
        raise GridError("error.aggir_grid_long", position=len(VARIABLES) + 1, count=len(letters), grid=text,
                        variable=_variable(len(VARIABLES)))
    return "".join(letters)


def compute(grid: str) -> Result:
    """The GIR of a grid of ten letters (see `parse_grid`), by the annex's algorithm."""
    letters = parse_grid(grid)
    for group in GROUPS:
        score = sum(group.c[i] if x == "C" else group.b[i] if x == "B" else 0 for i, x in enumerate(letters))
        for minimum, rank in group.ranks:
            if score >= minimum:
                return Result(RANK_TO_GIR[rank], rank, group.name, score)
    raise AssertionError("group H always gives a rank")  # pragma: no cover


def gir(grid: str) -> int:
    return compute(grid).gir


def _variable(position: int) -> dict[str, str]:
    """The variable at a 1-based position, as a catalog message the reply renders."""
    return {"key": f"aggir.var.{VARIABLES[position - 1]}"}
