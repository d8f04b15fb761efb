"""Kinds an interface engineer found after issue 15, each over real MLLP on TCP where it is about
what gets posted, and on the parser where it is about reading a field (invented patients; the
messages are files under tests/inbound/messages/)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

import pytest

from hub.domain.alerts import AlertEvent
from hub.domain.settings import Setting
from hub.domain.transitions import setting_after
from hub.inbound.hl7v2 import parse
from tests.inbound.alert_stack import Stack, fhir_door
from tests.inbound.mllp_client import MllpClient
from tests.inbound.test_hospital_feeds import answers, client, message
from tests.samples_path import SAMPLES

pytestmark = [pytest.mark.db]
__all__ = ["client"]  # the fixture, shared with test_hospital_feeds


def _pam_discharge(pv1_36: str, zfm: str | None, *, version: bytes = b"2.5^FRA^2.11") -> bytes:
    raw = message("pam-a03-medical-decision.hl7").replace(b"|3|||", f"|{pv1_36}|||".encode(), 1)
    raw = raw.replace(b"|2.5^FRA^2.11|||||FRA|", b"|" + version + b"|||||" + (b"FRA" if b"FRA" in version else b"")
                      + b"|")
    return raw + (f"ZFM{zfm}\r".encode() if zfm is not None else b"")


@pytest.mark.parametrize(("pv1_36", "zfm", "setting"), [
    ("3", None, Setting.HOME),  # décision médicale, destination not given: home, as any A03 without one
    ("4", None, Setting.HOME),  # contre avis médical (table 0112 would say "to an ICF")
    ("2", None, Setting.HOME),  # mesure disciplinaire (0112: "to another hospital")
    ("3", "|8|8", Setting.HOME),
    ("3", "|8|8||7", Setting.NURSING_HOME),  # home = a médico-social accommodation (EHPAD)
    ("3", "|8|7||2", Setting.REHAB),  # transfer to SSR/SMR
    ("3", "|8|7||6", Setting.HAD),
    ("3", "|8|7||1", Setting.HOSPITAL),
    ("3", "|8|7", Setting.HOSPITAL),  # another establishment, kind not given
    ("3", "|8|9", Setting.OTHER),  # death: never a return home
])
def test_pam_france_pv1_36_is_a_circumstance_and_the_destination_is_zfm(
        pv1_36: str, zfm: str | None, setting: Setting) -> None:
    assert setting_after(parse(_pam_discharge(pv1_36, zfm))) is setting


def test_outside_pam_france_pv1_36_is_still_table_0112() -> None:
    raw = _pam_discharge("03", None, version=b"2.5")
    assert setting_after(parse(raw)) is Setting.NURSING_HOME


async def test_a_pam_france_discharge_by_medical_decision_is_a_return_home_not_to_a_nursing_home(
        stack: Stack, client: MllpClient) -> None:
    # PV1-36 = 3 ("décision médicale", the ordinary discharge) was read as HL7 table 0112's
    # "discharged to a skilled nursing facility": the team was told so and the setting changed.
    home = await stack.person("CHU-Y:910050")
    ehpad = await stack.person("CHU-Y:910051")
    for ref, number, a03 in ((home, b"910050", "pam-a03-medical-decision.hl7"),
                             (ehpad, b"910051", "pam-a03-to-ehpad.hl7")):
        admission = message("pam-a01-movement.hl7").replace(b"910040", number)
        admission = admission.replace(b"|Z-1|", b"|Z-1" + number + b"|")
        assert answers(await client.send(admission))[0][0] == "AA"
        assert answers(await client.send(message(a03)))[0][0] == "AA"
        notices = await stack.notices(ref)
        assert [n["message"] for n in notices] == ["alert.admission", "alert.discharge"]
    assert (await stack.notices(home))[-1]["params"]["setting"] == "home"
    assert (await stack.setting(home))[0] is Setting.HOME
    assert (await stack.notices(ehpad))[-1]["params"]["setting"] == "nursing_home"
    assert (await stack.setting(ehpad))[0] is Setting.NURSING_HOME


@pytest.mark.parametrize(("trigger", "event"), [
    ("A38", AlertEvent.cancel_admission), ("A52", AlertEvent.cancel_leave),
    ("A53", AlertEvent.cancel_leave_return)])
def test_the_cancellations_of_events_acted_on_are_acted_on(trigger: str, event: AlertEvent) -> None:
    raw = message("a52-cancel-leave.hl7").replace(b"A52", trigger.encode())
    assert parse(raw).event is event


async def test_a_cancelled_pre_admission_or_leave_does_not_stand(stack: Stack, client: MllpClient) -> None:
    # A38 (cancel pre-admit) and A52 (cancel leave of absence) were answered AA as "not acted
    # on" and dropped: the pre-admission (posted as an admission, setting hospital) and the
    # leave stood, and nobody was told they had been cancelled.
    pre = await stack.person("CHU-X:910060")
    assert answers(await client.send(message("a05-preadmit.hl7"))) == [("AA", "P-5")]
    assert (await stack.setting(pre))[0] is Setting.HOSPITAL
    assert answers(await client.send(message("a38-cancel-preadmit.hl7"))) == [("AA", "P-38")]
    notices = await stack.notices(pre)
    assert [n["message"] for n in notices] == ["alert.admission", "alert.cancelled_original", "alert.cancelled"]
    assert notices[1]["replaces"] == notices[0]["key"]
    assert (await stack.setting(pre))[0] is Setting.HOME  # the setting before the pre-admission

    leave = await stack.person("CHU-X:910061")
    admission = message("a01-geria.hl7").replace(b"910031", b"910061").replace(b"|L-1|", b"|P-1|")
    for raw, control in ((admission, "P-1"), (message("a21-leave.hl7"), "P-21"),
                         (message("a52-cancel-leave.hl7"), "P-52")):
        assert answers(await client.send(raw)) == [("AA", control)]
    notices = await stack.notices(leave)
    assert [n["message"] for n in notices] == [
        "alert.admission", "alert.leave", "alert.cancelled_original", "alert.cancelled"]
    assert notices[2]["replaces"] == notices[1]["key"]
    assert notices[3]["params"]["what"] == {"key": "alert.what.leave"}


async def test_an_event_keyed_in_later_is_told_at_the_time_it_happened(stack: Stack, client: MllpClient) -> None:
    # Without EVN-6, EVN-2 (when the event was *recorded*) was taken as when it happened: a
    # discharge at 17:00 keyed in at 09:00 the next morning was posted as a discharge "today
    # at 09:00" and the return from hospital dated the wrong day. PV1-44 / PV1-45 (and IHE
    # PAM's ZBE-2) say when the admission or discharge took place.
    ref = await stack.person("CHU-X:910070")
    assert answers(await client.send(message("a01-keyed-later.hl7"))) == [("AA", "T-1")]
    assert answers(await client.send(message("a03-keyed-next-morning.hl7"))) == [("AA", "T-3")]
    admission, discharge = await stack.notices(ref)
    assert admission["params"]["when"] == "2026-11-25T10:30:00+01:00"
    assert discharge["params"]["when"] == "2026-11-27T17:00:00+01:00"
    assert await stack.setting(ref) == (Setting.HOME, date(2026, 11, 27))




@pytest.fixture
async def fhir(stack: Stack) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]]:
    """POST a bundle to the real FHIR route on a loopback socket, over the stack's service."""
    async with fhir_door(stack, "application/fhir+json; charset=utf-8") as post:
        yield post


