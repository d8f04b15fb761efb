"""How values look to people: dates, people (pills), counts. Pure, through Babel (CLDR data).

The catalogs never see an ISO date or a bare Matrix id: every parameter that is one is shown
here, in the territory's time zone (SPEC §5: `ven. 27/11/2026 à 01 h 49`) and as a pill
(`<a href="https://matrix.to/#/@user:server">Name</a>`, the only form Element shows as a pill).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_timedelta

USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d+)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")

# CLDR skeletons would give "ven. 27 nov. 2026"; the SPEC asks for the numeric day a French
# reader expects on a phone (no hyphen for the line to break at).
_PATTERNS = {
    "fr": {"date": "EEE dd/MM/yyyy", "plain_date": "dd/MM/yyyy", "moment": "EEE dd/MM/yyyy 'à' HH 'h' mm"},
    "en": {"date": "EEE dd/MM/yyyy", "plain_date": "dd/MM/yyyy", "moment": "EEE dd/MM/yyyy 'at' HH:mm"},
}


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and bool(USER_ID.match(value))


def as_date(value: object) -> date | None:
    """An ISO calendar date (`2026-11-27`), else None."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def as_moment(value: object) -> datetime | None:
    """An ISO instant with its offset (`2026-11-27T00:49:00+00:00`), else None."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str) and _ISO_MOMENT.match(value):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


class Formats:
    """Dates, people and plural categories for one language and one territory's time zone."""

    def __init__(self, language: str, tz: ZoneInfo) -> None:
        self.language = language
        self.tz = tz
        self._locale = Locale.parse(language)
        self._patterns = _PATTERNS[language]

    def date(self, day: date, weekday: bool = True) -> str:
        return format_date(day, self._patterns["date" if weekday else "plain_date"], locale=self._locale)

    def moment(self, when: datetime) -> str:
        return format_datetime(when, self._patterns["moment"], tzinfo=self.tz, locale=self._locale)

    def ago(self, when: datetime, now: datetime) -> str:
        """`il y a 3 jours` / `3 days ago`; units round as CLDR does (threshold 0.85)."""
        return format_timedelta(when - now, locale=self._locale, add_direction=True)

    def duration(self, delta: timedelta) -> str:
        return format_timedelta(delta, locale=self._locale)

    def plural(self, count: int) -> str:
        """CLDR plural category: fr 0 and 1 → "one" (SPEC: "1 dossier", "0 dossier")."""
        return str(self._locale.plural_form(abs(count)))

    @staticmethod
    def person_text(user_id: str, names: Mapping[str, str]) -> str:
        return names.get(user_id) or user_id

    @staticmethod
    def person_html(user_id: str, names: Mapping[str, str]) -> str:
        shown = names.get(user_id) or user_id
        return f'<a href="https://matrix.to/#/{quote(user_id, safe="@:")}">{html.escape(shown)}</a>'
