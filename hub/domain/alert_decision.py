"""What one hospital message does to one followed person, decided once, pure (SPEC §6, §7).

The use case (services/alerts.py) loads the person's `AlertHistory`, calls `decide`, and
persists the `Decision` in one go. Rules, in SPEC terms:

- a cancellation (A11/A12/A13, A38, A52/A53, or ZBE-4 = CANCEL) cancels the standing event of
  the same movement (ZBE-1), else the latest of the kind it cancels; the move that event made is
  undone while it is still the latest one;
- a cancellation that arrives before its event (same ZBE-1; without ZBE-1 on either side: same
  sender, the kind it cancels, happened no later than the cancellation) waits for it: when the event
  arrives it is recorded as cancelled and posts nothing, moves nobody;
- an A08, or an IHE PAM France Z99 for the current movement, posts a location change only
  when a part of the location given in both (facility, unit) differs: absent is never a change;
- A40 renames the person's identifiers that the merged record held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from hub.domain import transitions
from hub.domain.alerts import Alert, AlertEvent, AlertRecord
from hub.domain.effects import Notify
from hub.domain.identity import matches
from hub.domain.persons import Identifier, Person
from hub.domain.settings import Setting
from hub.domain.transitions import CANCELS, Move, SettingChange

__all__ = ["AlertHistory", "Decision", "decide"]

_STAY = frozenset({AlertEvent.admission, AlertEvent.transfer, AlertEvent.update, AlertEvent.leave_return,
                   AlertEvent.discharge})
_CANCELLABLE = (_STAY - {AlertEvent.update}) | {AlertEvent.leave}
Z99 = "Z99"


@dataclass(frozen=True)
class AlertHistory:
    """What is known of one person when a hospital message arrives (loaded once).

    alerts: the person's earlier alerts in arrival order, cancelled ones included.
    latest_change: the newest standing move (hospital or `!move`), None when none.
    """

    person: Person
    mentions: tuple[str, ...]
    alerts: tuple[AlertRecord, ...] = ()
    latest_change: SettingChange | None = None


@dataclass(frozen=True)
class Decision:
    """What to persist for the new alert, and the notices to post (alert notice first when `notice`).

    cancels: earlier alerts this one cancels. cancelled_by: an earlier cancellation that
    cancels this one as it arrives. self_cancelled: this alert is itself a cancellation row
    that stands for nothing (ZBE-4 = CANCEL on a non-cancel trigger). revert: the move to undo.
    rekeys: (old, new) identifiers of the person after a merge.
    """

    effects: list[Notify] = field(default_factory=list)
    notice: bool = False
    move: Move | None = None
    cancels: tuple[int, ...] = ()
    cancelled_by: int | None = None
    self_cancelled: bool = False
    revert: SettingChange | None = None
    restored: Setting | None = None
    rekeys: tuple[tuple[Identifier, Identifier], ...] = ()


def decide(history: AlertHistory, alert: Alert, *, ins_test_oids: bool, now: datetime | None = None,
           tz: tzinfo = transitions.PARIS) -> Decision:
    """What one hospital message changes; `now` is when it was received (a late event says how long
    ago it happened) and `tz` the territory's zone (the local day of a return from hospital)."""
    if alert.event is AlertEvent.merge:
        return Decision(rekeys=_rekeys(history.person, alert, ins_test_oids=ins_test_oids))
    if transitions.is_cancellation(alert):
        return _cancellation(history, alert)
    waiting = _waiting_cancellation(history.alerts, alert)
    if waiting is not None:
        return Decision(cancelled_by=waiting.id)
    standing = sorted((a for a in history.alerts if not a.cancelled and a.event in _STAY),
                      key=lambda a: (a.event_time, a.id))
    last_location = _location(standing)
    if alert.trigger == Z99:
        # A movement update changes where the person is only for the movement they are in.
        movements = [a for a in standing if a.movement_id]
        current = movements[-1] if movements else None
        if (current is None or current.event is AlertEvent.discharge or last_location is None
                or current.movement_id != alert.movement_id):
            return Decision()
    moments = [history.person.setting_since, *(a.event_time for a in standing)]
    known = [m for m in moments if m is not None]
    outcome = transitions.hospital_event(
        history.person, history.mentions, alert,
        last_movement=max(known) if known else None, last_location=last_location, now=now, tz=tz,
    )
    return Decision(effects=list(outcome.effects), notice=outcome.notice, move=outcome.move)


