"""Moves between care settings and what each one asks of the team (SPEC §6), pure.

A move comes from a hospital event or from `!move`; either way it posts the same
`handover.setting` notice with the checklist that transition needs. Hospital events are
ordered by their own time: one older than the last known movement still informs the team
but never overwrites a newer setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hub.domain.alerts import Alert, AlertEvent, AlertRecord
from hub.domain.effects import Notify
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.settings import Setting

__all__ = [
    "CANCELS",
    "HOSPITAL_RETURN_DAYS",
    "Move",
    "Outcome",
    "SettingChange",
    "cancellation",
    "checklist",
    "discharge_setting",
    "hospital_event",
    "is_cancellation",
    "local_day",
    "location_changed",
    "manual_move",
    "setting_after",
]

PARIS = ZoneInfo("Europe/Paris")  # the default territory; the service passes the configured one
HOSPITAL_RETURN_DAYS = 7
HOSPITAL_LIKE = frozenset({Setting.EMERGENCY, Setting.HOSPITAL, Setting.REHAB, Setting.HAD})
_ACUTE = frozenset({Setting.EMERGENCY, Setting.HOSPITAL})

#: What each cancellation cancels.
CANCELS: dict[AlertEvent, AlertEvent] = {
    AlertEvent.cancel_admission: AlertEvent.admission,
    AlertEvent.cancel_transfer: AlertEvent.transfer,
    AlertEvent.cancel_discharge: AlertEvent.discharge,
    AlertEvent.cancel_leave: AlertEvent.leave,
    AlertEvent.cancel_leave_return: AlertEvent.leave_return,
}
_OUTPATIENT = frozenset({"O", "R", "AMB", "OBSENC", "VR", "HH"})
_EMERGENCY = frozenset({"E", "EMER"})
# Discharge disposition → where the person goes: HL7 table 0112, NUBC UB-92 (the FHIR
# samples) and FHIR discharge-disposition codes. Death maps to OTHER: never a "return home".
_DISCHARGE: dict[str, Setting] = {
    **dict.fromkeys(("1", "01", "6", "06", "7", "07", "8", "08", "home", "alt-home", "aadvice"), Setting.HOME),
    **dict.fromkeys(("2", "02", "9", "09", "63", "65", "hosp", "psy"), Setting.HOSPITAL),
    **dict.fromkeys(("3", "03", "4", "04", "61", "64", "snf", "long"), Setting.NURSING_HOME),
    **dict.fromkeys(("62", "rehab"), Setting.REHAB),
    "had": Setting.HAD,  # hospital at home (IHE PAM France ZFM-4 = 6)
    **dict.fromkeys(("5", "05", "20", "40", "41", "42", "50", "51", "other-hcf", "exp", "oth"), Setting.OTHER),
}


@dataclass(frozen=True)
class Move:
    setting: Setting
    since: datetime
    hospital_return: date | None = None  # set by a return home from a hospital-like setting
    establishment: str | None = None


@dataclass(frozen=True)
class SettingChange:
    """One recorded move, with what it replaced so a cancelled hospital event can undo it."""

    case_ref: str
    setting: Setting
    since: datetime
    previous: Setting
    previous_since: datetime | None
    previous_return: date | None
    hospital_return: date | None
    source: Literal["hospital", "command"]
    actor: str
    establishment: str | None = None
    alert_id: int | None = None
    id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What an alert asks for: notices (the alert notice first when `notice`) and maybe a move."""

    effects: list[Notify] = field(default_factory=list)
    move: Move | None = None
    notice: bool = False


def local_day(moment: datetime, tz: tzinfo = PARIS) -> date:
    """The territory's calendar date of an instant (`[care] timezone`)."""
    return moment.astimezone(tz).date()


def _when(moment: datetime) -> str:
    """An instant as ISO with its offset: the renderer shows it in the territory's time."""
    return moment.isoformat()


#: An event older than this when it reaches us says how long ago it happened.
LATE_AFTER = timedelta(hours=1)


