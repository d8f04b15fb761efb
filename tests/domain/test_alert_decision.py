"""The alert use case's one decision (hub/domain/alert_decision.py), pure: no storage, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hub.domain.alert_decision import AlertHistory, decide
from hub.domain.alerts import Alert, AlertEvent, AlertRecord, PatientId
from hub.domain.persons import Identifier, Person
from hub.domain.settings import Setting

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
PERSON = Person("R-2026-0001", "Jeanne", "@cm:x", T0 - timedelta(days=90), identifiers=(Identifier("CHU-Y", "1"),))
IN_HOSPITAL = replace(PERSON, setting=Setting.HOSPITAL, setting_since=T0)


def alert(event: AlertEvent, trigger: str, when: datetime = T0, **kw: str) -> Alert:
    return Alert("hl7", "SIH^CHU-Y", "c", event, trigger, when, (PatientId("1", "CHU-Y"),), **kw)  # type: ignore[arg-type]


def record(id_: int, event: AlertEvent, when: datetime = T0, **kw: object) -> AlertRecord:
    return AlertRecord(id_, PERSON.case_ref, event, when, **kw)  # type: ignore[arg-type]


def test_a_cancellation_that_came_first_keeps_its_event_from_standing() -> None:
    a11 = record(1, AlertEvent.cancel_admission, movement_id="MVT-7")
    late = alert(AlertEvent.admission, "A01", movement_id="MVT-7", facility="CHU-Y", patient_class="I")
    decision = decide(AlertHistory(PERSON, (), (a11,)), late, ins_test_oids=False)
    assert decision.cancelled_by == 1 and decision.effects == [] and decision.move is None
    # Another movement, or a cancellation already used, does not stop an event.
    other = replace(late, movement_id="MVT-8")
    assert decide(AlertHistory(PERSON, (), (a11,)), other, ins_test_oids=False).move is not None
    used = (a11, record(2, AlertEvent.admission, movement_id="MVT-7", cancelled=True, cancelled_by=1))
    assert decide(AlertHistory(PERSON, (), used), late, ins_test_oids=False).cancelled_by is None


def test_a_cancellation_without_movement_id_that_came_first_waits_for_the_event_it_cancels() -> None:
    # A11 then its A01 arriving late, neither carrying ZBE-1 (plain HL7 v2.5 senders).
    a11 = record(1, AlertEvent.cancel_admission, T0 + timedelta(minutes=30), sender="SIH^CHU-Y")
    late = alert(AlertEvent.admission, "A01", facility="CHU-Y", patient_class="I")
    decision = decide(AlertHistory(PERSON, (), (a11,)), late, ins_test_oids=False)
    assert decision.cancelled_by == 1 and decision.effects == [] and decision.move is None
    # An admission that happened after the cancellation is a new stay; another sender's
    # cancellation, one already used, or one of another kind does not stop it.
    after = replace(late, event_time=T0 + timedelta(hours=2))
    assert decide(AlertHistory(PERSON, (), (a11,)), after, ins_test_oids=False).move is not None
    for history in ((replace(a11, sender="SIH^CHU-Z"),),
                    (a11, record(2, AlertEvent.admission, cancelled=True, cancelled_by=1)),
                    (replace(a11, event=AlertEvent.cancel_discharge),)):
        assert decide(AlertHistory(PERSON, (), history), late, ins_test_oids=False).move is not None, history


def test_absent_parts_of_a_location_are_never_a_change() -> None:
    stay = (record(1, AlertEvent.admission, facility="CHU-Y", unit="GERIA"),
            record(2, AlertEvent.update, T0 + timedelta(hours=1)))  # an A08 without PV1-3
    history = AlertHistory(IN_HOSPITAL, (), stay)
    later = T0 + timedelta(hours=2)
    for location in ({}, {"facility": "CHU-Y"}, {"unit": "GERIA"}):
        assert decide(history, alert(AlertEvent.update, "A08", later, **location), ins_test_oids=False).effects == []
    moved = decide(history, alert(AlertEvent.update, "A08", later, unit="CARDIO"), ins_test_oids=False)
    assert moved.effects[0].params["place"] == "CHU-Y — CARDIO" and moved.move is None


def test_a_transfer_without_patient_class_keeps_the_setting() -> None:
    history = AlertHistory(replace(IN_HOSPITAL, setting=Setting.EMERGENCY), (),
                           (record(1, AlertEvent.admission, facility="CHU-Y", unit="URG"),))
    decision = decide(history, alert(AlertEvent.transfer, "A02", T0 + timedelta(hours=3), unit="GERIA"),
                      ins_test_oids=False)
    assert decision.notice and decision.move is None


def test_a_z99_acts_only_on_the_current_movement() -> None:
    stay = (record(1, AlertEvent.admission, facility="CHU-Y", unit="GERIA", movement_id="MVT-1"),)
    history = AlertHistory(IN_HOSPITAL, (), stay)
    later = T0 + timedelta(hours=1)
    same = decide(history, alert(AlertEvent.update, "Z99", later, movement_id="MVT-1", unit="CARDIO"),
                  ins_test_oids=False)
    assert [n.message for n in same.effects] == ["alert.location"]
    for movement in ("MVT-0", ""):
        other = alert(AlertEvent.update, "Z99", later, movement_id=movement, unit="CARDIO")
        assert decide(history, other, ins_test_oids=False).effects == []
    unchanged = alert(AlertEvent.update, "Z99", later, movement_id="MVT-1", unit="GERIA")
    assert decide(history, unchanged, ins_test_oids=False).effects == []


def test_a_merge_renames_the_identifiers_of_the_old_record() -> None:
    merge = replace(alert(AlertEvent.merge, "A40"), identifiers=(PatientId("2", "CHU-Y"),),
                    merged_identifiers=(PatientId("1", "CHU-Y"),),
                    merges=((PatientId("1", "CHU-Y"), PatientId("2", "CHU-Y")),))
    decision = decide(AlertHistory(PERSON, ()), merge, ins_test_oids=False)
    assert decision.rekeys == ((Identifier("CHU-Y", "1"), Identifier("CHU-Y", "2")),) and decision.effects == []



def test_a_cancellation_naming_a_movement_never_cancels_another_movements_event() -> None:
    # Final review: an Encounter entered-in-error Relais never heard of, or a retracted transfer of
    # an encounter whose admission stands, retracted the latest admission of another stay.
    admitted = record(1, AlertEvent.admission, movement_id="fhir:aaa")
    history = AlertHistory(IN_HOSPITAL, (), (admitted,))
    other_stay = alert(AlertEvent.cancel_admission, "A11", movement_id="fhir:bbb")
    assert decide(history, other_stay, ins_test_oids=False).cancels == ()
    wrong_kind = alert(AlertEvent.cancel_transfer, "A12", movement_id="fhir:aaa")
    assert decide(history, wrong_kind, ins_test_oids=False).cancels == ()
    assert decide(history, replace(other_stay, movement_id="fhir:aaa"), ins_test_oids=False).cancels == (1,)
    # A PAM movement names one event; one stored without a movement id may still be the one meant.
    pam = AlertHistory(IN_HOSPITAL, (), (record(2, AlertEvent.admission, movement_id="MVT-1"),))
    a11 = alert(AlertEvent.cancel_admission, "A11", movement_id="MVT-2")
    assert decide(pam, a11, ins_test_oids=False).cancels == ()
    plain = AlertHistory(IN_HOSPITAL, (), (record(3, AlertEvent.admission),))
    assert decide(plain, alert(AlertEvent.cancel_admission, "A11", movement_id="MVT-2"),
                  ins_test_oids=False).cancels == (3,)