def _location(stay_events: list[AlertRecord]) -> tuple[str, str] | None:
    """(facility, unit) where the person is in hospital, None when not known to be there.

    Each event says what it gives; a part it leaves out stays as it was (a unit is kept only
    within the same facility), and a discharge ends the stay.
    """
    location: tuple[str, str] | None = None
    for event in stay_events:
        if event.event is AlertEvent.discharge:
            location = None
        elif event.event is AlertEvent.admission:
            location = (event.facility, event.unit)
        elif location is None:  # an update after a discharge does not put anyone back in hospital
            location = (event.facility, event.unit) if event.event is not AlertEvent.update else None
        else:
            facility = event.facility or location[0]
            location = (facility, event.unit or (location[1] if facility == location[0] else ""))
    return location


def _cancellation(history: AlertHistory, alert: Alert) -> Decision:
    original = _original(history.alerts, CANCELS.get(alert.event), alert.movement_id)
    self_cancelled = alert.event not in CANCELS
    if original is None:
        outcome = transitions.cancellation(history.person, history.mentions, alert, None, restored=None)
        return Decision(effects=list(outcome.effects), self_cancelled=self_cancelled)
    last = history.latest_change
    # Undo the move only while it is still the latest one: a newer move stands.
    revert = last if last is not None and last.alert_id == original.id else None
    restored = revert.previous if revert is not None else None
    outcome = transitions.cancellation(history.person, history.mentions, alert, original, restored=restored)
    return Decision(effects=list(outcome.effects), cancels=(original.id,), self_cancelled=self_cancelled,
                    revert=revert, restored=restored)


#: How a FHIR encounter's key starts (hub/inbound/fhir_notify.py `_encounter_key`): an encounter names
#: several events (admit, transfer, discharge), a PAM movement (ZBE-1) one.
FHIR_MOVEMENT = "fhir:"


def _original(alerts: tuple[AlertRecord, ...], event: AlertEvent | None, movement_id: str) -> AlertRecord | None:
    """The alert a cancellation refers to: same movement id if given, else the latest of its kind.

    A cancellation naming a movement never cancels another movement's event: an Encounter
    entered-in-error that Relais never heard of, or an A11 for a movement not yet received, finds
    nothing (and waits for it) rather than retracting the latest admission of another stay. Only
    an event stored without a movement id (sent without ZBE, or before movements were kept) may
    still be the one it means."""
    standing = [a for a in alerts if not a.cancelled and a.event in _CANCELLABLE]
    if movement_id:
        # A PAM movement (ZBE-1) names one event; a FHIR encounter several (admit, transfer,
        # discharge): the one of the kind cancelled; a PAM movement's own event whatever its kind.
        same = [a for a in standing if a.movement_id == movement_id]
        of_kind = next((a for a in reversed(same) if a.event is event), None)
        if of_kind is not None or (same and not movement_id.startswith(FHIR_MOVEMENT)):
            return of_kind or same[-1]
    if event is None:
        return None
    kind = [a for a in standing if a.event is event and not (movement_id and a.movement_id)]
    return kind[-1] if kind else None


def _waiting_cancellation(alerts: tuple[AlertRecord, ...], alert: Alert) -> AlertRecord | None:
    """A cancellation of this very movement that arrived first and has cancelled nothing yet.

    With a movement id (ZBE-1) the cancellation names it. Without one on either side, an
    A11/A12/A13 from the same sender that found nothing to cancel waits for the first event of
    the kind it cancels that happened no later than the cancellation itself: that is the event
    it cancelled, arriving late (a sender's queue re-ordered after an outage). An event that
    happens after the cancellation is a new one and stands.
    """
    used = {a.cancelled_by for a in alerts if a.cancelled_by is not None and a.cancelled_by != a.id}
    if not alert.movement_id:
        return next((earlier for earlier in alerts
                     if not earlier.movement_id and earlier.id not in used and earlier.sender == alert.sender
                     and CANCELS.get(earlier.event) is alert.event and alert.event_time <= earlier.event_time),
                    None)
    for earlier in alerts:
        if earlier.movement_id != alert.movement_id or earlier.id in used:
            continue
        cancels = CANCELS.get(earlier.event)
        if cancels is alert.event or (earlier.cancelled_by == earlier.id and earlier.event is alert.event):
            return earlier
    return None


def _rekeys(person: Person, alert: Alert, *, ins_test_oids: bool) -> tuple[tuple[Identifier, Identifier], ...]:
    """A40: the identifiers the person was known by under an old record take the new values of
    the record it was merged into — the PID of that very MRG, never another pair's."""
    out = []
    for ident in person.identifiers:
        for old, survivor in alert.merges:
            if (matches([(ident.authority, ident.value)], [old], ins_test_oids=ins_test_oids)
                    and survivor.value != ident.value):
                out.append((ident, Identifier(ident.authority, survivor.value)))
                break
    return tuple(out)