#: The most characters of a facility or unit name shown in a notice: HL7 sets no length on
#: PV1-3 in practice, and a 200 000-character one made a notice past Matrix's 64 KiB event
#: limit, which the outbox could only set aside — the alert lost to its room.
PLACE_PART_MAX = 120


def _shown(part: str) -> str:
    return part if len(part) <= PLACE_PART_MAX else part[:PLACE_PART_MAX - 1].rstrip() + "…"


def _place(facility: str, unit: str) -> Any:
    shown = " — ".join(_shown(part) for part in (facility, unit) if part)
    return shown or {"key": "alert.place_unknown"}


def location_changed(before: tuple[str, str], after: tuple[str, str]) -> bool:
    """(facility, unit) pairs: changed when a part given in both differs; "" is not given."""
    return any(b and a and b != a for b, a in zip(before, after, strict=True))


def is_cancellation(alert: Alert) -> bool:
    return alert.event in CANCELS or alert.movement_action == "CANCEL"


def discharge_setting(disposition: str) -> Setting:
    """Unknown or missing dispositions are a return home, by far the most common case."""
    return _DISCHARGE.get(disposition.strip().lower(), Setting.HOME)


def setting_after(alert: Alert) -> Setting | None:
    """Where a hospital event leaves the person; None when it does not move them."""
    klass = alert.patient_class.strip().upper()
    if alert.event in (AlertEvent.admission, AlertEvent.transfer, AlertEvent.leave_return):
        if klass in _OUTPATIENT:
            return None  # a consultation or a day visit: the person stays where they live
        return Setting.EMERGENCY if klass in _EMERGENCY else Setting.HOSPITAL
    if alert.event is AlertEvent.discharge:
        return discharge_setting(alert.discharge_disposition)
    return None


def checklist(origin: Setting, target: Setting, since: datetime, *, manager: str = "",
              gp: str | None = None, tz: tzinfo = PARIS) -> list[dict[str, Any]]:
    """The handover items a transition needs, as catalog messages, each with its owner: the
    case manager, except the discharge letter, which the GP receives (the case manager when
    the team has no GP)."""
    items: list[str]
    if target in _ACUTE:
        items = ["hospital_contact", "plan_summary"]
        if origin not in _ACUTE:
            items.insert(0, "services_suspended")
    elif target is Setting.HOME:
        items = ["gp_informed"]
        if origin in HOSPITAL_LIKE:
            items += ["discharge_date_shared", "discharge_letter"]
        items.append("home_services_resumed")
    elif target is Setting.NURSING_HOME:
        items = ["receiving_contact", "plan_summary", "home_services_stopped", "gp_informed"]
    elif target in (Setting.REHAB, Setting.HAD, Setting.TEMPORARY_STAY, Setting.DAY_CARE):
        items = ["receiving_contact", "plan_summary", "gp_informed"]
        if origin in _ACUTE:
            items.append("discharge_letter")
    else:
        items = ["gp_informed", "team_informed"]
    owners = {"discharge_letter": gp or manager}
    out: list[dict[str, Any]] = [
        {"key": f"checklist.{item}", "params": {"owner": owners.get(item, manager)}} for item in items]
    if _returns_from_hospital(origin, target):
        due = local_day(since, tz) + timedelta(days=HOSPITAL_RETURN_DAYS)
        out.append({"key": "checklist.reevaluation", "params": {"date": due.isoformat(), "owner": manager}})
    return out


def _todo(person: Person, mentions: tuple[str, ...], origin: Setting, move: Move, tz: tzinfo) -> dict[str, Any]:
    gp = next((m for m in mentions if m != person.referent), None)
    return {"key": "alert.todo", "params": {
        "checklist": checklist(origin, move.setting, move.since, manager=person.referent, gp=gp, tz=tz)}}


def _returns_from_hospital(origin: Setting, target: Setting) -> bool:
    return target is Setting.HOME and origin in HOSPITAL_LIKE


