"""Kinds a FHIR interface engineer found at `POST /fhir/$process-message`, each over real HTTP on
a loopback socket against the stack's service (invented patients; the bundles are files under
tests/inbound/messages/fhir/, varied here only where a test sweeps one element)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.domain.identity import PatientId, matches
from hub.domain.settings import Setting
from tests.inbound.alert_stack import Stack, fhir_door

pytestmark = [pytest.mark.db]

BUNDLES = Path(__file__).parent / "messages" / "fhir"
IPP = "urn:oid:1.2.250.1.999.4.4:F8301"
Send = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def bundle(name: str = "admit-geria.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BUNDLES / name).read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def encounter(data: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Encounter")
    return found


def accepted(outcome: dict[str, Any]) -> str:
    issue: dict[str, Any] = outcome["issue"][0]
    return str(issue.get("diagnostics", ""))


@pytest.fixture
async def send(stack: Stack) -> AsyncIterator[Send]:
    """POST a bundle (a dict, or the bytes as sent) to the real route, metrics wired as app.py does."""
    async with fhir_door(stack, "application/fhir+json; fhirVersion=4.0") as post:
        yield post


def counted(stack: Stack, outcome: str) -> float:
    return stack.metrics.registry.get_sample_value("relais_alerts_total", {"source": "fhir", "outcome": outcome}) or 0.0


# ------------------------------------------------------------ an encounter that has not begun

@pytest.mark.parametrize("name", ["admit-planned.json", "discharge-planned.json"])
async def test_a_planned_encounter_is_not_told_as_done(stack: Stack, send: Send, name: str) -> None:
    # Encounter.status `planned` ("has not yet started": a scheduled admission, an expected
    # discharge date) was posted as an admission (setting: hospital) or a discharge (setting:
    # home) the day the notification came, though the person had not moved.
    ref = await stack.person(IPP)
    status, outcome = await send(bundle(name))
    assert status == 200 and "not acted on" in accepted(outcome)
    assert await stack.notices(ref) == [] and await stack.messages() == 0
    assert (await stack.setting(ref))[0] is Setting.HOME
    assert counted(stack, "not_acted") == 1
    # The admission itself, when it happens, is told.
    status, _ = await send(bundle())
    assert status == 200 and [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


async def test_a_planned_notification_kept_before_an_upgrade_is_dropped_once_at_replay(stack: Stack) -> None:
    # Kept (acknowledged, left unprocessed) by a version that acted on it, then replayed by this
    # one: "not acted on" must end it once, not fail at every recovery run.
    ref = await stack.person(IPP)
    raw = json.dumps(bundle("admit-planned.json")).encode()
    kept = await stack.service.keep(stack.service.parse("fhir", json.dumps(bundle()).encode()), raw)
    assert kept.pending
    assert await stack.service.recover() == 0
    assert await stack.messages() == 0 and await stack.notices(ref) == []
    assert await stack.service.recover() == 0  # nothing left to try


_FR_CIRCUMSTANCES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-circonstances-sortie"


def _discharge(*codings: dict[str, str]) -> dict[str, Any]:
    data = bundle("discharge-planned.json")
    enc = encounter(data)
    enc["status"] = "finished"
    enc["hospitalization"] = {"dischargeDisposition": {"coding": list(codings)}}
    return data


@pytest.mark.parametrize(("codings", "setting"), [
    # FR Core: the circumstances of the discharge (3 = medical decision), not where the person goes:
    # read as table 0112 / NUBC, a medical discharge home was told "to a nursing home".
    (({"system": _FR_CIRCUMSTANCES, "code": "3"},), Setting.HOME),
    (({"system": _FR_CIRCUMSTANCES, "code": "4"}, {"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                                                   "code": "snf"}), Setting.NURSING_HOME),
    (({"system": "http://terminology.hl7.org/CodeSystem/v2-0112", "code": "03"},), Setting.NURSING_HOME),
    (({"system": "http://terminology.hl7.org/CodeSystem/nubc-UB92", "code": "62"},), Setting.REHAB),
    (({"code": "exp"},), Setting.OTHER),  # FHIR's words need no system: death is never a return home
    (({"system": "urn:oid:1.2.250.1.999.9", "code": "3"},), Setting.HOME),  # a local code: not guessed
])
async def test_a_discharge_disposition_is_read_by_its_code_system(
        stack: Stack, send: Send, codings: tuple[dict[str, str], ...], setting: Setting) -> None:
    ref = await stack.person(IPP)
    async with stack.db.unit() as uow:  # in hospital, so that the discharge moves the person
        await uow.persons.set_setting(ref, Setting.HOSPITAL, stack.clock.now() - timedelta(days=10), None)
    status, _ = await send(_discharge(*codings))
    assert status == 200
    assert (await stack.setting(ref))[0] is setting


# ------------------------------------------------------------ resends

async def test_a_resend_with_its_timestamp_and_serialisation_regenerated_posts_nothing_twice(
        stack: Stack, send: Send, caplog: pytest.LogCaptureFixture) -> None:
    # The same notification (same Bundle.id, same content) resent by an engine that regenerates
    # Bundle.timestamp and the resources' meta.lastUpdated/versionId, and writes its JSON with
    # other key order and spacing, was a new message: the admission was posted twice.
    ref = await stack.person(IPP)
    assert (await send(bundle()))[0] == 200
    status, outcome = await send((BUNDLES / "admit-geria-resent.json").read_bytes())
    assert status == 200 and accepted(outcome) == "duplicate, already received"
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]
    assert await stack.messages() == 1
    # Another content under the same Bundle.id is no resend: kept, processed, and the operator told.
    moved = bundle()
    encounter(moved)["location"] = [{"location": {"display": "CARDIO 3"}, "status": "active"}]
    with caplog.at_level("WARNING"):
        assert (await send(moved))[0] == 200
    assert await stack.messages() == 2
    assert [r.getMessage() for r in caplog.records if "control_id_reused" in r.getMessage()] == [
        "FHIR control_id_reused from https://eai.chu-x.example.fr/fhir, bundle id "
        "b7d1c2e0-5a41-4d6e-9a2f-chux-adm-0001: another content already came under this id: processed as a new "
        "notification"]
    assert counted(stack, "control_id_reused") == 1


# ------------------------------------------------------------ which encounter

@pytest.mark.parametrize("focus", [None, "https://dpi.chu-x.example.fr/fhir/Encounter/4411"])
async def test_several_encounters_and_a_focus_designating_none_is_refused_not_guessed(
        stack: Stack, send: Send, focus: str | None) -> None:
    # A bundle carrying the stay and the emergency visit before it, its MessageHeader.focus
    # missing or pointing outside the bundle: the first Encounter was taken — the finished
    # emergency visit — and the admission was posted at its time, in its place (URGENCES).
    ref = await stack.person(IPP)
    data = bundle("admit-two-encounters-no-focus.json")
    if focus is not None:
        data["entry"][0]["resource"]["focus"] = [{"reference": focus}]
    status, outcome = await send(data)
    assert status == 422
    assert outcome["issue"][0]["expression"] == ["MessageHeader.focus"]
    assert await stack.notices(ref) == [] and await stack.messages() == 0
    # The focus given: that encounter, whatever comes first.
    data["entry"][0]["resource"]["focus"] = [{"reference": "urn:uuid:6f0c8e55-3e1b-4b7a-9d0e-000000000002"}]
    assert (await send(data))[0] == 200
    [notice] = await stack.notices(ref)
    assert notice["params"]["when"] == "2026-11-20T09:45:00+01:00"
    assert "GERIA 12" in notice["params"]["place"] and "URGENCES" not in notice["params"]["place"]


async def test_a_focus_by_relative_versioned_reference_is_the_encounter(stack: Stack, send: Send) -> None:
    # `Encounter/<id>/_history/3` (HAPI and Smile CDR write versioned references) against
    # absolute fullUrls: resolved to that Encounter.
    ref = await stack.person(IPP)
    data = bundle("admit-relative-versioned-focus.json")
    other = copy.deepcopy(data["entry"][1])
    other["fullUrl"] = other["fullUrl"].replace("0002", "0009")
    other["resource"].update(id="6f0c8e55-3e1b-4b7a-9d0e-000000000009", status="finished",
                             location=[{"location": {"display": "URGENCES"}}])
    data["entry"].insert(1, other)
    assert (await send(data))[0] == 200
    [notice] = await stack.notices(ref)
    assert "GERIA 12" in notice["params"]["place"]


# ------------------------------------------------------------ where

async def test_the_place_is_where_the_patient_is_never_where_they_are_to_go(stack: Stack, send: Send) -> None:
    # Encounter.location listed the ward left (completed), the ward the patient is in (active)
    # and the rehabilitation unit booked next (planned): the last entry was taken, and the team
    # read that the person had been moved to the SMR.
    ref = await stack.person(IPP)
    assert (await send(bundle()))[0] == 200
    assert (await send(bundle("transfer-active-then-planned.json")))[0] == 200
    notices = await stack.notices(ref)
    assert [n["message"] for n in notices] == ["alert.admission", "alert.transfer"]
    assert "CARDIO 3" in notices[1]["params"]["place"]
    assert "SMR" not in notices[1]["params"]["place"]


async def test_a_place_given_by_reference_is_named(stack: Stack, send: Send) -> None:
    # Encounter.location and serviceProvider as references to a bundled Location and
    # Organization, without display (as HAPI and Firely serialise them): the unit and the
    # hospital were dropped and the notice named no place at all.
    ref = await stack.person(IPP)
    assert (await send(bundle("admit-location-by-reference.json")))[0] == 200
    [notice] = await stack.notices(ref)
    assert notice["params"]["place"] == "CHU X — Médecine gériatrique — unité 12"


# ------------------------------------------------------------ who

@pytest.mark.parametrize("system", [
    "1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.8", "URN:OID:1.2.250.1.213.1.4.8"])
async def test_an_ins_under_its_oid_written_bare_reaches_the_person(stack: Stack, send: Send, system: str) -> None:
    # Patient.identifier INS-NIR with `system` the bare OID (engines drop the `urn:oid:`): the
    # person recorded with `--ins` was not found, and the admission was dropped as "for nobody
    # followed" though acknowledged 200.
    ref = await stack.person("INS:279035121518989")
    data = bundle("admit-ins-bare-oid.json")
    data["entry"][2]["resource"]["identifier"][0]["system"] = system
    assert (await send(data))[0] == 200
    assert [n["message"] for n in await stack.notices(ref)] == ["alert.admission"]


def test_an_ins_oid_in_the_namespace_id_is_the_ins() -> None:
    # HL7 PID-3.4.1 holding the INS OID, PID-3.4.2 empty: the same kind on the MLLP door.
    ins = PatientId("279035121518989", "1.2.250.1.213.1.4.8", "", "NH")
    assert matches([("INS", "279035121518989")], [ins], ins_test_oids=False)
    test_oid = PatientId("279035121518989", "1.2.250.1.213.1.4.10", "", "NH")
    assert not matches([("INS", "279035121518989")], [test_oid], ins_test_oids=False)
    assert matches([("INS", "279035121518989")], [test_oid], ins_test_oids=True)


# ------------------------------------------------------------ JSON

async def test_a_property_repeated_in_an_object_is_refused(stack: Stack, send: Send) -> None:
    # `"status": "cancelled", "status": "in-progress"` in one Encounter (an engine template
    # adding a field it already had): the last one won silently and an admission another parser
    # reads as cancelled was posted.
    ref = await stack.person(IPP)
    status, outcome = await send((BUNDLES / "admit-duplicate-status.json").read_bytes())
    assert status == 400
    assert outcome["issue"][0]["code"] == "structure"
    assert outcome["issue"][0]["diagnostics"] == "JSON object repeats the property 'status'"
    assert await stack.notices(ref) == [] and await stack.messages() == 0