def _admit(subject: dict[str, Any], *, contained: list[dict[str, Any]] | None = None,
           patients: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Da Vinci admit sample with its Encounter.subject, contained resources and Patients replaced."""
    bundle = json.loads((SAMPLES / "fhir" / "admit-notification-message-bundle-01.json").read_text(encoding="utf-8"))
    kept = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    for entry in kept:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["resource"]["subject"] = subject
            if contained is not None:
                entry["resource"]["contained"] = contained
    bundle["entry"] = kept + [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{n}", "resource": p}
                              for n, p in enumerate(patients or [])]
    return bundle


def _patient(pid: str, value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid,
            "identifier": [{"system": "urn:oid:1.2.250.1.999.4.4", "value": value}]}


async def test_a_fhir_subject_given_by_identifier_or_contained_is_the_person_alerted(
        stack: Stack, fhir: Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]) -> None:
    # A logical reference (Encounter.subject.identifier, no Patient entry) and a Patient
    # contained in the Encounter (`#p1`) were refused 422 "no Patient.identifier".
    by_identifier = await stack.person("urn:oid:1.2.250.1.999.4.4:F8101")
    contained = await stack.person("urn:oid:1.2.250.1.999.4.4:F8102")
    status, _ = await fhir(_admit({"identifier": {"system": "urn:oid:1.2.250.1.999.4.4", "value": "F8101"}}))
    assert status == 200
    status, _ = await fhir(_admit({"reference": "#p1"}, contained=[_patient("p1", "F8102")]))
    assert status == 200
    for ref in (by_identifier, contained):
        assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission_emergency"]


async def test_a_fhir_subject_that_points_nowhere_never_falls_on_another_patient(
        stack: Stack, fhir: Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]) -> None:
    # Encounter.subject named a Patient absent from the bundle, which carried another one: the
    # first Patient of the bundle was taken and that person's file was told of an admission.
    other = await stack.person("urn:oid:1.2.250.1.999.4.4:F8103")
    bundle = _admit({"reference": "Patient/not-in-the-bundle"},
                    patients=[_patient("mother", "F8103"), _patient("child", "F8104")])
    status, outcome = await fhir(bundle)
    assert status == 422 and outcome["issue"][0]["code"] == "processing"
    assert await stack.notices(other) == [] and await stack.messages() == 0
    # One Patient only: a sloppy reference still designates it.
    status, _ = await fhir(_admit({"reference": "Patient/not-in-the-bundle"}, patients=[_patient("p", "F8103")]))
    assert status == 200 and len(await stack.notices(other)) == 1


async def test_an_account_or_visit_number_in_pid_3_never_matches_a_persons_ipp(
        stack: Stack, client: MllpClient) -> None:
    # PID-3 carried the patient's IPP (PI) and the stay's account number (AN) under the same
    # authority; the account number equalled another followed person's IPP, whose file was told
    # of an admission that was not theirs.
    bystander = await stack.person("CHU-X:910080")
    visit = await stack.person("CHU-X:77001")
    patient = await stack.person("CHU-X:910081")
    assert answers(await client.send(message("a01-account-number-in-pid-3.hl7"))) == [("AA", "V-1")]
    assert await stack.notices(bystander) == [] and await stack.notices(visit) == []
    assert [n["message"] for n in await stack.notices(patient)] == ["alert.admission"]