def _move(origin: Setting, target: Setting, since: datetime, tz: tzinfo, establishment: str | None = None) -> Move:
    back = local_day(since, tz) if _returns_from_hospital(origin, target) else None
    return Move(target, since, back, establishment)


def _handover(person: Person, mentions: tuple[str, ...], origin: Setting, move: Move,
              by: dict[str, Any], tz: tzinfo) -> Notify:
    params = {
        "person": person.display_name, "case": person.case_ref,
        "from_setting": {"key": f"setting.{origin.value}"},
        "setting": move.setting.value,
        "place": {"key": "handover.place", "params": {"place": move.establishment}} if move.establishment else "",
        "when": _when(move.since),
        "by": by,
        "todo": _todo(person, mentions, origin, move, tz),
    }
    return Notify("handover.setting", person.case_ref, "handover.setting", params, mentions=mentions)


_NOTICES: dict[AlertEvent, tuple[str, str]] = {
    AlertEvent.admission: ("alert.admission", "alert.admission"),
    AlertEvent.transfer: ("alert.transfer", "alert.transfer"),
    AlertEvent.discharge: ("alert.discharge", "alert.discharge"),
    AlertEvent.leave: ("alert.transfer", "alert.leave"),
    AlertEvent.leave_return: ("alert.transfer", "alert.leave_return"),
    AlertEvent.update: ("alert.transfer", "alert.location"),
}


def hospital_event(
    person: Person,
    mentions: tuple[str, ...],
    alert: Alert,
    *,
    last_movement: datetime | None,
    last_location: tuple[str, str] | None,
    now: datetime | None = None,
    tz: tzinfo = PARIS,
) -> Outcome:
    """An admission, transfer, discharge, leave or update for a followed person: one notice,
    the event and, when the person moves, the checklist of the move (SPEC §6, §7).

    `last_movement` is the time of the newest movement known (hospital event or `!move`);
    `last_location` the (facility, unit) of the person's latest stay event, None when
    they are not known to be in hospital; `now` the time the message was received (an event
    older than `LATE_AFTER` then says how long ago it happened).
    """
    if alert.event not in _NOTICES:
        return Outcome()
    location = (alert.facility, alert.unit)
    if alert.event is AlertEvent.update:
        if last_location is None or not location_changed(last_location, location):
            return Outcome()  # A08: silent unless the location changes
        # A part the update leaves out is where it was (the unit moved within the same facility).
        location = (alert.facility or last_location[0], alert.unit)
    late = last_movement is not None and alert.event_time < last_movement
    target = setting_after(alert)
    if (alert.event in (AlertEvent.transfer, AlertEvent.leave_return) and not alert.patient_class.strip()
            and person.setting in HOSPITAL_LIKE):
        target = None  # no patient class given: still where they were (absent is never a change)
    if (alert.event is AlertEvent.discharge and alert.patient_class.strip().upper() in _OUTPATIENT
            and person.setting not in HOSPITAL_LIKE):
        # The end of an outpatient visit (A03 "discharge/end visit", HL7 v2.5 §3.3.3; PV1-2 = O,
        # R…) of someone not in hospital: no stay ends, so no return from hospital, no discharge
        # letter, no re-evaluation due (the A04 that opened the visit moved nobody either).
        target = None
    kind, message = _NOTICES[alert.event]
    visit = alert.patient_class.strip().upper() in _OUTPATIENT
    if alert.event is AlertEvent.admission and target is Setting.EMERGENCY:
        message = "alert.admission_emergency"
    elif alert.event is AlertEvent.admission and visit:
        message = "alert.visit"  # a consultation, a day visit: never told as a hospitalisation
    elif alert.event is AlertEvent.discharge and visit and target is None:
        message = "alert.visit_end"  # the end of that visit: no "discharge from hospital … to home"
    params: dict[str, Any] = {
        "person": person.display_name, "case": person.case_ref,
        "when": local_day(alert.event_time, tz).isoformat() if alert.day_only else _when(alert.event_time),
        "place": _place(location[0] or alert.sender_facility, location[1]),
        "late": {"key": "alert.late"} if late else None,
        "ago": {"ago": _when(alert.event_time)} if now is not None and now - alert.event_time > LATE_AFTER else None,
        "todo": None,
    }
    if alert.event is AlertEvent.transfer:
        params["from_place"] = _place(alert.prior_facility, alert.prior_unit)
    if alert.event is AlertEvent.discharge:
        params["setting"] = (target or Setting.HOME).value
    origin = person.setting
    if alert.event is AlertEvent.discharge and origin not in HOSPITAL_LIKE:
        origin = Setting.HOSPITAL  # the admission never reached us: still a return from hospital
    move = None
    if target is not None and (target is not person.setting or origin is not person.setting) and not late:
        move = _move(origin, target, alert.event_time, tz)
        params["todo"] = _todo(person, mentions, origin, move, tz)
    return Outcome([Notify(kind, person.case_ref, message, params, mentions=mentions)], move, notice=True)


