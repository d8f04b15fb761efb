"""Days as the territory counts them: "three days later" is the same wall-clock time three local
calendar days later (71 or 73 hours across a change of summer time), not 72 hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


def later(moment: datetime, days: int, tz: tzinfo) -> datetime:
    """The same local time `days` calendar days after `moment` in the zone `tz` (aware, UTC).
    Arithmetic on an aware datetime keeps the wall-clock time; the conversion back picks the
    offset in force on that day."""
    return (moment.astimezone(tz) + timedelta(days=days)).astimezone(UTC)


def earlier(moment: datetime, days: int, tz: tzinfo) -> datetime:
    """The same local time `days` calendar days before `moment` (the inverse of `later`)."""
    return (moment.astimezone(tz) - timedelta(days=days)).astimezone(UTC)


def elapsed(since: datetime, now: datetime, tz: tzinfo) -> int:
    """Whole local calendar days from `since` to `now`, as a person reads them on a calendar."""
    return max(0, (now.astimezone(tz).date() - since.astimezone(tz).date()).days)
