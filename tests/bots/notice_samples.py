"""One realistic notice of every kind, made by the real domain and presentation functions.

Used by the rendering tests (every kind, both languages) and by `scripts/notice_gallery.py`,
which writes docs/notices.md. People and places are invented.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hub.commands.parser import UsageError, parse
from hub.commands.registry import build_registry
from hub.commands.usage import explain, help_detail, help_groups
from hub.domain import (
    closure,
    concertation,
    consent,
    continuity,
    delivery,
    handover,
    plan,
    reevaluation,
    team,
    transitions,
)
from hub.domain.alerts import Alert, AlertEvent, AlertRecord, PatientId
from hub.domain.catchup import catch_up_lines
from hub.domain.closure import CloseReason
from hub.domain.continuity import Source
from hub.domain.effects import Notify
from hub.domain.evaluations import Evaluation, Reason, Tool
from hub.domain.persons import Person
from hub.domain.settings import Setting
from hub.domain.team import Member, Role
from hub.domain.transitions import PARIS
from hub.i18n.catalog import Catalog
from hub.services.plans import item_lines, present
from hub.services.reevaluations import review_prompts
from hub.storage.repos_plan import ReviewRecord

# Friday 27 November 2026, 00:49 UTC = 01:49 in Paris (the example).
NOW = datetime(2026, 11, 27, 0, 49, tzinfo=UTC)
REF = "R-2026-0042"
CM, GP, NURSE, NURSE2, SSIAD = "@claire.gc:relais.test", "@dr.martin:relais.test", "@ide.durand:relais.test", \
    "@ide.petit:relais.test", "@ssiad.ouest:relais.test"
NAMES = {CM: "Claire Roux", GP: "Dr Paul Martin", NURSE: "Inès Durand", NURSE2: "Hugo Petit",
         SSIAD: "SSIAD Ouest", "@gc.bernard:relais.test": "Marc Bernard", "@kine.leroy:relais.test": "Léa Leroy",
         "@pilote:relais.test": "Sophie Lambert"}
PILOT = "@pilote:relais.test"
PERSON = Person(REF, "Paulette Exemple", CM, NOW - timedelta(days=120), birth_date=date(1938, 7, 14))
TEAM = [Member(CM, Role.CASE_MANAGER, NOW - timedelta(days=120)), Member(GP, Role.GP, NOW - timedelta(days=110)),
        Member(NURSE, Role.NURSE, NOW - timedelta(days=100), organisation="Cabinet Les Tilleuls"),
        Member(SSIAD, Role.HOME_NURSING, NOW - timedelta(days=90))]
LAST = Evaluation(date(2026, 6, 1), Tool.INTERRAI_HC, Reason.ROUTINE, 3, CM)
MENTIONS = team.mentions_for(TEAM, CM)
SPECS = build_registry().specs


@dataclass(frozen=True)
class Sample:
    name: str  # what the gallery calls it
    notice: Notify
    sender: str = CM  # who typed the command, for command replies


def _items() -> list[plan.PlanItem]:
    earlier = NOW - timedelta(days=30)
    a, _ = plan.add_item([], REF, "Pansement de l'ulcère", "Pansement tous les deux jours", provider_user=NURSE,
                         frequency="lun, mer, ven", start=date(2026, 10, 1), review=date(2026, 12, 1), by=CM,
                         now=earlier)
    b, _ = plan.add_item([a], REF, "Toilette", "Aide à la toilette le matin", provider_user=SSIAD, by=CM, now=earlier)
    c, _ = plan.add_item([a, b], REF, "Repas", "Portage de repas", provider_org="Mairie — CCAS", by=CM, now=earlier)
    return [a, b, c]


def _alert(event: AlertEvent, when: datetime, **kw: Any) -> Alert:
    return Alert("hl7", "GAM^CHU-X", "MSG-1", event, "A01", when, (PatientId("123456", "CHU-X"),), **kw)


def _usage_error(text: str, catalog: Catalog) -> Notify:
    try:
        parse(text, SPECS)
    except UsageError as exc:
        return Notify("command.error", REF, exc.key, explain(dict(exc.params), exc.spec, catalog))
    raise AssertionError(f"{text} parsed")


def samples(language: str) -> list[Sample]:
    catalog = Catalog(language)
    items = _items()
    out: list[Sample] = []

    def add(name: str, effects: list[Any], *, index: int = 0, sender: str = CM) -> None:
        notices = [present(e) for e in effects if isinstance(e, Notify)]
        out.append(Sample(name, notices[index], sender))

    # --- hospital alerts: one message each, the checklist inside --------------------------------
    admitted = transitions.hospital_event(
        PERSON, MENTIONS, _alert(AlertEvent.admission, NOW, facility="CHU-X", unit="Médecine gériatrique",
                                 patient_class="I"), last_movement=None, last_location=None, now=NOW)
    add("Admission", admitted.effects)
    emergency = transitions.hospital_event(
        PERSON, MENTIONS, _alert(AlertEvent.admission, NOW - timedelta(days=3), facility="CHU-X", unit="Urgences",
                                 patient_class="E"), last_movement=None, last_location=None, now=NOW)
    add("Arrival at the emergency department, reaching Relais three days late", emergency.effects)
    visit = transitions.hospital_event(
        PERSON, MENTIONS, _alert(AlertEvent.admission, NOW, facility="CHU-X", unit="Consultations mémoire",
                                 patient_class="O"), last_movement=None, last_location=None, now=NOW)
    add("Hospital visit without admission (A04, PV1-2 = O)", visit.effects)
    in_hospital = replace(PERSON, setting=Setting.HOSPITAL, setting_since=NOW - timedelta(days=6))
    transfer = transitions.hospital_event(
        in_hospital, MENTIONS, _alert(AlertEvent.transfer, NOW, facility="CHU-X", unit="SMR",
                                      prior_facility="CHU-X", prior_unit="Médecine gériatrique", patient_class="I"),
        last_movement=NOW - timedelta(days=6), last_location=("CHU-X", "Médecine gériatrique"), now=NOW)
    add("Transfer", transfer.effects)
    discharge = transitions.hospital_event(
        in_hospital, MENTIONS, _alert(AlertEvent.discharge, NOW, facility="CHU-X", unit="Médecine gériatrique",
                                      discharge_disposition="01"),
        last_movement=NOW - timedelta(days=6), last_location=("CHU-X", "Médecine gériatrique"), now=NOW)
    add("Discharge home", discharge.effects)
    original = AlertRecord(id=1, case_ref=REF, event=AlertEvent.admission, event_time=NOW - timedelta(hours=5),
                           facility="CHU-X", unit="Médecine gériatrique", notice_key="alert:1:0")
    cancelled = transitions.cancellation(in_hospital, MENTIONS, _alert(AlertEvent.cancel_admission, NOW), original,
                                         restored=Setting.HOME)
    add("Admission cancelled: the original notice as edited", cancelled.effects, index=0)
    add("Admission cancelled: the short new notice", cancelled.effects, index=1)
    moved = transitions.manual_move(PERSON, MENTIONS, Setting.TEMPORARY_STAY, "EHPAD Les Glycines", None, by=CM,
                                    now=NOW, last_movement=None)
    add("Change of setting recorded by hand", moved.effects)

    # --- handovers -------------------------------------------------------------------------------
    composed = handover.professional(
        TEAM, items, REF, CM, NURSE, NURSE2, "départ à la retraite", organisation=None, last=LAST,
        due=date(2026, 11, 30), by=CM, now=NOW, allowed_servers=("relais.test",), bot_user="@relais:relais.test",
        person=PERSON.display_name)
    add("Professional handover", composed.effects)
    add("Plan item passing to the successor", composed.effects, index=1)
    record = composed.handover
    _, acked = handover.acknowledge([replace(record, id=1)], NURSE2, now=NOW + timedelta(hours=2))
    add("Handover acknowledged", acked, sender=NURSE2)
    add("Handover reminder", [handover.reminder(record, CM, False, NOW + timedelta(days=3))])
    transferred = handover.transfer(
        TEAM, items, REF, CM, "@gc.bernard:relais.test", case_managers=(CM, "@gc.bernard:relais.test"), last=LAST,
        due=date(2026, 11, 30), by=CM, now=NOW, person=PERSON.display_name)
    add("File transferred to another case manager", transferred.effects)

    # --- team, plan, evaluations ------------------------------------------------------------------
    _, added = team.add_member(TEAM, REF, "@kine.leroy:relais.test", Role.PHYSIO, "Cabinet du Parc", by=CM, now=NOW,
                               allowed_servers=("relais.test",), bot_user="@relais:relais.test")
    add("Member added", added)
    _, removed = team.remove_member(TEAM, REF, SSIAD, by=CM, now=NOW, reason="fin de prise en charge")
    add("Member removed", removed)
    out.append(Sample("File opened", Notify("team.update", REF, "team.opened", {
        "case": REF, "name": PERSON.display_name, "born": {"key": "team.born", "params": {"born": "1938-07-14"}},
        "referent": CM}, (CM,))))
    out.append(Sample("File opened for a person followed before", Notify("team.update", REF, "team.previous", {
        "cases": "R-2025-0007"})))
    _, plan_added = plan.add_item(items, REF, "Chutes", "Bilan de kinésithérapie", provider_user=NURSE,
                                  review=date(2027, 1, 15), by=CM, now=NOW)
    add("Plan item added", plan_added)
    _, plan_changed = plan.set_item(items[1], REF, {"status": "in_place", "provider": "@ide.durand:relais.test"},
                                       by=CM, now=NOW)
    add("Plan item changed", plan_changed)
    prompts = review_prompts([ReviewRecord(REF, CM, items[0])], date(2026, 12, 10), set())
    add("Plan item past its review date", prompts)
    for kind_due in (date(2026, 12, 11), NOW.date(), date(2026, 11, 6)):
        add(f"Re-evaluation ({kind_due.isoformat()})",
            reevaluation.sweep([(REF, kind_due, MENTIONS)], NOW.date(), set()))

    # --- continuity, closure, consent, encryption ------------------------------------------------------
    _, reported = continuity.report(
        REF, "Sortie d'hôpital sans lettre de liaison : le médecin traitant n'a pas été prévenu", None, by=CM,
        now=NOW, pilots=("@pilote:relais.test",))
    add("Continuity break reported (category inferred)", reported)
    add("Continuity break, to the pilot's desk", reported, index=1)
    _, left = continuity.member_left(REF, NURSE, "nurse", Source.LEFT, items[:1], mentions=MENTIONS, now=NOW)
    add("A member left the room on their own", [left])
    _, _, closed = closure.close(PERSON, TEAM, CloseReason.INSTITUTION, by=CM, now=NOW)
    add("File closed", closed)
    _, _, consent_effects = consent.record([], TEAM, REF, consent.Status.INFORMED, None, None, None, by=CM, now=NOW)
    add("Consent recorded", consent_effects)
    add("Consent reminder", [consent.reminder(REF, CM, NOW - timedelta(days=1, hours=2), NOW)])
    lines = catch_up_lines(NURSE2, [replace(record, id=1)], composed.items, date(2026, 11, 30), None)
    out.append(Sample("A member can now read the room: what concerns them",
                      Notify("encryption.readable", REF, "encryption.readable", {"user": NURSE2, "lines": lines},
                             (NURSE2,))))
    out.append(Sample("Member who cannot read the room", Notify("encryption.unreachable", REF,
                                                                   "encryption.unreachable", {"user": GP}, (CM,))))

    # --- clinical concertation ------------------------------------------------------------------
    planned, planned_effects = concertation.plan(
        None, TEAM, REF, date(2026, 12, 3), "14:00", minutes=45, place="Maison de santé, salle 2", visio=None,
        with_=(), uid="uid-1@relais", by=CM, now=NOW)
    add("Concertation planned", planned_effects)
    followed = concertation.follow_team(planned, NURSE, NURSE2, referent=CM, now=NOW)
    assert followed is not None
    add("Concertation: a participant left the team, their successor invited", followed[1])
    decisions = [concertation.Decision(1, "Passage de l'aide à domicile tous les matins", 2, CM, NOW),
                 concertation.Decision(2, "Réévaluation à domicile dans un mois", None, CM, NOW)]
    _, minutes_effects = concertation.minutes(planned, decisions, CM)
    add("Concertation minutes", minutes_effects)
    add("Concertation: plan items to update", minutes_effects, index=1)

    # --- command replies -------------------------------------------------------------------------
    registry = build_registry()
    from hub.commands.parser import Scope  # local: only the help samples need it

    gp_sees = registry.available(Scope.ROOM, None, manager=False)
    out.append(Sample("!aide typed by the GP in the room", Notify("command.reply", REF, "help.header",
                                                                 {"groups": help_groups(gp_sees, catalog)}), GP))
    cm_sees = registry.available(Scope.ROOM, None, manager=True)
    out.append(Sample("!aide typed by the case manager in the room",
                      Notify("command.reply", REF, "help.header", {"groups": help_groups(cm_sees, catalog)})))
    team_add = next(s for s in SPECS if s.name == "team add")
    out.append(Sample("!aide equipe ajouter", Notify("command.reply", REF, "help.detail",
                                                     help_detail(team_add, catalog, allowed=True))))
    out.append(Sample("Team", Notify("command.reply", REF, "reply.team", {"case": REF, "members": [
        {"key": "reply.team_line", "params": {"user": m.user_id, "role": m.role.value, "org": m.organisation,
                                              "since": m.since.date().isoformat()}} for m in TEAM]})))
    out.append(Sample("Plan", Notify("command.reply", REF, "plan.show", {
        "case": REF, "count": len(items), "items": item_lines(items), "date": None, "closed": None})))
    out.append(Sample("Missing argument", _usage_error("!plan ajouter Toilette", catalog)))
    out.append(Sample("Wrong role word", _usage_error("!equipe ajouter @kine:relais.test toubib", catalog)))
    out.append(Sample("Wrong date", _usage_error("!eval faite 31/02/2026", catalog)))

    # --- what could not be delivered (SPEC §5 `delivery.failed`) --------------------------------
    queued = NOW - timedelta(hours=2)
    out.append(Sample("A notice that could not be delivered, to the referent's desk",
                      delivery.failure_notice(CM, REF, "alert.admission", queued, PARIS, "RoomGone M_ROOM_GONE")))
    out.append(Sample("A notice that could not be delivered, to a pilot's desk",
                      delivery.pilot_notice(PILOT, "", "command.reply", delivery.where("", CM, False), queued,
                                            PARIS, "MatrixError 403 M_FORBIDDEN")))
    backlog = ["alert.admission", *["plan.update"] * 40, "handover.setting"]
    out.append(Sample("A room gone with notices waiting for it: one report for all of them",
                      delivery.failure_notice(CM, REF, backlog, queued, PARIS, "MatrixError 403 M_FORBIDDEN")))
    out.append(Sample("The same, when the referent's own desk cannot be reached either",
                      delivery.pilot_notice(PILOT, REF, backlog, delivery.where(REF, None, False), queued,
                                            PARIS, "RoomGone M_ROOM_GONE")))
    return out