def cancellation(
    person: Person,
    mentions: tuple[str, ...],
    alert: Alert,
    original: AlertRecord | None,
    *,
    restored: Setting | None,
) -> Outcome:
    """The hospital cancelled an event: edit its notice and say so in a short new one.

    `restored` is the setting put back because the cancelled event had made the last move.
    """
    what_event = original.event if original is not None else CANCELS.get(alert.event, AlertEvent.admission)
    what = {"key": f"alert.what.{what_event.value}"}
    if original is None:
        params = {"person": person.display_name, "case": person.case_ref, "what": what,
                  "when": _when(alert.event_time)}
        return Outcome([Notify("alert.cancelled", person.case_ref, "alert.cancelled_unknown", params,
                               mentions=mentions)])
    when = _when(original.event_time)
    effects: list[Notify] = []
    if original.notice_key is not None:
        kind = _NOTICES.get(original.event, ("alert.cancelled", ""))[0]
        effects.append(Notify(kind, person.case_ref, "alert.cancelled_original",
                              {"person": person.display_name, "case": person.case_ref, "what": what, "when": when,
                               "place": _place(original.facility, original.unit)},
                              replaces=original.notice_key))
    restored_param: Any = {"key": "alert.restored", "params": {"setting": restored.value}} if restored else None
    effects.append(Notify("alert.cancelled", person.case_ref, "alert.cancelled",
                          {"person": person.display_name, "case": person.case_ref, "what": what, "when": when,
                           "restored": restored_param}, mentions=mentions))
    return Outcome(effects)


def manual_move(
    person: Person,
    mentions: tuple[str, ...],
    target: Setting,
    establishment: str | None,
    on: date | None,
    *,
    by: str,
    now: datetime,
    last_movement: datetime | None,
    tz: tzinfo = PARIS,
) -> Outcome:
    """`!move`: the case manager records a change of setting by hand; a past day counts from
    its noon in the territory's time zone `tz`."""
    today = local_day(now, tz)
    if on is not None and on > today:
        raise DomainError("error.move_future", date=on.isoformat())
    since = now if on is None or on == today else datetime.combine(on, time(12), tzinfo=tz)
    if last_movement is not None and since < last_movement:
        raise DomainError("error.move_older", date=local_day(since, tz).isoformat(),
                          last=local_day(last_movement, tz).isoformat())
    establishment = " ".join(establishment.split()) if establishment else None
    if establishment is not None and len(establishment) > 120:
        raise DomainError("error.establishment_long")
    if target is person.setting and establishment is None:
        raise DomainError("error.move_same", setting=target.value)
    move = _move(person.setting, target, since, tz, establishment)
    notice = _handover(person, mentions, person.setting, move, {"key": "handover.by_user", "params": {"user": by}},
                       tz)
    return Outcome([notice], move, notice=True)
