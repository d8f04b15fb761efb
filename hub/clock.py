"""Time is injected: services read a Clock, tests move a FakeClock instead of sleeping.

The clock is also the one place that knows the territory's time zone (`[care] timezone`,
SPEC §5, §8): "today" in every rule, notice and report is `clock.today()`, the local date,
never the UTC date (around midnight they differ, in Paris by one or two hours, in La Réunion
by four). The domain stays pure: it is given `today`, or `now` with the zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from hub.domain.transitions import local_day

DEFAULT_TIMEZONE = "Europe/Paris"


class Clock(Protocol):
    @property
    def tz(self) -> ZoneInfo: ...

    def now(self) -> datetime: ...

    def today(self) -> date: ...


#: The territory's calendar date of an instant (`[care] timezone`, SPEC §5): the domain's own
#: rule, under the name services and adapters use — one definition, not two.
local_date = local_day


class SystemClock:
    def __init__(self, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.tz = ZoneInfo(timezone)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return local_date(self.now(), self.tz)


class FakeClock:
    def __init__(self, start: datetime, timezone: str = DEFAULT_TIMEZONE) -> None:
        self._now = start
        self.tz = ZoneInfo(timezone)

    def now(self) -> datetime:
        return self._now

    def today(self) -> date:
        return local_date(self._now, self.tz)

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when
