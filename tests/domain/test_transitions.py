"""Setting changes from hospital events and by hand: targets, checklists, ordering, errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain.alerts import Alert, AlertEvent, AlertRecord, PatientId
from hub.domain.errors import DomainError
from hub.domain.persons import Person
from hub.domain.settings import Setting
from hub.domain.transitions import (
    cancellation,
    checklist,
    discharge_setting,
    hospital_event,
    manual_move,
    setting_after,
)

T0 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
PERSON = Person("R-2026-0001", "Jeanne", "@cm:x", T0 - timedelta(days=90))
MENTIONS = ("@cm:x", "@gp:x")


def alert(event: AlertEvent, when: datetime = T0, **kw: str) -> Alert:
    return Alert("hl7", "GAM^CHU", "1", event, "A01", when, (PatientId("1", "CHU"),), **kw)  # type: ignore[arg-type]


def keys(items: list[dict[str, object]]) -> list[object]:
    return [item["key"] for item in items]


@pytest.mark.parametrize(("event", "klass", "disposition", "expected"), [
    (AlertEvent.admission, "I", "", Setting.HOSPITAL),
    (AlertEvent.admission, "E", "", Setting.EMERGENCY),
    (AlertEvent.admission, "EMER", "", Setting.EMERGENCY),  # FHIR Encounter.class
    (AlertEvent.admission, "O", "", None),  # a consultation moves nobody
    (AlertEvent.transfer, "I", "", Setting.HOSPITAL),
    (AlertEvent.discharge, "I", "", Setting.HOME),
    (AlertEvent.discharge, "I", "01", Setting.HOME),
    (AlertEvent.discharge, "I", "03", Setting.NURSING_HOME),
    (AlertEvent.discharge, "I", "rehab", Setting.REHAB),
    (AlertEvent.discharge, "I", "exp", Setting.OTHER),  # death: never a "return home"
    (AlertEvent.leave, "I", "", None),
    (AlertEvent.update, "I", "", None),
])
def test_where_a_hospital_event_leaves_the_person(event: AlertEvent, klass: str, disposition: str,
                                                  expected: Setting | None) -> None:
    assert setting_after(alert(event, patient_class=klass, discharge_disposition=disposition)) is expected


def test_discharge_codes_from_hl7_nubc_and_fhir() -> None:
    assert discharge_setting("1") is discharge_setting("home") is Setting.HOME
    assert discharge_setting("SNF") is Setting.NURSING_HOME
    assert discharge_setting("Admitted as Inpatient") is Setting.HOME  # free text: the common case


def test_checklists_follow_the_transition() -> None:
    admit = checklist(Setting.HOME, Setting.HOSPITAL, T0)
    assert keys(admit) == ["checklist.services_suspended", "checklist.hospital_contact", "checklist.plan_summary"]
    back = checklist(Setting.HOSPITAL, Setting.HOME, T0)
    assert keys(back) == ["checklist.gp_informed", "checklist.discharge_date_shared", "checklist.discharge_letter",
                          "checklist.home_services_resumed", "checklist.reevaluation"]
    assert back[-1]["params"] == {"date": "2026-03-09", "owner": ""}
    owned = checklist(Setting.HOSPITAL, Setting.HOME, T0, manager="@cm:x", gp="@gp:x")
    owners = {item["key"]: item["params"]["owner"] for item in owned}
    assert owners["checklist.discharge_letter"] == "@gp:x"  # the GP receives the discharge letter
    assert {o for k, o in owners.items() if k != "checklist.discharge_letter"} == {"@cm:x"}
    ward = checklist(Setting.EMERGENCY, Setting.HOSPITAL, T0)
    assert "checklist.services_suspended" not in keys(ward)
    assert "checklist.reevaluation" not in keys(checklist(Setting.TEMPORARY_STAY, Setting.HOME, T0))
    assert "checklist.home_services_stopped" in keys(checklist(Setting.HOME, Setting.NURSING_HOME, T0))


def test_admission_then_discharge_home_sets_the_hospital_return() -> None:
    admitted = hospital_event(PERSON, MENTIONS, alert(AlertEvent.admission, facility="CHU", unit="Gériatrie"),
                              last_movement=None, last_location=None)
    # One message per hospital event: the alert carries the checklist of the move.
    assert [n.kind for n in admitted.effects] == ["alert.admission"]
    assert admitted.effects[0].params["place"] == "CHU — Gériatrie"
    assert admitted.effects[0].params["todo"]["key"] == "alert.todo"
    assert all(n.mentions == MENTIONS for n in admitted.effects)
    assert admitted.move is not None and admitted.move.setting is Setting.HOSPITAL and admitted.notice
    assert admitted.move.hospital_return is None

    in_hospital = replace(PERSON, setting=Setting.HOSPITAL, setting_since=T0)
    out = hospital_event(in_hospital, MENTIONS, alert(AlertEvent.discharge, T0 + timedelta(days=5)),
                         last_movement=T0, last_location=("CHU", "Gériatrie"))
    assert out.move is not None and out.move.setting is Setting.HOME
    assert out.move.hospital_return == date(2026, 3, 7)
    assert len(out.effects) == 1 and out.effects[0].params["setting"] == "home"
    items = [i["key"] for i in out.effects[0].params["todo"]["params"]["checklist"]]
    assert "checklist.discharge_letter" in items and items[-1] == "checklist.reevaluation"


def test_an_older_event_informs_but_does_not_move() -> None:
    home_since = replace(PERSON, setting=Setting.HOME, setting_since=T0)
    late = hospital_event(home_since, MENTIONS, alert(AlertEvent.admission, T0 - timedelta(hours=1)),
                          last_movement=T0, last_location=None)
    assert late.move is None and [n.kind for n in late.effects] == ["alert.admission"]
    assert late.effects[0].params["late"] == {"key": "alert.late"}


def test_a_place_of_any_length_is_shown_shortened_never_past_a_notice_s_size() -> None:
    """A PV1-3 of 200 000 characters (no length is enforced by senders) is shown shortened; the
    whole of it would have made a notice Matrix refuses, and the alert would never be posted."""
    huge = alert(AlertEvent.transfer, facility="C" * 200_000, unit="U" * 5_000, prior_unit="P" * 300)
    notice = hospital_event(replace(PERSON, setting=Setting.HOSPITAL), MENTIONS, huge, last_movement=None,
                            last_location=None).effects[0]
    assert notice.params["place"] == "C" * 119 + "… — " + "U" * 119 + "…"
    assert notice.params["from_place"] == "P" * 119 + "…"
    short = alert(AlertEvent.admission, facility="CHU Nantes", unit="Gériatrie")
    assert hospital_event(PERSON, MENTIONS, short, last_movement=None, last_location=None
                          ).effects[0].params["place"] == "CHU Nantes — Gériatrie"


def test_an_update_is_silent_unless_the_location_changes() -> None:
    inside = replace(PERSON, setting=Setting.HOSPITAL)
    same = alert(AlertEvent.update, facility="CHU", unit="A")
    assert hospital_event(inside, MENTIONS, same, last_movement=T0, last_location=("CHU", "A")).effects == []
    assert hospital_event(inside, MENTIONS, same, last_movement=T0, last_location=None).effects == []
    moved = hospital_event(inside, MENTIONS, replace(same, unit="B"), last_movement=T0, last_location=("CHU", "A"))
    assert [(n.kind, n.message) for n in moved.effects] == [("alert.transfer", "alert.location")]
    assert moved.move is None


def test_a_cancellation_edits_the_original_and_posts_a_short_correction() -> None:
    original = AlertRecord(7, PERSON.case_ref, AlertEvent.admission, T0, facility="CHU", notice_key="alert:7:0")
    out = cancellation(PERSON, MENTIONS, alert(AlertEvent.cancel_admission), original, restored=Setting.HOME)
    edit, short = out.effects
    assert edit.replaces == "alert:7:0" and edit.kind == "alert.admission" and edit.mentions == ()
    assert short.kind == "alert.cancelled" and short.mentions == MENTIONS
    assert short.params["restored"] == {"key": "alert.restored", "params": {"setting": "home"}}
    assert out.move is None and not out.notice
    unknown = cancellation(PERSON, MENTIONS, alert(AlertEvent.cancel_discharge), None, restored=None)
    assert [(n.kind, n.message) for n in unknown.effects] == [("alert.cancelled", "alert.cancelled_unknown")]
    assert unknown.effects[0].params["what"] == {"key": "alert.what.discharge"}


def test_manual_move_rules() -> None:
    now = T0
    moved = manual_move(PERSON, MENTIONS, Setting.NURSING_HOME, "  EHPAD  Les Lilas ", None, by="@cm:x", now=now,
                        last_movement=None)
    assert moved.move is not None and moved.move.since == now and moved.move.establishment == "EHPAD Les Lilas"
    assert moved.effects[0].params["by"] == {"key": "handover.by_user", "params": {"user": "@cm:x"}}
    past = manual_move(replace(PERSON, setting=Setting.HOSPITAL), MENTIONS, Setting.HOME, None, date(2026, 3, 1),
                       by="@cm:x", now=now, last_movement=None)
    assert past.move is not None and past.move.hospital_return == date(2026, 3, 1)
    for kwargs, key in (
        ({"target": Setting.HOME, "on": None}, "error.move_same"),
        ({"target": Setting.HOSPITAL, "on": date(2026, 3, 3)}, "error.move_future"),
        ({"target": Setting.HOSPITAL, "on": date(2026, 2, 1), "last": T0 - timedelta(days=3)}, "error.move_older"),
    ):
        with pytest.raises(DomainError) as info:
            manual_move(PERSON, MENTIONS, kwargs["target"], None, kwargs["on"], by="@cm:x",  # type: ignore[arg-type]
                        now=now, last_movement=kwargs.get("last"))  # type: ignore[arg-type]
        assert info.value.key == key
